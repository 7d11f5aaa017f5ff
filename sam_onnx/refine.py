"""Refine one object in a crop at full resolution: which crop, and why.

The decoder's 256 x 256 logits cover whatever was encoded. For a whole
4000 x 3000 photo one logit cell is 15.6 x 11.7 original pixels, so mask edges
are off by pixels and thin structures vanish. Encoding a crop around the object
(one more encoder run) makes the cells as small as ``w_crop / 256`` pixels::

    result = predictor.decode(embedding, prompts)          # whole image
    crop = refine.crop_for(result, prompts)                # mask box + 20 %, >= 256 px
    fine = predictor.decode(predictor.encode_crop(image, crop), prompts)
    fine.best_mask                                         # (H, W) bool, False outside the crop

The rules, in one place:

* **The crop** (:func:`crop_for`): the box of the object's current mask (the
  candidate shown), grown to hold its include points, plus
  :data:`~sam_onnx.geometry.CROP_MARGIN` (20 %) of its size on each side,
  clamped to the image, each side at least :data:`~sam_onnx.geometry.MIN_CROP_SIDE`
  (256 px: one logit cell per pixel) and at most
  :data:`~sam_onnx.geometry.MAX_CROP_ASPECT` (2:1) long (see
  :meth:`sam_onnx.geometry.CropFrame.around`). An object whose mask is empty,
  or whose crop would be the whole image (nothing to gain), is refused.
* **Prompts in the crop** (:func:`sam_onnx.prompts.prompts_for_crop`): exclude
  points outside the crop are left out, a box is cut to the crop (a loose box
  drawn around a small object says where it is, not that the crop must be as
  large; a crop from :func:`crop_for` holds every include point).
* **Outside the crop the object keeps nothing.** The crop holds the whole
  current mask with a margin, so at the time of refining the coarse mask has no
  pixel outside it (``bench/bench_refine.py`` counts them: 0 for every test
  shape) and keeping it there would change nothing, while costing a second
  (whole-image) decoder call per click and leaving a seam between two
  resolutions. A front end that lets later clicks fall outside the crop should
  go back to the whole image for them (the demo's editor does).
"""

from __future__ import annotations

import math

from .errors import InvalidPromptError
from .geometry import CROP_MARGIN, MAX_CROP_ASPECT, MIN_CROP_SIDE, CropFrame
from .types import MaskResult, Prompts


def object_extent(result: MaskResult, prompts: Prompts, candidate: int | None = None
                  ) -> tuple[float, float, float, float] | None:
    """The box a crop must hold: the mask's box grown to hold the include points.

    Args:
        result: the object's current decoder result (whole image or a crop).
        prompts: its prompts, original pixels.
        candidate: the mask shown (``None`` = the best-scoring one).

    Returns:
        ``(x0, y0, x1, y1)`` in the continuous original frame (pixel ``i`` spans
        ``[i, i + 1)``), or ``None`` when the mask is empty.
    """
    box = result.mask_box(candidate)
    if box is None:
        return None
    x0, y0, x1, y1 = (float(v) for v in box)
    for p in prompts.points:
        if p.positive:
            px, py = math.floor(p.x), math.floor(p.y)
            x0, y0, x1, y1 = min(x0, px), min(y0, py), max(x1, px + 1), max(y1, py + 1)
    return x0, y0, x1, y1


def crop_for(result: MaskResult, prompts: Prompts, candidate: int | None = None, *,
             margin: float = CROP_MARGIN, min_side: int = MIN_CROP_SIDE,
             max_aspect: float = MAX_CROP_ASPECT) -> CropFrame:
    """The crop to refine an object in (see the module docstring for the rule).

    Args:
        result: the object's current decoder result.
        prompts: its prompts, original pixels (what ``result`` was decoded from).
        candidate: the mask shown (``None`` = the best-scoring one).

    Raises:
        InvalidPromptError: the object has no prompts, its mask is empty, or the
            crop would be the whole image.
    """
    if prompts.is_empty:
        raise InvalidPromptError("This object has no prompts yet: add a point or a box, then refine it.")
    extent = object_extent(result, prompts, candidate)
    if extent is None:
        raise InvalidPromptError("This object's mask is empty, so there is nothing to refine: "
                                 "add or move a point first.")
    crop = CropFrame.around(result.geometry.original_hw, extent, margin=margin, min_side=min_side,
                            max_aspect=max_aspect)
    if crop.is_whole_image:
        raise InvalidPromptError("This object spans the whole image: a crop would not show it in more detail.")
    return crop


__all__ = ["crop_for", "object_extent"]
