"""Hyper-parameter sweeps: the sweep file, the Optuna controller, trials as DVC experiments."""
