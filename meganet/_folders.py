"""Report folders on disk: atomic creation, what may be replaced, stale partial folders, fallbacks.

The rules (also in the README, "What happens to your files"):

* A report folder is written into a hidden sibling ``.NAME.partial-XXXXXXXX`` (with a marker file
  naming the writing process) and renamed into place when complete; ``os.rename`` of a folder is
  atomic on POSIX, so ``NAME`` is either absent, the previous report, or the complete new one.
* An existing ``NAME`` is replaced only with ``overwrite=True`` **and** only if it is recognisably a
  meganet report (:func:`replace_refusal`): a real folder (not a link), not the current directory or
  one of its parents, holding ``model.json`` of our format and ``summary.json`` and nothing but the
  files a report consists of.  Anything else is refused with a message that says why.
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
    "REPORT_FILES", "MARKER", "atomic_folder", "unique_path", "replace_refusal", "check_replaceable",
    "writable_problem", "fallback_root", "recover_stale", "is_partial_folder",
]

FORMAT = "meganet-run"
#: The files a report folder may hold (anything else makes it "not a report": it is never replaced).
REPORT_FILES = frozenset({"model.json", "params.npz", "history.csv", "history.json", "summary.json", "data.npz",
                          "decision_regions.png", "predicted_vs_true.png", "convergence.png"})
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
def _is_report_meta(path):
    try:
        with open(os.path.join(path, "model.json"), encoding="utf-8") as fh:
            meta = json.load(fh)
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format") == FORMAT


def replace_refusal(path):
    """Why ``path`` may not be replaced by a new report, or ``None`` if it may.

    Only an existing meganet report folder may be replaced: a real folder (no symbolic link), not
    the current working directory nor one of its parents, with ``model.json`` of format
    ``meganet-run`` and ``summary.json``, and no file that a report does not consist of.
    """
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
    if "model.json" not in entries or "summary.json" not in entries or not _is_report_meta(path):
        return "it is not a meganet report folder (no model.json of format 'meganet-run' with a summary.json)"
    extra = [e for e in entries if e not in REPORT_FILES]
    if extra:
        shown = ", ".join(extra[:5]) + (", ..." if len(extra) > 5 else "")
        return f"it holds files that are not part of a report ({shown})"
    return None


def check_replaceable(path):
    """Raise ``FileExistsError`` unless ``path`` is absent or a report folder that may be replaced."""
    if not os.path.lexists(path):
        return
    why = replace_refusal(path)
    if why is not None:
        raise FileExistsError(f"refusing to replace {os.fspath(path)!r}: {why}. Only a meganet report folder may "
                              "be replaced with --overwrite (overwrite=True); choose another folder")


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
    * ``.NAME.old-*`` (a previous report moved aside during an overwrite): moved back to ``NAME`` if
      ``NAME`` is missing; removed if ``NAME`` is in place and the marker names a dead process.

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
def atomic_folder(path, *, overwrite=False):
    """Context manager: yield a hidden sibling folder, rename it to ``path`` on success.

    On an exception (including ``KeyboardInterrupt``) the partial folder is removed and nothing
    appears at ``path``; an existing folder at ``path`` is left untouched.  With ``overwrite=True``
    an existing *report* folder (:func:`replace_refusal`) is moved aside, the new one renamed into
    place, then the old one deleted (if the rename fails the old folder is restored).

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is false, or it may not be replaced (checked before and
        after writing).
    """
    path = os.path.abspath(os.fspath(path))
    parent, name = os.path.split(path)
    if not name:
        raise ValueError(f"path must name a folder, got {path!r}")
    if os.path.lexists(path):
        if not overwrite:
            raise FileExistsError(f"report folder {path!r} already exists; choose another --out or pass --overwrite")
        check_replaceable(path)
    os.makedirs(parent, exist_ok=True)
    recover_stale(parent)
    tmp = _make_dir(parent, f".{name}.partial-")
    try:
        _write_marker(tmp, MARKER, path)
        yield tmp
        os.remove(os.path.join(tmp, MARKER))
        _commit(tmp, path, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _commit(tmp, path, overwrite):
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
    check_replaceable(path)
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
