"""The files users take away and bring back (sam_demo.bundle): the prompts file's format and checks."""

from __future__ import annotations

import pytest

from sam_demo import bundle
from sam_demo.editor import Editor
from sam_onnx import CropFrame, InvalidPromptError

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
    (lambda d: d["objects"][0].update(crop=[100, 100, 200, 200]), "does not hold"),
])
def test_prompts_file_errors(mutate, message):
    data = bundle.prompts_file_dict(Editor.start(HW).add_point(1, 1))
    mutate(data)
    with pytest.raises(InvalidPromptError, match=message):
        bundle.editor_from_prompts_file(data, HW)
