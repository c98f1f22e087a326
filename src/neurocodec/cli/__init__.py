"""The ``neurocodec`` command line.

``neurocodec encode|decode|encode-dir|decode-dir|info|models|roundtrip|train|bench``; see ``neurocodec --help``
and docs/cli.md. :func:`main` takes an argument list and returns the exit status, so the
CLI can be driven in-process (tests do).

This module imports only the standard library; torch and the models load when a
command needs them, so ``neurocodec --help`` is fast.
"""

from __future__ import annotations

import argparse
import sys
import textwrap

from ..files import DEFAULT_OUTPUT_QUALITY, LOSSY_FORMATS, OUTPUT_FORMATS
from ..quality import DEFAULT_QUALITY, check_quality
from ..train.command import add_arguments as add_train_arguments
from ..train.config import defaults as train_defaults
from .errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, CLIError, UsageError

PROG = "neurocodec"
# The registered architectures (neurocodec.models.ARCHITECTURES), spelled out so that
# ``--help`` does not import torch; tests/test_cli.py keeps the two equal.
ARCHITECTURE_NAMES = ("block-hyperprior", "block-context", "block-mixture", "block-mcquic", "block-swinv2",
                      "block-region", "block-walloc", "conv-hyperprior", "swinv2-hyperprior", "region-hyperprior",
                      "walloc")
#: Defaults of neurocodec.train.TrainConfig (its fields describe the train options; that
#: module imports no torch, so --help stays fast).
TRAIN_DEFAULTS = train_defaults()


