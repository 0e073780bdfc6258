"""The report's bar chart: rnnfast's speedup over the fastest peer per cell, beside the engine alone, with each
workload's target marked. A log axis, so 0.5× and 2× sit the same distance from parity."""
from __future__ import annotations


def speedup_chart(rows: list, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on the bench machine
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(13, 4.6), dpi=90)
    public = [r["speedup"] for r in rows]
    ax.bar([i - 0.2 for i in x], public, 0.4,
           color=["tab:green" if r["met"] else ("tab:red" if r["speedup"] < 1 else "tab:orange") for r in rows])
    ax.bar([i + 0.2 for i in x], [r["engine_speedup"] for r in rows], 0.4, label="engine alone", color="tab:gray",
           alpha=0.6)
    for i, r in enumerate(rows):
        ax.plot([i - 0.45, i + 0.45], [r["target"]] * 2, color="black", lw=1.2)
    ax.axhline(1.0, color="tab:red", lw=0.8, ls="--")
    ax.set_yscale("log")
    values = public + [r["engine_speedup"] for r in rows] + [r["target"] for r in rows] + [1.0]
    low, high = min(values) / 1.3, max(values) * 1.3
    ax.set_ylim(low, high)
    ticks = [t for t in (0.125, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 6, 8, 16) if low < t < high]
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.set_ylabel("speedup over the fastest peer")
    ax.set_xticks(list(x), [f"{r['workload']}\n{r['cell']}" for r in rows], fontsize=6.5)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    handles = [Patch(color=c, label=f"rnnfast (public API): {what}") for c, what in
               (("tab:green", "target met"), ("tab:orange", "faster, short of target"), ("tab:red", "slower"))]
    handles += [Patch(color="tab:gray", alpha=0.6, label="rnnfast engine alone (no Python API)"),
                Line2D([], [], color="black", lw=1.2, label="target")]
    ax.legend(handles=handles, fontsize=7.5, loc="upper center")
    ax.set_title("speedup of rnnfast over the fastest of onnxruntime and torch, same run (bench/report.py)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
