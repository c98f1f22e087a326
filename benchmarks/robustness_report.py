"""The ``robustness`` section of docs/benchmarks.md (issue 4, must-show 1-5), from recorded runs.

The runs are long (hours of CPU in all), so they are not repeated here: each writes a
JSON result (``--json``) that is kept in ``benchmarks/results/``, with the command that
produced it in its ``command`` field:

* ``determinism-<variant>.json``: ``benchmarks/determinism.py`` (one file per variant);
* ``fuzz_decoder/chunk*.json``: ``benchmarks/fuzz_decoder.py`` (chunks of one run split
  with ``--start``; summed here);
* ``large_image.json``: ``benchmarks/large_image.py``.

This script only renders them (with the tables of those scripts)::

    python benchmarks/robustness_report.py          # rewrites the section
    python benchmarks/robustness_report.py --print  # prints it only

The full record, with dates, durations and discussion, is docs/determinism.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

SECTION = "robustness"
VARIANT_ORDER = ("fixed-prior", "float-prior-plain", "float-prior-fake-quant", "fixed-prior_noise0.0001")


def merge_fuzz(chunks: list[dict]) -> dict:
    """One fuzz result from the results of consecutive chunks (counts summed, maxima kept;
    the median and p99 are the largest over the chunks, an upper bound)."""
    kinds: collections.Counter = collections.Counter()
    reasons: collections.Counter = collections.Counter()
    for c in chunks:
        kinds.update(c["kinds"])
        reasons.update(c["reasons"])
    first = min(chunks, key=lambda c: c["start"])
    return dict(cases=sum(c["cases"] for c in chunks), start=first["start"], model=first["model"],
                max_pixels=first["max_pixels"], kinds=dict(kinds.most_common()), reasons=dict(reasons.most_common(8)),
                crashes=sum(c["crashes"] for c in chunks), n_slow=sum(c["n_slow"] for c in chunks),
                slow_cases=[s for c in chunks for s in c["slow_cases"]],
                max_seconds=max(c["max_seconds"] for c in chunks),
                max_cpu_seconds=max((c["max_cpu_seconds"] for c in chunks if "max_cpu_seconds" in c), default=None),
                median_ms=max(c["median_ms"] for c in chunks),
                p99_ms=max(c["p99_ms"] for c in chunks), rss_peak_mb=max(c["rss_peak_mb"] for c in chunks),
                rss_baseline_mb=min(c["rss_baseline_mb"] for c in chunks),
                total_seconds=sum(c["total_seconds"] for c in chunks))


def render(results: Path = RESULTS) -> str:
    import determinism
    import fuzz_decoder
    import large_image

    lines = ["## Robustness and determinism (issue 4)", "",
             "Rendered by `python benchmarks/robustness_report.py` from the recorded runs in `benchmarks/results/` "
             "(commands below); details and discussion in [determinism.md](determinism.md).", ""]
    runs = {}
    for path in sorted(results.glob("determinism-*.json")):
        runs[path.stem[len("determinism-"):]] = json.loads(path.read_text())
    if runs:
        order = sorted(runs, key=lambda k: VARIANT_ORDER.index(k) if k in VARIANT_ORDER else len(VARIANT_ORDER))
        lines += ["### Cross-process determinism (must-show 1-3)", "",
                  "Encoder process: mkldnn on, 1 thread; decoder process: mkldnn off, 2 threads; "
                  "Kodak × qualities 1, 4, 8.", ""]
        for key in order:
            r = runs[key]
            table = determinism.markdown([r], r.get("command", "benchmarks/determinism.py"))
            lines += [table.rstrip("\n"), "",
                      f"Weights `{r.get('weight_hash', '?')}`, {r.get('date', '?')}; process A "
                      f"{r['process_seconds_a'] / 60:.1f} min, process B {r['process_seconds_b'] / 60:.1f} min.", ""]
    chunks = [json.loads(p.read_text()) for p in sorted((results / "fuzz_decoder").glob("chunk*.json"))]
    if chunks:
        merged = merge_fuzz(chunks)
        starts = sorted(c["start"] for c in chunks)
        command = (f"python benchmarks/fuzz_decoder.py --n {chunks[0]['cases']} --start K "
                   f"(K = {', '.join(str(s) for s in starts)})")
        lines += ["### Decoder fuzzing (must-show 4)", "", fuzz_decoder.markdown(merged, command).rstrip("\n"), "",
                  f"{len(chunks)} chunks, {merged['total_seconds'] / 60:.0f} minutes in all; median and p99 are the "
                  f"largest over the chunks; CPU time recorded in {sum('max_cpu_seconds' in c for c in chunks)} of "
                  f"the {len(chunks)} chunks; slow cases (wall): {merged['slow_cases'] or 'none'}; weights "
                  f"`{chunks[0].get('weight_hash', '?')}`.", ""]
    large = results / "large_image.json"
    if large.exists():
        r = json.loads(large.read_text())
        lines += ["### Large image (must-show 5)", "",
                  large_image.markdown(r, r.get("command", "python benchmarks/large_image.py"), 3.0).rstrip("\n"), "",
                  f"Weights `{r.get('weight_hash', '?')}`, {r.get('date', '?')}.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--print", action="store_true", help="print only; do not write docs/benchmarks.md")
    args = p.parse_args(argv)
    text = render()
    print(text)
    if not args.print:
        from neurocodec.bench.report import update_section

        update_section(ROOT / "docs" / "benchmarks.md", SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
