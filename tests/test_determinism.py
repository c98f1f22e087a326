"""The deterministic prior path (DESIGN.md decision 2, issue 4).

(a) The coding-time prior (``MeanScaleHyperprior._prior`` -> ``forward_exact``) is exact
    integer arithmetic: identical bits with 1 or 2 threads, mkldnn on or off, in a batch
    or alone; every float64 accumulator equals an independent int64 computation; and the
    accumulators provably stay below 2**53 (float64 holds them exactly in any order).
(b) Cross-process: ``benchmarks/determinism.py`` encodes in a process with mkldnn on and
    1 thread and decodes in one with mkldnn off and 2 threads: identical symbols, pixels
    within 1 level in at most 0.1 % of positions (two Kodak crops, or synthetic images
    when the Kodak data is absent).
(c) Relative noise of 1e-4 on the float transforms (analysis, hyper-analysis, synthesis)
    changes pixels, never the decoded symbols.

Uses the shipped default model when it loads and codes with this checkout (else a small
random model of the same architecture, exported to a temporary zoo), plus a random model
with the default layer sizes for (a). Never depends on the shipped model's RD figures.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from neurocodec.entropy.fixedpoint import WEIGHT_LIMIT  # noqa: E402
from neurocodec.entropy.hyperprior import Z_LIMIT  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "determinism.py"
KODAK = ROOT.parent / "shared" / "data" / "kodak"
EXACT = 2**53  # float64 holds every integer of magnitude <= 2**53 exactly


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


det = _load("determinism_bench", BENCH)


# --------------------------------------------------------------------------- #
# Models
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def tmp_zoo(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("zoo")


def _shipped_usable() -> bool:
    """The shipped default model exists and codes with this checkout's code."""
    import neurocodec.zoo as zoo

    if not (Path(zoo.WEIGHTS_DIR) / f"{zoo.DEFAULT_MODEL}.safetensors").exists():
        return False
    try:
        import neurocodec
        from neurocodec.codec import Codec

        data = Codec().compress(np.full((8, 8, 3), 100, np.uint8), 4)
        neurocodec.decompress(data)
        return True
    except Exception:  # noqa: BLE001 - weights from another code version: test_codec reports it
        return False


@pytest.fixture(scope="module")
def model_choice(tmp_zoo) -> tuple[str | None, str | None]:
    """(model name, weights dir) for the codec tests: the shipped default model, or a
    small random model exported to a temporary zoo when the checkout has no usable weights."""
    if _shipped_usable():
        return None, None
    fuzz = _load("fuzz_decoder", ROOT / "benchmarks" / "fuzz_decoder.py")
    fuzz.export_tiny_model(tmp_zoo)
    return fuzz.TINY_NAME, str(tmp_zoo)


@pytest.fixture(scope="module")
def entropy_models(tmp_zoo) -> list[tuple[str, object]]:
    """Coding-ready entropy models: a random one with the default layer sizes (exported and
    reloaded, so its integer parameters are exactly what a weight file holds), and the
    shipped one when usable."""
    from neurocodec.models import build_model
    from neurocodec.zoo import export_weights, load_weights

    torch.manual_seed(0)
    model = build_model("block-hyperprior", refine_blocks=0, pixel_hidden=0)
    path = tmp_zoo / "det-random.safetensors"
    export_weights(model, path, "det-random")
    models = [("random", load_weights(path).entropy_model)]
    if _shipped_usable():
        from neurocodec.zoo import load_model

        models.append(("shipped", load_model().entropy_model))
    return models


def prior(entropy, z: torch.Tensor, quality: float = 4.0):
    """The coding-time prior: integer z symbols -> (means, int32 table indexes)."""
    import inspect

    z = np.ascontiguousarray(z.numpy())
    if len(inspect.signature(entropy._prior).parameters) > 1:
        return entropy._prior(z, quality)
    return entropy._prior(z)


def random_z(shape, seed=0) -> torch.Tensor:
    """Integer hyper-latents: mostly small, some large, a few beyond the clamp."""
    g = torch.Generator().manual_seed(seed)
    z = torch.round(torch.randn(shape, generator=g) * 6)
    wild = torch.rand(shape, generator=g)
    z[wild < 0.02] = torch.randint(-40000, 40000, (int((wild < 0.02).sum()),), generator=g).float()
    z[wild > 0.995] = float(Z_LIMIT) * torch.sign(torch.randn(int((wild > 0.995).sum()), generator=g))
    return z.to(torch.int32)


# --------------------------------------------------------------------------- #
# (a) exactness of the prior
# --------------------------------------------------------------------------- #


