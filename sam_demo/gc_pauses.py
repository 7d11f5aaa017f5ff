"""Short garbage-collector pauses in a long-running server.

CPython's full (generation 2) collection walks every object the collector tracks and holds the GIL while it does,
so every thread of the process waits: every user's click in progress. In the app after start-up that is about
225,000 objects (Gradio, FastAPI, onnxruntime's and numpy's Python parts, the page's assets), and one full
collection took 128-150 ms on the 2-core Xeon; a user clicking back to back with 256 objects set one off every
8-10 clicks, and another user's click then took 290-460 ms instead of ~160 ms (tests/reliability, G2 alone on a
fresh server, collections timed with ``gc.callbacks``). :func:`freeze_startup_objects` moves the objects alive at
the end of start-up into the collector's permanent generation, which its passes skip: the same collections then
took 6-7 ms. Objects made later (users' states, results) are collected as before; the frozen ones are the
process's own set-up, alive until it ends anyway.
"""

from __future__ import annotations

import gc
import logging

logger = logging.getLogger(__name__)


def freeze_startup_objects() -> int:
    """Collect what start-up left over, then freeze every object still alive out of later collections.

    Call once the server is serving (models loaded, warmed up, the app built and launched). Returns how many
    objects are frozen (``gc.get_freeze_count()``).
    """
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    logger.info("%d start-up objects frozen out of the garbage collector's passes", frozen)
    return frozen


def thaw() -> None:
    """Give the frozen objects back to the collector (``gc.unfreeze()``): for a process that serves more than once
    (the tests), after a server closed, so that what it left in reference cycles can be freed."""
    gc.unfreeze()
