"""docs/benchmarks/plot.py draws the performance plots from benchmark JSON documents."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "docs" / "benchmarks"
SCRIPT = BENCH / "plot.py"
PLOTS = ("fleet", "overhead", "overhead-60k")


@pytest.mark.parametrize(
    ("document", "summary", "reference"),
    [
        ("overhead.json", "summary", "raw-aiohttp"),
        ("overhead-60k.json", "summary_vs_idiomatic", "raw-idiomatic"),
    ],
)
def test_the_committed_overhead_documents_have_every_contender_at_every_concurrency(
    document: str, summary: str, reference: str
) -> None:
    figures = json.loads((BENCH / document).read_text())[summary]
    assert sorted(figures, key=int) == ["1", "10", "100"]
    for per in figures.values():
        assert per[reference]["ratio_vs_raw"] == 1.0
        assert {"netrex-manager", "netrex-static", "netrex-nospeed", "authlib-httpx"} <= set(per)


def test_the_committed_fleet_document_has_the_four_scenarios() -> None:
    scenarios = json.loads((BENCH / "fleet.json").read_text())["scenarios"]
    assert [s["scenario"] for s in scenarios] == ["file", "redis", "memory", "authlib"]
    assert all(0 <= s["failures"] <= s["calls"] for s in scenarios)


@pytest.mark.parametrize("name", PLOTS)
def test_draws_a_png_from_the_committed_document(name: str, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the docs extra draws the plots")
    out = tmp_path / f"{name}.png"
    assert runpy.run_path(str(SCRIPT))["draw"](name, out=out) == out
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert out.stat().st_size > 10_000


@pytest.mark.parametrize("name", PLOTS)
def test_refuses_a_document_of_another_benchmark(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "storm.json"
    other.write_text(json.dumps({"benchmark": "storm", "summary": {}, "scenarios": []}))
    argv = [str(SCRIPT), name, str(other), "--out", str(tmp_path / "x.png")]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit, match=f"not a bench_{name.split('-')[0]}.py JSON document"):
        runpy.run_path(str(SCRIPT), run_name="__main__")
