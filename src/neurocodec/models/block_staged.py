"""``block-hyperprior`` with one residual stage on each side of quantisation: the mechanism
``block-swinv2`` and ``block-region`` share.

The stages sit in the refinement paths at H/8, on the 192 DCT-coefficient channels:

    analysis:  colour -> block DCT -> analysis refinement -> **analysis stage** -> y
    synthesis: y_hat -> **synthesis stage** -> synthesis refinement -> inverse DCT -> colour -> pixel refiner

Every stage is zero-initialised residual (its last layer is zero, so its output is its
input, bit for bit), and its parameters are named apart from the default's
(``analysis_stage.*``, ``synthesis_stage.*``): ``TrainConfig.init_from`` a
``block-hyperprior`` weight file loads everything else, and at step 0 the model computes
exactly what that weight file's model computes (same latents, same reconstruction, same
bits and, with the parent's coding state, the same bytes). Training then adds only what the
stages bring (DESIGN.md, decision 8).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .hyperprior import BlockHyperprior


class StagedBlockHyperprior(BlockHyperprior):
    """``block-hyperprior`` plus a residual stage after the analysis refinement and one
    before the synthesis refinement, each (B, 192, H/8, W/8) -> same shape.

    Subclasses call :meth:`add_stages` once in their constructor (after this one's, so that
    the default's parameters are initialised first, in the same order) and may override
    :meth:`run_stage` (for stages that need more than the feature map). The constructor
    arguments of :class:`BlockHyperprior` come first, in its order.
    """

    # Parameters a block-hyperprior weight file lacks (kept at initialisation when
    # warm-starting from one; see neurocodec.zoo.weights.load_state_into).
    warm_start_fresh = ("analysis_stage.", "synthesis_stage.")

    def add_stages(self, make_stage: Callable[[], nn.Module]) -> None:
        """Create both stages with ``make_stage`` (each must be the identity at initialisation)."""
        self.analysis_stage = make_stage()
        self.synthesis_stage = make_stage()

    def run_stage(self, stage: nn.Module, h: torch.Tensor) -> torch.Tensor:
        """Apply one stage to (B, 192, H/8, W/8)."""
        return stage(h)

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 192, H/8, W/8)."""
        return self.run_stage(self.analysis_stage, super().analysis(x))

    def synthesis(self, y_hat: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        """(B, 192, H/8, W/8), quality (B,) -> (B, 3, H, W), not clamped."""
        return super().synthesis(self.run_stage(self.synthesis_stage, y_hat), quality)
