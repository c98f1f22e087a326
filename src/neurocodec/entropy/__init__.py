"""Entropy models: a training face (likelihoods) and a coding face (symbols + table indexes)."""

from .factorized import FactorizedDensity
from .fixedpoint import FixedPointConv, round_ste
from .gaussian import RATE_PROXIES, gaussian_bits, gaussian_pmfs, residual_bits, scale_table
from .hyperprior import FixedPointHyperSynthesis, HyperSymbols, MeanScaleHyperprior
from .context import ContextHyperprior
from .mixture import MixtureHyperprior
from .vq import CascadedVQ, MultiCodebookQuantizer

__all__ = [
    "FactorizedDensity", "FixedPointConv", "round_ste", "gaussian_bits", "gaussian_pmfs", "residual_bits", "RATE_PROXIES",
    "scale_table", "FixedPointHyperSynthesis", "HyperSymbols", "MeanScaleHyperprior", "ContextHyperprior",
    "MixtureHyperprior", "CascadedVQ", "MultiCodebookQuantizer",
]
