"""Candidate thumbnails show the object's region (issue 22, item 3): the same square around the three
candidates in each, so that they can be told apart; the whole image only for an object that fills it.

The decoder results are made by hand: nested discs of low-res logits (the model frame, 256 x 256 cells)
placed with :class:`sam_onnx.geometry.Geometry`, so each candidate's mask at any size is known.
"""

from __future__ import annotations

import numpy as np
import pytest

from sam_demo.editor import Editor
from sam_demo.overlay import THUMBNAIL_SIDE, color_for, thumbnail_base
from sam_demo.view import REGION_MIN_SHARE, candidates_region, candidates_view
from sam_onnx.geometry import LOW_RES_SIDE, MODEL_SIDE, DisplayFrame, Geometry
from sam_onnx.types import MaskResult
from tests.conftest import make_rgb

HW = (600, 800)
"""Original = display size here (the frame is the identity), so display pixels are original pixels."""


def disc_result(centre_xy: tuple[float, float], radii: tuple[float, float, float], hw=HW) -> MaskResult:
    """Three nested discs (radius in original pixels) centred on ``centre_xy`` (original pixels)."""
    geometry = Geometry(hw)
    cx, cy = geometry.to_model_xy(np.array([centre_xy], np.float64))[0] * (LOW_RES_SIDE / MODEL_SIDE)
    per_pixel = geometry.to_model_xy(np.array([[1.0, 0.0]]))[0][0] - geometry.to_model_xy(np.array([[0.0, 0.0]]))[0][0]
    yy, xx = np.mgrid[:LOW_RES_SIDE, :LOW_RES_SIDE] + 0.5
    dist = np.hypot(xx - cx, yy - cy)
    logits = np.stack([(r * per_pixel * LOW_RES_SIDE / MODEL_SIDE - dist) for r in radii]).astype(np.float32)
    return MaskResult(logits, np.array([0.8, 0.9, 0.7], np.float32), 3.0, geometry)


def view_of(result: MaskResult, rgb: np.ndarray, crop: bool = True):
    frame = DisplayFrame(HW, HW)
    editor = Editor.start(HW).add_point(*map(float, (400, 300)), 1)
    return candidates_view(frame, thumbnail_base(rgb), editor, result, rgb if crop else None)


def tinted(thumb: np.ndarray, base: np.ndarray) -> np.ndarray:
    return (thumb != base).any(axis=-1)


def test_a_small_object_fills_a_good_share_of_its_thumbnails():
    rgb = make_rgb(*HW)
    result = disc_result((600.0, 150.0), (12.0, 18.0, 25.0))
    region = candidates_region(HW, result)
    x0, y0, x1, y1 = region
    assert x1 - x0 == y1 - y0, "a square region"
    assert x0 <= 600 - 25 and x1 >= 600 + 25 and y0 <= 150 - 25 and y1 >= 150 + 25, "the union of the candidates"
    assert x1 - x0 <= 0.3 * HW[1], f"a region around the object, not the image: {region}"
    thumbs, scores, chosen = view_of(result, rgb)
    whole, _, _ = view_of(result, rgb, crop=False)
    assert len(thumbs) == 3 and thumbs[0].shape == (THUMBNAIL_SIDE, THUMBNAIL_SIDE, 3) and chosen == 1
    base = thumbnail_base(np.ascontiguousarray(rgb[y0:y1, x0:x1]))
    shares = [tinted(t, base).mean() for t in thumbs]
    whole_shares = [tinted(t, thumbnail_base(rgb)).mean() for t in whole]
    assert shares[0] < shares[1] < shares[2], "three different sizes, told apart"
    assert shares[0] > 0.03 and shares[2] > 0.15 and all(s > 10 * w for s, w in zip(shares, whole_shares)), (shares, whole_shares)


def test_the_thumbnail_mask_is_the_candidate_over_its_region():
    rgb = np.full((*HW, 3), 128, np.uint8)
    result = disc_result((200.0, 420.0), (30.0, 40.0, 50.0))
    x0, y0, x1, y1 = candidates_region(HW, result)
    thumbs, _, _ = view_of(result, rgb)
    side = THUMBNAIL_SIDE
    for k, thumb in enumerate(thumbs):
        # the candidate at full size, cut to the region and sampled at the thumbnail's pixel centres
        full = result.mask(k, HW)[y0:y1, x0:x1]
        rows = ((np.arange(side) + 0.5) * (y1 - y0) / side).astype(int)
        cols = ((np.arange(side) + 0.5) * (x1 - x0) / side).astype(int)
        expected = full[rows[:, None], cols[None, :]]
        shown = tinted(thumb, np.full_like(thumb, 128))
        wrong = (shown != expected).mean()
        assert wrong < 0.03, f"candidate {k}: {wrong:.1%} of the thumbnail differs (outline and edge pixels only)"


def test_an_object_at_the_border_gets_a_region_inside_the_image():
    result = disc_result((790.0, 5.0), (10.0, 15.0, 20.0))
    x0, y0, x1, y1 = candidates_region(HW, result)
    assert 0 <= x0 and x1 == HW[1] and y0 == 0 and y1 <= HW[0]
    assert x1 - x0 >= REGION_MIN_SHARE * max(HW) - 1, "a tiny object keeps some context"


def test_a_large_object_or_none_shows_the_whole_image():
    assert candidates_region(HW, disc_result((400.0, 300.0), (200.0, 260.0, 320.0))) is None
    empty = disc_result((400.0, 300.0), (-5.0, -5.0, -5.0))
    assert candidates_region(HW, empty) is None
    thumbs, _, _ = view_of(empty, make_rgb(*HW))
    assert thumbs[0].shape[:2] == (THUMBNAIL_SIDE * HW[0] // HW[1], THUMBNAIL_SIDE)
