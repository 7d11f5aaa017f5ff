"""Pure numpy helpers for the browser tests: test pictures, expected overlays, mask checks.

Frames (see ``sam_onnx/geometry.py``): *original* pixels of the upright image
(prompts, exported masks) and *display* pixels of the copy the page shows
(the view's picture at its natural size). Arrays are ``(H, W)`` bool masks or ``(H, W, 3)`` uint8 RGB.
The numbers here are this suite's own (what the README promises and the view is meant to draw), not
read from the app's code: a change there is noticed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sam_onnx.geometry import DisplayFrame
from tests import analytic_models as am

OPACITY = 0.5
"""The app's default mask opacity (the tests never move the slider)."""
FIXED_POINT_ONE = 256
"""Fills blend in 1/256 steps (the canvas's 8-bit alpha: 0.5 is 128/255, at most 1 level from 128/256)."""
AA_MARGIN_PX = 2
"""Extra pixels left unchecked beside every drawn edge: anti-aliasing of vectors."""
MARKER_MARGIN = 1.5
"""Unchecked disc around a point, as a multiple of the marker's outer radius: the marker with its rim and
anti-aliasing (points within that of the image edge, whose markers move inward, are not checked here)."""
MARKER_RADIUS_CSS = 8.0
MARKER_RIM_CSS = 1.5
"""Point marker radius and its dark rim, in CSS pixels (constant on screen at any zoom)."""
OUTLINE_PX = 1
"""Outlines are one screen pixel wide, just inside the mask's edge."""
HALO_PX = 2
"""The selected object's halo: a white ring and a dark rim beyond it, one screen pixel each, outside its edge."""
OKABE_ITO = ((230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0),
             (204, 121, 167))
"""The colours of the first 7 objects (orange, sky blue, bluish green, yellow, blue, vermillion, reddish
purple), as the README promises; the oracle knows no others (tests with more objects read them off the page),
besides the colours a test chose for an object itself (:meth:`ObjectPrompt.from_session`)."""


def colour(index: int) -> tuple[int, int, int]:
    """The colour of object ``color_index`` 0..6."""
    if not 0 <= index < len(OKABE_ITO):
        raise ValueError(f"the oracle knows the colours of the first {len(OKABE_ITO)} objects, not {index}")
    return OKABE_ITO[index]


def hex_rgb(text: str) -> tuple[int, int, int]:
    """``"#rrggbb"`` -> ``(r, g, b)``."""
    return int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16)


def gradient_rgb(h: int, w: int, *, seed: int = 0) -> NDArray[np.uint8]:
    """A smooth, asymmetric ``(h, w, 3)`` test picture: red grows left→right, green top→bottom.

    Mid-range values so every palette tint differs from it clearly; smooth so
    JPEG keeps it almost exactly; asymmetric so a rotated display is detectable.
    """
    rng = np.random.default_rng(seed)
    red = 60 + 80 * np.arange(w, dtype=np.float64) / max(w - 1, 1)  # per column
    green = 70 + 60 * np.arange(h, dtype=np.float64) / max(h - 1, 1)  # per row
    blue = np.float64(110.0) + rng.uniform(-2, 2)
    out = np.empty((h, w, 3), dtype=np.uint8)  # filled by broadcasting: no (h, w) float planes (12 MP: 24 s -> 0.1 s)
    out[..., 0] = np.clip(red.round(), 0, 255).astype(np.uint8)[None, :]
    out[..., 1] = np.clip(green.round(), 0, 255).astype(np.uint8)[:, None]
    out[..., 2] = np.clip(blue.round(), 0, 255).astype(np.uint8)
    return out


def grow(mask: NDArray[np.bool_], radius: int) -> NDArray[np.bool_]:
    """Dilation of a bool mask by a ``(2r+1)`` square, written independently of the overlay's own
    (a windowed maximum over a zero-padded copy, where the app shifts and ORs): a bug in one is not
    repeated in the other."""
    if radius <= 0:
        return mask.copy()
    side = 2 * radius + 1
    padded = np.pad(mask, radius, constant_values=False)
    return np.lib.stride_tricks.sliding_window_view(padded, (side, side)).any(axis=(-2, -1))


