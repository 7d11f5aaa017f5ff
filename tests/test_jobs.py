"""Cancelling segment everything (sam_demo.jobs.CancelRegistry) when a cancel races a newer run of the same tab.

A tab has at most one run that Cancel (or opening another image) can stop: the newest. These tests play the
interleavings that the browser can produce one step at a time (deterministic, no sleeps): an older run
finishing after a newer one started, a cancel arriving between two runs, a cancel during the newer run.
"""

from __future__ import annotations

import threading

import pytest

import app
from sam_demo import jobs
from sam_onnx import amg

TAB = "tab-1"
STEP_S = 10.0
"""Longest wait for one step of a scripted run (milliseconds when it works)."""


def test_an_older_run_finishing_late_leaves_the_newer_run_cancellable():
    registry = jobs.CancelRegistry()
    older = registry.start(TAB)
    newer = registry.start(TAB)  # the user started again (the older run is still winding down)
    registry.finish(TAB, older)
    assert registry.cancel(TAB) and newer.is_set() and not older.is_set()
    registry.finish(TAB, newer)
    assert not registry.cancel(TAB)  # nothing runs: nothing to cancel, nothing left behind


def test_a_cancel_between_two_runs_does_not_stop_the_next_one():
    registry = jobs.CancelRegistry()
    first = registry.start(TAB)
    registry.finish(TAB, first)
    assert not registry.cancel(TAB)  # the click on Cancel came after the run ended
    second = registry.start(TAB)
    assert not second.is_set()


def test_a_cancel_stops_the_newest_run_only():
    registry = jobs.CancelRegistry()
    other_tab = registry.start("tab-2")
    older = registry.start(TAB)
    newer = registry.start(TAB)
    assert registry.cancel(TAB)
    assert newer.is_set() and not older.is_set() and not other_tab.is_set()


class ScriptedService:
    """``segment_everything`` that works in pieces, checking its cancel flag between them like the real one, and
    finishes once ``finish`` is set."""

    def __init__(self) -> None:
        self.cancels = jobs.CancelRegistry()
        self.started = threading.Semaphore(0)
        self.finish = threading.Event()

    def everything_estimate(self, record, preset):
        return jobs.EverythingEstimate(preset, 2, 4, 2, 0, 0.1)

    def segment_everything(self, record, preset, *, progress, cancel, abort=None):
        self.started.release()
        while not self.finish.wait(0.001):  # a piece of work, then the cancel check between pieces
            if cancel():
                raise amg.Cancelled(0, 2)
        return []


def test_through_the_app_a_cancel_stops_the_running_run_and_never_the_next_one():
    """``run_everything`` as the app runs it (one run at a time on its queue): Cancel during run 1 stops it; a
    Cancel that arrives after run 1 ended does not stop run 2, which a Cancel during it does stop."""
    service = ScriptedService()
    record = type("Record", (), {"key": "k" * 64, "original_hw": (10, 10)})()
    state = type("State", (), {"record": record, "editor": None})()
    request = type("Request", (), {"session_hash": TAB})()
    results: list[object] = []

    def run() -> threading.Thread:
        thread = threading.Thread(target=lambda: results.append(
            app.run_everything.__wrapped__(service, state, "fast", request, lambda *a, **k: None)), daemon=True)
        thread.start()
        assert service.started.acquire(timeout=STEP_S), "the run did not start"
        return thread

    first = run()
    app.cancel_everything(service, state, request)
    first.join(STEP_S)
    assert not first.is_alive() and results == [(record.key, None)]  # cancelled: nothing to add
    app.cancel_everything(service, state, request)  # a late click on Cancel, between two runs
    second = run()
    service.finish.set()
    second.join(STEP_S)
    assert not second.is_alive() and results[1] == (record.key, [])  # ran to its end
    service.finish.clear()
    third = run()
    app.cancel_everything(service, state, request)
    third.join(STEP_S)
    assert results[2] == (record.key, None) and not service.cancels.cancel(TAB)  # stopped; nothing left behind


def test_the_estimate_accounts_for_other_users_current_work():
    """Issue 22 (said 25 s, took 45-53 s while another user worked): one owner busy without pause doubles it,
    an owner who used a fifth of the gate costs a quarter more, an encoder busy all the time doubles it."""
    speed = jobs.SpeedMeter()
    alone = jobs.estimate("balanced", (600, 800), speed)
    busy = jobs.estimate("balanced", (600, 800), speed, jobs.Load(compute_share=1.0, compute_owners=1))
    assert alone.load_factor == 1.0 and busy.load_factor == pytest.approx(2.0)
    assert busy.seconds == pytest.approx(2 * alone.seconds)
    assert jobs.load_factor(jobs.Load(0.2, 1, 0.0)) == pytest.approx(1.25)
    assert jobs.load_factor(jobs.Load(1.0, 3, 0.0)) == pytest.approx(4.0)
    assert jobs.load_factor(jobs.Load(0.0, 0, 1.0)) == pytest.approx(2.0)

