"""What a new user tripped over (issue 20): own models and old streams from the CLI,
output formats, the CLI and the API agreeing on the same file, pipes and feedback, paths,
and the thread count."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from PIL import Image  # noqa: E402

import neurocodec  # noqa: E402
from neurocodec import ImageError  # noqa: E402
from neurocodec.cli import main  # noqa: E402
from neurocodec.cli import _commands, threads  # noqa: E402
from neurocodec.files import can_write  # noqa: E402
from neurocodec.format import read_header  # noqa: E402

GOLDEN = Path(__file__).parent / "golden"
REPO = Path(__file__).resolve().parents[1]


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_error(err: str, *fragments: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("neurocodec: error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def picture(height: int = 24, width: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 200, width)[None, :, None] + np.linspace(0, 50, height)[:, None, None]
    return np.clip(ramp + rng.normal(0, 8, (height, width, 3)), 0, 255).astype(np.uint8)


@pytest.fixture()
def png(tmp_path) -> Path:
    path = tmp_path / "img.png"
    Image.fromarray(picture()).save(path)
    return path


@pytest.fixture()
def stream(tmp_path, png) -> Path:
    assert main(["encode", str(png)]) == 0
    return tmp_path / "img.ncdc"


# --------------------------------------------------------------------------- #
# 1. own models and old streams
# --------------------------------------------------------------------------- #


@pytest.fixture()
def own_weights(tmp_path) -> Path:
    from neurocodec.models import build_model
    from neurocodec.zoo import export_weights

    torch.manual_seed(0)
    model = build_model("block-hyperprior", refine_blocks=0, pixel_hidden=0, hyper_channels=8, hyper_hidden=16)
    folder = tmp_path / "models"
    folder.mkdir()
    path = folder / "run-3.safetensors"
    export_weights(model, path, "my-model", "a test model")
    return path


def test_weights_on_encode_decode_info_roundtrip(capsys, tmp_path, png, own_weights, monkeypatch):
    monkeypatch.delenv("NEUROCODEC_MODEL_PATH", raising=False)
    out = tmp_path / "own.ncdc"
    code, _, err = run(capsys, "encode", png, "-o", out, "--weights", own_weights)
    assert code == 0, err
    assert read_header(out.read_bytes()).model_id == "my-model"  # the --name, not the file stem

    code, _, err = run(capsys, "decode", out, "-o", tmp_path / "a.png")
    assert code == 1
    one_error(err, "my-model", "NEUROCODEC_MODEL_PATH")
    code, _, err = run(capsys, "decode", out, "-o", tmp_path / "a.png", "--weights", own_weights)
    assert code == 0, err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")),
                          neurocodec.Codec(weights=str(own_weights)).decompress(out.read_bytes()))

    code, text, _ = run(capsys, "info", out)
    assert code == 0 and "weights:     NOT AVAILABLE" in text
    assert "no release shipped these weights" in text
    code, text, _ = run(capsys, "info", out, "--weights", own_weights)
    assert code == 0 and "weights:     the --weights file" in text

    code, text, err = run(capsys, "roundtrip", png, "--weights", own_weights, "--json")
    assert code == 0, err
    assert json.loads(text)["model"] == "my-model"

    code, _, err = run(capsys, "encode", png, "-o", tmp_path / "x.ncdc", "--weights", png)
    assert code == 1
    one_error(err, "not a neurocodec weight file")
    code, _, err = run(capsys, "encode", png, "--weights", own_weights, "--model", "x")
    assert code == 2


def test_search_path_models_are_listed_and_found(capsys, tmp_path, png, own_weights, monkeypatch):
    monkeypatch.setenv("NEUROCODEC_MODEL_PATH", str(own_weights.parent))
    code, text, _ = run(capsys, "models")
    assert code == 0
    assert "+ my-model" in text and str(own_weights) in text and "+ = found in NEUROCODEC_MODEL_PATH" in text
    code, text, _ = run(capsys, "models", "--json")
    mine = [m for m in json.loads(text) if m["name"] == "my-model"]
    assert mine and mine[0]["origin"] == "search path"
    out = tmp_path / "own.ncdc"
    code, _, err = run(capsys, "encode", png, "-o", out, "-m", "my-model")
    assert code == 0, err
    code, text, _ = run(capsys, "info", out, "--json")
    info = json.loads(text)
    assert info["weights_origin"] == "search path" and info["weights_path"] == str(own_weights.resolve())
    code, _, err = run(capsys, "decode", out, "-o", tmp_path / "back.png")
    assert code == 0, err


def test_info_names_the_release_of_an_old_stream(capsys):
    code, text, _ = run(capsys, "info", GOLDEN / "release-0.1.0-fa16d7ab.ncdc")
    assert code == 0
    assert "release:     neurocodec 0.1.0 shipped these weights" in text
    assert "weights:     decode-only weights of an earlier release" in text
    code, text, _ = run(capsys, "info", GOLDEN / "release-0.1.0-fa16d7ab.ncdc", "--json")
    info = json.loads(text)
    assert info["release"] == "0.1.0" and info["weights_origin"] == "legacy"


def test_models_and_info_do_not_import_torch(stream):
    code = ("import sys, contextlib, io\n"
            "from neurocodec.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    assert main(['models']) == 0 and main(['info', {str(stream)!r}]) == 0\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------- #
# 2. output formats
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name,fmt", [("v.jpg", "JPEG"), ("v.jpeg", "JPEG"), ("v.webp", "WEBP"), ("v.png", "PNG"),
                                      ("v.ppm", "PPM"), ("v.avif", "AVIF"), ("v.tif", "TIFF")])
def test_decode_writes_the_format_the_suffix_names(capsys, tmp_path, stream, name, fmt):
    if not can_write(fmt.lower() if fmt != "JPEG" else "jpeg"):
        pytest.skip(f"this Pillow cannot write {fmt}")
    code, _, err = run(capsys, "decode", stream, "-o", tmp_path / name)
    assert code == 0, err
    with Image.open(tmp_path / name) as im:
        assert im.format == fmt and im.size == (40, 24)


def test_format_option_quality_and_refusals(capsys, tmp_path, stream):
    code, _, err = run(capsys, "decode", stream, "-o", f"{tmp_path / 'out'}/", "--format", "jpeg")
    assert code == 0, err
    assert Image.open(tmp_path / "out" / "img.jpg").format == "JPEG"
    sizes = []
    for q in (10, 95):
        path = tmp_path / f"q{q}.webp"
        assert main(["decode", str(stream), "-o", str(path), "--output-quality", str(q)]) == 0
        sizes.append(path.stat().st_size)
    assert sizes[0] < sizes[1]
    capsys.readouterr()
    for args, fragment in [(["-f", "ppm", "-o", tmp_path / "a.png"], "contradicts"),
                           (["-o", tmp_path / "a.xyz"], "names no image format"),
                           (["-o", tmp_path / "a"], "names no image format"),
                           (["-o", tmp_path / "a.png", "--output-quality", "80"], "lossless"),
                           (["-o", tmp_path / "a.jpg", "--output-quality", "101"], "[1, 100]")]:
        code, _, err = run(capsys, "decode", stream, *args)
        assert code == 2, args
        one_error(err, fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.ncdc", "img.png", "out", "q10.webp", "q95.webp"]


# --------------------------------------------------------------------------- #
# 3. the CLI and the API agree on the same file
# --------------------------------------------------------------------------- #


def _png16(path: Path, array: np.ndarray) -> Path:
    """A 16-bit PNG (RGB or grey) written by hand: Pillow cannot write 48-bit RGB."""
    height, width = array.shape[:2]
    colour = 2 if array.ndim == 3 else 0
    rows = array.astype(">u2").reshape(height, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, colour, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))
    return path


def _cases(folder: Path) -> dict[str, tuple[Path, np.ndarray]]:
    """name -> (file, the uint8 RGB array the policy says it is)."""
    rgb = picture(20, 28)
    cases = {}
    rgba = np.concatenate([rgb, np.full((20, 28, 1), 255, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(folder / "opaque.png")
    cases["opaque RGBA"] = (folder / "opaque.png", rgb)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(rgb).save(folder / "rotated.jpg", exif=exif, quality=95)
    stored = np.asarray(Image.open(folder / "rotated.jpg").convert("RGB"))
    cases["EXIF-rotated JPEG"] = (folder / "rotated.jpg", np.ascontiguousarray(np.rot90(stored, -1)))
    wide = np.random.default_rng(1).integers(0, 65536, (20, 28, 3), dtype=np.uint16)
    cases["16-bit RGB"] = (_png16(folder / "rgb16.png", wide), (wide >> 8).astype(np.uint8))
    cases["16-bit grey"] = (_png16(folder / "grey16.png", wide[:, :, 0]),
                            np.repeat((wide[:, :, :1] >> 8).astype(np.uint8), 3, axis=2))
    palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    palette.save(folder / "palette.png")
    cases["palette"] = (folder / "palette.png", np.asarray(palette.convert("RGB")))
    return cases


def test_cli_and_api_agree_on_the_same_files(capsys, tmp_path):
    for name, (path, expected) in _cases(tmp_path).items():
        out = tmp_path / f"{path.stem}.ncdc"
        code, _, err = run(capsys, "encode", path, "-o", out)
        assert code == 0, (name, err)
        cli = out.read_bytes()
        assert neurocodec.compress(path) == cli, name                       # a Path
        assert neurocodec.compress(str(path)) == cli, name                  # a str
        assert neurocodec.compress(Image.open(path)) == cli, name           # a PIL image, as opened
        assert neurocodec.compress(expected) == cli, name                   # what the policy says it is


def test_transparent_pixels_refused_with_the_same_message(capsys, tmp_path):
    rgba = np.concatenate([picture(16, 16), np.full((16, 16, 1), 255, np.uint8)], axis=2)
    rgba[0, 0, 3] = 10
    path = tmp_path / "transparent.png"
    Image.fromarray(rgba, "RGBA").save(path)
    with pytest.raises(ImageError) as api:
        neurocodec.compress(path)
    code, _, err = run(capsys, "encode", path)
    assert code == 1
    assert one_error(err) == f"neurocodec: error: {api.value}"
    with pytest.raises(ImageError, match="transparent pixels"):
        neurocodec.compress(Image.open(path))
    with pytest.raises(ImageError, match="transparent pixels"):
        neurocodec.compress(rgba)
    assert not (tmp_path / "transparent.ncdc").exists()


def test_api_inputs_and_a_string_quality():
    rgb = picture()
    expected = neurocodec.compress(rgb)
    assert neurocodec.compress(rgb.astype(np.float64) / 255) == expected
    assert neurocodec.compress(torch.from_numpy(rgb).permute(2, 0, 1).float() / 255) == expected
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    buffer.seek(0)
    assert neurocodec.compress(buffer) == expected  # a file object
    with pytest.raises(TypeError, match="not a str"):
        neurocodec.compress(rgb, quality="4")
    with pytest.raises(TypeError, match="not a str"):
        neurocodec.Codec(quality="high")


def test_greyscale_in_is_said_to_be_rgb_out(capsys):
    assert main(["encode", "--help"]) == 0
    assert "greyscale image decodes as RGB" in " ".join(capsys.readouterr().out.split())


# --------------------------------------------------------------------------- #
# 4. pipes and feedback
# --------------------------------------------------------------------------- #


def test_stdin_and_stdout(tmp_path, png):
    command = [sys.executable, "-m", "neurocodec"]
    encoded = subprocess.run(command + ["encode", "-", "--threads", "1"], input=png.read_bytes(),
                             capture_output=True, timeout=120)
    assert encoded.returncode == 0, encoded.stderr
    assert encoded.stdout == neurocodec.compress(png)
    assert b"stdin -> stdout" in encoded.stderr
    decoded = subprocess.run(command + ["decode", "-", "-o", "-", "--format", "ppm", "--threads", "1"],
                             input=encoded.stdout, capture_output=True, timeout=120)
    assert decoded.returncode == 0, decoded.stderr
    assert Image.open(io.BytesIO(decoded.stdout)).format == "PPM"


def test_json_lines(capsys, tmp_path, png):
    other = tmp_path / "b" / "other.png"
    other.parent.mkdir()
    Image.fromarray(picture(seed=3)).save(other)
    code, out, _ = run(capsys, "encode", png, other, "-o", tmp_path / "enc/", "--json")
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(records) == 2
    assert {"input", "output", "bytes", "bpp", "quality", "model", "threads"} <= set(records[0])
    code, out, _ = run(capsys, "decode", tmp_path / "enc", "-o", tmp_path / "dec/", "--json")
    assert code == 0 and [json.loads(line)["width"] for line in out.splitlines()] == [40, 40]
    code, out, _ = run(capsys, "roundtrip", png, "--json")
    assert code == 0 and json.loads(out)["exact"] is True
    code, out, err = run(capsys, "encode", tmp_path / "missing.png", png, "-o", tmp_path / "e2/", "--json")
    assert code == 1 and len(out.splitlines()) == 1 and "missing.png" in err


def test_out_of_range_target_names_the_quality(capsys, tmp_path, png):
    code, out, err = run(capsys, "encode", png, "--bpp", "0.0001", "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["quality"] == 1.0 and record["target_reached"] is False
    assert "--bpp 0.0001 is below what this model reaches on this image; used quality 1" in err


def test_progress_bar_of_tiles_on_a_terminal(capsys, tmp_path, monkeypatch):
    wide = tmp_path / "wide.png"
    Image.fromarray(picture(8, 2100)).save(wide)
    monkeypatch.setattr(_commands, "_is_terminal", lambda stream: stream is sys.stderr)
    code, _, err = run(capsys, "encode", wide)
    assert code == 0
    assert "encode (tiles)" in err and "3/3" in err
    code, _, err = run(capsys, "decode", tmp_path / "wide.ncdc", "-o", tmp_path / "back.png")
    assert code == 0 and "decode (tiles)" in err


# --------------------------------------------------------------------------- #
# 5. paths
# --------------------------------------------------------------------------- #


def test_several_inputs_onto_a_file_like_output(capsys, tmp_path, png):
    other = tmp_path / "other.png"
    Image.fromarray(picture(seed=2)).save(other)
    code, _, err = run(capsys, "encode", png, other, "-o", tmp_path / "twofiles.ncdc")
    assert code == 2
    one_error(err, "twofiles.ncdc", "names a file", "2 inputs")
    assert not (tmp_path / "twofiles.ncdc").exists()


def test_missing_folders_are_created_and_said(capsys, tmp_path, png):
    code, out, err = run(capsys, "encode", png, "-o", tmp_path / "new" / "deeper" / "x.ncdc")
    assert code == 0
    assert err.strip() == f"neurocodec: note: creating folder {tmp_path / 'new'}"


def test_already_a_stream(capsys, tmp_path, stream):
    code, _, err = run(capsys, "encode", stream)
    assert code == 1
    one_error(err, "already a .ncdc stream")
    renamed = tmp_path / "looks.png"
    renamed.write_bytes(stream.read_bytes())
    code, _, err = run(capsys, "encode", renamed)
    assert code == 1
    one_error(err, "looks.png: already a .ncdc stream")


def test_write_errors_name_the_real_output(capsys, tmp_path, png, monkeypatch):
    import tempfile

    def refuse(*args, dir=None, prefix="", suffix="", **kwargs):
        raise PermissionError(13, "Permission denied", os.path.join(dir, f"{prefix}abc{suffix}"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    code, _, err = run(capsys, "encode", png, "-o", tmp_path / "out.ncdc")
    assert code == 1
    line = one_error(err, f"{tmp_path / 'out.ncdc'}: Permission denied")
    assert ".part" not in line


# --------------------------------------------------------------------------- #
# 6. threads
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("cores,load,runnable,expected", [(2, 0.0, 0, 2), (2, 1.0, 0, 1), (2, 0.1, 1, 1),
                                                          (4, 0.6, 0, 3), (2, 5.0, 3, 1), (1, 0.0, None, 1)])
def test_auto_threads_counts_idle_cores(monkeypatch, cores, load, runnable, expected):
    monkeypatch.setattr(threads, "_usable_cores", lambda: cores)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(threads, "_runnable_others", lambda: runnable)
    assert threads.auto_threads()[0] == expected


def test_cli_chooses_threads_and_the_library_does_not(capsys, png):
    before = torch.get_num_threads()
    neurocodec.Codec().compress(picture())
    assert torch.get_num_threads() == before
    code, out, _ = run(capsys, "roundtrip", png, "--threads", "1", "--json")
    assert code == 0 and json.loads(out)["threads"] == 1
    assert torch.get_num_threads() == before  # restored: the CLI is driven in-process here
    code, _, err = run(capsys, "encode", png, "--threads", "0")
    assert code == 2
    one_error(err, "--threads")
