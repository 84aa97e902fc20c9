"""Report folders on disk: atomic creation, what may be replaced, stale partial folders, fallbacks.

The rules (also in the README, "What happens to your files"):

* A report folder is written into a hidden sibling ``.NAME.partial-XXXXXXXX`` (with a marker file
  naming the writing process) and renamed into place when complete; ``os.rename`` of a folder is
  atomic on POSIX, so ``NAME`` is either absent, the previous report, or the complete new one.
* An existing ``NAME`` is replaced only with ``overwrite=True`` **and** only if it is recognisably a
  meganet report of the kind being written (:func:`replace_refusal`): a real folder (not a link), not
  the current directory or one of its parents, holding ``summary.json`` and nothing but the files a
  report of that kind consists of, and with the metadata of that kind (``kind="run"``, ``meganet
  train``: ``model.json`` of format ``meganet-run``; ``kind="segment"``, ``meganet segment``:
  ``summary.json`` of format ``meganet-segment``).  Anything else is refused with a message that says
  why.
* During an overwrite the previous report is moved aside to ``.NAME.old-XXXXXXXX`` and deleted only
  after the new one is in place; if the process is killed in between, the next run into the same
  parent moves it back (:func:`recover_stale`).
* Partial folders of processes that no longer run (same host) are removed by the next run into the
  same parent; folders we cannot identify as ours are never touched.
* Folders are created with the user's umask (not ``tempfile.mkdtemp``'s mode 0700).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
import time

__all__ = [
    "REPORT_FILES", "SEGMENT_FORMAT", "SEGMENT_FILES", "MARKER", "atomic_folder", "unique_path", "replace_refusal",
    "check_replaceable", "writable_problem", "fallback_root", "recover_stale", "is_partial_folder",
]

FORMAT = "meganet-run"
#: The files a report folder may hold (anything else makes it "not a report": it is never replaced).
REPORT_FILES = frozenset({"model.json", "params.npz", "history.csv", "history.json", "summary.json", "data.npz",
                          "decision_regions.png", "predicted_vs_true.png", "convergence.png"})
#: ``format`` in the ``summary.json`` of a ``meganet segment`` report folder.
SEGMENT_FORMAT = "meganet-segment"
#: The files a ``meganet segment`` report folder may hold (anything else: it is never replaced).
SEGMENT_FILES = frozenset({"summary.json", "alpha_sweep.jsonl", "alpha_sweep.md", "miou_vs_alpha.png", "maps.png"})
#: Marker file inside a folder that is being written (removed just before the final rename).
MARKER = ".meganet-partial"
#: Marker file inside a previous report moved aside during an overwrite.
OLD_MARKER = ".meganet-replaced"
_PARTIAL_RE = re.compile(r"^\.(?P<name>.+)\.(?P<kind>partial|old)-[0-9a-f]{8}$")


def unique_path(path):
    """``path`` if nothing exists there, else ``path-1``, ``path-2``, … (the first free one)."""
    path = os.fspath(path)
    if not os.path.lexists(path):
        return path
    k = 1
    while os.path.lexists(f"{path}-{k}"):
        k += 1
    return f"{path}-{k}"


def is_partial_folder(path):
    """True for a hidden ``.NAME.partial-*`` / ``.NAME.old-*`` folder or a folder holding the partial marker."""
    path = os.path.abspath(os.fspath(path))
    return bool(_PARTIAL_RE.match(os.path.basename(path))) or os.path.exists(os.path.join(path, MARKER))


# ---------------------------------------------------------------------------- what may be replaced
def _has_format(path, fname, fmt):
    """True if ``path/fname`` is a JSON object whose ``format`` is ``fmt``."""
    try:
        with open(os.path.join(path, fname), encoding="utf-8") as fh:
            meta = json.load(fh)
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format") == fmt


#: The kinds of report folder: kind -> (the check of its metadata, the files it may hold, how messages name
#: it, what a folder that is not one lacks).
_KINDS = {
    "run": (lambda path: _has_format(path, "model.json", FORMAT), REPORT_FILES, "report",
            f"no model.json of format {FORMAT!r} with a summary.json"),
    "segment": (lambda path: _has_format(path, "summary.json", SEGMENT_FORMAT), SEGMENT_FILES, "segment report",
                f"no summary.json of format {SEGMENT_FORMAT!r}"),
}


def _kind(kind):
    try:
        return _KINDS[kind]
    except KeyError:
        raise ValueError(f"kind must be one of {sorted(_KINDS)}, got {kind!r}") from None


def _is_report_meta(path):
    """True if ``path`` has the metadata of a report of any kind."""
    return any(is_meta(path) for is_meta, *_ in _KINDS.values())


def replace_refusal(path, *, kind="run"):
    """Why ``path`` may not be replaced by a new report of ``kind``, or ``None`` if it may.

    Only an existing meganet report folder of that kind may be replaced: a real folder (no symbolic
    link), not the current working directory nor one of its parents, with ``summary.json`` and the
    metadata of the kind (``"run"``: ``model.json`` of format ``meganet-run``; ``"segment"``:
    ``summary.json`` of format ``meganet-segment``), and no file that such a report does not consist
    of (:data:`REPORT_FILES`, :data:`SEGMENT_FILES`).
    """
    is_meta, allowed, what, lacks = _kind(kind)
    path = os.path.abspath(os.fspath(path))
    if os.path.islink(path):
        return "it is a symbolic link"
    if not os.path.isdir(path):
        return "it is not a folder"
    real, cwd = os.path.realpath(path), os.path.realpath(os.getcwd())
    if cwd == real or cwd.startswith(real.rstrip(os.sep) + os.sep):
        return "it is the current directory or contains it"
    try:
        entries = sorted(os.listdir(path))
    except OSError as err:
        return f"its contents cannot be listed ({err.strerror})"
    if "summary.json" not in entries or not is_meta(path):
        return f"it is not a meganet {what} folder ({lacks})"
    extra = [e for e in entries if e not in allowed]
    if extra:
        shown = ", ".join(extra[:5]) + (", ..." if len(extra) > 5 else "")
        return f"it holds files that are not part of a {what} ({shown})"
    return None


def check_replaceable(path, *, kind="run"):
    """Raise ``FileExistsError`` unless ``path`` is absent or a report folder of ``kind`` that may be replaced."""
    if not os.path.lexists(path):
        return
    why = replace_refusal(path, kind=kind)
    if why is not None:
        raise FileExistsError(f"refusing to replace {os.fspath(path)!r}: {why}. Only a meganet {_kind(kind)[2]} "
                              "folder may be replaced with --overwrite (overwrite=True); choose another folder")


# ---------------------------------------------------------------------------- can we write there?
def _nearest_existing(path):
    p = os.path.abspath(path)
    while not os.path.lexists(p):
        up = os.path.dirname(p)
        if up == p:
            break
        p = up
    return p


def writable_problem(path):
    """Why a report cannot be written at ``path`` (its parent folder), or ``None`` if it can.

    Creates and removes a probe folder in the parent (or in the nearest existing ancestor if the
    parent does not exist yet), so read-only file systems, permissions and a file in the way are
    all detected; nothing is left behind.
    """
    parent = os.path.dirname(os.path.abspath(os.fspath(path)))
    base = _nearest_existing(parent)
    if not os.path.isdir(base):
        return f"{base!r} is a file, not a folder"
    try:
        probe = _make_dir(base, ".meganet-probe-")
    except OSError as err:
        return f"{base!r} is not writable ({err.strerror or err})"
    with contextlib.suppress(OSError):
        os.rmdir(probe)
    return None


def fallback_root():
    """Where a report goes when its target cannot be written: ``$MEGANET_FALLBACK_DIR`` if set, else
    ``<temp dir>/meganet-runs`` (``tempfile.gettempdir()``), else ``~/meganet-runs``."""
    env = os.environ.get("MEGANET_FALLBACK_DIR")
    candidates = [env] if env else []
    candidates += [os.path.join(tempfile.gettempdir(), "meganet-runs"), os.path.expanduser("~/meganet-runs")]
    for c in candidates:
        if writable_problem(os.path.join(c, "x")) is None:
            return c
    return candidates[0]


# ---------------------------------------------------------------------------- atomic write
def _make_dir(parent, prefix):
    """Create ``parent/prefix<8 hex>`` with mode 0o777 & ~umask; return its path."""
    for _ in range(100):
        p = os.path.join(parent, prefix + secrets.token_hex(4))
        try:
            os.mkdir(p, 0o777)
            return p
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a unique folder {prefix}* in {parent!r}")  # pragma: no cover


def _write_marker(folder, name, target):
    with open(os.path.join(folder, name), "w", encoding="utf-8") as fh:
        json.dump({"pid": os.getpid(), "host": socket.gethostname(), "time": time.time(), "target": target}, fh)


def _read_marker(folder, name):
    try:
        with open(os.path.join(folder, name), encoding="utf-8") as fh:
            m = json.load(fh)
        return m if isinstance(m, dict) else None
    except (OSError, ValueError):
        return None


def _pid_alive(pid):
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError, TypeError):
        return True  # exists (another user) or unknown: treat as alive
    return True


def _dead_here(marker):
    """True if the marker names a process on this host that no longer runs."""
    return (marker is not None and marker.get("host") == socket.gethostname()
            and isinstance(marker.get("pid"), int) and not _pid_alive(marker["pid"]))


def recover_stale(parent):
    """Clean up after processes killed while saving into ``parent`` (best effort, never raises).

    * ``.NAME.partial-*`` with our marker, written by a dead process on this host: removed.
    * ``.NAME.old-*`` (a previous report of any kind moved aside during an overwrite): moved back to
      ``NAME`` if ``NAME`` is missing; removed if ``NAME`` is in place and the marker names a dead process.

    Returns
    -------
    list of str
        What was done, one line per folder.
    """
    done = []
    try:
        entries = os.listdir(parent)
    except OSError:
        return done
    for e in entries:
        m = _PARTIAL_RE.match(e)
        if not m:
            continue
        p = os.path.join(parent, e)
        if os.path.islink(p) or not os.path.isdir(p):
            continue
        try:
            if m["kind"] == "partial":
                if _dead_here(_read_marker(p, MARKER)):
                    shutil.rmtree(p)
                    done.append(f"removed the partial folder {p} of an interrupted save")
            else:
                target = os.path.join(parent, m["name"])
                marker = _read_marker(p, OLD_MARKER)
                if marker is not None and not _dead_here(marker):
                    continue  # its process may still be replacing it
                if not os.path.lexists(target) and _is_report_meta(p):
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(os.path.join(p, OLD_MARKER))
                    os.rename(p, target)
                    done.append(f"restored the previous report {target} (its replacement was interrupted)")
                elif os.path.lexists(target) and marker is not None:
                    shutil.rmtree(p)
                    done.append(f"removed the replaced report {p} left by an interrupted overwrite")
        except OSError:
            continue
    return done


@contextlib.contextmanager
def atomic_folder(path, *, overwrite=False, kind="run"):
    """Context manager: yield a hidden sibling folder, rename it to ``path`` on success.

    On an exception (including ``KeyboardInterrupt``) the partial folder is removed and nothing
    appears at ``path``; an existing folder at ``path`` is left untouched.  With ``overwrite=True``
    an existing report folder of ``kind`` (``"run"`` or ``"segment"``, :func:`replace_refusal`) is
    moved aside, the new one renamed into place, then the old one deleted (if the rename fails the
    old folder is restored).

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is false, or it may not be replaced (checked before and
        after writing).
    """
    _kind(kind)
    path = os.path.abspath(os.fspath(path))
    parent, name = os.path.split(path)
    if not name:
        raise ValueError(f"path must name a folder, got {path!r}")
    if os.path.lexists(path):
        if not overwrite:
            raise FileExistsError(f"report folder {path!r} already exists; choose another --out or pass --overwrite")
        check_replaceable(path, kind=kind)
    os.makedirs(parent, exist_ok=True)
    recover_stale(parent)
    tmp = _make_dir(parent, f".{name}.partial-")
    try:
        _write_marker(tmp, MARKER, path)
        yield tmp
        os.remove(os.path.join(tmp, MARKER))
        _commit(tmp, path, overwrite, kind)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _commit(tmp, path, overwrite, kind):
    if not os.path.lexists(path):
        try:
            os.rename(tmp, path)  # atomic; fails if a non-empty folder appeared meanwhile
            return
        except OSError:
            if not overwrite or not os.path.lexists(path):
                raise FileExistsError(f"report folder {path!r} appeared while the report was written; "
                                      "choose another --out or pass --overwrite") from None
    if not overwrite:
        raise FileExistsError(f"report folder {path!r} already exists; choose another --out or pass --overwrite")
    check_replaceable(path, kind=kind)
    parent, name = os.path.split(path)
    old = _make_dir(parent, f".{name}.old-")
    os.rmdir(old)
    os.rename(path, old)
    try:
        _write_marker(old, OLD_MARKER, path)
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(os.path.join(old, OLD_MARKER))
        os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)
