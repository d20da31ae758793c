"""The stages' work, one module per dvc.yaml stage; ``stages/<name>.py`` in a project only calls ``main``.

The top layer, beside ``reprokit.cli``: it reads the config and calls the layers below.
"""
