"""The examples run: ``examples/latent_classifier.py --tiny`` on generated images."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _images(folder: Path, count: int, seed: int) -> Path:
    """Photo-like images with an up-down asymmetry (bright top), so rotation is learnable."""
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        h, w = rng.integers(70, 120, 2)
        y = np.linspace(1.0, 0.0, h)[:, None, None]
        img = 255 * (0.6 * y * rng.uniform(0.5, 1, 3) + 0.2 * rng.random((h, w, 1)))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"im{i}.png")
    return folder


@pytest.fixture(scope="module")
def tiny_walloc(tmp_path_factory) -> Path:
    from neurocodec.models import build_model
    from neurocodec.zoo import export_weights

    torch.manual_seed(0)
    model = build_model("walloc", levels=2, latent_channels=6, encoder_hidden=0, decoder_blocks=0,
                        hyper_channels=8, hyper_hidden=16)
    path = tmp_path_factory.mktemp("weights") / "walloc-tiny.safetensors"
    export_weights(model, path, "walloc-tiny")
    return path


def test_latent_classifier_tiny(tmp_path: Path, tiny_walloc: Path):
    example = _load("latent_classifier")
    train_dir = _images(tmp_path / "train", 3, 0)
    test_dir = _images(tmp_path / "test", 2, 1)
    out = tmp_path / "result.json"
    result = example.main(["--tiny", "--train-dir", str(train_dir), "--test-dir", str(test_dir),
                           "--weights", str(tiny_walloc), "--crop", "32", "--crops", "2", "--test-crops", "2",
                           "--json", str(out)])
    assert result == json.loads(out.read_text())
    assert result["architecture"] == "walloc"
    assert result["train_samples"] == 3 * 2 * 4 and result["test_samples"] == 2 * 2 * 4  # 2 crops x 4 rotations
    assert result["latent_shape"] == [6, 8, 8]
    assert set(result["classifiers"]) == {"latents", "decoded pixels", "original pixels"}
    for r in result["classifiers"].values():
        for key, n in (("train_accuracy", result["train_samples"]), ("test_accuracy", result["test_samples"])):
            assert 0.0 <= r[key] <= 1.0
            assert abs(r[key] * n - round(r[key] * n)) < 0.01  # a fraction of the samples
    assert result["bpp"] > 0


def test_latent_classifier_rejects_unpadded_crop(tmp_path: Path, tiny_walloc: Path):
    example = _load("latent_classifier")
    with pytest.raises(SystemExit):
        example.main(["--tiny", "--weights", str(tiny_walloc), "--crop", "40"])
