"""Measurement: bits per pixel, PSNR, MS-SSIM and Bjøntegaard deltas (numpy / scipy only).

Plain maths at the bottom of the layer table: every layer may use it, and it imports
no other layer.

>>> from neurocodec.metrics import bits_per_pixel, psnr, ms_ssim, bd_rate, bd_psnr
"""

from .bjontegaard import bd_psnr, bd_rate
from .quality import MS_SSIM_WEIGHTS, ms_ssim, psnr
from .rate import bits_per_pixel

__all__ = ["bits_per_pixel", "psnr", "ms_ssim", "bd_rate", "bd_psnr", "MS_SSIM_WEIGHTS"]