def _prior_under(entropy, z, threads: int, mkldnn: bool, quality: float = 4.0):
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        assert torch.get_num_threads() == threads
        with torch.backends.mkldnn.flags(enabled=mkldnn):
            mean, index = prior(entropy, z, quality)
        return torch.as_tensor(mean).clone(), torch.as_tensor(index).clone()
    finally:
        torch.set_num_threads(previous)


def test_prior_bit_identical_across_threads_mkldnn_and_batching(entropy_models):
    for label, entropy in entropy_models:
        z = random_z((2, entropy.hyper_channels, 6, 6))
        for quality in ((1.0, 7.3) if label == "random" else (4.0,)):
            ref_mean, ref_index = _prior_under(entropy, z, 1, True, quality)
            for threads, mkldnn in ((2, True), (1, False), (2, False)):
                mean, index = _prior_under(entropy, z, threads, mkldnn, quality)
                assert torch.equal(mean, ref_mean) and torch.equal(index, ref_index), (label, threads, mkldnn)
            for i in range(z.shape[0]):  # alone vs inside a batch (different blocking)
                mean, index = _prior_under(entropy, z[i:i + 1], 2, False, quality)
                assert torch.equal(mean[0], ref_mean[i]) and torch.equal(index[0], ref_index[i]), label
            assert int(ref_index.min()) >= 0 and int(ref_index.max()) < entropy.y_tables.num_tables


def _conv_int(x: np.ndarray, w: np.ndarray, b: np.ndarray, layer) -> np.ndarray:
    """Independent int64 reference of a FixedPointConv (no floats anywhere)."""
    k, s, p = w.shape[-1], layer.stride, layer.padding
    batch, _, h, wd = x.shape
    if layer.transposed:  # out[o, iy*s - p + ky] += x[i, iy] * w[i, o, ky]
        full = np.zeros((batch, w.shape[1], (h - 1) * s + k + s - 1, (wd - 1) * s + k + s - 1), np.int64)
        for ky in range(k):
            for kx in range(k):
                full[:, :, ky:ky + (h - 1) * s + 1:s, kx:kx + (wd - 1) * s + 1:s] += np.einsum(
                    "io,bihw->bohw", w[:, :, ky, kx], x)
        out = full[:, :, p:p + h * s, p:p + wd * s]
    else:
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        out = np.zeros((batch, w.shape[0], h, wd), np.int64)
        for ky in range(k):
            for kx in range(k):
                out += np.einsum("oi,bihw->bohw", w[:, :, ky, kx], xp[:, :, ky:ky + h, kx:kx + wd])
    return out + b[None, :, None, None]


def _requantise_int(acc: np.ndarray, shift: int, low: int, high: int) -> np.ndarray:
    """floor(acc / 2**shift + 1/2) in integers, clamped."""
    rounded = (acc + (1 << (shift - 1))) >> shift if shift > 0 else acc << -shift
    return np.clip(rounded, low, high)


@contextlib.contextmanager
def spy_exact_layers(layers):
    """Record every ``forward_exact`` call of these fixed-point layers as
    (layer, x, weight, bias, accumulator) while the block runs; yields the list."""
    calls = []
    for layer in layers:
        def spy(x, w, b, _layer=layer, _inner=layer.forward_exact):
            out = _inner(x, w, b)
            calls.append((_layer, x.clone(), w.clone(), b.clone(), out.clone()))
            return out
        layer.forward_exact = spy
    try:
        yield calls
    finally:
        for layer in layers:
            layer.__dict__.pop("forward_exact", None)


def test_prior_convolutions_equal_int64_reference(entropy_models):
    """Every float64 accumulator of the exact path equals an int64 computation, and each
    layer's input is the requantised (integer, clamped) output of the one before."""
    for label, entropy in entropy_models:
        hs = entropy.hyper_synthesis
        with spy_exact_layers(hs.layers) as calls:
            prior(entropy, random_z((2, entropy.hyper_channels, 4, 4), seed=3))
        z = random_z((2, entropy.hyper_channels, 4, 4), seed=3)
        assert [c[0] for c in calls] == list(hs.layers)
        act_high = int(hs.act_max * 2**hs.act_bits)
        previous = None
        for i, (layer, x, w, b, out) in enumerate(calls):
            for t in (x, w, b, out):
                assert t.dtype == torch.float64 and torch.equal(t, torch.round(t))
            xi, wi, bi = (t.numpy().astype(np.int64) for t in (x, w, b))
            assert np.abs(wi).max() <= WEIGHT_LIMIT
            if i == 0:
                np.testing.assert_array_equal(xi, np.clip(z.numpy(), -Z_LIMIT, Z_LIMIT), err_msg=label)
            else:
                np.testing.assert_array_equal(
                    xi, _requantise_int(previous, calls[i - 1][0].out_bits - hs.act_bits, 0, act_high), err_msg=label)
            previous = out.numpy().astype(np.int64)
            np.testing.assert_array_equal(previous, _conv_int(xi, wi, bi, layer), err_msg=f"{label} layer {i}")


