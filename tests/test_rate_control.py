"""Rate control (``bpp=`` / ``psnr=`` targets) and encode effort (``effort=``).

The Kodak figures (±3 % at 0.25 / 0.5 / 1.0 bpp) come from ``benchmarks/rate_control.py``;
these tests check the search itself and the API's promises on small images.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import neurocodec
from neurocodec.codec import _solve_monotone
from neurocodec.format import read_header
from neurocodec.metrics import psnr

from test_codec import codec, make_image


# curve >= 0.5: steeper curves change by more than the tolerance between neighbouring
# float32 qualities near 1, where no stored quality can meet the target.
@settings(max_examples=200, deadline=None, derandomize=True)
@given(offset=st.floats(-3, 3), slope=st.floats(0.05, 2.0), curve=st.floats(0.5, 3.0),
       where=st.floats(0.0, 1.0))
def test_search_meets_targets_inside_the_range(offset, slope, curve, where):
    """Any smooth increasing measure: the target is met within the tolerance, trying only
    float32 qualities in [1, 8]."""
    tried = []

    def measure(q):
        tried.append(q)
        return offset + slope * ((q - 1.0) / 7.0) ** curve * 7.0

    lo, hi = measure(1.0), measure(8.0)
    target = lo + where * (hi - lo)
    tried.clear()
    q = _solve_monotone(measure, target, tolerance=0.01)
    assert 1.0 <= q <= 8.0 and q == float(np.float32(q))
    assert all(1.0 <= t <= 8.0 for t in tried)
    assert abs(measure(q) - target) <= 0.01


@pytest.mark.parametrize("target, expected", [(-100.0, 1.0), (100.0, 8.0)])
def test_search_outside_the_range_gives_the_end(target, expected):
    assert _solve_monotone(lambda q: math.log(q), target, tolerance=0.01) == expected


def _bpp(data: bytes, image: np.ndarray) -> float:
    return 8.0 * len(data) / (image.shape[0] * image.shape[1])


def test_bpp_target_is_met_through_the_api():
    image = make_image(96, 128, seed=3)
    low = _bpp(codec().compress(image, 2), image)
    high = _bpp(codec().compress(image, 7), image)
    target = math.sqrt(low * high)
    data = codec().compress(image, bpp=target)
    assert abs(_bpp(data, image) / target - 1.0) <= 0.03
    assert 2.0 < read_header(data).quality < 7.0
    assert neurocodec.decompress(data).shape == image.shape


def test_psnr_target_is_met_through_the_api():
    image = make_image(96, 128, seed=4)
    low = psnr(image, codec().compress_with_reconstruction(image, 2)[1])
    high = psnr(image, codec().compress_with_reconstruction(image, 7)[1])
    target = 0.5 * (low + high)
    data, reconstruction = codec().compress_with_reconstruction(image, psnr=target)
    assert abs(psnr(image, reconstruction) - target) <= 0.1
    np.testing.assert_array_equal(neurocodec.decompress(data), reconstruction)


@pytest.mark.parametrize("kwargs, quality", [(dict(bpp=1e-4), 1.0), (dict(bpp=1e4), 8.0),
                                             (dict(psnr=1.0), 1.0), (dict(psnr=200.0), 8.0)])
def test_unreachable_targets_give_the_end_of_the_range(kwargs, quality):
    data = codec().compress(make_image(32, 40, seed=5), **kwargs)
    assert read_header(data).quality == quality


@pytest.mark.parametrize("kwargs", [dict(quality=3, bpp=1.0), dict(bpp=1.0, psnr=30.0), dict(bpp=0.0),
                                    dict(bpp=float("nan")), dict(psnr=-1.0), dict(bpp="1")])
def test_bad_targets_are_value_errors(kwargs):
    with pytest.raises(ValueError):
        codec().compress(make_image(8, 8), **kwargs)


def test_effort_streams_decode_exactly_and_deterministically():
    image = make_image(48, 64, seed=6)
    data, reconstruction = codec().compress_with_reconstruction(image, 4, effort=3)
    again = codec().compress(image, 4, effort=3)
    plain = codec().compress(image, 4)
    assert data == again                       # a seeded optimisation: same bytes every time
    assert data != plain                       # the latents did change
    np.testing.assert_array_equal(neurocodec.decompress(data), reconstruction)


@pytest.mark.parametrize("effort", [-1, 1.5, True, "3"])
def test_bad_effort_is_a_value_error(effort):
    with pytest.raises(ValueError):
        codec().compress(make_image(8, 8), 4, effort=effort)


def test_refined_latents_are_coded_without_a_second_rounding_for_rate():
    """effort > 0: the refinement already traded rate for distortion, so its latents are coded
    with plain rounding even where the model rounds for rate (effort 0)."""
    import torch

    c = codec()
    model = c.model
    assert model.channel_energy is not None      # the shipped default rounds for rate at effort 0
    image = make_image(32, 32, seed=9)
    x = c._to_tensor(image)[0]
    with torch.inference_mode(False):
        y = model.refine_latents(x, 4.0, 3)
    plain_segments, _ = model.code_latents(y, 4.0, rd_rounding=False)
    rd_segments, _ = model.code_latents(y, 4.0)
    data = c.compress(image, 4, effort=3)
    payload = b"".join(plain_segments)
    assert payload in data and b"".join(rd_segments) != payload
