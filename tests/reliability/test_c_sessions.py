"""Rows C1-C6 of docs/reliability.md: sessions, memory per session, forged state, shared hashes.

``pytest tests/reliability -k C1_``.
"""

from __future__ import annotations

import gc
import os
import pickle
import shutil
import threading
import time

import gradio as gr
import pytest

import app
from sam_demo.service import SegmentationService
from tests.reliability.conftest import assert_message, png_bytes, serve, smooth_rgb, stall_fault, start_work
from tests.reliability.test_a_uploads import CACHE_HIT_DEADLINE_S
from tools.rawapi import RawSession, file_data, prompt_data

MB = 1024 * 1024
SMALL_CACHE_MB = 64           # ~3 images: 30 sessions must not keep 30 embeddings
EMBEDDING_MB = 17             # what one image's encoder output costs
SESSION_RSS_SLACK_MB = 100    # Gradio's per-session bookkeeping (~0.25 MB each) and allocator noise
STATE_VALUE_MAX_BYTES = 64 * 1024


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def small_cache(switchable_predictor):
    service = SegmentationService(switchable_predictor[0], image_cache_mb=SMALL_CACHE_MB)
    with serve(service) as served:
        yield served


def open_session(url: str, seed: int, hw=(120, 160)) -> RawSession:
    session = RawSession(url)
    assert session.load_bytes(png_bytes(smooth_rgb(*hw, seed=seed)), f"img{seed}.png").ok
    return session


def test_C1_api_callers_that_never_heartbeat_cannot_grow_memory_past_the_caps(small_cache):
    url, demo, service = small_cache.url, small_cache.demo, small_cache.service
    for seed in range(3):  # warm up: first uploads, first JPEG outputs, thread pools
        open_session(url, 1000 + seed).close()
    gc.collect()
    before = rss_mb()
    sessions = 30
    for seed in range(sessions):  # each a new session_hash, its own image, and never a heartbeat
        session = open_session(url, seed)
        assert session.click(50, 50).ok
        session.close()
    gc.collect()
    grown = rss_mb() - before
    unbounded = sessions * EMBEDDING_MB
    assert grown < SMALL_CACHE_MB + SESSION_RSS_SLACK_MB < unbounded, f"RSS grew {grown:.0f} MB"
    stats = service.cache_stats()["images"]
    assert stats["bytes"] <= SMALL_CACHE_MB * MB and stats["entries"] <= SMALL_CACHE_MB // EMBEDDING_MB
    # Per-session state holds small values only (an image record and the editor), never arrays.
    values = [v for s in demo.state_holder.session_data.values() for v in s.state_data.values() if v is not None]
    assert values and max(len(pickle.dumps(v)) for v in values) < STATE_VALUE_MAX_BYTES
    # ... expires an hour after its last use, and at most this many sessions are held.
    states = [b for b in demo.blocks.values() if isinstance(b, gr.State)]
    assert states and all(s.time_to_live == app.STATE_TTL_S for s in states)
    capacity = app.launch_kwargs("127.0.0.1", 1)["state_session_capacity"]
    assert demo.state_session_capacity == capacity <= 1000


def test_C2_evicted_image_is_encoded_again_transparently(switchable_predictor):
    service = SegmentationService(switchable_predictor[0], image_cache_mb=20)  # room for one image
    with serve(service) as served:
        a = open_session(served.url, seed=1)
        assert a.click(40, 40).ok
        before = a.snapshot()
        b = open_session(served.url, seed=2)  # evicts a's image
        assert service.cache_stats()["images"]["entries"] == 1
        misses = service.cache_stats()["images"]["misses"]
        assert a.click(100, 80).ok  # a keeps clicking: encoded again, no error
        assert service.cache_stats()["images"]["misses"] > misses
        after = a.snapshot()
        assert after.objects[0]["points"] == before.objects[0]["points"] + [[100.0, 80.0, 1]]
        assert a.call("undo", [0.5, True]).ok
        before.assert_same(a.snapshot())
        a.close()
        b.close()


def test_C2_image_gone_from_the_server_asks_for_a_new_upload_and_keeps_the_work(switchable_predictor):
    service = SegmentationService(switchable_predictor[0], image_cache_mb=20)
    with serve(service) as served:
        a = RawSession(served.url)
        path = a.upload(png_bytes(smooth_rgb(120, 160, seed=5)), "mine.png")
        assert a.load(path).ok and a.click(40, 40).ok
        before = a.snapshot()
        open_session(served.url, seed=6).close()  # evicts a's image
        kept = path + ".kept"
        shutil.move(path, kept)  # e.g. Gradio's delete_cache removed the upload
        try:
            assert_message(a.click(100, 80), r"^This image is no longer on the server; please upload it again\.$")
        finally:
            shutil.move(kept, path)
        before.assert_same(a.snapshot())  # the prompts were never lost
        a.close()


