"""Draw the plots of docs/performance.md from benchmark JSON documents.

Usage, from the repository root (needs the ``docs`` extra for matplotlib)::

    python docs/benchmarks/plot.py                        # both, from the committed JSON
    python docs/benchmarks/plot.py overhead results.json --out /tmp/overhead.png
    python docs/benchmarks/plot.py fleet results.json

After a new run, ``benchmarks/bench_overhead.py --json-out docs/benchmarks/overhead.json``
and ``benchmarks/bench_fleet.py --json-out docs/benchmarks/fleet.json`` write the
documents this script reads: of the first its ``summary`` (per concurrency, per
contender, ``ratio_vs_raw`` and optionally ``ratio_min``/``ratio_max``, drawn as a range),
of the second its ``scenarios`` (``scenario``, ``calls``, ``failures``;
``calls_approximate`` marks a count known only roughly).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
IMAGES = HERE.parent / "images"

# -- overhead: calls per second as a ratio to raw aiohttp ---------------------------------

TARGET = 0.95

# Contenders, top to bottom, with the label a reader sees; unknown names are appended.
OVERHEAD_LABELS = {
    "netrex-manager": "NetrexClient + TokenManager",
    "netrex-static": "NetrexClient + StaticToken",
    "aiohttp-oauth2": "aiohttp-oauth2-client middleware",
    "authlib-httpx": "Authlib httpx AsyncOAuth2Client",
    "raw-idiomatic": "raw aiohttp, idiomatic",
    "raw-control": "raw aiohttp again (A/A: the noise)",
}
OURS = {"netrex-manager", "netrex-static"}


def load_overhead(path: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """The ``summary`` of a bench_overhead.py document: concurrency -> contender -> figures."""
    document = json.loads(path.read_text())
    if document.get("benchmark") != "overhead" or "summary" not in document:
        raise SystemExit(f"{path}: not a bench_overhead.py JSON document")
    return {str(conc): per for conc, per in document["summary"].items()}


def plot_overhead(summary: dict[str, dict[str, dict[str, Any]]], out: Path) -> None:
    """Draw one panel per concurrency: each contender's calls/s as a ratio to raw aiohttp."""
    plt = _pyplot()

    concurrencies = sorted(summary, key=int)
    names = [n for n in OVERHEAD_LABELS if any(n in summary[c] for c in concurrencies)]
    names += sorted({n for c in concurrencies for n in summary[c]} - {*names, "raw-aiohttp"})
    # One panel per concurrency, stacked: the page is narrow, a reader scrolls.
    fig, axes = plt.subplots(
        len(concurrencies),
        1,
        figsize=(7.5, (0.34 * len(names) + 0.75) * len(concurrencies) + 0.9),
        sharex=True,
    )
    if len(concurrencies) == 1:
        axes = [axes]
    y = list(range(len(names)))[::-1]
    for ax, conc in zip(axes, concurrencies, strict=True):
        per = summary[conc]
        for row, name in zip(y, names, strict=True):
            figures = per.get(name)
            if figures is None:
                continue
            ratio = float(figures["ratio_vs_raw"])
            colour = "#1565c0" if name in OURS else "#9e9e9e"
            ax.barh(row, ratio, color=colour, height=0.62)
            if "ratio_min" in figures and "ratio_max" in figures:
                low, high = float(figures["ratio_min"]), float(figures["ratio_max"])
                ax.errorbar(
                    ratio,
                    row,
                    xerr=[[ratio - low], [high - ratio]],
                    fmt="none",
                    ecolor="#424242",
                    capsize=3,
                    linewidth=1,
                )
            # The figures in a column right of the 1.0 line, where no line crosses them.
            ax.text(
                1.04,
                row,
                f"{ratio:.2f}",
                va="center",
                fontsize=9,
                fontweight="bold" if name in OURS else "normal",
            )
        ax.axvline(1.0, color="#424242", linewidth=1)
        ax.axvline(
            TARGET,
            color="#c62828",
            linewidth=1.2,
            linestyle="--",
            label=f"target: {TARGET:.2f} of raw aiohttp",
        )
        raw = per.get("raw-aiohttp", {}).get("throughput")
        title = f"concurrency {conc}"
        if raw:
            title += f" (raw aiohttp = 1.00: {float(raw):,.0f} calls/s)"
        ax.set_title(title, fontsize=10, loc="left")
        ax.set_yticks(y)
        ax.set_yticklabels([OVERHEAD_LABELS.get(n, n) for n in names], fontsize=9)
        ax.set_xlim(0, 1.14)
        ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
        ax.grid(axis="x", color="#eeeeee")
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    axes[-1].legend(loc="upper right", bbox_to_anchor=(1.0, -0.12), fontsize=8, frameon=False)
    fig.suptitle(
        "Authenticated GraphQL calls per second,\nas a ratio to raw aiohttp (higher is better)",
        fontsize=11,
    )
    _save(fig, out)


