"""Every request limit at its boundary, by every route a body can take (issue 21).

:class:`sam_demo.gradio_guard.RequestLimits` is driven as the ASGI middleware it is, with a counting
``receive`` (so "refused before a byte is read" and "after at most one chunk past the limit" are
counted, not timed), and :class:`~sam_demo.gradio_guard.SessionOrder`'s waiting caps are filled to
exactly their size. ``tests/reliability/test_g_fairness.py`` sends the same requests to the served app.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import gradio as gr
import pytest

from sam_demo import gradio_guard
from sam_demo.gradio_guard import (
    MAX_BODY_BYTES,
    MSG_BODY_TOO_LARGE,
    MSG_BUSY,
    MSG_TOO_DEEP,
    MSG_TOO_MANY_PENDING,
    MSG_TOO_MANY_VALUES,
    RequestLimits,
    SessionOrder,
)
from sam_demo.limits import MAX_JSON_DEPTH, MAX_JSON_VALUES, json_shape

CHUNK = 64 * 1024
"""Bytes per chunk of a body sent without a Content-Length (uvicorn hands bodies over in pieces of this order)."""
JSON = b"application/json"


def run(coroutine):
    """``asyncio.run`` in a thread of its own: the browser tests' Playwright keeps an event loop running in the
    main thread for the whole session, where ``asyncio.run`` refuses to start another."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


