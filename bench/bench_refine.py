"""How much sharper a refined mask is, and what a refine costs (prints tables, writes JSON; not a test).

Run::

    python -m bench.bench_refine                       # precision, offline, ~1 min
    python -m bench.bench_refine --standin "$SAM_STANDIN_DIR"   # + time and memory on the full-size stand-in

1. **Precision** (offline, no model files): the content-following test models
   (``tools/content_models.py``: masks cover the low-res cells whose colour is
   close to the clicked one, as finely as the 256 x 256 grid of the encoded frame
   allows) on synthetic 12 MP photos (4000 x 3000), one known shape per photo,
   drawn antialiased (4 x 4 supersampling) with mild noise: a disc of 40 px
   diameter, a five-pointed star with sharp corners, straight lines 3, 5 and 8 px
   wide and 400 px long at 25°, and text-like strokes 6 px wide. Each shape gets
   the prompt a user would give (a click; for the thin ones a click on them and a
   box around them). For the whole-image mask ("before") and the refined one
   ("after", :func:`sam_onnx.refine.crop_for` then one crop encode and decode),
   at the original resolution: the **boundary error** (distances in original
   pixels between the mask's edge pixels and the true shape's edge pixels, both
   ways; mean and 95th percentile) and the **IoU** with the true shape (pixels at
   least half covered). Also: the crop, and how many pixels of the whole-image mask
   lie outside it (the case for keeping the coarse mask there).
2. **Cost** (``--standin DIR``, the full-size random-weight stand-in: real
   architecture and timings, meaningless masks): on a 12 MP JPEG, the time of
   one refine (reading the photo, cutting and preparing the crop, the crop's
   encoder run, one decoder call) and the memory each refined object keeps
   (its crop embedding) and adds to the process.
"""

from __future__ import annotations

import argparse
import gc
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from bench import common
from sam_onnx import Box, CropFrame, Point, Prompts, Sam2Predictor, refine
from sam_onnx.image import load_image

PHOTO_HW = (3000, 4000)
"""12 MP, landscape."""
SUPERSAMPLE = 4
"""Samples per pixel side when drawing a shape (its edge pixels get their covered fraction)."""
NOISE_SIGMA = 3.0
"""Grey levels of per-pixel noise."""
BACKGROUND = (200, 200, 200)
CONTRAST = 3.0
"""Distance between a shape's colour and the background in normalised RGB: twice the content model's tolerance,
so its edges lie at half coverage (tools/content_models.py)."""
CENTRE = (0.503343, 0.502537)
"""Where each shape is centred, as a fraction of the photo's width and height: (2013.37, 1507.61) on a
4000 x 3000 photo, off its 256 x 256 grid."""
LINE_LENGTH = 400.0
LINE_ANGLE_DEG = 25.0
BOX_PAD = 24.0
"""Pixels between a thin shape and the box the user draws around it."""
MISSED_IOU = 0.5
"""A mask with IoU below this "misses" the shape."""
IMAGENET_STD = (0.229, 0.224, 0.225)


