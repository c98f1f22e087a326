"""SwinV2 and region-adaptive transforms (issue 6) and their architectures
``swinv2-hyperprior`` and ``region-hyperprior``.

* SwinV2 blocks: any map size (window padding inside the block); the shifted-window mask
  never lets a token attend across a shifted-window boundary or to padding (attention
  weights exactly 0 there, > 0 inside, against an independent description of the
  partition; and perturbing one token changes exactly the outputs of its own window);
  the temperature clamp; the log-spaced position-bias inputs.
* Region transforms: grid pooling with partial edge cells; the SAL and the whole block are
  the identity at initialisation; masks as privileged information (same result as the
  grid when the masks are the grid, a different one otherwise; bad masks raise).
* Models: identity stages at init (the models start as ``conv-hyperprior``, also when
  warm-started from its weights); exact ``Codec`` round trips of tiny exported models with
  active stages on random images; determinism of coding with 1 vs 2 threads;
  ``train()`` -> ``export_run`` -> ``Codec`` end to end; config validation.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from neurocodec.models import ARCHITECTURES, build_model  # noqa: E402
from neurocodec.transforms.region import (  # noqa: E402
    RegionAdaptiveBlock, RegionPartition, ScaleAffineLayer,
)
from neurocodec.transforms.swin import (  # noqa: E402
    MASK_VALUE, ResidualSwinStage, SwinV2Block, WindowAttentionV2, log_spaced_offsets, window_partition,
)

SWIN_TINY = dict(channels=16, latent_channels=16, hyper_channels=8, depths=[0, 1, 2, 2], heads=2, window=3,
                 cpb_hidden=8)
REGION_TINY = dict(channels=16, latent_channels=16, hyper_channels=8, scales=[4, 8, 16], region_size=48, hidden=8)
TINY = {"swinv2-hyperprior": SWIN_TINY, "region-hyperprior": REGION_TINY}


def _seeded(seed: int):
    """Context: torch's global generator seeded, restored afterwards."""
    class _Ctx:
        def __enter__(self):
            self.state = torch.random.get_rng_state()
            torch.manual_seed(seed)

        def __exit__(self, *exc):
            torch.random.set_rng_state(self.state)
    return _Ctx()


def activate(model, seed: int = 0, std: float = 0.05):
    """Random weights for the zero-initialised layers of the inserted stages (a fresh
    model's stages are the identity), and a prior whose scales fit small random latents."""
    with _seeded(seed), torch.no_grad():
        for name, p in model.named_parameters():
            if "_stages." in name and (name.endswith("out.weight") or "pointwise" in name or "sal.net.2" in name):
                p.normal_(0.0, std)
        c = model.latent_channels
        model.entropy_model.hyper_synthesis.layers[-1].bias[c:] = 1.0
    return model


def tiny(arch: str, seed: int = 0, active: bool = True):
    with _seeded(seed):
        model = build_model(arch, **TINY[arch])
    return (activate(model, seed) if active else model).eval()


# --------------------------------------------------------------------------- #
# SwinV2 blocks
# --------------------------------------------------------------------------- #


