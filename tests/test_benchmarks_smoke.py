"""Every benchmark script still runs: a smoke check of its --quick mode, not a timing.

The numbers are not checked (a benchmark measures and prints; a shared machine makes
any threshold flaky); that each script runs to the end and prints its JSON is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("bench_*.py"))

pytestmark = pytest.mark.slow


def test_there_are_benchmarks():
    assert len(SCRIPTS) >= 6


# bench_instructions runs its processes under valgrind, about 50 times slower.
SLOW = {"bench_instructions.py"}


@pytest.mark.parametrize(
    "script",
    [pytest.param(s, marks=pytest.mark.timeout(660)) if s in SLOW else s for s in SCRIPTS],
)
def test_benchmark_runs_quick(script):
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=600 if script in SLOW else 110,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["benchmark"]
    assert result["environment"]["netrex-async"]
