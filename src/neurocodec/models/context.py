"""``block-context``: the block transform of ``block-hyperprior`` with the spatial-channel
context entropy model (:class:`neurocodec.entropy.context.ContextHyperprior`).

The 192 latent channels are the DCT coefficients of 8x8 blocks of the three colour
channels. They are coded in slices ordered by frequency (lowest first, the three colour
channels interleaved), so the decoded low-frequency coefficients of a block, and of its
neighbours, predict the scales of its high-frequency ones: the dependency a hyperprior at
H/32 cannot see. Within a slice, a checkerboard lets half of the blocks use their decoded
neighbours.
"""

from __future__ import annotations

from ..entropy.context import ContextHyperprior
from .hyperprior import BlockHyperprior

DEFAULT_SLICES = (12, 12, 24, 48, 96)


def dct_frequency_order(colours: int = 3, size: int = 8) -> list[int]:
    """Channels of :class:`~neurocodec.transforms.BlockDCT` sorted by frequency.

    Channel ``c * size**2 + u * size + v`` holds frequency (u, v) of colour c. Sorted by
    diagonal ``u + v`` (a zig-zag without the direction changes), then colour (Y, Cb, Cr:
    luma first within a diagonal), then ``u``. Returns a permutation of
    ``range(colours * size**2)``: the first 12 are the DC and first-diagonal coefficients of
    all three colours and the second-diagonal luma ones.
    """
    channels = [(c, u, v) for c in range(colours) for u in range(size) for v in range(size)]
    channels.sort(key=lambda t: (t[1] + t[2], t[0], t[1]))
    return [c * size * size + u * size + v for c, u, v in channels]


class BlockContext(BlockHyperprior):
    """Block-transform codec with a checkerboard x channel-slice context model.

    The transform, gains and hyperprior are those of :class:`BlockHyperprior` (inherited,
    same parameter names, so ``TrainConfig.init_from`` a ``block-hyperprior`` weight file
    warm-starts all of them; the context networks start from their initialisation, which
    predicts what the hyperprior predicts).

    Args:
      refine_blocks, refine_hidden, pixel_hidden, hyper_channels, hyper_hidden: as for
        :class:`BlockHyperprior`.
      slices: channel counts of the slices in coding order (frequency order, see
        :func:`dct_frequency_order`); they sum to 192. ``2 * len(slices)`` coding passes.
      context_hidden: width of the entropy-parameter networks.
    """

    architecture = "block-context"
    # Parameters a weight file of the parent architecture lacks (kept at initialisation
    # when warm-starting from one; see neurocodec.zoo.weights.load_state_into).
    warm_start_fresh = ("entropy_model.context.",)

    def __init__(self, refine_blocks: int = 2, refine_hidden: int = 192, pixel_hidden: int = 48,
                 hyper_channels: int = 64, hyper_hidden: int = 128, slices: tuple[int, ...] = DEFAULT_SLICES,
                 context_hidden: int = 96):
        super().__init__(refine_blocks, refine_hidden, pixel_hidden, hyper_channels, hyper_hidden)
        self._config.update(slices=[int(s) for s in slices], context_hidden=int(context_hidden))
        # Replaces the parent's plain hyperprior (same hyper networks, plus the context).
        self.entropy_model = ContextHyperprior(self.latent_channels, hyper_channels, hyper_hidden, tuple(slices),
                                               context_hidden, dct_frequency_order())
