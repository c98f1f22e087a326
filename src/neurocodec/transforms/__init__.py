"""Analysis / synthesis building blocks. They know nothing about bits."""

from .gdn import GDN
from .linear import BlockDCT, ColourTransform, dct_basis
from .residual import PixelRefiner, ResidualBlock

__all__ = ["GDN", "BlockDCT", "ColourTransform", "dct_basis", "PixelRefiner", "ResidualBlock"]

from .region import RegionAdaptiveBlock, RegionPartition, ScaleAffineLayer  # noqa: E402
from .swin import ResidualSwinStage, SwinV2Block  # noqa: E402

__all__ += ["RegionAdaptiveBlock", "RegionPartition", "ScaleAffineLayer", "ResidualSwinStage", "SwinV2Block"]

from .wavelet import WaveletPacket, sequency_order  # noqa: E402
__all__ += ["WaveletPacket", "sequency_order"]
