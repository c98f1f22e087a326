"""Every shipped model is a working codec, and every family shipped on the default is the
default plus its additions (issue 19).

* Each shipped model (except the per-image codec, which fits at encode time) round-trips a
  small image exactly at the lowest and highest quality, and spends more bits for more
  quality there.
* The families trained with ``--fresh-only`` (their card says so) carry every float tensor of
  the default bit for bit: training touched only what the family adds. The integer prior
  and tables are rebuilt at export from the same float parameters, so they are not compared.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from neurocodec.codec import Codec, decompress  # noqa: E402
from neurocodec.models import ARCHITECTURES  # noqa: E402
from neurocodec.zoo import DEFAULT_MODEL, WEIGHTS_DIR, list_models  # noqa: E402

SHIPPED = [m for m in list_models() if m.origin == "shipped" and not ARCHITECTURES[m.architecture].learns_per_image]
FRESH_ONLY = [m for m in SHIPPED if m.card.get("training_config", {}).get("fresh_only")]
DERIVED = ("prior.", "tables.")   # rebuilt from the float parameters at export


def test_the_families_shipped_on_the_default_are_found():
    assert {m.architecture for m in FRESH_ONLY} >= {"block-region", "block-swinv2", "block-mixture"}


def textured(height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:height, 0:width]
    base = 128 + 60 * np.sin(xx / 5.0)[..., None] * np.cos(yy / 7.0)[..., None] * np.array([1.0, 0.6, -0.8])
    return np.clip(base + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("info", SHIPPED, ids=lambda m: m.name)
def test_shipped_model_round_trips_exactly_and_rate_rises_with_quality(info):
    image = textured(48, 64)
    sizes = []
    for quality in (1.0, 8.0):
        data, recon = Codec(info.name, quality=quality).compress_with_reconstruction(image)
        assert np.array_equal(decompress(data), recon)
        sizes.append(len(data))
    assert sizes[1] > sizes[0]


@pytest.mark.parametrize("info", FRESH_ONLY, ids=lambda m: m.name)
def test_fresh_only_family_keeps_every_float_tensor_of_the_default(info):
    from safetensors.numpy import load_file

    default = load_file(str(WEIGHTS_DIR / f"{DEFAULT_MODEL}.safetensors"))
    family = load_file(str(info.path))
    compared = 0
    for name, tensor in default.items():
        if name.startswith(DERIVED):
            continue
        assert name in family, name
        assert family[name].dtype == tensor.dtype and np.array_equal(family[name], tensor), name
        compared += 1
    assert compared >= 40
    assert len(family) > len(default)                 # and it adds something
    assert info.card["training_config"]["init_from"].endswith(f"{DEFAULT_MODEL}.safetensors")
