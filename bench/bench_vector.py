"""Vector exports: round-trip IoU per test shape and tolerance, and the time to export 50 objects of a 12 MP photo.

Run: ``python -m bench.bench_vector [--objects 50] [--json out.json]``

Table 1 traces each mask of ``tools/vector_shapes.py`` at each tolerance
(:func:`sam_onnx.vector.mask_polygons`), rasterises the polygons back
(:func:`sam_onnx.vector.rasterize`, pixel centres) and prints the IoU with the
mask and the number of vertices. Table 2 does the same for SAM-like masks on a
12 MP photo (random 256 × 256 logits upsampled as the decoder's are). Then it
times the vector part of an export of ``--objects`` such masks: polygons at the
default tolerance, and the GeoJSON, YOLO, COCO-polygon and SVG files.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import shapely

from bench.common import machine_info, write_json
from sam_onnx import vector
from sam_onnx.postprocess import mask_from_logits
from tools.vector_shapes import SHAPES

TOLERANCES = (0.0, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0)
TWELVE_MP_HW = (3000, 4000)


def sam_like_logits(rng: np.random.Generator, radius_cells: float) -> np.ndarray:
    """(256, 256) float32 logits of one object: a disc of ``radius_cells`` with a wavy edge and a few holes."""
    yy, xx = np.mgrid[:256, :256].astype(np.float32)
    cy, cx = rng.uniform(radius_cells, 256 - radius_cells, size=2)
    angle = np.arctan2(yy - cy, xx - cx)
    wobble = 1 + 0.15 * np.sin(3 * angle + rng.uniform(0, 6)) + 0.08 * np.sin(7 * angle + rng.uniform(0, 6))
    logits = 6.0 * (1.0 - np.hypot(yy - cy, xx - cx) / (radius_cells * wobble))
    for _ in range(int(rng.integers(0, 3))):  # holes
        hy, hx = cy + rng.uniform(-0.4, 0.4) * radius_cells, cx + rng.uniform(-0.4, 0.4) * radius_cells
        logits = np.minimum(logits, np.hypot(yy - hy, xx - hx) - radius_cells * 0.12)
    return logits.astype(np.float32)


def round_trip_row(mask: np.ndarray, tolerances=TOLERANCES) -> list[tuple[float, float, int]]:
    """``(tolerance, IoU, vertices)`` for each tolerance."""
    out = []
    for tolerance in tolerances:
        polygons = vector.mask_polygons(mask, tolerance=tolerance, min_area=0)
        out.append((tolerance, vector.iou(vector.rasterize(polygons, mask.shape), mask),
                    int(shapely.get_num_coordinates(polygons))))
    return out


def print_table(title: str, rows: dict[str, list[tuple[float, float, int]]]) -> None:
    print(f"\n{title}\n")
    print("| shape | " + " | ".join(f"{t:g} px" for t in TOLERANCES) + " |")
    print("|---|" + "---|" * len(TOLERANCES))
    for name, cells in rows.items():
        print(f"| {name} | " + " | ".join(f"{iou:.4f} ({n})" for _, iou, n in cells) + " |")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=50)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    results: dict = {"machine": machine_info(), "shapes": {}, "photo": {}}

    shapes = {name: round_trip_row(make()) for name, make in SHAPES.items()}
    results["shapes"] = shapes
    print_table("Round trip, tools/vector_shapes.py (320 x 240): IoU (vertices) per tolerance", shapes)

    rng = np.random.default_rng(12)
    photo = {}
    for radius in (6, 20, 60):
        mask = mask_from_logits(sam_like_logits(rng, radius), TWELVE_MP_HW)
        photo[f"r{radius}cells_{int(mask.sum())}px"] = round_trip_row(mask)
    results["photo"] = photo
    print_table("Round trip, SAM-like masks on a 4000 x 3000 photo: IoU (vertices) per tolerance", photo)

    masks = [mask_from_logits(sam_like_logits(rng, float(rng.uniform(4, 40))), TWELVE_MP_HW)
             for _ in range(args.objects)]
    hw = TWELVE_MP_HW
    started = time.perf_counter()
    polygons = [vector.mask_polygons(m) for m in masks]
    traced = time.perf_counter()
    objects = [vector.VectorObject(f"Object {i + 1}", p) for i, p in enumerate(polygons)]
    files = {
        "geojson": json.dumps(vector.geojson_feature_collection(objects, hw)),
        "yolo": "\n".join(vector.yolo_seg_lines(polygons, hw)),
        "coco": json.dumps([vector.coco_polygons(p) for p in polygons]),
        "svg": vector.svg_document(objects, hw),
    }
    written = time.perf_counter()
    export = {"objects": args.objects, "pixels_per_object_median": int(np.median([m.sum() for m in masks])),
              "polygons_s": round(traced - started, 3), "files_s": round(written - traced, 3),
              "vertices": int(sum(shapely.get_num_coordinates(p) for p in polygons)),
              "bytes": {k: len(v) for k, v in files.items()}, "tolerance": vector.DEFAULT_TOLERANCE}
    results["export"] = export
    print(f"\n{args.objects} objects of a 12 MP photo at tolerance {vector.DEFAULT_TOLERANCE:g} px: polygons "
          f"{export['polygons_s']:.2f} s, GeoJSON + YOLO + COCO + SVG text {export['files_s']:.2f} s, "
          f"{export['vertices']} vertices, bytes {export['bytes']} (load average "
          f"{results['machine']['loadavg_1min']})")
    if args.json:
        write_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
