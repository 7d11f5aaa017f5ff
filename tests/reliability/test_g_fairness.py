"""Rows G1-G6 (issue 10): one user's work never holds another's, every request is bounded, and the malformed
values listed in issue 10 get a specific message, change nothing and log one line. Real servers on
127.0.0.1, driven with raw HTTP (``pytest tests/reliability -k G1_``).

Timing assertions are ratios between two users measured in the same test, idle and busy rounds interleaved so
that the machine's load (2 shared cores) affects both alike; each test waits for a server-side signal that the
other user's job really runs (``Watch``) before it measures. bench/bench_fairness.py measures the numbers on the
full-size model with the same scenarios (tools/scenarios.py).
"""

from __future__ import annotations

import gc
import json
import logging
import select
import socket
import time

import httpx
import numpy as np
import pytest

from sam_demo.bundle import PROMPTS_FILE_FORMAT
from sam_demo.gradio_guard import MAX_BODY_BYTES, MSG_BODY_TOO_LARGE, MSG_TOO_DEEP
from sam_demo.limits import MAX_JSON_DEPTH
from tests.reliability.conftest import PHOTO_HW, Watch, assert_message, png_bytes, smooth_rgb, stall_fault
from tests.reliability.test_c_sessions import rss_mb
from tools.rawapi import RawSession, file_data
from tools.scenarios import BusyUser, Clicker, deep_body, interleaved_rounds, oversized_body, prompts_file

H, W = PHOTO_HW
DECODER_STALL_S = 0.004
"""Extra time per decoder call in the tests that need a long job: 255 objects then take more than a second."""
FULL_SIZE_DECODE_S = 0.025
"""G2's decoder calls take as long as the full-size model's (20-26 ms on 2 cores, bench/README.md), so that a click
is mostly decoder time, as README's fairness table measures it, not mostly Gradio's own overhead (a sleep: the
time a piece holds the turn, without taking CPU from B)."""
FAIR_CLICK_RATIO = 3.0
"""README, "Fair to every user": B's click p95 while A clicks back to back stays within this of its idle p95, and
A's median click within this of B's median click in the same busy rounds. Measured here: p95 ratio 1.41-2.61 over seven runs at load
average 10 (the full-size stand-in: 1.10-1.82, README's table); a click that waited for A's queue of clicks
would exceed it many times over."""
G2_ROUNDS, G2_CLICKS = 3, 10
BUSY_FINISH_S = 60.0
"""Longest wait for user A's running action to end once told to stop (a click or two on the analytic models)."""


def clicker(url: str, seed: int) -> Clicker:
    return Clicker.open(url, png_bytes(smooth_rgb(H, W, seed=seed)), PHOTO_HW, seed=seed)


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


def test_G1_a_256_object_load_by_one_user_does_not_hold_another_users_clicks(served, faults):
    b = clicker(served.url, 40)
    idle = b.clicks(6)
    a = clicker(served.url, 41)
    watch = faults.decoder.fault = Watch(stall_fault(DECODER_STALL_S))
    path = a.session.upload(prompts_file(256, 32, PHOTO_HW, seed=1), "a.json")
    pending = a.session.submit("load_prompts", [None, file_data(path), 0.5, True])  # queue/join: the state slot too
    watch.wait_for(a.session.session_hash)  # A's load is decoding: B's clicks meet it
    busy = b.clicks(6)
    assert watch.calls[a.session.session_hash] < 255, "A's load ended before B's clicks: nothing was measured"
    loaded = a.session.wait(pending)
    assert loaded.ok, loaded
    assert len(a.session.snapshot().objects) == 256
    # With one edit queue for everyone, B's first click waited for A's whole load (issue 10: 27 s).
    # Here B's clicks run between the pieces of A's load: all of them end long before it does.
    assert sum(busy) < loaded.seconds and max(busy) < loaded.seconds / 4, (idle, busy, loaded.seconds)
    for user in (a, b):
        user.close()


