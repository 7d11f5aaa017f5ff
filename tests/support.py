"""Helpers shared by the tests, the load harness and the benchmarks (no fixtures: those are in conftest.py)."""

from __future__ import annotations

import socket

import app

OUT = {name: i for i, name in enumerate(app.OUTPUT_NAMES)}
"""Index of each output in a handler's answer (``app.Outputs`` order)."""
CLIENT_OUT = {name: i for i, name in enumerate(n for n in app.OUTPUT_NAMES if n != "state")}
"""Index of each output in a ``gradio_client`` answer, which leaves out the ``gr.State``."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
