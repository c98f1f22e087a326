"""Tests for neurocodec.bench: Pillow codecs, evaluate, anchors, tables, plots."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
try:
    import neurocodec.bench  # noqa: F401
except ImportError:  # running from a checkout that is not pip-installed
    sys.path.insert(0, str(REPO / "src"))

from PIL import Image, features

from neurocodec.bench import (
    AVIFCodec,
    ImageCodec,
    JPEGCodec,
    RDPoint,
    WebPCodec,
    bd_table,
    evaluate,
    load_anchors,
    load_images,
    plot_rd,
)

SHARED = (REPO / ".." / "shared").resolve()
ANCHORS = SHARED / "anchors" / "kodak_published_rd.csv"
KODAK = SHARED / "data" / "kodak"
needs_anchors = pytest.mark.skipif(not ANCHORS.is_file(), reason=f"anchors CSV not found at {ANCHORS}")
needs_kodak = pytest.mark.skipif(not KODAK.is_dir(), reason=f"Kodak images not found at {KODAK}")


def _image(h=176, w=192, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([128 + 100 * np.sin(x / 13.0), 128 + 90 * np.cos(y / 19.0), 0.6 * (x + y)], -1)
    img += rng.normal(0, 4, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def test_jpeg_roundtrip_sensible():
    img = _image()
    c = JPEGCodec()
    assert isinstance(c, ImageCodec)
    data = c.encode(img, 75)
    assert isinstance(data, bytes) and data[:2] == b"\xff\xd8"
    rec = c.decode(data)
    assert rec.dtype == np.uint8 and rec.shape == img.shape
    pts = evaluate(c, [("a", img), ("b", _image(seed=1))], [20, 90], progress=False)
    assert [p.quality for p in pts] == [20, 90]
    lo, hi = pts
    for p in pts:
        assert p.codec == "JPEG" and p.n_images == 2
        assert 0.05 < p.bpp < 8.0
        assert 25.0 < p.psnr < 50.0
        assert 0.8 < p.ms_ssim <= 1.0
        assert p.enc_s >= 0 and p.dec_s >= 0
    assert lo.bpp < hi.bpp and lo.psnr < hi.psnr and lo.ms_ssim < hi.ms_ssim
    # bpp is the whole file: recompute it from the bytes
    expect = np.mean([8 * len(c.encode(im, 20)) / (im.shape[0] * im.shape[1]) for im in (_image(), _image(seed=1))])
    assert lo.bpp == pytest.approx(expect)


def test_jpeg_subsampling_option_changes_stream():
    img = _image()
    d420 = JPEGCodec().encode(img, 50)
    d444 = JPEGCodec(subsampling="4:4:4").encode(img, 50)
    assert len(d444) > len(d420)


def test_webp_roundtrip():
    if not features.check("webp"):
        pytest.skip("Pillow built without WebP")
    img = _image()
    c = WebPCodec()
    data = c.encode(img, 50)
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    rec = c.decode(data)
    assert rec.shape == img.shape and rec.dtype == np.uint8


def test_avif_roundtrip():
    if not features.check("avif"):
        pytest.skip("Pillow built without AVIF")
    img = _image(64, 80)
    c = AVIFCodec(speed=10)
    data = c.encode(img, 60)
    assert data[4:12] == b"ftypavif"
    rec = c.decode(data)
    assert rec.shape == img.shape and rec.dtype == np.uint8
    assert AVIFCodec().options["subsampling"] == "4:4:4"


def test_evaluate_rejects_bad_decoder():
    class Broken:
        name = "broken"

        def encode(self, img, quality):
            return b"\x00" * 10

        def decode(self, data):
            return np.zeros((4, 4, 3), np.uint8)

    with pytest.raises(ValueError, match="decoded"):
        evaluate(Broken(), [("x", _image())], [1], progress=False)


def test_evaluate_custom_codec_lossless():
    class Raw:
        name = "raw"

        def __init__(self):
            self.shape = None

        def encode(self, img, quality):
            self.shape = img.shape
            return img.tobytes()

        def decode(self, data):
            return np.frombuffer(data, np.uint8).reshape(self.shape)

    (p,) = evaluate(Raw(), [_image()], [None], progress=False, with_ms_ssim=False)
    assert p.bpp == pytest.approx(24.0)
    assert p.psnr == math.inf and math.isnan(p.ms_ssim)


def test_load_images(tmp_path):
    Image.fromarray(_image(20, 30)).save(tmp_path / "b.png")
    Image.fromarray(_image(20, 30)[..., 0]).save(tmp_path / "a.png")  # grey -> RGB
    Image.fromarray(_image(20, 30)).save(tmp_path / "c.jpg", quality=90)
    (tmp_path / "notes.txt").write_text("not an image")
    imgs = load_images(tmp_path)
    assert [n for n, _ in imgs] == ["a", "b", "c"]
    for _, a in imgs:
        assert a.dtype == np.uint8 and a.shape == (20, 30, 3)
    with pytest.raises(FileNotFoundError):
        load_images(tmp_path / "missing")


def _curve(name, scale, shift=0.0):
    r = [0.1, 0.2, 0.4, 0.8, 1.6]
    p = [26.0, 29.0, 32.0, 35.0, 38.0]
    return [RDPoint(name, i, scale * ri, pi + shift) for i, (ri, pi) in enumerate(zip(r, p))]


def test_bd_table_markdown():
    curves = {"ref": _curve("ref", 1.0), "half": _curve("half", 0.5), "far": _curve("far", 1.0, 40.0)}
    md = bd_table(curves, references=["ref"])
    lines = md.strip().splitlines()
    assert lines[0].startswith("| BD-rate") and "ref" in lines[0]
    assert lines[1].startswith("|---|")
    assert "| ref | — |" in md
    assert "| half | -50.0 % |" in md
    assert "| far | n/a |" in md and "do not overlap" in md
    full = bd_table(curves, kind="psnr")
    assert full.count("\n| ") >= 3
    with pytest.raises(KeyError):
        bd_table(curves, references=["nope"])


def test_plot_rd(tmp_path):
    pytest.importorskip("matplotlib")
    out = plot_rd({"ref": _curve("ref", 1.0), "half": _curve("half", 0.5)}, tmp_path / "sub" / "rd.png")
    assert out.is_file() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_metrics_and_bench_import_light():
    """matplotlib only inside plot_rd; torch never pulled in by metrics / bench themselves."""

    def loaded(stmt):
        code = f"import sys; sys.path.insert(0, {str(REPO / 'src')!r}); {stmt}; " \
               "print('matplotlib' in sys.modules, 'torch' in sys.modules)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        return out.stdout.split()

    base = loaded("import neurocodec")
    mpl, torch = loaded("import neurocodec.metrics, neurocodec.bench")
    assert mpl == "False"
    assert torch == base[1]


@needs_anchors
def test_load_anchors_vtm():
    vtm = load_anchors(ANCHORS, "VTM")
    assert len(vtm) == 8
    assert vtm[0].codec == "VTM (VVC intra)"
    assert [p.bpp for p in vtm] == sorted(p.bpp for p in vtm)
    assert 0.04 < vtm[0].bpp < 0.06 and 26 < vtm[0].psnr < 27
    assert all(0.8 < p.ms_ssim < 1 for p in vtm)
    bpg = load_anchors(ANCHORS, "bpg")
    assert len(bpg) == 8 and bpg[0].codec.startswith("BPG")


@needs_anchors
def test_load_anchors_errors():
    with pytest.raises(ValueError, match="several"):
        load_anchors(ANCHORS, "JPEG")  # JPEG (Pillow) and JPEG2000
    with pytest.raises(ValueError, match="no codec"):
        load_anchors(ANCHORS, "no-such-codec")


@needs_anchors
def test_published_bd_rates_against_vtm():
    """The published curves give the BD-rates quoted in the design notes."""
    vtm = load_anchors(ANCHORS, "VTM")
    curves = {
        "VTM": vtm,
        "BPG": load_anchors(ANCHORS, "BPG"),
        "ELIC": load_anchors(ANCHORS, "paper:elic2022-mse"),
    }
    md = bd_table(curves, references=["VTM"])
    assert "| BPG | +22.1 % |" in md
    assert "| ELIC | -7.2 % |" in md


@needs_kodak
def test_kodak_loads_and_one_jpeg_point():
    imgs = load_images(KODAK)
    assert len(imgs) == 24 and imgs[0][0] == "kodim01"
    assert all(a.shape in ((512, 768, 3), (768, 512, 3)) for _, a in imgs)
    (p,) = evaluate(JPEGCodec(), imgs[:2], [50], progress=False, with_ms_ssim=False)
    assert 0.5 < p.bpp < 2.0 and 28 < p.psnr < 35
