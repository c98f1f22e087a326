"""What the fixed-point prior costs in rate (issue 4, must-show 6, and the PTQ converter).

Measures Kodak RD (real file sizes, qualities 1..8) of:

1. the shipped model with its fixed-point prior (exact integer path: the codec as shipped);
2. the same weights with the prior run as a plain float32 network (float weights and
   activations, no grids; ``FixedPointHyperSynthesis.fake_quant = False``). Encoded and
   decoded in one process, where a float prior round-trips;
3. a float-trained prior: the shipped model's entropy model (hyper-analysis,
   hyper-synthesis, z density) fine-tuned with fake quantisation disabled, transforms
   frozen, for ``--steps`` steps on training crops; coded with its float prior;
4. that prior rounded directly to the fixed-point grids (no calibration);
5. that prior converted by post-training quantisation
   (:func:`neurocodec.train.ptq.convert_float_prior`, calibrated on training crops).

With plain rounding (this benchmark switches rate-distortion rounding off) the prior never
changes the reconstruction (symbols are ``round(y) - mean`` with integer means, so
``y_hat = round(y)``), so all variants of one model have the same PSNR and the
BD-rates are pure rate differences at equal quality. Reports BD-rate of 1 vs 2 and of
4 and 5 vs 3, writes the ``fixed-point-cost`` section of docs/benchmarks.md and
benchmarks/results/fixed_point_cost.json.

    nice -n 10 python benchmarks/fixed_point_cost.py --workdir WORKDIR
    python benchmarks/fixed_point_cost.py --images 2 --steps 20 --no-docs     # quick check

``--workdir`` keeps the weight snapshot, the fine-tuned prior and each variant's points,
so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from neurocodec.bench.neural import NeuralCodec  # noqa: E402  (after the path set-up)

QUALITIES = (1, 2, 3, 4, 5, 6, 7, 8)
SECTION = "fixed-point-cost"


def weight_file(work: Path, variant: str) -> Path:
    """``work/<variant>/<default model>.safetensors``: every variant's streams carry the same
    model id, so their headers have the same size."""
    import neurocodec.zoo as zoo

    return work / variant / f"{zoo.DEFAULT_MODEL}.safetensors"


def snapshot_weights(work: Path) -> Path:
    """Copy the default model's weight file into ``work`` once (a replaced file cannot mix runs)."""
    import neurocodec.zoo as zoo

    target = weight_file(work, "shipped")
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(zoo.model_info().path, target.with_suffix(".tmp"))
        target.with_suffix(".tmp").rename(target)
    return target


def finetune_float_prior(weights: Path, data: str, steps: int, batch: int, lr: float, seed: int) -> tuple:
    """Fine-tune the entropy model of ``weights`` with fake quantisation off, transforms frozen.

    The loss is the rate alone: with straight-through rounding around the mean the
    distortion has no gradient with respect to the entropy model, so this is the RD loss
    for these parameters. Returns (model with the float prior, log dict).
    """
    import torch

    from neurocodec.train.data import CropDataset
    from neurocodec.zoo import load_weights

    torch.manual_seed(seed)
    model = load_weights(weights)
    entropy = model.entropy_model
    entropy.hyper_synthesis.fake_quant = False
    for p in model.parameters():
        p.requires_grad_(False)
    params = list(entropy.parameters())
    for p in params:
        p.requires_grad_(True)
    model.train()
    dataset = CropDataset(data, 128, (0.5, 0.75))
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.Adam(params, lr=lr)
    started, wall = time.process_time(), time.time()
    losses = []
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr * (0.1 if step >= 0.85 * steps else 1.0)
        crops = dataset.batch(rng, batch)
        x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0
        quality = torch.from_numpy(rng.uniform(1.0, 8.0, batch)).float()
        with torch.no_grad():
            gain, _ = model.gains(quality)
            y = model.analysis(x) * gain
        out = entropy(y, model.log2_gains(quality), quality)
        loss = (out.y_bits.sum() + out.z_bits.sum()) / (batch * x.shape[2] * x.shape[3])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        losses.append(float(loss.detach()))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    log = dict(steps=steps, batch=batch, lr=lr, seed=seed, cpu_seconds=round(time.process_time() - started, 1),
               wall_seconds=round(time.time() - wall, 1),
               bpp_first_50=float(np.mean(losses[:50])), bpp_last_50=float(np.mean(losses[-50:])))
    return model, log


