"""What defines a training run: :class:`TrainConfig`, its checks, and its options described once.

Each field of :class:`TrainConfig` carries its own description (``dataclasses.field``
metadata: help text, and the command-line flag where it has one). ``neurocodec train`` and
``python -m neurocodec.train`` build their options from these descriptions
(:mod:`neurocodec.train.command`), so an option is documented in one place. The rules a
configuration must follow live in one place too, :meth:`TrainConfig.validate`, which
:func:`neurocodec.train.train` calls before it writes anything and the commands call before
they start processes; a bad value raises :class:`TrainConfigError`, which names the field.

This module imports only the standard library (``--help`` must not load torch); checks that
need the models (architecture names, model options) import them when they run.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Callable

PRECISIONS = ("auto", "fp32", "bf16")
DISTORTIONS = ("mse", "ms-ssim")
RATE_PROXY_NAMES = ("noise", "round")  # neurocodec.entropy.RATE_PROXIES (a test keeps them equal)


class TrainConfigError(ValueError):
    """A training option has a value training cannot use.

    ``field`` is the option's name (a :class:`TrainConfig` field, or a run option such as
    ``export``); ``problem`` says what is wrong. ``str(error)`` reads "FIELD PROBLEM";
    :meth:`render` writes the same sentence with other names for the fields (the commands
    give their flags: "--steps must be at least 1, got 0").
    """

    def __init__(self, field_name: str, problem: str, refs: tuple[str, ...] = ()):
        self.field = field_name
        self.problem = problem    # may hold "{}" placeholders, one per name in ``refs``
        self.refs = refs
        super().__init__(self.render())

    def render(self, name: Callable[[str], str] = str) -> str:
        return f"{name(self.field)} " + self.problem.format(*map(name, self.refs))


def _shown(value: Any) -> str:
    """``repr(value)`` made safe inside a :class:`TrainConfigError` problem template."""
    return repr(value).replace("{", "{{").replace("}", "}}")


def option(default: Any = MISSING, help: str = "", flag: str | None = None, **argparse: Any):
    """A :class:`TrainConfig` field and its description: ``help`` (with ``%(default)s`` where
    the default should show), ``flag`` (the command-line option, if it has one) and further
    ``argparse.add_argument`` keywords (metavar, type, choices, action)."""
    meta = {"help": help, "flag": flag, "argparse": argparse}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def parse_scales(text: str) -> tuple[float, ...]:
    """``"0.5,0.75,1"`` -> ``(0.5, 0.75, 1.0)`` (the range check is :meth:`TrainConfig.validate`'s)."""
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated numbers, got {text!r}") from None


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved as the run's config.json).

    Build one, adjust it, then :meth:`validate` it (``train`` does so before it starts).
    """

    data: str = option(help="folder of training images (searched recursively)")
    architecture: str = option("block-hyperprior", "registered architecture (docs/models.md, "
                               "docs/entropy-models.md, docs/transforms.md)", "--architecture", metavar="NAME")
    distortion: str = option("mse", "distortion measure of the loss", "--distortion", choices=DISTORTIONS)
    rate_proxy: str = option("noise", "rate of the latents in the loss: 'noise' (additive uniform noise) or 'round' "
                             "(bits of the coded symbols, straight-through; better for fine-tuning a trained "
                             "model)", "--rate-proxy", choices=RATE_PROXY_NAMES)
    model_config: dict = option({}, "an architecture option (repeatable), e.g. --model-option refine_hidden=96; the "
                                "options of each architecture are in docs/models.md and docs/transforms.md "
                                "(default: its defaults)", "--model-option", metavar="KEY=VALUE", action="append")
    precision: str = option("auto", "arithmetic of the transforms: 'bf16' (autocast; the prior's fixed-point fake "
                            "quantisation, the rate terms and the loss stay float32), 'fp32', or 'auto' (bf16 "
                            "where the device computes it natively: a CUDA GPU, or a CPU with AVX-512 BF16 or AMX; "
                            "fp32 elsewhere)", "--precision", choices=PRECISIONS)
    steps: int = option(10000, "total optimisation steps of the run", "--steps", metavar="N", type=int)
    batch: int = option(8, "crops per step (the global batch: split evenly over the processes)", "--batch",
                        metavar="N", type=int)
    crop: int = option(128, "crop side in pixels", "--crop", metavar="PX", type=int)
    scales: tuple = option((0.5, 0.75), "the scale factors (Lanczos) each training image is kept at, comma-separated; "
                           "add 1 to train on full-resolution crops too", "--scales",
                           metavar="F,F,...", type=parse_scales)
    lr: float = option(5e-4, "learning rate (divided by 10 after the share --lr-drop-at of the steps)", "--lr",
                       metavar="LR", type=float)
    lr_drop_at: float = option(0.85, "fraction of the steps after which the learning rate is divided by 10",
                               "--lr-drop-at", metavar="SHARE", type=float)
    clip: float = option(1.0, "gradient-norm clipping threshold")
    min_quality: float = option(1.0, "lowest quality trained")
    max_quality: float = option(8.0, "highest quality trained")
    integer_qualities: float = option(0.0, "share of crops (0 to 1) trained at an integer quality, the rows users "
                                      "pick; the others draw any quality in [1, 8]", "--integer-qualities",
                                      metavar="SHARE", type=float)
    seed: int = option(0, "random seed", "--seed", metavar="N", type=int)
    threads: int = option(1, "torch CPU threads per process", "--threads", metavar="N", type=int)
    checkpoint_every: int = option(200, "write the checkpoint every N steps", "--checkpoint-every", metavar="N",
                                   type=int)
    snapshot_every: int = option(0, "also keep the weights every N steps (for RD-against-CPU-time curves; 0: never)",
                                 "--snapshot-every", metavar="N", type=int)
    log_every: int = option(20, "write a log line every N steps", "--log-every", metavar="N", type=int)
    init_from: str = option("", "start from these weights (a shipped or exported model) instead of random "
                            "initialisation", "--init-from", metavar="W.safetensors")
    init_shrink: bool = option(False, "--init-from is a wider model of the same architecture: keep its most "
                               "important hidden channels where --model-option makes the model narrower "
                               "(docs/models.md, Training)", "--init-shrink", action="store_true")
    entropy_warmup: int = option(0, "first N steps train only the entropy model (transforms frozen)", "--warmup",
                                 metavar="N", type=int)
    fresh_only: bool = option(False, "train only the parts --init-from lacks (the family's additions: new stages, "
                              "context networks, mixture components); everything loaded stays as it is",
                              "--fresh-only", action="store_true")

    def validate(self) -> "TrainConfig":
        """Check every field; raise :class:`TrainConfigError` for the first bad one. Returns self.

        Also builds the model once if ``model_config`` is not empty, to check its options.
        """
        for name in ("steps", "batch", "crop", "threads", "checkpoint_every", "log_every"):
            _require(isinstance(getattr(self, name), int) and getattr(self, name) >= 1, name,
                     f"must be an integer of at least 1, got {_shown(getattr(self, name))}")
        for name in ("snapshot_every", "entropy_warmup", "seed"):
            _require(isinstance(getattr(self, name), int) and getattr(self, name) >= 0, name,
                     f"must be an integer of at least 0, got {_shown(getattr(self, name))}")
        _require(_finite(self.lr) and self.lr > 0, "lr", f"must be positive, got {_shown(self.lr)}")
        _require(_finite(self.clip) and self.clip > 0, "clip", f"must be positive, got {_shown(self.clip)}")
        for name in ("lr_drop_at", "integer_qualities"):
            _require(_finite(getattr(self, name)) and 0.0 <= getattr(self, name) <= 1.0, name,
                     f"must be a share in [0, 1], got {_shown(getattr(self, name))}")
        _require(_finite(self.min_quality) and _finite(self.max_quality)
                 and 1.0 <= self.min_quality <= self.max_quality <= 8.0, "min_quality",
                 f"and {{}} must satisfy 1 <= min <= max <= 8, got {self.min_quality!r} and {self.max_quality!r}",
                 ("max_quality",))
        _require(len(self.scales) > 0 and all(_finite(s) and 0 < s <= 1 for s in self.scales), "scales",
                 f"must be factors in (0, 1], got {_shown(self.scales)}")
        for name, allowed in (("distortion", DISTORTIONS), ("rate_proxy", RATE_PROXY_NAMES),
                              ("precision", PRECISIONS)):
            _require(getattr(self, name) in allowed, name,
                     f"must be one of {', '.join(allowed)}, got {_shown(getattr(self, name))}")
        _require(not self.init_shrink or bool(self.init_from), "init_shrink",
                 "needs {} (the wider model's weights)", ("init_from",))
        _require(not self.fresh_only or bool(self.init_from), "fresh_only",
                 "needs {} (the weights whose parameters stay frozen)", ("init_from",))
        _require(isinstance(self.model_config, dict), "model_config",
                 f"must be a dict of architecture options, got {_shown(self.model_config)}")
        from ..models import ARCHITECTURES, build_model

        _require(self.architecture in ARCHITECTURES, "architecture",
                 f"{_shown(self.architecture)} is not registered; known architectures are "
                 f"{', '.join(sorted(ARCHITECTURES))}")
        _require(not ARCHITECTURES[self.architecture].learns_per_image, "architecture",
                 f"{_shown(self.architecture)} learns each image's networks when it encodes it; there is nothing "
                 "to train on a data set (docs/overfitted.md)")
        _require(not self.fresh_only or bool(ARCHITECTURES[self.architecture].warm_start_fresh), "fresh_only",
                 f"leaves nothing to train: {self.architecture} adds no parameters to its warm start")
        if self.model_config:
            try:
                build_model(self.architecture, **self.model_config)
            except (TypeError, ValueError) as exc:
                raise TrainConfigError("model_config", f"for {self.architecture}: "
                                       f"{_shown(' '.join(str(exc).split()))}") from None
        return self


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _require(ok: bool, field_name: str, problem: str, refs: tuple[str, ...] = ()) -> None:
    if not ok:
        raise TrainConfigError(field_name, problem, refs)


def defaults() -> dict[str, Any]:
    """Each field's default (fields without one are left out)."""
    out = {}
    for f in fields(TrainConfig):
        if f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not MISSING:
            out[f.name] = f.default_factory()
    return out


def flag_fields() -> list:
    """The fields that have a command-line flag, in declaration order."""
    return [f for f in fields(TrainConfig) if f.metadata.get("flag")]


def parse_model_options(options: list[str] | None) -> dict | None:
    """``["refine_hidden=96", ...]`` -> ``{"refine_hidden": 96, ...}`` (values read as JSON
    numbers, booleans or lists where they parse, else kept as text); None if none given."""
    if not options:
        return None
    parsed = {}
    for text in options:
        key, sep, value = text.partition("=")
        if not sep or not key.isidentifier():
            raise TrainConfigError("model_config", f"{_shown(text)}: expected KEY=VALUE, e.g. refine_hidden=96")
        try:
            parsed[key] = json.loads(value)
        except ValueError:
            parsed[key] = value
    return parsed
