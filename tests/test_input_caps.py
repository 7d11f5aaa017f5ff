"""The caps on what one ``/segment`` call and one prompts file may hold, each exactly at its limit and one over
(issue 21): objects and megapixels of ``/segment``, and a prompts file's bytes, nesting, values, objects, points
and ids. At the limit the input passes every check; one over, it is refused with the message users see.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from sam_demo import bundle, limits
from sam_demo.editor import MAX_OBJECTS, Editor, ObjectState
from sam_demo.service import MAX_SEGMENT_MEGAPIXELS, SegmentationService
from sam_onnx.errors import InvalidPromptError
from sam_onnx.types import MAX_POINTS_PER_OBJECT, Point, Prompts

LARGEST_PROMPTS_FILE_BYTES = 750_000
"""What sam_demo.bundle.PROMPTS_FILE_MAX_BYTES's docstring says of the largest prompts file (measured: 704,237 since
every object carries its ``"color"``; 693,213 before)."""
LARGEST_REQUEST_BYTES = 360_000
"""What sam_demo.gradio_guard.MAX_BODY_BYTES's docstring says of the largest /segment request (measured: 357,046)."""
HW = (1000, 2000)
"""A 2 MP image: MAX_SEGMENT_MEGAPIXELS / 2 = 256 objects fit exactly."""
ONE_POINT = Prompts((Point(5, 5),))


class PassedTheChecks(Exception):
    """Raised where ``segment`` starts its work: the request got past every cap."""


@pytest.fixture
def service(predictor, monkeypatch) -> SegmentationService:
    service = SegmentationService(predictor)

    def open_image(path, **kwargs):
        raise PassedTheChecks

    monkeypatch.setattr(service, "open_image", open_image)
    return service


def _image(tmp_path, hw: tuple[int, int]) -> str:
    path = tmp_path / f"{hw[1]}x{hw[0]}.png"
    Image.new("RGB", (hw[1], hw[0]), "grey").save(path)
    return str(path)


def test_segment_takes_exactly_its_object_cap_and_refuses_one_more(service, tmp_path):
    image = _image(tmp_path, (64, 64))
    with pytest.raises(PassedTheChecks):
        service.segment(image, [ONE_POINT] * MAX_OBJECTS)
    with pytest.raises(InvalidPromptError, match=rf"^At most {MAX_OBJECTS} objects per request \(got 257\)\.$"):
        service.segment(image, [ONE_POINT] * (MAX_OBJECTS + 1))
    with pytest.raises(InvalidPromptError, match=r"^At most 256 objects per request \(got 257\)\.$"):
        limits.api_objects([{"points": [[5, 5, 1]]}] * (MAX_OBJECTS + 1))
    assert len(limits.api_objects([{"points": [[5, 5, 1]]}] * MAX_OBJECTS)) == MAX_OBJECTS


