"""The files users take away and bring back (sam_demo.bundle): the prompts file's format and checks."""

from __future__ import annotations

import pytest

from sam_demo import bundle
from sam_demo.editor import Editor
from sam_onnx import InvalidPromptError

HW = (300, 500)


def test_prompts_file_round_trip():
    ed = (Editor.start(HW).add_point(10.5, 20, 1).box_corner(5, 5).box_corner(100, 90)
          .add_object().add_point(200, 100, 0).choose_candidate(2, 1).rename(2, "shadow").set_visible(1, False))
    data = bundle.prompts_file_dict(ed, image_sha256="abc")
    back = bundle.editor_from_prompts_file(data, HW)
    assert back.objects == ed.objects and back.hidden == ed.hidden
    assert data["image"] == {"width": 500, "height": 300, "sha256": "abc"}


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d.update(format="other"), "not a prompts file"),
    (lambda d: d["image"].update(width=501), "made for a 501×300 image"),
    (lambda d: d["objects"][0].update(points=[[600, 1, 1]]), "outside"),
    (lambda d: d["objects"][0].update(candidate=7), "mask choice"),
    (lambda d: d["objects"].append(dict(d["objects"][0])), "distinct"),
    (lambda d: d.update(objects="x"), "must be a list"),
])
def test_prompts_file_errors(mutate, message):
    data = bundle.prompts_file_dict(Editor.start(HW).add_point(1, 1))
    mutate(data)
    with pytest.raises(InvalidPromptError, match=message):
        bundle.editor_from_prompts_file(data, HW)
