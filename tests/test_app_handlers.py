"""The app's handlers called as plain functions, on the analytic models.

Each handler takes the shared service and the user's state and returns the next
view: the scene the page draws (``sam_demo.scene``) with its mask layers; these tests
check what a user would see (the layers, as the routes serve them) or download.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import gradio as gr
import numpy as np
import pyogrio
import pyogrio.raw
import pytest
import shapely
from PIL import Image
from shapely.geometry import Polygon, shape

import app
from sam_demo import bundle
from sam_demo.service import SegmentationService, image_key
from sam_onnx import vector
from sam_onnx.export import decode_rle, mask_bbox
from sam_onnx.image import load_image
from tests import analytic_models as am
from tests.conftest import make_rgb
from tests.app_support import OUT, scene_of, shown_masks, shown_union


@contextlib.contextmanager
def turn_held_elsewhere(gate, who: str) -> Iterator[None]:
    """A turn of ``gate`` held by ``who`` on another thread from entry (once it is held) until exit."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with gate.turn(who):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10), f"{who} never got its turn"
    try:
        yield
    finally:
        release.set()
        holder.join(10)


@pytest.fixture(scope="module")
def service(predictor):
    return SegmentationService(predictor, display_max_side=1536, image_cache_mb=256)


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(make_rgb(300, 500)).save(path)
    return path


def _open(service, path, opacity=0.5, contour=True):
    return app.show_image(service, app.open_image(service, str(path)), opacity, contour)


def _event(data):
    return gr.EventData(None, data)


def _click(service, out, x, y, mode=app.MODE_POSITIVE):
    """A click on the view at original pixel (x, y), as the page sends it."""
    return app.prompt(service, out[OUT["state"]], mode, 0.5, True, _event({"kind": "click", "x": x, "y": y}))


def test_upload_shows_the_image_and_starts_an_editor(service, photo):
    out = _open(service, photo)
    scene, state = scene_of(out), out[OUT["state"]]
    assert (scene["image"]["w"], scene["image"]["h"], scene["image"]["dw"], scene["image"]["dh"]) == (500, 300, 500,
                                                                                                    300)
    assert not shown_union(service, out).any()  # nothing drawn yet
    token = scene["image"]["token"]
    assert service.grants.resolve(token) == state.record.key
    assert scene["image"]["display"] == f"view/{token}/display.jpg"
    assert state.record.original_hw == (300, 500) and len(state.editor.objects) == 1
    assert "500×300" in out[OUT["status"]]
    assert f"encoder {service.predictor.info.encoder_name}" in out[OUT["status"]]  # which engine encodes


def test_click_draws_the_mask_where_clicked(service, photo):
    out = _click(service, _open(service, photo), 120, 200)
    state = out[OUT["state"]]
    point = state.editor.selected.prompts.points[0]
    assert (point.x, point.y, point.label) == (120, 200, 1)
    changed = shown_union(service, out)
    expected = am.expected_mask_original([(120, 200)], [1], None, (300, 500))
    band = am.boundary_band([(120, 200)], [1], None, (300, 500))
    # The layer is the mask: inside it every pixel is tinted, outside none (but for one low-res cell of edge).
    assert changed[expected & ~band].all() and not changed[~expected & ~band].any()
    drawn = scene_of(out)["objects"][0]
    assert drawn["points"] == [[120, 200, 1]] and drawn["selected"] and drawn["shown"] == 1
    assert len(out[OUT["candidates"]]) == 3 and "IoU 0.95" in out[OUT["candidates"]][1][1]


def test_click_before_any_image_is_a_clear_message(service):
    with pytest.raises(gr.Error, match="Upload an image first"):
        app.prompt(service, None, app.MODE_POSITIVE, 0.5, True, _event({"kind": "click", "x": 1, "y": 1}))


@pytest.mark.parametrize("data", ["abc", [1, 2], None, {"x": 1, "y": 2}, {"kind": "click", "x": 1},
                                  {"kind": "click", "x": float("nan"), "y": 3}, {"kind": "click", "x": 10**12, "y": 5},
                                  {"kind": "click", "x": -1, "y": 5}, {"kind": "click", "x": "1", "y": 5},
                                  {"kind": "click", "x": True, "y": 5}, {"kind": "box", "x": 1, "y": 2},
                                  {"kind": "box", "x": 1, "y": 2, "x1": 500, "y1": 9}, {"kind": "erase", "x": 1, "y": 2}])
def test_forged_view_events_are_refused_and_nothing_changes(service, photo, data):
    out = _click(service, _open(service, photo), 10, 10)
    state = out[OUT["state"]]
    with pytest.raises(gr.Error):
        app.prompt(service, state, app.MODE_POSITIVE, 0.5, True, _event(data))
    assert state.editor.selected.prompts.points[0].x == 10


