"""Output indices of the app's handlers, for tests that call them or the served app (this module imports ``app``).

Helpers that need no demo live outside ``tests/``: ``tools.load_harness.free_port``, ``tools.rawapi``.
"""

from __future__ import annotations

import app

OUT = {name: i for i, name in enumerate(app.OUTPUT_NAMES)}
"""Index of each output in a handler's answer (``app.Outputs`` order)."""
CLIENT_OUT = {name: i for i, name in enumerate(n for n in app.OUTPUT_NAMES if n != "state")}
"""Index of each output in a ``gradio_client`` answer, which leaves out the ``gr.State``."""
