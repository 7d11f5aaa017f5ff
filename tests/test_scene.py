"""The scene the page's view draws (``sam_demo.scene``) and its mask layers, against independent references.

* the schema: sizes, the tab's grant, prompts in original pixels, content-addressed layers;
* its size, measured with 1, 10 and 256 objects (it travels after every click);
* an independent oracle (issue 21 item 1, in the new design): after a seeded random walk of edits through
  the app's handlers (points, boxes by clicks and by drags, objects added, selected, hidden, renamed,
  recoloured and deleted, candidates chosen, undo/redo, a prompts file loaded), on a scaled and an unscaled
  frame, the scene and every layer equal what a fresh service (no caches) builds for the final editor, and each
  layer equals the mask computed here from the predictor's own decoder output (``MaskResult.mask`` at the display
  size), not through the service's layer code; after every step each object's colour in the scene is the one the
  walk's own record of colour choices says (kept through other edits, undone and redone with the history, saved
  and loaded with the prompts file), not read from the editor.
"""

from __future__ import annotations

import json
import random

import gradio as gr
import numpy as np
import pytest
from PIL import Image

import app
from sam_demo import layers, scene
from sam_demo.overlay import color_for
from sam_demo.service import SegmentationService
from sam_onnx.types import NUM_CANDIDATES
from sam_onnx.vector import hex_color
from tests.app_support import OUT, scene_of
from tests.conftest import make_rgb

HW = (300, 500)
STEPS = 60
"""Edits per random walk (each a handler call, as a user's click or button)."""
COLOURS = ("#e69f00", "#56B4E9", "#d62728", "#7f3fbf", "#12ab9f")
"""Colours the walk picks: the first two objects' palette colours (in either case) and three others."""


def _open(service, path):
    return app.show_image(service, app.open_image(service, str(path)), 0.5, True)


def _prompt(service, out, mode, data):
    return app.prompt(service, out[OUT["state"]], mode, 0.5, True, gr.EventData(None, data))


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("scene") / "photo.png"
    Image.fromarray(make_rgb(*HW, seed=3)).save(path)
    return path


# ---------------------------------------------------------------------------- schema and size
def test_the_scene_names_its_image_frames_and_objects(predictor, photo):
    service = SegmentationService(predictor, image_cache_mb=64, display_max_side=200)
    out = _prompt(service, _open(service, photo), app.MODE_POSITIVE, {"kind": "click", "x": 250, "y": 150})
    s = scene_of(out)
    assert s["v"] == scene.SCENE_VERSION
    image = s["image"]
    assert (image["w"], image["h"], image["dw"], image["dh"]) == (500, 300, 200, 120)
    assert image["model"] == {"side": 1024, "sx": 1024 / 500, "sy": 1024 / 300}
    assert service.grants.resolve(image["token"]) == out[OUT["state"]].record.key
    obj = s["objects"][0]
    assert obj["points"] == [[250, 150, 1]] and obj["box"] is None and obj["selected"] and "auto" not in obj
    assert obj["shown"] == 1 and "candidate" not in obj and len(obj["scores"]) == NUM_CANDIDATES
    layer = obj["layer"]
    assert len(layer["id"]) == layers.LAYER_ID_HEX and layer["size"][0] < layer["rect"][2] - layer["rect"][0]
    assert s["selected"] == obj["id"] and s["pending"] is None and s["view"] == {"opacity": 0.5, "outline": True}
    # choosing the best candidate explicitly draws the same layer (content address of the pixels' inputs)
    chosen = app.choose_candidate_api(service, out[OUT["state"]], 2, 0.5, True)
    assert scene_of(chosen)["objects"][0]["layer"] == layer and scene_of(chosen)["objects"][0]["candidate"] == 1
    other = app.choose_candidate_api(service, out[OUT["state"]], 1, 0.5, True)
    assert scene_of(other)["objects"][0]["layer"]["id"] != layer["id"]


SCENE_BYTES_PER_OBJECT = 400
"""Upper bound of a user object's share of the scene (measured ~250 bytes with one point)."""
SCENE_BYTES_PER_AUTO_OBJECT = 260
"""Upper bound for an object found by segment everything (no prompts unless selected; measured ~190)."""


