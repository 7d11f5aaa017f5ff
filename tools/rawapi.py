"""A raw-HTTP client for the demo: what a script (or an attacker) can send, byte for byte.

``gradio_client`` validates and uploads for the caller; these tests need to send what it
never would (forged file paths, ``data:`` URLs, NaN, forged ``SelectData``) into the SAME
session a user works in, then check that the user's work is unchanged. Everything goes to
``127.0.0.1`` only.

Two Gradio routes are used (docs/reliability.md, "How the tests reach the app"):

* ``POST /gradio_api/call/<api>`` then ``GET /gradio_api/call/<api>/<event_id>``: the
  documented REST API (``event: complete`` / ``event: error`` server-sent events);
* ``POST /gradio_api/queue/join`` with ``fn_index`` (+ ``event_data``) then
  ``GET /gradio_api/queue/data?session_hash=...``: what the browser sends, the only way to
  reach the UI-only events (an upload's ``.change``, a click's ``.select``).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

import httpx
import numpy as np
from PIL import Image

import app

REQUEST_TIMEOUT_S = 60.0
FILE_META = {"_type": "gradio.FileData"}
OUTPUT_INDEX = {name: i for i, name in enumerate(app.OUTPUT_NAMES)}


@dataclass
class Outcome:
    """What the user sees for one event.

    Attributes:
        ok: the event completed.
        data: its outputs (``ok``) or the raw error payload.
        error: the message shown in the toast (``None`` = a bare "Error").
        status: HTTP status of the submitting request (200 unless Gradio refused it outright).
        seconds: wall time from submit to the final message.
    """

    ok: bool
    data: Any = None
    error: str | None = None
    status: int = 200
    seconds: float = 0.0

    def __repr__(self) -> str:  # short, for assertion messages
        return f"Outcome(ok={self.ok}, status={self.status}, error={self.error!r})"


@dataclass(frozen=True)
class Snapshot:
    """The parts of a session a user would notice losing: the picture with masks, the object list, the prompts."""

    overlay: np.ndarray
    objects_html: str
    objects: list = field(default_factory=list)

    def assert_same(self, other: Snapshot) -> None:
        assert self.overlay.shape == other.overlay.shape, "the displayed image changed size"
        assert np.array_equal(self.overlay, other.overlay), "the displayed image or its masks changed"
        assert self.objects_html == other.objects_html, "the object list changed"
        assert self.objects == other.objects, "the prompts changed"


def prompt_data(index: Any) -> Any:
    """The data of the view's ``prompt`` event for a click at ``index = [x, y]`` (other values: as they are)."""
    if isinstance(index, list) and len(index) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in index):
        return {"kind": "click", "x": index[0], "y": index[1]}
    return index


def file_data(path: str) -> dict:
    return {"path": path, "meta": FILE_META}


def fn_indices(base_url: str) -> dict[str, int]:
    """api_name -> fn_index, from the served config (private UI events included)."""
    config = httpx.get(base_url.rstrip("/") + "/config", timeout=REQUEST_TIMEOUT_S).json()
    return {d["api_name"]: d["id"] for d in config["dependencies"] if d.get("api_name")}


def _sse_events(text: str) -> list[tuple[str, Any]]:
    events = []
    for block in text.split("\n\n"):
        kind, payload = "message", None
        for line in block.splitlines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                payload = json.loads(line[5:].strip())
        if payload is not None or kind != "message":
            events.append((kind, payload))
    return events