def test_G2_clicks_of_a_user_holding_256_objects_cost_one_object_and_do_not_slow_others(served, faults):
    """User A holds 256 objects and clicks back to back while user B clicks: B's p95 stays within
    FAIR_CLICK_RATIO of its idle p95 (idle and busy rounds interleaved), and A's own clicks cost one object."""
    a = clicker(served.url, 42)
    path = a.session.upload(prompts_file(256, 32, PHOTO_HW, seed=2), "a.json")
    assert a.session.call("load_prompts", [file_data(path), 0.5, True]).ok
    first = a.session.click(10, 10)
    assert first.ok and "decode" in a.session.status()
    assert a.session.click(20, 12).ok
    a.points = 2
    b = clicker(served.url, 43)
    watch = faults.decoder.fault = Watch(stall_fault(FULL_SIZE_DECODE_S))

    def ready(user: BusyUser) -> None:  # A's clicking has reached the decoder
        watch.wait_for(a.session.session_hash, watch.calls[a.session.session_hash] + 1)

    rounds = interleaved_rounds(b, lambda k: BusyUser(a, "click", seed=9 + k), rounds=G2_ROUNDS, clicks=G2_CLICKS,
                                ready=ready, finish_s=BUSY_FINISH_S)
    assert not rounds.a_errors and len(rounds.a_times) >= G2_ROUNDS, rounds
    ms = {name: [round(t * 1e3) for t in times] for name, times in vars(rounds).items() if name != "a_errors"}
    assert p95(rounds.busy) <= FAIR_CLICK_RATIO * p95(rounds.idle), ms
    # A's own clicks stay interactive: one object decoded and drawn over a cached background of 255. Compared with
    # B's clicks in the same busy rounds (both share the two cores then; 256 decodes would cost 6.4 s of stalls
    # alone): against B's idle clicks CI at load 12 measured 3.2x (A 315 ms, B idle 99 ms, B busy ~180 ms).
    assert np.median(rounds.a_times) <= FAIR_CLICK_RATIO * np.median(rounds.busy), ms
    for user in (a, b):
        user.close()


