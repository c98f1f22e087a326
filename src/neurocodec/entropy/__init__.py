"""Entropy models: a training face (likelihoods) and a coding face (symbols + table indexes).

Every model implements :class:`~neurocodec.entropy.base.EntropyModel` (docs/architecture.md,
"The entropy-model contract").
"""

from .base import RATE_PROXIES, EntropyModel, EntropyOutput
from .factorized import FactorizedDensity
from .fixedpoint import FixedPointConv, round_ste
from .gaussian import gaussian_bits, gaussian_pmfs, residual_bits, scale_table
from .hyperprior import FixedPointHyperSynthesis, HyperpriorFamily, HyperSymbols, MeanScaleHyperprior
from .context import ContextHyperprior
from .mixture import MixtureHyperprior
from .vq import CascadedVQ, MultiCodebookQuantizer

__all__ = [
    "EntropyModel", "EntropyOutput", "FactorizedDensity", "FixedPointConv", "round_ste", "gaussian_bits",
    "gaussian_pmfs", "residual_bits", "RATE_PROXIES", "scale_table", "FixedPointHyperSynthesis", "HyperpriorFamily",
    "HyperSymbols", "MeanScaleHyperprior", "ContextHyperprior", "MixtureHyperprior", "CascadedVQ",
    "MultiCodebookQuantizer",
]
