"""Cross-process determinism of neurocodec streams (issue 4, must-show 1-3).

Two processes that differ the way two machines do:

* process A (encoder): ``torch.backends.mkldnn.enabled = True``, 1 thread. Encodes every
  image at each quality, and writes the stream, the symbols it handed to the entropy
  coder (z and y of every tile, with the y table indexes), the reconstruction the encoder
  promises, and its own decode of the stream.
* process B (decoder): mkldnn disabled, 2 threads. Decodes every stream and records the
  symbols the entropy coder returned and the pixels.

The report compares B with A: files whose entropy-decoded symbols differ (must be 0),
files that fail to decode, and the pixel differences against A's decode (target: at most
1 level in at most 0.1 % of the pixel positions; the float synthesis may round
differently, a desynchronised decoder gives garbage).

Variants:

* ``--float-prior [fake-quant|plain]``: the control. In both processes the prior runs in
  float32 instead of the exact integer path: ``fake-quant`` is the hyper-synthesis's
  training face (``FixedPointHyperSynthesis.forward``: float32 convolutions, whose
  summation order depends on mkldnn and the thread count, on the fixed-point grids);
  ``plain`` is the same network as a float hyperprior (CompressAI, tensorflow-compression)
  runs it: float weights, no grids. Counts the files that decode wrongly (symbols differ
  or decoding fails).
* ``--float64``: the float transforms (analysis, synthesis and the rest) run in float64 in
  both processes: what pixel-exact decoding across these settings would cost.
* ``--noise 1e-4``: relative Gaussian noise of that size is multiplied into the outputs of
  the float transforms (analysis, hyper-analysis and synthesis in A; synthesis in B; the
  two processes draw different noise). Decoding must still give the encoder's symbols.

Usage (a full run takes ~3 s per file on one free core; use nice on a shared machine)::

    nice -n 10 python benchmarks/determinism.py                       # 24 Kodak x q 1,4,8
    nice -n 10 python benchmarks/determinism.py --images 2 --qualities 4
    nice -n 10 python benchmarks/determinism.py --float-prior plain --images 4
    nice -n 10 python benchmarks/determinism.py --noise 1e-4 --md docs/determinism-runs.md
    python benchmarks/determinism.py --synthetic 2 --size 96x128      # no data needed

Results are kept in ``--workdir`` (default: a fresh temporary directory, deleted at the
end); with an explicit ``--workdir`` a rerun skips the files already done, so a long run
can be interrupted and resumed. ``--json`` writes the summary as JSON.

Exit status: 1 if any file's symbols differ or a decode fails, unless ``--float-prior``
(the control is expected to fail).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_KODAK = ROOT.parent / "shared" / "data" / "kodak"
PIXEL_LEVEL_TARGET = 1  # max |difference| in 8-bit levels
PIXEL_FRACTION_TARGET = 1e-3  # fraction of pixel positions allowed to differ

# Process settings of the experiment (issue 4, must-show 1).
ENCODER = dict(mkldnn=True, threads=1)
DECODER = dict(mkldnn=False, threads=2)


def _import_neurocodec():
    try:
        import neurocodec  # noqa: F401
    except ImportError:  # running from a checkout without `pip install -e .`
        sys.path.insert(0, str(ROOT / "src"))


# --------------------------------------------------------------------------- #
# Images
# --------------------------------------------------------------------------- #


def synthetic_image(index: int, height: int, width: int) -> np.ndarray:
    """A deterministic photo-like uint8 (H, W, 3) image: smooth gradients, edges and texture."""
    rng = np.random.default_rng(1000 + index)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    image = np.zeros((height, width, 3))
    for c in range(3):
        fy, fx = rng.uniform(0.5, 4.0, 2) * 2 * np.pi
        image[:, :, c] = 128 + 60 * np.sin(fy * yy / height + c) * np.cos(fx * xx / width)
    # a few flat rectangles (edges) and fine texture
    for _ in range(4):
        top, left = rng.integers(0, height), rng.integers(0, width)
        image[top:top + height // 3, left:left + width // 3] = rng.uniform(0, 255, 3)
    image += rng.normal(0, 8, image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def image_list(args) -> list[tuple[str, object]]:
    """[(name, source)] where source is a path or ("synthetic", index, h, w)."""
    if args.synthetic:
        h, w = args.size
        return [(f"synthetic{i:02d}", ("synthetic", i, h, w)) for i in range(args.synthetic)]
    kodak = Path(args.kodak)
    paths = sorted(kodak.glob("kodim*.png"))
    if not paths:
        raise SystemExit(f"no Kodak images (kodim*.png) in {kodak}; pass --kodak DIR or --synthetic N")
    if args.images:
        paths = paths[:args.images]
    return [(p.stem, str(p)) for p in paths]


def load_image(source, crop: list[int] | None = None) -> np.ndarray:
    """The image of a job source; ``crop`` (h, w) keeps its centre (for short runs)."""
    if isinstance(source, (list, tuple)):
        _, index, h, w = source
        image = synthetic_image(index, h, w)
    else:
        from PIL import Image

        image = np.asarray(Image.open(source).convert("RGB"))
    if crop:
        h, w = min(crop[0], image.shape[0]), min(crop[1], image.shape[1])
        top, left = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
        image = np.ascontiguousarray(image[top:top + h, left:left + w])
    return image


# --------------------------------------------------------------------------- #
# Instrumentation (used by the worker processes and by tests/test_determinism.py)
# --------------------------------------------------------------------------- #


def configure_torch(mkldnn: bool, threads: int) -> None:
    import torch

    torch.backends.mkldnn.enabled = bool(mkldnn)
    torch.set_num_threads(int(threads))


class RecordingBackend:
    """Wraps a coder backend; records the symbols (and table indexes) of every call.

    ``encoded`` / ``decoded`` are lists of ``(symbols int32, table_indexes)`` in call order:
    for the hyperprior, z then y for every tile. A decode call that raised is recorded with
    symbols None (its table indexes still show where a desynchronised prior went wrong).
    """

    def __init__(self, inner):
        self.inner = inner
        self.encoded: list[tuple[np.ndarray, np.ndarray]] = []
        self.decoded: list[tuple[np.ndarray, np.ndarray]] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode(self, symbols, table_indexes, tables):
        self.encoded.append((np.array(symbols, dtype=np.int32), np.array(table_indexes)))
        return self.inner.encode(symbols, table_indexes, tables)

    def decode(self, data, table_indexes, tables):
        try:
            out = self.inner.decode(data, table_indexes, tables)
        except BaseException:
            self.decoded.append((None, np.array(table_indexes)))  # keep the indexes it was given
            raise
        self.decoded.append((np.array(out, dtype=np.int32), np.array(table_indexes)))
        return out

    def reset(self) -> None:
        self.encoded.clear()
        self.decoded.clear()


def install_recorder() -> RecordingBackend:
    """Route ``neurocodec.coding.get_backend('cpu')`` through a :class:`RecordingBackend`.

    The entropy models look the backend up at call time, so this sees every symbol the
    real encode / decode paths hand to or get from the entropy coder.
    """
    import neurocodec.coding as coding

    original = getattr(coding, "_neurocodec_original_get_backend", coding.get_backend)
    recorder = RecordingBackend(original("cpu"))

    def get_backend(name: str = "cpu"):
        return recorder if name == "cpu" else original(name)

    coding._neurocodec_original_get_backend = original
    coding.get_backend = get_backend
    return recorder


def uninstall_recorder() -> None:
    import neurocodec.coding as coding

    original = getattr(coding, "_neurocodec_original_get_backend", None)
    if original is not None:
        coding.get_backend = original
        del coding._neurocodec_original_get_backend


def use_float_prior(model, mode: str = "fake-quant") -> None:
    """The control: replace the exact prior of ``model``'s entropy model by a float32 one.

    ``mode``:
      * ``"fake-quant"``: the hyper-synthesis's training face
        (``FixedPointHyperSynthesis.forward``): float32 convolutions (their summation
        order depends on mkldnn and the thread count) with weights and activations rounded
        to the fixed-point grids.
      * ``"plain"``: a float hyperprior as CompressAI or tensorflow-compression run it: the
        same network with its float weights and no grids (activations only clamped), means
        and table indexes rounded from float32 values at the end.

    Works with both prior interfaces: ``_prior(z)`` with ``hyper_synthesis(z_hat)``, and
    the quality-aware ``_prior(z, quality)`` with ``hyper_synthesis(z_hat, log2_gain)``.
    ``"plain"`` is ``hyper_synthesis.fake_quant = False``.
    """
    import inspect

    import torch

    entropy = model.entropy_model
    hs = entropy.hyper_synthesis
    takes_gain = len(inspect.signature(hs.forward).parameters) > 1
    if mode not in ("plain", "fake-quant"):
        raise ValueError(f"unknown float prior mode {mode!r}")
    hs.fake_quant = mode == "fake-quant"

    def float_prior(z_symbols: np.ndarray, quality: float | None = None):
        z = torch.from_numpy(np.asarray(z_symbols)).to(torch.float32)
        with torch.no_grad():
            if takes_gain:
                mean, index = hs(z, model.log2_gains(torch.tensor([float(quality)], dtype=torch.float32)))
                mean = torch.round(mean.double()).to(torch.int64)  # integer means on this interface
            else:
                mean, index = hs(z)
                mean = mean.to(torch.float64)
        return mean, index.to(torch.int64).numpy().astype(np.int32)

    entropy._prior = float_prior


def add_transform_noise(model, relative: float, seed: int, encoder: bool = True):
    """Multiply the outputs of ``model``'s float transforms by ``1 + relative * N(0, 1)``.

    Always the synthesis; with ``encoder`` also the analysis and the hyper-analysis (which
    run only when encoding). Patches the instance (zoo models are cached and shared) and
    returns a function that undoes the patch.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)

    def noisy(x: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(x.shape, generator=generator, dtype=torch.float64)
        return (x.double() * (1.0 + relative * noise)).to(x.dtype)

    def wrap(fn):
        return lambda *a, **k: noisy(fn(*a, **k))

    patched = ["synthesis"] + (["analysis"] if encoder else [])
    for name in patched:
        setattr(model, name, wrap(getattr(model, name)))
    hook = (model.entropy_model.hyper_analysis.register_forward_hook(lambda module, inputs, output: noisy(output))
            if encoder else None)

    def undo() -> None:
        for name in patched:
            model.__dict__.pop(name, None)
        if hook is not None:
            hook.remove()

    return undo


def use_float64_transforms(model) -> None:
    """Run ``model``'s float parameters (transforms, gains) in float64; images still enter as
    float32 and reconstructions are rounded to 8 bits as usual. The prior stays exact."""
    import torch

    model.double()
    analysis = model.analysis
    model.analysis = lambda x: analysis(x.to(torch.float64))


def use_exact_prior(model) -> None:
    """Undo :func:`use_float_prior`."""
    model.entropy_model.__dict__.pop("_prior", None)
    model.entropy_model.hyper_synthesis.fake_quant = True


def _select_weights(weights_dir: str | None) -> None:
    if weights_dir:
        import neurocodec.zoo as zoo

        zoo.WEIGHTS_DIR = Path(weights_dir)


def _symbols_dict(records) -> dict[str, np.ndarray]:
    """Recorded coder calls -> npz-ready dict: sym_k (int32) and idx_k (uint8/int32)."""
    out = {}
    for k, (symbols, indexes) in enumerate(records):
        if symbols is not None:
            out[f"sym_{k}"] = symbols
        out[f"idx_{k}"] = indexes.astype(np.uint8) if indexes.size and indexes.max() < 256 else indexes
    out["n_calls"] = np.array(len(records))
    return out


# --------------------------------------------------------------------------- #
# Worker processes
# --------------------------------------------------------------------------- #


def _worker(args) -> None:
    configure_torch(args.mkldnn == "on", args.threads)
    _import_neurocodec()
    _select_weights(args.weights_dir)
    from neurocodec.codec import Codec

    work = Path(args.workdir)
    jobs = json.loads((work / "jobs.json").read_text())
    codec = Codec(args.model)
    if args.float_prior:
        use_float_prior(codec.model, args.float_prior)
    if args.float64:
        use_float64_transforms(codec.model)
    if args.noise:
        add_transform_noise(codec.model, args.noise, seed=1 if args.role == "encode" else 2,
                            encoder=args.role == "encode")
    recorder = install_recorder()
    images: dict[str, np.ndarray] = {}
    started = time.perf_counter()
    done = 0
    for job in jobs:
        key = job["key"]
        if args.role == "encode":
            target = work / "enc" / f"{key}.npz"
            if target.exists():
                continue
            if job["image"] not in images:
                images.clear()
                images[job["image"]] = load_image(job["source"], job.get("crop"))
            image = images[job["image"]]
            recorder.reset()
            t0 = time.perf_counter()
            data, recon = codec.compress_with_reconstruction(image, job["quality"])
            t_enc = time.perf_counter() - t0
            symbols = _symbols_dict(recorder.encoded)
            t0 = time.perf_counter()
            own_decode = codec.decompress(data)
            t_dec = time.perf_counter() - t0
            (work / "streams" / f"{key}.ncdc").write_bytes(data)
            tmp = target.with_suffix(".tmp.npz")
            np.savez_compressed(tmp, recon=recon, decoded=own_decode, image=image,
                                time_encode=t_enc, time_decode=t_dec, **symbols)
            tmp.replace(target)
        else:
            target = work / "dec" / f"{key}.npz"
            if target.exists():
                continue
            data = (work / "streams" / f"{key}.ncdc").read_bytes()
            recorder.reset()
            t0 = time.perf_counter()
            error = ""
            try:
                import neurocodec

                decoded = neurocodec.decompress(data)
            except Exception as exc:  # the control may desynchronise: record, do not stop
                error = f"{type(exc).__name__}: {exc}"[:500]
                decoded = np.zeros((0, 0, 3), np.uint8)
            t_dec = time.perf_counter() - t0
            tmp = target.with_suffix(".tmp.npz")
            np.savez_compressed(tmp, decoded=decoded, error=np.array(error), time_decode=t_dec,
                                **_symbols_dict(recorder.decoded))
            tmp.replace(target)
        done += 1
        if args.verbose:
            print(f"[{args.role}] {key} ({done} done, {time.perf_counter() - started:.0f} s)", file=sys.stderr,
                  flush=True)


# --------------------------------------------------------------------------- #
# Comparison and report
# --------------------------------------------------------------------------- #


def compare_file(enc_path: Path, dec_path: Path) -> dict:
    """One file: do B's symbols equal A's, and how far are B's pixels from A's decode?"""
    enc = np.load(enc_path)
    dec = np.load(dec_path)
    n_enc, n_dec = int(enc["n_calls"]), int(dec["n_calls"])
    error = str(dec["error"])
    symbol_mismatch = n_enc != n_dec
    mismatched_symbols = 0
    index_mismatches = 0
    for k in range(min(n_enc, n_dec)):
        ia, ib = enc[f"idx_{k}"], dec[f"idx_{k}"]
        if ia.shape == ib.shape:
            index_mismatches += int(np.count_nonzero(ia.astype(np.int64) != ib.astype(np.int64)))
        a = enc[f"sym_{k}"]
        b = dec[f"sym_{k}"] if f"sym_{k}" in dec.files else None
        if b is None or a.shape != b.shape:  # the coder raised, or a different geometry
            symbol_mismatch = True
            mismatched_symbols += a.size
            continue
        diff = int(np.count_nonzero(a != b))
        mismatched_symbols += diff
        symbol_mismatch |= diff > 0
    reference = enc["decoded"]
    result = dict(key=enc_path.stem, error=error, symbols_differ=bool(symbol_mismatch or error),
                  mismatched_symbols=mismatched_symbols, index_mismatches=index_mismatches,
                  encoder_self_consistent=bool(np.array_equal(enc["recon"], enc["decoded"])),
                  time_encode=float(enc["time_encode"]), time_decode_a=float(enc["time_decode"]),
                  time_decode_b=float(dec["time_decode"]))
    decoded = dec["decoded"]
    result["psnr_a"] = _psnr(enc["image"], reference)
    if decoded.shape != reference.shape:
        result.update(max_diff=None, frac_positions=None, frac_values=None, psnr_b=None)
    else:
        d = np.abs(decoded.astype(np.int16) - reference.astype(np.int16))
        result.update(max_diff=int(d.max()), frac_positions=float(np.count_nonzero(d.max(axis=2))) / d[..., 0].size,
                      frac_values=float(np.count_nonzero(d)) / d.size, psnr_b=_psnr(enc["image"], decoded))
    return result


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def summarise(rows: list[dict], label: str) -> dict:
    ok = [r for r in rows if r["max_diff"] is not None]
    n_pos = sum(1 for r in ok)
    return dict(
        setting=label,
        files=len(rows),
        symbol_mismatch_files=sum(r["symbols_differ"] for r in rows),
        decode_failures=sum(bool(r["error"]) for r in rows),
        wrong_files=sum(r["symbols_differ"] or r["max_diff"] is None for r in rows),
        mismatched_symbols=sum(r["mismatched_symbols"] for r in rows),
        index_mismatches=sum(r["index_mismatches"] for r in rows),
        max_pixel_diff=max((r["max_diff"] for r in ok), default=None),
        max_frac_positions=max((r["frac_positions"] for r in ok), default=None),
        mean_frac_positions=(sum(r["frac_positions"] for r in ok) / n_pos) if n_pos else None,
        files_pixel_identical=sum(r["max_diff"] == 0 for r in ok),
        within_pixel_target=all(r["max_diff"] <= PIXEL_LEVEL_TARGET and r["frac_positions"] <= PIXEL_FRACTION_TARGET
                                for r in ok) and len(ok) == len(rows),
        encoder_self_consistent=all(r["encoder_self_consistent"] for r in rows),
        mean_psnr_a=float(np.mean([r["psnr_a"] for r in rows])) if rows else None,
        mean_psnr_b=float(np.mean([r["psnr_b"] for r in ok])) if ok else None,
        time_encode=sum(r["time_encode"] for r in rows),
        time_decode_b=sum(r["time_decode_b"] for r in rows),
    )


def _fmt(v, pct=False):
    if v is None:
        return "n/a"
    if pct:
        return f"{100 * v:.4f} %"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def markdown(summaries: list[dict], command: str) -> str:
    head = ("| setting | files | symbols differ | decode fails | wrong files | max Δpixel | max % positions "
            "differing | mean % positions | pixel-identical files | ≤1 level in ≤0.1 % | PSNR A (all) / B (decoded) dB |")
    lines = [f"`{command}`", "", head, "|" + "---|" * 11]
    for s in summaries:
        lines.append(
            f"| {s['setting']} | {s['files']} | {s['symbol_mismatch_files']} | {s['decode_failures']} | "
            f"{s['wrong_files']} | {_fmt(s['max_pixel_diff'])} | {_fmt(s['max_frac_positions'], True)} | "
            f"{_fmt(s['mean_frac_positions'], True)} | {s['files_pixel_identical']} | "
            f"{'yes' if s['within_pixel_target'] else 'no'} | {_fmt(s['mean_psnr_a'])} / {_fmt(s['mean_psnr_b'])} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- #
# Driver
# --------------------------------------------------------------------------- #


def _variant(args) -> str:
    parts = [f"float-prior-{args.float_prior}" if args.float_prior else "fixed-prior"]
    if args.crop:
        parts.append(f"crop{args.crop[0]}x{args.crop[1]}")
    if args.float64:
        parts.append("float64")
    if args.noise:
        parts.append(f"noise{args.noise:g}")
    return "_".join(parts)


def _snapshot_weights(args, work: Path) -> None:
    """Copy the model's weight file into ``work/zoo`` (once) and use that copy in both
    processes, so a weight file replaced during (or between the parts of) a run cannot mix
    two models. A resumed run keeps using its snapshot."""
    zoo_dir = work / "zoo"
    if not zoo_dir.is_dir():
        _import_neurocodec()
        source_dir = Path(args.weights_dir) if args.weights_dir else None
        import neurocodec.zoo as zoo

        name = args.model or zoo.DEFAULT_MODEL
        source = (source_dir or Path(zoo.WEIGHTS_DIR)) / f"{name}.safetensors"
        if not source.exists():
            raise SystemExit(f"no weight file {source}")
        tmp = work / "zoo.tmp"
        tmp.mkdir(exist_ok=True)
        shutil.copy2(source, tmp / source.name)
        tmp.rename(zoo_dir)
    args.weights_dir = str(zoo_dir)


def _spawn(args, work: Path, role: str, settings: dict) -> float:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--role", role, "--workdir", str(work),
           "--mkldnn", "on" if settings["mkldnn"] else "off", "--threads", str(settings["threads"])]
    if args.model:
        cmd += ["--model", args.model]
    if args.weights_dir:
        cmd += ["--weights-dir", args.weights_dir]
    if args.float_prior:
        cmd += ["--float-prior", args.float_prior]
    if args.float64:
        cmd.append("--float64")
    if args.noise:
        cmd += ["--noise", repr(args.noise)]
    if args.verbose:
        cmd.append("--verbose")
    env = dict(os.environ)
    n = str(settings["threads"])
    env.update(OMP_NUM_THREADS=n, MKL_NUM_THREADS=n)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH", "")]))
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    return time.perf_counter() - t0


def run(args) -> dict:
    """Run (or resume) the experiment; returns the summary dict (also per-file rows)."""
    images = image_list(args)
    own_dir = args.workdir is None
    root = Path(tempfile.mkdtemp(prefix="ncdc-determinism-")) if own_dir else Path(args.workdir)
    work = root / _variant(args)
    for sub in ("streams", "enc", "dec"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    _snapshot_weights(args, work)
    crop = list(args.crop) if args.crop else None
    jobs = [dict(key=f"{name}_q{q:g}", image=name, source=source, quality=q, crop=crop)
            for name, source in images for q in args.qualities]
    (work / "jobs.json").write_text(json.dumps(jobs))
    try:
        t_a = _spawn(args, work, "encode", ENCODER)
        t_b = _spawn(args, work, "decode", DECODER)
        rows = [compare_file(work / "enc" / f"{j['key']}.npz", work / "dec" / f"{j['key']}.npz") for j in jobs]
    finally:
        if own_dir and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    label = _variant(args).replace("_", ", ")
    label += f" (A: mkldnn on, 1 thread; B: mkldnn off, 2 threads; q {','.join(f'{q:g}' for q in args.qualities)})"
    summary = summarise(rows, label)
    summary.update(process_seconds_a=t_a, process_seconds_b=t_b, rows=rows,
                   workdir=None if own_dir and not args.keep else str(root))
    return summary


def _size(text: str) -> tuple[int, int]:
    h, w = text.lower().split("x")
    return int(h), int(w)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kodak", default=str(DEFAULT_KODAK), help="directory of kodim*.png")
    p.add_argument("--images", type=int, default=0, help="use only the first N images (0 = all)")
    p.add_argument("--synthetic", type=int, default=0, help="use N synthetic images instead of Kodak")
    p.add_argument("--size", type=_size, default=(96, 128), help="HxW of synthetic images")
    p.add_argument("--crop", type=_size, default=None, help="HxW: code only the centre of each image")
    p.add_argument("--qualities", type=lambda s: [float(q) for q in s.split(",")], default=[1.0, 4.0, 8.0])
    p.add_argument("--model", default=None, help="shipped model name (default: the default model)")
    p.add_argument("--weights-dir", default=None, help="use the weight files in this directory as the zoo")
    p.add_argument("--float-prior", nargs="?", const="fake-quant", choices=["fake-quant", "plain"], default=None,
                   help="control: a float32 hyper-synthesis in both processes: its fake-quantised training face "
                        "(default) or 'plain' float weights and activations")
    p.add_argument("--float64", action="store_true", help="run the float transforms in float64 (both processes)")
    p.add_argument("--noise", type=float, default=0.0, help="relative noise on the float transforms' outputs")
    p.add_argument("--workdir", default=None, help="keep results here; a rerun resumes")
    p.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    p.add_argument("--md", default=None, help="append the markdown table to this file")
    p.add_argument("--json", default=None, help="write the summary (with per-file rows) as JSON")
    p.add_argument("--verbose", action="store_true")
    # internal: worker processes
    p.add_argument("--role", choices=["encode", "decode"], default=None, help=argparse.SUPPRESS)
    p.add_argument("--mkldnn", choices=["on", "off"], default="on", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.role:
        _worker(args)
        return 0
    summary = run(args)
    command = "python benchmarks/determinism.py " + " ".join(sys.argv[1:] if argv is None else argv)
    table = markdown([summary], command.strip())
    print(table)
    bad = [r for r in summary["rows"] if r["symbols_differ"] or r["error"]]
    for r in bad[:10]:
        print(f"  {r['key']}: {r['mismatched_symbols']} symbols differ or undecodable, {r['index_mismatches']} "
              f"table indexes differ{'; ' + r['error'] if r['error'] else ''}")
    if not summary["encoder_self_consistent"] and not args.noise:  # with --noise each synthesis draws new noise
        print("WARNING: the encoder's promised reconstruction differs from its own decode")
    print(f"process A {summary['process_seconds_a']:.1f} s, process B {summary['process_seconds_b']:.1f} s")
    if args.md:
        with open(args.md, "a") as f:
            f.write(table + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1, default=str))
    if args.float_prior:
        return 0
    return 1 if summary["wrong_files"] else 0


if __name__ == "__main__":
    sys.exit(main())