@settings(max_examples=12, deadline=None)
@given(h=st.integers(1, 13), w=st.integers(1, 13), shifted=st.booleans())
def test_block_any_size(h, w, shifted):
    with _seeded(1):
        block = SwinV2Block(8, 2, 4, shifted=shifted, cpb_hidden=8)
    x = torch.randn(2, h, w, 8)
    y = block(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    stage = ResidualSwinStage(8, 2, 2, 4, cpb_hidden=8)
    z = torch.randn(1, 8, h, w)
    assert torch.equal(stage(z), z)  # zero-initialised output: identity at init


def _groups(size: int, shift: int, window: int) -> torch.Tensor:
    """Independent description of the shifted partition along one axis: positions p and q
    share a window iff floor((p - shift) / window) agree (the first ``shift`` positions form
    their own window, they are not joined with the far edge)."""
    return torch.div(torch.arange(size) - shift, window, rounding_mode="floor")


@pytest.mark.parametrize("h,w", [(11, 13), (8, 8), (9, 4), (16, 12)])
def test_shifted_window_attention_weights(h, w):
    window = 4
    with _seeded(2):
        block = SwinV2Block(8, 2, window, shifted=True, cpb_hidden=8)
    sh, sw = block.shifts(h, w)
    assert (sh, sw) == (2 if h > window else 0, 2 if w > window else 0)
    hp, wp = -(-h // window) * window, -(-w // window) * window
    # original coordinates of every token of every window, following the block's layout
    rows, cols = torch.meshgrid(torch.arange(hp), torch.arange(wp), indexing="ij")
    coords = torch.stack([rows, cols], dim=-1)[None]
    coords = torch.roll(coords, shifts=(-sh, -sw), dims=(1, 2))
    coords = window_partition(coords, window)                          # (nW, N, 2)
    x = torch.nn.functional.pad(torch.randn(1, h, w, 8), (0, 0, 0, wp - w, 0, hp - h))
    x = window_partition(torch.roll(x, shifts=(-sh, -sw), dims=(1, 2)), window)
    weights, _ = block.attn.weights(x, block.mask(h, w))
    gy, gx = _groups(hp, sh, window), _groups(wp, sw, window)
    r, c = coords[..., 0], coords[..., 1]
    real = (r < h) & (c < w)
    same = (gy[r][:, :, None] == gy[r][:, None, :]) & (gx[c][:, :, None] == gx[c][:, None, :])
    allowed = same & real[:, None, :]
    for head in range(2):
        wt = weights[:, head]
        # real queries: exactly zero outside their shifted window and on padding, > 0 inside
        rq = real[:, :, None].expand_as(wt)
        assert torch.all(wt[rq & ~allowed] == 0.0)
        assert torch.all(wt[rq & allowed] > 0.0)
    assert torch.allclose(weights.sum(-1), torch.ones(()), atol=1e-5)


@pytest.mark.parametrize("h,w", [(11, 13), (12, 12), (3, 10)])
def test_perturbing_a_token_changes_exactly_its_shifted_window(h, w):
    window = 4
    with _seeded(3):
        block = SwinV2Block(8, 2, window, shifted=True, cpb_hidden=8)
    sh, sw = block.shifts(h, w)
    gy, gx = _groups(h, sh, window), _groups(w, sw, window)
    x = torch.randn(1, h, w, 8)
    base = block(x)
    for (i, j) in [(0, 0), (h - 1, w - 1), (h // 2, w // 2), (1, w - 2)]:
        xp = x.clone()
        xp[0, i, j] += 3.0
        changed = (block(xp) != base).any(-1)[0]
        expected = (gy[:, None] == gy[i]) & (gx[None, :] == gx[j])
        assert torch.equal(changed, expected), (i, j)


def test_temperature_clamp_and_position_bias():
    attn = WindowAttentionV2(8, 2, 4, cpb_hidden=8)
    x = torch.randn(3, 16, 8)
    with torch.no_grad():
        attn.log_temperature.fill_(np.log(100.0))
        at_clamp, _ = attn.weights(x)
        attn.log_temperature.fill_(10.0)   # e^10 would be far above the clamp
        above, _ = attn.weights(x)
    assert torch.equal(at_clamp, above)
    bias = attn.position_bias()
    assert bias.shape == (2, 16, 16) and bias.min() > 0 and bias.max() < 16
    offsets = log_spaced_offsets(4)
    assert offsets.shape == (49, 2)
    assert torch.isclose(offsets.abs().max(), torch.tensor(np.log2(9.0) / 3, dtype=torch.float32))
    assert torch.equal(offsets[24], torch.zeros(2))                    # offset (0, 0) in the middle
    assert torch.allclose(offsets, -offsets.flip(0))                   # odd symmetry
    assert MASK_VALUE + 100 * 1 + 16 < -80                              # exp underflows to exactly 0
    with pytest.raises(ValueError):
        WindowAttentionV2(10, 4, 4)


# --------------------------------------------------------------------------- #
# Region-adaptive transform
# --------------------------------------------------------------------------- #


@settings(max_examples=10, deadline=None)
@given(h=st.integers(1, 11), w=st.integers(1, 11), cell=st.integers(1, 5))
def test_grid_partition_means_and_expand(h, w, cell):
    x = torch.randn(2, 3, h, w, dtype=torch.float64)
    part = RegionPartition.grid(h, w, cell)
    means = part.means(x)
    assert means.shape == (2, 3, -(-h // cell), -(-w // cell))
    i, j = h - 1, w - 1   # the (possibly partial) last cell
    block = x[:, :, (i // cell) * cell:, (j // cell) * cell:]
    assert torch.allclose(means[:, :, -1, -1], block.mean(dim=(2, 3)))
    full = part.expand(means)
    assert full.shape == x.shape and torch.equal(full[:, :, i, j], means[:, :, -1, -1])
    # masks equal to the grid's labels describe the same partition
    labels = (torch.arange(h)[:, None] // cell) * 100 + torch.arange(w)[None, :] // cell
    masks = RegionPartition.from_masks(labels.expand(2, h, w), h, w)
    assert torch.allclose(masks.expand(masks.means(x)), full)


def test_sal_and_block_identity_at_init():
    x = torch.randn(2, 6, 9, 7)
    parts = [RegionPartition.grid(9, 7, 4),
             RegionPartition.from_masks(torch.randint(0, 3, (2, 9, 7)), 9, 7)]
    for part in parts:
        assert torch.equal(ScaleAffineLayer(6, 8)(x, part), x)
        assert torch.equal(RegionAdaptiveBlock(6, 8)(x, part), x)
    sal = ScaleAffineLayer(6, 8)
    with torch.no_grad():
        sal.net[-1].weight.normal_()
    scale, shift = sal.parameters_for(x, parts[0])
    assert scale.shape == shift.shape == (2, 6, 3, 2)
    y = sal(x, parts[0])
    # inside one cell the map is x * a + b with the cell's (a, b): differences scale by a
    a = 1 + scale[:, :, 0, 0]
    assert torch.allclose(y[:, :, 1, 1] - y[:, :, 0, 0], a * (x[:, :, 1, 1] - x[:, :, 0, 0]), atol=1e-5)


def test_masks_as_privileged_information():
    model = activate(tiny("region-hyperprior", active=False), std=0.5).train()   # strong region effects
    x = torch.rand(2, 3, 64, 64)
    q = torch.tensor([2.0, 7.0])
    size = REGION_TINY["region_size"]
    grid = (torch.arange(64)[:, None] // size) * 7 + torch.arange(64)[None, :] // size
    with _seeded(5):
        plain = model(x, q)
    with _seeded(5):   # masks that are the grid: the same computation
        same = model(x, q, masks=grid.expand(2, 64, 64).to(torch.int64))
    assert torch.allclose(plain.x_hat, same.x_hat, atol=1e-5)
    masks = torch.zeros(2, 64, 64, dtype=torch.int64)
    masks[:, :, 20:] = 5
    masks[1, 40:] = 9
    with _seeded(5):
        out = model(x, q, masks=masks)
    assert (out.x_hat - plain.x_hat).abs().max() > 1e-3
    loss = out.x_hat.square().mean() + out.y_bits.mean()
    loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if "synthesis_stages.4.sal" in n]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model._masks is None   # not kept after the call
    for bad in (masks.float(), masks[:, :32], masks[0]):
        with pytest.raises(ValueError, match="masks"):
            model(x, q, masks=bad)
    with _seeded(5):   # (B, 1, H, W) masks are accepted too
        channel = model(x, q, masks=masks[:, None])
    assert torch.equal(channel.x_hat, out.x_hat)


# --------------------------------------------------------------------------- #
# Models
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("arch", sorted(TINY))
def test_starts_as_conv_hyperprior_and_warm_starts_from_it(arch):
    from neurocodec.zoo.weights import load_state_into

    assert ARCHITECTURES[arch].architecture == arch
    conv_cfg = {k: TINY[arch][k] for k in ("channels", "latent_channels", "hyper_channels")}
    with _seeded(4):
        conv = build_model("conv-hyperprior", **conv_cfg).eval()
    model = tiny(arch, seed=9, active=False)
    load_state_into(model, conv.state_dict())   # stages are allowed to be missing
    x = torch.rand(1, 3, 128, 64)
    q = torch.tensor([3.5])
    y = model.analysis(x)
    assert torch.equal(y, conv.analysis(x))
    assert torch.equal(model.synthesis(y, q), conv.synthesis(y, q))
    config = json.loads(json.dumps(model.config()))
    assert build_model(arch, **config).config() == model.config()


@pytest.mark.parametrize("arch", sorted(TINY))
def test_forward_shapes_where_windows_need_padding(arch):
    model = tiny(arch).train()
    # window 3: every map (16k, 8k, 4k positions a side) is padded to the window grid;
    # region cells of 48 pixels leave partial cells at the edges
    for h, w in ((64, 192), (192, 64), (128, 320)):
        out = model(torch.rand(1, 3, h, w), torch.tensor([5.0]))
        assert out.x_hat.shape == (1, 3, h, w) and torch.isfinite(out.x_hat).all()
        assert out.y_bits.shape == (1, model.latent_channels, h // 16, w // 16)


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    from neurocodec.zoo import export_weights

    directory = tmp_path_factory.mktemp("swinregion")
    files = {}
    for arch in TINY:
        files[arch] = directory / f"{arch}-tiny.safetensors"
        export_weights(tiny(arch), files[arch], f"{arch}-tiny", description="random weights for tests")
    return files


@pytest.fixture(scope="module")
def codecs(weight_files):
    from neurocodec.codec import Codec

    return {arch: Codec(weights=str(path)) for arch, path in weight_files.items()}


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arch=st.sampled_from(sorted(TINY)), h=st.integers(1, 90), w=st.integers(1, 90),
       quality=st.floats(1.0, 8.0), seed=st.integers(0, 2**16))
def test_codec_round_trip_is_exact(codecs, arch, h, w, quality, seed):
    codec = codecs[arch]
    image = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    data, promised = codec.compress_with_reconstruction(image, quality)
    decoded = codec.decompress(data)
    assert decoded.shape == (h, w, 3)
    assert np.array_equal(decoded, promised)


def test_stages_are_active_in_the_exported_models(codecs):
    """The round trip above is not vacuous: the stages change the reconstruction."""
    for arch, codec in codecs.items():
        model = codec.model
        y = torch.randn(1, model.latent_channels, 4, 4)
        q = torch.tensor([4.0])
        stages = model.synthesis_stages
        model.synthesis_stages = torch.nn.ModuleDict()
        try:
            without = model.synthesis(y, q)
        finally:
            model.synthesis_stages = stages
        assert (model.synthesis(y, q) - without).abs().max() > 1e-3, arch


@pytest.mark.parametrize("arch", sorted(TINY))
def test_coding_is_deterministic_across_thread_counts(codecs, arch):
    codec = codecs[arch]
    model = codec.model
    image = np.random.default_rng(7).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        data, promised = codec.compress_with_reconstruction(image, 4.5)
        assert codec.compress(image, 4.5) == data                      # run to run
        x, shape = codec._to_tensor(image)
        segments, y_hat_1 = model.code_latents(model.analysis(x), 4.5)
        latents_1 = model.entropy_model.decode(segments, tuple(y_hat_1.shape), 4.5, "cpu")
        torch.set_num_threads(2)
        assert torch.get_num_threads() == 2
        latents_2 = model.entropy_model.decode(segments, tuple(y_hat_1.shape), 4.5, "cpu")
        decoded = codec.decompress(data)
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(latents_1, y_hat_1) and torch.equal(latents_2, y_hat_1)
    # the float synthesis may round a pixel differently with another thread count
    diff = np.abs(decoded.astype(int) - promised.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() <= 0.001


@pytest.mark.parametrize("arch", sorted(TINY))
def test_train_export_codec_end_to_end(tmp_path, arch):
    from PIL import Image

    from neurocodec.codec import Codec
    from neurocodec.train.export import export_run
    from neurocodec.train.loop import TrainConfig, train

    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (72, 80, 3), dtype=np.uint8)).save(data / f"{i}.png")
    cfg = TrainConfig(data=str(data), architecture=arch, model_config=TINY[arch], steps=2, batch=2, crop=64,
                      scales=(1.0,), log_every=1, checkpoint_every=2)
    train(cfg, tmp_path / "run", progress=False)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [1, 2] and all(np.isfinite(row["loss"]) for row in log)
    export_run(tmp_path / "run", tmp_path / "w.safetensors", "trained-tiny")
    codec = Codec(weights=str(tmp_path / "w.safetensors"), quality=6)
    image = rng.integers(0, 256, (33, 47, 3), dtype=np.uint8)
    data_bytes, promised = codec.compress_with_reconstruction(image)
    assert np.array_equal(codec.decompress(data_bytes), promised)


def test_config_validation():
    bad = [
        ("swinv2-hyperprior", dict(depths=[1, 2])),
        ("swinv2-hyperprior", dict(depths=[0, 0, 0, -1])),
        ("swinv2-hyperprior", dict(heads=5)),
        ("swinv2-hyperprior", dict(window=1, depths=[0, 0, 1, 0])),
        ("region-hyperprior", dict(scales=[3])),
        ("region-hyperprior", dict(region_size=40)),
    ]
    for arch, cfg in bad:
        with pytest.raises(ValueError):
            build_model(arch, **cfg)
