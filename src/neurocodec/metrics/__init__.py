"""Measurement: bits per pixel, PSNR, MS-SSIM, Bjøntegaard deltas and texture measures
(numpy / scipy only).

Plain maths at the bottom of the layer table: every layer may use it, and it imports
no other layer.

>>> from neurocodec.metrics import bits_per_pixel, psnr, ms_ssim, bd_rate, bd_psnr
"""

from ..lazy import lazy_attributes
from .rate import bits_per_pixel

# bits_per_pixel is stdlib only and used by light commands (cli info, collections); the rest
# needs numpy / scipy, so it loads on first use.
__getattr__ = lazy_attributes(__name__, {"bd_psnr": "bjontegaard", "bd_rate": "bjontegaard",
                                         "MS_SSIM_WEIGHTS": "quality", "ms_ssim": "quality", "psnr": "quality",
                                         "band_energy_ratios": "spectral",
                                         "gradient_histogram_distance": "spectral"})

__all__ = ["bits_per_pixel", "psnr", "ms_ssim", "bd_rate", "bd_psnr", "MS_SSIM_WEIGHTS", "band_energy_ratios",
           "gradient_histogram_distance"]
