"""Rows B1-B13 of docs/reliability.md: bad, forged and racing prompts, through the real server.

Clicks reach the app two ways: the image view's ``prompt`` event (original pixels in event
data a caller can forge) and the scripted ``/click`` API (plain
numbers, NaN and ``Infinity`` included). Each test checks the message the user sees and that
the picture, masks and prompts are what they were. ``pytest tests/reliability -k B5_``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import app
from sam_demo.editor import MAX_OBJECTS
from sam_onnx.types import MAX_POINTS_PER_OBJECT
from tests.reliability.conftest import PHOTO_HW, assert_message
from tools.rawapi import file_data, prompt_data

H, W = PHOTO_HW
UPLOAD_FIRST = r"^Upload an image first"


def segment(session, prompts) -> object:
    path = session.upload(session_photo(session), "p.png")
    return session.call("segment", [file_data(path), prompts])


def session_photo(session) -> bytes:
    from tests.reliability.conftest import png_bytes, smooth_rgb

    return png_bytes(smooth_rgb(H, W, seed=3))


def test_B1_every_edit_before_an_upload_says_upload_first(raw):
    assert_message(raw.click(5, 5), UPLOAD_FIRST)
    assert_message(raw.ui_click([5, 5]), UPLOAD_FIRST)
    for api in ("undo", "redo", "clear_object", "clear_all", "add_object", "toggle_object", "delete_object", "export"):
        data = [] if api == "export" else [0.5, True]
        assert_message(raw.call(api, data), UPLOAD_FIRST)
    assert_message(raw.call("choose_mask", [2, 0.5, True]), UPLOAD_FIRST)


@pytest.mark.parametrize("x, y", [(-5, 10), (W, 10), (10, H), (10, -0.5), (W + 1000, H + 1000)])
def test_B2_click_outside_the_image(work, x, y):
    assert_message(work.session.click(x, y), r"^Click inside the image\.$")
    assert_message(work.session.ui_click([x, y]), r"^Click inside the image\.$")
    work.assert_unchanged()


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_B3_non_finite_coordinates_are_refused_before_the_model(work, literal):
    session = work.session
    mode = json.dumps(app.MODE_POSITIVE)
    for args in (f"{literal}, 5", f"5, {literal}"):
        body = f'{{"data": [{args}, {mode}, 0.5, true], "session_hash": "{session.session_hash}"}}'.encode()
        assert_message(session.call("click", [], raw_body=body), r"finite numbers|not understood")
        join = (f'{{"data": [null, {mode}, 0.5, true], "fn_index": {session.fns["ui_click"]}, '
                f'"session_hash": "{session.session_hash}", "event_data": '
                f'{{"kind": "click", "x": {args.split(", ")[0]}, "y": {args.split(", ")[1]}}}}}')
        event = session.http.post("/gradio_api/queue/join", content=join.encode(),
                                  headers={"content-type": "application/json"}).json()["event_id"]
        assert_message(session.wait(event), r"finite numbers")
    bad_segment = f'[{{"points": [[{literal}, 5, 1]]}}]'
    assert_message(segment(session, json.loads(bad_segment)), r"finite number")
    work.assert_unchanged()


@pytest.mark.parametrize("value", ["abc", [1, 2], {}, None])
def test_B4_non_numeric_coordinates(work, value):
    assert_message(work.session.click(value, 5), r"not understood|finite")
    work.assert_unchanged()


@pytest.mark.parametrize("index", ["abc", [1], [1e12, 5], [[1, 2], 3], None, {"x": 1}, [1, 2, 3], "", ["x", "y"]])
def test_B5_forged_select_data_on_the_image(work, index):
    assert_message(work.session.ui_click(index), r"not understood|inside the image|finite")
    work.assert_unchanged()


@pytest.mark.parametrize("index", ["1", 3, -1, 1.5, None, [0], True])
def test_B5_forged_select_data_on_the_candidates(work, index):
    outcome = work.session.join("ui_choose_mask", [None, 0.5, True], event_data={"index": index, "value": None})
    assert_message(outcome, r"^Choose mask 1, 2 or 3\.$")
    for number in ("2", 4, -1, 1.5, [1]):
        assert_message(work.session.call("choose_mask", [number, 0.5, True]), r"Choose mask 1, 2 or 3|not understood")
    work.assert_unchanged()


def test_B6_box_drawn_backwards_is_sorted(raw, photo_bytes):
    assert raw.load_bytes(photo_bytes).ok
    assert raw.click(140, 100, app.MODE_BOX).ok
    assert "opposite corner" in raw.status()
    assert raw.click(20, 10, app.MODE_BOX).ok
    assert raw.snapshot().objects[0]["box"] == [20, 10, 140, 100]


@pytest.mark.parametrize("second", [(30, 80), (90, 30), (30, 30)], ids=["same-column", "same-row", "same-pixel"])
def test_B7_box_without_area_is_refused(work, second):
    session = work.session
    assert session.click(30, 30, app.MODE_BOX).ok
    assert_message(session.click(*second, app.MODE_BOX), r"same row or column")
    work.assert_unchanged()  # (the half-drawn box is dropped when the object is re-selected)


def test_B8_point_cap_per_object_and_oversized_requests(work):
    session = work.session
    for k in range(MAX_POINTS_PER_OBJECT - 2):  # the session already has 2 points
        assert session.click(5 + (k % 15) * 10, 5 + (k // 15) * 10).ok
    full = session.snapshot()
    assert len(full.objects[0]["points"]) == MAX_POINTS_PER_OBJECT
    assert_message(session.click(150, 110), rf"^At most {MAX_POINTS_PER_OBJECT} points per object")
    full.assert_same(session.snapshot())
    # One API request with 10 000 points, or with thousands of objects, is refused before any decoding.
    many_points = [{"points": [[i % W, i // W % H, 1] for i in range(10_000)]}]
    assert_message(segment(session, many_points), rf"At most {MAX_POINTS_PER_OBJECT} points per object")
    many_objects = [{"points": [[i % W, 5, 1]]} for i in range(5_000)]
    assert_message(segment(session, many_objects), rf"^At most {MAX_OBJECTS} objects per request")


def test_B9_negative_only_prompt_is_allowed(raw, photo_bytes):
    assert raw.load_bytes(photo_bytes).ok
    out = raw.click(60, 60, app.MODE_NEGATIVE)
    assert out.ok
    assert "IoU" in raw.output("objects_html")
    result = segment(raw, [{"points": [[60, 60, 0]]}])
    assert result.ok and result.data[0]["objects"][0]["area"] == 0  # SAM finds nothing: an empty mask, no error


@pytest.mark.parametrize("label", [7, 2, 3, -1, -3, 0.5, "1", True])
def test_B10_labels_other_than_include_or_exclude(work, label):
    assert_message(segment(work.session, [{"points": [[10, 10, label]]}]), r"label must be 1 \(positive\) or 0")
    assert_message(work.session.click(10, 10, "exclude-but-stronger"), r"not in the list of choices")
    work.assert_unchanged()


@pytest.mark.parametrize("prompts, pattern", [
    ([{"points": [[10, 10, 1]], "box": [[0, 0, 50, 50], [10, 10, 60, 60]]}], r"'box' must be \[x0, y0, x1, y1\]"),
    ([{"box": [0, 0, 50]}], r"'box' must be \[x0, y0, x1, y1\]"),
    ([{"box": [10, 10, 10, 50]}], r"has no area"),
    ([{"points": [[10, 10, 1, 9]]}], r"each point must be \[x, y\]"),
    ([{"points": "10,10"}], r"'points' must be a list"),
    ([[10, 10, 1]], r"prompts must be a mapping"),
    ({"points": [], "box": None}, r"^Add a point or a box first"),
    ([], r"Give at least one object"),
    ("{not json", r"prompts must be JSON"),
    ([{"box": [0, 0, W + 1, H]}], r"extends outside"),
], ids=["two-boxes", "short-box", "flat-box", "long-point", "points-string", "not-a-mapping", "empty-object",
        "no-objects", "bad-json", "box-outside"])
def test_B11_illegal_prompt_combinations_are_refused(work, prompts, pattern):
    assert_message(segment(work.session, prompts), pattern)
    work.assert_unchanged()


def test_B12_a_burst_of_clicks_is_applied_in_full_without_interleaving(work):
    session = work.session
    clicks = [(5 + 7 * k, 100 + (k % 3)) for k in range(20)]
    events = [session.submit("ui_click", [None, app.MODE_POSITIVE, 0.5, True],
                             event_data=prompt_data(list(xy))) for xy in clicks]
    outcomes = session.collect(events)
    assert all(o.ok for o in outcomes.values()), [o for o in outcomes.values() if not o.ok]
    points = session.snapshot().objects[0]["points"]
    assert [p[:2] for p in points[:2]] == [[60, 50], [75, 50]]  # the work from before is kept, first
    assert sorted(tuple(p[:2]) for p in points[2:]) == sorted(clicks)  # every click once, none lost or doubled
    counts = [len(json.dumps(o.data[app.OUTPUT_NAMES.index("objects_html")])) for o in outcomes.values()]
    assert len(counts) == len(clicks)


def test_B13_undo_redo_and_clear_with_nothing_to_do_are_no_ops(raw, photo_bytes):
    assert raw.load_bytes(photo_bytes).ok
    fresh = raw.overlay()
    for api in ("undo", "redo", "clear_object", "clear_all"):
        outcome = raw.call(api, [0.5, True])
        assert outcome.ok, (api, outcome)
        assert np.array_equal(raw.overlay(outcome), fresh)
    assert_message(raw.call("export", []), r"^Nothing to export yet")
