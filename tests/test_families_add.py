"""``benchmarks/families.py --add``: a new model's RD merged into the stored results, every
BD-rate recomputed against the stored classical and published curves, nothing else lost."""

from pathlib import Path

import pytest
from _helpers import load_module

families = load_module("families_benchmark", Path(__file__).resolve().parents[1] / "benchmarks" / "families.py")


def _curve(label, scale):
    from neurocodec.bench.runner import RDPoint

    points = [(0.25, 28.0), (0.5, 31.0), (1.0, 34.0), (2.0, 37.0)]
    return [RDPoint(label, q, b * scale, p, float("nan"), 1.0, 1.0, 4) for q, (b, p) in enumerate(points, 1)]


def test_added_model_is_merged_and_measured_against_the_stored_curves():
    from neurocodec.bench.suite import bd_or_none

    stored = {"curves": {"default": _curve("default", 1.0), "other": _curve("other", 0.9),
                         "JPEG": _curve("JPEG", 1.5), "VTM (published)": _curve("VTM (published)", 0.6)},
              "mismatches": {"default": 0, "other": 0},
              "measured": ["default", "other", "JPEG"], "bd": {}, "rd_date": "2026-12-07"}
    added = {"curves": {"new": _curve("new", 1.1)}, "mismatches": {"new": 0}, "measured": ["new"]}
    merged = families.merge_added(stored, added)
    assert merged["measured"] == ["default", "other", "new", "JPEG"]
    assert merged["curves"]["default"] is stored["curves"]["default"]
    assert merged["bd"]["new"]["JPEG"] == pytest.approx(bd_or_none(_curve("n", 1.1), _curve("j", 1.5)))
    assert merged["bd"]["new"]["JPEG"] == pytest.approx((1.1 / 1.5 - 1) * 100, abs=1e-6)
    assert merged["bd"]["new"]["VTM (published)"] == pytest.approx((1.1 / 0.6 - 1) * 100, abs=1e-6)
    assert set(merged["added_on"]) == {"new"} and merged["rd_date"] == "2026-12-07"
    # measuring a model again replaces it in place instead of listing it twice
    again = families.merge_added(merged, {"curves": {"other": _curve("other", 0.8)}, "mismatches": {"other": 1},
                                          "measured": ["other"]})
    assert again["measured"].count("other") == 1 and again["mismatches"]["other"] == 1
    assert again["bd"]["other"]["JPEG"] == pytest.approx((0.8 / 1.5 - 1) * 100, abs=1e-6)
