"""Provenance: run artifacts (code snapshot, config, dataframe, environment, git), ``reprokit reproduce``
and ``reprokit compare`` (a committed run read back from git and DVC)."""
