"""A real HTTP server around the real Ray Serve replica class, for tests of the app side without Ray.

Requests are answered by :meth:`sam_serve.ray_serve.EncoderReplica.respond`, the same function Serve's
``__call__`` calls (routing, body checks, packing); the handler here adds only fault injection and counters.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from sam_onnx import Sam2Predictor
from sam_serve.ray_serve import EncoderReplica, ReplicaConfig, Reply
from tools.ports import free_port  # noqa: F401 - re-exported for the Ray tests

FIXTURE = Path(__file__).parent / "fixtures" / "sam2_tiny"
"""The reduced SAM 2.1 model (real I/O contract) the replicas load."""
SERVER_ERROR = Reply(500, {}, b"")
"""What Serve answers when the replica died mid-request (``fail_next``)."""


class ReplicaServer:
    """``EncoderReplica`` behind a stdlib HTTP server on 127.0.0.1; ``fail_next`` answers 500 to that many encodes.

    ``hold_s`` keeps each encode request open that long first (a slow replica), ``most_in_flight``
    counts the most encode requests it held at once, and ``encodes`` the encodes answered 200.
    """

    def __init__(self, replica: EncoderReplica, hold_s: float = 0.0) -> None:
        self.replica = replica
        self.fail_next = 0
        self.encodes = 0
        self.hold_s = hold_s
        self.most_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self._send(outer.replica.respond("GET", self.path))

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with outer._lock:
                    outer._in_flight += 1
                    outer.most_in_flight = max(outer.most_in_flight, outer._in_flight)
                try:
                    time.sleep(outer.hold_s)
                    self._send(outer._answer(self.path, body))
                finally:
                    with outer._lock:
                        outer._in_flight -= 1

            def _send(self, reply: Reply) -> None:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sam-encoder"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _answer(self, path: str, body: bytes) -> Reply:
        with self._lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                return SERVER_ERROR
        reply = self.replica.respond("POST", path, body)
        if reply.status == 200:
            with self._lock:
                self.encodes += 1
        return reply

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def pixels(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1, 3, 1024, 1024), dtype=np.float32)


def as_float16(arrays) -> tuple[np.ndarray, ...]:
    return tuple(a.astype(np.float16).astype(np.float32) for a in arrays)


def fixture_replica() -> EncoderReplica:
    """The deployment's replica class on the fixture's fp32 encoder, one thread (an onnxruntime session)."""
    return EncoderReplica(ReplicaConfig(model_dir=str(FIXTURE), encoder="fp32", threads=1))


def fixture_predictor() -> Sam2Predictor:
    """The local path the remote one is compared with: the fixture's encoder and decoder, one thread."""
    return Sam2Predictor.from_files(FIXTURE / "encoder.onnx", FIXTURE / "decoder.onnx", threads=1)
