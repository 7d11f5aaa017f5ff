"""``--encoder auto`` after the app already serves: the check runs behind everyone, then the engine switches.

With no decision stored for this machine, the app starts on onnxruntime fp32
(``Sam2Predictor.from_pretrained(..., check_later=True)``) and this module runs
the pending check (:func:`sam_onnx.encoders.auto.run_check`) in a background
thread at the lowest priority there is:

- **CPU**: the check's thread runs at nice 19 (Linux), and so do the threads
  of every engine it builds (a thread's children inherit its priority), so a
  user's upload or click that starts beside it gets the cores.
- **Turns**: every encoder run of the check waits until the intake, encoder
  and compute gates are idle and then runs beside them (:func:`sam_demo.fair.beside`):
  nobody ever waits for it, and a timed run that a user's turn overlapped is
  timed again. Each of its decoder calls takes a :meth:`~sam_demo.fair.FairGate.lowest_turn`
  of the compute gate (one call, ~50 ms, given only while nobody waits).

The decision is stored under ``SAM_ONNX_CACHE_DIR`` as at any start. If a
faster engine won, it is built again in a thread of normal priority (the
check's copy would keep its nice-19 threads), warmed up beside the gates, and
swapped in during a lowest turn of the encoder gate: between two encoder runs,
so every upload runs wholly on one engine. In-flight requests are never
retried or failed by the switch.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from sam_onnx import encoders
from sam_onnx.encoders import auto
from sam_onnx.encoders.base import PIXEL_SHAPE, Variant

from . import fair

if TYPE_CHECKING:
    from .service import SegmentationService

logger = logging.getLogger(__name__)

LOWEST_NICE = 19
"""The lowest CPU priority of a Linux thread (nice 19): it gets about 1.5 % of a core next to a nice-0 thread."""
WAITING, RUNNING, SWITCHED, KEPT, FAILED = "waiting", "running", "switched", "kept", "failed"
"""States of an :class:`EncoderCheck`: not started, checking, a faster engine runs now, fp32 stays, broke."""


def lowest_cpu_priority() -> bool:
    """Give the calling thread, and every thread it starts from now on, the lowest CPU priority.

    Returns:
        Whether it worked (Linux only: elsewhere ``setpriority`` would lower the whole process).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOWEST_NICE)
    except OSError as exc:
        logger.warning("could not lower the encoder check's priority (%s); it runs at normal priority", exc)
        return False
    return True


class EncoderCheck:
    """The pending ``auto`` check of a service's predictor, run in the background (see the module docstring).

    Args:
        service: the service whose ``predictor`` starts on fp32 with ``decision.pending`` set.
        table: the variants by name (default: every registered one; tests pass their own).
    """

    def __init__(self, service: SegmentationService, *, table: Mapping[str, Variant] | None = None) -> None:
        decision = service.predictor.decision
        if decision is None or decision.pending is None:
            raise ValueError("the service's predictor has no pending encoder check")
        self._service = service
        self._check = decision.pending
        self._table = table
        self._state = WAITING
        self._thread: threading.Thread | None = None
        self.seconds = 0.0
        """How long the check took, once it has ended."""

    @property
    def state(self) -> str:
        return self._state

    @property
    def pending(self) -> auto.Check:
        """The check this runs (its candidates, and where its decision is stored)."""
        return self._check

    @property
    def running(self) -> bool:
        return self._state in (WAITING, RUNNING)

    def start(self) -> EncoderCheck:
        """Start the check in a background thread (once); returns ``self``."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="encoder-check", daemon=True)
            self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the check and the switch; ``True`` when they are over."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    # ------------------------------------------------------------------ the background thread
    def _run(self) -> None:
        """In a thread of normal priority: the check in a nice-19 child, then the switch from here."""
        started = time.perf_counter()
        self._state = RUNNING
        try:
            decision = self._checked()
            self._switch(decision)
        except Exception:  # noqa: BLE001 - the app keeps serving on fp32 whatever went wrong here
            logger.exception("the background encoder check failed; fp32 stays")
            self._state = FAILED
        self.seconds = time.perf_counter() - started

    def _checked(self) -> auto.Decision:
        """Run the check in a child thread at the lowest priority; its decision (stored by ``run_check``)."""
        out: list = []

        def check() -> None:
            lowest_cpu_priority()
            try:
                _, decision = auto.run_check(self._check, self._decode, table=self._table, window=self._window)
                out.append(decision)  # the check's own copy of the winner (nice-19 threads) is dropped here
            except BaseException as exc:  # noqa: BLE001 - handed to the parent thread, which reports it
                out.append(exc)

        child = threading.Thread(target=check, name="encoder-check-low", daemon=True)
        child.start()
        child.join()
        if isinstance(out[0], BaseException):
            raise out[0]
        return out[0]

    def _switch(self, decision: auto.Decision) -> None:
        service = self._service
        current = service.predictor
        if decision.chosen == current.encoder.name:
            with service.encoder_gate.lowest_turn():
                service.use_predictor(service.predictor.with_encoder(current.encoder, decision))
            self._state = KEPT
            logger.info("encoder check: %s stays (%s)", decision.chosen, decision.summary())
            return
        table = self._table if self._table is not None else encoders.variants()
        encoder = table[decision.chosen].load(self._check.source)  # normal priority: this thread's children
        with fair.beside(*self._gates()):  # first-run costs paid here, not by the next upload
            encoder.encode(np.zeros(PIXEL_SHAPE, np.float32))
        with service.encoder_gate.lowest_turn():  # between two encoder runs: no upload is mid-encode
            service.use_predictor(service.predictor.with_encoder(encoder, decision))
        self._state = SWITCHED
        logger.info("encoder check: switched to %s (%s)", decision.chosen, decision.summary())

    def _gates(self) -> tuple[fair.FairGate, ...]:
        service = self._service
        return service.intake, service.encoder_gate, service.compute

    def _window(self):
        return fair.beside(*self._gates())

    def _decode(self, embedding, objects):
        """The check's decoder calls: one object per lowest turn of the compute gate."""
        results = []
        for prompts in objects:
            with self._service.compute.lowest_turn():
                results += self._service.predictor.decode_many(embedding, [prompts])
        return results
