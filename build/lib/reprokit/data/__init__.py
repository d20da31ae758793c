"""Data: OML dataframe checks and cell parsing, image loading, the label-balanced sampler, the embedded digits dataset."""
