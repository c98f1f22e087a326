"""The CPU fast paths keep their results: each faster route is checked against the plain
computation it replaces (see docs/benchmarks.md, "Speed against CompressAI").

* ``Codec.compress`` does not run the synthesis (only ``compress_with_reconstruction``
  needs the reconstruction) and writes the same bytes;
* ``BlockDCT.inverse`` as a batched matrix product equals the transposed convolution;
* ``scale_prior_exact``'s shifts equal integer floor division.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from neurocodec import Codec  # noqa: E402
from neurocodec.entropy.quality_head import (  # noqa: E402
    GAIN_BITS, LOG2_SCALE_MIN, LOG2_SCALE_STEP, LOG_BITS, exp2_table, fixed_point_gain, scale_prior_exact)
from neurocodec.transforms import BlockDCT  # noqa: E402


@functools.lru_cache(maxsize=None)
def codec() -> Codec:
    return Codec()


def _image(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("target", [dict(quality=3.5), dict(bpp=1.0)])
def test_compress_runs_no_synthesis_and_writes_the_same_bytes(monkeypatch, target):
    image = _image(48, 80, seed=1)
    expected, _ = codec().compress_with_reconstruction(image, **target)

    def no_synthesis(*args, **kwargs):
        raise AssertionError("compress ran the synthesis")

    monkeypatch.setattr(codec().model, "reconstruct", no_synthesis)
    assert codec().compress(image, **target) == expected


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks_h=st.integers(1, 6), blocks_w=st.integers(1, 6), channels=st.integers(1, 3),
       size=st.sampled_from([2, 4, 8]), seed=st.integers(0, 2**16))
def test_block_dct_inverse_equals_transposed_convolution(blocks_h, blocks_w, channels, size, seed):
    dct = BlockDCT(channels, size)
    g = torch.Generator().manual_seed(seed)
    coefficients = torch.randn(2, channels * size * size, blocks_h, blocks_w, generator=g)
    reference = F.conv_transpose2d(coefficients, dct.basis, stride=size, groups=channels)
    fast = dct.inverse(coefficients)
    assert fast.shape == (2, channels, blocks_h * size, blocks_w * size)
    torch.testing.assert_close(fast, reference, rtol=0, atol=1e-5)
    torch.testing.assert_close(dct.inverse(dct(reference)), reference, rtol=0, atol=1e-5)


def _scale_prior_reference(mean_u, log_scale_u, log2_gain, exp2, mean_bits, num_scales):
    """Python-integer floor divisions, element by element (the specification)."""
    step = int(LOG2_SCALE_STEP * 2**LOG_BITS)
    gain = fixed_point_gain(torch.tensor(log2_gain, dtype=torch.int64), exp2).tolist()
    shift = mean_bits + GAIN_BITS
    means, indexes = [], []
    for c, (m_row, l_row) in enumerate(zip(mean_u, log_scale_u)):
        position = [v + log2_gain[c] - int(LOG2_SCALE_MIN * 2**LOG_BITS) + step // 2 for v in l_row]
        indexes.append([min(max(p // step, 0), num_scales - 1) for p in position])
        means.append([(v * gain[c] + (1 << (shift - 1))) // (1 << shift) for v in m_row])
    return means, indexes


@settings(max_examples=60, deadline=None)
@given(data=st.data(), channels=st.integers(1, 4), length=st.integers(1, 12))
def test_scale_prior_exact_equals_integer_floor_division(data, channels, length):
    mean_bits, num_scales = 8, 96
    ints = st.integers(-2**20, 2**20)
    mean_u = [data.draw(st.lists(ints, min_size=length, max_size=length)) for _ in range(channels)]
    log_scale_u = [data.draw(st.lists(st.integers(-32 * 256, 32 * 256), min_size=length, max_size=length))
                   for _ in range(channels)]
    log2_gain = data.draw(st.lists(st.integers(-8 * 256, 8 * 256), min_size=channels, max_size=channels))
    exp2 = exp2_table()
    mean, index = scale_prior_exact(torch.tensor(mean_u).view(1, channels, 1, length),
                                    torch.tensor(log_scale_u).view(1, channels, 1, length),
                                    torch.tensor(log2_gain), exp2, mean_bits, num_scales)
    want_mean, want_index = _scale_prior_reference(mean_u, log_scale_u, log2_gain, exp2, mean_bits, num_scales)
    assert mean.dtype == index.dtype == torch.int64
    assert mean.view(channels, length).tolist() == want_mean
    assert index.view(channels, length).tolist() == want_index
