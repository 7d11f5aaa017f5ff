"""The files users take away and bring back (sam_demo.bundle): the prompts file's format and checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sam_demo import bundle
from sam_demo.editor import MAX_OBJECTS, MAX_STROKE_POINTS_PER_IMAGE, Editor, ObjectState
from sam_demo.limits import parse_json
from sam_onnx import MAX_POINTS_PER_OBJECT, Box, CropFrame, InvalidPromptError, Point, Prompts
from sam_onnx.strokes import Stroke

HW = (300, 500)


def test_prompts_file_round_trip():
    ed = (Editor.start(HW).add_point(10.5, 20, 1).box_corner(5, 5).box_corner(100, 90)
          .add_object().add_point(200, 100, 0).choose_candidate(2, 1).rename(2, "shadow").set_visible(1, False)
          .add_object().add_point(300, 200).refine(3, CropFrame(HW, (200, 100, 456, 300))))
    data = bundle.prompts_file_dict(ed, image_sha256="abc")
    back = bundle.editor_from_prompts_file(data, HW)
    assert back.objects == ed.objects and back.hidden == ed.hidden
    assert data["image"] == {"width": 500, "height": 300, "sha256": "abc"}
    assert data["format"] == "sam_onnx.session/2"
    assert [o["crop"] for o in data["objects"]] == [None, None, [200, 100, 456, 300]]


def test_a_version_1_file_still_loads_as_objects_without_a_crop():
    """A file saved before refinement existed (format 1, no "crop" entries) loads as it did."""
    version_1 = {"format": "sam_onnx.session/1", "image": {"width": 500, "height": 300, "sha256": None},
                 "objects": [{"id": 4, "name": "cup", "color_index": 2, "visible": True, "candidate": None,
                              "points": [[10, 20, 1]], "box": [5, 5, 100, 90]}]}
    (obj,) = bundle.editor_from_prompts_file(version_1, HW).objects
    assert (obj.id, obj.name, obj.crop, obj.prompts.box.xyxy) == (4, "cup", None, (5, 5, 100, 90))


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d.update(format="other"), "not a prompts file"),
    (lambda d: d["image"].update(width=501), "made for a 501×300 image"),
    (lambda d: d["objects"][0].update(points=[[600, 1, 1]]), "outside"),
    (lambda d: d["objects"][0].update(candidate=7), "mask choice"),
    (lambda d: d["objects"].append(dict(d["objects"][0])), "distinct"),
    (lambda d: d.update(objects="x"), "must be a list"),
    (lambda d: d["objects"][0].update(crop=[0, 0, 600, 10]), "not a rectangle inside"),
    (lambda d: d["objects"][0].update(crop=[0, 0, 10.5, 10]), "whole pixels"),
    (lambda d: d["objects"][0].update(crop="all"), "whole pixels"),
    (lambda d: d["objects"][0].update(crop=[100, 100, 200, 200]), "does not hold its include points"),
])
def test_prompts_file_errors(mutate, message):
    data = bundle.prompts_file_dict(Editor.start(HW).add_point(1, 1))
    mutate(data)
    with pytest.raises(InvalidPromptError, match=message):
        bundle.editor_from_prompts_file(data, HW)


# ---------------------------------------------------------------------------------------------- colours
def test_a_chosen_colour_is_saved_and_loaded_and_files_without_one_show_the_palette_colour():
    ed = Editor.start(HW).add_point(10, 20).set_color(1, "#0A0b0C").add_object().add_point(200, 100)
    data = json.loads(json.dumps(bundle.prompts_file_dict(ed, "abc")))
    assert [o["color"] for o in data["objects"]] == ["#0a0b0c", "#56b4e9"]  # the second: its palette colour
    assert [o["color_index"] for o in data["objects"]] == [0, 1]
    back = bundle.editor_from_prompts_file(data, HW)
    assert back.objects == ed.objects and back.objects[1].color is None
    for old in ({**data, "format": "sam_onnx.session/1"}, data):  # a version 1 file, and one saved before colours
        objects = [{k: v for k, v in o.items() if k != "color"} for o in data["objects"]]
        assert [o.rgb for o in bundle.editor_from_prompts_file({**old, "objects": objects}, HW).objects] == [
            (230, 159, 0), (86, 180, 233)]
    data["objects"][0]["color"] = None
    assert bundle.editor_from_prompts_file(data, HW).objects[0].rgb == (230, 159, 0)


@pytest.mark.parametrize("bad", ["#abc", "orange", "#12345G", 0, ["#123456"], {"r": 1}, "#1234567"])
def test_a_bad_colour_in_a_prompts_file_is_refused_with_the_objects_number(bad):
    data = bundle.prompts_file_dict(Editor.start(HW).add_point(1, 1).add_object().add_point(5, 5))
    data["objects"][1]["color"] = bad
    with pytest.raises(InvalidPromptError, match=r"^Object 2: A colour must be written #rrggbb"):
        bundle.editor_from_prompts_file(data, HW)


# ---------------------------------------------------------------------------------------------- strokes
def _stroke(x, y, radius=4.0, erase=False):
    return Stroke(((float(x), float(y)), (float(x) + 10, float(y) + 5)), radius, erase)


def test_strokes_round_trip_in_the_prompts_file_and_version_1_files_still_load():
    ed = (Editor.start(HW).add_point(10, 20).add_stroke(_stroke(30, 40)).add_stroke(_stroke(35, 40, 2, True))
          .add_object().add_point(200, 100))
    data = json.loads(json.dumps(bundle.prompts_file_dict(ed, "abc")))
    assert data["format"] == "sam_onnx.session/2"
    assert data["objects"][0]["strokes"][1] == {"points": [[35.0, 40.0], [45.0, 45.0]], "radius": 2.0, "erase": True}
    assert data["objects"][1]["strokes"] is None
    back = bundle.editor_from_prompts_file(data, HW)
    assert back.objects == ed.objects
    old = {**data, "format": "sam_onnx.session/1",
           "objects": [{k: v for k, v in o.items() if k not in ("strokes", "crop")} for o in data["objects"]]}
    assert bundle.editor_from_prompts_file(old, HW).objects[0].strokes == ()


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d["objects"][0].update(strokes="x"), "must be a list"),
    (lambda d: d["objects"][0].update(strokes=[{"points": [[1, 1]], "radius": -1}]), "radius"),
    (lambda d: d["objects"][0].update(strokes=[{"points": [[1, 1]], "radius": 2}] * 101), "At most 100 strokes"),
    (lambda d: d["objects"][0].update(points=[], box=None), "strokes but no prompts"),
])
def test_bad_strokes_in_a_prompts_file_are_refused(mutate, message):
    data = bundle.prompts_file_dict(Editor.start(HW).add_point(1, 1).add_stroke(_stroke(5, 5)))
    mutate(data)
    with pytest.raises(InvalidPromptError, match=message):
        bundle.editor_from_prompts_file(data, HW)


def test_the_largest_editor_saves_a_prompts_file_that_loads():
    """256 objects of 32 points and strokes of MAX_STROKE_POINTS_PER_IMAGE points: the file fits the JSON limits."""
    rng = np.random.default_rng(3)
    prompts = [Prompts(tuple(Point(float(x), float(y), 1) for x, y in rng.uniform(0, 299, (MAX_POINTS_PER_OBJECT, 2))),
                       Box(1.5, 2.5, 250.25, 280.75)) for _ in range(MAX_OBJECTS)]
    ed = Editor.from_objects(HW, [ObjectState(1, "Object 1", prompts[0])]).add_objects(prompts[1:])
    points_per_stroke = 500
    wiggle = [(float(x) + 0.123456, float(y) + (i % 2) * 3.654321) for i, (x, y) in
              enumerate(zip(np.linspace(0, 499, points_per_stroke), np.linspace(0, 299, points_per_stroke)))]
    for _ in range(MAX_STROKE_POINTS_PER_IMAGE // points_per_stroke):
        ed = ed.add_stroke(Stroke(tuple(wiggle), 999.5))
    with pytest.raises(InvalidPromptError, match="reached"):
        ed.add_stroke(Stroke(((1.0, 1.0),), 3))
    text = json.dumps(bundle.prompts_file_dict(ed, "f" * 64), indent=1)
    loaded = bundle.editor_from_prompts_file(parse_json(text, "The prompts file", max_bytes=bundle.PROMPTS_FILE_MAX_BYTES),
                                             HW)
    assert sum(len(s.points) for o in loaded.objects for s in o.strokes) == MAX_STROKE_POINTS_PER_IMAGE
