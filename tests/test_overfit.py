"""The overfitted codec (issue 22), architecture ``overfit``.

* the stepwise range coder (one stream, decoded a step at a time) round-trips any int32
  symbols, escapes included, for any split into steps;
* the wavefront decoder of the latent pyramid equals a naive one-position-at-a-time
  reference decoder, and both return the encoder's latents, for random pyramids and random
  integer context models;
* per-image parameters round-trip; out-of-range side information is a FormatError;
* exact round trip of a fitted image (the encoder's reconstruction is the decoder's, bit
  for bit), through the model and through ``Codec`` with a weight file of the architecture;
* determinism: the same bytes and decoded latents with 1 and 2 threads, mkldnn on or off;
* hostile input: truncated or mutated segments and streams raise only FormatError, quickly.

* a golden stream of the shipped ``overfit-cc`` (tests/golden/overfit-cc-*) decodes to the
  same symbols, bit for bit, and the same pixels.

Small images (at most 48 x 40) and a handful of iterations keep the file fast.

The golden stream was written once by ``python tests/test_overfit.py --write-golden`` (which
refuses to overwrite it).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from neurocodec.coding.stepwise import StepwiseDecoder, encode_steps  # noqa: E402
from neurocodec.entropy.arm import CONTEXT_SIZE, WEIGHT_LIMIT, arm_exact  # noqa: E402
from neurocodec.entropy.laplace import NUM_TABLES  # noqa: E402
from neurocodec.entropy.parameters import decode_parameters, encode_parameters  # noqa: E402
from neurocodec.entropy.wavefront import (  # noqa: E402
    decode_pyramid, decode_pyramid_sequential, encode_pyramid, make_schedule,
)
from neurocodec.errors import FormatError  # noqa: E402
from neurocodec.models import build_model  # noqa: E402
from neurocodec.transforms.pyramid import level_shapes  # noqa: E402

SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def model():
    m = build_model("overfit")
    m.update_tables()
    return m


@pytest.fixture(scope="module")
def tables(model):
    return model.entropy_model.tables


def image(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """A smooth image with some texture, float32 (1, 3, H, W) in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    base = torch.stack([0.3 + 0.4 * xx, 0.5 * yy + 0.2, 0.6 - 0.3 * xx * yy])
    return (base + 0.05 * torch.rand(3, height, width, generator=g)).clamp(0, 1)[None]


@pytest.fixture(scope="module")
def fitted(model):
    """A 40 x 48 image fitted for 12 iterations at quality 4, and its coded form."""
    x = image(40, 48)
    fit = model.fit(x, 4.0, 12)
    segments, decoded = model.code_latents(fit, 4.0)
    return x, fit, segments, decoded


def random_arm(rng: np.random.Generator, hidden: int = 16, spread: int = 300) -> list[np.ndarray]:
    """Random integer ARM parameters (w0, b0, w1, b1, w2, b2) that give varied means and scales."""
    shapes = [(hidden, CONTEXT_SIZE), (hidden,), (hidden, hidden), (hidden,), (2, hidden), (2,)]
    arm = [rng.integers(-spread, spread, size=s).astype(np.int64) for s in shapes]
    arm[5][1] += 16 * 256  # scale index about 16 at step_bits 8
    return arm


