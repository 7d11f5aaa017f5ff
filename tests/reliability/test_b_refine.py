"""Row B14 of docs/reliability.md: a refine that cannot be made (issue 19), through the real server."""

from __future__ import annotations

import pytest

import app
from tests.reliability.conftest import PHOTO_HW, assert_message
from tests.reliability.test_b_prompts import segment

H, W = PHOTO_HW


def test_B14_a_refine_that_cannot_be_made_says_why_and_changes_nothing(raw, photo_bytes):
    assert raw.load_bytes(photo_bytes).ok
    assert_message(raw.call("refine", [0.5, True]), r"no prompts yet")  # an object without prompts
    assert raw.click(60, 50, app.MODE_NEGATIVE).ok  # only an exclude point: the mask is empty
    before = raw.snapshot()
    assert_message(raw.call("refine", [0.5, True]), r"mask is empty")
    before.assert_same(raw.snapshot())
    assert raw.call("clear_object", [0.5, True]).ok and raw.click(60, 50).ok
    before = raw.snapshot()  # a 160 x 120 photo: any crop is the whole image
    assert_message(raw.call("refine", [0.5, True]), r"spans the whole image")
    before.assert_same(raw.snapshot())


@pytest.mark.parametrize("prompts, pattern", [
    ([{"points": [[10, 10, 1]], "refine": "yes"}], r"'refine' must be true or false"),
    ([{"points": [[10, 10, 1]], "refine": True}] * 9, r"at most 8"),
])
def test_B14_segment_refuses_a_malformed_or_too_costly_refine(raw, prompts, pattern):
    assert_message(segment(raw, prompts), pattern)


def test_B14_segment_says_per_object_why_it_could_not_refine(raw):
    result = segment(raw, [{"points": [[10, 10, 1]], "refine": True}, {"points": [[20, 20, 1]]}])
    assert result.ok
    first, second = result.data[0]["objects"]
    assert first["refined"] is False and "whole image" in first["refine_note"] and "refined" not in second