def test_scene_size_with_1_10_and_256_objects(predictor, photo, capsys):
    service = SegmentationService(predictor, image_cache_mb=64)
    out = _prompt(service, _open(service, photo), app.MODE_POSITIVE, {"kind": "click", "x": 250, "y": 150})
    sizes = {1: len(out[OUT["display"]].encode())}
    state = out[OUT["state"]]
    for _ in range(9):
        state = app.add_object(service, state, 0.5, True)[OUT["state"]]
        x, y = random.Random(len(state.editor.objects)).randrange(500), 100
        out = _prompt(service, app.select_object(service, state, state.editor.selected_id, 0.5, True),
                      app.MODE_POSITIVE, {"kind": "click", "x": x, "y": y})
        state = out[OUT["state"]]
    sizes[10] = len(out[OUT["display"]].encode())
    found = app.run_everything(service, state, "balanced", None, lambda *a, **k: None)
    out = app.apply_everything(service, found, state, 0.5, True)
    count = len(scene_of(out)["objects"])
    sizes[count] = len(out[OUT["display"]].encode())
    with capsys.disabled():
        print("\nscene bytes by object count:", sizes)
    assert count == 256
    assert sizes[1] < 1000 + SCENE_BYTES_PER_OBJECT
    assert sizes[10] < 1000 + 10 * SCENE_BYTES_PER_OBJECT
    assert sizes[256] < 1000 + 10 * SCENE_BYTES_PER_OBJECT + 246 * SCENE_BYTES_PER_AUTO_OBJECT


# ---------------------------------------------------------------------------- the independent oracle
class Colours:
    """The walk's own record of the colours it chose (object id -> ``#rrggbb``), with its own undo/redo stacks.

    An edit that made a new undo step (the editor's annotation changed) pushes the record; undo and redo move it
    between the stacks; loading a prompts file restores the record made when it was saved and starts a new
    history. Objects the walk never recoloured have their palette colour (``color_for(color_index)``).
    """

    def __init__(self) -> None:
        self.chosen: dict[int, str] = {}
        self.undo: list[dict[int, str]] = []
        self.redo: list[dict[int, str]] = []
        self.changes = self.undos = 0  # colour changes made, and undo/redo steps that changed a colour

    def after(self, op: str, before, after, picked: str | None, loaded: dict[int, str] | None) -> None:
        if after.current is before.current:
            return
        if op in ("undo", "redo"):
            source, target = (self.undo, self.redo) if op == "undo" else (self.redo, self.undo)
            target.append(self.chosen)
            restored = source.pop()
            self.undos += restored != self.chosen
            self.chosen = restored
        elif op == "load":
            self.chosen, self.undo, self.redo = dict(loaded), [], []
        else:
            self.undo.append(self.chosen)
            self.redo = []
            if op == "colour":
                self.chosen = {**self.chosen, before.selected_id: picked.lower()}
                self.changes += 1

    def expected(self, editor) -> list[str]:
        return [self.chosen.get(o.id, hex_color(color_for(o.color_index))) for o in editor.objects]


def random_walk(service, path, seed: int, steps: int = STEPS, colours: Colours | None = None):
    """``steps`` random edits through the app's handlers; returns the last answer. After every step, each object's
    colour in the scene is checked against ``colours`` (the walk's own record)."""
    rng = random.Random(seed)
    out = _open(service, path)
    h, w = HW
    saved, saved_colours = None, {}
    colours = Colours() if colours is None else colours
    for _ in range(steps):
        state = out[OUT["state"]]
        editor = state.editor
        op = rng.choice(["point", "point", "point", "negative", "corner", "drag", "add", "select", "hide", "rename",
                         "colour", "colour", "choose", "delete", "undo", "undo", "redo", "clear", "save", "load"])
        picked = rng.choice(COLOURS)
        try:
            if op in ("point", "negative", "corner"):
                mode = {"point": app.MODE_POSITIVE, "negative": app.MODE_NEGATIVE, "corner": app.MODE_BOX}[op]
                out = _prompt(service, out, mode, {"kind": "click", "x": rng.randrange(w), "y": rng.randrange(h)})
            elif op == "drag":
                out = _prompt(service, out, app.MODE_POSITIVE, {"kind": "box", "x": rng.randrange(w),
                                                                "y": rng.randrange(h), "x1": rng.randrange(w),
                                                                "y1": rng.randrange(h)})
            elif op == "add":
                out = app.add_object(service, state, 0.5, True)
            elif op == "select":
                out = app.select_object(service, state, rng.choice(editor.objects).id, 0.5, True)
            elif op == "hide":
                out = app.toggle_object(service, state, 0.5, True)
            elif op == "rename":
                out = app.rename_object(service, state, f"thing {rng.randrange(100)}", 0.5, True)
            elif op == "colour":
                out = app.pick_color(service, state, 0.5, True, gr.EventData(None, {"color": picked}))
            elif op == "choose":
                out = app.choose_candidate_api(service, state, rng.randrange(NUM_CANDIDATES + 1), 0.5, True)
            elif op == "delete" and len(editor.objects) > 1:
                out = app.delete_object(service, state, 0.5, True)
            elif op in ("undo", "redo", "clear"):
                out = {"undo": app.undo, "redo": app.redo, "clear": app.clear_object}[op](service, state, 0.5, True)
            elif op == "save" and any(not o.prompts.is_empty for o in editor.objects):
                files = app.export_files(service, state, progress=lambda *a, **k: None)
                saved = next(f for f in files if f.endswith("_prompts.json"))
                saved_colours = {o.id: c for o, c in zip(editor.objects, colours.expected(editor))
                                 if o.id in colours.chosen}
            elif op == "load" and saved is not None:
                out = app.load_prompts(service, state, saved, 0.5, True)
        except gr.Error:
            pass  # a refused edit (a box with two corners on one row, an empty object...) changes nothing
        after = out[OUT["state"]].editor
        colours.after(op, editor, after, picked, saved_colours if op == "load" else None)
        assert [o["color"] for o in scene_of(out)["objects"]] == colours.expected(after), f"colours after {op}"
    return out


