"""Latent shards: what ``encode_dir(..., latents=True)`` writes instead of ``.ncdc`` files.

Layout under the destination folder::

    manifest.jsonl                  one record per image; for an ok image also
                                    "shard", "offset", "shape", "dtype"
    latents/shard-00000.npy         1-D float32 arrays (NumPy .npy), the flattened latents
    latents/shard-00001.npy         of many images one after another

Image ``r`` is ``np.load(dst / r["shard"], mmap_mode="r")[r["offset"]:][:prod(r["shape"])]``
reshaped to ``r["shape"]`` = (C, h, w): plain NumPy files that any process can memory-map
(random access without reading whole shards), so a torch ``DataLoader`` reads them with no
extra dependency (:class:`LatentShards`). Latents have the image's own size, so images of
different sizes give arrays of different shapes.

Shards are written by the driver only, atomically, and their records are appended to the
manifest after the shard is on disk: a crash loses at most the shard being filled, whose
images are redone on the next run. A shard that no record points to (a crash between the
two writes) is deleted when the next run starts.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

from .manifest import OK, read_manifest

SHARD_FOLDER = "latents"
_SHARD_NAME = re.compile(r"shard-(\d+)\.npy$")


class ShardWriter:
    """Collects latents and writes a shard whenever ``shard_bytes`` have accumulated.

    Args:
      dst: destination folder; shards go to ``dst/latents/``.
      referenced: shard names (``latents/shard-NNNNN.npy``) that manifest records point to;
        other shard files are leftovers of a crash and are removed.
      shard_bytes: target shard size (a shard holds at least one image).
    """

    def __init__(self, dst: Path, referenced: set[str], shard_bytes: int):
        from ..files import atomic_write

        self._write = atomic_write
        self.dst = Path(dst)
        self.folder = self.dst / SHARD_FOLDER
        self.shard_bytes = shard_bytes
        self._pending: list[tuple[dict, np.ndarray]] = []
        self._size = 0
        highest = -1
        if self.folder.is_dir():
            for path in self.folder.iterdir():
                match = _SHARD_NAME.fullmatch(path.name)
                if not match:
                    continue
                if f"{SHARD_FOLDER}/{path.name}" in referenced:
                    highest = max(highest, int(match.group(1)))
                else:
                    path.unlink()
        self._next = highest + 1

    def add(self, record: dict, latents: np.ndarray) -> list[dict]:
        """Queue one image's latents, float32 (C, h, w). Returns the records that are now
        on disk (those of a shard just written), for the manifest."""
        self._pending.append((record, np.ascontiguousarray(latents, dtype=np.float32)))
        self._size += latents.size * 4
        return self.flush() if self._size >= self.shard_bytes else []

    def flush(self) -> list[dict]:
        """Write the queued latents as one shard; returns their completed records."""
        if not self._pending:
            return []
        name = f"{SHARD_FOLDER}/shard-{self._next:05d}.npy"
        self._next += 1
        flat = np.concatenate([a.reshape(-1) for _, a in self._pending])
        buffer = io.BytesIO()
        np.save(buffer, flat, allow_pickle=False)
        self._write(self.dst / name, buffer.getvalue(), overwrite=True)
        done, offset = [], 0
        for record, array in self._pending:
            done.append({**record, "shard": name, "offset": offset, "shape": list(array.shape), "dtype": "float32"})
            offset += array.size
        self._pending, self._size = [], 0
        return done


class LatentShards:
    """The latents of a collection, as a map-style dataset.

    ``len(ds)`` images (the ok ones, sorted by path); ``ds[i]`` is a float32 numpy array
    (C, h, w), a writable copy (``torch.from_numpy`` takes it as it is); ``ds.records[i]``
    is its manifest record (path, quality, bytes, bpp, psnr...). It has ``__len__`` and
    ``__getitem__``, which is all ``torch.utils.data.DataLoader`` needs; with images of
    different sizes use ``batch_size=1`` or a ``collate_fn`` that crops. Shards are
    memory-mapped on first use in each process, so DataLoader worker processes share the
    page cache instead of copying shards.

    Args:
      folder: the destination folder of an ``encode_dir(..., latents=True)`` job.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.records = sorted((r for r in read_manifest(self.folder) if r["status"] == OK and r.get("shard")),
                              key=lambda r: r["path"])
        self._maps: dict[str, np.ndarray] = {}
        self._pid = None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> np.ndarray:
        import os

        record = self.records[index]
        if self._pid != os.getpid():  # a forked DataLoader worker maps the files afresh
            self._maps, self._pid = {}, os.getpid()
        shard = self._maps.get(record["shard"])
        if shard is None:
            shard = self._maps[record["shard"]] = np.load(self.folder / record["shard"], mmap_mode="r")
        count = int(np.prod(record["shape"]))
        return np.array(shard[record["offset"]:record["offset"] + count]).reshape(record["shape"])
