"""The bottom layer: config and its schema, errors, atomic file io, run-folder paths, tables, git, progress, the stage runner.

Nothing here imports from another reprokit layer."""
