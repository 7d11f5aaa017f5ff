"""Stopping work nobody waits for any more: an :class:`Abort` flag set by another thread.

A caller that may give up on an encoder run (a web page that left while its
upload was being encoded, a newer upload from the same page) makes an
:class:`Abort`, passes it to :meth:`sam_onnx.Sam2Predictor.encode_pixels` (or
checks it between its own steps with :meth:`Abort.check`), and calls
:meth:`Abort.set` from any thread to stop. The work stops at its next *safe
point* and raises :class:`~sam_onnx.errors.Aborted`; nothing partial is
returned and nothing shared is left half-changed.

Safe points:

* between steps of the caller's own work (:meth:`Abort.check`);
* inside an onnxruntime run: every ``session.run`` made in :func:`scope` gets a
  ``RunOptions`` whose ``terminate`` flag :meth:`Abort.set` raises, and
  onnxruntime stops between two nodes of the graph (measured on the SAM 2.1
  tiny encoder: 16 ms after ``set``, of a 46 s run on a loaded machine). The
  session stays usable for later runs;
* engines that do not run in onnxruntime here (a remote encoder, OpenVINO)
  read :func:`current` and check it where they can; at worst the run ends and
  its result is thrown away.

No module state: the abort in effect is a context variable, so each thread (and
each asyncio task) sees only its own.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator

from .errors import Aborted

_current: contextvars.ContextVar[Abort | None] = contextvars.ContextVar("sam_onnx_abort", default=None)


class Abort:
    """A stop request for work in progress (thread-safe; set once, never cleared).

    It quacks like :class:`threading.Event` for the parts code here uses
    (:meth:`set`, :meth:`is_set`), so it can stand in for one as a cancel flag.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._set = False
        self._stops: dict[int, Callable[[], None]] = {}
        self._next = 0
        self.reason = ""
        """Why it was set (the first caller's words; ``""`` = no reason given), for the caller's own messages."""

    def set(self, reason: str = "") -> None:
        """Ask the work to stop; running onnxruntime calls under it are told at once."""
        with self._lock:
            if self._set:
                return
            self._set = True
            self.reason = reason
            stops = list(self._stops.values())
        for stop in stops:
            stop()

    def is_set(self) -> bool:
        with self._lock:
            return self._set

    def check(self) -> None:
        """A safe point: raise :class:`~sam_onnx.errors.Aborted` if the work was asked to stop."""
        if self.is_set():
            raise Aborted()

    @contextlib.contextmanager
    def watching(self, stop: Callable[[], None]) -> Iterator[None]:
        """Call ``stop()`` (once, from the thread that sets the abort) if the abort is set during the block.

        Raises:
            Aborted: the abort is set already (the block does not run).
        """
        with self._lock:
            if self._set:
                raise Aborted()
            key = self._next
            self._next += 1
            self._stops[key] = stop
        try:
            yield
        finally:
            with self._lock:
                self._stops.pop(key, None)


def current() -> Abort | None:
    """The abort in effect for this thread's work (:func:`scope`), or ``None``."""
    return _current.get()


@contextlib.contextmanager
def scope(abort: Abort | None) -> Iterator[None]:
    """Make ``abort`` the one in effect for the block (``None``: no change), checked on entry and exit.

    Raises:
        Aborted: the abort is set on entry, or was set during the block (whose result is then dropped).
    """
    if abort is None:
        yield
        return
    abort.check()
    token = _current.set(abort)
    try:
        yield
    finally:
        _current.reset(token)
    abort.check()
