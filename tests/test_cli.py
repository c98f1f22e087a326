"""Tests of the ``neurocodec`` command line, run in-process through ``main([...])``.

Like test_codec.py they never depend on the rate or PSNR of the shipped weights.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
from PIL import Image  # noqa: E402

import neurocodec  # noqa: E402
from neurocodec.cli import DEFAULT_QUALITY, TRAIN_DEFAULTS, main  # noqa: E402
from neurocodec.cli.sample import sample_image  # noqa: E402

SUBCOMMANDS = ["encode", "decode", "info", "models", "roundtrip", "train", "bench"]


def make_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 255, height)[:, None, None]
    x = np.linspace(0, 255, width)[None, :, None]
    img = 0.6 * y + 0.4 * x * np.array([1.0, 0.5, 0.2]) + rng.normal(0, 5, (height, width, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def write_png(path: Path, height: int = 24, width: int = 40, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(make_image(height, width, seed)).save(path)
    return path


def run(capsys, *args: str) -> tuple[int, str, str]:
    """main(args) -> (exit status, stdout, stderr)."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(err: str, *fragments: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("neurocodec: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def leftovers(folder: Path) -> list[str]:
    """Temporary files an interrupted write could have left behind."""
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith(".") or p.suffix == ".part")


@pytest.fixture
def png(tmp_path) -> Path:
    return write_png(tmp_path / "img.png")


@pytest.fixture
def stream(tmp_path, capsys) -> Path:
    """tmp_path/img.ncdc, a 40 x 24 stream (its source image is elsewhere)."""
    source = write_png(tmp_path / "source" / "img.png")
    assert main(["encode", str(source), "-o", str(tmp_path / "img.ncdc")]) == 0
    capsys.readouterr()
    return tmp_path / "img.ncdc"


# --------------------------------------------------------------------------- #
# Happy paths
# --------------------------------------------------------------------------- #


def test_encode_single_file(capsys, tmp_path, png):
    code, out, err = run(capsys, "encode", png, "-q", "3")
    assert code == 0, err
    target = tmp_path / "img.ncdc"
    data = target.read_bytes()
    assert f"{len(data):,} bytes" in out and "bpp" in out and out.rstrip().endswith(" s")
    assert str(png) in out and str(target) in out
    header = neurocodec.format.read_header(data)
    assert (header.height, header.width, header.quality) == (24, 40, 3.0)
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    assert leftovers(tmp_path) == []


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_encode_output_file_and_model_option(capsys, tmp_path, png):
    name = neurocodec.list_models()[0].name
    target = tmp_path / "out" / "x.ncdc"
    code, _, err = run(capsys, "encode", png, "-o", target, "--model", name, "--quality", "7.5")
    assert code == 0, err
    header = neurocodec.format.read_header(target.read_bytes())
    assert header.model_id == name and header.quality == 7.5


def test_decode_default_and_formats(capsys, tmp_path, stream):
    expected = neurocodec.decompress(stream.read_bytes())
    code, out, err = run(capsys, "decode", stream)
    assert code == 0, err
    decoded = tmp_path / "img.png"
    assert str(decoded) in out and "40x24" in out
    np.testing.assert_array_equal(np.asarray(Image.open(decoded)), expected)

    code, _, err = run(capsys, "decode", stream, "-o", tmp_path / "copy.bmp")
    assert code == 0, err
    with Image.open(tmp_path / "copy.bmp") as im:
        assert im.format == "BMP"
        np.testing.assert_array_equal(np.asarray(im), expected)

    code, _, err = run(capsys, "decode", stream, "-o", f"{tmp_path / 't'}/", "--format", "tiff")
    assert code == 0, err
    with Image.open(tmp_path / "t" / "img.tiff") as im:
        np.testing.assert_array_equal(np.asarray(im), expected)
    assert leftovers(tmp_path) == []


