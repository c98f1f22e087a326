"""Training: datasets, rate-distortion loss, resumable loop, export."""

from .loop import TrainConfig, rd_loss, train

__all__ = ["TrainConfig", "rd_loss", "train"]