class CheckedCodec(NeuralCodec):
    """:class:`~neurocodec.bench.neural.NeuralCodec` on a given :class:`~neurocodec.Codec` that
    decodes (and checks against the encoder's reconstruction) only every ``check_every``-th
    stream: the rate comes from the encoder's real stream, the PSNR from the reconstruction
    the encoder promises (which equals the decode on this machine; checked on the sample)."""

    def __init__(self, codec, name: str, check_every: int):
        super().__init__(weights=str(codec.info.path))
        self.codec, self.name = codec, name
        self.check_every, self.checked, self._calls = check_every, 0, 0

    def decode(self, data: bytes) -> np.ndarray:
        self._calls += 1
        if (self._calls - 1) % self.check_every:
            return self._last_reconstruction
        self.checked += 1
        return super().decode(data)


def codec_for(weights: Path, float_prior: bool = False, state: dict | None = None, rate_only: bool = False):
    """A Codec on ``weights``; ``state``: float parameters to use instead of the file's fp16 ones;
    ``float_prior``: run the prior as a float network (encoder and decoder of this process);
    ``rate_only``: skip the synthesis (reconstructions are black): for variants that differ
    from the first only in the prior, whose reconstructions are the first's."""
    import torch

    from determinism import use_float_prior
    from neurocodec.codec import Codec

    codec = Codec(weights=str(weights))
    # Plain rounding: this compares priors at identical reconstructions, and rate-distortion
    # rounding (the encoder hints) would make the chosen symbols depend on the prior.
    codec.model.channel_energy = None
    if state is not None:
        codec.model.load_state_dict(state)
    if float_prior:
        use_float_prior(codec.model, "plain")
    if rate_only:
        stride = codec.model.pad_multiple // 4
        codec.model.reconstruct = lambda y_hat, q: torch.zeros(1, 3, y_hat.shape[2] * stride, y_hat.shape[3] * stride)
    return codec


def reconstruction_is_round_y(codec, image: np.ndarray) -> bool:
    """Does this codec dequantise to ``round(y * gain)`` at every quality (so that its
    reconstruction does not depend on the prior)? Checked on one image."""
    import torch

    model = codec.model
    with torch.inference_mode():
        y = model.analysis(codec._to_tensor(image)[0])
        for q in QUALITIES:
            gain, _ = model.gains(torch.tensor([float(q)]))
            if not torch.equal(model.code_latents(y, float(q))[1], torch.round((y * gain).double()).float()):
                return False
    return True


def measure(work: Path, key: str, make_codec, images, check_every: int, psnr_from: dict | None = None) -> dict:
    """RD points of one variant (cached in ``work/points-<key>.json``). With ``psnr_from``
    (the result of a variant with the same transforms) the codec is rate-only and the PSNRs
    are taken from there, after checking that reconstructions do not depend on the prior."""
    from neurocodec.bench import evaluate

    cache = work / f"points-{key}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    codec, label = make_codec()
    measured = CheckedCodec(codec, label, check_every)
    started = time.time()
    independent = reconstruction_is_round_y(codec, images[0][1])
    points = [asdict(p) for p in evaluate(measured, images, QUALITIES, progress=False, with_ms_ssim=False)]
    if psnr_from is not None:
        if not independent:
            raise RuntimeError(f"{label}: the reconstruction depends on the prior; cannot share PSNRs")
        for point, ref in zip(points, psnr_from["points"]):
            point["psnr"] = ref["psnr"]
    out = dict(label=label, points=points, decoded_checked=measured.checked, rate_only=psnr_from is not None,
               reconstruction_is_round_y=independent, decode_mismatches=measured.mismatches,
               seconds=round(time.time() - started, 1), weight_hash=codec.info.weight_hash.hex())
    cache.write_text(json.dumps(out, indent=1))
    return out