def independent_layer(predictor, record, obj, display_hw) -> np.ndarray:
    """The display-size mask of an object, from the predictor's decoder output (no service, no layer code)."""
    embedding = predictor.encode(np.asarray(Image.open(record.path).convert("RGB")))
    result = predictor.decode_many(embedding, [obj.prompts])[0]
    candidate = result.best_index if obj.candidate is None else obj.candidate
    return result.mask(candidate, display_hw)


@pytest.mark.parametrize("display_side, seed", [(None, 21), (200, 1)], ids=["unscaled", "scaled"])
def test_after_a_random_walk_the_scene_equals_a_fresh_services_and_each_layer_the_predictors_mask(
        predictor, photo, display_side, seed):
    service = SegmentationService(predictor, image_cache_mb=64, display_max_side=display_side or 10_000)
    colours = Colours()
    out = random_walk(service, photo, seed, colours=colours)
    state = out[OUT["state"]]
    walked = scene_of(out)
    assert colours.changes >= 2 and colours.undos >= 1, "test set-up: the walk should recolour and undo/redo that"
    assert sum(o["layer"] is not None for o in walked["objects"]) >= 2, "test set-up: the walk should leave masks"
    assert any(o.get("visible") is False for o in walked["objects"]), "test set-up: the walk should leave a hidden object"

    fresh = SegmentationService(predictor, image_cache_mb=64, display_max_side=display_side or 10_000)
    record, _ = fresh.open_image(state.record.path)
    again = app.AppState(record, state.editor, state.tab)
    rebuilt = scene_of(app.rerender(fresh, again, 0.5, True))
    assert {k: v for k, v in rebuilt.items() if k != "image"} == {k: v for k, v in walked.items() if k != "image"}

    frame = state.record.frame
    for obj, drawn in zip(state.editor.objects, walked["objects"]):
        assert drawn["id"] == obj.id and drawn["name"] == obj.name
        assert drawn.get("visible", True) == state.editor.is_visible(obj.id)
        if obj.prompts.is_empty:
            assert drawn["layer"] is None
            continue
        expected = independent_layer(predictor, state.record, obj, frame.display_hw)
        layer = drawn["layer"]
        if layer is None:
            assert not expected.any(), f"object {obj.id} has a mask but no layer"
            continue
        assert fresh.layer_png(record.key, layer["id"]) == service.layer_png(state.record.key, layer["id"])
        bitmap = layers.decode_png(service.layer_png(state.record.key, layer["id"]))
        dh, dw = frame.display_hw
        (h, w), (oh, ow) = (dh, dw), frame.original_hw
        col0, row0 = round(layer["rect"][0] * w / ow), round(layer["rect"][1] * h / oh)
        placed = np.zeros(frame.display_hw, bool)
        placed[row0:row0 + bitmap.shape[0], col0:col0 + bitmap.shape[1]] = bitmap
        assert np.array_equal(placed, expected), f"object {obj.id}'s layer is not its mask"
        assert json.dumps(layer["rect"]) == json.dumps([round(v, scene.RECT_DIGITS) for v in layers.rect_of(
            (row0, col0), bitmap.shape, frame)])
