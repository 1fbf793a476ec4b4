"""Draw the plots of docs/performance.md from benchmark JSON documents.

Usage, from the repository root (needs the ``docs`` extra for matplotlib)::

    python docs/benchmarks/plot.py                        # both, from the committed JSON
    python docs/benchmarks/plot.py overhead results.json --out /tmp/overhead.png
    python docs/benchmarks/plot.py fleet results.json

After a new run, ``benchmarks/bench_overhead.py --json-out docs/benchmarks/overhead.json``
and ``benchmarks/bench_fleet.py --json-out docs/benchmarks/fleet.json`` write the
documents this script reads: of the first its ``summary`` (per concurrency, per
contender, ``ratio_vs_raw``; the A/A control's bar shows the noise of the run),
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

#: The targets drawn on each overhead plot: (ratio, label).
TARGETS = {
    "overhead": [(0.98, "target: 0.98 of raw aiohttp (0.99 at concurrency 1 and 10)")],
    "overhead-60k": [
        (0.99, "target without the speed extra: 0.99"),
        (1.10, "target with the speed extra: 1.10"),
    ],
}

# Contenders, top to bottom, with the label a reader sees; unknown names are appended.
OVERHEAD_LABELS = {
    "netrex-manager": "NetrexClient + TokenManager",
    "netrex-static": "NetrexClient + StaticToken",
    "netrex-nospeed": "NetrexClient + StaticToken, no speed extra",
    "aiohttp-oauth2": "aiohttp-oauth2-client middleware",
    "authlib-httpx": "Authlib httpx AsyncOAuth2Client",
    "raw-idiomatic": "raw aiohttp, idiomatic",
    "raw-control": "raw aiohttp again (A/A: the noise)",
    "raw-unbounded": "raw aiohttp with no timeout (the floor)",
    "raw-aiohttp": "raw aiohttp, NetrexClient's settings",
}
OURS = {"netrex-manager", "netrex-static", "netrex-nospeed"}


def load_overhead(path: Path, against: str = "raw") -> dict[str, dict[str, dict[str, Any]]]:
    """The summary of a bench_overhead.py document: concurrency -> contender -> figures.

    ``against``: ``"raw"`` (ratios to raw aiohttp configured as NetrexClient is, the
    ``summary``) or ``"idiomatic"`` (to raw aiohttp as usually written,
    ``summary_vs_idiomatic``).
    """
    document = json.loads(path.read_text())
    key = "summary" if against == "raw" else "summary_vs_idiomatic"
    if document.get("benchmark") != "overhead" or key not in document:
        raise SystemExit(f"{path}: not a bench_overhead.py JSON document")
    return {str(conc): per for conc, per in document[key].items()}


def plot_overhead(
    summary: dict[str, dict[str, dict[str, Any]]],
    out: Path,
    *,
    reference: str = "raw-aiohttp",
    targets: list[tuple[float, str]] = TARGETS["overhead"],
    what: str = "Authenticated GraphQL calls per second",
) -> None:
    """Draw one panel per concurrency: each contender's calls/s as a ratio to ``reference``."""
    plt = _pyplot()

    concurrencies = sorted(summary, key=int)
    names = [n for n in OVERHEAD_LABELS if any(n in summary[c] for c in concurrencies)]
    names += sorted({n for c in concurrencies for n in summary[c]} - set(names))
    names.remove(reference)
    widest = max(
        float(summary[c][n]["ratio_vs_raw"])
        for c in concurrencies
        for n in names
        if n in summary[c]
    )
    right = max(1.2, widest + 0.2)
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
            # The figures in a column at the right edge, on white: no line crosses them.
            ax.text(
                right - 0.01,
                row,
                f"{ratio:.2f}",
                ha="right",
                va="center",
                fontsize=9,
                fontweight="bold" if name in OURS else "normal",
                bbox={"facecolor": "#ffffff", "edgecolor": "none", "pad": 1},
            )
        ax.axvline(1.0, color="#424242", linewidth=1)
        for (ratio, label), style in zip(targets, ("--", ":"), strict=False):
            ax.axvline(ratio, color="#c62828", linewidth=1.2, linestyle=style, label=label)
        raw = per.get(reference, {}).get("throughput")
        title = f"concurrency {conc}"
        if raw:
            title += f" (1.00 = {float(raw):,.0f} calls/s)"
        ax.set_title(title, fontsize=10, loc="left")
        ax.set_yticks(y)
        ax.set_yticklabels([OVERHEAD_LABELS.get(n, n) for n in names], fontsize=9)
        ax.set_xlim(0, right)
        ax.set_xticks([t / 4 for t in range(int(right * 4) + 1)])
        ax.grid(axis="x", color="#eeeeee")
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    axes[-1].legend(loc="upper right", bbox_to_anchor=(1.0, -0.12), fontsize=8, frameon=False)
    fig.suptitle(
        f"{what},\nas a ratio to {OVERHEAD_LABELS.get(reference, reference)} (higher is better)",
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


def _plot_overhead_60k(summary: dict[str, dict[str, dict[str, Any]]], out: Path) -> None:
    plot_overhead(
        summary,
        out,
        reference="raw-idiomatic",
        targets=TARGETS["overhead-60k"],
        what="GraphQL calls per second with 60 KB answers",
    )


PLOTS = {
    "overhead": (load_overhead, plot_overhead),
    "overhead-60k": (lambda path: load_overhead(path, "idiomatic"), _plot_overhead_60k),
    "fleet": (load_fleet, plot_fleet),
}


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
