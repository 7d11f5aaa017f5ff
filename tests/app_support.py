"""Output indices of the app's handlers, for tests that call them or the served app (this module imports ``app``).

Helpers that need no demo live outside ``tests/``: ``tools.load_harness.free_port``, ``tools.rawapi``.
"""

from __future__ import annotations

import json

import numpy as np

import app
from sam_demo import layers

OUT = {name: i for i, name in enumerate(app.OUTPUT_NAMES)}
"""Index of each output in a handler's answer (``app.Outputs`` order)."""
CLIENT_OUT = {name: i for i, name in enumerate(n for n in app.OUTPUT_NAMES if n != "state")}
"""Index of each output in a ``gradio_client`` answer, which leaves out the ``gr.State``."""


def scene_of(out) -> dict:
    """The scene (``sam_demo.scene``) a handler's answer sends to the page's view."""
    return json.loads(out[OUT["display"]])


def shown_masks(service, out) -> dict[int, np.ndarray]:
    """What the page draws as each visible object's mask: its layer (as the routes serve it) placed in the
    display frame, ``{object id: (dh, dw) bool}``; objects without a drawn mask are absent."""
    state = out[OUT["state"]]
    frame = state.record.frame
    dh, dw = frame.display_hw
    oh, ow = frame.original_hw
    masks = {}
    for obj in scene_of(out)["objects"]:
        if not obj.get("visible", True) or obj["layer"] is None:
            continue
        layer = obj["layer"]
        bitmap = layers.decode_png(service.layer_png(state.record.key, layer["id"]))
        assert [bitmap.shape[1], bitmap.shape[0]] == layer["size"]
        col0, row0 = round(layer["rect"][0] * dw / ow), round(layer["rect"][1] * dh / oh)
        full = np.zeros((dh, dw), bool)
        full[row0:row0 + bitmap.shape[0], col0:col0 + bitmap.shape[1]] = bitmap
        masks[obj["id"]] = full
    return masks


def shown_union(service, out) -> np.ndarray:
    """Every pixel the page tints (display frame, ``(dh, dw)`` bool)."""
    dh, dw = out[OUT["state"]].record.frame.display_hw
    union = np.zeros((dh, dw), bool)
    for mask in shown_masks(service, out).values():
        union |= mask
    return union