def test_a_dragged_box_is_a_box_in_any_mode_and_replaces_a_half_drawn_one(service, photo):
    out = _click(service, _open(service, photo), 400, 250, app.MODE_BOX)  # a first corner, pending
    out = app.prompt(service, out[OUT["state"]], app.MODE_POSITIVE, 0.5, True,
                     _event({"kind": "box", "x": 300, "y": 60, "x1": 100, "y1": 200}))
    editor = out[OUT["state"]].editor
    assert editor.pending_corner is None and editor.selected.prompts.box.xyxy == (100, 60, 300, 200)
    assert not editor.selected.prompts.points
    assert app.undo(service, out[OUT["state"]], 0.5, True)[OUT["state"]].editor.selected.prompts.box is None


def test_box_from_two_clicks_in_reversed_order(service, photo):
    out = _open(service, photo)
    out = _click(service, out, 400, 250, app.MODE_BOX)
    assert out[OUT["state"]].editor.pending_corner == (400, 250)
    assert "opposite corner" in out[OUT["status"]]
    out = _click(service, out, 100, 50, app.MODE_BOX)
    box = out[OUT["state"]].editor.selected.prompts.box
    assert box.xyxy == (100, 50, 400, 250)


def test_undo_redo_and_clear(service, photo):
    out = _click(service, _click(service, _open(service, photo), 100, 100), 300, 200)
    state = out[OUT["state"]]
    undone = app.undo(service, state, 0.5, True)
    assert len(undone[OUT["state"]].editor.selected.prompts.points) == 1
    assert scene_of(undone)["objects"][0]["layer"] != scene_of(out)["objects"][0]["layer"]
    redone = app.redo(service, undone[OUT["state"]], 0.5, True)
    assert scene_of(redone) == scene_of(out), "redo gives back the same scene (the same layers)"
    cleared = app.clear_object(service, redone[OUT["state"]], 0.5, True)
    assert scene_of(cleared)["objects"][0]["layer"] is None and not shown_union(service, cleared).any()


def test_two_objects_in_distinct_colours(service, photo):
    out = _click(service, _open(service, photo), 100, 100)
    out = app.add_object(service, out[OUT["state"]], 0.5, True)
    out = _click(service, out, 400, 200)
    first, second = scene_of(out)["objects"]
    assert first["color"] != second["color"] and (first["color"], second["color"]) == ("#e69f00", "#56b4e9")
    masks = shown_masks(service, out)
    assert masks[1][100, 100] and not masks[1][200, 400] and masks[2][200, 400] and not masks[2][100, 100]
    assert len(out[OUT["state"]].editor.objects) == 2


def _pick(service, state, color):
    """The colour control's ``pick`` event, as the page sends it."""
    return app.pick_color(service, state, 0.5, True, _event({"color": color}))


def test_a_chosen_colour_is_shown_everywhere_exported_saved_and_undone_in_one_step(service, photo, tmp_path):
    out = _click(service, _open(service, photo), 250, 150)
    out = _click(service, app.add_object(service, out[OUT["state"]], 0.5, True), 100, 80)
    before = out
    out = app.select_object(service, out[OUT["state"]], 1, 0.5, True)
    assert out[OUT["object_color"]] == "#e69f00"  # the control shows the selected object's colour
    plain = out
    out = _pick(service, out[OUT["state"]], "#0A7f3C")
    first, second = scene_of(out)["objects"]
    assert (first["color"], second["color"]) == ("#0a7f3c", "#56b4e9") and out[OUT["object_color"]] == "#0a7f3c"
    assert 'style="background:#0a7f3c"' in out[OUT["objects_html"]]  # the list's swatch
    assert first["layer"] == scene_of(plain)["objects"][0]["layer"], "a colour needs no new layer (1-bit)"
    # the candidate thumbnails: only the tinted pixels change, each by 1/2 (fill at opacity 0.5) or all (outline)
    # of the step from the old colour to the new one
    step = np.array((0x0A, 0x7F, 0x3C)) - np.array((230, 159, 0))
    for (new, _), (old, _) in zip(out[OUT["candidates"]], plain[OUT["candidates"]]):
        moved = new.astype(int) - old.astype(int)
        changed = np.abs(moved).max(axis=-1) > 0
        assert changed.sum() > 50
        fill = np.abs(moved - step / 2).max(axis=-1) <= 1
        outline = (moved == step).all(axis=-1)
        assert (fill | outline)[changed].all()
    # kept through rename, hide and a new prompt; undoing those keeps it, one more undo takes it back
    state = app.rename_object(service, out[OUT["state"]], "cup", 0.5, True)[OUT["state"]]
    state = app.toggle_object(service, app.toggle_object(service, state, 0.5, True)[OUT["state"]], 0.5, True)[
        OUT["state"]]
    out = _click(service, app.select_object(service, state, 1, 0.5, True), 260, 150)
    assert scene_of(out)["objects"][0]["color"] == "#0a7f3c"
    undone = out
    for colour in ("#0a7f3c", "#0a7f3c", "#e69f00"):
        undone = app.undo(service, undone[OUT["state"]], 0.5, True)
        assert [o["color"] for o in scene_of(undone)["objects"]] == [colour, "#56b4e9"]
    assert scene_of(undone) == scene_of(plain)
    # exports carry it: GeoJSON feature and SVG path of the object; the prompts file, which loads it back
    files = {Path(f).name: Path(f) for f in app.export_files(service, out[OUT["state"]])}
    geo = json.loads(files["photo_polygons.geojson"].read_text())
    assert [f["properties"]["color"] for f in geo["features"]] == ["#0a7f3c", "#56b4e9"]
    assert 'fill="#0a7f3c"' in files["photo_outlines.svg"].read_text()
    assert json.loads(files["photo_prompts.json"].read_text())["objects"][0]["color"] == "#0a7f3c"
    reloaded = app.load_prompts(service, before[OUT["state"]], str(files["photo_prompts.json"]), 0.5, True)
    assert [(o["color"], o["layer"]) for o in scene_of(reloaded)["objects"]] == [
        (o["color"], o["layer"]) for o in scene_of(out)["objects"]]


