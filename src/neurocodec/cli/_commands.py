"""What each ``neurocodec`` subcommand does. Imported only once a command runs; torch is
imported only by the commands that code images (``neurocodec models`` and ``info`` never)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ..errors import NeurocodecError, UnknownModelError
from ..files import (
    IMAGE_SUFFIXES,
    LOSSY_FORMATS,
    OUTPUT_FORMATS,
    STREAM_SUFFIXES,
    OutputExistsError,
    OutputPlanError,
    Source,
    atomic_write,
    can_write,
    describe,
    expand_inputs,
    format_of_suffix,
    image_bytes,
    missing_folder,
    one_line,
    plan_outputs,
)
from ..metrics.rate import bits_per_pixel
from ..quality import DEFAULT_QUALITY
from .errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, CLIError, UsageError

PROG = "neurocodec"
#: The command-line name of stdin (as an input) and stdout (as ``-o``).
STDIO = "-"


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #


def error(message: str) -> None:
    """Print ``neurocodec: error: message`` on stderr (one line)."""
    print(f"{PROG}: error: {one_line(message)}", file=sys.stderr)


def note(message: str) -> None:
    """Print ``neurocodec: note: message`` on stderr (one line)."""
    print(f"{PROG}: note: {one_line(message)}", file=sys.stderr)


def _weights_codec(path: str, quality: float | None = None):
    """A Codec of a weight file (``--weights``); a file that is no weight file is one line."""
    import neurocodec

    try:
        return neurocodec.Codec(weights=path, quality=DEFAULT_QUALITY if quality is None else quality)
    except OSError:
        raise
    except Exception as exc:  # safetensors' own errors, a missing field...: not a weight file
        raise CLIError(f"--weights {path}: not a neurocodec weight file ({type(exc).__name__}: "
                       f"{one_line(exc)})") from None


def _make_codec(model: str | None, quality: float | None, weights: str | None = None):
    """A Codec for ``--model`` / ``--weights`` / ``--quality``; an unknown model is a usage error."""
    import neurocodec

    if weights is not None:
        return _weights_codec(weights, quality)
    try:
        return neurocodec.Codec(model, DEFAULT_QUALITY if quality is None else quality)
    except UnknownModelError as exc:
        raise UsageError(f"--model: {exc}") from None


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class _Progress:
    """Prints per-file lines (text or JSON); with several files and stderr a terminal, also
    a tqdm bar of files; with one file, a bar of its tiles when it has several. A model
    fitted per image (the overfitted codec) also gets a bar of its iterations showing the
    running bpp and PSNR (:meth:`steps`; not with ``quiet`` or JSON output)."""

    def __init__(self, total: int, desc: str, as_json: bool = False, report_to_stderr: bool = False,
                 quiet: bool = False):
        self.bar = None
        self.tile_bar = None
        self.step_bar = None
        self.desc = desc
        self.as_json = as_json
        self.out = sys.stderr if report_to_stderr else sys.stdout
        self.interactive = _is_terminal(sys.stderr) and not quiet
        if total > 1 and self.interactive:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="file", file=sys.stderr, dynamic_ncols=True, leave=False)

    def tiles(self, done: int, total: int) -> None:
        """The codec's per-tile callback: a bar of tiles for a single large image."""
        if self.bar is not None or not self.interactive or total < 2:
            return
        if self.tile_bar is None:
            from tqdm import tqdm

            self.tile_bar = tqdm(total=total, desc=f"{self.desc} (tiles)", unit="tile", file=sys.stderr,
                                 dynamic_ncols=True, leave=False, mininterval=0, miniters=1)
        self.tile_bar.update(done - self.tile_bar.n)
        if done >= total:
            self.tile_bar.close()
            self.tile_bar = None

    @property
    def step_callback(self):
        """The codec's per-iteration callback (``Codec.compress(step_progress=...)``), or None
        when no bar is shown (not a terminal, ``--quiet``, ``--json``)."""
        return self.steps if self.interactive and not self.as_json else None

    def steps(self, done: int, total: int, bpp: float, psnr: float) -> None:
        """A bar of one fit's iterations (each tile's fit starts it again) with bpp and PSNR."""
        if self.step_bar is None or done <= self.step_bar.n:
            self.close_steps()
            from tqdm import tqdm

            self.step_bar = tqdm(total=total, desc=f"{self.desc} (fit)", unit="it", file=sys.stderr,
                                 dynamic_ncols=True, leave=False, mininterval=0, miniters=1,
                                 position=1 if self.bar is not None else None)
        self.step_bar.set_postfix_str(f"{bpp:.3f} bpp, {psnr:.2f} dB", refresh=False)
        self.step_bar.update(done - self.step_bar.n)
        if done >= total:
            self.close_steps()

    def close_steps(self) -> None:
        if self.step_bar is not None:
            self.step_bar.close()
            self.step_bar = None

    def line(self, text: str, record: dict) -> None:
        text = json.dumps(record) if self.as_json else text
        if self.bar is not None:
            self.bar.write(text, file=self.out)
        else:
            print(text, file=self.out, flush=True)

    def error(self, message: str, record: dict | None = None) -> None:
        if self.bar is not None:
            self.bar.write(f"{PROG}: error: {one_line(message)}", file=sys.stderr)
        else:
            error(message)
        if self.as_json and record is not None:
            self.line("", {**record, "error": one_line(message)})

    def note(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(f"{PROG}: note: {one_line(message)}", file=sys.stderr)
        else:
            note(message)

    def step(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        self.close_steps()
        for bar in (self.tile_bar, self.bar):
            if bar is not None:
                bar.close()


def _collect(args_inputs: list[str], suffixes, what: str, output: str | None, out_suffix: str, progress_errors,
             refuse=None):
    sources, missing = expand_inputs(args_inputs, suffixes, what)
    if refuse is not None:  # inputs this command cannot take, each reported as a failed file
        refused = [(source, refuse(source)) for source in sources]
        missing += [message for _, message in refused if message]
        sources = [source for source, message in refused if not message]
    for message in missing:
        progress_errors(message)
    try:
        pairs = plan_outputs(sources, args_inputs, output, out_suffix)
    except OutputPlanError as exc:  # the command line asks for the impossible
        raise UsageError(str(exc)) from None
    return pairs, len(missing)


def _plan(args, suffixes, what: str, out_suffix: str, say=error, refuse=None
          ) -> tuple[list[tuple[Source, Path | None]], int]:
    """(source, output) pairs and the count of inputs that gave nothing. An output of None
    is stdout; a source path of ``-`` is stdin (alone, and then stdout unless -o names a file)."""
    if STDIO in args.inputs:
        if len(args.inputs) > 1:
            raise UsageError("'-' (stdin) must be the only input")
        if args.output not in (None, STDIO) and Path(args.output).is_dir():
            raise UsageError(f"-o {args.output}: a folder; with '-' (stdin) -o names a file")
        pairs = [(Source(Path(STDIO)), None if args.output in (None, STDIO) else Path(args.output))]
        failed = 0
    elif args.output == STDIO:
        pairs, failed = _collect(args.inputs, suffixes, what, None, out_suffix, say, refuse)
        if len(pairs) + failed != 1:
            raise UsageError(f"-o - (stdout) takes one input file, got {len(pairs) + failed}")
        pairs = [(source, None) for source, _ in pairs]
    else:
        pairs, failed = _collect(args.inputs, suffixes, what, args.output, out_suffix, say, refuse)
    if any(dest is None for _, dest in pairs) and _is_terminal(sys.stdout):
        raise UsageError("will not write binary data to a terminal: redirect stdout, or give -o FILE")
    return pairs, failed


def _is_stdin(source: Source) -> bool:
    return str(source.path) == STDIO


def _label(source: Source) -> str:
    return "stdin" if _is_stdin(source) else str(source.path)


def _read(source: Source) -> bytes:
    return sys.stdin.buffer.read() if _is_stdin(source) else source.path.read_bytes()


class _Writer:
    """Writes outputs (atomically, or to stdout), saying once per folder that it creates one."""

    def __init__(self, overwrite: bool, say):
        self.overwrite = overwrite
        self.say = say
        self.created: set[Path] = set()

    def check(self, dest: Path | None) -> None:
        """Fail before the work, not after."""
        if dest is not None and not self.overwrite and dest.exists():
            raise OutputExistsError(dest)

    def write(self, dest: Path | None, data: bytes) -> None:
        if dest is None:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return
        folder = missing_folder(dest)
        if folder is not None and folder not in self.created:
            self.created.add(folder)
            self.say(f"creating folder {folder}")
        atomic_write(dest, data, self.overwrite)


def _label_out(dest: Path | None) -> str:
    return "stdout" if dest is None else str(dest)


# --------------------------------------------------------------------------- #
# encode / decode
# --------------------------------------------------------------------------- #


def _check_targets(args) -> None:
    targets = [name for name in ("quality", "bpp", "psnr") if getattr(args, name, None) is not None]
    if len(targets) > 1:
        raise UsageError(f"give only one of --quality, --bpp and --psnr (got {', '.join('--' + t for t in targets)})")
    for name in ("bpp", "psnr"):
        value = getattr(args, name, None)
        if value is not None and not (value > 0 and value < float("inf")):
            raise UsageError(f"--{name} must be a positive number, got {value}")
    if getattr(args, "effort", 0) and args.effort < 0:
        raise UsageError("--effort must be >= 0")


def _target_note(args, quality: float, achieved: float) -> str | None:
    """A note when a --bpp / --psnr target was out of reach, naming the quality used."""
    from ..quality import MAX_QUALITY, MIN_QUALITY

    if args.bpp is not None:
        low, high, what, unit, value = achieved > args.bpp * 1.03, achieved < args.bpp / 1.03, "--bpp", "bpp", args.bpp
    elif args.psnr is not None:
        low, high, what, unit, value = achieved > args.psnr + 0.1, achieved < args.psnr - 0.1, "--psnr", "dB", args.psnr
    else:
        return None
    if quality <= MIN_QUALITY and low:
        side = "below"
    elif quality >= MAX_QUALITY and high:
        side = "above"
    else:
        return None
    return (f"{what} {value:g} is {side} what this model reaches on this image; used quality {quality:g} "
            f"({achieved:.4f} {unit})")


def _already_a_stream(source: Source, data: bytes | None = None) -> str | None:
    """The message for an input that is a .ncdc stream already (by its name, or its bytes)."""
    from ..format import MAGIC

    if source.path.suffix.lower() in STREAM_SUFFIXES or (data is not None and data.startswith(MAGIC)):
        return f"{_label(source)}: already a .ncdc stream (decode it with 'neurocodec decode')"
    return None


def cmd_encode(args) -> int:
    from .threads import torch_threads

    _check_targets(args)
    pairs, failed = _plan(args, IMAGE_SUFFIXES, "image", ".ncdc", refuse=_already_a_stream)
    if not pairs:
        return EXIT_FAILURE
    with torch_threads(args.threads) as (threads, _):
        return _encode(args, pairs, failed, threads)


def _encode(args, pairs, failed: int, threads: int) -> int:
    import io

    from ..codec import open_image, to_array
    from ..format import read_header
    from ..metrics import psnr as psnr_of

    codec = _make_codec(args.model, args.quality, args.weights)
    single = len(pairs) == 1
    progress = _Progress(len(pairs), "encode", args.json, report_to_stderr=any(d is None for _, d in pairs),
                         quiet=args.quiet)
    writer = _Writer(args.overwrite, progress.note)
    total_bytes = total_pixels = done = 0
    try:
        for source, dest in pairs:
            record = {"input": _label(source), "output": _label_out(dest)}
            try:
                writer.check(dest)
                raw = _read(source)
                already = _already_a_stream(source, raw)  # also under another name (the Pillow plugin reads them)
                if already:
                    raise CLIError(already)
                array = to_array(open_image(io.BytesIO(raw), name=_label(source)))
                tic = time.perf_counter()
                data, recon = codec.compress_with_reconstruction(array, bpp=args.bpp, psnr=args.psnr,
                                                                 effort=args.effort or 0, progress=progress.tiles,
                                                                 step_progress=progress.step_callback) \
                    if args.psnr is not None else (codec.compress(array, bpp=args.bpp, effort=args.effort or 0,
                                                                  progress=progress.tiles,
                                                                  step_progress=progress.step_callback), None)
                seconds = time.perf_counter() - tic
                writer.write(dest, data)
            except (CLIError, NeurocodecError, OSError) as exc:
                if getattr(args, "debug", False):
                    raise
                progress.error(describe(exc, _label(source)), record)
                failed += 1
            else:
                height, width = array.shape[:2]
                bpp = bits_per_pixel(len(data), height * width)
                quality = read_header(data).quality
                record.update(bytes=len(data), bpp=round(bpp, 6), width=width, height=height, model=codec.name,
                              quality=quality, seconds=round(seconds, 4), threads=threads)
                line = f"{_label(source)} -> {_label_out(dest)}: {len(data):,} bytes, {bpp:.4f} bpp"
                achieved = bpp
                if args.psnr is not None:
                    achieved = psnr_of(array, recon)
                    record["psnr"] = round(achieved, 4)
                if args.bpp is not None or args.psnr is not None:
                    line += f", quality {quality:.3g}"
                    message = _target_note(args, quality, achieved)
                    record["target_reached"] = message is None
                    if message:
                        progress.note(f"{_label(source)}: {message}")
                if single:
                    line += f", {seconds:.2f} s"
                progress.line(line, record)
                done += 1
                total_bytes += len(data)
                total_pixels += height * width
            progress.step()
    finally:
        progress.close()
    if not single and not args.json:
        summary = f"encoded {done} of {done + failed} files"
        if done:
            summary += f": {total_bytes:,} bytes, {bits_per_pixel(total_bytes, total_pixels):.4f} bpp overall"
        print(summary)
    return EXIT_FAILURE if failed else EXIT_OK


def _decode_format(args, file_output: Path | None) -> str:
    """The format decode writes: -o's suffix (one output file), or --format, or png.
    Contradictions, unknown suffixes and formats this Pillow cannot write are usage errors."""
    fmt = args.format
    if file_output is not None:
        named = format_of_suffix(file_output)
        if named is None and fmt is None:
            suffix = file_output.suffix or "(none)"
            raise UsageError(f"-o {file_output}: its suffix {suffix} names no image format this command writes "
                             f"({', '.join(OUTPUT_FORMATS)}); use such a suffix, or --format")
        if named is not None and fmt is not None and named != fmt:
            raise UsageError(f"--format {fmt} contradicts -o {file_output} (a {named} file name); "
                             "drop one of them or make them agree")
        fmt = fmt or named
    fmt = fmt or "png"
    if not can_write(fmt):
        raise UsageError(f"this installation's Pillow cannot write {fmt.upper()}; choose another format")
    q = args.output_quality
    if q is not None:
        if fmt not in LOSSY_FORMATS:
            raise UsageError(f"--output-quality applies to the lossy formats ({', '.join(LOSSY_FORMATS)}); "
                             f"{fmt} is lossless")
        if not 1 <= q <= 100:
            raise UsageError(f"--output-quality must be in [1, 100], got {q}")
    return fmt


def cmd_decode(args) -> int:
    from .threads import torch_threads

    args.realism = _check_realism_option(args.realism)
    # Plan once to learn whether -o names one output file, whose suffix then names the format.
    quiet = lambda message: None  # noqa: E731 - the second plan reports the inputs
    pairs, _ = (_plan(args, STREAM_SUFFIXES, ".ncdc", ".png", say=quiet) if args.output not in (None, STDIO)
                else ([], 0))
    file_output = pairs[0][1] if len(pairs) == 1 and pairs[0][1] == Path(args.output) else None
    fmt = _decode_format(args, file_output)
    pairs, failed = _plan(args, STREAM_SUFFIXES, ".ncdc", OUTPUT_FORMATS[fmt])
    if file_output is not None:
        pairs = [(pairs[0][0], file_output)]
    if not pairs:
        return EXIT_FAILURE
    with torch_threads(args.threads) as (threads, _):
        return _decode(args, pairs, failed, fmt, threads)


def _check_realism_option(value: float) -> float:
    from ..codec import check_realism
    from ..errors import RealismError

    try:
        return check_realism(value)
    except RealismError as exc:
        raise UsageError(f"--realism: {exc}") from None


def _stream_codec(data: bytes, codecs: dict, weights: str | None):
    """The codec of a stream's model; the --weights file where the stream's model is not found."""
    from ..codec import Codec

    try:
        return Codec.for_stream(data, codecs)
    except UnknownModelError as exc:
        if weights is None:
            raise
        if "weights" not in codecs:
            codecs["weights"] = _weights_codec(weights)
        codec = codecs["weights"]
        from ..format import read_header

        header = read_header(data)
        if header.weight_hash not in codec.info.stream_hashes:
            raise CLIError(f"--weights {weights}: holds weights {codec.info.weight_hash.hex()}, the stream needs "
                           f"model {header.model_id!r} with weights {header.weight_hash.hex()}") from exc
        return codec


def _decode(args, pairs, failed: int, fmt: str, threads: int) -> int:
    single = len(pairs) == 1
    progress = _Progress(len(pairs), "decode", args.json, report_to_stderr=any(d is None for _, d in pairs))
    writer = _Writer(args.overwrite, progress.note)
    done = 0
    codecs: dict = {}
    try:
        for source, dest in pairs:
            record = {"input": _label(source), "output": _label_out(dest)}
            try:
                writer.check(dest)
                data = _read(source)
                codec = _stream_codec(data, codecs, args.weights)
                tic = time.perf_counter()
                pixels = codec.decompress(data, realism=args.realism, progress=progress.tiles)
                seconds = time.perf_counter() - tic
                writer.write(dest, image_bytes(pixels, fmt, args.output_quality))
            except (CLIError, NeurocodecError, OSError) as exc:
                if getattr(args, "debug", False):
                    raise
                progress.error(describe(exc, _label(source)), record)
                failed += 1
            else:
                height, width = pixels.shape[:2]
                record.update(width=width, height=height, format=fmt, model=codec.name, realism=args.realism,
                              seconds=round(seconds, 4),
                              threads=threads)
                line = f"{_label(source)} -> {_label_out(dest)}: {width}x{height} pixels"
                if single:
                    line += f", {seconds:.2f} s"
                progress.line(line, record)
                done += 1
            progress.step()
    finally:
        progress.close()
    if not single and not args.json:
        print(f"decoded {done} of {done + failed} files")
    return EXIT_FAILURE if failed else EXIT_OK


# --------------------------------------------------------------------------- #
# encode-dir / decode-dir (neurocodec.collection)
# --------------------------------------------------------------------------- #

#: Failed files listed on stderr at the end of encode-dir / decode-dir (all are in the manifest).
SHOWN_FAILURES = 10


def _collection_options(args) -> dict:
    for option in ("workers", "threads"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise UsageError(f"--{option} must be at least 1, got {value}")
    if args.address and args.engine != "ray":
        raise UsageError("--address is for --engine ray")
    return {"engine": args.engine, "workers": args.workers, "address": args.address, "threads": args.threads,
            "retry_failed": args.retry_failed, "progress": not args.quiet and _is_terminal(sys.stderr)}


def _collection_report(summary, verb: str) -> int:
    """Print failures (one line each, on stderr) and the summary; exit 1 if any file failed."""
    for _, message in summary.failures[:SHOWN_FAILURES]:
        error(message)
    if len(summary.failures) > SHOWN_FAILURES:
        error(f"... and {len(summary.failures) - SHOWN_FAILURES} more failed files (see {summary.manifest})")
    workers = f", {summary.workers} worker{'s' if summary.workers > 1 else ''}" if summary.workers else ""
    line = (f"{verb} {summary.ok} of {summary.total} files, {summary.failed} failed, {summary.skipped} already done "
            f"({summary.engine} engine{workers}, {summary.seconds:.1f} s)")
    if summary.bpp is not None:
        line += f": {summary.bpp:.4f} bpp"
        if summary.psnr is not None:
            line += f", {summary.psnr:.2f} dB mean PSNR"
    print(line)
    print(f"manifest: {summary.manifest}")
    return EXIT_FAILURE if summary.failures else EXIT_OK


def cmd_encode_dir(args) -> int:
    from neurocodec.collection import encode_dir
    from neurocodec.errors import UnknownModelError

    options = _collection_options(args)
    if args.shard_mb is not None:
        if not args.latents:
            raise UsageError("--shard-mb applies to --latents")
        if not args.shard_mb > 0:
            raise UsageError(f"--shard-mb must be positive, got {args.shard_mb}")
        options["shard_mb"] = args.shard_mb
    try:
        summary = encode_dir(args.src, args.dst, model=args.model,
                             quality=DEFAULT_QUALITY if args.quality is None else args.quality,
                             latents=args.latents, **options)
    except UnknownModelError as exc:
        raise UsageError(f"--model: {exc}") from None
    return _collection_report(summary, "latents of" if args.latents else "encoded")


def cmd_decode_dir(args) -> int:
    from neurocodec.collection import decode_dir

    summary = decode_dir(args.src, args.dst, image_format=args.format, **_collection_options(args))
    return _collection_report(summary, "decoded")


# --------------------------------------------------------------------------- #
# info
# --------------------------------------------------------------------------- #

#: How ``neurocodec info`` and ``models`` name where a weight file comes from (zoo ModelInfo.origin).
ORIGINS = {
    "shipped": "shipped with this installation",
    "search path": "found in NEUROCODEC_MODEL_PATH",
    "legacy": "decode-only weights of an earlier release",
    "file": "the --weights file",
}


def _model_status(name: str, weight_hash: bytes, weights: str | None = None) -> dict:
    """Where this installation finds the weights a stream needs, and which release shipped them."""
    from neurocodec import zoo

    release = zoo.release_of(name, weight_hash)
    status = {"release": release, "model_available": False, "weights_origin": None, "weights_path": None}
    try:
        info = zoo.find_model(name, weight_hash)
    except UnknownModelError as exc:
        info = None
        if weights is not None:
            own = zoo.file_info(weights)
            if weight_hash in own.stream_hashes:
                info = own
        if info is None:
            status["model_status"] = one_line(exc)
            return status
    status.update(model_available=True, weights_origin=info.origin,
                  weights_path=None if info.origin == "shipped" else str(info.path), model_status=ORIGINS[info.origin])
    return status


def stream_info(path: Path, weights: str | None = None) -> dict:
    """What ``neurocodec info`` reports about a file (raises CLIError if the header is unreadable)."""
    from neurocodec.format import read_layout, unpack

    data = path.read_bytes()
    try:
        layout = read_layout(data)
    except NeurocodecError as exc:
        raise CLIError(f"{path}: {one_line(exc)}") from None
    header, lengths = layout.header, list(layout.segment_lengths)
    rows, cols = header.tile_grid
    payload_error = None
    try:
        unpack(data)
    except NeurocodecError as exc:
        payload_error = one_line(exc)
    return {
        "file": str(path),
        "model": header.model_id,
        "weight_hash": header.weight_hash.hex(),
        **_model_status(header.model_id, header.weight_hash, weights),
        "coder": header.coder,
        "quality": header.quality,
        "height": header.height,
        "width": header.width,
        "channels": header.channels,
        "tile_height": header.tile_height,
        "tile_width": header.tile_width,
        "tiles": rows * cols,
        "tile_grid": [rows, cols],
        "extra_bytes": len(header.extra),
        "segments": lengths,
        "header_bytes": layout.payload_offset,
        "payload_bytes": sum(lengths),
        "total_bytes": len(data),
        "bpp": bits_per_pixel(len(data), header.height * header.width),
        "payload_ok": payload_error is None,
        "payload_error": payload_error,
    }


def _segment_lines(info: dict) -> list[str]:
    lengths = info["segments"]
    tiles = info["tiles"]
    if len(lengths) != 2 * tiles:  # not the v1 layout (z, y per tile): list them plainly
        shown = ", ".join(f"{n:,}" for n in lengths[:16]) + (" ..." if len(lengths) > 16 else "")
        return [f"segments:    {len(lengths)} ({shown} bytes)"]
    if tiles == 1:
        return [f"segments:    2 (z {lengths[0]:,} bytes, y {lengths[1]:,} bytes)"]
    lines = [f"segments:    {len(lengths)} (z and y per tile)"]
    for k in range(min(tiles, 12)):
        lines.append(f"  tile {k}:    z {lengths[2 * k]:,} bytes, y {lengths[2 * k + 1]:,} bytes")
    if tiles > 12:
        lines.append(f"  ... {tiles - 12} more tiles")
    return lines


def cmd_info(args) -> int:
    info = stream_info(Path(args.file), args.weights)
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK if info["payload_ok"] else EXIT_FAILURE
    if info["tiles"] == 1:
        tiles = "1 (the whole image)"
    else:
        rows, cols = info["tile_grid"]
        tiles = (f"{info['tiles']} (a grid of {rows} x {cols}, rows x columns; tiles of "
                 f"{info['tile_width']}x{info['tile_height']} pixels)")
    release = (f"neurocodec {info['release']} shipped these weights" if info["release"]
               else "no release shipped these weights (your own model, or a development build)")
    weights = info["model_status"]
    if info["weights_path"]:
        weights += f" ({info['weights_path']})"
    if not info["model_available"]:
        weights = f"NOT AVAILABLE: {weights}"
    lines = [
        f"file:        {info['file']}",
        f"model:       {info['model']}",
        f"weight hash: {info['weight_hash']}",
        f"release:     {release}",
        f"weights:     {weights}",
        f"coder:       {info['coder']}",
        f"quality:     {info['quality']:g}",
        f"size:        {info['width']}x{info['height']} pixels (width x height), {info['channels']} channels",
        f"tiles:       {tiles}",
        *_segment_lines(info),
        f"header:      {info['header_bytes']:,} bytes" + (f" ({info['extra_bytes']} extra)" if info["extra_bytes"] else ""),
        f"total:       {info['total_bytes']:,} bytes",
        f"bpp:         {info['bpp']:.4f}",
        "payload:     " + ("ok (lengths and CRC32 check out)" if info["payload_ok"]
                           else f"DAMAGED: {info['payload_error']}"),
    ]
    print("\n".join(lines))
    return EXIT_OK if info["payload_ok"] else EXIT_FAILURE


# --------------------------------------------------------------------------- #
# models
# --------------------------------------------------------------------------- #


def models_list() -> list[dict]:
    """The models ``neurocodec models`` lists (reads cards and hashes only: no torch)."""
    from neurocodec import zoo
    from neurocodec.zoo.realism import find_realism
    from neurocodec.zoo.weights import hints_measured_for, read_metadata

    out = []
    for m in zoo.list_models():
        card = m.card or {}
        realism_file = find_realism(m)
        realism = None
        if realism_file is not None:
            realism_card = read_metadata(realism_file)["card"]
            realism = {"steps": realism_card.get("steps"), "cpu_hours": realism_card.get("cpu_hours")}
        out.append({
            "name": m.name,
            "default": m.is_default,
            "origin": m.origin,
            "path": None if m.origin == "shipped" else str(m.path),
            "architecture": m.architecture,
            "description": m.description,
            "size_bytes": m.size_bytes,
            "weight_hash": m.weight_hash.hex(),
            # a warm-started model's card also gives its whole lineage; that is what trained it
            "steps": card.get("total_steps", card.get("steps")),
            "cpu_hours": card.get("total_cpu_hours", card.get("cpu_hours")),
            "encoder_hints": hints_measured_for(m.path) == m.weight_hash,
            "realism_decoder": realism,
        })
    return out


def cmd_models(args) -> int:
    models = models_list()
    if args.json:
        print(json.dumps(models, indent=2))
        return EXIT_OK
    if not models:
        print("no models are shipped with this installation")
        return EXIT_FAILURE
    for m in models:
        mark = "*" if m["default"] else ("+" if m["origin"] == "search path" else " ")
        print(f"{mark} {m['name']}  [{m['architecture']}]  {m['size_bytes'] / 1e6:.1f} MB  weights {m['weight_hash']}")
        if m["path"]:
            print(f"    file: {m['path']}")
        if m["description"]:
            print(f"    {one_line(m['description'])}")
        trained = []
        if m["steps"] is not None:
            trained.append(f"{m['steps']:,} steps")
        if m["cpu_hours"] is not None:
            trained.append(f"{m['cpu_hours']:g} CPU-hours")
        if trained:
            print(f"    trained: {', '.join(trained)}")
        print("    encoder: " + ("rate-distortion rounding (encoder hints)" if m["encoder_hints"] else "plain rounding"))
        if m["realism_decoder"]:
            r = m["realism_decoder"]
            print(f"    realism decoder: decode --realism R (trained {r['steps']:,} steps, {r['cpu_hours']:g} CPU-hours)")
    legend = "(* = default model"
    if any(m["origin"] == "search path" for m in models):
        legend += "; + = found in NEUROCODEC_MODEL_PATH"
    print(legend + ")")
    return EXIT_OK


# --------------------------------------------------------------------------- #
# roundtrip
# --------------------------------------------------------------------------- #


def cmd_roundtrip(args) -> int:
    from .threads import torch_threads

    with torch_threads(args.threads) as (threads, _):
        return _roundtrip(args, threads)


def _roundtrip(args, threads: int) -> int:
    import numpy as np

    from neurocodec.codec import to_array
    from neurocodec.metrics import psnr

    if args.sample:
        from .sample import sample_image

        original = to_array(sample_image())
        label = "built-in sample (synthetic)"
    else:
        original = to_array(Path(args.image))  # the loader of encode and of the API
        label = str(args.image)
    codec = _make_codec(args.model, args.quality, args.weights)
    height, width = original.shape[:2]
    progress = _Progress(1, "roundtrip")
    tic = time.perf_counter()
    data, reconstruction = codec.compress_with_reconstruction(original, progress=progress.tiles)
    encode_s = time.perf_counter() - tic
    tic = time.perf_counter()
    decoded = codec.decompress(data, progress=progress.tiles)
    decode_s = time.perf_counter() - tic
    progress.close()
    matches = bool(np.array_equal(decoded, reconstruction))
    bpp = bits_per_pixel(len(data), height * width)
    quality = psnr(original, decoded)
    if args.json:
        print(json.dumps({"input": label, "width": width, "height": height, "model": codec.name,
                          "quality": codec.quality, "bytes": len(data), "bpp": round(bpp, 6),
                          "psnr": round(quality, 4) if np.isfinite(quality) else None,
                          "encode_seconds": round(encode_s, 4), "decode_seconds": round(decode_s, 4),
                          "threads": threads, "exact": matches}))
    else:
        print(f"image:    {label}, {width}x{height} pixels")
        print(f"model:    {codec.name}, quality {codec.quality:g}")
        print(f"stream:   {len(data):,} bytes, {bpp:.4f} bpp")
        print(f"PSNR:     {quality:.2f} dB")
        print(f"time:     encode {encode_s:.2f} s, decode {decode_s:.2f} s ({threads} thread{'s' if threads > 1 else ''})")
        print(f"decoded image equals the encoder's reconstruction: {'yes' if matches else 'NO'}")
    if not matches:
        error("the decoder did not reproduce the encoder's reconstruction exactly (please report this)")
        return EXIT_FAILURE
    return EXIT_OK


# --------------------------------------------------------------------------- #
# train / bench
# --------------------------------------------------------------------------- #

def cmd_train(args) -> int:
    """``neurocodec train``: :func:`neurocodec.train.command.run_command`, its errors as the CLI's."""
    from neurocodec.train.command import CommandFailed, flag_of, run_command
    from neurocodec.train.config import TrainConfigError

    try:
        return run_command(args, say=lambda line: print(line, flush=True))
    except TrainConfigError as exc:
        raise UsageError(exc.render(flag_of)) from None
    except CommandFailed as exc:
        raise CLIError(str(exc), code=exc.code) from None


def _train_argv(args) -> list[str]:
    """The 'neurocodec train' arguments each torchrun process gets (see neurocodec.train.command)."""
    from neurocodec.train.command import torchrun_argv

    return torchrun_argv(args)


def cmd_bench(args) -> int:
    from neurocodec.bench.suite import run_suite

    folder = Path(args.folder)
    if not folder.is_dir():
        raise CLIError(f"{folder}: not a folder")
    models = [m for m in (args.models or "").split(",") if m] or [None]
    codecs = [c for c in (args.codecs or "").split(",") if c]
    result = run_suite(folder, models, codecs, args.anchors, images=args.images, out_md=args.out_md,
                       out_png=args.out_png, out_json=args.out_json, threads=args.threads,
                       command="neurocodec bench " + " ".join(args.argv_echo), progress=_is_terminal(sys.stderr))
    for label in result["measured"]:
        print(label)
        for p in result["curves"][label]:
            print(f"  quality {p.quality!s:>3}: {p.bpp:.4f} bpp, {p.psnr:.3f} dB PSNR, MS-SSIM {p.ms_ssim:.4f}")
    for label, row in result["bd"].items():
        cells = ", ".join(f"vs {ref} {v:+.1f} %" for ref, v in row.items() if v is not None)
        if label in result["measured"] and cells:
            print(f"BD-rate {label}: {cells}")
    return EXIT_OK
