"""The training command: ``python -m neurocodec.train`` and ``neurocodec train`` are both this.

:func:`add_arguments` builds the options from :class:`~neurocodec.train.config.TrainConfig`'s
field descriptions and :data:`RUN_OPTIONS` (options of one invocation, not of the run), and
:func:`run_command` runs a parsed command line. Bad options raise
:class:`~neurocodec.train.config.TrainConfigError` (a usage error: render it with
:func:`flag_of` to name the flags); other failures raise :class:`CommandFailed`.

Without ``--nproc`` the command trains in as many processes as there are idle cores
(:func:`~neurocodec.train.distributed.choose_nproc`) and says what it chose and why; the
processes are started by torchrun and each runs ``python -m neurocodec.train`` with the
same options (:func:`torchrun_argv`).

This module imports only the standard library at import time (``--help`` stays fast).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

from ..format import MODEL_ID_PATTERN
from .config import TrainConfig, TrainConfigError, _shown, defaults, flag_fields, parse_model_options

#: Options of one invocation (not saved with the run): name -> (flag, help, argparse keywords).
RUN_OPTIONS: dict[str, tuple[str, str, dict]] = {
    "export": ("--export", "after training, write the model as a weight file (needs --name)",
               {"metavar": "OUT.safetensors"}),
    "name": ("--name", "model name recorded in the exported file", {"metavar": "NAME"}),
    "description": ("--description", "model description recorded in the exported file", {"metavar": "TEXT"}),
    "nproc": ("--nproc", "train in N processes on this machine with DistributedDataParallel (started with "
              "torchrun; --batch is then the global batch, split evenly). A run can resume with another N. "
              "For several machines run torchrun yourself (docs/scale-out.md). Default: one process per idle "
              "core (the output says how many and why)", {"metavar": "N", "type": int}),
    "device": ("--device", "cpu (processes talk over gloo) or cuda (one GPU per process, nccl; new runs default "
               "to --batch 32 --crop 256 there) (default: cpu)", {"choices": ("cpu", "cuda"), "default": "cpu"}),
    "time_limit": ("--time-limit", "stop after the first step that ends S seconds into this invocation (the "
                   "checkpoint is written; the same command resumes)", {"metavar": "S", "type": float}),
    "quiet": ("--quiet", "no progress bar", {"action": "store_true"}),
}
#: Defaults of a new run on a GPU where --batch / --crop are not given (more work per step).
CUDA_DEFAULTS = {"batch": 32, "crop": 256}
_MODEL_NAME = re.compile(MODEL_ID_PATTERN)


class CommandFailed(Exception):
    """Training could not run or stopped; ``code`` is the exit status (1, or 130 for Ctrl-C)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def dest_of(f) -> str:
    """The ``argparse`` attribute of a TrainConfig field's flag (``--model-option`` -> ``model_option``)."""
    return f.metadata["flag"].lstrip("-").replace("-", "_")


def flag_of(name: str) -> str:
    """The command-line spelling of a TrainConfig field or run option (``entropy_warmup`` ->
    ``--warmup``; ``data`` -> ``DATA_DIR``)."""
    if name == "data":
        return "DATA_DIR"
    if name in RUN_OPTIONS:
        return RUN_OPTIONS[name][0]
    for f in flag_fields():
        if f.name == name:
            return f.metadata["flag"]
    return name


def add_arguments(parser, architectures: tuple[str, ...] | None = None) -> None:
    """Add DATA_DIR, RUN_DIR and every option to an ``argparse`` parser. Options of the run
    default to None (not given: a resumed run keeps its saved value; a new run takes the
    TrainConfig default, shown in the help). ``architectures``, if given, are listed in
    --architecture's help."""
    parser.add_argument("data_dir", metavar="DATA_DIR", help="folder of training images")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="folder for the checkpoint and logs (created if missing)")
    shown = defaults()
    for f in flag_fields():
        text = f.metadata["help"]
        if f.name == "architecture" and architectures:
            text = f"{text}: one of {', '.join(architectures)}"
        if not (shown[f.name] is False or shown[f.name] == "" or shown[f.name] == {}):
            text += f" (default: {shown[f.name]:g})" if isinstance(shown[f.name], float) else \
                f" (default: {shown[f.name]})"
        parser.add_argument(f.metadata["flag"], dest=dest_of(f), default=None, help=text, **f.metadata["argparse"])
    for name, (flag, text, keywords) in RUN_OPTIONS.items():
        parser.add_argument(flag, dest=name, help=text, **keywords)


def config_from_args(args) -> TrainConfig:
    """The run's configuration: a resumed run's saved config.json with the options given on
    the command line on top; for a new run, the options given over TrainConfig's defaults
    (and :data:`CUDA_DEFAULTS` on a GPU). Validated."""
    run = Path(args.run_dir)
    given = {f.name: getattr(args, dest_of(f)) for f in flag_fields() if getattr(args, dest_of(f), None) is not None}
    options = given.pop("model_config", None)
    known = set(defaults()) | {"data"}
    saved: dict = {}
    if (run / "checkpoint.pt").exists() and (run / "config.json").exists():
        try:
            saved = {k: v for k, v in json.loads((run / "config.json").read_text()).items() if k in known}
        except (OSError, ValueError) as exc:
            raise CommandFailed(f"{run / 'config.json'}: cannot read the saved configuration "
                                f"({' '.join(str(exc).split())})") from None
        if "architecture" in given and given["architecture"] != saved.get("architecture", given["architecture"]):
            raise TrainConfigError("architecture", f"{_shown(given['architecture'])}: {_shown(str(run))} holds a "
                                   f"{_shown(saved['architecture'])} run, which cannot resume as another architecture")
    elif getattr(args, "device", "cpu") == "cuda":
        given = {**{k: v for k, v in CUDA_DEFAULTS.items() if k not in given}, **given}
    model_options = parse_model_options(options)
    if model_options is not None:
        if saved and model_options != saved.get("model_config", {}):
            raise TrainConfigError("model_config", f"{_shown(model_options)}: {_shown(str(run))} was started with "
                                   f"model options {_shown(saved.get('model_config', {}))}; a run cannot resume "
                                   "with others")
        given["model_config"] = model_options
    config = {**saved, **given, "data": str(args.data_dir)}
    if "scales" in config:
        config["scales"] = tuple(config["scales"])
    return TrainConfig(**config).validate()