@pytest.mark.parametrize("data", [{"color": "#abc"}, {"color": "green"}, {"color": None}, {}, "#123456",
                                  {"color": "rgb(0, 0, 0)"}, {"color": ["#123456"]}])
def test_a_forged_colour_is_refused_and_changes_nothing(service, photo, data):
    state = _click(service, _open(service, photo), 250, 150)[OUT["state"]]
    with pytest.raises(gr.Error, match="#rrggbb"):
        app.pick_color(service, state, 0.5, True, _event(data))
    assert state.editor.objects[0].color is None and len(state.editor.undo_stack) == 1


def test_a_prompts_file_with_a_bad_colour_is_a_message_and_changes_nothing(service, photo, tmp_path):
    state = _click(service, _open(service, photo), 250, 150)[OUT["state"]]
    data = bundle.prompts_file_dict(state.editor, state.record.key)
    data["objects"][0]["color"] = "#12345"
    saved = tmp_path / "p.json"
    saved.write_text(json.dumps(data))
    with pytest.raises(gr.Error, match="Object 1: A colour must be written #rrggbb"):
        app.load_prompts(service, state, str(saved), 0.5, True)
    assert state.editor.objects[0].prompts.points[0].x == 250


def test_choosing_a_candidate_changes_what_is_shown_and_exported(service, photo, tmp_path):
    out = _click(service, _open(service, photo), 250, 150)
    best = shown_masks(service, out)[1]
    out2 = app.choose_candidate(service, out[OUT["state"]], 0.5, True, gr.SelectData(None, {"index": 2, "value": None}))
    assert out2[OUT["state"]].editor.selected.candidate == 2
    assert scene_of(out2)["objects"][0]["shown"] == 2 and scene_of(out2)["objects"][0]["candidate"] == 2
    assert (best != shown_masks(service, out2)[1]).any()
    files = app.export_files(service, out2[OUT["state"]])
    mask = np.asarray(Image.open(next(f for f in files if f.endswith("_object1_mask.png")))) > 0
    am.assert_pipeline_mask(mask, [(250, 150)], [1], None, (300, 500), candidate=2)


def test_export_files_are_exact_and_reloading_the_prompts_file_reproduces_the_masks(service, photo):
    out = _click(service, _open(service, photo), 120, 100)
    out = _click(service, out, 140, 100, app.MODE_NEGATIVE)
    out = app.add_object(service, out[OUT["state"]], 0.5, True)
    out = _click(service, _click(service, out, 300, 60, app.MODE_BOX), 480, 280, app.MODE_BOX)
    state = out[OUT["state"]]
    files = [Path(f) for f in app.export_files(service, state)]
    names = {f.name for f in files}
    assert {"photo_object1_mask.png", "photo_object2_mask.png", "photo_labels.png", "photo_cutout.png",
            "photo_coco_rle.json", "photo_polygons.geojson", "photo_yolo_seg.txt", "photo_yolo_classes.txt",
            "photo_coco_polygons.json", "photo_outlines.svg", "photo_prompts.json", "photo_sam2_export.zip"} == names
    m1 = np.asarray(Image.open(files[0])) == 255
    am.assert_pipeline_mask(m1, [(120, 100), (140, 100)], [1, 0], None, (300, 500))
    labels = np.asarray(Image.open(next(f for f in files if f.name == "photo_labels.png")))
    m2 = np.asarray(Image.open(files[1])) == 255
    assert set(np.unique(labels)) <= {0, 1, 2} and (labels[m2] == 2).all() and (labels[m1 & ~m2] == 1).all()
    coco = json.loads(next(f for f in files if f.name == "photo_coco_rle.json").read_text())
    np.testing.assert_array_equal(decode_rle(coco["annotations"][0]["segmentation"]), m1)
    assert coco["annotations"][1]["prompts"]["box"] == [300, 60, 480, 280]
    cut = np.asarray(Image.open(next(f for f in files if f.name == "photo_cutout.png")))
    assert cut.shape == (300, 500, 4) and ((cut[..., 3] == 255) == (m1 | m2)).all()
    assert not cut[~(m1 | m2)].any()  # nothing outside the objects leaks into the cut-out
    np.testing.assert_array_equal(cut[m1, :3], make_rgb(300, 500)[m1])
    with zipfile.ZipFile(files[-1]) as zf:
        assert sorted(zf.namelist()) == sorted(n for n in names if not n.endswith(".zip"))
    # Load the prompts file into a fresh editor on the same image: same masks.
    fresh = _open(service, photo)
    prompts_file = next(f for f in files if f.name == "photo_prompts.json")
    reloaded = app.load_prompts(service, fresh[OUT["state"]], str(prompts_file), 0.5, True)
    assert scene_of(reloaded)["objects"] == scene_of(out)["objects"]


