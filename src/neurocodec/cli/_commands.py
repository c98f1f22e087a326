"""What each ``neurocodec`` subcommand does. Imported only once a command runs."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ..errors import NeurocodecError
from ..files import (
    IMAGE_SUFFIXES,
    OUTPUT_FORMATS,
    STREAM_SUFFIXES,
    OutputExistsError,
    OutputPlanError,
    atomic_write,
    describe,
    expand_inputs,
    image_bytes,
    load_image,
    one_line,
    plan_outputs,
)
from ..metrics import bits_per_pixel
from ..quality import DEFAULT_QUALITY
from .errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, CLIError, UsageError

PROG = "neurocodec"


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #


def error(message: str) -> None:
    """Print ``neurocodec: error: message`` on stderr (one line)."""
    print(f"{PROG}: error: {one_line(message)}", file=sys.stderr)


def _make_codec(model: str | None, quality: float | None):
    """A Codec for ``--model`` / ``--quality``; an unknown model is a usage error."""
    import neurocodec
    from neurocodec.errors import UnknownModelError

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
    """Prints per-file lines; with several files and stderr a terminal, also a tqdm bar."""

    def __init__(self, total: int, desc: str):
        self.bar = None
        if total > 1 and _is_terminal(sys.stderr):
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="file", file=sys.stderr, dynamic_ncols=True, leave=False)

    def line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stdout)
        else:
            print(text)

    def error(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(f"{PROG}: error: {one_line(message)}", file=sys.stderr)
        else:
            error(message)

    def step(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _collect(args_inputs: list[str], suffixes, what: str, output: str | None, out_suffix: str, progress_errors):
    sources, missing = expand_inputs(args_inputs, suffixes, what)
    for message in missing:
        progress_errors(message)
    try:
        pairs = plan_outputs(sources, args_inputs, output, out_suffix)
    except OutputPlanError as exc:  # the command line asks for the impossible
        raise UsageError(str(exc)) from None
    return pairs, len(missing)


# --------------------------------------------------------------------------- #
# encode / decode
# --------------------------------------------------------------------------- #


def cmd_encode(args) -> int:
    targets = [name for name in ("quality", "bpp", "psnr") if getattr(args, name, None) is not None]
    if len(targets) > 1:
        raise UsageError(f"give only one of --quality, --bpp and --psnr (got {', '.join('--' + t for t in targets)})")
    for name in ("bpp", "psnr"):
        value = getattr(args, name, None)
        if value is not None and not (value > 0 and value < float("inf")):
            raise UsageError(f"--{name} must be a positive number, got {value}")
    if getattr(args, "effort", 0) and args.effort < 0:
        raise UsageError("--effort must be >= 0")
    pairs, failed = _collect(args.inputs, IMAGE_SUFFIXES, "image", args.output, ".ncdc", error)
    if not pairs:
        return EXIT_FAILURE
    codec = _make_codec(args.model, args.quality)
    single = len(pairs) == 1
    progress = _Progress(len(pairs), "encode")
    total_bytes = total_pixels = done = 0
    try:
        for source, dest in pairs:
            try:
                if not args.overwrite and dest.exists():  # fail before the work, not after
                    raise OutputExistsError(dest)
                image = load_image(source.path)
                tic = time.perf_counter()
                data = codec.compress(image, bpp=getattr(args, "bpp", None), psnr=getattr(args, "psnr", None),
                                      effort=getattr(args, "effort", 0) or 0)
                seconds = time.perf_counter() - tic
                atomic_write(dest, data, args.overwrite)
            except (CLIError, NeurocodecError, OSError) as exc:
                if getattr(args, "debug", False):
                    raise
                progress.error(describe(exc, source.path))
                failed += 1
            else:
                height, width = image.height, image.width
                line = f"{source.path} -> {dest}: {len(data):,} bytes, {bits_per_pixel(len(data), height * width):.4f} bpp"
                if single:
                    line += f", {seconds:.2f} s"
                progress.line(line)
                done += 1
                total_bytes += len(data)
                total_pixels += height * width
            progress.step()
    finally:
        progress.close()
    if not single:
        summary = f"encoded {done} of {done + failed} files"
        if done:
            summary += f": {total_bytes:,} bytes, {bits_per_pixel(total_bytes, total_pixels):.4f} bpp overall"
        print(summary)
    return EXIT_FAILURE if failed else EXIT_OK


def cmd_decode(args) -> int:
    fmt = args.format
    if fmt is None:
        fmt = "png"
        # "-o out.bmp" with a single input picks the format from the suffix
        if args.output and len(args.inputs) == 1:
            by_suffix = {s: f for f, s in OUTPUT_FORMATS.items()} | {".tif": "tiff"}
            fmt = by_suffix.get(Path(args.output).suffix.lower(), "png")
    pairs, failed = _collect(args.inputs, STREAM_SUFFIXES, ".ncdc", args.output, OUTPUT_FORMATS[fmt], error)
    if not pairs:
        return EXIT_FAILURE
    single = len(pairs) == 1
    from neurocodec.codec import Codec

    progress = _Progress(len(pairs), "decode")
    done = 0
    codecs: dict = {}
    try:
        for source, dest in pairs:
            try:
                if not args.overwrite and dest.exists():  # fail before the work, not after
                    raise OutputExistsError(dest)
                data = source.path.read_bytes()
                codec = Codec.for_stream(data, codecs)
                tic = time.perf_counter()
                pixels = codec.decompress(data)
                seconds = time.perf_counter() - tic
                atomic_write(dest, image_bytes(pixels, fmt), args.overwrite)
            except (CLIError, NeurocodecError, OSError) as exc:
                if getattr(args, "debug", False):
                    raise
                progress.error(describe(exc, source.path))
                failed += 1
            else:
                height, width = pixels.shape[:2]
                line = f"{source.path} -> {dest}: {width}x{height} pixels"
                if single:
                    line += f", {seconds:.2f} s"
                progress.line(line)
                done += 1
            progress.step()
    finally:
        progress.close()
    if not single:
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


def _model_status(name: str, weight_hash: bytes) -> tuple[bool, str]:
    from neurocodec import zoo
    from neurocodec.errors import UnknownModelError

    try:
        info = zoo.model_info(name)
    except UnknownModelError:
        return False, "not shipped by this installation"
    if info.weight_hash != weight_hash:
        return False, f"this installation ships other weights ({info.weight_hash.hex()}); cannot decode"
    return True, "shipped"


def stream_info(path: Path) -> dict:
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
    shipped, status = _model_status(header.model_id, header.weight_hash)
    return {
        "file": str(path),
        "model": header.model_id,
        "weight_hash": header.weight_hash.hex(),
        "model_available": shipped,
        "model_status": status,
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
    info = stream_info(Path(args.file))
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK if info["payload_ok"] else EXIT_FAILURE
    if info["tiles"] == 1:
        tiles = "1 (the whole image)"
    else:
        rows, cols = info["tile_grid"]
        tiles = (f"{info['tiles']} (a grid of {rows} x {cols}, rows x columns; tiles of "
                 f"{info['tile_width']}x{info['tile_height']} pixels)")
    lines = [
        f"file:        {info['file']}",
        f"model:       {info['model']} ({info['model_status']})",
        f"weight hash: {info['weight_hash']}",
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
    from neurocodec import zoo
    from neurocodec.zoo.weights import hints_measured_for

    out = []
    for m in zoo.list_models():
        card = m.card or {}
        out.append({
            "name": m.name,
            "default": m.is_default,
            "architecture": m.architecture,
            "description": m.description,
            "size_bytes": m.size_bytes,
            "weight_hash": m.weight_hash.hex(),
            # a warm-started model's card also gives its whole lineage; that is what trained it
            "steps": card.get("total_steps", card.get("steps")),
            "cpu_hours": card.get("total_cpu_hours", card.get("cpu_hours")),
            "encoder_hints": hints_measured_for(m.path) == m.weight_hash,
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
        mark = "*" if m["default"] else " "
        print(f"{mark} {m['name']}  [{m['architecture']}]  {m['size_bytes'] / 1e6:.1f} MB  weights {m['weight_hash']}")
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
    print("(* = default model)")
    return EXIT_OK


# --------------------------------------------------------------------------- #
# roundtrip
# --------------------------------------------------------------------------- #


def cmd_roundtrip(args) -> int:
    import numpy as np

    import neurocodec
    from neurocodec.codec import to_array
    from neurocodec.metrics import psnr

    if args.sample:
        from .sample import sample_image

        image = sample_image()
        label = "built-in sample (synthetic)"
    else:
        path = Path(args.image)
        image = load_image(path)
        label = str(path)
    codec = _make_codec(args.model, args.quality)
    original = to_array(image)
    height, width = original.shape[:2]
    tic = time.perf_counter()
    data, reconstruction = codec.compress_with_reconstruction(original)
    encode_s = time.perf_counter() - tic
    tic = time.perf_counter()
    decoded = neurocodec.decompress(data)
    decode_s = time.perf_counter() - tic
    matches = bool(np.array_equal(decoded, reconstruction))
    print(f"image:    {label}, {width}x{height} pixels")
    print(f"model:    {codec.name}, quality {codec.quality:g}")
    print(f"stream:   {len(data):,} bytes, {bits_per_pixel(len(data), height * width):.4f} bpp")
    print(f"PSNR:     {psnr(original, decoded):.2f} dB")
    print(f"time:     encode {encode_s:.2f} s, decode {decode_s:.2f} s")
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