# -- fleet: the share of calls that failed ------------------------------------------------

FLEET_LABELS = {
    "file": "FileTokenStore, shared",
    "redis": "RedisTokenStore, shared",
    "memory": "MemoryTokenStore in each process",
    "authlib": "Authlib in each process",
}
SHARED = {"file", "redis"}


def load_fleet(path: Path) -> list[dict[str, Any]]:
    """The ``scenarios`` of a bench_fleet.py document (the one-process reference left out)."""
    document = json.loads(path.read_text())
    if document.get("benchmark") != "fleet" or "scenarios" not in document:
        raise SystemExit(f"{path}: not a bench_fleet.py JSON document")
    return [s for s in document["scenarios"] if s["scenario"] != "single"]


def plot_fleet(scenarios: list[dict[str, Any]], out: Path) -> None:
    """One bar per scenario: the share of the fleet's calls that failed."""
    plt = _pyplot()

    fig, ax = plt.subplots(figsize=(7.5, 0.6 * len(scenarios) + 1.5))
    rows = list(range(len(scenarios)))[::-1]
    for row, s in zip(rows, scenarios, strict=True):
        share = 100 * s["failures"] / s["calls"] if s["calls"] else 0.0
        colour = "#1565c0" if s["scenario"] in SHARED else "#c62828"
        ax.barh(row, share, color=colour, height=0.6)
        about = "about " if s.get("calls_approximate") else ""
        label = f"{share:.0f} %: {s['failures']:,} of {about}{s['calls']:,} calls failed"
        if share > 50:  # inside a long bar, outside a short one
            ax.text(2, row, label, va="center", fontsize=9, color="#ffffff")
        else:
            ax.text(share + 1.5, row, label, va="center", fontsize=9)
    ax.set_yticks(rows)
    labels = [FLEET_LABELS.get(s["scenario"], s["scenario"]) for s in scenarios]
    ax.set_yticklabels(labels, fontsize=9)
    ax.set_xlim(0, 100)
    ax.set_xticks([0, 25, 50, 75, 100])
    ax.set_xlabel("calls that failed, % (lower is better)", fontsize=9)
    processes = max(s.get("processes", 0) for s in scenarios)
    ax.set_title(
        f"{processes} processes sharing one grant; the provider rotates refresh tokens\n"
        "and revokes the grant when a retired one comes back",
        fontsize=10,
        loc="left",
    )
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    _save(fig, out)


# -- both --------------------------------------------------------------------------------

PLOTS = {"overhead": (load_overhead, plot_overhead), "fleet": (load_fleet, plot_fleet)}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, out: Path) -> None:
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150)
    _pyplot().close(fig)


def draw(name: str, source: Path | None = None, out: Path | None = None) -> Path:
    """Draw plot ``name`` from ``source`` (default: the committed JSON) to ``out``."""
    load, plot = PLOTS[name]
    target = out or IMAGES / f"{name}.png"
    plot(load(source or HERE / f"{name}.json"), target)  # type: ignore[operator]
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("plot", nargs="?", choices=sorted(PLOTS), help="default: both")
    parser.add_argument("json", nargs="?", type=Path, help="default: the committed JSON")
    parser.add_argument("--out", type=Path, help="default: docs/images/PLOT.png")
    args = parser.parse_args()
    for name in [args.plot] if args.plot else sorted(PLOTS):
        print(f"wrote {draw(name, args.json, args.out)}")  # noqa: T201 - a script


if __name__ == "__main__":
    main()