def accumulator_bounds(hs, params) -> list[int]:
    """Analytic bound on |accumulator| (and every partial sum) of each layer.

    A term is |weight| * |input| <= 2**15 * A_max, with A_max = Z_LIMIT for the first
    layer (integer z, clamped) and act_max * 2**act_bits after it (requantised, clamped).
    An output sums in_channels * taps terms plus the bias; taps = k*k for a convolution,
    ceil(k / stride)**2 for a transposed one (each output sees every stride-th tap).
    """
    bounds = []
    a_max = Z_LIMIT
    for i, layer in enumerate(hs.layers):
        w = layer.weight
        k = w.shape[-1]
        c_in = w.shape[0] if layer.transposed else w.shape[1]
        taps = math.ceil(k / layer.stride) ** 2 if layer.transposed else k * k
        bias = int(params[f"{i}.bias"].abs().max())
        bounds.append(c_in * taps * WEIGHT_LIMIT * a_max + bias)
        a_max = int(hs.act_max * 2**hs.act_bits)
    return bounds


def test_accumulators_provably_below_2_to_53(entropy_models):
    for label, entropy in entropy_models:
        hs, params = entropy.hyper_synthesis, entropy.prior_params
        bounds = accumulator_bounds(hs, params)
        # default sizes: 64*9*2**30, then 128*9*2**15*65280 twice (~2**39.2, ~2**41.2), plus biases
        assert all(b < EXACT for b in bounds), (label, [math.log2(b) for b in bounds])
        for i in range(len(hs.layers)):  # the weights are in the range the bound assumes
            assert int(params[f"{i}.weight"].abs().max()) <= WEIGHT_LIMIT
        # the requantisation floor(acc / 2**s + 0.5) is exact too: |acc| + 0.5 needs < 2**52
        assert max(bounds) < 2**52


@pytest.mark.parametrize("i", range(3))
def test_worst_case_accumulator_reaches_the_bound_exactly(entropy_models, i):
    """All inputs at their limit, all weights -2**15: the largest |accumulator| a layer can
    produce (bias 0) equals the analytic bound and is computed exactly in float64."""
    hs = entropy_models[0][1].hyper_synthesis
    layer = hs.layers[i]
    c_in = layer.weight.shape[0] if layer.transposed else layer.weight.shape[1]
    a_max = Z_LIMIT if i == 0 else int(hs.act_max * 2**hs.act_bits)
    x = torch.full((1, c_in, 5, 5), float(-a_max if i == 0 else a_max), dtype=torch.float64)
    weight = torch.full(layer.weight.shape, float(-WEIGHT_LIMIT), dtype=torch.float64)
    bias = torch.zeros(layer.weight.shape[1 if layer.transposed else 0], dtype=torch.float64)
    acc = layer.forward_exact(x, weight, bias)
    k = layer.weight.shape[-1]
    taps = math.ceil(k / layer.stride) ** 2 if layer.transposed else k * k
    expected = c_in * taps * WEIGHT_LIMIT * a_max
    assert int(acc.abs().max().item()) == expected < EXACT
    np.testing.assert_array_equal(acc.numpy().astype(np.int64),
                                  _conv_int(x.numpy().astype(np.int64), weight.numpy().astype(np.int64),
                                            bias.numpy().astype(np.int64), layer))


# --------------------------------------------------------------------------- #
# (b) cross-process determinism (benchmarks/determinism.py)
# --------------------------------------------------------------------------- #


def _run_bench(tmp_path, model_choice, extra: list[str]) -> dict:
    name, weights_dir = model_choice
    out = tmp_path / "summary.json"
    cmd = [sys.executable, str(BENCH), "--json", str(out)] + extra
    if name:
        cmd += ["--model", name, "--weights-dir", weights_dir]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert out.exists(), proc.stdout + proc.stderr
    summary = json.loads(out.read_text())
    summary["_stdout"] = proc.stdout
    summary["_returncode"] = proc.returncode
    return summary


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    return env