def test_info_text_and_json(capsys, stream):
    size = stream.stat().st_size
    code, out, err = run(capsys, "info", stream)
    assert code == 0, err
    from neurocodec.zoo import model_info

    model = model_info()  # the default model wrote the stream
    for fragment in (model.name, model.weight_hash.hex(), "cpu-range", "40x24", f"{size:,} bytes", "bpp",
                     "segments:", "payload:     ok"):
        assert fragment in out, out

    code, out, err = run(capsys, "info", stream, "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["model"] == model.name and info["weight_hash"] == model.weight_hash.hex()
    assert info["model_available"] is True and info["payload_ok"] is True and info["payload_error"] is None
    assert (info["height"], info["width"], info["tiles"], info["coder"]) == (24, 40, 1, "cpu-range")
    assert info["quality"] == DEFAULT_QUALITY
    assert len(info["segments"]) == 2
    assert info["total_bytes"] == size == info["header_bytes"] + sum(info["segments"]) + 4
    assert info["bpp"] == pytest.approx(8 * size / (24 * 40))


def test_info_reports_damaged_payload(capsys, tmp_path, stream):
    data = stream.read_bytes()
    truncated = tmp_path / "truncated.ncdc"
    truncated.write_bytes(data[:-10])
    code, out, err = run(capsys, "info", truncated)
    assert code == 1
    assert "DAMAGED" in out and "neurocodec" not in err  # the header is still shown
    assert "segments:" in out and "weight hash:" in out

    flipped = bytearray(data)
    flipped[-6] ^= 0xFF  # inside the payload, covered by the payload CRC
    damaged = tmp_path / "damaged.ncdc"
    damaged.write_bytes(bytes(flipped))
    code, out, err = run(capsys, "info", damaged, "--json")
    assert code == 1
    info = json.loads(out)
    assert info["payload_ok"] is False and "CRC" in info["payload_error"]


def test_models(capsys):
    code, out, err = run(capsys, "models")
    assert code == 0, err
    models = neurocodec.list_models()
    for m in models:
        assert m.name in out and m.architecture in out and m.weight_hash.hex() in out
    assert "* " in out  # default marker

    code, out, err = run(capsys, "models", "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert [m["name"] for m in listed] == [m.name for m in models]
    assert sum(m["default"] for m in listed) == 1
    for entry, m in zip(listed, models):
        assert entry["weight_hash"] == m.weight_hash.hex() and entry["size_bytes"] == m.size_bytes
        assert set(entry) >= {"architecture", "description", "steps", "cpu_hours"}
        assert entry["encoder_hints"] == (neurocodec.zoo.load_model(m.name).channel_energy is not None)
    default = next(entry for entry in listed if entry["default"])
    assert default["encoder_hints"]       # the default model ships its hints


def test_roundtrip_image(capsys, png):
    code, out, err = run(capsys, "roundtrip", png, "-q", "2")
    assert code == 0, err
    assert "bpp" in out and "PSNR" in out and "dB" in out
    assert "equals the encoder's reconstruction: yes" in out
    assert "quality 2" in out


def test_roundtrip_sample(capsys):
    """The README demo."""
    code, out, err = run(capsys, "roundtrip", "--sample")
    assert code == 0, err
    assert "768x512" in out and "bpp" in out and "PSNR" in out
    assert "equals the encoder's reconstruction: yes" in out


def test_sample_image_is_deterministic_and_textured():
    a = sample_image(96, 144)
    b = sample_image(96, 144)
    assert a.shape == (96, 144, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert a.std() > 20  # not a flat picture
    assert np.abs(np.diff(a.astype(int), axis=1)).mean() > 1  # has texture / noise
    assert not np.array_equal(sample_image(96, 144, seed=1), a)
    with pytest.raises(ValueError):
        sample_image(0, 10)


# --------------------------------------------------------------------------- #
# Errors: one line, right exit status, nothing half-written
# --------------------------------------------------------------------------- #


def test_corrupt_stream(capsys, tmp_path, stream):
    data = bytearray(stream.read_bytes())
    data[len(data) // 2] ^= 0x55
    stream.write_bytes(bytes(data))
    code, out, err = run(capsys, "decode", stream)
    assert code == 1
    assert_one_error_line(err, str(stream), "CRC")
    assert not (tmp_path / "img.png").exists()
    assert leftovers(tmp_path) == []


def test_truncated_stream(capsys, tmp_path, stream):
    stream.write_bytes(stream.read_bytes()[:40])
    code, _, err = run(capsys, "decode", stream, "-o", tmp_path / "out.png")
    assert code == 1
    assert_one_error_line(err, str(stream), "stream ends")
    assert not (tmp_path / "out.png").exists()


def test_decode_a_non_stream(capsys, tmp_path, png):
    code, _, err = run(capsys, "decode", png, "-o", tmp_path / "x.png")
    assert code == 1
    assert_one_error_line(err, "not a neurocodec stream")
    code, _, err = run(capsys, "info", png)
    assert code == 1
    assert_one_error_line(err, "not a neurocodec stream")


def test_missing_file(capsys, tmp_path):
    for command in ("encode", "decode", "info", "roundtrip"):
        code, _, err = run(capsys, command, tmp_path / "nope.png")
        assert code == 1, command
        assert_one_error_line(err, "nope.png")


def test_not_an_image(capsys, tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_text("this is not a picture")
    code, _, err = run(capsys, "encode", fake)
    assert code == 1
    assert_one_error_line(err, "fake.png", "not an image")
    assert not (tmp_path / "fake.ncdc").exists()


def test_transparent_image_refused_opaque_alpha_accepted(capsys, tmp_path):
    rgba = np.concatenate([make_image(16, 16), np.full((16, 16, 1), 255, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "opaque.png")
    rgba[0, 0, 3] = 10
    Image.fromarray(rgba, "RGBA").save(tmp_path / "transparent.png")
    code, _, err = run(capsys, "encode", tmp_path / "opaque.png")
    assert code == 0, err
    code, _, err = run(capsys, "encode", tmp_path / "transparent.png")
    assert code == 1
    assert_one_error_line(err, "transparent")


def test_refuses_to_overwrite(capsys, tmp_path, png):
    assert main(["encode", str(png)]) == 0
    stream = tmp_path / "img.ncdc"
    before = stream.read_bytes()
    code, _, err = run(capsys, "encode", png, "-q", "8")
    assert code == 1
    assert_one_error_line(err, str(stream), "--overwrite")
    assert stream.read_bytes() == before

    code, _, err = run(capsys, "encode", png, "-q", "8", "--overwrite")
    assert code == 0, err
    assert stream.read_bytes() != before

    # img.ncdc decodes to img.png by default, which exists: the original is kept
    original = png.read_bytes()
    code, _, err = run(capsys, "decode", stream)
    assert code == 1
    assert_one_error_line(err, str(png), "--overwrite")
    assert png.read_bytes() == original

    code, _, err = run(capsys, "decode", stream, "-o", tmp_path / "dec.png")
    assert code == 0, err
    code, _, err = run(capsys, "decode", stream, "-o", tmp_path / "dec.png")
    assert code == 1
    assert_one_error_line(err, "dec.png", "--overwrite")
    code, _, err = run(capsys, "decode", stream, "-o", tmp_path / "dec.png", "--overwrite")
    assert code == 0, err
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("quality", ["0", "9", "nan", "inf", "-1", "high"])
def test_bad_quality_is_a_usage_error(capsys, png, quality):
    code, _, err = run(capsys, "encode", png, "--quality", quality)
    assert code == 2
    assert_one_error_line(err, "quality", "[1, 8]" if quality != "high" else "number")


def test_unknown_model_is_a_usage_error(capsys, tmp_path, png):
    code, _, err = run(capsys, "encode", png, "--model", "no-such-model")
    assert code == 2
    assert_one_error_line(err, "no-such-model", neurocodec.list_models()[0].name)
    assert not (tmp_path / "img.ncdc").exists()
    code, _, err = run(capsys, "roundtrip", "--sample", "--model", "no-such-model")
    assert code == 2
    assert_one_error_line(err, "no-such-model")


@pytest.mark.parametrize("argv", [
    ["encode"],                       # no input
    ["encode", "x.png", "--frobnicate"],
    ["frobnicate"],
    ["roundtrip"],                    # neither IMAGE nor --sample
    ["roundtrip", "x.png", "--sample"],
    ["decode", "x.ncdc", "--format", "gif"],
    ["info"],
], ids=lambda a: " ".join(a) or "none")
def test_usage_errors(capsys, argv):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert_one_error_line(err, "--help")


def test_no_command_prints_help(capsys):
    code, out, _ = run(capsys)
    assert code == 2 and "encode" in out and "roundtrip" in out


def test_bench_bad_arguments(capsys, tmp_path):
    code, _, err = run(capsys, "bench", "--anything", "goes")
    assert code == 2
    assert_one_error_line(err, "unrecognized arguments")
    code, _, err = run(capsys, "bench", str(tmp_path / "missing"))
    assert code == 1
    assert_one_error_line(err, "not a folder")


def test_bench_small_folder(capsys, tmp_path):
    from PIL import Image

    from neurocodec.cli.sample import sample_image

    Image.fromarray(np.ascontiguousarray(sample_image()[:176, :192])).save(tmp_path / "a.png")  # MS-SSIM needs > 160 px
    code, out, _ = run(capsys, "bench", str(tmp_path), "--codecs", "jpeg", "--out-md", str(tmp_path / "r.md"))
    assert code == 0
    assert "JPEG" in out and "block-hyperprior-mse" in out
    assert "BD-rate" in (tmp_path / "r.md").read_text()


def test_stream_of_unknown_model(capsys, tmp_path, stream):
    import dataclasses

    from neurocodec.format import pack, unpack

    header, segments = unpack(stream.read_bytes())
    other = tmp_path / "other.ncdc"
    other.write_bytes(pack(dataclasses.replace(header, model_id="other-model"), segments))
    code, _, err = run(capsys, "decode", other, "-o", tmp_path / "o.png")
    assert code == 1
    assert_one_error_line(err, "other-model", header.weight_hash.hex())
    code, out, _ = run(capsys, "info", other)
    assert code == 0 and "weights:     NOT AVAILABLE" in out and "does not have" in out


def test_debug_shows_the_exception(tmp_path, stream, capsys):
    stream.write_bytes(b"NCDC\x09" + bytes(60))
    with pytest.raises(neurocodec.FormatError):
        main(["--debug", "decode", str(stream)])
    with pytest.raises(neurocodec.FormatError):
        main(["decode", str(stream), "--debug"])


def test_interrupt_leaves_no_partial_output(capsys, tmp_path, png, monkeypatch):
    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(neurocodec.Codec, "compress", interrupted)
    code, _, err = run(capsys, "encode", png)
    assert code == 130
    assert_one_error_line(err, "interrupted")
    assert not (tmp_path / "img.ncdc").exists()
    assert leftovers(tmp_path) == []


def test_failed_write_leaves_nothing(capsys, tmp_path, png, monkeypatch):
    """A failure after the temporary file is written (here: the final rename/link)."""
    from neurocodec import files

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", broken)
    monkeypatch.setattr(files.os, "link", broken)
    code, _, err = run(capsys, "encode", png)
    assert code == 1
    assert_one_error_line(err, "img.ncdc", "No space left")
    assert not (tmp_path / "img.ncdc").exists()
    assert leftovers(tmp_path) == []


def test_atomic_write_without_hard_links(tmp_path, monkeypatch):
    from neurocodec import files

    def no_links(*args, **kwargs):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(files.os, "link", no_links)
    target = tmp_path / "f.bin"
    files.atomic_write(target, b"one", overwrite=False)
    assert target.read_bytes() == b"one"
    with pytest.raises(files.OutputExistsError):
        files.atomic_write(target, b"two", overwrite=False)
    files.atomic_write(target, b"two", overwrite=True)
    assert target.read_bytes() == b"two"
    assert leftovers(tmp_path) == []


# --------------------------------------------------------------------------- #
# Several inputs: folders, patterns, -o folders
# --------------------------------------------------------------------------- #


def make_folder(root: Path) -> Path:
    photos = root / "photos"
    write_png(photos / "a.png", seed=1)
    write_png(photos / "sub" / "b.png", 16, 20, seed=2)
    (photos / "notes.txt").write_text("not an image, and not named like one: ignored")
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    return photos


def test_folder_with_a_bad_file(capsys, tmp_path):
    photos = make_folder(tmp_path)
    code, out, err = run(capsys, "encode", photos)
    assert code == 1
    assert_one_error_line(err, "broken.png")
    assert (photos / "a.ncdc").exists() and (photos / "sub" / "b.ncdc").exists()
    assert not (photos / "broken.ncdc").exists() and not (photos / "notes.ncdc").exists()
    assert "encoded 2 of 3 files" in out
    assert leftovers(photos) == []


def test_folder_to_output_folder_keeps_the_tree(capsys, tmp_path):
    photos = make_folder(tmp_path)
    (photos / "broken.png").unlink()
    out_dir = tmp_path / "compressed"
    code, out, err = run(capsys, "encode", photos, "-o", out_dir)
    assert code == 0, err
    assert sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*.ncdc")) == ["a.ncdc", "sub/b.ncdc"]
    assert "encoded 2 of 2 files" in out

    restored = tmp_path / "restored"
    code, out, err = run(capsys, "decode", out_dir, "-o", restored)
    assert code == 0, err
    for name in ("a", "sub/b"):
        np.testing.assert_array_equal(
            np.asarray(Image.open(restored / f"{name}.png")),
            neurocodec.decompress((out_dir / f"{name}.ncdc").read_bytes()))
    assert "decoded 2 of 2 files" in out


def test_glob_pattern_and_several_files(capsys, tmp_path, monkeypatch):
    photos = make_folder(tmp_path)
    (photos / "broken.png").unlink()
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "encode", "photos/**/*.png", "-o", "out")
    assert code == 0, err
    assert (tmp_path / "out" / "a.ncdc").exists() and (tmp_path / "out" / "sub" / "b.ncdc").exists()

    code, _, err = run(capsys, "encode", "photos/a.png", "photos/sub/b.png", "-o", "flat")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "flat").iterdir()) == ["a.ncdc", "b.ncdc"]

    code, _, err = run(capsys, "encode", "photos/*.jpg")
    assert code == 1
    assert_one_error_line(err, "no image files match")


def test_missing_input_among_several(capsys, tmp_path, png):
    code, out, err = run(capsys, "encode", png, tmp_path / "missing.png")
    assert code == 1
    assert_one_error_line(err, "missing.png")
    assert (tmp_path / "img.ncdc").exists()


def test_two_inputs_writing_the_same_output(capsys, tmp_path):
    write_png(tmp_path / "x.png")
    Image.fromarray(make_image(8, 8)).save(tmp_path / "x.bmp")
    code, _, err = run(capsys, "encode", tmp_path / "x.png", tmp_path / "x.bmp")
    assert code == 2
    assert_one_error_line(err, "x.ncdc")
    assert not (tmp_path / "x.ncdc").exists()


def test_progress_bar_on_a_terminal(capsys, tmp_path, monkeypatch):
    photos = make_folder(tmp_path)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    code, out, err = run(capsys, "encode", photos)
    assert code == 1
    assert "a.png" in out and "encoded 2 of 3 files" in out
    assert "encode" in err  # the bar
    errors = [ln for ln in err.replace("\r", "\n").splitlines() if ln.startswith("neurocodec: error:")]
    assert len(errors) == 1 and "broken.png" in errors[0]


# --------------------------------------------------------------------------- #
# Help, import weight, constants
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_subcommand_help(capsys, command):
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    assert f"neurocodec {command}" in out
    if command != "bench":
        assert "example" in out


def test_top_level_help_and_version(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in SUBCOMMANDS:
        assert command in out
    code, out, _ = run(capsys, "--version")
    assert code == 0 and neurocodec.__version__ in out


def test_help_does_not_import_torch(subprocess_env):
    code = (
        "import sys\n"
        "from neurocodec.cli import main\n"
        "for argv in (['--help'], ['encode', '--help'], ['train', '--help']):\n"
        "    assert main(argv) == 0\n"
        "heavy = [m for m in ('torch', 'numpy', 'PIL', 'neurocodec.codec', 'neurocodec.zoo') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=subprocess_env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


def test_console_script_module(subprocess_env, tmp_path):
    result = subprocess.run([sys.executable, "-m", "neurocodec.cli", "info", str(tmp_path / "none.ncdc")],
                            env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.startswith("neurocodec: error: ") and len(result.stderr.strip().splitlines()) == 1


def test_cli_constants_match_the_library():
    from neurocodec.codec import DEFAULT_QUALITY as codec_default
    from neurocodec.train import TrainConfig

    assert DEFAULT_QUALITY == codec_default
    config = TrainConfig(data="x")
    for key, value in TRAIN_DEFAULTS.items():
        assert getattr(config, key) == value, key


# --------------------------------------------------------------------------- #
# train (the training loop itself is replaced by a stub: only the CLI is tested here)
# --------------------------------------------------------------------------- #


@pytest.fixture
def fake_train(monkeypatch):
    import neurocodec.train
    import neurocodec.train.distributed
    import neurocodec.train.export

    calls: dict = {"train": [], "export": []}

    def train(cfg, run_dir, progress=True, stop_after=None, on_step=None, device="cpu"):
        calls["train"].append((cfg, Path(run_dir)))
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        (Path(run_dir) / "checkpoint.pt").write_bytes(b"stub")
        (Path(run_dir) / "config.json").write_text(json.dumps(
            {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(cfg).items()}))
        return Path(run_dir) / "checkpoint.pt"

    def export_run(run_dir, out_path, name, description="", card_extra=None):
        calls["export"].append((Path(run_dir), Path(out_path), name, description))
        return bytes(range(8))

    monkeypatch.setattr(neurocodec.train, "train", train)
    monkeypatch.setattr(neurocodec.train.export, "export_run", export_run)
    # one process whatever the load (without --nproc, train starts one per idle core)
    monkeypatch.setattr(neurocodec.train.distributed, "choose_nproc", lambda *a, **k: (1, "test"))
    return calls


def test_train_new_run_and_export(capsys, tmp_path, fake_train):
    data = tmp_path / "data"
    data.mkdir()
    code, out, err = run(capsys, "train", data, tmp_path / "run", "--steps", "50", "--batch", "2", "--crop", "64",
                         "--lr", "1e-3", "--threads", "1", "--warmup", "5", "--seed", "3", "--quiet",
                         "--export", tmp_path / "m.safetensors", "--name", "my-model")
    assert code == 0, err
    (cfg, run_dir), = fake_train["train"]
    assert run_dir == tmp_path / "run"
    assert (cfg.data, cfg.steps, cfg.batch, cfg.crop, cfg.lr, cfg.threads, cfg.entropy_warmup, cfg.seed) == (
        str(data), 50, 2, 64, 1e-3, 1, 5, 3)
    assert cfg.architecture == TRAIN_DEFAULTS["architecture"]
    assert fake_train["export"] == [(tmp_path / "run", tmp_path / "m.safetensors", "my-model", "")]
    assert "starting" in out and "0001020304050607" in out


def test_train_resumes_with_saved_config(capsys, tmp_path, fake_train):
    data = tmp_path / "data"
    data.mkdir()
    assert main(["train", str(data), str(tmp_path / "run"), "--steps", "50", "--crop", "64", "--batch", "3",
                 "--quiet"]) == 0
    code, out, err = run(capsys, "train", data, tmp_path / "run", "--steps", "80", "--quiet")
    assert code == 0, err
    cfg, _ = fake_train["train"][-1]
    assert (cfg.steps, cfg.crop, cfg.batch) == (80, 64, 3)  # new steps, saved crop and batch
    assert "resuming" in out


@pytest.mark.parametrize("extra, fragment", [
    (["--export", "m.safetensors"], "--name"),
    (["--name", "x"], "--export"),
    (["--export", "m.safetensors", "--name", "Bad Name"], "--name"),
    (["--architecture", "no-such-arch"], "no-such-arch"),
    (["--steps", "0"], "--steps"),
    (["--lr", "-1"], "--lr"),
])
def test_train_usage_errors(capsys, tmp_path, fake_train, extra, fragment):
    (tmp_path / "data").mkdir()
    code, _, err = run(capsys, "train", tmp_path / "data", tmp_path / "run", *extra)
    assert code == 2
    assert_one_error_line(err, fragment)
    assert fake_train["train"] == []


def test_train_missing_data(capsys, tmp_path, fake_train):
    code, _, err = run(capsys, "train", tmp_path / "nothing", tmp_path / "run")
    assert code == 1
    assert_one_error_line(err, "nothing")


def test_train_refuses_other_architecture_on_resume(capsys, tmp_path, fake_train):
    (tmp_path / "data").mkdir()
    assert main(["train", str(tmp_path / "data"), str(tmp_path / "run"), "--quiet"]) == 0
    code, _, err = run(capsys, "train", tmp_path / "data", tmp_path / "run", "--architecture", "conv-hyperprior")
    assert code == 2
    assert_one_error_line(err, "conv-hyperprior")


def test_train_help_lists_every_registered_architecture():
    from neurocodec.cli import ARCHITECTURE_NAMES
    from neurocodec.models import ARCHITECTURES

    assert sorted(ARCHITECTURE_NAMES) == sorted(a for a, cls in ARCHITECTURES.items() if not cls.learns_per_image)


def test_train_model_options_and_init_shrink(capsys, tmp_path, fake_train):
    (tmp_path / "data").mkdir()
    code, _, err = run(capsys, "train", tmp_path / "data", tmp_path / "run", "--quiet", "--init-from", "w.safetensors",
                       "--init-shrink", "--model-option", "refine_hidden=96", "--model-option", "refine_blocks=1")
    assert code == 0, err
    cfg, _ = fake_train["train"][-1]
    assert cfg.model_config == {"refine_hidden": 96, "refine_blocks": 1} and cfg.init_shrink is True
    assert cfg.integer_qualities == 0.0
    code, _, err = run(capsys, "train", tmp_path / "data", tmp_path / "run2", "--quiet", "--integer-qualities", "0.25")
    assert code == 0, err
    assert fake_train["train"][-1][0].integer_qualities == 0.25
    code, _, err = run(capsys, "train", tmp_path / "data", tmp_path / "run", "--model-option", "refine_hidden=64")
    assert code == 2
    assert_one_error_line(err, "cannot resume")


@pytest.mark.parametrize("extra, fragment", [
    (["--init-shrink"], "--init-from"),
    (["--model-option", "refine_hidden"], "KEY=VALUE"),
    (["--model-option", "no_such_option=3"], "no_such_option"),
    (["--integer-qualities", "1.5"], "--integer-qualities"),
])
def test_train_model_option_errors(capsys, tmp_path, fake_train, extra, fragment):
    (tmp_path / "data").mkdir()
    code, _, err = run(capsys, "train", tmp_path / "data", tmp_path / "run", *extra)
    assert code == 2
    assert_one_error_line(err, fragment)
    assert fake_train["train"] == []


def test_train_argv_for_torchrun_keeps_flags_and_model_options(tmp_path):
    from neurocodec.cli import build_parser
    from neurocodec.cli._commands import _train_argv

    args = build_parser().parse_args(["train", "d", "r", "--init-from", "w", "--init-shrink",
                                      "--model-option", "refine_hidden=96", "--nproc", "2"])
    argv = _train_argv(args)
    assert argv[:2] == ["d", "r"] and "--nproc" not in argv
    assert "--init-shrink" in argv and "True" not in argv
    assert argv[argv.index("--model-option") + 1] == "refine_hidden=96"
    again = build_parser().parse_args(["train", *argv])
    assert again.init_shrink is True and again.model_option == ["refine_hidden=96"]
