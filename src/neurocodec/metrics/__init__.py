"""Measurement: PSNR, MS-SSIM and Bjøntegaard deltas (numpy / scipy only).

This package is a tool on top of the library; the core layers never import it.

>>> from neurocodec.metrics import psnr, ms_ssim, bd_rate, bd_psnr
"""

from .bjontegaard import bd_psnr, bd_rate
from .quality import MS_SSIM_WEIGHTS, ms_ssim, psnr

__all__ = ["psnr", "ms_ssim", "bd_rate", "bd_psnr", "MS_SSIM_WEIGHTS"]