# ---------------------------------------------------------------------------- shapes
def _segment_distance(xs: np.ndarray, ys: np.ndarray, a: tuple[float, float], b: tuple[float, float]) -> np.ndarray:
    ax, ay = a
    dx, dy = b[0] - ax, b[1] - ay
    t = np.clip(((xs - ax) * dx + (ys - ay) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    return np.hypot(xs - ax - t * dx, ys - ay - t * dy)


def _inside_polygon(xs: np.ndarray, ys: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Even-odd rule (crossing number) for a closed polygon ``(n, 2)``."""
    inside = np.zeros(xs.shape, bool)
    for (x0, y0), (x1, y1) in zip(vertices, np.roll(vertices, -1, axis=0)):
        crosses = (y0 > ys) != (y1 > ys)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x0 + (ys - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (xs < x_at)
    return inside


@dataclass(frozen=True)
class Shape:
    """A known shape on a photo: how to test a point, where it is, its colour and the user's prompt.

    Coordinates are original pixels (pixel ``(row v, col u)`` has its centre at ``(u, v)``).
    """

    name: str
    kind: str
    params: tuple
    extent: tuple[float, float, float, float]  # x0, y0, x1, y1 that holds the shape
    colour_direction: tuple[float, float, float]
    click: tuple[float, float]
    box: tuple[float, float, float, float] | None = None

    def inside(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        if self.kind == "disc":
            (cx, cy), r = self.params
            return (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r
        if self.kind == "polygon":
            return _inside_polygon(xs, ys, np.asarray(self.params[0]))
        if self.kind == "strokes":
            polylines, width = self.params
            out = np.zeros(xs.shape, bool)
            for line in polylines:
                for a, b in zip(line[:-1], line[1:]):
                    out |= _segment_distance(xs, ys, a, b) <= width / 2
            return out
        raise ValueError(self.kind)

    @property
    def prompts(self) -> Prompts:
        return Prompts((Point(*self.click),), None if self.box is None else Box(*self.box))


def _padded(points: np.ndarray, pad: float) -> tuple[float, float, float, float]:
    return (float(points[:, 0].min() - pad), float(points[:, 1].min() - pad), float(points[:, 0].max() + pad),
            float(points[:, 1].max() + pad))


def shapes(hw: tuple[int, int] = PHOTO_HW) -> list[Shape]:
    """The benchmark's shapes on a photo of ``hw``, each centred at :data:`CENTRE`."""
    cx, cy = CENTRE[0] * hw[1], CENTRE[1] * hw[0]
    out = [Shape("disc 40 px", "disc", ((cx, cy), 20.0), (cx - 21, cy - 21, cx + 21, cy + 21), (0.2, 0.5, 1.0),
                 (cx, cy))]
    angles = np.deg2rad(7 + np.arange(10) * 36)
    radii = np.where(np.arange(10) % 2 == 0, 160.0, 64.0)
    star = np.stack([cx + radii * np.sin(angles), cy - radii * np.cos(angles)], axis=1)
    out.append(Shape("star, sharp corners", "polygon", (star,), _padded(star, 1), (1.0, 0.3, 0.2), (cx, cy)))
    angle = np.deg2rad(LINE_ANGLE_DEG)
    half = np.array([np.cos(angle), np.sin(angle)]) * LINE_LENGTH / 2
    ends = np.array([[cx, cy] - half, [cx, cy] + half])
    for width in (3, 5, 8):
        out.append(Shape(f"line {width} px", "strokes", ([tuple(map(tuple, ends))], float(width)),
                         _padded(ends, width), (0.3, 0.3, 0.3), (cx, cy), _padded(ends, BOX_PAD)))
    letters = {  # polylines in a 1 x 1 box per letter, y down
        "S": [[(1, 0), (0, 0), (0, 0.5), (1, 0.5), (1, 1), (0, 1)]],
        "A": [[(0, 1), (0.5, 0), (1, 1)], [(0.25, 0.5), (0.75, 0.5)]],
        "M": [[(0, 1), (0, 0), (0.5, 0.6), (1, 0), (1, 1)]],
    }
    width, height, step = 70.0, 110.0, 100.0
    polylines = []
    for i, letter in enumerate("SAM"):
        for line in letters[letter]:
            polylines.append([(cx - 1.5 * step + i * step + x * width, cy - height / 2 + y * height) for x, y in line])
    corners = np.array([p for line in polylines for p in line])
    out.append(Shape("text strokes 6 px", "strokes", (polylines, 6.0), _padded(corners, 3), (0.1, 0.6, 0.3),
                     ((polylines[0][0][0] + polylines[0][1][0]) / 2, polylines[0][0][1]), _padded(corners, BOX_PAD)))
    return out


def shape_colour(direction: tuple[float, float, float]) -> np.ndarray:
    """A colour at :data:`CONTRAST` from the background (normalised RGB distance), darker along ``direction``."""
    unit = np.asarray(direction, np.float64) / (255.0 * np.asarray(IMAGENET_STD))
    step = CONTRAST / np.linalg.norm(unit)
    colour = np.asarray(BACKGROUND, np.float64) - step * np.asarray(direction)
    if colour.min() < 0:
        raise ValueError(f"contrast {CONTRAST} is out of reach along {direction}")
    return colour


def render(shape: Shape, hw: tuple[int, int] = PHOTO_HW, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The photo ``(H, W, 3)`` uint8 and the true mask ``(H, W)`` bool (pixels at least half covered)."""
    h, w = hw
    rng = np.random.default_rng(seed)
    photo = np.empty((h, w, 3), np.float32)
    photo[:] = BACKGROUND
    x0, y0, x1, y1 = shape.extent
    c0, r0, c1, r1 = max(0, int(x0) - 2), max(0, int(y0) - 2), min(w, int(x1) + 3), min(h, int(y1) + 3)
    offsets = (np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE - 0.5
    cols = np.arange(c0, c1)[None, :, None, None] + offsets[None, None, None, :]
    rows = np.arange(r0, r1)[:, None, None, None] + offsets[None, None, :, None]
    xs, ys = np.broadcast_arrays(cols, rows)
    coverage = shape.inside(xs, ys).mean(axis=(2, 3))
    colour = shape_colour(shape.colour_direction).astype(np.float32)
    region = photo[r0:r1, c0:c1]
    region += (colour - region) * coverage[..., None].astype(np.float32)
    photo += rng.normal(0.0, NOISE_SIGMA, photo.shape).astype(np.float32)
    truth = np.zeros(hw, bool)
    truth[r0:r1, c0:c1] = coverage >= 0.5
    return np.clip(np.rint(photo), 0, 255).astype(np.uint8), truth


# ---------------------------------------------------------------------------- measures
def _edge(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask)


def boundary_error(mask: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Distances (original pixels) between the edge pixels of ``mask`` and of ``truth``, both ways:
    ``{"mean", "p95", "iou"}`` (the errors are NaN for an empty mask)."""
    union = mask | truth
    iou = float((mask & truth).sum() / max(1, union.sum()))
    if not mask.any():
        return {"mean": float("nan"), "p95": float("nan"), "iou": iou}
    rows, cols = np.nonzero(union)
    window = np.s_[max(0, rows.min() - 2):rows.max() + 3, max(0, cols.min() - 2):cols.max() + 3]
    edge_mask, edge_truth = _edge(mask[window]), _edge(truth[window])
    to_truth = ndimage.distance_transform_edt(~edge_truth)[edge_mask]
    to_mask = ndimage.distance_transform_edt(~edge_mask)[edge_truth]
    errors = np.concatenate([to_truth, to_mask])
    return {"mean": float(errors.mean()), "p95": float(np.percentile(errors, 95)), "iou": iou}


def precision(predictor: Sam2Predictor, hw: tuple[int, int], quiet: bool) -> list[dict[str, Any]]:
    rows = []
    for shape in shapes(hw):
        photo, truth = render(shape, hw)
        prompts = shape.prompts
        coarse = predictor.decode(predictor.encode(photo), prompts)
        crop = refine.crop_for(coarse, prompts)
        started = time.perf_counter()
        fine = predictor.decode(predictor.encode_crop(photo, crop), prompts)
        seconds = time.perf_counter() - started
        before, after = boundary_error(coarse.best_mask, truth), boundary_error(fine.best_mask, truth)
        inside = np.zeros(hw, bool)
        inside[crop.slices] = True
        ch, cw = crop.crop_hw
        row = {"shape": shape.name, "crop": f"{cw}×{ch}",
               "cell_px_before": f"{hw[1] / 256:.1f}×{hw[0] / 256:.1f}", "cell_px_after": f"{cw / 256:.2f}×{ch / 256:.2f}",
               "mean_before": before["mean"], "mean_after": after["mean"],
               "ratio": before["mean"] / after["mean"] if after["mean"] > 0 else float("inf"),
               "p95_before": before["p95"], "p95_after": after["p95"],
               "iou_before": before["iou"], "iou_after": after["iou"],
               "missed_before": before["iou"] < MISSED_IOU,
               "coarse_px_outside_crop": int((coarse.best_mask & ~inside).sum()),
               "refine_s_content_model": seconds}
        rows.append(row)
        if not quiet:
            print(f"{shape.name}: boundary error {before['mean']:.2f} -> {after['mean']:.2f} px, "
                  f"IoU {before['iou']:.3f} -> {after['iou']:.3f}", flush=True)
    return rows


# ---------------------------------------------------------------------------- cost on the stand-in
STANDIN_CROPS = ((1000, 800, 1600, 1250), (2400, 1500, 2800, 1800), (300, 2000, 1100, 2600))
"""Crops refined on the stand-in (its random-weight masks are noise, so crops are fixed, of typical sizes)."""


def cost(folder: Path, repeat: int, quiet: bool) -> dict[str, Any]:
    """Refine time and memory per refined object on the full-size stand-in, on a 12 MP JPEG."""
    predictor = Sam2Predictor.from_files(folder / "encoder.onnx", folder / "decoder.onnx")
    with tempfile.TemporaryDirectory() as tmp:
        path = common.photo_file(12, "jpeg", Path(tmp))
        whole = load_image(path).rgb
        hw = whole.shape[:2]
        embedding = predictor.encode(whole)
        prompts = Prompts((Point(1300, 1000),))
        predictor.decode(embedding, prompts)  # warm
        del whole
        gc.collect()
        rss_before = common.rss_mib()
        kept = []  # crop embeddings, as the app's cache keeps them
        rows = []
        for i in range(repeat):
            box = STANDIN_CROPS[i % len(STANDIN_CROPS)]
            crop = CropFrame(hw, box)
            x0, y0, x1, y1 = box
            click = Prompts((Point((x0 + x1) / 2, (y0 + y1) / 2),))
            t0 = time.perf_counter()
            rgb = load_image(path).rgb
            t1 = time.perf_counter()
            crop_embedding = predictor.encode_crop(rgb, crop)
            t2 = time.perf_counter()
            result = predictor.decode(crop_embedding, click)
            t3 = time.perf_counter()
            kept.append((crop_embedding, result))
            rss = common.rss_mib()
            # The same machine's whole-image encode right after (what an upload costs), for a ratio that holds
            # however loaded the machine is.
            t4 = time.perf_counter()
            predictor.encode(rgb)
            whole_s = time.perf_counter() - t4
            del rgb
            gc.collect()
            rows.append({"crop": f"{x1 - x0}×{y1 - y0}", "read_s": t1 - t0, "encode_s": t2 - t1,
                         "decode_ms": (t3 - t2) * 1e3, "refine_s": t3 - t1, "total_s": t3 - t0,
                         "whole_encode_s": whole_s, "refine_per_whole_encode": (t3 - t1) / whole_s,
                         "rss_mib": rss})
            if not quiet:
                print(f"stand-in refine {i + 1}: {rows[-1]['refine_s']:.2f} s (+ read {rows[-1]['read_s']:.2f} s)",
                      flush=True)
    per_object = (kept[0][0].nbytes + kept[0][1].low_res_logits.nbytes) / 2**20
    # The first refine also grows the allocator's pools for the photo read (36 MB of RGB at 12 MP) and the
    # crop's input; the steady growth is measured from there on.
    steady = (rows[-1]["rss_mib"] - rows[0]["rss_mib"]) / (len(rows) - 1) if len(rows) > 1 else float("nan")
    return {"rows": rows, "refine_s_median": common.median(r["refine_s"] for r in rows),
            "refine_per_whole_encode_median": common.median(r["refine_per_whole_encode"] for r in rows),
            "total_s_median": common.median(r["total_s"] for r in rows),
            "embedding_mib_per_object": per_object, "rss_before_mib": rss_before,
            "rss_growth_mib_per_object": steady,
            "peak_rss_mib": common.peak_rss_mib(), "encoder": predictor.info.encoder_name}


# ---------------------------------------------------------------------------- main
def content_models_dir(arg: str | None, tmp: Path) -> Path:
    if arg:
        return Path(arg)
    from tools import content_models  # the offline test models (no download)

    content_models.save_models(tmp)
    return tmp


def report(result: dict[str, Any]) -> str:
    out = ["Precision: before (whole image) vs after refine, 12 MP, content-following test models",
           common.table(result["precision"], ["shape", "crop", "cell_px_before", "cell_px_after", "mean_before",
                                              "mean_after", "ratio", "p95_before", "p95_after", "iou_before",
                                              "iou_after", "coarse_px_outside_crop"], digits=2)]
    summary = result["summary"]
    out.append(f"mean boundary error before/after, all shapes: {summary['mean_before']:.2f} / "
               f"{summary['mean_after']:.2f} px ({summary['ratio']:.1f}x lower); lines >= 5 px missed before: "
               f"{summary['lines_missed_before']}, their IoU after: {summary['lines_iou_after']}")
    if "cost" in result:
        cost_ = result["cost"]
        out += ["", f"Cost on the full-size stand-in ({cost_['encoder']}), 12 MP JPEG",
                common.table(cost_["rows"], ["crop", "read_s", "encode_s", "decode_ms", "refine_s", "total_s",
                                             "whole_encode_s", "refine_per_whole_encode", "rss_mib"], digits=2),
                f"refine (crop encode + decode) median {cost_['refine_s_median']:.2f} s "
                f"({cost_['refine_per_whole_encode_median']:.2f}x a whole-image encode), with the photo read "
                f"{cost_['total_s_median']:.2f} s; kept per refined object {cost_['embedding_mib_per_object']:.1f} MiB "
                f"(crop embedding + logits); process RSS {cost_['rss_before_mib']:.0f} MiB before the first refine, "
                f"{cost_['rows'][0]['rss_mib']:.0f} after it, then {cost_['rss_growth_mib_per_object']:.1f} MiB per "
                f"refine; peak {cost_['peak_rss_mib']:.0f} MiB"]
    out.append(f"load average at the end: {result['machine']['loadavg_1min']}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", help="content-following models (default: built into a temporary folder)")
    parser.add_argument("--standin", default=str(common.STANDIN_DIR) if common.STANDIN_DIR else None,
                        help=f"full-size stand-in folder for the cost part (default ${common.STANDIN_ENV}); "
                             "'' to skip it")
    parser.add_argument("--repeat", type=int, default=3, help="refines timed on the stand-in")
    parser.add_argument("--size", type=int, nargs=2, default=PHOTO_HW[::-1], metavar=("W", "H"),
                        help="photo size for the precision part")
    parser.add_argument("--json", help="output JSON (default bench/results/refine-<time>.json)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    hw = (args.size[1], args.size[0])
    with tempfile.TemporaryDirectory() as tmp:
        folder = content_models_dir(args.model_dir, Path(tmp))
        predictor = Sam2Predictor.from_files(folder / "encoder.onnx", folder / "decoder.onnx")
        rows = precision(predictor, hw, args.quiet)
    lines = [r for r in rows if r["shape"].startswith("line") and int(r["shape"].split()[1]) >= 5]
    summary = {"mean_before": float(np.mean([r["mean_before"] for r in rows])),
               "mean_after": float(np.mean([r["mean_after"] for r in rows])),
               "lines_missed_before": all(r["missed_before"] for r in lines),
               "lines_iou_after": [round(r["iou_after"], 3) for r in lines]}
    summary["ratio"] = summary["mean_before"] / summary["mean_after"]
    summary["every_shape_ratio_at_least_3"] = all(r["ratio"] >= 3 for r in rows if not math.isnan(r["ratio"]))
    result: dict[str, Any] = {"precision": rows, "summary": summary, "photo_hw": list(hw)}
    if args.standin:
        result["cost"] = cost(Path(args.standin), args.repeat, args.quiet)
    result["machine"] = common.machine_info()
    return common.finish(result, args.json, "refine", report)


if __name__ == "__main__":
    raise SystemExit(main())