class App:
    """The wrapped application: records the body it was given (so a pass-through can be told from a refusal)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope, receive, send) -> None:
        message = await receive()
        self.bodies.append(message["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def request(body: bytes, *, content_type: bytes | None = JSON, chunk: int | None = None,
            path: str = "/gradio_api/queue/join") -> tuple[int, dict, App, int]:
    """Send ``body`` through the middleware; ``(status, JSON answer or {}, app, receive() calls)``.

    With ``chunk`` the body comes in pieces of that size without a Content-Length (chunked transfer).
    """
    app = App()
    pieces = [body[i:i + chunk] for i in range(0, len(body), chunk)] if chunk else [body]
    calls = 0

    async def receive():
        nonlocal calls
        calls += 1
        if calls > len(pieces):
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": pieces[calls - 1], "more_body": calls < len(pieces)}

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    headers = [] if content_type is None else [(b"content-type", content_type)]
    if not chunk:
        headers.append((b"content-length", str(len(body)).encode()))
    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    run(RequestLimits(app)(scope, receive, send))
    status = sent[0]["status"]
    answer = json.loads(sent[1]["body"]) if status != 200 else {}
    return status, answer, app, calls


def padded(size: int) -> bytes:
    """A JSON body of exactly ``size`` bytes (spaces after a small object)."""
    head = b'{"data": [], "session_hash": "x"}'
    return head + b" " * (size - len(head))


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def values(count: int) -> bytes:
    """A JSON list holding ``count`` values in all (the list itself and ``count - 1`` numbers)."""
    return b"[" + b",".join([b"1"] * (count - 1)) + b"]"


def test_the_helpers_build_exactly_the_boundary():
    assert len(padded(MAX_BODY_BYTES)) == MAX_BODY_BYTES
    assert json_shape(nested(MAX_JSON_DEPTH)).depth == MAX_JSON_DEPTH
    assert json_shape(values(MAX_JSON_VALUES)).values == MAX_JSON_VALUES
    assert json.loads(values(5)) == [1, 1, 1, 1]


@pytest.mark.parametrize("chunk", [None, CHUNK], ids=["content-length", "chunked"])
def test_a_body_of_exactly_the_limit_passes_and_one_byte_more_is_refused(chunk):
    status, _, app, _ = request(padded(MAX_BODY_BYTES), chunk=chunk)
    assert status == 200 and app.bodies == [padded(MAX_BODY_BYTES)]
    status, answer, app, _ = request(padded(MAX_BODY_BYTES + 1), chunk=chunk)
    assert status == 413 and answer["detail"] == MSG_BODY_TOO_LARGE and not app.bodies


def test_a_declared_length_over_the_limit_is_refused_before_a_byte_is_read():
    status, answer, app, calls = request(padded(MAX_BODY_BYTES + 1))
    assert (status, calls) == (413, 0) and answer["error"] == MSG_BODY_TOO_LARGE


def test_a_chunked_body_is_refused_on_the_chunk_that_passes_the_limit():
    """30 MB in 64 kB chunks: the refusal comes with the first chunk past 2 MB; the rest is never read."""
    status, _, app, calls = request(b"1" * (30 * 1024 * 1024), chunk=CHUNK)
    assert status == 413 and not app.bodies
    assert calls == MAX_BODY_BYTES // CHUNK + 1, calls


@pytest.mark.parametrize("content_type", [
    JSON, b"application/json; charset=utf-8", b"application/json;charset=UTF-8", b"Application/JSON",
    b"application/vnd.api+json", b"text/plain", None,
], ids=["json", "charset", "charset-no-space", "upper-case", "plus-json", "text-plain", "none"])
@pytest.mark.parametrize("chunk", [None, CHUNK], ids=["content-length", "chunked"])
def test_depth_and_value_limits_hold_for_every_content_type_at_the_boundary(content_type, chunk):
    """FastAPI parses JSON with any case and parameters of the type, and without one; Gradio's component route
    parses any body that is not multipart. So every such body is checked, whatever it says it is."""
    for body, too_many, status_over, message in ((nested, MAX_JSON_DEPTH, 400, MSG_TOO_DEEP),
                                                 (values, MAX_JSON_VALUES, 413, MSG_TOO_MANY_VALUES)):
        status, _, app, _ = request(body(too_many), content_type=content_type, chunk=chunk)
        assert status == 200 and app.bodies == [body(too_many)]
        status, answer, app, _ = request(body(too_many + 1), content_type=content_type, chunk=chunk)
        assert (status, answer.get("detail")) == (status_over, message) and not app.bodies


def test_only_gradios_own_upload_route_skips_the_body_limits():
    """Uploads stream to disk under ``max_file_size``; any other path ending in /upload (an API named "upload")
    is a JSON route like the others."""
    big = padded(MAX_BODY_BYTES + 1)
    assert request(big, content_type=b"multipart/form-data; boundary=x", path="/gradio_api/upload")[0] == 200
    for path in ("/gradio_api/call/upload", "/gradio_api/run/upload", "/upload"):
        assert request(big, path=path)[0] == 413, path
        assert request(nested(MAX_JSON_DEPTH + 1), path=path)[0] == 400, path


def test_multipart_bodies_are_not_read_as_json():
    """A multipart form (Gradio's component route takes them) may hold any bytes: only its size is bounded."""
    status, _, app, _ = request(nested(MAX_JSON_DEPTH + 1), content_type=b"multipart/form-data; boundary=x",
                                path="/gradio_api/component_server")
    assert status == 200 and app.bodies


# ---------------------------------------------------------------------------- waiting caps
async def _fill(order: SessionOrder, tabs: dict[str, int]) -> tuple[asyncio.Event, list[asyncio.Task]]:
    """Start ``count`` events per tab; each tab's first runs and holds until the returned event is set."""
    release = asyncio.Event()

    async def event(tab: str) -> None:
        async with order.turn(tab):
            await release.wait()

    tasks = [asyncio.create_task(event(tab)) for tab, count in tabs.items() for _ in range(count)]
    await asyncio.sleep(0)  # every task enters turn() (and counts) before its first await
    return release, tasks


async def _refused(order: SessionOrder, tab: str) -> str | None:
    try:
        async with order.turn(tab):
            return None
    except gr.Error as exc:
        return exc.message


def test_a_tab_may_have_exactly_its_cap_of_events_waiting_and_the_next_gets_the_message():
    async def scenario():
        order = SessionOrder()
        cap = gradio_guard.MAX_PENDING_PER_SESSION
        release, tasks = await _fill(order, {"tab": cap - 1})
        assert await _refused(order, "other") is None  # another tab is not held by this one
        extra = asyncio.create_task(_refused(order, "tab"))  # the cap-th event: accepted, waits its turn
        await asyncio.sleep(0)
        assert order.pending("tab") == cap
        assert await _refused(order, "tab") == MSG_TOO_MANY_PENDING
        release.set()
        await asyncio.gather(*tasks)
        assert await extra is None
        assert order.pending("tab") == 0 and order._total == 0  # every slot came back
        assert await _refused(order, "tab") is None

    run(scenario())


def test_all_tabs_together_may_have_exactly_the_global_cap_waiting_and_the_next_gets_the_message():
    async def scenario():
        order = SessionOrder()
        per_tab = gradio_guard.MAX_PENDING_PER_SESSION
        full = gradio_guard.MAX_PENDING_IN_ALL // per_tab - 1
        half = per_tab // 2  # two tabs under their own cap make up the rest
        release, tasks = await _fill(order, {**{f"tab{k}": per_tab for k in range(full)}, "p": half, "q": half})
        assert order._total == gradio_guard.MAX_PENDING_IN_ALL  # every one of them accepted
        assert await _refused(order, "one more tab") == MSG_BUSY
        assert await _refused(order, "p") == MSG_BUSY  # under its own cap, over the global one
        release.set()
        await asyncio.gather(*tasks)
        assert order._total == 0 and await _refused(order, "p") is None

    run(scenario())


def test_an_event_that_fails_inside_its_turn_gives_the_turn_to_the_tabs_next_event():
    async def scenario():
        order = SessionOrder()
        ran: list[str] = []

        async def failing():
            async with order.turn("tab"):
                raise RuntimeError("the handler failed")

        async def next_event():
            async with order.turn("tab"):
                ran.append("next")

        first = asyncio.create_task(failing())
        second = asyncio.create_task(next_event())
        done, _ = await asyncio.wait({first, second}, timeout=5)
        assert done == {first, second} and ran == ["next"]
        assert isinstance(first.exception(), RuntimeError) and order.pending("tab") == 0

    run(scenario())
