"""The one place that imports matplotlib (an optional dependency, extra ``plot``).

Figures are built with the object-oriented API (``matplotlib.figure.Figure``
and the Agg canvas), never through ``pyplot``: plotting from meganet neither
switches the user's backend nor opens windows, and works on headless machines.
"""

from __future__ import annotations

import os

__all__ = ["require_matplotlib", "new_figure", "save_figure", "INSTALL_HINT"]

INSTALL_HINT = ("meganet.plotting needs matplotlib, which is not installed; install the plotting extra: "
                "pip install 'meganet[plot]' (or pip install matplotlib)")


def require_matplotlib():
    """Import and return ``matplotlib``; raise ``ImportError`` with the install hint if it is missing."""
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return matplotlib


def new_figure(*, nrows=1, ncols=1, figsize=(6.0, 5.0), dpi=100):
    """A ``Figure`` with an Agg canvas and its axes (``squeeze=False`` array)."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def save_figure(fig, path):
    """Write ``fig`` to ``path`` (format from the extension, e.g. ``.png``) and return the path.

    Written to a temporary file in the same folder and renamed, so a crash
    never leaves a truncated image behind.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    base, ext = os.path.splitext(os.path.basename(path))
    tmp = os.path.join(folder, f".{base}.tmp{ext}")
    try:
        fig.savefig(tmp, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def finish_figure(fig, *, title=None, path=None):
    """Give ``fig`` its title, lay it out, and save it to ``path`` (returning the path) or return it."""
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        return save_figure(fig, path)
    return fig