def _assert_deterministic(summary: dict, files: int) -> None:
    assert summary["files"] == files
    assert summary["symbol_mismatch_files"] == 0, summary["_stdout"]
    assert summary["decode_failures"] == 0, summary["_stdout"]
    assert summary["mismatched_symbols"] == 0 and summary["index_mismatches"] == 0
    assert summary["encoder_self_consistent"]
    assert summary["within_pixel_target"], summary["_stdout"]  # <= 1 level in <= 0.1 % of positions
    assert summary["max_pixel_diff"] <= det.PIXEL_LEVEL_TARGET
    assert summary["max_frac_positions"] <= det.PIXEL_FRACTION_TARGET
    assert summary["_returncode"] == 0


def test_cross_process(tmp_path, model_choice):
    """Encoder process (mkldnn on, 1 thread) vs decoder process (mkldnn off, 2 threads) on
    two Kodak images (their 256x256 centres, quality 8) when the data is present, else on two
    synthetic images."""
    if KODAK.is_dir():
        summary = _run_bench(tmp_path, model_choice, ["--kodak", str(KODAK), "--images", "2", "--crop", "256x256",
                                                      "--qualities", "8"])
        _assert_deterministic(summary, 2)
    else:
        summary = _run_bench(tmp_path, model_choice, ["--synthetic", "2", "--size", "96x128", "--qualities", "4"])
        _assert_deterministic(summary, 2)


# --------------------------------------------------------------------------- #
# (c) transform drift never changes a symbol
# --------------------------------------------------------------------------- #


def test_relative_noise_on_transforms_keeps_symbols(model_choice, monkeypatch):
    import neurocodec
    import neurocodec.zoo as zoo
    from neurocodec.codec import Codec

    name, weights_dir = model_choice
    if weights_dir:
        monkeypatch.setattr(zoo, "WEIGHTS_DIR", Path(weights_dir))
    codec = Codec(name)
    model = codec.model
    images = [det.synthetic_image(i, 96, 128) for i in range(2)]
    recorder = det.install_recorder()
    try:
        clean = [codec.compress_with_reconstruction(image, 4) for image in images]
        clean_decoded = [neurocodec.decompress(data) for data, _ in clean]
        for i, image in enumerate(images):
            undo = det.add_transform_noise(model, 1e-4, seed=10 + i, encoder=True)
            recorder.reset()
            try:
                data, recon = codec.compress_with_reconstruction(image, 4)
            finally:
                undo()
            encoded = list(recorder.encoded)
            undo = det.add_transform_noise(model, 1e-4, seed=20 + i, encoder=False)
            recorder.reset()
            try:
                decoded = neurocodec.decompress(data)
            finally:
                undo()
            assert len(recorder.decoded) == len(encoded) == 2
            for (a, ia), (b, ib) in zip(encoded, recorder.decoded):
                np.testing.assert_array_equal(a, b)
                np.testing.assert_array_equal(ia, ib)
            # the noise was real: pixels moved (a little), relative to the clean decode
            diff = np.abs(decoded.astype(int) - recon.astype(int))
            assert diff.max() <= 2 and np.count_nonzero(diff) <= 0.2 * diff.size
            assert np.count_nonzero(decoded != clean_decoded[i]) > 0
        # the patches are gone: the clean stream decodes as before
        assert np.array_equal(neurocodec.decompress(clean[0][0]), clean[0][1])
    finally:
        det.uninstall_recorder()


def test_float_prior_control_is_the_float_network_and_can_be_undone():
    """``use_float_prior(model, "plain")`` (the control of must-show 2) runs the hyper-synthesis
    without grids (``fake_quant = False``); ``use_exact_prior`` restores the exact path."""
    from neurocodec.models import build_model

    torch.manual_seed(0)
    model = build_model("block-hyperprior", refine_blocks=0, pixel_hidden=0, hyper_channels=8, hyper_hidden=16).eval()
    model.entropy_model.update_tables(model.log_gain.detach())
    hs = model.entropy_model.hyper_synthesis
    z = np.random.default_rng(0).integers(-3, 4, (1, 8, 2, 2)).astype(np.int32)
    exact_mean, exact_index = model.entropy_model._prior(z, 4.0)
    det.use_float_prior(model, "plain")
    assert not hs.fake_quant
    mean, index = model.entropy_model._prior(z, 4.0)
    with torch.no_grad():
        expected_mean, expected_index = hs(torch.from_numpy(z).float(), model.log2_gains(torch.tensor([4.0])))
    assert torch.equal(mean, torch.round(expected_mean.double()).to(torch.int64))
    np.testing.assert_array_equal(index, expected_index.to(torch.int64).numpy())
    det.use_exact_prior(model)
    assert hs.fake_quant
    mean, index = model.entropy_model._prior(z, 4.0)
    assert torch.equal(mean, exact_mean) and np.array_equal(index, exact_index)