def test_prompts_for_another_image_are_refused(service, photo, tmp_path):
    state = _click(service, _open(service, photo), 10, 10)[OUT["state"]]
    other = tmp_path / "other.png"
    Image.fromarray(make_rgb(300, 500, seed=5)).save(other)
    saved = tmp_path / "p.json"
    saved.write_text(json.dumps(bundle.prompts_file_dict(state.editor, state.record.key)))
    other_state = _open(service, other)[OUT["state"]]
    with pytest.raises(gr.Error, match="different image"):
        app.load_prompts(service, other_state, str(saved), 0.5, True)


def test_a_prompts_file_saved_with_the_pixels_hash_still_loads(service, photo, tmp_path):
    """Prompts files saved before the key was the file's hash name the image by its pixels' hash: the same image
    takes them, another one of the same size does not."""
    state = _click(service, _open(service, photo), 10, 10)[OUT["state"]]
    saved = tmp_path / "p.json"
    pixels_hash = image_key(load_image(photo).rgb)
    assert pixels_hash != state.record.key
    saved.write_text(json.dumps(bundle.prompts_file_dict(state.editor, pixels_hash)))
    reloaded = app.load_prompts(service, _open(service, photo)[OUT["state"]], str(saved), 0.5, True)
    assert scene_of(reloaded)["objects"][0]["points"] == scene_of(_click(service, _open(service, photo), 10, 10))[
        "objects"][0]["points"]
    other = tmp_path / "other.png"
    Image.fromarray(make_rgb(*load_image(photo).rgb.shape[:2], seed=5)).save(other)
    with pytest.raises(gr.Error, match="different image"):
        app.load_prompts(service, _open(service, other)[OUT["state"]], str(saved), 0.5, True)


def test_large_image_is_shown_downscaled_and_clicks_map_to_original_pixels(service, tmp_path):
    path = tmp_path / "big.jpg"
    Image.fromarray(make_rgb(3000, 4000)).save(path, quality=85)
    out = _open(service, path)
    image = scene_of(out)["image"]
    assert (image["w"], image["h"], image["dw"], image["dh"]) == (4000, 3000, 1536, 1152)
    out = _click(service, out, 2000, 261)  # the page sends original pixels
    point = out[OUT["state"]].editor.selected.prompts.points[0]
    assert (point.x, point.y) == (2000, 261)
    layer = scene_of(out)["objects"][0]["layer"]
    x0, y0, x1, y1 = layer["rect"]
    assert x0 < 2000 < x1 and y0 < 261 < y1 and layer["size"][0] < x1 - x0, "a display-size bitmap over original px"
    assert "shown at 1536×1152" in out[OUT["status"]]
    # the scripted API still takes display pixels
    out = app.click_api(service, out[OUT["state"]], 768, 100, app.MODE_POSITIVE, 0.5, True)
    point = out[OUT["state"]].editor.selected.prompts.points[1]
    assert point.x == pytest.approx((768 + 0.5) * 4000 / 1536 - 0.5)
    assert point.y == pytest.approx((100 + 0.5) * 3000 / 1152 - 0.5)


def test_bad_file_gives_a_message_and_keeps_the_current_work(service, photo, tmp_path):
    state = _click(service, _open(service, photo), 10, 10)[OUT["state"]]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(gr.Error, match="Could not read this image"):
        app.open_image(service, str(bad))
    assert state.editor.selected.prompts.points  # the caller's state object is untouched


def test_stateless_api_segment(service, photo):
    result = app.api_segment(service, str(photo), [{"points": [[250, 150, 1]], "box": None},
                                                   {"box": [300, 60, 480, 280]}])
    assert result["width"] == 500 and len(result["objects"]) == 2
    model = result["model"]
    assert (model["encoder"], model["encoder_selection"]) == (service.predictor.info.encoder_name,
                                                              service.predictor.info.encoder_selection)
    first = result["objects"][0]
    assert first["best_index"] == int(np.argmax(first["scores"]))
    am.assert_pipeline_mask(decode_rle(first["mask_rle"]), [(250, 150)], [1], None, (300, 500))
    for bad in ("{", [{"points": [[1e9, 1, 1]]}], [{"points": [[1, 1, 3]]}], 5, []):
        with pytest.raises(gr.Error):
            app.api_segment(service, str(photo), bad)


