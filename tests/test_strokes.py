"""Brush and eraser strokes (sam_onnx.strokes): each paints exactly the pixels whose centre is within its radius
of its polyline, checked against a brute-force distance for every pixel; and bad strokes are refused."""

from __future__ import annotations

import numpy as np
import pytest

from sam_onnx import InvalidPromptError
from sam_onnx.strokes import MAX_RADIUS, MAX_STROKE_POINTS, Stroke, paint, paint_crop, strokes_from_list

HW = (60, 80)


def brute_force(points, radius, hw=HW) -> np.ndarray:
    """Pixels whose centre is within ``radius`` of the polyline: the distance to every segment, every pixel."""
    yy, xx = np.mgrid[0:hw[0], 0:hw[1]].astype(float)
    xy = np.asarray(points, float)
    pairs = [(xy[0], xy[0])] if len(xy) == 1 else list(zip(xy[:-1], xy[1:]))
    best = np.full(hw, np.inf)
    for a, b in pairs:
        d = b - a
        denom = float(d @ d)
        t = np.zeros(hw) if denom == 0 else np.clip(((xx - a[0]) * d[0] + (yy - a[1]) * d[1]) / denom, 0, 1)
        best = np.minimum(best, np.hypot(xx - (a[0] + t * d[0]), yy - (a[1] + t * d[1])))
    return best <= radius + 1e-9


CASES = [
    ([(10, 10)], 0.5),                       # one pixel
    ([(10.3, 20.7)], 3.2),                   # a dab off the pixel grid
    ([(5, 5), (70, 50)], 4),                 # a diagonal line
    ([(5, 30), (75, 30)], 2.5),              # horizontal
    ([(40, 2), (40, 58)], 1),                # vertical, 3 px wide
    ([(3, 3), (60, 10), (20, 50), (75, 55)], 6.7),  # a zigzag with sharp turns
    ([(-3, 10), (85, 40)], 5),               # starts and ends off the image (within the radius)
    ([(30, 30), (30.1, 30.05), (30.2, 29.9)], 12),   # many points close together
]


@pytest.mark.parametrize("points,radius", CASES)
def test_a_stroke_paints_exactly_the_pixels_within_its_radius(points, radius):
    stroke = Stroke(tuple(points), radius)
    painted = paint(np.zeros(HW, bool), [stroke], HW)
    np.testing.assert_array_equal(painted, brute_force(points, radius))


def test_strokes_apply_in_order_and_erase_removes():
    base = np.zeros(HW, bool)
    base[10:50, 10:70] = True
    add = Stroke(((0, 5), (79, 5)), 2)
    erase = Stroke(((40, 0), (40, 59)), 3, erase=True)
    out = paint(base.copy(), [add, erase], HW)
    expected = (base | brute_force(add.points, 2)) & ~brute_force(erase.points, 3)
    np.testing.assert_array_equal(out, expected)
    # the other order: the add stroke wins where it crosses the erased band
    out2 = paint(base.copy(), [erase, add], HW)
    np.testing.assert_array_equal(out2, (base & ~brute_force(erase.points, 3)) | brute_force(add.points, 2))


def test_a_window_is_painted_where_it_lies_and_a_crop_grows():
    stroke = Stroke(((5, 5), (70, 50)), 4)
    full = brute_force(stroke.points, 4)
    window = paint(np.zeros((20, 30), bool), [stroke], HW, origin=(15, 25))
    np.testing.assert_array_equal(window, full[15:35, 25:55])
    crop = np.ones((4, 4), bool)
    grown, origin = paint_crop(crop, (50, 2), [stroke], HW)
    canvas = np.zeros(HW, bool)
    canvas[origin[0]:origin[0] + grown.shape[0], origin[1]:origin[1] + grown.shape[1]] = grown
    expected = full.copy()
    expected[50:54, 2:6] = True
    np.testing.assert_array_equal(canvas, expected)


def test_from_dict_checks_and_simplifies():
    straight = {"points": [[x, 20] for x in range(0, 60)], "radius": 3, "erase": True}
    stroke = Stroke.from_dict(straight, HW)
    assert stroke.points == ((0.0, 20.0), (59.0, 20.0)) and stroke.erase  # a straight drag keeps its ends
    assert Stroke.from_dict(stroke.to_dict(), HW) == stroke


@pytest.mark.parametrize("data,message", [
    ([], "must be"),
    ({"points": [], "radius": 3}, "at least one"),
    ({"points": [[1, 2]] * (MAX_STROKE_POINTS + 1), "radius": 3}, "at most"),
    ({"points": [[1, 2]], "radius": 0.1}, "radius must be from"),
    ({"points": [[1, 2]], "radius": MAX_RADIUS * 2}, "radius must be from"),
    ({"points": [[1, 2]], "radius": "3"}, "must be a number"),
    ({"points": [[1, float("nan")]], "radius": 3}, "finite"),
    ({"points": [[1, 2, 3]], "radius": 3}, r"\[x, y\]"),
    ({"points": [[1, 2]], "radius": 3, "erase": "yes"}, "true or false"),
    ({"points": [[-10, 2]], "radius": 3}, "off the image"),
    ({"points": [[5, HW[0] + 4]], "radius": 3}, "off the image"),
])
def test_bad_strokes_are_refused(data, message):
    with pytest.raises(InvalidPromptError, match=message):
        Stroke.from_dict(data, HW)


def test_a_list_of_strokes_is_bounded():
    one = {"points": [[1, 2]], "radius": 3}
    assert strokes_from_list(None, HW, 5) == ()
    assert len(strokes_from_list([one] * 5, HW, 5)) == 5
    with pytest.raises(InvalidPromptError, match="At most 5 strokes"):
        strokes_from_list([one] * 6, HW, 5)
