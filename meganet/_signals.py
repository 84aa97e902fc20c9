"""Interruptions of a training run: Ctrl-C (SIGINT), SIGTERM and SIGHUP handled alike.

:class:`SignalGuard` turns the first of these signals into an :class:`Interrupted` exception (a
``KeyboardInterrupt``) while the guarded work runs, and *holds* every later one: once training has
stopped, collecting the results and writing the report are not interrupted again, so a second
Ctrl-C or a SIGTERM during saving cannot leave a run without its report.  The held signals are
reported by :attr:`SignalGuard.received` and decide the exit status (``128 + signal number``).
``kill -9`` (SIGKILL) cannot be caught: the save is atomic, so the previous state stays intact.

Handlers are installed only in the main thread and only over the default handlers (a signal the
caller ignores, e.g. SIGHUP under ``nohup``, stays ignored); the previous handlers are restored on
exit.
"""

from __future__ import annotations

import signal
import sys
import threading

__all__ = ["Interrupted", "SignalGuard", "exit_status"]

_NAMES = {signal.SIGINT: "Ctrl-C (SIGINT)", signal.SIGTERM: "SIGTERM"}
if hasattr(signal, "SIGHUP"):
    _NAMES[signal.SIGHUP] = "SIGHUP"


class Interrupted(KeyboardInterrupt):
    """Raised by :class:`SignalGuard` for SIGINT, SIGTERM or SIGHUP; ``signum`` tells which."""

    def __init__(self, signum=signal.SIGINT):
        super().__init__(describe(signum))
        self.signum = int(signum)


def describe(signum):
    """``'Ctrl-C (SIGINT)'``, ``'SIGTERM'``, ..."""
    try:
        return _NAMES.get(signal.Signals(signum), signal.Signals(signum).name)
    except ValueError:
        return f"signal {signum}"


def exit_status(signum):
    """The shell's exit status for a process stopped by ``signum``: ``128 + signum`` (130 for Ctrl-C)."""
    return 128 + int(signum)


class SignalGuard:
    """Context manager: the first SIGINT/SIGTERM/SIGHUP raises :class:`Interrupted`, later ones are held.

    Call :meth:`hold` when the interruptible part is over (e.g. training has finished): from then
    on every signal is only recorded.

    Parameters
    ----------
    on_hold_signal : callable ``(signum) -> None``, optional
        Called for a held signal (e.g. to print "saving the report first").
    """

    def __init__(self, *, on_hold_signal=None):
        self.received: list[int] = []
        self.holding = False
        self._on_hold = on_hold_signal
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in _NAMES:
            old = signal.getsignal(sig)
            if old in (signal.SIG_DFL, signal.default_int_handler):
                self._previous[sig] = old
                signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, old in self._previous.items():
            signal.signal(sig, old)
        self._previous.clear()
        return False

    def hold(self):
        """From now on, signals are recorded, not raised."""
        self.holding = True

    @property
    def signum(self):
        """The first signal received, or ``None``."""
        return self.received[0] if self.received else None

    def _handler(self, signum, frame):
        self.received.append(int(signum))
        if not self.holding:
            self.holding = True
            raise Interrupted(signum)
        if self._on_hold is not None:
            try:
                self._on_hold(signum)
            except Exception:  # pragma: no cover - a failing message must not break the save
                print(f"meganet: {describe(signum)} received; finishing the report first", file=sys.stderr)
