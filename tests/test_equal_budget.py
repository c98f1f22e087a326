"""The equal-budget table's rendering (benchmarks/equal_budget.py): BD-PSNR column and n/a."""

from pathlib import Path

import pytest
from _helpers import load_module

equal_budget = load_module("equal_budget", Path(__file__).resolve().parents[1] / "benchmarks" / "equal_budget.py")


def _row(label, points, **extra):
    row = dict(label=label, architecture="conv-hyperprior", config={}, params=1_000_000, seconds_per_step=1.0,
               weight_hash="00", points=[{"bpp": b, "psnr": p} for b, p in points], encode_s=1.0, decode_s=2.0,
               bd_vs_first=None, bd_vs_vtm=None)
    row.update(extra)
    return row


def test_bd_psnr_of_a_curve_one_db_higher_and_of_disjoint_rates():
    base = _row("conv", [(0.25, 28.0), (0.5, 31.0), (1.0, 34.0), (2.0, 37.0)])
    higher = _row("better", [(b, p + 1.0) for b, p in [(0.25, 28.0), (0.5, 31.0), (1.0, 34.0), (2.0, 37.0)]])
    disjoint = _row("far", [(4.0, 40.0), (5.0, 41.0), (6.0, 42.0), (8.0, 43.0)])
    assert equal_budget.bd_psnr_against(base, higher) == pytest.approx(1.0, abs=1e-9)
    assert equal_budget.bd_psnr_against(base, disjoint) is None


def test_render_has_a_bd_psnr_column_and_marks_undefined_cells():
    base = _row("conv", [(0.25, 28.0), (0.5, 31.0), (1.0, 34.0), (2.0, 37.0)], bd_vs_first=0.0)
    higher = _row("better", [(0.25, 29.0), (0.5, 32.0), (1.0, 35.0), (2.0, 38.0)], bd_vs_first=-20.0,
                  encode_s=0.5, decode_s=1.0)
    disjoint = _row("far", [(4.0, 40.0), (5.0, 41.0), (6.0, 42.0), (8.0, 43.0)])
    result = dict(table="transforms", command="python benchmarks/equal_budget.py transforms --stage eval",
                  date="2026-01-01", images=24, qualities=[1.0, 3.0, 5.0, 8.0],
                  timing=dict(images=4, rounds=3, quality=4.0, threads=1),
                  train=dict(steps=10, batch=8, crop=128, seed=0, data="/x/train", lr=5e-4, rate_proxy="noise"),
                  init_hash=None, rows=[base, higher, disjoint])
    text = equal_budget.render(result)
    header = next(line for line in text.splitlines() if line.startswith("| model"))
    assert "BD-PSNR vs conv" in header
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[1:-1]]
            for line in text.splitlines() if line.startswith("| ") and not line.startswith("| model")}
    columns = [c.strip() for c in header.split("|")[1:-1]]
    psnr, rate, enc = columns.index("BD-PSNR vs conv"), columns.index("BD-rate vs conv"), columns.index("encode ratio")
    assert rows["better"][psnr] == "+1.00 dB" and rows["better"][rate] == "-20.0 %" and rows["better"][enc] == "0.50"
    assert rows["far"][psnr] == "n/a" and rows["far"][rate] == "n/a"
