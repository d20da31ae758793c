"""Provenance: run artifacts (code snapshot, config, dataframe, environment, git) and ``reprokit reproduce``."""
