"""The realism decoder (issue 21): one stream, R = 0 is the plain decoder exactly, any R in
[0, 1] decodes it, bad R and models without a realism decoder fail clearly; the texture
measures; the training recipe's run, resume and export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from hypothesis import given, settings, strategies as st  # noqa: E402
from PIL import Image  # noqa: E402

import neurocodec  # noqa: E402
from neurocodec import Codec, RealismError, RealismUnavailableError  # noqa: E402
from neurocodec.cli import main  # noqa: E402
from neurocodec.metrics import band_energy_ratios, gradient_histogram_distance  # noqa: E402
from neurocodec.transforms.realism import RealismSynthesis, texture_noise  # noqa: E402
from neurocodec.zoo.realism import find_realism, realism_files  # noqa: E402
from neurocodec.zoo.weights import read_metadata  # noqa: E402


def textured_image(height: int = 64, width: int = 96, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus fine noise: something with detail for the decoder to lose."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 2.0, yy * 3.0, (xx + yy) * 1.5], axis=-1) % 200 + 20
    return np.clip(base + rng.normal(0, 18, (height, width, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def stream() -> tuple[bytes, np.ndarray]:
    codec = Codec(quality=2)
    return codec.compress(textured_image()), codec.decompress(codec.compress(textured_image()))


def test_the_default_model_ships_a_realism_decoder_for_its_own_weights():
    from neurocodec import zoo

    info = zoo.model_info()
    path = find_realism(info)
    assert path is not None and path in realism_files()
    card = read_metadata(path)["card"]
    assert card["base_model"] == info.name and card["steps"] > 0 and card["cpu_hours"] > 0


def test_realism_zero_is_the_plain_decoder_pixel_for_pixel(stream):
    data, plain = stream
    codec = Codec()
    assert np.array_equal(codec.decompress(data, realism=0), plain)
    assert np.array_equal(codec.decompress(data, realism=0.0), plain)
    assert np.array_equal(neurocodec.decompress(data, realism=0), plain)


@settings(max_examples=4, deadline=None)
@given(realism=st.floats(min_value=0.0, max_value=1.0, allow_nan=False))
def test_any_realism_decodes_the_same_stream(stream, realism):
    data, plain = stream
    out = Codec().decompress(data, realism=realism)
    assert out.shape == plain.shape and out.dtype == np.uint8
    again = neurocodec.decompress(data, realism=realism)
    assert np.array_equal(out, again)  # deterministic: the texture noise is seeded


def test_full_realism_changes_the_pixels_near_the_plain_decode(stream):
    data, plain = stream
    out = Codec().decompress(data, realism=1.0)
    diff = np.abs(out.astype(int) - plain.astype(int))
    assert diff.max() > 0  # the correction network does something
    assert diff.mean() < 12  # and stays a correction, not a different picture


def test_the_correction_is_exactly_zero_at_realism_zero():
    torch.manual_seed(0)
    net = RealismSynthesis(hidden=8)
    for p in net.parameters():  # a trained-looking network: no zero layers
        torch.nn.init.normal_(p, std=0.3)
    x0 = torch.rand(2, 3, 32, 48)
    y_hat = torch.randn(2, 192, 4, 6) * 5
    out = net(x0, y_hat, torch.tensor([1.0, 4.0]), torch.tensor([0.0, 1.0]), texture_noise(2, 16, 24, 4))
    assert torch.equal(out[0], x0[0])
    assert not torch.equal(out[1], x0[1])


@pytest.mark.parametrize("bad", [-0.1, 1.01, float("nan"), float("inf"), True, "1", None])
def test_a_realism_outside_zero_to_one_is_refused(stream, bad):
    data, _ = stream
    with pytest.raises(RealismError, match=r"realism must be a number in \[0, 1\]"):
        Codec().decompress(data, realism=bad)
    with pytest.raises(RealismError):
        neurocodec.decompress(data, realism=bad)


def test_a_model_without_a_realism_decoder_says_so():
    codec = Codec("block-context-mse", quality=1)
    data = codec.compress(textured_image(32, 32))
    with pytest.raises(RealismUnavailableError, match="block-context-mse.*has no realism decoder.*block-hyperprior-mse"):
        codec.decompress(data, realism=0.5)
    with pytest.raises(RealismUnavailableError):
        neurocodec.decompress(data, realism=1)
    assert codec.decompress(data, realism=0).shape == (32, 32, 3)


def test_cli_decode_realism(tmp_path, capsys, stream):
    data, plain = stream
    src = tmp_path / "a.ncdc"
    src.write_bytes(data)
    assert main(["decode", str(src), "-o", str(tmp_path / "r0.png"), "--realism", "0"]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "r0.png")), plain)
    assert main(["decode", str(src), "-o", str(tmp_path / "r1.png"), "--realism", "1", "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["realism"] == 1.0
    code = main(["decode", str(src), "-o", str(tmp_path / "bad.png"), "--realism", "2"])
    err = capsys.readouterr().err
    assert code != 0 and "--realism" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad.png").exists()


def test_cli_decode_realism_with_a_model_without_one_writes_nothing(tmp_path, capsys):
    data = Codec("block-context-mse", quality=1).compress(textured_image(32, 32))
    src = tmp_path / "c.ncdc"
    src.write_bytes(data)
    code = main(["decode", str(src), "-o", str(tmp_path / "c.png"), "--realism", "1"])
    err = capsys.readouterr().err
    assert code != 0 and "has no realism decoder" in err
    assert not (tmp_path / "c.png").exists()


# -- texture measures -------------------------------------------------------------------

@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 1000))
def test_an_image_has_its_own_spectrum_and_gradients(seed):
    image = textured_image(48, 64, seed)
    assert np.allclose(band_energy_ratios(image, image), 1.0)
    assert gradient_histogram_distance(image, image) == 0.0


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 1000))
def test_blur_removes_high_frequencies_and_changes_the_gradients(seed):
    from PIL import ImageFilter

    image = textured_image(64, 64, seed)
    blurred = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(1.5)))
    ratios = band_energy_ratios(blurred, image)
    assert ratios[-1] < 0.2 and ratios[-1] < ratios[0]
    distance = gradient_histogram_distance(blurred, image)
    assert 0.2 < distance <= 1.0


# -- training recipe ---------------------------------------------------------------------

def test_realism_training_runs_resumes_and_exports(tmp_path):
    from neurocodec.train import realism as recipe
    from neurocodec.zoo import model_info
    from neurocodec.zoo.weights import decoding_digest

    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        Image.fromarray(textured_image(80, 80, i)).save(data / f"{i}.png")
    run = tmp_path / "run"
    args = [str(data), str(run), "--steps", "2", "--batch", "2", "--crop", "64", "--hidden", "8"]
    assert recipe.main(args) == 0
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 2
    assert recipe.main([*args[:2], "--steps", "3"]) == 0  # resumes with the saved configuration
    assert torch.load(run / "checkpoint.pt", weights_only=False)["step"] == 3
    out = tmp_path / "r.safetensors"
    assert recipe.main([str(data), str(run), "--export", str(out)]) == 0
    meta = read_metadata(out)
    assert meta["base_digest"] == decoding_digest(model_info().path)
    assert meta["config"]["hidden"] == 8 and meta["card"]["steps"] == 3
    assert str(tmp_path) not in json.dumps(meta)  # no machine-local path in the card


def test_realism_training_refuses_a_missing_folder(tmp_path, capsys):
    from neurocodec.train import realism as recipe

    with pytest.raises(SystemExit):
        recipe.main([str(tmp_path / "nope"), str(tmp_path / "run")])
    assert "is not a folder" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