def bd(test: dict, ref: dict) -> float:
    from neurocodec.metrics import bd_rate

    r, t = ref["points"], test["points"]
    return bd_rate([p["bpp"] for p in r], [p["psnr"] for p in r], [p["bpp"] for p in t], [p["psnr"] for p in t])


def markdown(result: dict) -> str:
    v = result["variants"]
    lines = [
        "## Cost of the fixed-point prior (issue 4)", "",
        f"Generated by `{result['command']}` on {result['date']} ({result['images']} Kodak images, qualities 1-8, "
        f"real file sizes; {result['minutes']:.0f} minutes of wall time on the shared 2-core machine, summed over the "
        f"stages). Do not edit by hand: rerun the command. Shipped weights "
        f"`{result['weight_hash']}`. All variants share the transforms and dequantise to `round(y)` whatever "
        "the prior (checked on the first image at every quality), so they have identical reconstructions and "
        "differ only in bytes: the PSNRs are measured once (first row), the other variants are measured for rate "
        "only (their synthesis is skipped), and the BD-rates are rate differences at equal quality.", "",
        "| comparison | BD-rate (test vs reference) | bpp change per quality 1..8 |", "|---|---|---|",
    ]
    for row in result["comparisons"]:
        per_q = ", ".join(f"{x:+.2f}" for x in row["bpp_change_percent"])
        lines.append(f"| {row['test']} vs {row['reference']} | **{row['bd_rate']:+.2f} %** | {per_q} % |")
    lines += ["", "| variant | prior path | mean bpp q1 / q4 / q8 | PSNR q1 / q4 / q8 (dB) | streams decoded "
              "and checked | mismatches |", "|---|---|---|---|---|---|"]
    for key in v:
        d = v[key]
        pts = d["points"]
        lines.append(f"| {d['label']} | {d['path']} | {pts[0]['bpp']:.4f} / {pts[3]['bpp']:.4f} / {pts[7]['bpp']:.4f} | "
                     f"{pts[0]['psnr']:.2f} / {pts[3]['psnr']:.2f} / {pts[7]['psnr']:.2f} | "
                     f"{d['decoded_checked']} | {d['decode_mismatches']} |")
    ft, ptq = result["finetune"], result["ptq"]
    lines += [
        "", f"Float-trained prior: the shipped entropy model fine-tuned with `fake_quant = False` for {ft['steps']} "
        f"steps (batch {ft['batch']} of 128² training crops, qualities uniform in [1, 8], Adam {ft['lr']:g}, ×0.1 "
        f"for the last 15 %, transforms frozen; {ft['cpu_seconds'] / 60:.1f} CPU-minutes). The last row compares it "
        "with the shipped codec: it measures the fine-tuning, not the fixed point. PTQ calibration: "
        f"{ptq['crops']} training crops of 128² at qualities 1-8; expected extra rate on the calibration set "
        f"(KL from the float prior's Gaussians to the fixed-point ones): {ptq['kl_bits_rounded']:.2e} bits per "
        f"latent rounded directly, {ptq['kl_bits']:.2e} after PTQ ({ptq['seconds']:.0f} s).",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kodak", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "train"), help="training images")
    p.add_argument("--images", type=int, default=0, help="first N Kodak images only (0 = all; no docs)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--calibration-crops", type=int, default=8)
    p.add_argument("--ptq-passes", type=int, default=2)
    p.add_argument("--check-every", type=int, default=12, help="decode and check every Nth stream")
    p.add_argument("--workdir", default=None, help="keep intermediate results here (resumable)")
    p.add_argument("--no-docs", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    from safetensors.torch import load_file, save_file

    from neurocodec.bench import load_images
    from neurocodec.train.data import CropDataset
    from neurocodec.train.ptq import convert_float_prior
    from neurocodec.zoo import export_weights

    work = Path(args.workdir) if args.workdir else Path(__import__("tempfile").mkdtemp(prefix="ncdc-fpcost-"))
    work.mkdir(parents=True, exist_ok=True)
    images = load_images(args.kodak)[:args.images or None]
    shipped = snapshot_weights(work)

    # -- the float-trained prior (cached) --------------------------------------------------
    float_file, float_state_file, log_file = (weight_file(work, "float-trained"),
                                              work / "float-trained-state.safetensors", work / "finetune.json")
    if not float_state_file.exists():
        model, log = finetune_float_prior(shipped, args.data, args.steps, args.batch, args.lr, seed=0)
        export_weights(model, float_file, float_file.stem, "shipped model, entropy model fine-tuned in float")
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(float_state_file))
        log_file.write_text(json.dumps(log))
    finetune = json.loads(log_file.read_text())
    float_state = load_file(str(float_state_file))

    # -- PTQ (cached) -----------------------------------------------------------------------
    ptq_file, ptq_log = weight_file(work, "ptq"), work / "ptq.json"
    if not ptq_file.exists():
        model = codec_for(float_file, state=float_state).model
        model.entropy_model.hyper_synthesis.fake_quant = False
        crops = CropDataset(args.data, 128, (0.5, 0.75)).batch(np.random.default_rng(1), args.calibration_crops)
        t0, wall = time.process_time(), time.time()
        result = convert_float_prior(model, crops, passes=args.ptq_passes)
        seconds, wall = time.process_time() - t0, time.time() - wall
        export_weights(model, ptq_file, ptq_file.stem, "float-trained prior after PTQ")
        ptq_log.write_text(json.dumps(dict(crops=args.calibration_crops, kl_bits_rounded=result.kl_bits_rounded,
                                           kl_bits=result.kl_bits, seconds=seconds, wall_seconds=wall,
                                           choices=result.choices,
                                           fixed_channels=result.fixed_channels)))
    ptq = json.loads(ptq_log.read_text())

    variants = {
        "fixed": ("shipped, fixed-point prior", "exact integer", lambda: codec_for(shipped)),
        "float": ("shipped weights, float prior", "float32", lambda: codec_for(shipped, True, rate_only=True)),
        "trained-float": ("float-trained prior", "float32", lambda: codec_for(float_file, True, float_state, True)),
        "trained-rounded": ("float-trained prior, rounded to the grids", "exact integer",
                            lambda: codec_for(float_file, rate_only=True)),
        "trained-ptq": ("float-trained prior, PTQ", "exact integer", lambda: codec_for(ptq_file, rate_only=True)),
    }
    suffix = f"-{args.images}img" if args.images else ""
    results = {}
    for key, (label, path, make) in variants.items():
        print(f"measuring {label} ...", file=sys.stderr, flush=True)
        results[key] = measure(work, key + suffix, lambda make=make, label=label: (make(), label), images,
                               args.check_every, psnr_from=results.get("fixed"))
        results[key].update(label=label, path=path)
    comparisons = []
    for test, ref in (("fixed", "float"), ("trained-ptq", "trained-float"), ("trained-rounded", "trained-float"),
                      ("trained-ptq", "fixed")):
        t, r = results[test], results[ref]
        comparisons.append(dict(test=t["label"], reference=r["label"], bd_rate=bd(t, r),
                                bpp_change_percent=[100 * (a["bpp"] / b["bpp"] - 1) for a, b in zip(t["points"], r["points"])]))
    command = "python benchmarks/fixed_point_cost.py" + (f" --steps {args.steps}" if args.steps != 300 else "")
    minutes = (finetune["wall_seconds"] + ptq["wall_seconds"] + sum(r["seconds"] for r in results.values())) / 60
    out = dict(command=command, date=time.strftime("%Y-%m-%d"), images=len(images), minutes=minutes,
               weight_hash=results["fixed"]["weight_hash"], finetune=finetune, ptq=ptq, variants=results,
               comparisons=comparisons)
    text = markdown(out)
    print(text)
    if not args.no_docs and not args.images:
        from neurocodec.bench.report import update_section

        update_section(ROOT / "docs" / "benchmarks.md", SECTION, text)
        (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
        (ROOT / "benchmarks" / "results" / "fixed_point_cost.json").write_text(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
