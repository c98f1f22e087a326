"""Hostile input for the whole decoder: only FormatError escapes ``neurocodec.decompress``.

Mutated real streams (byte flips, truncation, extension, splices, segment edits, header
field edits with both CRC32s recomputed, so the damage reaches the entropy decoder and
the networks) must decode to an image of the declared size or raise a FormatError
subclass, quickly. Streams declaring huge images must be refused before anything is
allocated, under limits the caller can configure.

Most cases use a small randomly initialised model of the shipped architecture (same code
paths, millisecond decodes); a few hundred use the shipped default model when present.
The mutation engine is shared with ``benchmarks/fuzz_decoder.py`` (the 100,000-case run).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("torch")

import neurocodec  # noqa: E402
from neurocodec.errors import FormatError, LimitExceededError  # noqa: E402
from neurocodec.format import Limits, pack, unpack  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("fuzz_decoder", ROOT / "benchmarks" / "fuzz_decoder.py")
fuzz = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("fuzz_decoder", fuzz)
_spec.loader.exec_module(fuzz)

# Cases decode under this limit, so a header edit cannot make a case legitimately slow.
CASE_LIMITS = Limits(max_pixels=2**18)
CASE_SECONDS = 5.0  # generous: the machine is shared with training (typical: < 0.1 s)
ALLOC_BYTES = 1 << 20  # what refusing a stream may allocate (Python/numpy, via tracemalloc)


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    """A zoo holding the tiny fuzzing model and (symlinked) the shipped models."""
    import neurocodec.zoo as zoo

    directory = tmp_path_factory.mktemp("zoo")
    original = zoo.WEIGHTS_DIR
    fuzz.export_tiny_model(directory)
    fuzz.use_weights_dir(directory)
    yield directory
    zoo.WEIGHTS_DIR = original


def _shipped_available() -> bool:
    import neurocodec.zoo as zoo

    return (Path(zoo.WEIGHTS_DIR) / f"{zoo.DEFAULT_MODEL}.safetensors").exists()


@pytest.fixture(scope="module")
def tiny_seeds(zoo_dir):
    return fuzz.seed_streams(fuzz.TINY_NAME)


@pytest.fixture(scope="module")
def shipped_seeds(zoo_dir):
    if not _shipped_available():
        pytest.skip("the shipped default model is not in this checkout")
    try:
        return fuzz.seed_streams(None, fuzz.SEED_SPECS[:5])
    except Exception as exc:  # noqa: BLE001 - stale weights are tests/test_codec.py's to report
        pytest.skip(f"the shipped default model does not load or code with this checkout: {exc}")


def check_case(data: bytes, limits: Limits = CASE_LIMITS) -> "fuzz.Outcome":
    outcome = fuzz.decode_case(data, limits)
    assert not outcome.kind.startswith("CRASH"), outcome.message
    assert outcome.shape_ok, outcome.message
    assert outcome.seconds < CASE_SECONDS, f"decode took {outcome.seconds:.1f} s"
    return outcome


# --------------------------------------------------------------------------- #
# Seeds and the mutation engine
# --------------------------------------------------------------------------- #


def test_seed_streams_decode(zoo_dir, tiny_seeds):
    from neurocodec.codec import Codec

    codec = Codec(fuzz.TINY_NAME)
    for i, (h, w, q) in enumerate(fuzz.SEED_SPECS):
        data, recon = codec.compress_with_reconstruction(fuzz.seed_image(h, w, i), q)
        assert data == tiny_seeds[i]
        np.testing.assert_array_equal(neurocodec.decompress(data), recon)
    header, segments = unpack(tiny_seeds[-1])
    assert header.tile_height and len(segments) == 2 * header.tile_grid[0] * header.tile_grid[1]


def test_fix_crcs_reaches_past_the_checksums(tiny_seeds):
    data = bytearray(tiny_seeds[2])
    data[-8] ^= 0x55  # inside the y segment
    with pytest.raises(FormatError, match="CRC"):
        unpack(bytes(data))
    unpack(fuzz.fix_crcs(data))  # valid container again; the damage is in the payload


def test_mutations_reach_the_entropy_decoder_and_networks(zoo_dir, tiny_seeds):
    """The mix is not all checksum errors: many cases get to the coder, some decode."""
    kinds, coder_errors = {}, 0
    for i in range(400):
        rng = np.random.default_rng([7, i])
        data = fuzz.Mutator(lambda lo, hi: int(rng.integers(lo, hi + 1))).mutate(tiny_seeds)
        outcome = check_case(data)
        kinds[outcome.kind] = kinds.get(outcome.kind, 0) + 1
        coder_errors += "corrupt coded data" in outcome.message or "does not decode" in outcome.message
    assert kinds.get("ok", 0) >= 5, kinds
    assert coder_errors >= 20, (coder_errors, kinds)


# --------------------------------------------------------------------------- #
# Fuzzing (hypothesis): a few thousand cases
# --------------------------------------------------------------------------- #


def _mutated(seed: int, seeds: list[bytes]) -> bytes:
    """Case ``seed``: hypothesis draws (and shrinks) one integer; the mutation engine's
    many small choices come from a generator seeded with it (cheap per case). The same
    stream is ``benchmarks/fuzz_decoder.py``'s engine with ``np.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    return fuzz.Mutator(lambda lo, hi: int(rng.integers(lo, hi + 1))).mutate(seeds)