class RawSession:
    """One browser tab's worth of session, driven with plain HTTP.

    Args:
        base_url: ``http://127.0.0.1:<port>/``.
        session_hash: reuse a hash (e.g. a ``gradio_client.Client``'s) or get a fresh one.
    """

    def __init__(self, base_url: str, session_hash: str | None = None) -> None:
        assert base_url.startswith(("http://127.0.0.1:", "http://localhost:")), base_url
        self.base = base_url.rstrip("/")
        self.session_hash = session_hash or secrets.token_hex(6)
        self.http = httpx.Client(base_url=self.base, timeout=REQUEST_TIMEOUT_S)
        self._fns: dict[str, int] | None = None
        self.last: list | None = None  # outputs of the last successful session event
        self._cond = threading.Condition()
        self._results: dict[str, Outcome] = {}
        self._submitted: dict[str, float] = {}
        self._reader: threading.Thread | None = None

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> RawSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def fns(self) -> dict[str, int]:
        if self._fns is None:
            self._fns = fn_indices(self.base)
        return self._fns

    # ------------------------------------------------------------------ transport
    def upload(self, data: bytes, name: str) -> str:
        """POST a file to /gradio_api/upload; returns its server path (raises on refusal)."""
        response = self.http.post("/gradio_api/upload", files={"files": (name, data)})
        response.raise_for_status()
        return response.json()[0]

    def call(self, api: str, data: list, *, raw_body: bytes | None = None) -> Outcome:
        """The documented REST route: ``/gradio_api/call/<api>`` in this session."""
        started = time.perf_counter()
        body = raw_body if raw_body is not None else json.dumps({"data": data, "session_hash": self.session_hash})
        response = self.http.post(f"/gradio_api/call/{api}", content=body,
                                  headers={"content-type": "application/json"})
        if response.status_code != 200:
            return Outcome(False, response.text, _detail(response), response.status_code,
                           time.perf_counter() - started)
        event_id = response.json()["event_id"]
        stream = self.http.get(f"/gradio_api/call/{api}/{event_id}")
        for kind, payload in _sse_events(stream.text):
            if kind == "complete":
                return self._done(Outcome(True, payload, None, 200, time.perf_counter() - started))
            if kind == "error":
                message = payload.get("error") if isinstance(payload, dict) else payload
                return Outcome(False, payload, message, 200, time.perf_counter() - started)
        raise AssertionError(f"no final event for /{api}: {stream.text[:500]}")

    def submit(self, fn: str | int, data: list, event_data: Any = None) -> str | Outcome:
        """``/gradio_api/queue/join`` as the browser does; returns the event id (or the refusal)."""
        started = time.perf_counter()
        index = self.fns[fn] if isinstance(fn, str) else fn
        body = {"data": data, "fn_index": index, "session_hash": self.session_hash, "event_data": event_data}
        response = self.http.post("/gradio_api/queue/join", json=body)
        if response.status_code != 200:
            return Outcome(False, response.text, _detail(response), response.status_code)
        event_id = response.json()["event_id"]
        self._submitted[event_id] = started
        return event_id

    def collect(self, event_ids: list[str], *, timeout_s: float = REQUEST_TIMEOUT_S) -> dict[str, Outcome]:
        """Wait until every id in ``event_ids`` has completed; their outcomes by id."""
        return {event_id: self.wait(event_id, timeout_s=timeout_s) for event_id in event_ids}

    def wait(self, event_id: str, *, timeout_s: float = REQUEST_TIMEOUT_S) -> Outcome:
        """The outcome of a submitted event, read from the session's event stream.

        Like the browser, one stream per session is kept open while events are pending
        (closing it early would make Gradio drop the session's other pending events).
        """
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while event_id not in self._results:
                if self._reader is None or not self._reader.is_alive():
                    self._reader = threading.Thread(target=self._read_stream, daemon=True)
                    self._reader.start()
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"event {event_id} did not complete in {timeout_s} s"
                self._cond.wait(min(remaining, 0.2))
            outcome = self._results.pop(event_id)
        outcome.seconds = time.perf_counter() - self._submitted.pop(event_id, time.perf_counter())
        return self._done(outcome) if outcome.ok else outcome

    def _read_stream(self) -> None:
        try:
            with httpx.Client(base_url=self.base, timeout=REQUEST_TIMEOUT_S) as reader, reader.stream(
                    "GET", "/gradio_api/queue/data", params={"session_hash": self.session_hash}) as stream:
                for line in stream.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    message = json.loads(line[5:])
                    if message.get("msg") == "close_stream":
                        return
                    if message.get("msg") != "process_completed":
                        continue
                    output = message.get("output") or {}
                    if message.get("success"):
                        outcome = Outcome(True, output.get("data"))
                    else:
                        outcome = Outcome(False, output, output.get("error"))
                    with self._cond:
                        self._results[message["event_id"]] = outcome
                        self._cond.notify_all()
        except httpx.HTTPError:
            return

    def join(self, fn: str | int, data: list, event_data: Any = None) -> Outcome:
        """Submit one UI event and wait for it."""
        event_id = self.submit(fn, data, event_data)
        if isinstance(event_id, Outcome):
            return event_id
        return self.wait(event_id)

    def _done(self, outcome: Outcome) -> Outcome:
        if isinstance(outcome.data, list) and len(outcome.data) == len(app.OUTPUT_NAMES):
            self.last = outcome.data
        return outcome

    # ------------------------------------------------------------------ the app's operations
    def load(self, path: str, *, opacity: float = 0.5, contour: bool = True) -> Outcome:
        """Upload-and-show through the API (``/load_image``)."""
        return self.call("load_image", [file_data(path), opacity, contour])

    def load_bytes(self, data: bytes, name: str = "photo.png") -> Outcome:
        return self.load(self.upload(data, name))

    def click(self, x: float, y: float, mode: str = app.MODE_POSITIVE) -> Outcome:
        return self.call("click", [x, y, mode, 0.5, True])

    def ui_open(self, path_or_payload: str | dict) -> Outcome:
        """An upload from the upload box (encode queue), as the browser sends it: the file and the tab's model
        choice (``None``, the default model)."""
        payload = file_data(path_or_payload) if isinstance(path_or_payload, str) else path_or_payload
        return self.join("ui_open_image", [payload, None])

    def ui_click(self, index: Any, mode: str = app.MODE_POSITIVE) -> Outcome:
        """A click on the image view as the page sends it (``trigger('prompt', data)``), forgeable: ``index``
        ``[x, y]`` (original pixels) becomes ``{"kind": "click", "x": x, "y": y}``; anything else is sent as
        the event's data as it is."""
        return self.join("ui_click", [None, mode, 0.5, True], event_data=prompt_data(index))

    def output(self, name: str) -> Any:
        assert self.last is not None, "no successful event yet"
        return self.last[OUTPUT_INDEX[name]]

    def fetch(self, file_payload: dict) -> bytes:
        response = self.http.get(file_payload["url"])
        response.raise_for_status()
        return response.content

    def scene(self, outcome: Outcome | None = None) -> dict:
        """The scene the page would draw after ``outcome`` (or the last event): ``sam_demo.scene``'s JSON."""
        data = outcome.data if outcome is not None else self.last
        return json.loads(data[OUTPUT_INDEX["display"]])

    def overlay(self, outcome: Outcome | None = None) -> np.ndarray:
        """The picture a page shows for ``outcome``, at display size: the display copy with each visible object's
        mask layer blended in its colour at the scene's opacity (list order, the selected one last), fetched
        over HTTP as a page fetches them. Outlines and markers are left out (the page draws them)."""
        scene = self.scene(outcome)
        image = scene["image"]
        picture = np.asarray(Image.open(BytesIO(self._get(image["display"]))).convert("RGB")).astype(np.float64)
        dh, dw = picture.shape[:2]
        alpha = scene["view"]["opacity"]
        shown = [o for o in scene["objects"] if o.get("visible", True) and o["layer"]]
        for obj in sorted(shown, key=lambda o: o.get("selected", False)):
            layer = obj["layer"]
            png = Image.open(BytesIO(self._get(f"{image['layers']}{layer['id']}.png"))).convert("RGBA")
            inside = np.asarray(png)[..., 3] > 0
            x0, y0 = (round(layer["rect"][0] * dw / image["w"]), round(layer["rect"][1] * dh / image["h"]))
            colour = np.array([int(obj["color"][k:k + 2], 16) for k in (1, 3, 5)], np.float64)
            region = picture[y0:y0 + inside.shape[0], x0:x0 + inside.shape[1]]
            region[inside] = region[inside] * (1 - alpha) + colour * alpha
        return np.round(picture).astype(np.uint8)

    def _get(self, path: str) -> bytes:
        response = self.http.get(f"/{path}")
        response.raise_for_status()
        return response.content

    def status(self) -> str:
        return self.output("status")

    def selected_object(self) -> int:
        update = self.output("object_select")
        return int(update["value"])

    def snapshot(self) -> Snapshot:
        """Re-render the session without changing it (select the selected object) and export its prompts."""
        shown = self.call("select_object", [self.selected_object(), 0.5, True])
        assert shown.ok, shown
        objects: list = []
        exported = self.call("export", [])
        if exported.ok:
            prompts = next(f for f in exported.data[0] if f["path"].endswith("_prompts.json"))
            objects = json.loads(self.fetch(prompts))["objects"]
        else:
            assert "Nothing to export yet" in exported.error, exported
        return Snapshot(self.overlay(shown), shown.data[OUTPUT_INDEX["objects_html"]], objects)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text
    return body.get("detail", body) if isinstance(body, dict) else body


def png_bytes(rgb: np.ndarray) -> bytes:
    buffer = BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    return buffer.getvalue()