def test_the_everything_estimate_grows_with_another_tabs_work(service, photo, monkeypatch):
    """Issue 22 item 7: another tab holding the compute gate through the (shortened) window doubles the tab's
    estimate, and says so; the tab's own work does not count."""
    import threading

    from sam_demo import jobs

    monkeypatch.setattr(jobs, "LOAD_WINDOW_S", 0.5)
    state = _open(service, photo)[OUT["state"]]
    time.sleep(0.6)  # the upload's own turns leave the window
    alone = service.everything_estimate(state.record, "fast", who="me")
    with turn_held_elsewhere(service.compute, "other"):
        time.sleep(0.6)
        busy = service.everything_estimate(state.record, "fast", who="me")
        mine = service.everything_estimate(state.record, "fast", who="other")
    assert alone.load_factor == pytest.approx(1.0, abs=0.05) and busy.load_factor == pytest.approx(2.0)
    assert busy.seconds == pytest.approx(2 * alone.seconds, rel=0.05) and mine.load_factor == pytest.approx(1.0)
    monkeypatch.setattr(service, "everything_estimate", lambda record, preset: busy)
    assert "others are working: ×2.0" in app.everything_estimate(service, state, "fast")


def test_segment_names_no_server_path(service, photo, analytic_dir):
    """Issue 22 item 7: /segment's answer tells callers which model runs, never where its files are on the server
    (the analytic models are loaded from a folder; a hub download is named by its repository and revision)."""
    from sam_onnx.types import LOCAL_SOURCE, public_source

    result = app.api_segment(service, str(photo), [{"points": [[250, 150, 1]], "box": None}])
    assert str(analytic_dir) in service.predictor.info.source  # the server knows (its logs say it)
    answer = json.dumps(result)
    assert result["model"]["source"] == LOCAL_SOURCE and str(analytic_dir) not in answer and "/tmp" not in answer
    assert public_source("onnx-community/sam2.1-hiera-small-ONNX@0123456789ab") == \
        "onnx-community/sam2.1-hiera-small-ONNX@0123456789ab"
    for local in ("local folder /srv/models/small", "/srv/models", "C:\\models\\sam", "sessions", "../m/a@b/c"):
        assert public_source(local) == LOCAL_SOURCE, local


def test_stateless_api_segment_returns_polygons(service, photo):
    prompts = [{"points": [[250, 150, 1]], "box": None}, {"points": [[120, 100, 1], [140, 100, 0]]}]
    rle = app.api_segment(service, str(photo), prompts)
    exact = app.api_segment(service, str(photo), prompts, "polygons", 0)
    simple = app.api_segment(service, str(photo), prompts, "polygons")
    assert exact["format"] == "polygons" and simple["tolerance_px"] == vector.DEFAULT_TOLERANCE
    for r, e, s in zip(rle["objects"], exact["objects"], simple["objects"]):
        mask = decode_rle(r["mask_rle"])
        assert "mask_rle" not in e and e["area"] == r["area"] and e["bbox"] == r["bbox"]
        np.testing.assert_array_equal(vector.rasterize(shape(e["polygons"]), (300, 500)), mask)
        assert vector.iou(vector.rasterize(shape(s["polygons"]), (300, 500)), mask) >= 0.99
    for format_, tolerance, message in (("svg", 1, "format must be"), ("polygons", -1, "tolerance"),
                                        ("polygons", float("nan"), "tolerance"), ("polygons", 1e9, "tolerance")):
        with pytest.raises(gr.Error, match=message):
            app.api_segment(service, str(photo), prompts, format_, tolerance)


@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")  # pycocotools 2.0.11
def test_export_writes_polygon_files_of_the_visible_objects(service, photo):
    """GeoJSON, YOLO-seg, COCO polygons and SVG at the chosen detail; a hidden object is left out of them."""
    out = _click(service, _open(service, photo), 250, 150)
    out = app.add_object(service, out[OUT["state"]], 0.5, True)
    out = _click(service, out, 100, 80)
    out = app.add_object(service, out[OUT["state"]], 0.5, True)
    out = _click(service, out, 400, 220)
    state = app.toggle_object(service, out[OUT["state"]], 0.5, True)[OUT["state"]]  # hides object 3
    state = replace(state, editor=state.editor.rename(1, "left one"))
    files = {Path(f).name: Path(f) for f in app.export_files(service, state, 0)}
    masks = [np.asarray(Image.open(files[f"photo_object{i}_mask.png"])) == 255 for i in (1, 2)]
    geo = json.loads(files["photo_polygons.geojson"].read_text())
    assert [f["properties"]["name"] for f in geo["features"]] == ["left one", "Object 2"]
    assert geo["tolerance_px"] == 0 and geo["image"] == {"width": 500, "height": 300, "file_name": "photo.png"}
    for feature, mask in zip(geo["features"], masks):
        np.testing.assert_array_equal(vector.rasterize(shape(feature["geometry"]), (300, 500)), mask)
        assert feature["properties"]["bbox"] == mask_bbox(mask) and feature["properties"]["area"] == mask.sum()
    assert files["photo_yolo_classes.txt"].read_text() == "left one\nObject 2\n"
    lines = files["photo_yolo_seg.txt"].read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["0", "1"]
    for line, mask in zip(lines, masks):  # the discs have no holes: the outer ring is the whole mask
        xy = np.array(line.split()[1:], float).reshape(-1, 2) * (500, 300)
        np.testing.assert_array_equal(vector.rasterize(Polygon(xy), (300, 500)), mask)
    from pycocotools.coco import COCO

    coco = COCO(str(files["photo_coco_polygons.json"]))
    for ann, mask in zip(coco.loadAnns(coco.getAnnIds()), masks):
        np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), mask)
    # QGIS opens a .geojson through GDAL's GeoJSON driver; pyogrio reads it with that driver
    info = pyogrio.read_info(files["photo_polygons.geojson"])
    assert (info["driver"], info["features"], info["geometry_type"]) == ("GeoJSON", 2, "MultiPolygon")
    _, _, wkb, fields = pyogrio.raw.read(files["photo_polygons.geojson"])
    assert list(fields[list(info["fields"]).index("name")]) == ["left one", "Object 2"]
    for geometry, mask in zip(shapely.from_wkb(wkb), masks):
        np.testing.assert_array_equal(vector.rasterize(geometry, (300, 500)), mask)
    svg = files["photo_outlines.svg"].read_text()
    assert svg.count("<path ") == 2 and 'fill-rule="evenodd"' in svg
    coarse = {Path(f).name: Path(f) for f in app.export_files(service, state, 5)}
    assert len(coarse["photo_outlines.svg"].read_text()) < len(svg)
    with pytest.raises(gr.Error, match="tolerance"):
        app.export_files(service, state, -1)


