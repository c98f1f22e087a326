"""``block-mixture``: the block transform of ``block-hyperprior`` with a Gaussian mixture
conditional entropy model (:class:`neurocodec.entropy.mixture.MixtureHyperprior`).

Each latent is coded under a mixture of K discretised Gaussians predicted by the
hyperprior (Cheng et al., CVPR 2020) instead of one: a multi-modal or heavy-tailed
conditional distribution costs fewer bits. Decoding needs no more passes than the
hyperprior (two segments per tile); the price is building a per-element integer pmf at
coding time (see docs/entropy-models.md).
"""

from __future__ import annotations

from ..entropy.mixture import MixtureHyperprior
from .hyperprior import BlockHyperprior


class BlockMixture(BlockHyperprior):
    """Block-transform codec with a K-component Gaussian mixture hyperprior.

    The transform, gains, hyper-analysis, z density and hyper-synthesis are those of
    :class:`BlockHyperprior` (same parameter names), so ``TrainConfig.init_from`` a
    ``block-hyperprior`` weight file warm-starts all of them; the mixture head starts from
    its initialisation, under which the model codes at (almost exactly) the hyperprior's
    rate (see :class:`~neurocodec.entropy.mixture.MixtureHyperSynthesis`).

    Args:
      refine_blocks, refine_hidden, pixel_hidden, hyper_channels, hyper_hidden: as for
        :class:`BlockHyperprior`.
      components: K, mixture components per latent (1..16).
    """

    architecture = "block-mixture"
    # Parameters a block-hyperprior weight file lacks (kept at initialisation when
    # warm-starting from one; see neurocodec.zoo.weights.load_state_into).
    warm_start_fresh = ("entropy_model.hyper_synthesis.mixture.",)

    def __init__(self, refine_blocks: int = 2, refine_hidden: int = 192, pixel_hidden: int = 48,
                 hyper_channels: int = 64, hyper_hidden: int = 128, components: int = 3):
        super().__init__(refine_blocks, refine_hidden, pixel_hidden, hyper_channels, hyper_hidden)
        self._config.update(components=int(components))
        # Replaces the parent's plain hyperprior (same hyper networks, plus the mixture head).
        self.entropy_model = MixtureHyperprior(self.latent_channels, hyper_channels, hyper_hidden, int(components))
