"""Training: configuration, datasets, rate-distortion loss, resumable loop, export.

``TrainConfig`` and ``TrainConfigError`` load without torch (the commands' ``--help`` reads
the options from them); ``train`` and ``rd_loss`` load the loop, and torch, on first use.
"""

from .config import TrainConfig, TrainConfigError

__all__ = ["TrainConfig", "TrainConfigError", "rd_loss", "train"]


def __getattr__(name: str):
    if name in ("train", "rd_loss"):
        from . import loop

        value = getattr(loop, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'neurocodec.train' has no attribute {name!r}")