def test_encoder_flag_and_environment_reach_the_predictor(analytic_dir, monkeypatch):
    base = ["--model-dir", str(analytic_dir), "--threads", "1", "--no-warmup"]
    assert app.make_service(app.parse_args([*base, "--encoder", "int8"])).predictor.info.encoder_name == "int8"
    monkeypatch.setenv("SAM_ONNX_ENCODER", "fp32")
    info = app.make_service(app.parse_args(base)).predictor.info
    assert (info.encoder_name, info.encoder_selection) == ("fp32", "forced")
    monkeypatch.delenv("SAM_ONNX_ENCODER", raising=False)
    assert app.make_service(app.parse_args(base)).predictor.info.encoder_selection.startswith("auto")
    with pytest.raises(SystemExit):
        app.parse_args([*base, "--encoder", "turbo"])


# ---------------------------------------------------------------------------- refine (issue 19)
def _refine(service, out):
    state = out[OUT["state"]]
    return app.apply_refine(service, app.run_refine(service, state), state, 0.5, True)


def test_refine_shows_the_sharper_mask_with_its_time_and_undo_takes_it_back(service, tmp_path):
    path = tmp_path / "big.png"
    Image.fromarray(make_rgb(1200, 1600, seed=3)).save(path)
    clicked = _click(service, _open(service, path), 521, 365)  # original pixels (shown at 1536 x 1152)
    refined = _refine(service, clicked)
    state = refined[OUT["state"]]
    crop = state.editor.selected.crop
    assert crop is not None and "refined in" in refined[OUT["status"]] and f"crop {crop.crop_hw[1]}×" in \
        refined[OUT["status"]]
    assert "refined" in refined[OUT["objects_html"]]
    assert scene_of(refined)["objects"][0]["layer"] != scene_of(clicked)["objects"][0]["layer"]
    undone = app.undo(service, state, 0.5, True)
    assert undone[OUT["state"]].editor.selected.crop is None
    assert scene_of(undone)["objects"] == scene_of(clicked)["objects"]


def test_refine_without_prompts_is_a_message_and_changes_nothing(service, photo):
    out = _open(service, photo)
    with pytest.raises(gr.Error, match="no prompts"):
        app.run_refine(service, out[OUT["state"]])


def test_a_refine_of_the_previous_image_is_not_applied_to_the_new_one(service, photo, tmp_path):
    first = _click(service, _open(service, photo), 120, 200)
    refinement = app.run_refine(service, first[OUT["state"]])
    other = tmp_path / "other.png"
    Image.fromarray(make_rgb(200, 300, seed=5)).save(other)
    second = app.show_image(service, app.open_image(service, str(other)), 0.5, True, first[OUT["state"]])
    assert app.apply_refine(service, refinement, second[OUT["state"]], 0.5, True) == app.unchanged()


# ---------------------------------------------------------------------------------------------- brush and eraser
def _stroke(service, out, points, radius, erase=False):
    return app.paint_stroke(service, out[OUT["state"]], {"points": points, "radius": radius, "erase": erase}, 0.5,
                            True)


def _exported_mask(service, state, object_id=1):
    files = app.export_files(service, state, 0)
    return np.asarray(Image.open(next(f for f in files if f.endswith(f"_object{object_id}_mask.png")))) == 255


