"""Timings of overlay drawing and cropped mask upsampling (prints a table; not a test).

Run: ``python -m bench.bench_overlay [--repeat N]``

Masks come from synthetic 256 x 256 logits (smooth blobs, like the decoder's
output), so the crop sizes are realistic; the base image is random noise.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np

from sam_demo.overlay import MaskLayer, candidate_thumbnails, color_for, render_overlay, thumbnail_hw
from sam_onnx.postprocess import mask_crop_from_logits, mask_from_logits

DISPLAY_HW = (1152, 1536)
LARGE_HW = (3000, 4000)


def blob_logits(cy: float, cx: float, radius: float) -> np.ndarray:
    """(256, 256) float32 logits: positive inside an ellipse of ``radius`` cells, smooth falloff."""
    yy, xx = np.mgrid[:256, :256].astype(np.float32)
    return (8.0 * (1.0 - np.hypot(yy - cy, xx - cx) / radius)).astype(np.float32)


OBJECTS = {
    "small": [blob_logits(60, 60, 10), blob_logits(120, 200, 12), blob_logits(200, 100, 8)],
    "medium": [blob_logits(70, 70, 40), blob_logits(130, 180, 50), blob_logits(200, 90, 35)],
    "quarter": [blob_logits(80, 80, 70), blob_logits(140, 170, 75), blob_logits(190, 110, 65)],
    "large": [blob_logits(100, 100, 110), blob_logits(150, 160, 120), blob_logits(128, 128, 140)],
}


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time in milliseconds after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def all_masks(fn: Callable, logits: list[np.ndarray], hw: tuple[int, int]) -> list:
    return [fn(lg, hw) for lg in logits]


def layers_for(logits: list[np.ndarray], hw: tuple[int, int], cropped: bool) -> list[MaskLayer]:
    layers = []
    for i, lg in enumerate(logits):
        points = ((hw[1] * (0.2 + 0.3 * i), hw[0] * 0.5, 1), (hw[1] * (0.25 + 0.3 * i), hw[0] * 0.4, 0))
        box = (hw[1] * 0.1, hw[0] * 0.1, hw[1] * 0.5, hw[0] * 0.6) if i == 1 else None
        kwargs = dict(color=color_for(i), selected=(i == 1), points=points, box=box)
        if cropped:
            crop, offset = mask_crop_from_logits(lg, hw)
            layers.append(MaskLayer.from_crop(crop, offset, hw, **kwargs))
        else:
            layers.append(MaskLayer(mask_from_logits(lg, hw), **kwargs))
    return layers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (*DISPLAY_HW, 3), dtype=np.uint8)
    print(f"render_overlay, 3 objects on {DISPLAY_HW[1]}x{DISPLAY_HW[0]} (median of {args.repeat}, ms)")
    for name, logits in OBJECTS.items():
        cover = np.mean([mask_from_logits(lg, DISPLAY_HW).mean() for lg in logits])
        for cropped in (True, False):
            layers = layers_for(logits, DISPLAY_HW, cropped)
            for contour, opacity in ((True, 0.5), (False, 0.5), (True, 0.0)):
                draw = partial(render_overlay, base, layers, opacity=opacity, contour=contour,
                               pending_corner=(100.0, 100.0))
                ms = timed(draw, args.repeat)
                print(f"  {name:6s} ({cover:5.1%} each) {'crop' if cropped else 'full':4s} "
                      f"contour={contour!s:5s} opacity={opacity}: {ms:6.2f}")
        crop_ms = timed(partial(all_masks, mask_crop_from_logits, logits, DISPLAY_HW), args.repeat)
        full_ms = timed(partial(all_masks, mask_from_logits, logits, DISPLAY_HW), args.repeat)
        print(f"  {name:6s} masks for 3 objects: mask_crop_from_logits {crop_ms:6.2f}  mask_from_logits {full_ms:6.2f}")

    print("\nmask_crop_from_logits vs mask_from_logits, one object (median, ms)")
    for hw in (DISPLAY_HW, LARGE_HW):
        for name, lg in (("small", OBJECTS["small"][1]), ("medium", OBJECTS["medium"][1]),
                         ("large", OBJECTS["large"][2])):
            repeat = max(3, args.repeat // (4 if hw == LARGE_HW else 1))
            full_ms = timed(partial(mask_from_logits, lg, hw), repeat)
            crop_ms = timed(partial(mask_crop_from_logits, lg, hw), repeat)
            crop, _ = mask_crop_from_logits(lg, hw)
            print(f"  {hw[1]}x{hw[0]} {name:6s} crop {crop.shape[1]}x{crop.shape[0]}: full {full_ms:7.2f}  "
                  f"crop {crop_ms:6.2f}  speed-up x{full_ms / crop_ms:5.1f}")

    print("\ncandidate_thumbnails, 3 candidates (median, ms)")
    thumb = thumbnail_hw(DISPLAY_HW)
    logits = OBJECTS["medium"]
    at_thumb = [mask_from_logits(lg, thumb) for lg in logits]
    at_display = [mask_from_logits(lg, DISPLAY_HW) for lg in logits]
    ms = timed(lambda: candidate_thumbnails(base, [mask_from_logits(lg, thumb) for lg in logits], color_for(0)),
               args.repeat)
    print(f"  masks made at thumbnail size {thumb} (incl. upsampling): {ms:6.2f}")
    ms = timed(lambda: candidate_thumbnails(base, at_thumb, color_for(0)), args.repeat)
    print(f"  masks given at thumbnail size: {ms:6.2f}")
    ms = timed(lambda: candidate_thumbnails(base, at_display, color_for(0)), args.repeat)
    print(f"  masks given at display size (nearest downscale inside): {ms:6.2f}")


if __name__ == "__main__":
    main()
