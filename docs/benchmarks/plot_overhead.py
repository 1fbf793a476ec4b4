"""Draw docs/images/overhead.png from a bench_overhead.py JSON document.

Usage, from the repository root (needs the ``docs`` extra for matplotlib)::

    python docs/benchmarks/plot_overhead.py                      # docs/benchmarks/overhead.json
    python docs/benchmarks/plot_overhead.py results.json --out /tmp/overhead.png

After a new run, ``benchmarks/bench_overhead.py --json-out docs/benchmarks/overhead.json``
writes the document this script reads (its ``summary``: per concurrency, per contender,
``ratio_vs_raw`` and optionally ``ratio_min``/``ratio_max``, drawn as a range).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "overhead.json"
DEFAULT_OUT = HERE.parent / "images" / "overhead.png"
TARGET = 0.95

# Contenders, top to bottom, with the label a reader sees; unknown names are appended.
LABELS = {
    "netrex-manager": "NetrexClient + TokenManager",
    "netrex-static": "NetrexClient + StaticToken",
    "aiohttp-oauth2": "aiohttp-oauth2-client middleware",
    "authlib-httpx": "Authlib httpx AsyncOAuth2Client",
    "raw-idiomatic": "raw aiohttp, idiomatic",
    "raw-control": "raw aiohttp again (A/A: the noise)",
}
OURS = {"netrex-manager", "netrex-static"}


def load(path: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """The ``summary`` of a bench_overhead.py document: concurrency -> contender -> figures."""
    document = json.loads(path.read_text())
    if document.get("benchmark") != "overhead" or "summary" not in document:
        raise SystemExit(f"{path}: not a bench_overhead.py JSON document")
    return {str(conc): per for conc, per in document["summary"].items()}


def plot(summary: dict[str, dict[str, dict[str, Any]]], out: Path) -> None:
    """Draw one panel per concurrency: each contender's calls/s as a ratio to raw aiohttp."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    concurrencies = sorted(summary, key=int)
    names = [n for n in LABELS if any(n in summary[c] for c in concurrencies)]
    names += sorted({n for c in concurrencies for n in summary[c]} - {*names, "raw-aiohttp"})
    # One panel per concurrency, stacked: the page is narrow, a reader scrolls.
    fig, axes = plt.subplots(
        len(concurrencies), 1, figsize=(7.5, (0.34 * len(names) + 0.75) * len(concurrencies) + 0.9),
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
                ax.errorbar(ratio, row, xerr=[[ratio - low], [high - ratio]], fmt="none",
                            ecolor="#424242", capsize=3, linewidth=1)
            # The figures in a column right of the 1.0 line, where no line crosses them.
            ax.text(1.04, row, f"{ratio:.2f}", va="center", fontsize=9,
                    fontweight="bold" if name in OURS else "normal")
        ax.axvline(1.0, color="#424242", linewidth=1)
        ax.axvline(TARGET, color="#c62828", linewidth=1.2, linestyle="--",
                   label=f"target: {TARGET:.2f} of raw aiohttp")
        raw = per.get("raw-aiohttp", {}).get("throughput")
        title = f"concurrency {conc}"
        if raw:
            title += f" (raw aiohttp = 1.00: {float(raw):,.0f} calls/s)"
        ax.set_title(title, fontsize=10, loc="left")
        ax.set_yticks(y)
        ax.set_yticklabels([LABELS.get(n, n) for n in names], fontsize=9)
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
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="?", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    plot(load(args.json), args.out)
    print(f"wrote {args.out}")  # noqa: T201 - a script


if __name__ == "__main__":
    main()