def test_brush_and_eraser_change_the_exported_mask_exactly_where_painted(service, photo):
    from tests.test_strokes import brute_force

    hw = (300, 500)
    out = _click(service, _open(service, photo), 250, 150)
    sam = _exported_mask(service, out[OUT["state"]])  # SAM's mask alone (checked pixel by pixel above)
    add = [[20, 20], [120, 60], [200, 40]]
    out = _stroke(service, out, add, 6.5)
    out = _stroke(service, out, [[250, 150], [260, 160]], 9, erase=True)
    painted = (sam | brute_force(add, 6.5, hw)) & ~brute_force([[250, 150], [260, 160]], 9, hw)
    state = out[OUT["state"]]
    np.testing.assert_array_equal(_exported_mask(service, state), painted)
    assert shown_union(service, out)[20, 20]  # drawn at once
    # undo takes back one stroke at a time
    once = app.undo(service, state, 0.5, True)
    np.testing.assert_array_equal(_exported_mask(service, once[OUT["state"]]), sam | brute_force(add, 6.5, hw))
    twice = app.undo(service, once[OUT["state"]], 0.5, True)
    np.testing.assert_array_equal(_exported_mask(service, twice[OUT["state"]]), sam)
    # a new click decodes SAM's part again and keeps the strokes
    clicked = _click(service, out, 268, 150, app.MODE_NEGATIVE)
    sam2 = _exported_mask(service, _click(service, _click(service, _open(service, photo), 250, 150), 268, 150,
                                          app.MODE_NEGATIVE)[OUT["state"]])
    assert (sam2 != sam).any()  # the exclude point changed SAM's part
    np.testing.assert_array_equal(_exported_mask(service, clicked[OUT["state"]]),
                                  (sam2 | brute_force(add, 6.5, hw)) & ~brute_force([[250, 150], [260, 160]], 9, hw))
    # the prompts file keeps the strokes: loaded into a fresh session, the export is the same
    files = app.export_files(service, clicked[OUT["state"]], 0)
    saved = next(f for f in files if f.endswith("_prompts.json"))
    assert len(json.loads(Path(saved).read_text())["objects"][0]["strokes"]) == 2
    reloaded = app.load_prompts(service, _open(service, photo)[OUT["state"]], saved, 0.5, True)
    np.testing.assert_array_equal(_exported_mask(service, reloaded[OUT["state"]]),
                                  _exported_mask(service, clicked[OUT["state"]]))
    # GeoJSON at detail 0 is the painted mask too (less the specks the eraser left: parts under 16 px)
    geo = json.loads(Path(next(f for f in files if f.endswith(".geojson"))).read_text())
    np.testing.assert_array_equal(vector.rasterize(shape(geo["features"][0]["geometry"]), hw),
                                  vector.drop_specks(_exported_mask(service, clicked[OUT["state"]])))


@pytest.mark.parametrize("stroke,message", [
    ({"points": [[10, 10]], "radius": 0}, "radius"),
    ({"points": [[900, 10]], "radius": 3}, "off the image"),
    ("{not json", "not valid JSON"),
    ({"points": [[1, 1]] * 5000, "radius": 3}, "at most"),
])
def test_a_bad_stroke_is_refused_and_changes_nothing(service, photo, stroke, message):
    out = _click(service, _open(service, photo), 250, 150)
    with pytest.raises(gr.Error, match=message):
        app.paint_stroke(service, out[OUT["state"]], stroke, 0.5, True)
    assert out[OUT["state"]].editor.selected.strokes == ()


def test_painting_needs_an_object_with_prompts(service, photo):
    with pytest.raises(gr.Error, match="first, then paint"):
        app.paint_stroke(service, _open(service, photo)[OUT["state"]], {"points": [[5, 5]], "radius": 3}, 0.5, True)


def test_a_new_image_cancels_the_tabs_running_refine(service, photo, tmp_path, monkeypatch):
    """A refine whose crop is being encoded when the tab opens another image ends without a result."""
    import threading
    from types import SimpleNamespace

    request = SimpleNamespace(session_hash="tab-refine-cancel")
    first = _click(service, _open(service, photo), 120, 200)
    encoding, release = threading.Event(), threading.Event()
    real = service.crop_embedding

    def slow_crop_embedding(record, crop, abort=None):
        encoding.set()
        release.wait(10)
        return real(record, crop, abort)

    monkeypatch.setattr(service, "crop_embedding", slow_crop_embedding)
    outcome = []
    thread = threading.Thread(target=lambda: outcome.append(app.run_refine(service, first[OUT["state"]], request)))
    thread.start()
    assert encoding.wait(10)
    other = tmp_path / "other.png"
    Image.fromarray(make_rgb(200, 300, seed=6)).save(other)
    app.show_image(service, app.open_image(service, str(other)), 0.5, True, first[OUT["state"]], request)
    release.set()
    thread.join(10)
    assert outcome == [None]


def test_a_newer_upload_or_a_tab_that_left_stops_the_tabs_upload_in_its_encoder_run(predictor, tmp_path):
    """Issue 22: the tab's upload being encoded is stopped mid-run when the tab opens another image
    (``stop_tab_work``, sent before the new upload) or is closed or reloaded (``leave_tab``): the photo step was
    shown, the ready step never comes, and the encoder is free."""
    import threading
    from types import SimpleNamespace

    from tests.test_abort import StoppableEncoder

    encoder = StoppableEncoder(predictor.encoder)
    slow = SegmentationService(predictor.with_encoder(encoder, None), image_cache_mb=64)
    request = SimpleNamespace(session_hash="tab-upload-stop")
    stops = {"another image": lambda: app.stop_tab_work(slow, None, request),
             "the tab left": lambda: app.leave_tab(slow, request)}
    for k, (why, stop) in enumerate(stops.items()):
        path = tmp_path / f"photo{k}.png"
        Image.fromarray(make_rgb(90, 120, seed=30 + k)).save(path)
        steps: list = []
        thread = threading.Thread(target=lambda: steps.extend(app.upload(slow, str(path), None, 0.5, True, None,
                                                                         request)))
        thread.start()
        assert encoder.running.wait(10), why
        stop()
        thread.join(10)
        assert not thread.is_alive() and encoder.runs[-1] == "stopped", f"{why}: the encoder run went on"
        assert len(steps) == 1 and OUT["state"] < len(steps[0]), f"{why}: {len(steps)} steps shown"
    assert not slow.cancels._events, "a stopped upload left its cancel flag behind"


