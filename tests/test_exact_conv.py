"""The fast exact convolutions of the fixed-point prior (``neurocodec.entropy.fixedpoint``).

``FixedPointConv.forward_exact`` runs 3x3 and stride-2 5x5 transposed layers through
Winograd F(4x4, 3x3) or F(2x2, 3x3) with integer transforms. These tests check, against
an int64 computation with no floats at all, that every route gives exactly the integers
of the convolution: each Winograd variant on random shapes and values, inputs at the
largest magnitude the exactness check admits, the fallback to the direct convolution
beyond it, and the requantisation.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

import neurocodec.entropy.winograd as fp  # noqa: E402
from neurocodec.entropy.fixedpoint import FixedPointConv, requantise_exact  # noqa: E402
from neurocodec.entropy.winograd import winograd_conv3x3  # noqa: E402


def conv_int64(x: np.ndarray, w: np.ndarray, b: np.ndarray, transposed: bool) -> np.ndarray:
    """int64 reference: 3x3 stride 1 padding 1, or 5x5 stride-2 transposed (padding 2,
    output padding 1), as ``FixedPointConv`` defines them."""
    batch, _, h, wd = x.shape
    if transposed:  # out[o, 2 i - 2 + k] += x[i] w[k]
        k = w.shape[-1]
        full = np.zeros((batch, w.shape[1], 2 * h + k, 2 * wd + k), np.int64)
        for ky in range(k):
            for kx in range(k):
                full[:, :, ky:ky + 2 * h:2, kx:kx + 2 * wd:2] += np.einsum("io,bihw->bohw", w[:, :, ky, kx], x)
        out = full[:, :, 2:2 + 2 * h, 2:2 + 2 * wd]
    else:
        xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        out = np.zeros((batch, w.shape[0], h, wd), np.int64)
        for ky in range(3):
            for kx in range(3):
                out += np.einsum("oi,bihw->bohw", w[:, :, ky, kx], xp[:, :, ky:ky + h, kx:kx + wd])
    return out + b[None, :, None, None]


def random_case(seed: int, transposed: bool, x_max: int, w_max: int = 2**15):
    rng = np.random.default_rng(seed)
    batch, c_in, c_out = rng.integers(1, 3), rng.integers(1, 10), rng.integers(1, 10)
    h, w = rng.integers(1, 14, size=2)
    x = rng.integers(-x_max, x_max + 1, size=(batch, c_in, h, w))
    x[rng.random(x.shape) < 0.5] = 0  # prior activations are mostly zero
    shape = (c_in, c_out, 5, 5) if transposed else (c_out, c_in, 3, 3)
    weight = rng.integers(-w_max, w_max, size=shape)
    bias = rng.integers(-2**44, 2**44, size=c_out)
    layer = FixedPointConv(int(c_in), int(c_out), 5 if transposed else 3, 2 if transposed else 1,
                           transposed=transposed)
    return layer, x, weight, bias


def as_f64(*arrays):
    return [torch.from_numpy(np.asarray(a, dtype=np.float64)) for a in arrays]


@pytest.fixture
def routes(monkeypatch):
    """Records the Winograd tile size m of every fast convolution (m = 4 or 2)."""
    taken = []
    inner = fp._winograd

    def spy(x, u, bias, m, transposed):
        taken.append(m)
        return inner(x, u, bias, m, transposed)

    monkeypatch.setattr(fp, "_winograd", spy)
    return taken


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31), transposed=st.booleans(), x_bits=st.integers(0, 15))
def test_forward_exact_equals_int64_convolution(routes, seed, transposed, x_bits):
    layer, x, w, b = random_case(seed, transposed, 2**x_bits)
    routes.clear()
    out = layer.forward_exact(*as_f64(x, w, b))
    assert out.dtype == torch.float64
    np.testing.assert_array_equal(out.numpy().astype(np.int64), conv_int64(x, w, b, transposed))
    assert len(routes) == 1  # these shapes always take a fast route


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), transposed=st.booleans(), m=st.sampled_from([2, 4]))
def test_each_winograd_variant_is_exact(seed, transposed, m):
    layer, x, w, b = random_case(seed, transposed, 300)
    xf, wf, bf = as_f64(x, w, b)
    u, r = fp.winograd_filters(wf, transposed, m)
    assert 300 * r < fp._EXACT_LIMIT
    out = fp._winograd(xf, u, bf, m, transposed)
    np.testing.assert_array_equal(out.numpy().astype(np.int64), conv_int64(x, w, b, transposed))


@pytest.mark.parametrize("transposed", [False, True])
def test_largest_admitted_input_is_exact(routes, transposed):
    """All weights -2**15 and every input at the largest magnitude F(4x4, 3x3) admits for
    them (signs alternating, so the transforms reach their extremes): still exact."""
    c_in, c_out = 6, 5
    shape = (c_in, c_out, 5, 5) if transposed else (c_out, c_in, 3, 3)
    w = np.full(shape, -2**15, np.int64)
    _, r = fp.winograd_filters(torch.from_numpy(w.astype(np.float64)), transposed, 4)
    largest = int(fp._EXACT_LIMIT / r) - 1
    signs = np.where((np.arange(9)[:, None] + np.arange(11)[None, :]) % 2 == 0, 1, -1)
    x = np.broadcast_to(largest * signs, (1, c_in, 9, 11)).copy()
    b = np.arange(c_out, dtype=np.int64) * 2**40
    routes.clear()
    out = winograd_conv3x3(*as_f64(x, w, b), transposed=transposed)
    assert routes == [4]
    np.testing.assert_array_equal(out.numpy().astype(np.int64), conv_int64(x, w, b, transposed))
    routes.clear()  # just beyond: the smaller tiles take over, still exact
    x2 = x * 2
    out = winograd_conv3x3(*as_f64(x2, w, b), transposed=transposed)
    assert routes == [2]
    np.testing.assert_array_equal(out.numpy().astype(np.int64), conv_int64(x2, w, b, transposed))


def test_inputs_beyond_every_bound_use_the_direct_convolution(routes):
    layer = FixedPointConv(4, 3, 3)
    x = torch.full((1, 4, 5, 5), 2.0**40, dtype=torch.float64)
    w = torch.full((3, 4, 3, 3), -2.0**15, dtype=torch.float64)
    b = torch.zeros(3, dtype=torch.float64)
    assert winograd_conv3x3(x, w, b) is None
    assert torch.equal(layer.forward_exact(x, w, b), layer._conv(x, w, b))
    nan = x.clone()
    nan[0, 0, 0, 0] = float("nan")
    assert winograd_conv3x3(nan, w, b) is None
    assert routes == []


def test_other_shapes_use_the_direct_convolution(routes):
    for layer, shape in ((FixedPointConv(3, 4, 5), (4, 3, 5, 5)), (FixedPointConv(3, 4, 1), (4, 3, 1, 1)),
                         (FixedPointConv(3, 4, 3, 2, transposed=True), (3, 4, 3, 3))):
        x = torch.randint(-50, 50, (1, 3, 6, 7)).double()
        w = torch.randint(-2**15, 2**15, shape).double()
        b = torch.randint(-2**20, 2**20, (4,)).double()
        assert torch.equal(layer.forward_exact(x, w, b), layer._conv(x, w, b))
    assert routes == []


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), shift=st.integers(1, 24))
def test_requantise_is_integer_floor_half_up(seed, shift):
    rng = np.random.default_rng(seed)
    acc = rng.integers(-2**50, 2**50, size=200)
    acc[:20] = (rng.integers(-2**20, 2**20, size=20) << shift) + (1 << (shift - 1))  # exact ties
    low, high = -2**30, 2**30
    out = requantise_exact(torch.from_numpy(acc.astype(np.float64)), shift, float(low), float(high))
    expected = np.clip((acc + (1 << (shift - 1))) >> shift, low, high)
    np.testing.assert_array_equal(out.numpy().astype(np.int64), expected)


@pytest.mark.parametrize("transposed", [False, True])
def test_filter_cache_follows_the_weights(transposed):
    """A layer keeps the transformed filters of the last weights it saw; other weights are
    transformed afresh."""
    layer, x, w1, b = random_case(7, transposed, 100)
    w2 = w1.copy()
    w2.flat[0] += 1
    for w in (w1, w2, w1, w1):
        out = layer.forward_exact(*as_f64(x, w, b))
        np.testing.assert_array_equal(out.numpy().astype(np.int64), conv_int64(x, w, b, transposed))
