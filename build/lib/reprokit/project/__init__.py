"""A reprokit pipeline in the user's own repository: ``reprokit init`` and the files it writes."""