def test_C3_state_cannot_be_sent_by_a_client(work, served):
    raw = RawSession(served.url)  # a fresh session, next to the one with work in it
    info = raw.http.get("/gradio_api/info").json()
    for name, endpoint in info["named_endpoints"].items():
        for parameter in endpoint["parameters"]:
            assert "state" not in (parameter.get("component") or "").lower(), (name, parameter)
    forged = {"record": {"key": "0" * 64, "path": "/etc/passwd", "display": {"original_hw": [9, 9]}},
              "editor": None}
    # The full-length form of /click's inputs has a slot for the state; Gradio fills it from the server.
    full = [forged, 10, 10, app.MODE_POSITIVE, 0.5, True]
    assert_message(raw.call("click", full), r"^Upload an image first")
    assert_message(raw.join("ui_click", [forged, app.MODE_POSITIVE, 0.5, True],
                            event_data={"index": [5, 5], "value": None}), r"^Upload an image first")
    outcome = work.session.call("click", [forged, 10, 10, app.MODE_POSITIVE, 0.5, True])
    assert outcome.ok and "160×120" in work.session.status()  # the server's record, not the forged one
    assert work.session.call("undo", [0.5, True]).ok
    work.assert_unchanged()
    raw.close()


def test_C4_a_session_hash_is_not_a_secret_but_one_session_cannot_exceed_the_caps(small_cache):
    service = small_cache.service
    owner = open_session(small_cache.url, seed=40)
    assert owner.click(50, 50).ok
    # Another client that knows (or guesses) the hash shares the session: hashes are not authentication,
    # so nothing secret is kept in State (documented in README.md, "Limits and security").
    same = RawSession(small_cache.url, session_hash=owner.session_hash)
    assert same.call("select_object", [1, 0.5, True]).ok and "IoU" in same.output("objects_html")
    other = RawSession(small_cache.url)
    assert_message(other.call("undo", [0.5, True]), r"^Upload an image first")
    # One session flooding uploads: the cache stays within its cap, the session keeps one small state.
    for seed in range(8):
        assert same.load_bytes(png_bytes(smooth_rgb(120, 160, seed=50 + seed)), "flood.png").ok
    assert service.cache_stats()["images"]["bytes"] <= SMALL_CACHE_MB * MB
    state = small_cache.demo.state_holder.session_data[owner.session_hash]
    assert max(len(pickle.dumps(v)) for v in state.state_data.values()) < STATE_VALUE_MAX_BYTES
    for s in (owner, same, other):
        s.close()


def test_C5_two_tabs_on_one_session_clicking_at_once_lose_nothing(work):
    session = work.session
    tab_a = [(10 + 9 * k, 20) for k in range(8)]
    tab_b = [(10 + 9 * k, 90) for k in range(8)]
    ids: list[str] = []
    lock = threading.Lock()

    def tab(clicks):
        for xy in clicks:
            event = session.submit("ui_click", [None, app.MODE_POSITIVE, 0.5, True],
                                   event_data=prompt_data(list(xy)))
            with lock:
                ids.append(event)

    threads = [threading.Thread(target=tab, args=(c,)) for c in (tab_a, tab_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    outcomes = session.collect(ids)
    assert all(o.ok for o in outcomes.values())
    points = [tuple(p[:2]) for p in session.snapshot().objects[0]["points"]]
    assert points[:2] == [(60, 50), (75, 50)]
    assert sorted(points[2:]) == sorted(tab_a + tab_b)  # each click exactly once
    assert [p for p in points if p in tab_a] == tab_a and [p for p in points if p in tab_b] == tab_b  # in order


def test_C6_refresh_during_an_encode_starts_an_empty_session_and_reuses_the_encoding(served, faults):
    faults.encoder.fault = stall_fault(0.5)
    old_tab = RawSession(served.url)
    path = old_tab.upload(png_bytes(smooth_rgb(120, 160, seed=60)), "refresh.png")
    pending = old_tab.submit("ui_open_image", [file_data(path), None])
    new_tab = RawSession(served.url)  # the reloaded page: a new session hash
    assert_message(new_tab.click(10, 10), r"^Upload an image first")
    assert old_tab.wait(pending).ok
    faults.reset()
    started = time.perf_counter()
    assert new_tab.load(path).ok
    assert time.perf_counter() - started < CACHE_HIT_DEADLINE_S and "cached" in new_tab.status()
    assert "IoU" not in new_tab.output("objects_html")
    old_tab.close()
    new_tab.close()


def test_C_rows_use_a_fresh_session_per_start_work(raw, photo_bytes, served):
    """Guard for the fixtures above: two works never share state."""
    with RawSession(served.url) as other:
        first, second = start_work(raw, photo_bytes), start_work(other, photo_bytes)
        assert first.session.session_hash != second.session.session_hash