def torchrun_argv(args) -> list[str]:
    """The arguments each torchrun process gets: those given, less --nproc."""
    argv = [str(args.data_dir), str(args.run_dir)]
    flags = [(dest_of(f), f.metadata["flag"]) for f in flag_fields() if f.name != "model_config"]
    flags += [(name, flag) for name, (flag, _, _) in RUN_OPTIONS.items() if name != "nproc"]
    for dest, flag in flags:
        value = getattr(args, dest, None)
        if value is True:
            argv.append(flag)
        elif isinstance(value, tuple):
            argv += [flag, ",".join(map(str, value))]
        elif value is not None and value is not False:
            argv += [flag, str(value)]
    for option in getattr(args, "model_option", None) or ():
        argv += ["--model-option", option]
    if getattr(args, "debug", False):
        argv.append("--debug")
    return argv


def run_command(args, say: Callable[[str], Any] = print) -> int:
    """Run ``neurocodec train`` with parsed ``args``; ``say`` prints a line. Returns 0."""
    if (args.export is None) != (args.name is None):
        raise TrainConfigError("export", "and {} go together: --export OUT.safetensors --name MODEL-NAME", ("name",))
    if args.name is not None and not _MODEL_NAME.fullmatch(args.name):
        raise TrainConfigError("name", f"{_shown(args.name)}: a model name is 1..64 characters of a-z 0-9 . _ -")
    if getattr(args, "time_limit", None) is not None and not args.time_limit >= 0:
        raise TrainConfigError("time_limit", f"must be a number of seconds >= 0, got {args.time_limit}")
    if args.nproc is not None and args.nproc < 1:
        raise TrainConfigError("nproc", f"must be at least 1, got {args.nproc}")
    data_dir = Path(args.data_dir)
    if not data_dir.is_dir():
        raise CommandFailed(f"{data_dir}: no such folder")
    cfg = config_from_args(args)
    run = Path(args.run_dir)

    from . import distributed

    nproc = args.nproc
    if nproc is None and distributed.env_world_size() == 1:
        nproc, why = distributed.choose_nproc(cfg.batch, cfg.threads, args.device)
        say(f"processes: {nproc} ({why}; --nproc N to choose)")
    if nproc is not None and nproc > 1:
        if distributed.env_world_size() > 1:
            raise TrainConfigError("nproc", "inside torchrun: give the process count to torchrun only")
        if cfg.batch % nproc:
            raise TrainConfigError("batch", f"{cfg.batch} does not split evenly over {{}} {nproc} processes; use a "
                                   "batch that is a multiple of the process count", ("nproc",))
        try:
            status = distributed.launch(nproc, torchrun_argv(args))
        except KeyboardInterrupt:
            raise CommandFailed(f"interrupted; run the same command again to resume {run} from its last "
                                "checkpoint", code=130) from None
        if status:
            raise CommandFailed(f"training stopped: a process failed (its error is above); {run} resumes from its "
                                "last checkpoint")
        return 0
    return _train_here(args, cfg, run, say)


def _train_here(args, cfg: TrainConfig, run: Path, say: Callable[[str], Any]) -> int:
    """Train in this process (alone, or as one of torchrun's)."""
    import neurocodec.train as package

    from . import distributed

    main = distributed.env_rank() == 0  # under torchrun only rank 0 reports (and exports)
    world = distributed.env_world_size()
    if main:
        import torch

        from .precision import resolve

        device = torch.device("cuda" if args.device == "cuda" else "cpu")
        note = resolve(cfg.precision, device)[1] if args.device == "cpu" or torch.cuda.is_available() else ""
        say(f"{'resuming' if (run / 'checkpoint.pt').exists() else 'starting'} run {run}: {cfg.architecture}, "
            f"{cfg.steps:,} steps, batch {cfg.batch}, crop {cfg.crop}, {cfg.threads} thread(s)"
            + (f", {world} processes" if world > 1 else "") + (f", {note}" if note else ""))
    try:
        limit = {} if getattr(args, "time_limit", None) is None else {"time_limit": args.time_limit}
        checkpoint = package.train(cfg, run, progress=not args.quiet, device=args.device, **limit)
    except KeyboardInterrupt:
        raise CommandFailed(f"interrupted; run the same command again to resume {run} from its last checkpoint",
                            code=130) from None
    except TrainConfigError:
        raise
    except (FileNotFoundError, ValueError) as exc:
        raise CommandFailed(" ".join(str(exc).split())) from None
    if not main:
        return 0
    say(f"checkpoint: {checkpoint}")
    log = run / "log.jsonl"
    if log.exists():
        rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        waits = [r["data_wait"] for r in rows if "data_wait" in r]
        if waits:
            say(f"waiting for data: {100 * sum(waits) / len(waits):.2f} % of the step time (mean over the log)")
    if args.export:
        from . import export

        weight_hash = export.export_run(run, Path(args.export), args.name, args.description or "")
        say(f"exported {args.name} to {args.export} (weights {weight_hash.hex()})")
    return 0
