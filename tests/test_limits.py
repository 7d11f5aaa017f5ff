"""Bounded input (sam_demo.limits, sam_onnx.types): checked on the raw structure before anything is built.

Every refusal here costs a bounded amount of work whatever the caller sent (a million points,
100,000 nested brackets, integers with hundreds of digits) and says what was wrong.
"""

from __future__ import annotations

import json
import time

import pytest

from sam_demo import limits
from sam_demo.editor import MAX_OBJECTS
from sam_onnx import types
from sam_onnx.errors import InvalidPromptError
from sam_onnx.types import MAX_POINTS_PER_OBJECT, Point, Prompts

FAST_S = 0.5  # generous: a refusal must not depend on the size of what was sent (CPU is shared on CI)


@pytest.mark.parametrize("text, depth", [
    ("", 0), ("1", 0), ("[]", 1), ('{"a": [1, {"b": 2}]}', 3), ('["[[[[", "]"]', 1), ('"\\\\"', 0),
    ('["\\"[[["]', 1), ("[" * 1000, 1000), ('{"a": "\\u005b"}', 1),
])
def test_json_depth_counts_brackets_outside_strings(text, depth):
    assert limits.json_depth(text) == depth
    if text.strip() and text.count("[") < 100:
        try:
            json.loads(text)
        except ValueError:
            return
        assert limits.json_depth(text.encode()) == depth


@pytest.mark.parametrize("text, values", [
    ("", 0), ("1", 1), ("[1, 2, 3]", 4), ('{"a": "1,2,3", "b": [1, 2]}', 5), ("[[1, 1, 1]]", 5),
])
def test_json_shape_counts_values_outside_strings(text, values):
    assert limits.json_shape(text).values == values


def test_the_largest_legal_request_is_within_the_value_bound():
    """256 objects of 32 points and a box (every limit at its maximum) pass; 4 x the points do not."""
    obj = {"points": [[1000.5, 999.25, 1]] * 32, "box": [1, 2, 300, 400]}
    body = json.dumps({"data": [{"path": "/tmp/x.png", "meta": {"_type": "gradio.FileData"}}, [obj] * 256],
                       "session_hash": "abc"})
    assert limits.json_shape(body).values <= limits.MAX_JSON_VALUES
    assert len(body) < limits.MAX_JSON_BYTES
    with pytest.raises(InvalidPromptError, match=r"holds more than 50,000 values"):
        limits.parse_json(json.dumps([{"points": [[1, 1, 1]] * 128}] * 256), "The prompts file")


def test_json_depth_is_linear_on_a_large_text():
    text = json.dumps([{"points": [[i, i, 1]] * 32, "name": 'a"[{' * 10} for i in range(600)])
    started = time.perf_counter()
    assert limits.json_depth(text) == 4
    assert time.perf_counter() - started < FAST_S


@pytest.mark.parametrize("text, message", [
    ("", r"is empty"), ("   ", r"is empty"), ("[" * 100_000, r"nested more than 32 levels"),
    ("{not json", r"not valid JSON"), ("[1, 2" + "0" * 5000 + "]", r"not valid JSON"),
    ("x" * (limits.MAX_JSON_BYTES + 1), r"larger than 2 MB"), (b"\xff\xfe[]", r"not valid JSON"),
])
def test_parse_json_refuses_with_a_message(text, message):
    started = time.perf_counter()
    with pytest.raises(InvalidPromptError, match=message):
        limits.parse_json(text, "The file")
    assert time.perf_counter() - started < FAST_S


def test_api_objects_checks_the_list_length_before_building_any_object(monkeypatch):
    built = []
    monkeypatch.setattr(Prompts, "from_dict", classmethod(lambda cls, item: built.append(item)))
    with pytest.raises(InvalidPromptError, match=rf"^At most {MAX_OBJECTS} objects per request \(got 100000\)"):
        limits.api_objects([{"points": [[1, 1, 1]]}] * 100_000)
    assert built == []


def test_prompts_from_dict_checks_the_point_count_before_building_any_point(monkeypatch):
    built = []
    real = Point.__post_init__
    monkeypatch.setattr(Point, "__post_init__", lambda self: (built.append(1), real(self)))
    started = time.perf_counter()
    message = rf"^At most {MAX_POINTS_PER_OBJECT} points per object \(got 1000000\)"
    with pytest.raises(InvalidPromptError, match=message):
        Prompts.from_dict({"points": [[1, 1, 1]] * 1_000_000})
    assert built == [] and time.perf_counter() - started < FAST_S


@pytest.mark.parametrize("value, message", [
    ({"points": [[10**400, 5, 1]]}, r"^Point x must be a finite number, got 1000.*000$"),
    ({"points": [[5, -10**400, 1]]}, r"^Point y must be a finite number, got -1000.*000$"),
    ({"points": [[True, 5, 1]]}, r"^Point x must be a number, got True$"),
    ({"points": [[1.5, None]]}, r"^Point y must be a number, got None$"),
    ({"points": [[1, 2, 10**400]]}, r"^Point label must be 1 \(positive\) or 0 \(negative\), got 1000.*$"),
    ({"box": [0, 0, 10**400, 5]}, r"^Box x1 must be a finite number"),
    ({"points": {"a": 1}}, r"^'points' must be a list"),
    ({"points": 0}, r"^'points' must be a list"),
    ({"points": [[[[[[[1]]]]]]]}, r"^each point must be \[x, y\] or \[x, y, label\], got \[\[\[.*\]\]\]$"),
    ({"points": ["x" * 10_000]}, r"^each point must be .*, got '.{0,40}'$"),
    ({"box": list(range(10_000))}, r"^'box' must be \[x0, y0, x1, y1\], got \[0, 1, 2, 3, \.\.\.\]$"),
], ids=["x-10**400", "y-10**400", "bool-x", "none-y", "label-10**400", "box-10**400", "points-dict", "points-0",
        "deep-point", "long-string", "long-box"])
def test_malformed_values_get_a_short_specific_message(value, message):
    with pytest.raises(InvalidPromptError, match=message) as caught:
        Prompts.from_dict(value)
    assert len(str(caught.value)) < 200


def test_short_repr_is_bounded_in_length_and_depth():
    deep: list = []
    node = deep
    for _ in range(10_000):
        node.append([])
        node = node[0]
    assert len(types.short_repr(deep)) < 50
    assert len(types.short_repr("y" * 10**6)) < 50
    assert types.short_repr(10**5000) == "a number too large to show"  # beyond int -> str's digit limit


@pytest.mark.parametrize("value, message", [
    ("[" * 100_000, r"nested more than 32 levels"),
    ("{not json", r"^prompts must be JSON"),
    (42, r"^prompts must be a list of objects"),
    ("", r"is empty"),
    ([], r"^Give at least one object"),
    ({"points": [[1, 2, 1]]}, None),
])
def test_api_objects(value, message):
    if message is None:
        assert limits.api_objects(value) == [Prompts((Point(1, 2),))]
        return
    with pytest.raises(InvalidPromptError, match=message):
        limits.api_objects(value)
