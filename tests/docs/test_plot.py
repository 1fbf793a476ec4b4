"""docs/benchmarks/plot_overhead.py draws the performance plot from a benchmark document."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "benchmarks" / "plot_overhead.py"
COMMITTED = ROOT / "docs" / "benchmarks" / "overhead.json"


def _plot_module() -> dict[str, object]:
    return runpy.run_path(str(SCRIPT))


def test_the_committed_document_has_every_contender_at_every_concurrency() -> None:
    summary = json.loads(COMMITTED.read_text())["summary"]
    assert sorted(summary, key=int) == ["1", "10", "100"]
    for per in summary.values():
        assert per["raw-aiohttp"]["ratio_vs_raw"] == 1.0
        assert {"netrex-manager", "netrex-static", "authlib-httpx"} <= set(per)


def test_draws_a_png_from_the_committed_document(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the docs extra draws the plot")
    out = tmp_path / "overhead.png"
    module = _plot_module()
    module["plot"](module["load"](COMMITTED), out)  # type: ignore[operator]
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert out.stat().st_size > 10_000


def test_refuses_a_document_of_another_benchmark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "storm.json"
    other.write_text(json.dumps({"benchmark": "storm", "summary": {}}))
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), str(other), "--out", str(tmp_path / "x.png")])
    with pytest.raises(SystemExit, match="not a bench_overhead.py JSON document"):
        runpy.run_path(str(SCRIPT), run_name="__main__")