@settings(max_examples=2500, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2**64 - 1))
def test_fuzz_tiny_model(zoo_dir, tiny_seeds, seed):
    check_case(_mutated(seed, tiny_seeds))


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2**64 - 1))
def test_fuzz_shipped_model(zoo_dir, shipped_seeds, seed):
    check_case(_mutated(seed, shipped_seeds))


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_fuzz_garbage_segments_with_valid_crcs(zoo_dir, tiny_seeds, data):
    """Every segment replaced by random whole 32-bit words: straight into constriction."""
    header, segments = unpack(data.draw(st.sampled_from(tiny_seeds)))
    new = [data.draw(st.binary(max_size=64)) for _ in segments]
    new = [s[:len(s) - len(s) % 4] if data.draw(st.booleans()) else s for s in new]
    check_case(pack(header, new))


# --------------------------------------------------------------------------- #
# Declared sizes: refused before allocating, limits configurable
# --------------------------------------------------------------------------- #


def _with_header(stream: bytes, **fields) -> bytes:
    header, segments = unpack(stream, Limits(max_pixels=2**64))
    return pack(dataclasses.replace(header, **fields), segments)


def _refused(data: bytes, error=FormatError, limits=None):
    """Decode ``data`` expecting ``error``; returns (exception, peak traced bytes, seconds)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    t0 = time.perf_counter()
    try:
        with pytest.raises(error) as info:
            neurocodec.decompress(data, limits=limits)
        return info.value, tracemalloc.get_traced_memory()[1], time.perf_counter() - t0
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("tile", [0, 1024])
def test_huge_image_refused_before_allocating(zoo_dir, tiny_seeds, tile):
    data = _with_header(tiny_seeds[2], height=60000, width=60000, tile_height=tile, tile_width=tile)
    exc, peak, seconds = _refused(data, LimitExceededError)
    assert "60000" in str(exc) and "max_pixels" in str(exc)
    assert peak < ALLOC_BYTES + len(data), peak
    assert seconds < 1.0


def test_limits_are_configurable(zoo_dir, tiny_seeds):
    stream = tiny_seeds[3]  # 40 x 56
    assert neurocodec.decompress(stream, limits=Limits(max_pixels=40 * 56)).shape == (40, 56, 3)
    with pytest.raises(LimitExceededError, match="max_pixels"):
        neurocodec.decompress(stream, limits=Limits(max_pixels=40 * 56 - 1))
    with pytest.raises(LimitExceededError):
        neurocodec.decompress(stream, limits=Limits(max_bytes=len(stream) - 1))
    # Raising the limit lets a 60000x60000 header past the container; the decoder still
    # refuses it (2 segments cannot hold 3600 tiles) before sizing anything by it.
    data = _with_header(stream, height=60000, width=60000, tile_height=1024, tile_width=1024)
    exc, peak, seconds = _refused(data, FormatError, Limits(max_pixels=60000 * 60000))
    assert "segments" in str(exc)
    assert peak < ALLOC_BYTES + len(data) and seconds < 1.0


def test_many_tiny_tiles_are_not_enumerated(zoo_dir, tiny_seeds):
    """Regression: the tile list used to be built before the segment count was checked, so
    a 2048x2048 header with 1x1 tiles took ~90 s and 430 MB before failing."""
    for tile in (1, 16, 32):
        data = _with_header(tiny_seeds[2], height=2048, width=2048, tile_height=tile, tile_width=tile)
        exc, peak, seconds = _refused(data, FormatError)
        assert peak < ALLOC_BYTES + len(data) and seconds < 1.0, (tile, peak, seconds)
    data = _with_header(tiny_seeds[2], height=16384, width=16384, tile_height=32, tile_width=32)
    exc, peak, seconds = _refused(data, FormatError)
    assert "262144 tile" in str(exc) and peak < ALLOC_BYTES + len(data)


@pytest.mark.parametrize("size,tile", [((4096, 4096), 0), ((2049, 64), 0), ((16000, 16000), 0),
                                       ((8192, 8192), 4096)])
def test_oversized_tiles_refused_before_allocating(zoo_dir, tiny_seeds, size, tile):
    """Regression: an untiled (or huge-tiled) image within max_pixels used to be decoded in
    one piece, with memory growing with the declared size (~20 bytes per pixel and more in
    the prior): tiles are at most 2048x2048, as the encoder writes them."""
    h, w = size
    data = _with_header(tiny_seeds[2], height=h, width=w, tile_height=tile, tile_width=tile)
    exc, peak, seconds = _refused(data, LimitExceededError)
    assert "2048" in str(exc)
    assert peak < ALLOC_BYTES + len(data) and seconds < 1.0


def test_largest_untiled_image_is_accepted(zoo_dir, tiny_seeds):
    """A 2048-wide untiled stream passes the tiling checks (its garbage payload then fails)."""
    data = _with_header(tiny_seeds[2], height=32, width=2048)
    outcome = check_case(data, Limits())
    assert "accepts tiles" not in outcome.message and "needs tiles" not in outcome.message
