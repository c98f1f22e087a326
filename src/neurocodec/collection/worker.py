"""The work on one file, the same in every engine (a local process or a Ray actor).

A :class:`Worker` is created once per worker process with the job's :class:`Spec`; it
loads the model on its first file and then turns :class:`Task` s into manifest records.
Nothing a single file does can stop the job: every exception is caught and becomes a
record with ``status: "failed"`` and a one-line ``error``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

from .manifest import FAILED, OK

#: ``Spec.mode`` values: .ncdc files, latent arrays, decoded images.
ENCODE, LATENTS, DECODE = "encode", "latents", "decode"


@dataclass(frozen=True)
class Spec:
    """What every file of a job gets done to (sent once to each worker).

    Args:
      mode: ``"encode"`` (write ``.ncdc`` files), ``"latents"`` (return latent arrays to the
        driver, which writes the shards) or ``"decode"`` (write images).
      dst: absolute destination folder.
      model, quality: shipped model name and quality (encode, latents).
      image_format: ``png``, ``bmp``, ``tiff`` or ``ppm`` (decode).
      threads: torch threads per worker.
    """

    mode: str
    dst: str
    model: str | None = None
    quality: float | None = None
    image_format: str | None = None
    threads: int = 1


@dataclass(frozen=True)
class Task:
    """One file: ``path`` is its key in the manifest (relative, '/'-separated), ``source``
    the file to read, ``output`` the file to write relative to ``Spec.dst`` (None for
    latents), ``stat`` the source's (size, mtime_ns) when the job was planned (None if it
    could not be read)."""

    path: str
    source: str
    output: str | None
    stat: tuple[int, int] | None


def failed_record(spec: Spec, task: Task, error: str, seconds: float = 0.0) -> dict:
    """The manifest record of a file that could not be done."""
    return _record(spec, task, status=FAILED, error=error, seconds=seconds)


def _record(spec: Spec, task: Task, **fields) -> dict:
    record = {"path": task.path, "source": task.source, "mode": spec.mode, "status": OK, "output": task.output,
              "bytes": None, "bpp": None, "psnr": None, "model": spec.model, "quality": spec.quality,
              "width": None, "height": None, "error": None, "seconds": None,
              "source_size": task.stat[0] if task.stat else None,
              "source_mtime_ns": task.stat[1] if task.stat else None}
    if spec.mode == DECODE:
        record["format"] = spec.image_format
    record.update(fields)
    if record["status"] == FAILED:
        record["output"] = None
    return record


class Worker:
    """Does the files of one job in one process (see the module docstring)."""

    def __init__(self, spec: Spec):
        self.spec = spec
        self._ready = False
        self._codec = None
        self._stream_codecs: dict = {}  # decode: a Codec per (model, weight hash) met

    def run(self, task: Task):
        """Do one file. Returns (record, latents): latents is a float32 (C, h, w) array in
        ``latents`` mode when the file succeeded, else None."""
        from ..files import describe

        tic = time.perf_counter()
        try:
            self._prepare()
            tic = time.perf_counter()  # a file's time does not include loading the model
            if self.spec.mode == DECODE:
                record, latents = self._decode(task), None
            else:
                record, latents = self._encode(task)
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop a collection
            from ..errors import NeurocodecError

            message = describe(exc, task.path)
            if not isinstance(exc, (NeurocodecError, OSError)):
                message = f"{task.path}: internal error: {type(exc).__name__}: {exc}"
            return failed_record(self.spec, task, " ".join(message.split()), time.perf_counter() - tic), None
        record["seconds"] = round(time.perf_counter() - tic, 4)
        return record, latents

    def _prepare(self) -> None:
        """On the first file: torch threads, and the model of an encoding job (loaded here,
        not in __init__, so that a failure is reported like any other)."""
        if self._ready:
            return
        import torch

        torch.set_num_threads(self.spec.threads)
        if self.spec.mode != DECODE:
            from ..codec import Codec

            self._codec = Codec(self.spec.model, self.spec.quality)
        self._ready = True

    def _encode(self, task: Task):
        from ..codec import to_array
        from ..files import atomic_write
        from ..metrics import bits_per_pixel, psnr

        array = to_array(Path(task.source))  # the loader of the API and the CLI
        latents = None
        if self.spec.mode == LATENTS:
            data, reconstruction, latents = self._codec.compress_with_latents(array)
        else:
            data, reconstruction = self._codec.compress_with_reconstruction(array)
            # The planner chose this output to be (re)made: a file already there is the
            # leftover of a run that stopped before recording it, so it is replaced.
            atomic_write(Path(self.spec.dst) / task.output, data, overwrite=True)
        height, width = array.shape[:2]
        quality = psnr(array, reconstruction)
        return _record(self.spec, task, bytes=len(data), bpp=round(bits_per_pixel(len(data), height * width), 6),
                       psnr=round(quality, 4) if math.isfinite(quality) else None, model=self._codec.name,
                       width=width, height=height), latents

    def _decode(self, task: Task) -> dict:
        from ..codec import Codec
        from ..files import atomic_write, image_bytes
        from ..metrics import bits_per_pixel

        data = Path(task.source).read_bytes()
        codec = Codec.for_stream(data, self._stream_codecs)
        pixels = codec.decompress(data)
        atomic_write(Path(self.spec.dst) / task.output, image_bytes(pixels, self.spec.image_format), overwrite=True)
        height, width = pixels.shape[:2]
        return _record(self.spec, task, bytes=len(data), bpp=round(bits_per_pixel(len(data), height * width), 6),
                       model=codec.name, width=width, height=height)