def test_G3_segment_has_its_own_queue_and_never_holds_an_upload(served, faults):
    a = RawSession(served.url)
    image = a.upload(png_bytes(smooth_rgb(H, W, seed=44)), "a.png")
    assert a.call("segment", [file_data(image), [{"points": [[5, 5, 1]]}]]).ok  # encoded once, cached
    watch = faults.decoder.fault = Watch(stall_fault(DECODER_STALL_S))
    objects = [{"points": [[float(x % W), float(x // W % H), 1]]} for x in range(0, 256 * 37, 37)]
    pending = a.submit("segment", [file_data(image), objects])
    watch.wait_for(a.session_hash)  # A's /segment is decoding
    b = RawSession(served.url)
    uploaded = b.load_bytes(png_bytes(smooth_rgb(H, W, seed=45)))
    assert uploaded.ok
    assert watch.calls[a.session_hash] < 256, "A's /segment ended before B's upload: nothing was measured"
    answer = a.wait(pending)
    assert answer.ok and len(answer.data[0]["objects"]) == 256
    assert uploaded.seconds < answer.seconds, (uploaded.seconds, answer.seconds)
    for s in (a, b):
        s.close()


REFUSAL_DEADLINE_S = 2.0
"""Issue #10's bound for refusing an oversized body. Measured: at most 0.01 s (``python -m bench.bench_limits``),
so the bound holds with a 200x margin however busy the machine is."""


def test_G4_a_30_mb_body_is_refused_at_once_and_memory_stays(served):
    body = b'{"data": [' + b"1," * (15 * 1024 * 1024) + b'1], "session_hash": "g4"}'
    assert len(body) > 30_000_000
    url = served.url.rstrip("/")
    with httpx.Client(timeout=30) as http:
        http.post(f"{url}/gradio_api/call/segment", content=body[:1000], headers={"content-type": "application/json"})
        gc.collect()
        before = rss_mb()
        for _ in range(5):
            started = time.perf_counter()
            response = http.post(f"{url}/gradio_api/call/segment", content=body,
                                 headers={"content-type": "application/json"})
            assert response.status_code == 413 and time.perf_counter() - started < REFUSAL_DEADLINE_S
            assert response.json()["detail"].startswith("The request is larger than 2 MB")
        # Without a Content-Length (chunked), the body is read up to the limit, then refused.
        chunks = (body[i:i + (1 << 20)] for i in range(0, len(body), 1 << 20))
        response = http.post(f"{url}/gradio_api/queue/join", content=chunks,
                             headers={"content-type": "application/json"})
        assert response.status_code == 413
        gc.collect()
        assert rss_mb() - before < 100, (before, rss_mb())
        deep = b'{"data": ' + b"[" * 50_000 + b"]" * 50_000 + b', "session_hash": "g4"}'
        assert len(deep) < MAX_BODY_BYTES
        response = http.post(f"{url}/gradio_api/call/segment", content=deep,
                             headers={"content-type": "application/json"})
        assert response.status_code == 400 and "nested more than 32 levels" in response.json()["detail"]
        # A legal size but 300,000 values: refused before Gradio parses and walks them on its event loop.
        many = json.dumps({"data": [None, [{"points": [[1, 1, 1]] * 100_000}]], "session_hash": "g4"})
        assert len(many) < MAX_BODY_BYTES
        started = time.perf_counter()
        response = http.post(f"{url}/gradio_api/call/segment", content=many,
                             headers={"content-type": "application/json"})
        assert response.status_code == 413 and "holds more than 50,000 values" in response.json()["detail"]
        assert time.perf_counter() - started < REFUSAL_DEADLINE_S
    assert clicker(served.url, 46).click()  # and the server serves on


BODY_ROUTES = ("/gradio_api/call/segment", "/gradio_api/queue/join", "/gradio_api/call/upload",
               "/gradio_api/run/segment", "/gradio_api/component_server")
"""POST routes that parse a JSON body (an API named "upload" is one like the others)."""
SOCKET_CHUNK = 64 * 1024
SENT_BEYOND_LIMIT_BOUND = 8 * 1024 * 1024
"""A chunked 30 MB body must be answered before the client has sent more than this past the 2 MB limit: the
loopback's socket buffers (a few MB), not the body. Measured: the answer comes after ~2.5 MB."""


def _post(url: str, body: bytes, content_type: str | None = "application/json", chunked: bool = False) -> str:
    """``"<status> <body>"`` of the answer."""
    headers = {} if content_type is None else {"content-type": content_type}
    content = (body[i:i + SOCKET_CHUNK] for i in range(0, len(body), SOCKET_CHUNK)) if chunked else body
    with httpx.Client(timeout=30) as http:
        response = http.post(url, content=content, headers=headers)
        return f"{response.status_code} {response.text}"


@pytest.mark.parametrize("route", BODY_ROUTES)
def test_G7_body_limits_hold_at_the_boundary_by_every_route_and_content_type(served, route):
    url = served.url.rstrip("/") + route
    at_limit = b'{"data": [], "session_hash": "g7"}'
    at_limit += b" " * (MAX_BODY_BYTES - len(at_limit))
    too_large = f'413 {{"detail": {json.dumps(MSG_BODY_TOO_LARGE)}'
    too_deep = f'400 {{"detail": {json.dumps(MSG_TOO_DEEP)}' 
    for chunked in (False, True):
        assert not _post(url, at_limit, chunked=chunked).startswith("413")  # Gradio's own answer
        assert _post(url, at_limit + b" ", chunked=chunked).startswith(too_large)
    for content_type in ("application/json; charset=utf-8", "Application/JSON", "text/plain", None):
        assert too_deep in _post(url, deep_body(MAX_JSON_DEPTH), content_type), content_type  # the body: one more
        assert MSG_TOO_DEEP not in _post(url, deep_body(MAX_JSON_DEPTH - 1), content_type), content_type


def test_G7_a_chunked_body_is_refused_before_the_client_has_sent_it(served):
    """A 30 MB body without a Content-Length, sent in 64 kB chunks over a raw socket: the 413 arrives while most
    of it is still unsent (the server reads no further than the limit plus what sits in socket buffers).

    The server closes the connection after its answer, so a send can meet a reset; what was sent is counted by
    the bytes the socket accepted (``send``'s count, never a half-sent ``sendall``), and the answer is read after.
    """
    host, port = served.url.split("//")[1].rstrip("/").split(":")
    body = oversized_body(30 * 1024 * 1024)
    stream = memoryview(b"".join(f"{len(body[i:i + SOCKET_CHUNK]):x}\r\n".encode() + body[i:i + SOCKET_CHUNK]
                                 + b"\r\n" for i in range(0, len(body), SOCKET_CHUNK)) + b"0\r\n\r\n")
    sent = 0
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"POST /gradio_api/queue/join HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        sock.setblocking(False)
        while sent < len(stream):
            readable, writable, _ = select.select([sock], [sock], [], 30)
            if readable:
                break
            assert writable, "the server neither read nor answered in 30 s"
            try:
                sent += sock.send(stream[sent:sent + SOCKET_CHUNK])
            except BlockingIOError:
                continue  # the buffers are full: wait for the answer
            except (BrokenPipeError, ConnectionResetError):
                break  # the server answered and closed: read its answer
        sock.settimeout(30)
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < MAX_BODY_BYTES + SENT_BEYOND_LIMIT_BOUND, sent


PROMPTS_FILE_CASES = {
    "id-beyond-64-bits": ({"id": 10**40}, r"^Object 1: 'id' must be a whole number from 1 to 2147483647, got 1000"),
    "id-true": ({"id": True}, r"^Object 1: 'id' must be a whole number .*, got True\.$"),
    "candidate-true": ({"candidate": True}, r"^Object 1: mask choice must be 0, 1, 2 or null, got True\.$"),
    "candidate-float": ({"candidate": 1.0}, r"^Object 1: mask choice must be 0, 1, 2 or null, got 1\.0\.$"),
    "point-10**400": ({"points": [[10**400, 5, 1]]}, r"^Object 1: Point x must be a finite number, got 1000"),
    "image-string": ({"image": "x"}, r"'image' must hold the image's width and height"),
    "image-list": ({"image": [1, 2]}, r"'image' must hold the image's width and height"),
    "sizes-as-strings": ({"image": {"width": str(W), "height": str(H)}},
                         rf"image width must be a whole number of pixels, got '{W}'"),
    "deep-nesting": ({"points": "DEEP"}, r"^The prompts file is nested more than 32 levels deep\.$"),
    "empty-file": (None, r"^The prompts file is empty\.$"),
}


@pytest.mark.parametrize("case", list(PROMPTS_FILE_CASES))
def test_G5_malformed_prompts_files_get_a_message_change_nothing_and_log_one_line(work, case, caplog):
    change, pattern = PROMPTS_FILE_CASES[case]
    session = work.session
    if change is None:
        data = b""
    else:
        item = {"id": 1, "points": [[10, 10, 1]], **{k: v for k, v in change.items() if k != "image"}}
        document = {"format": PROMPTS_FILE_FORMAT, "image": change.get("image", {"width": W, "height": H}),
                    "objects": [item]}
        data = json.dumps(document).encode().replace(b'"DEEP"', b"[" * 5000 + b"]" * 5000)
    path = session.upload(data, "prompts.json")
    with caplog.at_level(logging.INFO, logger="sam_app"):
        assert_message(session.call("load_prompts", [file_data(path), 0.5, True]), pattern)
    refusals = [r for r in caplog.records if r.name == "sam_app" and "load_prompts" in r.getMessage()]
    assert len(refusals) == 1 and refusals[0].levelno == logging.INFO and not refusals[0].exc_info
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    work.assert_unchanged()
    assert session.click(30, 30).ok  # the page keeps working (an id >= 2**64 used to kill it)


SEGMENT_CASES = {
    "coordinate-10**400": ([file_data("IMAGE"), [{"points": [[10**400, 5, 1]]}]],
                           r"^Point x must be a finite number, got 1000"),
    "nested-array-string": ([file_data("IMAGE"), "[" * 100_000], r"^The prompts value is nested more than 32 levels"),
    "string-as-image": (["/etc/hostname", [{"points": [[5, 5, 1]]}]], r"^Send the image as a file upload"),
    "missing-argument": ([file_data("IMAGE")], r"^/segment takes 2 values \(image, prompts\), then optionally format "
                                               r"and tolerance; the request has fewer"),
    "no-image": ([None, [{"points": [[5, 5, 1]]}]], r"^Send an image\.$"),
    "too-much-mask-area": ([file_data("BIG"), [{"points": [[5, 5, 1]]}] * 256],
                           r"^256 masks of a 2000×1500 image are 768 megapixels; one request may ask for 512\. "
                           r"Send at most 170 objects"),
}


@pytest.mark.parametrize("case", list(SEGMENT_CASES))
def test_G6_malformed_segment_calls_get_a_message_and_log_one_line(work, case, caplog):
    data, pattern = SEGMENT_CASES[case]
    session = work.session
    image = session.upload(png_bytes(smooth_rgb(H, W, seed=3)), "p.png")
    big = session.upload(png_bytes(smooth_rgb(1500, 2000, seed=3)), "big.png") if case == "too-much-mask-area" \
        else None
    data = [dict(v, path=image if v["path"] == "IMAGE" else big) if isinstance(v, dict) and "path" in v else v
            for v in data]
    with caplog.at_level(logging.INFO, logger="sam_app"):
        assert_message(session.call("segment", data), pattern)
    refusals = [r for r in caplog.records if r.name == "sam_app" and "segment" in r.getMessage()]
    assert len(refusals) == 1 and not refusals[0].exc_info, [r.getMessage() for r in refusals]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    work.assert_unchanged()