# ---------------------------------------------------------------------------- refine while zoomed (issue 19 item 3)
@pytest.fixture(scope="module")
def zoom_service(predictor):
    return SegmentationService(predictor, display_max_side=1536, image_cache_mb=256, encode_zoomed_views=True)


def _zoom(service, state, rect):
    """The page's `zoomed` event, then the chained background encode and its application, as the app runs them."""
    state = app.zoomed(service, state, _event({} if rect is None else {"rect": rect}))
    if rect is None:
        return state
    applied = app.apply_zoomed(service, app.encode_zoomed(service, state), state)
    return state if isinstance(applied, dict) else applied  # a dict is gr.skip(): the state stays


def test_a_click_in_a_zoomed_view_decodes_at_the_views_resolution(zoom_service, tmp_path):
    path = tmp_path / "big.png"
    Image.fromarray(make_rgb(1200, 1600, seed=4)).save(path)
    opened = _open(zoom_service, path)
    state = _zoom(zoom_service, opened[OUT["state"]], [800.0, 500.0, 1200.5, 800.25])
    assert state.view_crop is not None and state.view_crop.box == (800, 500, 1201, 801)
    out = _click(zoom_service, [state if i == OUT["state"] else v for i, v in enumerate(opened)], 1000, 650)
    obj = out[OUT["state"]].editor.selected
    assert obj.crop == state.view_crop, "decoded on the zoomed view's embedding"
    result = zoom_service.object_results(out[OUT["state"]].record, [obj])[0]
    exact, unsure = am.pipeline_mask([(200, 150)], [1], None, obj.crop.crop_hw)
    assert not ((result.best_mask[obj.crop.slices] != exact) & ~unsure).any()
    # A view's encode that finishes after the user zoomed elsewhere is not applied to the new view.
    first = app.zoomed(zoom_service, state, _event({"rect": [0.0, 0.0, 400.0, 300.0]}))
    encoded = app.encode_zoomed(zoom_service, first)
    moved = app.zoomed(zoom_service, first, _event({"rect": [1000.0, 800.0, 1400.0, 1100.0]}))
    assert isinstance(app.apply_zoomed(zoom_service, encoded, moved), dict)  # gr.skip(): unchanged
    # Zoomed out: clicks decode on the whole image again.
    out_state = _zoom(zoom_service, out[OUT["state"]], None)
    assert out_state.view is None and out_state.view_crop is None


def test_zoomed_views_are_ignored_when_off_and_bad_ones_refused(service, zoom_service, photo):
    state = _open(service, photo)[OUT["state"]]
    assert _zoom(service, state, [100.0, 100.0, 300.0, 250.0]).view_crop is None  # --zoom-encode off: no encode
    for bad in ({"rect": [0, 0, 600, 100]}, {"rect": "all"}, {"rect": [0, 0, float("nan"), 1]}, "x"):
        with pytest.raises(gr.Error, match="zoomed view"):
            app.zoomed(zoom_service, state, _event(bad))


def test_a_new_image_cancels_the_zoomed_views_encode_and_drops_the_view(zoom_service, photo, tmp_path, monkeypatch):
    """The view's encode waits behind a busy encoder (lowest priority); a new image withdraws it: nothing is
    encoded for the old view, and the new image starts unzoomed."""
    import threading

    big = tmp_path / "big.png"
    Image.fromarray(make_rgb(1200, 1600, seed=5)).save(big)
    state = app.zoomed(zoom_service, _open(zoom_service, big)[OUT["state"]], _event({"rect": [0, 0, 400, 300]}))
    loaded = app.open_image(zoom_service, str(photo))  # the new image, read and encoded before the encoder is busy
    outcome = []
    with turn_held_elsewhere(zoom_service.encoder_gate, "another-upload"):
        encoder = threading.Thread(target=lambda: outcome.append(app.encode_zoomed(zoom_service, state)))
        encoder.start()
        deadline = time.monotonic() + 10
        while zoom_service.encoder_gate.waiting() < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert zoom_service.encoder_gate.waiting() == 1, "the view's encode waits behind the busy encoder"
        new = app.show_image(zoom_service, loaded, 0.5, True, state)
        encoder.join(10)
    assert outcome == [None]
    assert zoom_service._images.get(("crop", state.record.key, (0, 0, 400, 300))) is None, "nothing encoded"
    assert new[OUT["state"]].view is None and new[OUT["state"]].view_crop is None
