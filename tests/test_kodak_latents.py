"""Coder efficiency on real latents: Kodak images through the shipped default model.

Skipped when ../shared/data/kodak is absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

KODAK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kodak"
pytestmark = pytest.mark.skipif(not KODAK.is_dir(), reason=f"Kodak images not found at {KODAK}")


@pytest.fixture(scope="module")
def latents():
    import torch
    from PIL import Image

    from neurocodec.codec import Codec

    codec = Codec()
    out = []
    for name, quality in (("kodim01.png", 2.0), ("kodim08.png", 5.0), ("kodim23.png", 8.0)):
        array = np.asarray(Image.open(KODAK / name).convert("RGB"))
        x, _ = codec._to_tensor(array)
        q = torch.tensor([quality])
        gain, _ = codec.model.gains(q)
        with torch.inference_mode():
            symbols = codec.model.entropy_model.quantise(codec.model.analysis(x) * gain, quality)
        out.append(symbols)
    return codec.model.entropy_model, out


def test_real_bytes_within_half_percent_of_ideal(latents):
    from neurocodec.coding import get_backend

    entropy, symbol_sets = latents
    backend = get_backend("cpu")
    real = ideal = 0.0
    for s in symbol_sets:
        data = backend.encode(s.y_symbols, s.y_indexes, entropy.y_tables)
        real += 8 * len(data)
        ideal += entropy.y_tables.ideal_bits(s.y_symbols, s.y_indexes)
    assert real <= ideal * 1.005 + 64, (real, ideal)
    assert real >= ideal * 0.999 - 64  # a coder cannot beat the information content


def test_latents_decode_to_same_symbols(latents):
    from neurocodec.coding import get_backend

    entropy, symbol_sets = latents
    backend = get_backend("cpu")
    for s in symbol_sets:
        data = backend.encode(s.y_symbols, s.y_indexes, entropy.y_tables)
        decoded = backend.decode(data, s.y_indexes, entropy.y_tables)
        np.testing.assert_array_equal(decoded.reshape(s.y_symbols.shape), s.y_symbols)
