"""Logging: ``reprokit.LightningModule`` (``self.log`` of images and text), media conversion, the run-folder logger."""
