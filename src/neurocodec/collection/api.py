"""``encode_dir`` and ``decode_dir``: plan a collection job, run it on an engine, keep the manifest.

A job (1) lists the source files (a folder, searched recursively, or a list file),
(2) drops those the manifest records as done with the same source size and mtime (so a
re-run after a crash or Ctrl-C does only what is left, and a re-run of a finished job
does nothing, not even start the engine), (3) runs the rest on the engine, appending one
manifest record per file as results arrive, with a progress bar.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..quality import DEFAULT_QUALITY, check_quality
from .engines import ENGINES, EngineUnavailableError, run, usable_cpus
from .manifest import FAILED, OK, CollectionError, Manifest
from .worker import DECODE, ENCODE, LATENTS, Spec, Task

#: Suffixes of the list files accepted as a source instead of a folder.
LIST_SUFFIXES = (".txt", ".lst", ".jsonl")
DEFAULT_SHARD_MB = 256


@dataclass
class Summary:
    """What a job did. Counts are files; ``failures`` lists (path, error) of every file the
    manifest records as failed after this run (this run's and earlier ones not retried)."""

    manifest: Path
    total: int = 0           # files in the collection
    skipped: int = 0         # done (ok or failed) by an earlier run, not redone
    ok: int = 0              # done in this run
    failed: int = 0          # failed in this run
    bytes: int = 0           # stream bytes of this run's ok files
    pixels: int = 0          # pixels of this run's ok files
    psnr_sum: float = 0.0    # sum of the finite PSNRs of this run's ok files, and their count
    psnr_count: int = 0
    seconds: float = 0.0     # wall time of this run
    engine: str = "local"
    workers: int | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def processed(self) -> int:
        """Files worked on in this run."""
        return self.ok + self.failed

    @property
    def bpp(self) -> float | None:
        """Bits per pixel over this run's ok files (8 x total bytes / total pixels)."""
        from ..metrics import bits_per_pixel

        return bits_per_pixel(self.bytes, self.pixels) if self.pixels else None

    @property
    def psnr(self) -> float | None:
        """Mean PSNR (dB) of this run's ok files (encode only)."""
        return self.psnr_sum / self.psnr_count if self.psnr_count else None


def encode_dir(src: str | Path, dst: str | Path, *, model: str | None = None, quality: float = DEFAULT_QUALITY,
               latents: bool = False, engine: str = "local", workers: int | None = None,
               address: str | None = None, retry_failed: bool = False, threads: int = 1,
               shard_mb: float = DEFAULT_SHARD_MB, progress: bool = False) -> Summary:
    """Compress a collection of images: one ``.ncdc`` file per image under ``dst`` (the
    source tree mirrored, ``a/b.png`` -> ``dst/a/b.ncdc``) and ``dst/manifest.jsonl``.

    Args:
      src: a folder (every image below it, recursively) or a list file: ``.txt``/``.lst``
        with one path per line (``#`` comments; relative paths are relative to the list's
        folder) or ``.jsonl`` with a ``"path"`` per line.
      dst: destination folder (created). It belongs to the job: outputs it holds that the
        manifest does not record as done are replaced.
      model, quality: shipped model (None = default) and quality in [1, 8].
      latents: write the decoder's dequantised latents (float32 (C, H/8, W/8) for the
        shipped model) into shards under ``dst/latents/`` instead of ``.ncdc`` files; read
        them with :class:`~neurocodec.collection.LatentShards`.
      engine: ``"local"`` (a process pool on this machine) or ``"ray"`` (needs the
        ``[ray]`` extra).
      workers: worker processes (default: one per usable CPU of this machine, or of the
        Ray cluster divided by ``threads``).
      address: Ray cluster to join (``"auto"``, ``"ray://head:10001"``...); default: the
        Ray runtime already started in this process, or a new local one.
      retry_failed: also redo files an earlier run recorded as failed.
      threads: torch threads per worker.
      shard_mb: target size of a latent shard in MB.
      progress: show a progress bar on stderr.
    Returns:
      a :class:`Summary`. Files that fail are recorded in the manifest, not raised.
    Raises:
      CollectionError: bad arguments, ``src`` missing or empty, or ``dst`` holding the
        output of a job with other settings; EngineUnavailableError: Ray is not installed
        or not reachable; UnknownModelError: ``model`` is not shipped.
    """
    from .. import zoo
    from ..files import IMAGE_SUFFIXES

    try:
        quality = check_quality(quality)
    except ValueError as exc:
        raise CollectionError(str(exc)) from None
    if not shard_mb > 0:
        raise CollectionError(f"shard size must be positive, got {shard_mb} MB")
    name = zoo.model_info(model).name  # UnknownModelError before any work
    spec = Spec(mode=LATENTS if latents else ENCODE, dst=str(Path(dst).resolve()), model=name, quality=quality,
                threads=threads)
    return _run_job(spec, src, IMAGE_SUFFIXES, "image", None if latents else ".ncdc", engine, workers, address,
                    retry_failed, progress, int(shard_mb * 2**20))


def decode_dir(src: str | Path, dst: str | Path, *, image_format: str = "png", engine: str = "local",
               workers: int | None = None, address: str | None = None, retry_failed: bool = False,
               threads: int = 1, progress: bool = False) -> Summary:
    """Decompress a collection of ``.ncdc`` files (a folder, e.g. an ``encode_dir``
    destination, or a list file) into images under ``dst``, mirroring the tree
    (``a/b.ncdc`` -> ``dst/a/b.png``), with ``dst/manifest.jsonl``. The model of each file
    is read from its header. ``image_format``: ``png``, ``bmp``, ``tiff`` or ``ppm``; the
    other arguments, the return value and the errors are those of :func:`encode_dir`.
    """
    from ..files import OUTPUT_FORMATS, STREAM_SUFFIXES

    if image_format not in OUTPUT_FORMATS:
        raise CollectionError(f"image format must be one of {', '.join(OUTPUT_FORMATS)}, got {image_format!r}")
    spec = Spec(mode=DECODE, dst=str(Path(dst).resolve()), image_format=image_format, threads=threads)
    return _run_job(spec, src, STREAM_SUFFIXES, ".ncdc", OUTPUT_FORMATS[image_format], engine, workers, address,
                    retry_failed, progress, 0)


def _run_job(spec: Spec, src, suffixes, what: str, out_suffix: str | None, engine: str, workers: int | None,
             address: str | None, retry_failed: bool, progress: bool, shard_bytes: int) -> Summary:
    if engine not in ENGINES:
        raise CollectionError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise EngineUnavailableError("the Ray engine needs Ray: pip install 'neurocodec[ray]'")
    for label, value in (("workers", workers), ("threads", spec.threads)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise CollectionError(f"{label} must be a whole number >= 1, got {value!r}")
    dst = Path(spec.dst)
    if dst.exists() and not dst.is_dir():
        raise CollectionError(f"{dst}: is a file; the destination must be a folder")
    manifest = Manifest(dst)
    _check_settings(manifest, spec)
    tasks = _tasks(spec, src, suffixes, what, out_suffix)
    summary = Summary(manifest=manifest.path, total=len(tasks), engine=engine,
                      workers=workers or (usable_cpus() if engine == "local" else None))
    todo = [t for t in tasks if not _is_done(manifest.records.get(t.path), t, dst, retry_failed)]
    summary.skipped = len(tasks) - len(todo)
    tic = time.perf_counter()
    if todo:
        _execute(spec, todo, manifest, summary, engine, workers, address, progress, shard_bytes)
    summary.seconds = time.perf_counter() - tic
    keys = {t.path for t in tasks}
    summary.failures = [(r["path"], r["error"] or "failed") for r in manifest.records.values()
                        if r["status"] == FAILED and r["path"] in keys]
    return summary


def _execute(spec: Spec, todo: list[Task], manifest: Manifest, summary: Summary, engine: str,
             workers: int | None, address: str | None, progress: bool, shard_bytes: int) -> None:
    writer = None
    if spec.mode == LATENTS:
        from .latents import ShardWriter

        writer = ShardWriter(Path(spec.dst), {r["shard"] for r in manifest.records.values() if r.get("shard")},
                             shard_bytes)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=summary.total, initial=summary.skipped, desc=spec.mode, unit="file", file=sys.stderr,
                   dynamic_ncols=True)
    manifest.open()

    def record(done: dict) -> None:
        manifest.append(done)
        if done["status"] == OK:
            summary.ok += 1
            summary.bytes += done["bytes"]
            summary.pixels += done["width"] * done["height"]
            if done["psnr"] is not None:
                summary.psnr_sum += done["psnr"]
                summary.psnr_count += 1
        else:
            summary.failed += 1

    try:
        for done, latents in run(engine, spec, todo, workers, address):
            if latents is not None:
                for completed in writer.add(done, latents):
                    record(completed)
            else:
                record(done)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(failed=summary.failed, refresh=False)
    finally:
        try:
            if writer is not None:  # also on Ctrl-C: latents already computed are kept
                for completed in writer.flush():
                    record(completed)
        finally:
            manifest.close()
            if bar is not None:
                bar.close()


def _check_settings(manifest: Manifest, spec: Spec) -> None:
    """A destination holds one job's outputs: resuming with other settings would mix them."""
    wanted = {"mode": spec.mode, "model": spec.model, "quality": spec.quality}
    if spec.mode == DECODE:
        wanted = {"mode": spec.mode, "format": spec.image_format}
    for record in manifest.records.values():
        found = {k: record.get(k) for k in wanted}
        if found != wanted:
            shown = ", ".join(f"{k} {v}" for k, v in found.items())
            raise CollectionError(f"{manifest.path} records a job with {shown}; resume it with the same settings "
                                  "or choose another destination")


def _is_done(record: dict | None, task: Task, dst: Path, retry_failed: bool) -> bool:
    if record is None:
        return False
    if (record.get("source_size"), record.get("source_mtime_ns")) != (tuple(task.stat) if task.stat else (None, None)):
        return False  # the source changed (or appeared) since it was done
    if record["status"] == FAILED:
        return not retry_failed
    if record.get("shard"):
        return (dst / record["shard"]).is_file()
    return record.get("output") is not None and (dst / record["output"]).is_file()


def _tasks(spec: Spec, src, suffixes, what: str, out_suffix: str | None) -> list[Task]:
    """The job's files, with their manifest keys and outputs."""
    from ..files import OutputPlanError, plan_outputs

    sources = _sources(Path(src), suffixes, what)
    dst = Path(spec.dst)
    if out_suffix is None:  # latents: no output file per source
        pairs = [(source, None) for source in sources]
    else:
        try:  # also refuses two sources with one output (a.png and a.jpg -> a.ncdc)
            pairs = plan_outputs(sources, [str(src)], str(dst) + os.sep, out_suffix)
        except OutputPlanError as exc:
            raise CollectionError(str(exc)) from None
    tasks = []
    for source, dest in pairs:
        output = None if dest is None else dest.relative_to(dst).as_posix()
        tasks.append(Task(path=source.relative().as_posix(), source=str(source.path.resolve()), output=output,
                          stat=_stat(source.path)))
    return tasks


def _sources(src: Path, suffixes, what: str):
    from ..files import Source, expand_inputs

    if src.is_dir():
        sources, errors = expand_inputs([str(src)], suffixes, what)
        if errors:
            raise CollectionError(errors[0])
        return sources
    if not src.is_file():
        raise CollectionError(f"{src}: no such file or directory")
    if src.suffix.lower() not in LIST_SUFFIXES:
        raise CollectionError(f"{src}: the source must be a folder or a list of files ({', '.join(LIST_SUFFIXES)})")
    paths = []
    for number, line in enumerate(src.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if src.suffix.lower() == ".jsonl":
            try:
                line = json.loads(line)["path"]
            except (ValueError, KeyError, TypeError):
                raise CollectionError(f"{src}: line {number} is not a JSON object with a \"path\"") from None
        path = Path(line)
        paths.append(path if path.is_absolute() else src.parent / path)
    if not paths:
        raise CollectionError(f"{src}: lists no files")
    paths = [Path(os.path.abspath(p)) for p in paths]
    # the output tree mirrors the listed files below the deepest folder they all share
    root = Path(os.path.commonpath([str(p.parent) for p in paths]))
    unique = list(dict.fromkeys(paths))
    return [Source(p, root) for p in unique]


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns
