"""Files of a batch job: expanding inputs, choosing outputs, atomic writes, writing images.

The ``neurocodec`` commands and :mod:`neurocodec.collection` share these helpers, so they
live below both (one direction only: the CLI imports collection, never the reverse).
Nothing heavy at import time (the standard library and the container format's
constants; Pillow is imported when an image is written), so commands start fast. Images
are read by :func:`neurocodec.codec.open_image`, the one loader of the API, the CLI and
collections.
"""

from __future__ import annotations

import glob
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .errors import NeurocodecError
from .format import FILE_EXTENSION


class FileError(NeurocodecError):
    """A problem with one file; the message starts with the file's path."""

    #: :func:`describe` does not prefix the path again (other exception types may set it too).
    names_its_file = True


class OutputExistsError(FileError):
    """An output file exists and may not be replaced."""

    def __init__(self, path: Path):
        super().__init__(f"{path}: already exists (use --overwrite to replace it)")


class OutputPlanError(FileError, ValueError):
    """The outputs asked for cannot be written as planned (two inputs onto one output,
    an output over its input, a file where a folder is needed)."""


#: Files a folder or glob pattern contributes to ``neurocodec encode``.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".pnm", ".tif", ".tiff")
#: Files a folder or glob pattern contributes to ``neurocodec decode``.
STREAM_SUFFIXES = (FILE_EXTENSION,)


@dataclass(frozen=True)
class Source:
    """An input file, and the folder its output path is taken relative to (or None)."""

    path: Path
    root: Path | None = None  # set for files found inside a folder or by a glob pattern

    def relative(self) -> Path:
        if self.root is None:
            return Path(self.path.name)
        return self.path.relative_to(self.root)


def _glob_root(pattern: str) -> Path:
    """The leading part of a glob pattern that has no wildcard, as a folder."""
    parts = Path(pattern).parts
    fixed: list[str] = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _walk(folder: Path, suffixes: Iterable[str]) -> list[Path]:
    suffixes = tuple(suffixes)
    return sorted(p for p in folder.rglob("*")
                  if p.suffix.lower() in suffixes and p.is_file() and not p.name.startswith("."))


def expand_inputs(args: list[str], suffixes: Iterable[str], what: str) -> tuple[list[Source], list[str]]:
    """Turn command-line inputs into files.

    A file is taken as it is (whatever its name); a folder contributes every file below
    it whose suffix is in ``suffixes`` (recursively); anything else containing ``*``,
    ``?`` or ``[`` is a glob pattern (``**`` matches folders recursively) whose matches
    are treated like the above.

    Returns:
      (sources, errors): the files in order without duplicates, and one message per
      input that gave nothing (missing file, empty folder, pattern without matches).
    """
    suffixes = tuple(suffixes)
    sources: list[Source] = []
    errors: list[str] = []
    seen: set[Path] = set()

    def add(source: Source) -> None:
        key = source.path.resolve()
        if key not in seen:
            seen.add(key)
            sources.append(source)

    for arg in args:
        path = Path(arg)
        if path.is_dir():
            found = _walk(path, suffixes)
            if not found:
                errors.append(f"{arg}: folder contains no {what} files ({', '.join(suffixes)})")
            for p in found:
                add(Source(p, path))
        elif path.exists():
            add(Source(path))
        elif glob.has_magic(arg):
            root = _glob_root(arg)
            matched = 0
            for m in sorted(glob.glob(arg, recursive=True)):
                mp = Path(m)
                if mp.is_dir():
                    for p in _walk(mp, suffixes):
                        add(Source(p, root))
                        matched += 1
                elif mp.is_file() and mp.suffix.lower() in suffixes:
                    add(Source(mp, root))
                    matched += 1
            if not matched:
                errors.append(f"{arg}: no {what} files match this pattern")
        else:
            errors.append(f"{arg}: no such file or directory")
    return sources, errors


def plan_outputs(sources: list[Source], inputs: list[str], output: str | None, suffix: str) -> list[tuple[Source, Path]]:
    """Pair each source with its output path.

    Without ``-o`` an output goes next to its input with ``suffix``. With ``-o``: a single
    input file named on the command line is written to ``output`` itself, unless
    ``output`` is an existing folder or ends with a slash; otherwise ``output`` is a
    folder (created when missing) and each input keeps its path relative to the folder
    or pattern it was found by.

    Raises:
      OutputPlanError: ``-o`` is an existing file but there are several inputs, or two inputs
        would be written to the same output.
    """
    pairs: list[tuple[Source, Path]] = []
    if output is None:
        pairs = [(s, s.path.with_suffix(suffix)) for s in sources]
    else:
        out = Path(output)
        as_folder = (out.is_dir() or output.endswith(("/", os.sep)) or len(sources) > 1
                     or any(s.root is not None for s in sources) or len(inputs) > 1)
        if not as_folder:
            pairs = [(sources[0], out)] if sources else []
        else:
            if out.exists() and not out.is_dir():
                raise OutputPlanError(f"-o {output}: is a file, but several inputs need an output folder")
            if not out.exists() and not output.endswith(("/", os.sep)) and looks_like_file(out, suffix):
                count = max(len(sources), len(inputs))
                raise OutputPlanError(f"-o {output}: names a file, but {count} inputs need an output folder; "
                                      f"give a folder (e.g. -o {out.with_suffix('')}/)")
            pairs = [(s, (out / s.relative()).with_suffix(suffix)) for s in sources]
    seen: dict[Path, Path] = {}
    for source, dest in pairs:
        key = dest.resolve()
        if key == source.path.resolve():
            if source.path.suffix.lower() in STREAM_SUFFIXES and suffix in STREAM_SUFFIXES:
                raise OutputPlanError(f"{source.path}: already a {FILE_EXTENSION} stream (decode it with "
                                      "'neurocodec decode')")
            raise OutputPlanError(f"{source.path}: the output would overwrite the input; choose another -o")
        if key in seen:
            raise OutputPlanError(f"{seen[key]} and {source.path} would both be written to {dest}; "
                             "process them separately, each with its own -o")
        seen[key] = source.path
    return pairs


def looks_like_file(path: Path, suffix: str) -> bool:
    """Whether an output path that does not exist yet names a file rather than a folder:
    it ends with ``suffix``, a stream suffix or an image suffix."""
    known = {suffix.lower(), *STREAM_SUFFIXES, *IMAGE_SUFFIXES, *(s for ss in IMAGE_FORMATS.values() for s in ss)}
    return path.suffix.lower() in known


def missing_folder(path: Path) -> Path | None:
    """The outermost missing folder above ``path`` (what writing it will create), or None."""
    missing = None
    for parent in Path(path).parents:
        if parent.exists():
            break
        missing = parent
    return missing


_UMASK: int | None = None


def _umask() -> int:
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return _UMASK


def atomic_write(path: Path, data: bytes, overwrite: bool) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either untouched or complete.

    The bytes go to a hidden temporary file in the same folder, which is flushed to disk
    and then renamed over ``path`` (``os.replace``). On any failure, including Ctrl-C,
    the temporary file is removed. Without ``overwrite`` an existing ``path`` is never
    replaced, even one created while we were writing (a hard link is used where the
    file system has them).

    Raises:
      OutputExistsError: ``path`` exists and ``overwrite`` is false.
      OSError: the folder is not writable, the disk is full...
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise OutputExistsError(path)
    try:
        _write_replace(path, data, overwrite)
    except OSError as exc:
        name = exc.filename
        # name the output in the error message, never the hidden temporary file
        if name is None or _is_temporary(Path(os.fsdecode(name)), path):
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


def _is_temporary(name: Path, path: Path) -> bool:
    """Whether ``name`` is one of :func:`atomic_write`'s temporary files for ``path``."""
    return name.name.startswith(f".{path.name}.") and name.name.endswith(".part")


def _write_replace(path: Path, data: bytes, overwrite: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private (0600)
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # atomic, and fails if path exists
            except FileExistsError:
                raise OutputExistsError(path) from None
            except OSError:  # no hard links on this file system
                if path.exists():
                    raise OutputExistsError(path) from None
                os.replace(tmp, path)
    finally:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass


#: Formats ``neurocodec decode`` writes: name -> file suffixes (the first is the one given
#: to outputs named by the command). Written by Pillow; JPEG, WebP and AVIF are lossy.
IMAGE_FORMATS = {
    "png": (".png",),
    "jpeg": (".jpg", ".jpeg", ".jpe", ".jfif"),
    "webp": (".webp",),
    "avif": (".avif",),
    "ppm": (".ppm",),
    "bmp": (".bmp",),
    "tiff": (".tiff", ".tif"),
}
#: Formats with a quality setting (``--output-quality``), and the quality used without one.
LOSSY_FORMATS = ("jpeg", "webp", "avif")
DEFAULT_OUTPUT_QUALITY = 90
#: Each format's usual suffix.
OUTPUT_FORMATS = {name: suffixes[0] for name, suffixes in IMAGE_FORMATS.items()}


def format_of_suffix(path: str | Path) -> str | None:
    """The image format a file name's suffix names (``.jpg`` -> ``jpeg``), or None."""
    suffix = Path(path).suffix.lower()
    return next((name for name, suffixes in IMAGE_FORMATS.items() if suffix in suffixes), None)


def can_write(fmt: str) -> bool:
    """Whether this installation's Pillow writes ``fmt`` (AVIF and WebP need its codecs)."""
    if fmt not in IMAGE_FORMATS:
        return False
    if fmt in ("avif", "webp"):
        from PIL import features

        return bool(features.check(fmt))
    return True


def image_bytes(array, fmt: str, quality: int | None = None) -> bytes:
    """Encode a uint8 (H, W, 3) array as ``fmt`` (a key of IMAGE_FORMATS), with Pillow.

    ``quality`` (1-100) applies to the lossy formats (LOSSY_FORMATS; default
    DEFAULT_OUTPUT_QUALITY); the others are lossless and take none.
    """
    import io

    from PIL import Image

    options = {}
    if fmt in LOSSY_FORMATS:
        options["quality"] = DEFAULT_OUTPUT_QUALITY if quality is None else quality
    elif quality is not None:
        raise ValueError(f"{fmt} is lossless and takes no quality")
    buf = io.BytesIO()
    Image.fromarray(array, "RGB").save(buf, format=fmt.upper(), **options)
    return buf.getvalue()


def one_line(text) -> str:
    """A message squeezed onto one line."""
    return " ".join(str(text).split())


def describe(exc: BaseException, path: Path | str | None = None) -> str:
    """A short, one-line description of an exception, prefixed with the file it concerns.

    Batch jobs report each failed file on one line (the CLI on stderr, collections in
    their manifest), so the message names the file once, however the error arose: an
    exception whose class sets ``names_its_file`` (as :class:`FileError` does) already
    starts with it.
    """
    if isinstance(exc, OSError) and exc.strerror:
        name = exc.filename if exc.filename is not None else path
        message = f"{name}: {exc.strerror}" if name is not None else exc.strerror
        return one_line(message)
    message = one_line(exc)
    if path is not None and not getattr(exc, "names_its_file", False):
        message = f"{path}: {message}"
    return message
