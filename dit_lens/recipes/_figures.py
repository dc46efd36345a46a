"""Figure plumbing shared by the recipes: a headless matplotlib and one way to save.

    pyplot()                         matplotlib.pyplot on the Agg backend
    save(fig, out, filename, title)  tight layout, write out/filename at 120 dpi, close; returns the path
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["pyplot", "save"]


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, out, filename: str, title: str | None = None, fontsize: int = 8) -> Path:
    plt = pyplot()
    if title:
        fig.suptitle(title, fontsize=fontsize)
    fig.tight_layout()
    path = Path(out) / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
