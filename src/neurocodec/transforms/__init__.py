"""Analysis / synthesis building blocks. They know nothing about bits."""

from .gdn import GDN
from .linear import BlockDCT, ColourTransform, dct_basis
from .residual import PixelRefiner, ResidualBlock

__all__ = ["GDN", "BlockDCT", "ColourTransform", "dct_basis", "PixelRefiner", "ResidualBlock"]
