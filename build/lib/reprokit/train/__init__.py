"""Training: the loop, the embedding LightningModule, models, losses, checkpoints."""