# --------------------------------------------------------------------------- #
# Coding layer: the stepwise range coder
# --------------------------------------------------------------------------- #


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(0, 300), steps=st.integers(1, 12))
def test_stepwise_coder_round_trip(tables, seed, n, steps):
    rng = np.random.default_rng(seed)
    symbols = rng.integers(-40, 40, size=n)
    if n:
        symbols[rng.integers(0, n, size=max(1, n // 20))] = rng.integers(-2**31, 2**31 - 1, size=max(1, n // 20))
    indexes = rng.integers(0, NUM_TABLES, size=n)
    cuts = np.sort(rng.integers(0, n + 1, size=steps - 1))
    bounds = np.concatenate([[0], cuts, [n]])
    data = encode_steps(symbols, indexes, bounds, tables)
    decoder = StepwiseDecoder(data, tables)
    out = np.concatenate([decoder.decode(indexes[a:b]) for a, b in zip(bounds[:-1], bounds[1:])] or [[]])
    decoder.finish()
    assert np.array_equal(out.astype(np.int64), symbols)


def test_stepwise_decoder_rejects_garbage_without_hanging(tables):
    rng = np.random.default_rng(1)
    indexes = rng.integers(0, NUM_TABLES - 1, size=500)
    for trial in range(20):
        data = rng.integers(0, 256, size=int(rng.integers(0, 64))).astype(np.uint8).tobytes()
        start = time.perf_counter()
        try:
            decoder = StepwiseDecoder(data, tables)
            for a in range(0, 500, 50):
                decoder.decode(indexes[a:a + 50])
            decoder.finish()
        except FormatError:
            pass
        assert time.perf_counter() - start < 2.0


# --------------------------------------------------------------------------- #
# Entropy layer: the exact ARM and wavefront decoding
# --------------------------------------------------------------------------- #


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), height=st.integers(1, 11), width=st.integers(1, 13),
       levels=st.integers(1, 4), step_bits=st.integers(4, 10))
def test_wavefront_decoder_equals_sequential_reference(tables, seed, height, width, levels, step_bits):
    rng = np.random.default_rng(seed)
    shapes = level_shapes(height, width, levels)
    latents = [rng.integers(-6, 7, size=s).astype(np.int64) for s in shapes]
    latents[0][0, 0] = 5000  # an escape
    arm = random_arm(rng)
    schedule = make_schedule(shapes)
    data = encode_pyramid(latents, schedule, arm, step_bits, tables)
    fast = decode_pyramid(data, schedule, arm, step_bits, tables)
    slow = decode_pyramid_sequential(data, schedule, arm, step_bits, tables)
    for a, b, c in zip(latents, fast, slow):
        assert np.array_equal(a, b) and np.array_equal(a, c)


def test_schedule_steps_only_depend_on_earlier_steps():
    schedule = make_schedule(level_shapes(9, 14, 3))
    step_of = np.full(schedule.buffer_size, -1)
    for s in range(schedule.bounds.size - 1):
        step_of[schedule.positions[schedule.bounds[s]:schedule.bounds[s + 1]]] = s
    for s in range(schedule.bounds.size - 1):
        neighbours = schedule.neighbours(int(schedule.bounds[s]), int(schedule.bounds[s + 1]))
        assert np.all(step_of[neighbours] < s)  # border entries are -1: never decoded, always zero
    assert schedule.bounds.size - 1 == 14 + 3 * (9 - 1)  # one step per front of the finest level


def test_arm_exact_is_batch_independent_and_integer():
    rng = np.random.default_rng(3)
    arm = random_arm(rng, spread=WEIGHT_LIMIT)
    context = rng.integers(-2**11, 2**11, size=(257, CONTEXT_SIZE))
    mean, index = arm_exact(context, arm, 12)
    parts = [arm_exact(context[a:a + 16], arm, 12) for a in range(0, 257, 16)]
    assert np.array_equal(mean, np.concatenate([p[0] for p in parts]))
    assert np.array_equal(index, np.concatenate([p[1] for p in parts]))
    # the same computation in int64 (exact by construction)
    w0, b0, w1, b1, w2, b2 = arm
    h = np.clip((context @ w0.T + b0) * 2**(8 - 12) + 0.5, 0, None)
    assert np.all(np.abs(context @ w0.T + b0) < 2**53)
    assert mean.dtype == np.int64 and index.min() >= 0


def test_parameters_round_trip_and_bad_side_information(model, tables):
    rng = np.random.default_rng(5)
    shapes = model.parameter_shapes()
    tensors = [rng.integers(-200, 200, size=s) for s in shapes]
    data = encode_parameters([7, 9, 11], tensors, tables)
    steps, decoded = decode_parameters(data, shapes, 3, tables)
    assert steps == [7, 9, 11] and all(np.array_equal(a, b) for a, b in zip(tensors, decoded))
    bad = encode_steps(np.array([40, 1]), np.array([NUM_TABLES - 1, NUM_TABLES - 1]), [0, 2], tables)
    with pytest.raises(FormatError):
        decode_parameters(bad, [(1,)], 1, tables)


# --------------------------------------------------------------------------- #
# The model: fitting, exact round trip, determinism, hostile input
# --------------------------------------------------------------------------- #


def test_exact_round_trip(model, fitted):
    x, fit, segments, decoded = fitted
    assert len(segments) == model.segments_per_tile == 2
    promised = model.reconstruct(decoded)
    assert torch.equal(model.decompress(segments, tuple(x.shape[-2:])), promised)
    again = model.decode_latents(segments, tuple(x.shape[-2:]))
    assert again.step_bits == decoded.step_bits
    assert all(np.array_equal(a, b) for a, b in zip(again.levels, decoded.levels))


def test_fit_lowers_the_loss_and_is_deterministic(model):
    x = image(24, 32, seed=2)
    seen = []
    model.fit(x, 4.0, 30, progress=lambda i, n, bpp, psnr: seen.append((bpp, psnr)))
    assert seen[-1][0] < seen[0][0] and seen[-1][1] > seen[0][1]
    a = model.code_latents(model.fit(x, 4.0, 5, seed=1), 4.0)[0]
    b = model.code_latents(model.fit(x, 4.0, 5, seed=1), 4.0)[0]
    assert a == b


def test_soft_round_between_identity_and_rounding():
    from neurocodec.models.overfit import soft_round

    x = torch.linspace(-3.2, 3.2, 641, dtype=torch.float64)
    assert torch.allclose(soft_round(torch.arange(-3.0, 4.0, dtype=torch.float64), 0.3), torch.arange(-3.0, 4.0,
                                                                                                     dtype=torch.float64))
    assert torch.max(torch.abs(soft_round(x, 0.01) - torch.round(x))[torch.abs(x - x.round()) < 0.45]) < 1e-3
    assert torch.max(torch.abs(soft_round(x, 50.0) - x)) < 1e-3
    assert torch.all(torch.diff(soft_round(x, 0.2)) >= 0)


def test_fit_options_schedule(model):
    """Soft rounding, a warm-up over candidates and per-module learning rates: every
    iteration of the budget reported once, deterministic, and bad options refused."""
    from neurocodec.models.overfit import FitOptions

    x = image(16, 20, seed=9)
    options = FitOptions(quantiser="softround", noise="gaussian", noise_scale=(0.25, 0.1), ste_temperature=0.3,
                         warmup_candidates=2, warmup_iterations=3, arm_lr_scale=2.0)
    seen = []
    fit = model.fit(x, 4.0, 12, options=options, progress=lambda *a: seen.append(a[:2]))
    assert seen == [(i, 12) for i in range(1, 13)]
    again = model.fit(x, 4.0, 12, options=options)
    assert model.code_latents(fit, 4.0)[0] == model.code_latents(again, 4.0)[0]
    with pytest.raises(ValueError):
        FitOptions(quantiser="round")
    with pytest.raises(ValueError):
        FitOptions(noise="laplace")


@pytest.mark.parametrize("threads,mkldnn", [(2, True), (1, False), (2, False)])
def test_symbols_identical_across_threads_and_mkldnn(model, fitted, threads, mkldnn):
    x, _, segments, decoded = fitted
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.backends.mkldnn.flags(enabled=mkldnn):
            again, _ = model.code_latents(decoded, 4.0)
            levels = model.decode_latents(segments, tuple(x.shape[-2:])).levels
    finally:
        torch.set_num_threads(previous)
    assert again == segments
    assert all(np.array_equal(a, b) for a, b in zip(levels, decoded.levels))


def test_only_the_cpu_coder(model, fitted):
    x, fit, segments, _ = fitted
    with pytest.raises(ValueError):
        model.code_latents(fit, 4.0, coder="lanes")
    with pytest.raises(FormatError):
        model.decompress(segments, tuple(x.shape[-2:]), coder="lanes")


def test_hostile_segments_raise_format_error_quickly(model, fitted):
    x, _, segments, _ = fitted
    shape = tuple(x.shape[-2:])
    rng = np.random.default_rng(11)
    cases = [[segments[0]], segments + [b""], [segments[0][:-4], segments[1]], [segments[0], segments[1][:-4]],
             [b"", b""], [segments[0], segments[1] + b"\0\0\0\0"], [segments[0][:3], segments[1]]]
    for _ in range(25):
        which = int(rng.integers(0, 2))
        data = bytearray(segments[which])
        if data:
            data[int(rng.integers(0, len(data)))] ^= 1 << int(rng.integers(0, 8))
        mutated = list(segments)
        mutated[which] = bytes(data)
        cases.append(mutated)
    for case in cases:
        start = time.perf_counter()
        try:
            out = model.decompress(case, shape)
            assert out.shape == (1, 3) + shape  # undetectable corruption: garbage, but an image
        except FormatError:
            pass
        assert time.perf_counter() - start < 5.0


def test_through_codec_with_a_weight_file(model, tmp_path):
    """``Codec(weights=...)``: ``effort`` is the iteration count; streams are exact and
    self-contained; truncated or corrupted streams raise FormatError subclasses."""
    from neurocodec import Codec
    from neurocodec.zoo import export_weights

    path = tmp_path / "overfit-cc.safetensors"
    export_weights(model, path, name="overfit-cc", description="test")
    codec = Codec(weights=str(path), quality=3.0)
    array = (image(21, 30, seed=4)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    data, recon = codec.compress_with_reconstruction(array, effort=6)
    assert np.array_equal(codec.decompress(data), recon)
    for bad in (data[:-1], data[:len(data) // 2], data[:-6] + bytes([data[-6] ^ 4]) + data[-5:]):
        with pytest.raises(FormatError):
            codec.decompress(bad)


def test_cross_process_decoding(model, fitted, tmp_path):
    """A decoder in another process (2 threads, mkldnn off) derives the same latents and
    parameters as the encoder here (whatever the thread count, the prior path is integer)."""
    import hashlib
    import subprocess
    import sys

    x, _, segments, decoded = fitted
    for i, segment in enumerate(segments):
        (tmp_path / f"s{i}").write_bytes(segment)
    script = f"""
import hashlib, numpy as np, torch
torch.set_num_threads(2)
from neurocodec.models import build_model
m = build_model("overfit"); m.update_tables()
segments = [open({str(tmp_path / 's0')!r}, "rb").read(), open({str(tmp_path / 's1')!r}, "rb").read()]
with torch.backends.mkldnn.flags(enabled=False):
    d = m.decode_latents(segments, {tuple(x.shape[-2:])!r})
h = hashlib.sha256()
for a in d.levels + d.integers:
    h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
print(d.step_bits, h.hexdigest())
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    h = hashlib.sha256()
    for a in decoded.levels + decoded.integers:
        h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
    assert out.stdout.split() == [*str(decoded.step_bits).split(), h.hexdigest()]


# --------------------------------------------------------------------------- #
# Progress of a fit: model -> Codec -> CLI bar; Ctrl-C
# --------------------------------------------------------------------------- #


def _uint8(x: torch.Tensor) -> np.ndarray:
    return (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def test_codec_reports_every_iteration_of_the_fit():
    """``Codec.compress(step_progress=...)`` reaches the fit of the shipped ``overfit-cc``: one
    call per iteration with finite estimates, and the stream is the one written without it."""
    from neurocodec import Codec

    codec = Codec("overfit-cc", quality=4.0)
    array = _uint8(image(20, 28, seed=6))
    seen = []
    data = codec.compress(array, effort=4, step_progress=lambda *a: seen.append(a))
    assert [(d, t) for d, t, _, _ in seen] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert all(np.isfinite(b) and b > 0 and np.isfinite(p) for _, _, b, p in seen)
    assert codec.compress(array, effort=4) == data


def _png(path, x: torch.Tensor):
    from PIL import Image

    Image.fromarray(_uint8(x)).save(path)
    return path


@pytest.mark.parametrize("flags,shown", [((), True), (("--quiet",), False), (("--json",), False)])
def test_cli_shows_a_bar_of_iterations(tmp_path, monkeypatch, capsys, flags, shown):
    """``neurocodec encode --model overfit-cc`` on a terminal: a bar of the fit's iterations
    with bpp and PSNR on stderr; none with --quiet or --json."""
    from neurocodec.cli import _commands, main

    monkeypatch.setattr(_commands, "_is_terminal", lambda stream: True)
    src = _png(tmp_path / "img.png", image(16, 24, seed=7))
    out = tmp_path / "img.ncdc"
    assert main(["encode", str(src), "-o", str(out), "--model", "overfit-cc", "--effort", "3",
                 "--threads", "1", *flags]) == 0
    err = capsys.readouterr().err
    assert ("encode (fit)" in err and "3/3" in err and " bpp, " in err and " dB" in err) == shown, err
    assert out.read_bytes()[:4] == b"NCDC"


def test_ctrl_c_during_the_fit_leaves_nothing_written(tmp_path, monkeypatch):
    """KeyboardInterrupt in the middle of a fit (raised from the bar's callback, where Ctrl-C
    lands in practice): the exit status EXIT_INTERRUPTED, no output file, no temporary file."""
    from neurocodec.cli import EXIT_INTERRUPTED, _commands, main

    monkeypatch.setattr(_commands, "_is_terminal", lambda stream: True)
    original = _commands._Progress.steps
    calls = []

    def interrupted(self, done, total, bpp, psnr):
        original(self, done, total, bpp, psnr)
        calls.append(done)
        if done == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(_commands._Progress, "steps", interrupted)
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    src = _png(tmp_path / "in" / "img.png", image(16, 24, seed=8))
    out = tmp_path / "out"
    assert main(["encode", str(src), "-o", str(out / "img.ncdc"), "--model", "overfit-cc", "--effort", "50",
                 "--threads", "1"]) == EXIT_INTERRUPTED
    assert calls == [1, 2]
    assert list(out.iterdir()) == []


# --------------------------------------------------------------------------- #
# Golden stream of the shipped overfit-cc
# --------------------------------------------------------------------------- #

GOLDEN = Path(__file__).resolve().parent / "golden"
GOLDEN_NAME = "overfit-cc-fd98cda6"  # model and the first 8 hex digits of its released weight hash
GOLDEN_EFFORT, GOLDEN_QUALITY = 40, 4.0


def golden_source() -> np.ndarray:
    """The golden stream's 32 x 24 image, uint8 (24, 32, 3), from numpy arithmetic alone."""
    yy, xx = np.mgrid[0:24, 0:32].astype(np.float64)
    r = 120 + 90 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    g = 40 + 6 * xx + 2 * yy
    b = 128 + 60 * ((xx // 4 + yy // 4) % 2) - 30 * np.cos((xx + yy) / 3.0)
    return np.clip(np.round(np.stack([r, g, b], axis=-1)), 0, 255).astype(np.uint8)


def symbol_digest(decoded) -> str:
    """SHA-256 of everything a decoder derives from the segments: step exponents, integer
    parameters and latent pyramid (int64, C order)."""
    h = hashlib.sha256(np.asarray(decoded.step_bits, dtype=np.int64).tobytes())
    for a in decoded.integers + decoded.levels:
        h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
    return h.hexdigest()


def _write_golden() -> None:
    import neurocodec
    from neurocodec.format import unpack

    paths = [GOLDEN / f"{GOLDEN_NAME}{suffix}" for suffix in (".ncdc", ".npy", ".json")]
    if any(p.exists() for p in paths):
        sys.exit(f"refusing to overwrite {', '.join(str(p) for p in paths if p.exists())}")
    torch.set_num_threads(1)
    codec = neurocodec.Codec("overfit-cc", quality=GOLDEN_QUALITY)
    assert codec.info.weight_hash.hex().startswith(GOLDEN_NAME.rsplit("-", 1)[1])
    data = codec.compress(golden_source(), effort=GOLDEN_EFFORT)
    pixels = neurocodec.decompress(data)
    header, segments = unpack(data)
    decoded = codec.model.decode_latents(segments, (header.height, header.width))
    paths[0].write_bytes(data)
    np.save(paths[1], pixels)
    paths[2].write_text(json.dumps(dict(
        source="tests/test_overfit.py golden_source() (32 x 24)", model="overfit-cc",
        weight_hash=codec.info.weight_hash.hex(), quality=GOLDEN_QUALITY, effort=GOLDEN_EFFORT,
        bytes=len(data), symbols_sha256=symbol_digest(decoded),
        written_by="python tests/test_overfit.py --write-golden"), indent=1) + "\n")
    print("wrote", *paths)


def test_golden_stream_decodes_bit_for_bit():
    """The golden stream decodes, with the shipped weights, to the symbols it was written
    with (step exponents, integer parameters and latents: bit for bit, the format's
    contract) and to its pixels. The pixels come from the float synthesis: equal here; on
    another machine a pixel may round one level differently (docs/determinism.md), never a
    symbol."""
    import neurocodec
    from neurocodec.format import read_header, unpack

    data = (GOLDEN / f"{GOLDEN_NAME}.ncdc").read_bytes()
    meta = json.loads((GOLDEN / f"{GOLDEN_NAME}.json").read_text())
    header, segments = unpack(data)
    assert (header.model_id, header.weight_hash.hex()) == ("overfit-cc", meta["weight_hash"])
    assert (header.width, header.height, len(segments)) == (32, 24, 2)
    assert read_header(data).quality == meta["quality"]
    codec = neurocodec.Codec.for_stream(data)
    assert symbol_digest(codec.model.decode_latents(segments, (24, 32))) == meta["symbols_sha256"]
    pixels = neurocodec.decompress(data)
    expected = np.load(GOLDEN / f"{GOLDEN_NAME}.npy")
    assert pixels.shape == expected.shape == (24, 32, 3)
    diff = np.abs(pixels.astype(int) - expected.astype(int))
    assert diff.max() <= 1 and np.count_nonzero(diff) <= 2, diff.max()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write-golden"]:
        _write_golden()
    else:
        print(__doc__)
