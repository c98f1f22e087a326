"""Image-folder training data: preloaded images, random crops and flips.

Images are decoded once into uint8 arrays (optionally also at reduced scales, which
removes the JPEG artefacts of web photographs and matches the detail of Kodak-sized
images), and crops are drawn from a seeded ``numpy.random.Generator`` so a resumed run
can continue the exact same stream.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".ppm", ".tif", ".tiff"}


def find_images(folder: str | Path) -> list[Path]:
    """All image files below ``folder`` (recursive), sorted. Raises FileNotFoundError if none."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"training folder not found: {root}")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {root}")
    return files


class CropDataset:
    """Random square crops from a folder of images.

    Args:
      folder: image folder (searched recursively).
      crop: crop side in pixels; smaller images are skipped.
      scales: each image is kept at each of these scale factors (Lanczos downscaling).
    """

    def __init__(self, folder: str | Path, crop: int = 128, scales: tuple[float, ...] = (1.0,)):
        from PIL import Image

        self.crop = crop
        self.images: list[np.ndarray] = []
        for path in find_images(folder):
            with Image.open(path) as im:
                im = im.convert("RGB")
                for s in scales:
                    size = (round(im.width * s), round(im.height * s))
                    scaled = im if s == 1.0 else im.resize(size, Image.LANCZOS)
                    if min(scaled.size) >= crop:
                        self.images.append(np.asarray(scaled, dtype=np.uint8))
        if not self.images:
            raise ValueError(f"no image in {folder} is at least {crop}x{crop} pixels")
        areas = np.array([im.shape[0] * im.shape[1] for im in self.images], dtype=np.float64)
        self.weights = areas / areas.sum()  # sample images in proportion to their area

    def batch(self, rng: np.random.Generator, size: int, part: slice | None = None) -> np.ndarray:
        """uint8 (size, crop, crop, 3) random crops with random horizontal flips.

        ``part`` keeps only those crops of the batch, uint8 (len(part), crop, crop, 3): the
        random numbers of the whole batch are drawn all the same, so the stream (and what
        the next batch is) does not depend on which part a training process keeps.
        """
        keep = range(size)[part] if part is not None else range(size)
        out = np.empty((len(keep), self.crop, self.crop, 3), dtype=np.uint8)
        picks = rng.choice(len(self.images), size=size, p=self.weights)
        for i, k in enumerate(picks):
            im = self.images[k]
            top = rng.integers(0, im.shape[0] - self.crop + 1)
            left = rng.integers(0, im.shape[1] - self.crop + 1)
            flip = rng.random() < 0.5
            if i in keep:
                patch = im[top:top + self.crop, left:left + self.crop]
                out[i - keep.start] = patch[:, ::-1] if flip else patch
        return out


class Prefetcher:
    """Calls ``draw()`` ahead of time in a background thread, so that drawing and preparing
    the next batches overlaps the current training step (numpy cropping and torch's
    kernels release the GIL; Python code in between takes it briefly).

    Items come out of :meth:`get` in the order ``draw`` made them, and ``draw`` is only
    ever called from the one background thread, so a seeded stream stays the same stream;
    a caller that checkpoints a random state returns it from ``draw`` with each item (the
    state after that item), since the thread is ahead of the training loop. An exception
    in ``draw`` is raised by the :meth:`get` that would have returned its item.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, draw: Callable[[], Any], depth: int = 2):
        self._draw = draw
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="neurocodec-prefetch", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                item = (True, self._draw())
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                item = (False, exc)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if not item[0]:
                return

    def get(self) -> Any:
        """The next item (waits for it if the thread is behind)."""
        ok, value = self._queue.get()
        if not ok:
            raise value
        return value

    def close(self) -> None:
        """Stop the thread (an item being drawn is finished and dropped)."""
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> "Prefetcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def probe_crops(folder: str | Path, multiple: int, count: int = 4, crop: int = 256, scale: float = 0.5,
                seed: int = 0) -> np.ndarray:
    """A fixed set of training crops for measurements made at export (encoder hints):
    ``count`` random crops, drawn with ``seed``, of the images at ``scale`` (or at full
    size if none is large enough at that scale). The side is ``crop`` rounded down to a
    multiple of ``multiple``, or the largest such side some image allows.

    Returns:
      uint8 (count, side, side, 3).
    """
    for side in range(crop // multiple * multiple, 0, -multiple):
        for factor in (scale, 1.0):
            try:
                data = CropDataset(folder, side, (factor,))
            except ValueError:  # no image this large at this scale
                continue
            return data.batch(np.random.default_rng(seed), count)
    raise ValueError(f"no image in {folder} is at least {multiple}x{multiple} pixels")
