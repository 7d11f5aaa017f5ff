"""Rows D1-D6 of reliability.md section 3 that need no load generator (D4, the memory plateau under
load, is tests/load/test_load_short.py). ``pytest tests/reliability -k D2_``.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

import app
from sam_demo.service import SegmentationService
from tests.reliability.conftest import png_bytes, serve, smooth_rgb, stall_fault
from tests.reliability.rawapi import Outcome, RawSession, file_data

QUEUE_REFUSAL_DEADLINE_S = 1.0


class ConcurrencyProbe:
    """A fault that runs the real session after ``delay_s`` and records how many runs overlapped."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()

    def __call__(self, real, output_names, feeds, *args, **kwargs):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(self.delay_s)
            return real.run(output_names, feeds, *args, **kwargs)
        finally:
            with self.lock:
                self.running -= 1


def test_D1_eight_uploads_at_once_are_encoded_one_at_a_time_and_all_finish(served, faults):
    probe = ConcurrencyProbe(0.1)
    faults.encoder.fault = probe
    sessions = [RawSession(served.url) for _ in range(8)]
    paths = [s.upload(png_bytes(smooth_rgb(96, 128, seed=200 + i)), "u.png") for i, s in enumerate(sessions)]
    events = [s.submit("load_image", [file_data(p), 0.5, True]) for s, p in zip(sessions, paths)]
    outcomes = [s.wait(e) for s, e in zip(sessions, events)]
    assert all(o.ok for o in outcomes), outcomes
    assert probe.most == 1, f"{probe.most} encoder runs overlapped"
    assert max(o.seconds for o in outcomes) < 8 * (probe.delay_s + 1.0)
    for s in sessions:
        s.close()


def test_D2_queue_full_is_refused_at_once_with_gradios_message_and_nothing_breaks(switchable_predictor, faults,
                                                                                   photo_bytes):
    service = SegmentationService(switchable_predictor[0], image_cache_mb=64)
    with serve(service, queue_max_size=3) as served:
        clicker = RawSession(served.url)
        assert clicker.load_bytes(photo_bytes).ok
        faults.encoder.fault = stall_fault(0.6)
        sessions = [RawSession(served.url) for _ in range(8)]
        paths = [s.upload(png_bytes(smooth_rgb(96, 128, seed=300 + i)), "q.png") for i, s in enumerate(sessions)]
        started = time.perf_counter()
        submitted = [s.submit("load_image", [file_data(p), 0.5, True]) for s, p in zip(sessions, paths)]
        submit_s = time.perf_counter() - started
        refused = [r for r in submitted if isinstance(r, Outcome)]
        accepted = [(s, r) for s, r in zip(sessions, submitted) if not isinstance(r, Outcome)]
        assert refused and accepted
        assert submit_s < QUEUE_REFUSAL_DEADLINE_S
        for outcome in refused:
            assert outcome.status == 503  # Gradio's own status for a full queue; never a 500
            assert outcome.error.startswith("Queue is full. Max size is 3")
        assert all(s.wait(r).ok for s, r in accepted)  # what was accepted still completes
        faults.reset()
        assert clicker.click(40, 40).ok  # once drained, everyone is served again
        for s in (clicker, *sessions):
            s.close()


def test_D3_clicks_stay_fast_while_another_user_encodes(work, served, faults):
    faults.encoder.fault = stall_fault(2.0)
    uploader = RawSession(served.url)
    pending = uploader.submit("load_image", [file_data(uploader.upload(png_bytes(smooth_rgb(96, 128, 7)), "e.png")),
                                             0.5, True])
    time.sleep(0.2)
    latencies = []
    for k in range(8):
        outcome = work.session.click(20 + 10 * k, 100)
        assert outcome.ok
        latencies.append(outcome.seconds)
    assert max(latencies) < 1.0, latencies  # the edit queue never waits for the encoder
    assert uploader.wait(pending).ok
    uploader.close()


def test_D5_cache_folders_are_bounded_by_age(served, tmp_path, monkeypatch):
    assert served.demo.delete_cache == (600, 3600)  # Gradio deletes uploads and outputs older than an hour
    monkeypatch.setattr(app, "EXPORT_ROOT", tmp_path)
    old, new = tmp_path / "export-old", tmp_path / "export-new"
    old.mkdir()
    new.mkdir()
    hour_ago = time.time() - app.EXPORT_MAX_AGE_S - 60
    os.utime(old, (hour_ago, hour_ago))
    app._prune_exports()
    assert not old.exists() and new.exists()


def test_D6_no_cpu_oversubscription_by_construction(served, switchable_predictor):
    by_queue = {}
    for fn in served.demo.fns.values():
        if fn.concurrency_id in (app.ENCODE_QUEUE, app.EDIT_QUEUE, app.EXPORT_QUEUE):
            by_queue.setdefault(fn.concurrency_id, set()).add(fn.concurrency_limit)
    assert by_queue[app.ENCODE_QUEUE] == {1} and by_queue[app.EDIT_QUEUE] == {1}
    predictor = switchable_predictor[0]
    for session in (predictor._encoder, predictor._decoder):
        options = session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert options.inter_op_num_threads == 1
        assert options.intra_op_num_threads <= (os.cpu_count() or 1)


@pytest.mark.parametrize("row", ["D4"])
def test_D4_is_the_load_run(row):
    """D4 (memory plateau under load) is asserted by tests/load/test_load_short.py."""
    from tests.load import test_load_short

    assert hasattr(test_load_short, "test_short_load_run_has_no_errors_and_a_bounded_memory_plateau")
