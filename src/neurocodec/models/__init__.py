"""Registered architectures: name -> class. A model has ``forward`` for training and
``compress`` / ``decompress`` for bytes."""

from __future__ import annotations

from .base import LAMBDAS, VariableRateCodec, check_quality, lambda_for_quality
from .block_walloc import BlockWaLLoC
from .context import BlockContext
from .hyperprior import BlockHyperprior, ConvHyperprior
from .mcquic import BlockMcQuic
from .mixture import BlockMixture
from .overfit import OverfitCodec
from .region import BlockRegion, RegionHyperprior
from .swin import BlockSwinV2, SwinV2Hyperprior
from .walloc import WaLLoC

ARCHITECTURES: dict[str, type[VariableRateCodec]] = {
    BlockHyperprior.architecture: BlockHyperprior,
    BlockContext.architecture: BlockContext,
    BlockMcQuic.architecture: BlockMcQuic,
    BlockMixture.architecture: BlockMixture,
    OverfitCodec.architecture: OverfitCodec,
    BlockRegion.architecture: BlockRegion,
    BlockWaLLoC.architecture: BlockWaLLoC,
    BlockSwinV2.architecture: BlockSwinV2,
    ConvHyperprior.architecture: ConvHyperprior,
    SwinV2Hyperprior.architecture: SwinV2Hyperprior,
    RegionHyperprior.architecture: RegionHyperprior,
    WaLLoC.architecture: WaLLoC,
}


def build_model(architecture: str, **config) -> VariableRateCodec:
    """Instantiate a registered architecture; unknown names raise ValueError listing the known ones."""
    try:
        cls = ARCHITECTURES[architecture]
    except KeyError:
        raise ValueError(f"unknown architecture {architecture!r}; known: {sorted(ARCHITECTURES)}") from None
    return cls(**config)


__all__ = ["ARCHITECTURES", "LAMBDAS", "VariableRateCodec", "build_model", "check_quality", "lambda_for_quality"]
