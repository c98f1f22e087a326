"""``block-walloc``: WaLLoC's linear encoder on the default's decoder (issue 19), and its
least-squares start (``neurocodec.train.encoder_fit``).

* At initialisation the encoder is the default's colour transform followed by the block DCT
  (colour and DCT commute), for any image size;
* a default weight file warm-starts every parameter except the encoder, bit for bit;
* the least-squares fit recovers a linear teacher exactly, and on a nonlinear teacher it is
  closer than the initial projection;
* the CLI writes a weight file that codes exactly, whose card has no machine-local path.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

torch = pytest.importorskip("torch")

from neurocodec.models import build_model  # noqa: E402

TINY = dict(refine_blocks=1, refine_hidden=16, pixel_hidden=8, hyper_channels=8, hyper_hidden=16)


def _seeded(architecture: str, seed: int = 0, **config):
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return build_model(architecture, **{**TINY, **config}).eval()
    finally:
        torch.random.set_rng_state(state)


def _image(seed: int, height: int = 64, width: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / 64.0
    channels = [0.4 + 0.3 * np.sin(rng.uniform(2, 9) * xx + rng.uniform(2, 9) * yy) + rng.normal(0, 0.03, xx.shape)
                for _ in range(3)]
    return (np.clip(np.stack(channels, -1), 0, 1) * 255).round().astype(np.uint8)


@settings(max_examples=12, deadline=None)
@given(blocks_h=st.integers(1, 5), blocks_w=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_initial_encoder_is_colour_then_dct(blocks_h, blocks_w, seed):
    walloc, default = _seeded("block-walloc"), _seeded("block-hyperprior")
    x = torch.rand(1, 3, 8 * blocks_h, 8 * blocks_w, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        expected = default.dct(default.colour(x))
        assert torch.allclose(walloc.analysis(x), expected, atol=1e-5)
        # and not the default's analysis once its refinement is non-zero
        torch.nn.init.normal_(default.analysis_refine[0].conv2.weight, std=0.1)
        assert not torch.allclose(walloc.analysis(x), default.analysis(x), atol=1e-3)


def test_default_weights_load_everything_but_the_encoder():
    from neurocodec.zoo import DEFAULT_MODEL, WEIGHTS_DIR
    from neurocodec.zoo.weights import load_state_into, read_metadata
    from safetensors.torch import load_file

    path = WEIGHTS_DIR / f"{DEFAULT_MODEL}.safetensors"
    config = {k: v for k, v in read_metadata(path)["config"].items()}
    model = build_model("block-walloc", **config)
    initial = model.encoder.weight.detach().clone()
    load_state_into(model, path)
    source = load_file(str(path))
    own = model.state_dict()
    shared = [k for k in own if k in source and own[k].is_floating_point()]
    assert len(shared) > 20
    assert all(torch.equal(own[k], source[k].to(own[k].dtype)) for k in shared)
    assert sorted(k for k in own if k not in source) == ["encoder.bias", "encoder.weight"]
    assert torch.equal(model.encoder.weight, initial)
    assert not any(k.startswith(("colour.", "analysis_refine.")) for k in own)


def _crops(n: int, size: int) -> torch.Tensor:
    return torch.from_numpy(np.stack([_image(i, size, size) for i in range(n)])).permute(0, 3, 1, 2).float() / 255


def test_fit_recovers_a_linear_teacher_exactly():
    from neurocodec.train.encoder_fit import fit_projection

    teacher = _seeded("block-hyperprior", seed=3)        # refinement zero: colour + DCT, linear
    with torch.no_grad():
        teacher.colour.matrix.add_(0.2 * torch.randn(3, 3, generator=torch.Generator().manual_seed(1)))
        teacher.colour.offset.copy_(torch.tensor([0.05, -0.1, 0.02]))
    student = _seeded("block-walloc")
    stats = fit_projection(teacher, student, _crops(12, 64))   # 768 positions, 193 unknowns
    with torch.no_grad():
        x = torch.rand(2, 3, 40, 48, generator=torch.Generator().manual_seed(2))
        assert torch.allclose(student.analysis(x), teacher.analysis(x), atol=2e-4)
    assert stats["residual_rms_steps"]["q8"] < 1e-3


def test_fit_is_closer_than_the_start_on_a_nonlinear_teacher():
    from neurocodec.train.encoder_fit import fit_projection

    teacher = _seeded("block-hyperprior", seed=4)
    with torch.no_grad():
        torch.nn.init.normal_(teacher.analysis_refine[0].conv2.weight, std=0.05)
    student = _seeded("block-walloc")
    crops = _crops(12, 64)
    with torch.no_grad():
        before = (student.analysis(crops) - teacher.analysis(crops)).pow(2).mean()
        stats = fit_projection(teacher, student, crops)
        after = (student.analysis(crops) - teacher.analysis(crops)).pow(2).mean()
    assert after < 0.5 * before, (float(before), float(after))
    assert stats["residual_rms_steps"]["q8"] > 0


def test_cli_writes_a_weight_file_that_codes_exactly(tmp_path):
    from PIL import Image

    from _helpers import export_tiny
    from neurocodec.codec import Codec
    from neurocodec.train.encoder_fit import main
    from neurocodec.zoo.weights import read_metadata

    parent = export_tiny(_seeded("block-hyperprior", seed=5), tmp_path, "tiny-default", "tiny parent for tests")
    data = tmp_path / "images"
    data.mkdir()
    for i in range(3):
        Image.fromarray(_image(10 + i)).save(data / f"img{i}.png")
    out = tmp_path / "fit.safetensors"
    assert main(["--init-from", str(parent), "--data", str(data), str(out), "--images", "3", "--crop", "64",
                 "--scale", "1", "--crops-per-image", "1"]) == 0
    codec = Codec(weights=str(out))
    image = _image(20, 48, 56)
    for quality in (1.0, 8.0):
        stream, reconstruction = codec.compress_with_reconstruction(image, quality)
        assert np.array_equal(codec.decompress(stream), reconstruction)
    card = read_metadata(out)["card"]
    card = json.loads(card) if isinstance(card, str) else card
    assert card["fit"]["positions"] == 3 * 8 * 8
    assert str(tmp_path) not in json.dumps(card)
    with pytest.raises(SystemExit):
        main(["--init-from", str(parent), "--data", str(data), str(tmp_path / "x.safetensors"), "--crop", "60"])
    assert not (tmp_path / "x.safetensors").exists()