def blend(base: NDArray[np.uint8], color: Sequence[int], opacity: float = OPACITY) -> NDArray[np.int32]:
    """The overlay's fill colour over ``base``: rounded fixed-point blend (sam_demo.overlay docstring)."""
    alpha = round(opacity * FIXED_POINT_ONE)
    c = np.asarray(color, dtype=np.int32)
    return (base.astype(np.int32) * (FIXED_POINT_ONE - alpha) + c * alpha + FIXED_POINT_ONE // 2) >> 8


def best_candidate(labels: Sequence[int]) -> int:
    """The candidate the app shows by default: the analytic decoder's best score for these labels."""
    scores = am.IOU_WITH_POSITIVE if am.LABEL_POSITIVE in labels else am.IOU_WITHOUT_POSITIVE
    return int(np.argmax(scores))


@dataclass(frozen=True)
class ObjectPrompt:
    """One object's prompts in ORIGINAL pixels, as the app records them, its colour index and shown mask.

    ``candidate`` 0..2 is the mask shown and exported; None (the default) means the one the app picks by
    itself, the best-scored (resolved on creation, so two equal objects compare equal). ``color``: a colour the
    test gave the object, ``(r, g, b)``; None = its palette colour (:func:`colour` of ``color_index``).
    """

    points: tuple[tuple[float, float], ...] = ()
    labels: tuple[int, ...] = ()
    box: tuple[float, float, float, float] | None = None
    color_index: int = 0
    candidate: int | None = None
    color: tuple[int, int, int] | None = None

    @property
    def rgb(self) -> tuple[int, int, int]:
        """The colour the object's fill must have."""
        return colour(self.color_index) if self.color is None else self.color

    def __post_init__(self) -> None:
        if self.candidate is None:
            object.__setattr__(self, "candidate", best_candidate(self.labels))

    @classmethod
    def from_session(cls, obj: dict, chosen: Sequence[str] = ()) -> ObjectPrompt:
        """From an object of the exported ``*_prompts.json``. Its ``"color"`` is taken only when it is one of the
        ``chosen`` colours (``#rrggbb``, those the test picked); otherwise the oracle's own palette colour is."""
        points = tuple((float(x), float(y)) for x, y, _ in obj["points"])
        labels = tuple(int(label) for _, _, label in obj["points"])
        box = tuple(float(v) for v in obj["box"]) if obj["box"] is not None else None
        picked = obj.get("color")
        color = hex_rgb(picked) if picked and picked.lower() in {c.lower() for c in chosen} else None
        return cls(points, labels, box, int(obj["color_index"]), obj["candidate"], color)

    def _args(self, frame: DisplayFrame | None):
        """Arguments of ``analytic_models.expected_mask_original`` in the original or the display frame.

        Points and box corners map like pixel centres (``DisplayFrame.to_display_xy``), which keeps their
        position in the 1024 model frame, so the analytic rule gives the display-frame mask directly.
        """
        points = [list(p) for p in self.points]
        box = self.box
        if frame is not None:
            if points:
                points = frame.to_display_xy(points).tolist()
            if box is not None:
                box = tuple(frame.to_display_xy([box[:2], box[2:]]).ravel().tolist())
        return (points or None), (list(self.labels) or None), box

    def mask(self, hw: tuple[int, int], frame: DisplayFrame | None = None) -> NDArray[np.bool_]:
        """Expected mask: original frame (``frame`` None, ``hw`` = original) or display frame."""
        return am.expected_mask_original(*self._args(frame), hw, self.candidate)

    def band(self, hw: tuple[int, int], frame: DisplayFrame | None = None) -> NDArray[np.bool_]:
        """Pixels where the real pipeline may differ from :meth:`mask` (one low-res cell)."""
        return am.boundary_band(*self._args(frame), hw, self.candidate)


def check_mask_png(mask: NDArray, prompt: ObjectPrompt, original_hw: tuple[int, int]) -> None:
    """Assert a downloaded mask (``(H, W)`` 0/255 PNG) is exactly the pipeline's mask for ``prompt``.

    The expectation is ``analytic_models.pipeline_mask``: the analytic rule at the 256 x 256 cell centres for
    the feeds the spec prescribes, upsampled half-pixel; only pixels whose logit rounds within 1e-3 of 0 are
    left out, so half a model unit of shift or a missing pad point anywhere between the click and the file
    shows. (The test pictures have no pure-blue key cells.)
    """
    assert mask.shape == tuple(original_hw), f"mask is {mask.shape}, the image is {original_hw}"
    assert set(np.unique(mask).tolist()) <= {0, 255}, "mask PNG is not binary"
    am.assert_pipeline_mask(mask == 255, *prompt._args(None), tuple(original_hw), prompt.candidate)


def edge_margin(display_hw: tuple[int, int]) -> int:
    """Pixels left unchecked on each side of a mask boundary in a picture at one CSS px per pixel: the outline
    inside, the selection halo outside, plus anti-aliasing."""
    return max(OUTLINE_PX, HALO_PX) + AA_MARGIN_PX


def marker_radius(display_hw: tuple[int, int] | None = None) -> float:
    """A point marker's outer radius (disc and rim) in CSS px; the same for every image."""
    return MARKER_RADIUS_CSS + MARKER_RIM_CSS


def marker_rim(display_hw: tuple[int, int] | None = None) -> float:
    return MARKER_RIM_CSS


def check_overlay(overlay: NDArray[np.uint8], base: NDArray[np.uint8], prompts: Sequence[ObjectPrompt],
                  frame: DisplayFrame, *, max_wrong_fraction: float = 0.0, opacity: float = OPACITY) -> dict[str, int]:
    """Assert the displayed overlay tints exactly the expected regions, each in its object's colour.

    Every display pixel away from boundaries, markers and box outlines is
    classified as the nearest of: untouched ``base`` (the display as shown
    right after upload) or ``base`` blended with one object's colour. The
    class must be the expected one everywhere; both classes must occur.

    Args:
        overlay, base: ``(h, w, 3)`` uint8 display pixels as the browser decoded them.
        prompts: the visible objects, bottom first, in ORIGINAL pixels (non-overlapping masks).
        frame: the image's display frame.
        max_wrong_fraction: share of checked pixels allowed to look wrong; 0 for the smooth test pictures,
            a little more for real photos, whose textured JPEG can ring beyond a tint's distance.
        opacity: the fill opacity the page draws with.

    Returns:
        Pixel counts per class that were checked (for messages).
    """
    hw = frame.display_hw
    assert overlay.shape[:2] == hw and base.shape[:2] == hw, (overlay.shape, base.shape, hw)
    colours = [base.astype(np.int32)] + [blend(base, p.rgb, opacity) for p in prompts]
    distance = np.stack([np.abs(overlay.astype(np.int32) - c).sum(axis=-1) for c in colours])
    got = distance.argmin(axis=0)
    expected = np.zeros(hw, dtype=np.int64)
    skip = np.zeros(hw, dtype=bool)
    yy, xx = np.mgrid[0:hw[0], 0:hw[1]]
    reach = marker_radius(hw) * MARKER_MARGIN
    margin = edge_margin(hw)
    for k, prompt in enumerate(prompts, start=1):
        mask = prompt.mask(hw, frame)
        expected[mask] = k
        edge = grow(mask, margin) & grow(~mask, margin)
        skip |= grow(prompt.band(hw, frame), margin) | edge
        if prompt.points:
            for x, y in frame.to_display_xy(list(prompt.points)).tolist():
                skip |= (xx - x) ** 2 + (yy - y) ** 2 <= reach ** 2
        if prompt.box is not None:
            x0, y0, x1, y1 = frame.to_display_xy([prompt.box[:2], prompt.box[2:]]).ravel().tolist()
            outline = np.zeros(hw, dtype=bool)
            r0, r1 = int(np.clip(round(y0), 0, hw[0] - 1)), int(np.clip(round(y1), 0, hw[0] - 1))
            c0, c1 = int(np.clip(round(x0), 0, hw[1] - 1)), int(np.clip(round(x1), 0, hw[1] - 1))
            outline[r0:r1 + 1, [c0, c1]] = True
            outline[[r0, r1], c0:c1 + 1] = True
            skip |= grow(outline, margin + 2)
    checked = ~skip
    counts = {f"class{k}": int(((expected == k) & checked).sum()) for k in range(len(colours))}
    assert all(counts.values()), f"test set-up: some class has no checked pixel: {counts}"
    wrong = (got != expected) & checked
    if wrong.sum() > max_wrong_fraction * checked.sum():
        r, c = np.argwhere(wrong)[0].tolist()
        raise AssertionError(
            f"{int(wrong.sum())} of {int(checked.sum())} checked overlay pixels show the wrong tint "
            f"(first at display x={c}, y={r}: expected class {expected[r, c]}, looks like class {got[r, c]}, "
            f"pixel {overlay[r, c].tolist()} over base {base[r, c].tolist()}); classes: {counts}")
    return counts