class _ArgumentError(Exception):
    def __init__(self, message: str, prog: str):
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors become one line instead of usage + exit."""

    def error(self, message):  # noqa: D401 - argparse API
        raise _ArgumentError(message, self.prog)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog):
        super().__init__(prog, max_help_position=30)


def _quality(text: str) -> float:
    try:
        q = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"quality must be a number in [1, 8], got {text!r}") from None
    try:
        return check_quality(q)
    except ValueError:  # the library's check, in the CLI's words
        message = f"quality must be in [1, 8] (1 = smallest files, 8 = best), got {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def _threads(text: str) -> int | str:
    if text == "auto":
        return text
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number of threads >= 1, got {text!r}")
    return value


def _int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    return value


def _doc(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


def _add_debug(parser: argparse.ArgumentParser) -> None:
    # also accepted after the subcommand; SUPPRESS keeps a top-level --debug
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show a full traceback on errors")


def _add_model_quality(parser: argparse.ArgumentParser, weights: bool = False) -> None:
    model = parser.add_mutually_exclusive_group() if weights else parser
    model.add_argument("-m", "--model", metavar="NAME",
                       help="model to use: a shipped one or one in a folder of NEUROCODEC_MODEL_PATH "
                            "(see 'neurocodec models'); default: the default model")
    if weights:
        model.add_argument("--weights", metavar="FILE",
                           help="use this weight file (e.g. from 'neurocodec train --export'); streams record "
                                "the model name stored in it")
    parser.add_argument("-q", "--quality", type=_quality, metavar="Q",
                        help=f"rate-quality trade-off, a number in [1, 8]: 1 = smallest files, 8 = best "
                             f"quality; fractions are allowed (default: {DEFAULT_QUALITY})")


def _add_threads(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=_threads, default="auto", metavar="N|auto",
                        help="torch CPU threads: a number, or 'auto' (default): one per idle core of this "
                             "process (cores less the load), at least 1, so a busy machine does not slow "
                             "coding down")


def _add_json(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", action="store_true",
                        help=f"print one JSON object per {what} on stdout instead of text")


def _add_collection_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by encode-dir and decode-dir (see neurocodec.collection)."""
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="where the files are processed: 'local', a pool of processes on this machine "
                             "(default), or 'ray', a Ray cluster (pip install 'neurocodec[ray]')")
    parser.add_argument("--workers", type=_int, metavar="N",
                        help="worker processes (default: one per CPU core of this machine, or of the Ray "
                             "cluster divided by --threads)")
    parser.add_argument("--address", metavar="ADDR",
                        help="Ray cluster to join, e.g. 'auto' on a cluster node or 'ray://HEAD:10001' "
                             "(default: start a local Ray; --engine ray only)")
    parser.add_argument("--threads", type=_int, default=1, metavar="N", help="torch threads per worker (default: 1)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="also redo the files an earlier run recorded as failed (default: keep them as failed)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_debug(parser)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``neurocodec`` command."""
    from neurocodec import __version__

    parser = _Parser(
        prog=PROG,
        formatter_class=_Formatter,
        description=_doc("""
            neurocodec: neural image compression with portable bitstreams.

            Compresses images into .ncdc files with a model shipped inside the package, and
            decodes them back. Nothing is downloaded."""),
        epilog=_doc("""
            examples:
              neurocodec roundtrip --sample           # demo: compress + decompress a built-in picture
              neurocodec encode photo.png -q 6        # writes photo.ncdc
              neurocodec decode photo.ncdc -o out.png
              neurocodec info photo.ncdc
              neurocodec models

            Run 'neurocodec COMMAND --help' for the options of a command. Exit status: 0 ok,
            1 bad input (missing file, not an image, damaged stream...), 2 bad command line."""),
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("--debug", action="store_true", default=False, help="show a full traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands", parser_class=_Parser)

    # -- encode -------------------------------------------------------------------
    p = sub.add_parser(
        "encode", help="compress images to .ncdc files", formatter_class=_Formatter,
        description=_doc("""
            Compress images (PNG, JPEG, BMP, WebP, TIFF, GIF, PPM...) to .ncdc streams.

            IN may be files, folders (every image below them, recursively) or quoted glob
            patterns ('photos/**/*.jpg'). By default each output is written next to its
            input with the suffix .ncdc (img.png -> img.ncdc). Existing outputs are never
            replaced unless --overwrite is given, and every output is written atomically:
            a failure or Ctrl-C leaves no half-written file.

            For each file it prints the input, output, size in bytes and bits per pixel
            (bpp = 8 * bytes / pixels); with one file also the encoding time. With several
            files a progress bar is shown, a file that fails is reported and skipped, and
            the exit status is 1 if any failed.

            IN may also be '-': the image is read from stdin, and the stream written to
            stdout unless -o names a file ('-o -' writes to stdout too).

            Images are coded as 8-bit RGB (neurocodec.codec.open_image, the loader of the
            Python API too): the EXIF orientation is applied; greyscale, palette and CMYK
            images are converted to RGB (a greyscale image decodes as RGB with three equal
            channels); an alpha channel is dropped when every pixel is opaque, and images
            with transparent pixels are refused; 16-bit images keep the high byte of each
            sample (v >> 8, as Pillow reads 16-bit RGB PNGs)."""),
        epilog=_doc("""
            examples:
              neurocodec encode photo.png                      # -> photo.ncdc
              neurocodec encode photo.png -o small.ncdc -q 2   # smaller file, lower quality
              neurocodec encode photos/ -o compressed/         # a folder, tree kept under compressed/
              neurocodec encode 'shots/*.jpg' --overwrite
              neurocodec encode my.png --weights my-model.safetensors   # your own model
              cat photo.jpg | neurocodec encode - > photo.ncdc"""))
    p.add_argument("inputs", nargs="+", metavar="IN", help="image files, folders or glob patterns; '-' for stdin")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="output file (one input file; '-' for stdout) or folder (several inputs, a folder or "
                        "a pattern; created if missing, which is said on stderr; sub-folders kept)")
    _add_model_quality(p, weights=True)
    p.add_argument("--bpp", type=float, metavar="X",
                   help="instead of --quality: find the quality whose file has X bits per pixel (searches; "
                        "a target outside the model's range gives quality 1 or 8, and a note says so)")
    p.add_argument("--psnr", type=float, metavar="DB",
                   help="instead of --quality: find the quality whose reconstruction has this PSNR "
                        "(likewise)")
    p.add_argument("--effort", type=_int, default=0, metavar="N",
                   help="optimise each image's latents for N steps before coding: smaller files at equal "
                        "quality, much slower encoding; decoding is unchanged (default: 0). For a model "
                        "fitted per image (overfit-cc): its iteration count, 0 for its preset")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    _add_threads(p)
    _add_json(p, "file")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar (of files, of tiles, or of the iterations of a model fitted per image)")
    _add_debug(p)

    # -- decode -------------------------------------------------------------------
    p = sub.add_parser(
        "decode", help="decompress .ncdc files to images", formatter_class=_Formatter,
        description=_doc("""
            Decompress .ncdc streams to image files (PNG by default).

            IN may be files, folders (every .ncdc below them) or quoted glob patterns, or
            '-' for a stream on stdin (the image then goes to stdout unless -o names a
            file). The model is read from each stream's header. By default the image is
            written next to its input (img.ncdc -> img.png). The overwrite and atomic-write
            rules are those of 'neurocodec encode'. A damaged or truncated stream is
            reported (exit status 1) and no output is written for it.

            The format is the one -o's suffix names (.png, .jpg/.jpeg, .webp, .avif where
            Pillow has AVIF, .ppm, .bmp, .tif/.tiff), or --format; a suffix that names no
            format, or another format than --format, is refused. JPEG, WebP and AVIF are
            lossy: --output-quality sets their quality. Decoded images are RGB."""),
        epilog=_doc("""
            examples:
              neurocodec decode photo.ncdc                 # -> photo.png
              neurocodec decode photo.ncdc -o view.jpg --output-quality 95   # format from the suffix
              neurocodec decode photo.ncdc -o textured.png --realism 1     # synthesised texture
              neurocodec decode compressed/ -o restored/ --format tiff
              neurocodec decode - --format png < photo.ncdc > photo.png"""))
    p.add_argument("inputs", nargs="+", metavar="IN", help=".ncdc files, folders or glob patterns; '-' for stdin")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="output file (one input file; '-' for stdout) or folder (several inputs)")
    p.add_argument("-f", "--format", choices=list(OUTPUT_FORMATS), default=None,
                   help="image format to write (default: the suffix of -o for one file, else png)")
    p.add_argument("--output-quality", type=_int, metavar="N",
                   help=f"quality 1-100 of a lossy output format ({', '.join(LOSSY_FORMATS)}; "
                        f"default: {DEFAULT_OUTPUT_QUALITY})")
    p.add_argument("--weights", metavar="FILE",
                   help="weight file to decode streams whose model this installation does not have")
    p.add_argument("--realism", type=float, default=0.0, metavar="R",
                   help="0 to 1: decode with the model's realism decoder, which adds synthesised texture where "
                        "the plain decoder is smooth (0: the plain decoder, exactly; 1: the most texture, "
                        "a lower PSNR). The stream is the same; models that ship one: see 'neurocodec models'")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    _add_threads(p)
    _add_json(p, "file")
    _add_debug(p)

    # -- encode-dir -------------------------------------------------------------------
    p = sub.add_parser(
        "encode-dir", help="compress a collection of images in parallel (local processes or Ray); resumable",
        formatter_class=_Formatter,
        description=_doc("""
            Compress every image below SRC into DST, one .ncdc file per image with the tree
            mirrored (SRC/a/b.png -> DST/a/b.ncdc), in parallel on a pool of local processes
            or on a Ray cluster, and keep DST/manifest.jsonl: one JSON line per image with
            its path, bytes, bpp, PSNR, model, quality, status and error.

            SRC is a folder (searched recursively) or a list file: .txt/.lst with one path
            per line (relative to the list's folder), or .jsonl with a "path" per line.

            Running the same command again skips what the manifest records as done (also
            after a crash or Ctrl-C: each image is recorded as soon as it is written), and
            redoes images whose source changed. A file that fails (not an image,
            transparent, damaged...) is recorded as failed and the others go on; failed
            files are not retried unless --retry-failed is given. The exit status is 1 if
            the manifest lists failed files. DST belongs to the job: an output there that
            the manifest does not record as done is replaced.

            --latents writes the decoder's dequantised latents instead of .ncdc files, as
            float32 arrays (C, H/8, W/8 for the shipped model) concatenated in .npy shards
            under DST/latents/, located by the manifest's shard/offset/shape fields, for
            learning in the compressed domain (neurocodec.collection.LatentShards reads
            them as a dataset). See docs/scale-out.md."""),
        epilog=_doc("""
            examples:
              neurocodec encode-dir photos/ compressed/ -q 6               # local, all cores
              neurocodec encode-dir photos/ compressed/ --workers 2
              neurocodec encode-dir list.txt compressed/ --engine ray      # a local Ray
              neurocodec encode-dir /shared/photos /shared/out --engine ray --address auto   # on a cluster
              neurocodec encode-dir photos/ latents/ --latents --shard-mb 512"""))
    p.add_argument("src", metavar="SRC", help="folder of images, or a list file (.txt, .lst, .jsonl)")
    p.add_argument("dst", metavar="DST", help="destination folder (created): .ncdc files and manifest.jsonl")
    _add_model_quality(p)
    p.add_argument("--latents", action="store_true",
                   help="write sharded latent arrays (DST/latents/*.npy) instead of .ncdc files")
    p.add_argument("--shard-mb", type=float, metavar="MB",
                   help="with --latents: size of a latent shard in MB (default: 256)")
    _add_collection_options(p)

    # -- decode-dir -------------------------------------------------------------------
    p = sub.add_parser(
        "decode-dir", help="decompress a collection of .ncdc files in parallel; resumable",
        formatter_class=_Formatter,
        description=_doc("""
            Decompress every .ncdc file below SRC (e.g. an encode-dir destination) into
            images under DST, the tree mirrored (SRC/a/b.ncdc -> DST/a/b.png), with
            DST/manifest.jsonl. The model of each file is read from its header. Engines,
            resuming, failures and exit status are those of 'neurocodec encode-dir'."""),
        epilog=_doc("""
            examples:
              neurocodec decode-dir compressed/ restored/
              neurocodec decode-dir compressed/ restored/ --format tiff --engine ray"""))
    p.add_argument("src", metavar="SRC", help="folder of .ncdc files, or a list file (.txt, .lst, .jsonl)")
    p.add_argument("dst", metavar="DST", help="destination folder (created): images and manifest.jsonl")
    p.add_argument("-f", "--format", choices=list(OUTPUT_FORMATS), default="png",
                   help="image format to write (default: png)")
    _add_collection_options(p)

    # -- info -----------------------------------------------------------------------
    p = sub.add_parser(
        "info", help="show what a .ncdc file contains", formatter_class=_Formatter,
        description=_doc("""
            Show the header of a .ncdc stream: model and weight hash, the release of
            neurocodec that shipped those weights (if one did) and where this installation
            finds them (shipped, a folder of NEUROCODEC_MODEL_PATH, the decode-only weights
            of an earlier release, or --weights), entropy coder, quality, image size,
            tiling, the payload segments and their sizes, total size and bpp.

            Only the header has to be intact: a damaged or truncated payload is reported on
            the 'payload:' line, and the exit status is then 1. The image is not decoded."""),
        epilog=_doc("""
            examples:
              neurocodec info photo.ncdc
              neurocodec info photo.ncdc --json | python3 -m json.tool"""))
    p.add_argument("file", metavar="FILE", help="a .ncdc file")
    p.add_argument("--weights", metavar="W", help="a weight file to check the stream's model against")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of text")
    _add_debug(p)

    # -- models ---------------------------------------------------------------------
    p = sub.add_parser(
        "models", help="list the shipped models", formatter_class=_Formatter,
        description=_doc("""
            List the models shipped with this installation, then those found in the folders
            of the environment variable NEUROCODEC_MODEL_PATH (your own, e.g. from 'neurocodec
            train --export'; marked '+', with their file): name, architecture, size, weight
            hash (what streams record), description and training summary (steps, CPU-hours)
            from the model card. The default model is marked with '*'. Does not load torch."""),
        epilog=_doc("""
            examples:
              neurocodec models
              neurocodec models --json"""))
    p.add_argument("--json", action="store_true", help="print a JSON list instead of text")
    _add_debug(p)

    # -- roundtrip ------------------------------------------------------------------
    p = sub.add_parser(
        "roundtrip", help="compress + decompress an image and report size and PSNR", formatter_class=_Formatter,
        description=_doc("""
            Compress an image and decompress it again in memory (no file is written).
            Prints the stream size in bytes and bits per pixel, the PSNR of the decoded
            image against the original, the coding times, and whether the decoded image is
            bit-identical to the reconstruction the encoder predicted (exit status 1 if not).

            --sample uses a built-in synthetic 768x512 picture, so the demo needs no
            image file."""),
        epilog=_doc("""
            examples:
              neurocodec roundtrip --sample
              neurocodec roundtrip --sample -q 8
              neurocodec roundtrip photo.png --model block-hyperprior-mse"""))
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("image", nargs="?", metavar="IMAGE", help="an image file")
    source.add_argument("--sample", action="store_true", help="use the built-in synthetic test picture")
    _add_model_quality(p, weights=True)
    _add_threads(p)
    _add_json(p, "image")
    _add_debug(p)

    # -- train ----------------------------------------------------------------------
    p = sub.add_parser(
        "train", help="train a model on a folder of images (resumable)", formatter_class=_Formatter,
        description=_doc("""
            Train a model with the rate-distortion loss on random crops of the images in
            DATA_DIR (recursively). RUN_DIR receives checkpoint.pt, log.jsonl and
            config.json.

            If RUN_DIR already has a checkpoint, training resumes from it with the saved
            configuration; options given on the command line replace saved values (e.g. a
            larger --steps extends a finished run). Ctrl-C stops; the same command resumes
            from the last checkpoint.

            Processes: without --nproc, one per idle core (torchrun, DistributedDataParallel;
            the output says how many and why); --nproc 1 trains in this process. The same
            loop also runs under 'torchrun --nproc_per_node N -m neurocodec.train DATA_DIR
            RUN_DIR ...', on one machine or several. Rank 0 writes the run folder.

            Precision: --precision auto (the default) runs the transforms in bf16 autocast
            where the device computes bf16 natively (AVX-512 BF16 / AMX CPUs, GPUs) and in
            fp32 elsewhere; the prior, the rate terms and the loss are always fp32."""),
        epilog=_doc("""
            examples:
              neurocodec train data/train runs/exp1 --steps 20000
              neurocodec train data/train runs/exp1 --steps 20000 --nproc 1 --precision fp32
              neurocodec train data/train runs/exp1 --steps 20000 \\
                  --export my-model.safetensors --name my-model
              neurocodec train data/train runs/exp1 --nproc 4 --batch 16   # 4 processes x 4 crops"""))
    add_train_arguments(p, ARCHITECTURE_NAMES)  # described once, by neurocodec.train.config.TrainConfig
    _add_debug(p)

    # -- bench ----------------------------------------------------------------------
    p = sub.add_parser(
        "bench", help="rate-distortion benchmark against JPEG, WebP and AVIF", formatter_class=_Formatter,
        description=_doc("""
            Measure shipped models (qualities 1-8) and Pillow's JPEG, WebP (method 6) and
            AVIF (speed 4, 4:4:4) on a folder of images, in the same run: mean bpp from
            real file sizes, PSNR and MS-SSIM per image then averaged, and BD-rates of each
            curve against each classical one (and against the published VTM and BPG curves
            with --anchors, for the full Kodak set). Optionally writes a Markdown report, an
            RD plot (needs matplotlib: pip install 'neurocodec[bench]') and the raw points."""),
        epilog=_doc("""
            examples:
              neurocodec bench kodak/ --images 4 --codecs jpeg          # quick look
              neurocodec bench kodak/ --anchors kodak_published_rd.csv --out-md report.md --out-png rd.png"""))
    p.add_argument("folder", metavar="DIR", help="folder of PNG/JPEG images")
    p.add_argument("--models", metavar="A,B", help="comma-separated shipped models (default: the default model)")
    p.add_argument("--codecs", metavar="LIST", default="jpeg,webp,avif",
                   help="classical codecs to measure, comma-separated; '' for none (default: jpeg,webp,avif)")
    p.add_argument("--images", type=_int, metavar="N", help="use only the first N images")
    p.add_argument("--anchors", metavar="CSV", help="published RD points (kodak_published_rd.csv) to compare with")
    p.add_argument("--out-md", metavar="FILE", help="write a Markdown report")
    p.add_argument("--out-png", metavar="FILE", help="write an RD plot")
    p.add_argument("--out-json", metavar="FILE", help="write the measured points as JSON")
    p.add_argument("--threads", type=_int, default=1, metavar="N", help="torch threads (default: 1)")
    _add_debug(p)
    return parser


_COMMANDS = {
    "encode": "cmd_encode",
    "decode": "cmd_decode",
    "info": "cmd_info",
    "models": "cmd_models",
    "roundtrip": "cmd_roundtrip",
    "train": "cmd_train",
    "bench": "cmd_bench",
    "encode-dir": "cmd_encode_dir",
    "decode-dir": "cmd_decode_dir",
}


def _print_error(message: str) -> None:
    print(f"{PROG}: error: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run the ``neurocodec`` command with ``argv`` (default: ``sys.argv[1:]``).

    Returns the exit status: 0 success, 1 bad input (missing or unreadable file, not an
    image, damaged stream, output exists...), 2 bad command line (unknown option, bad
    quality, unknown model), 130 interrupted. Errors are one line on stderr; ``--debug``
    shows tracebacks instead.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:
            raise _ArgumentError(f"unrecognized arguments: {' '.join(extra)}",
                                 f"{PROG} {args.command}" if args.command else PROG)
    except _ArgumentError as exc:
        command = exc.prog[len(PROG):].strip()
        hint = f"see '{PROG} {command} --help'" if command else f"see '{PROG} --help'"
        _print_error(f"{exc} ({hint})")
        return EXIT_USAGE
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
    args.argv_echo = argv[1:] if argv else []
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE

    debug = getattr(args, "debug", False)
    try:
        from . import _commands

        return getattr(_commands, _COMMANDS[args.command])(args)
    except KeyboardInterrupt:
        if debug:
            raise
        _print_error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. "neurocodec models | head -1": stop quietly
        try:
            import os

            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so the final flush at exit does not fail
        except (OSError, AttributeError, ValueError):
            pass
        return EXIT_FAILURE
    except Exception as exc:
        if debug:
            raise
        from ..errors import NeurocodecError

        if isinstance(exc, CLIError):
            _print_error(str(exc))
            return exc.code
        if isinstance(exc, NeurocodecError):
            _print_error(str(exc))
            return EXIT_FAILURE
        if isinstance(exc, OSError):
            from ..files import describe

            _print_error(describe(exc))
            return EXIT_FAILURE
        if isinstance(exc, MemoryError):
            _print_error("out of memory")
            return EXIT_FAILURE
        _print_error(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)")
        return EXIT_FAILURE


__all__ = ["DEFAULT_QUALITY", "EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]
