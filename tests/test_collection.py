"""Collections: encode-dir / decode-dir on the local process pool and on Ray, the manifest,
resuming, per-file failures and latent shards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from neurocodec.collection import (
    CollectionError,
    EngineUnavailableError,
    LatentShards,
    decode_dir,
    encode_dir,
    read_manifest,
)

GOOD = {"a.png": (40, 56), "b.jpg": (48, 40), "sub/c.png": (33, 70)}


def _picture(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    img = 90 + 60 * np.sin(y / 7.0)[..., None] + 40 * np.cos(x / 5.0)[..., None] * np.array([1.0, 0.6, 0.3])
    return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    """Three small images (one JPEG, one in a sub-folder), a corrupt PNG and a non-image."""
    from PIL import Image

    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    for k, (name, (h, w)) in enumerate(GOOD.items()):
        Image.fromarray(_picture(h, w, k)).save(root / name, quality=95)
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
    (root / "notes.txt").write_text("not an image")
    return root


def _records(dst: Path) -> dict[str, dict]:
    return {r["path"]: r for r in read_manifest(dst)}


def _check_collection(photos: Path, dst: Path) -> dict[str, dict]:
    """Every good image is compressed and decodes to the PSNR its record states; the
    corrupt one is listed as failed."""
    from PIL import Image

    import neurocodec
    from neurocodec.metrics import psnr

    records = _records(dst)
    assert sorted(records) == sorted([*GOOD, "corrupt.png"])
    for name in GOOD:
        record = records[name]
        assert record["status"] == "ok" and record["error"] is None
        stream = dst / record["output"]
        assert record["output"] == Path(name).with_suffix(".ncdc").as_posix()
        assert stream.stat().st_size == record["bytes"]
        original = np.asarray(Image.open(photos / name).convert("RGB"))
        decoded = neurocodec.decompress(stream.read_bytes())
        assert decoded.shape == original.shape
        assert abs(psnr(original, decoded) - record["psnr"]) < 1e-3
        assert record["bpp"] == pytest.approx(8 * record["bytes"] / original.shape[0] / original.shape[1], rel=1e-5)
        assert record["model"] == neurocodec.Codec().name and record["quality"] == 4.0
    failed = records["corrupt.png"]
    assert failed["status"] == "failed" and failed["output"] is None
    assert "not an image" in failed["error"]
    assert not (dst / "corrupt.ncdc").exists()
    return records


@pytest.mark.slow  # worker processes import torch and load the model
def test_encode_dir_local_pool_resume_and_decode_dir(photos: Path, tmp_path: Path):
    dst = tmp_path / "compressed"
    summary = encode_dir(photos, dst, workers=2)
    assert (summary.total, summary.ok, summary.failed, summary.skipped) == (4, 3, 1, 0)
    assert [path for path, _ in summary.failures] == ["corrupt.png"]
    records = _check_collection(photos, dst)

    # a crash: the last record torn in half, one output lost, one source changed
    lines = (dst / "manifest.jsonl").read_text().splitlines()
    torn = json.loads(lines[-1])["path"]
    (dst / "manifest.jsonl").write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:25])
    lost = next(name for name in GOOD if name != torn)
    (dst / records[lost]["output"]).unlink()
    changed = next(name for name in GOOD if name not in (torn, lost))
    from PIL import Image

    Image.fromarray(_picture(*GOOD[changed], seed=99)).save(photos / changed, quality=95)
    summary = encode_dir(photos, dst, workers=1)
    assert summary.processed == 3 and summary.skipped == 1
    _check_collection(photos, dst)

    # nothing left to do: no engine, the manifest untouched
    before = (dst / "manifest.jsonl").stat().st_mtime_ns
    summary = encode_dir(photos, dst)
    assert (summary.processed, summary.skipped, len(summary.failures)) == (0, 4, 1)
    assert (dst / "manifest.jsonl").stat().st_mtime_ns == before

    restored = tmp_path / "restored"
    summary = decode_dir(dst, restored, workers=1)
    assert (summary.ok, summary.failed) == (3, 0)
    import neurocodec

    for name in GOOD:
        image = np.asarray(Image.open((restored / name).with_suffix(".png")))
        np.testing.assert_array_equal(image, neurocodec.decompress((dst / name).with_suffix(".ncdc").read_bytes()))
    assert {r["path"] for r in read_manifest(restored)} == {str(Path(n).with_suffix(".ncdc")) for n in GOOD}


@pytest.mark.slow  # worker processes import torch and load the model
def test_latents_are_sharded_and_readable(photos: Path, tmp_path: Path):
    import neurocodec
    from PIL import Image

    dst = tmp_path / "latents"
    summary = encode_dir(photos, dst, latents=True, workers=1, shard_mb=1e-6, quality=6)  # one image per shard
    assert (summary.ok, summary.failed) == (3, 1)
    shards = sorted(p.name for p in (dst / "latents").iterdir())
    assert shards == ["shard-00000.npy", "shard-00001.npy", "shard-00002.npy"]
    assert not list(dst.rglob("*.ncdc"))

    dataset = LatentShards(dst)
    assert len(dataset) == 3 and [r["path"] for r in dataset.records] == sorted(GOOD)
    codec = neurocodec.Codec(quality=6)
    for i, record in enumerate(dataset.records):
        image = np.asarray(Image.open(photos / record["path"]).convert("RGB"))
        data, _, expected = codec.compress_with_latents(image)
        latents = dataset[i]
        h, w = GOOD[record["path"]]
        assert latents.dtype == np.float32 and latents.flags.writeable
        assert latents.shape == (192, -(-h // 32) * 4, -(-w // 32) * 4) == tuple(record["shape"])
        np.testing.assert_array_equal(latents, expected)
        assert record["bytes"] == len(data)

    torch = pytest.importorskip("torch")
    loader = torch.utils.data.DataLoader(dataset, batch_size=1)
    assert [tuple(batch.shape[1:]) for batch in loader] == [tuple(r["shape"]) for r in dataset.records]

    # an orphan shard (crash between shard and manifest) is removed by the next run,
    # and a forgotten image is redone into a new shard
    (dst / "latents" / "shard-00007.npy").write_bytes(b"junk")
    lines = (dst / "manifest.jsonl").read_text().splitlines()
    kept = [ln for ln in lines if json.loads(ln)["path"] != "a.png"]
    (dst / "manifest.jsonl").write_text("\n".join(kept) + "\n")
    summary = encode_dir(photos, dst, latents=True, workers=1, quality=6)
    assert summary.processed == 1
    assert sorted(p.name for p in (dst / "latents").iterdir())[-1] == "shard-00003.npy"
    assert len(LatentShards(dst)) == 3


def test_list_file_source_and_settings_guard(photos: Path, tmp_path: Path):
    from neurocodec.collection.api import _sources

    listing = tmp_path / "list.txt"
    listing.write_text(f"# two files\nphotos/a.png\n{photos / 'sub' / 'c.png'}\n\nphotos/missing.png\n")
    sources = _sources(listing, (".png",), "image")
    assert [s.relative().as_posix() for s in sources] == ["a.png", "sub/c.png", "missing.png"]
    jsonl = tmp_path / "list.jsonl"
    jsonl.write_text(json.dumps({"path": "photos/b.jpg"}) + "\n")
    assert [s.relative().as_posix() for s in _sources(jsonl, (".jpg",), "image")] == ["b.jpg"]

    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "manifest.jsonl").write_text(json.dumps({"path": "a.png", "mode": "encode", "status": "ok",
                                                    "model": "block-hyperprior-mse", "quality": 4.0}) + "\n")
    with pytest.raises(CollectionError, match="resume it with the same settings"):
        encode_dir(listing, dst, quality=5)
    with pytest.raises(CollectionError, match="resume it with the same settings"):
        encode_dir(listing, dst, latents=True)
    with pytest.raises(CollectionError, match="no such file"):
        encode_dir(tmp_path / "nowhere", dst)
    with pytest.raises(CollectionError, match="folder or a list"):
        encode_dir(photos / "a.png", dst)
    with pytest.raises(CollectionError, match="unknown engine"):
        encode_dir(photos, dst, engine="spark")
    with pytest.raises(CollectionError, match="workers must be"):
        encode_dir(photos, dst, workers=0)
    (dst / "manifest.jsonl").write_text("{broken\n" + json.dumps({"path": "x"}) + "\n")
    with pytest.raises(CollectionError, match="line 1 is not a manifest record"):
        encode_dir(photos, dst)


def test_cli_errors_are_one_line(photos: Path, tmp_path: Path, capsys):
    from neurocodec.cli import main

    assert main(["encode-dir", str(photos), str(tmp_path / "o"), "--workers", "0"]) == 2
    assert main(["encode-dir", str(photos), str(tmp_path / "o"), "--address", "auto"]) == 2
    assert main(["encode-dir", str(photos), str(tmp_path / "o"), "--shard-mb", "5"]) == 2
    assert main(["encode-dir", str(photos), str(tmp_path / "o"), "-m", "no-such-model"]) == 2
    assert main(["decode-dir", str(tmp_path / "none"), str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 5 and all(line.startswith("neurocodec: error: ") for line in err)


def test_ray_missing_is_a_clear_error(photos: Path, tmp_path: Path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(EngineUnavailableError, match=r"pip install 'neurocodec\[ray\]'"):
        encode_dir(photos, tmp_path / "o", engine="ray")


@pytest.mark.slow  # worker processes import torch and load the model
def test_encode_dir_on_ray_with_a_corrupt_image(photos: Path, tmp_path: Path, capsys):
    """``neurocodec encode-dir --engine ray`` on a local Ray with 2 CPUs (started here once,
    and used by the commands, which join a Ray runtime the process already has)."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'neurocodec[ray]')")
    import ray

    from neurocodec.cli import main

    from neurocodec.collection.engines import start_ray

    try:
        start_ray(num_cpus=2)
    except EngineUnavailableError as exc:  # e.g. its node missed Ray's 30 s start-up limit on an overloaded machine
        pytest.skip(f"Ray cannot start here: {exc}")
    try:
        dst = tmp_path / "compressed"
        command = ["encode-dir", str(photos), str(dst), "--engine", "ray", "--workers", "2"]
        assert main(command) == 1                      # 1: the manifest lists a failed file
        out, err = capsys.readouterr()
        assert "encoded 3 of 4 files, 1 failed, 0 already done (ray engine, 2 workers" in out
        assert err.strip().splitlines() == [f"neurocodec: error: {photos / 'corrupt.png'}: not an image "
                                            "(or a format Pillow cannot read)"]
        _check_collection(photos, dst)

        manifest = (dst / "manifest.jsonl").read_bytes()
        assert main(command) == 1                      # the re-run does no work
        assert "encoded 0 of 4 files, 0 failed, 4 already done" in capsys.readouterr().out
        assert (dst / "manifest.jsonl").read_bytes() == manifest

        restored = tmp_path / "restored"               # decode-dir on Ray too
        assert main(["decode-dir", str(dst), str(restored), "--engine", "ray", "--workers", "2"]) == 0
        assert sorted(p.relative_to(restored).as_posix() for p in restored.rglob("*.png")) == [
            "a.png", "b.png", "sub/c.png"]
        assert ray.is_initialized()                    # a Ray runtime it did not start is left running
    finally:
        ray.shutdown()


def test_latents_refuse_tiled_images():
    import neurocodec
    from neurocodec import ImageError

    with pytest.raises(ImageError, match="at most 2048 pixels a side"):
        neurocodec.Codec().compress_with_latents(np.zeros((8, 2049, 3), np.uint8))


def test_collection_import_is_light(subprocess_env):
    import subprocess
    import sys

    code = ("import sys, neurocodec.collection, neurocodec.cli\n"
            "heavy = [m for m in ('torch', 'ray', 'torchvision', 'matplotlib') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    result = subprocess.run([sys.executable, "-c", code], env=subprocess_env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
