"""Visualization: the worst-queries figure."""
