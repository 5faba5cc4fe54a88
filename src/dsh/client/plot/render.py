"""The charts into one PNG with matplotlib's Agg canvas (no pyplot, no display).

Imported only by ``dsh plot --png``, after cli.py has checked that matplotlib
is there. The PNG carries tEXt chunks that say what it shows (``dsh-charts``:
the titles, ``|``-separated; ``dsh-nodes``: how many; ``dsh-since``), so a
script, or a test, can check a plot without reading its pixels.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import DateFormatter
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator

from ... import __version__
from .data import ChartData, units

DPI = 100


def _values(values: list[float | None]) -> list[float]:
    return [math.nan if v is None else v for v in values]  # a gap where unknown


def _axis_text(unit: str) -> FuncFormatter:
    def text(value: float, _position: float) -> str:
        if unit == "percent":
            return f"{value:.0f}%"
        if unit in ("bytes/s", "bytes"):
            return units(value)
        return f"{value:g}"

    return FuncFormatter(text)


def render(charts: list[ChartData], nodes: list[tuple[str, str]], out: Path, width: int,
           height: int, title: str, since: float) -> None:  # fmt: skip
    """``charts`` into ``out``, exactly ``width`` x ``height`` pixels."""
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    columns = 1 if len(charts) < 2 else 2
    rows = max(1, math.ceil(len(charts) / columns))
    axes = figure.subplots(rows, columns, squeeze=False, sharex=True)
    for k, ax in enumerate(axes.flat):
        if k >= len(charts):
            ax.set_visible(False)
            continue
        chart = charts[k]
        times = [datetime.fromtimestamp(t) for t in chart.times]
        for line in chart.nodes:
            ax.plot(times, _values(line.values), color=line.colour, linewidth=1.0)
        ax.plot(times, _values(chart.total.values), color=chart.total.colour, linewidth=2.0)
        ax.set_title(chart.title, loc="left", fontsize=10, fontweight="bold")
        top = chart.top
        if top is None:
            known = [
                v for line in [*chart.nodes, chart.total] for v in line.values if v is not None
            ]
            # nothing yet: a scale that says so (0 to 1k, or to 1), not 0 to 0
            least = 1024.0 if chart.unit in ("bytes/s", "bytes") else 1.0
            top = max(max(known, default=0.0) * 1.05, least)
        ax.set_ylim(0, top)
        ax.yaxis.set_major_formatter(_axis_text(chart.unit))
        ax.yaxis.set_major_locator(MaxNLocator(4))
        ax.xaxis.set_major_formatter(DateFormatter("%H:%M:%S"))  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.grid(True, color="#e6e6e6", linewidth=0.8)
        ax.tick_params(labelsize=8)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    handles = [Line2D([], [], color=colour, linewidth=2) for _, colour in nodes]
    labels = [name for name, _ in nodes]
    handles.append(Line2D([], [], color="#000000", linewidth=2.5))
    labels.append("cluster (average or sum)")
    figure.legend(handles, labels, loc="lower center", ncol=min(len(labels), 8), fontsize=8,
                  frameon=False)  # fmt: skip
    figure.suptitle(title, fontsize=11)
    figure.subplots_adjust(left=0.07, right=0.98, top=0.92, bottom=0.1, hspace=0.45,
                           wspace=0.15)  # fmt: skip
    metadata = {"Title": title, "Software": f"dsh {__version__} (matplotlib)",
                "dsh-charts": "|".join(c.title for c in charts), "dsh-nodes": str(len(nodes)),
                "dsh-since": f"{since:g}"}  # fmt: skip
    figure.savefig(out, format="png", dpi=DPI, metadata=metadata)
