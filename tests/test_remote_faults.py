"""Every fault branch of the app's encoder client (:class:`sam_onnx.encoders.remote.RemoteEncoder`), each produced
on purpose by a scripted HTTP server on 127.0.0.1: a dropped connection, a cut answer, a server error, a refusal,
and the local fallback's cool-down (issue 21). No Ray and no model: the server answers fixed embeddings.

tests/test_remote_encoder.py runs the client against the real replica class; here the faults that replica
never produces are made one by one, and each test counts the requests that reached the server.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from sam_onnx.encoders import remote
from sam_onnx.encoders.base import EMBEDDING_SHAPES, PIXEL_SHAPE
from sam_onnx.encoders.remote import ClusterUnavailableError, RemoteEncoder
from sam_onnx.encoders.wire import EMBEDDING_BYTES, EMBEDDING_DTYPE
from sam_onnx.errors import InferenceError

BLOB = (np.arange(EMBEDDING_BYTES // EMBEDDING_DTYPE.itemsize) % 7).astype(EMBEDDING_DTYPE).tobytes()
"""What the scripted server answers to an encode: fixed float16 embeddings (0..6 repeating)."""
PIXELS = np.zeros(PIXEL_SHAPE, np.float32)
FALLBACK_VALUE = 42.0


class ScriptedServer:
    """Answers each ``POST .../encode`` with the next step of ``script`` (then ``"ok"``), counting requests.

    Steps: ``"ok"`` (the embeddings), ``"drop"`` (read the request, close without a byte of answer: a replica
    that died), ``"cut"`` (headers and half the body, then close), ``"500"``, ``"400"``.
    """

    def __init__(self, script: list[str]) -> None:
        self.script = list(script)
        self.requests = 0
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                with lock:
                    outer.requests += 1
                    step = outer.script.pop(0) if outer.script else "ok"
                if step == "drop":
                    self.close_connection = True
                    return
                if step in ("500", "400"):
                    body = f"scripted {step}".encode()
                    self.send_response(int(step))
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(BLOB)))
                self.end_headers()
                self.wfile.write(BLOB if step == "ok" else BLOB[: len(BLOB) // 2])
                if step == "cut":
                    self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sam-encoder"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted() -> Iterator[type[ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def make(script: list[str]) -> ScriptedServer:
        servers.append(ScriptedServer(script))
        return servers[-1]

    yield make  # type: ignore[misc]
    for server in servers:
        server.stop()


def client(server: ScriptedServer, **kwargs) -> RemoteEncoder:
    return RemoteEncoder(server.url, name="ray:fp32", description="scripted", timeout_s=10, **kwargs)


def served_embeddings() -> tuple[np.ndarray, ...]:
    flat = np.frombuffer(BLOB, EMBEDDING_DTYPE).astype(np.float32)
    sizes = np.cumsum([int(np.prod(s)) for s in EMBEDDING_SHAPES])[:-1]
    return tuple(part.reshape(shape) for part, shape in zip(np.split(flat, sizes), EMBEDDING_SHAPES))


class Fallback:
    """A local encoder standing in for ``--ray-fallback``: constant embeddings, counting its runs."""

    name, description = "fp32", "local fallback"

    def __init__(self) -> None:
        self.runs = 0

    def encode(self, pixel_values):
        self.runs += 1
        return tuple(np.full(shape, FALLBACK_VALUE, np.float32) for shape in EMBEDDING_SHAPES)


def same(got, want) -> bool:
    return all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))


@pytest.mark.parametrize("fault", ["drop", "cut", "500"])
def test_a_dropped_cut_or_failed_request_is_sent_exactly_once_more(scripted, fault):
    server = scripted([fault])
    encoder = client(server)
    assert same(encoder.encode(PIXELS), served_embeddings())
    assert server.requests == 2 and encoder.stats.retries == 1 and encoder.stats.requests == 1


@pytest.mark.parametrize("fault", ["drop", "cut", "500"])
def test_two_faults_in_a_row_give_the_user_the_message_after_one_retry(scripted, fault):
    server = scripted([fault, fault])
    encoder = client(server)
    with pytest.raises(ClusterUnavailableError, match="is not answering .*Your image, points and masks are kept"):
        encoder.encode(PIXELS)
    assert server.requests == 2 and encoder.stats.retries == 1  # one retry, never a loop


def test_a_refused_request_is_not_retried(scripted):
    """A 4xx says the request itself is wrong (another protocol version): sending it again cannot help."""
    server = scripted(["400"])
    with pytest.raises(InferenceError, match="refused the request .*scripted 400") as info:
        client(server).encode(PIXELS)
    assert not isinstance(info.value, ClusterUnavailableError) and server.requests == 1


class Clock:
    """``time`` as :mod:`sam_onnx.encoders.remote` sees it: ``monotonic()`` moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_the_fallback_takes_over_for_its_cool_down_then_the_cluster_is_tried_again(scripted, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(remote, "time", clock)
    server = scripted(["drop", "drop"])
    local = Fallback()
    encoder = client(server, fallback=lambda: local)
    assert same(encoder.encode(PIXELS), Fallback().encode(PIXELS))  # the cluster failed twice: encoded here
    assert (server.requests, local.runs, encoder.stats.fallbacks) == (2, 1, 1)

    clock.now += remote.LOCAL_AFTER_FAILURE_S - 0.001  # still cooling down: not a single request to the cluster
    assert same(encoder.encode(PIXELS), Fallback().encode(PIXELS))
    assert (server.requests, local.runs) == (2, 2)

    clock.now += 0.001  # the cool-down is over: the cluster (healthy again) encodes
    assert same(encoder.encode(PIXELS), served_embeddings())
    assert (server.requests, local.runs, encoder.stats.fallbacks) == (3, 2, 2)


def test_a_failure_after_the_cool_down_starts_a_new_one(scripted, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(remote, "time", clock)
    server = scripted(["500", "500"])
    local = Fallback()
    encoder = client(server, fallback=lambda: local)
    encoder.encode(PIXELS)
    clock.now += remote.LOCAL_AFTER_FAILURE_S
    server.script = ["drop", "drop"]
    encoder.encode(PIXELS)  # tried, failed again: local, and a new cool-down from now
    assert (server.requests, local.runs) == (4, 2)
    clock.now += remote.LOCAL_AFTER_FAILURE_S - 0.001
    encoder.encode(PIXELS)
    assert (server.requests, local.runs) == (4, 3)


def test_without_a_fallback_every_upload_tries_the_cluster(scripted, monkeypatch):
    """The cool-down belongs to the fallback: without one, the next upload tries the cluster at once."""
    monkeypatch.setattr(remote, "time", Clock())
    server = scripted(["drop", "drop"])
    encoder = client(server)
    with pytest.raises(ClusterUnavailableError):
        encoder.encode(PIXELS)
    assert same(encoder.encode(PIXELS), served_embeddings()) and server.requests == 3
