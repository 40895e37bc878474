"""The charts' start and end, written once: pyplot off-screen, and a figure laid out, saved and freed.

ssp's charts are files (label summaries, evaluations, learning curves), never windows, so pyplot
draws on the Agg backend; a figure is closed once saved, so a long run does not keep them all.
matplotlib is imported only when a chart is drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["pyplot", "save_figure"]


def pyplot():
    """``matplotlib.pyplot``, drawing off-screen (the Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path | str, **savefig: Any) -> None:
    """Lay ``fig`` out tightly, write it to ``path`` (``savefig``: matplotlib's options, e.g. the format
    when the name does not end in .png) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, **savefig)
    plt.close(fig)