def test_segment_takes_exactly_its_megapixel_cap_and_refuses_one_pixel_row_more(service, tmp_path):
    objects = [ONE_POINT] * int(MAX_SEGMENT_MEGAPIXELS * 1e6 // (HW[0] * HW[1]))
    assert len(objects) * HW[0] * HW[1] == MAX_SEGMENT_MEGAPIXELS * 1e6  # exactly 512 MP
    with pytest.raises(PassedTheChecks):
        service.segment(_image(tmp_path, HW), objects)
    taller = (HW[0] + 1, HW[1])
    message = (r"^256 masks of a 2000×1001 image are 513 megapixels; one request may ask for 512\. "
               r"Send at most 255 objects per request for this image\.$")
    with pytest.raises(InvalidPromptError, match=message):
        service.segment(_image(tmp_path, taller), objects)
    with pytest.raises(PassedTheChecks):
        service.segment(_image(tmp_path, taller), objects[:255])


# ---------------------------------------------------------------------------- prompts files
def _editor(objects: int, points: int, hw: tuple[int, int] = HW, *, precise: bool = True) -> Editor:
    """``objects`` objects of ``points`` points and a box each, with full-precision coordinates and long names:
    the largest file the app can write for that many objects."""
    rng = np.random.default_rng(0)
    h, w = hw
    items = []
    for k in range(objects):
        xy = rng.uniform(0, 1, (points, 2)) * (w - 1, h - 1) if precise else np.full((points, 2), 5.0)
        items.append(ObjectState(k + 1, "Ö" * 60, Prompts(tuple(Point(float(x), float(y)) for x, y in xy)),
                                 color_index=k, candidate=2))
    return Editor.from_objects(hw, items)


def _write(tmp_path, text: str | bytes, name: str = "prompts.json") -> str:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return str(path)


def test_the_largest_prompts_file_the_app_writes_loads_back(tmp_path):
    """256 objects of 32 points with 17-digit coordinates and 60-letter non-ASCII names: within every cap."""
    text = bundle.prompts_file_text(_editor(MAX_OBJECTS, MAX_POINTS_PER_OBJECT), "0" * 64)
    assert len(text.encode()) < LARGEST_PROMPTS_FILE_BYTES <= bundle.PROMPTS_FILE_MAX_BYTES
    assert limits.json_shape(text).values <= limits.MAX_JSON_VALUES
    editor = bundle.read_prompts_file(_write(tmp_path, text), HW, "0" * 64)
    assert len(editor.objects) == MAX_OBJECTS
    assert all(len(o.prompts.points) == MAX_POINTS_PER_OBJECT for o in editor.objects)


def test_the_largest_segment_request_is_within_the_body_caps():
    obj = {"points": [[1999.123456789012, 999.987654321098, 1]] * MAX_POINTS_PER_OBJECT,
           "box": [1.5, 2.5, 1999.25, 999.75]}
    image = {"path": "/tmp/gradio/" + "a" * 64 + "/image.png", "meta": {"_type": "gradio.FileData"}}
    body = json.dumps({"data": [image, [obj] * MAX_OBJECTS], "session_hash": "abcdef123456"})
    assert len(body) < LARGEST_REQUEST_BYTES <= limits.MAX_JSON_BYTES
    assert limits.json_shape(body).values <= limits.MAX_JSON_VALUES
    assert len(limits.api_objects(json.loads(body)["data"][1])) == MAX_OBJECTS


def test_a_prompts_file_of_exactly_the_byte_cap_loads_and_one_byte_more_is_refused(tmp_path):
    text = bundle.prompts_file_text(_editor(2, 3))
    padded = text + " " * (bundle.PROMPTS_FILE_MAX_BYTES - len(text.encode()))
    assert len(bundle.read_prompts_file(_write(tmp_path, padded), HW, "x").objects) == 2
    with pytest.raises(InvalidPromptError, match=r"^The prompts file is larger than 2 MB\.$"):
        bundle.read_prompts_file(_write(tmp_path, padded + " "), HW, "x")


def test_a_prompts_file_may_hold_exactly_the_object_and_point_caps(tmp_path):
    at_cap = bundle.prompts_file_dict(_editor(MAX_OBJECTS, MAX_POINTS_PER_OBJECT, precise=False))
    assert len(bundle.editor_from_prompts_file(at_cap, HW).objects) == MAX_OBJECTS
    over = json.loads(json.dumps(at_cap))
    over["objects"].append({**over["objects"][-1], "id": MAX_OBJECTS + 1})
    with pytest.raises(InvalidPromptError, match=r"^'objects' must be a list of at most 256 objects\.$"):
        bundle.editor_from_prompts_file(over, HW)
    over = json.loads(json.dumps(at_cap))
    over["objects"][7]["points"].append([5.0, 5.0, 1])
    with pytest.raises(InvalidPromptError, match=r"^Object 8: At most 32 points per object \(got 33\)"):
        bundle.editor_from_prompts_file(over, HW)


@pytest.mark.parametrize(("object_id", "ok"), [(1, True), (bundle.MAX_OBJECT_ID, True), (0, False),
                                               (bundle.MAX_OBJECT_ID + 1, False)])
def test_object_ids_at_both_ends_of_their_range(object_id, ok):
    document = bundle.prompts_file_dict(_editor(1, 1, precise=False))
    document["objects"][0]["id"] = object_id
    if ok:
        assert bundle.editor_from_prompts_file(document, HW).objects[0].id == object_id
    else:
        with pytest.raises(InvalidPromptError, match=r"^Object 1: 'id' must be a whole number from 1 to 2147483647"):
            bundle.editor_from_prompts_file(document, HW)


def test_prompts_file_nesting_and_value_count_at_their_caps(tmp_path):
    deep_ok = "[" * limits.MAX_JSON_DEPTH + "]" * limits.MAX_JSON_DEPTH
    with pytest.raises(InvalidPromptError, match=r"^This is not a prompts file saved by this app\.$"):
        bundle.read_prompts_file(_write(tmp_path, deep_ok), HW, "x")  # parsed: only its content is wrong
    with pytest.raises(InvalidPromptError, match=r"^The prompts file is nested more than 32 levels deep\.$"):
        bundle.read_prompts_file(_write(tmp_path, "[" + deep_ok + "]"), HW, "x")
    values_ok = "[" + ",".join(["1"] * (limits.MAX_JSON_VALUES - 1)) + "]"
    assert limits.json_shape(values_ok).values == limits.MAX_JSON_VALUES
    with pytest.raises(InvalidPromptError, match=r"^This is not a prompts file saved by this app\.$"):
        bundle.read_prompts_file(_write(tmp_path, values_ok), HW, "x")
    with pytest.raises(InvalidPromptError, match=r"^The prompts file holds more than 50,000 values"):
        bundle.read_prompts_file(_write(tmp_path, values_ok[:-1] + ",1]"), HW, "x")
