"""Timings of "segment everything" on a full-size model (prints tables, writes JSON; not a test).

Run (the random-weight stand-in has the real architecture and graph sizes, but meaningless masks)::

    python -m bench.bench_everything --model-dir "$SAM_STANDIN_DIR" \\
        --json bench/everything.json

Measures:

1. decoder seconds per call against the batch size (points per call), from
   which ``amg.DEFAULT_BATCH_SIZE`` is chosen;
2. a grid on a 12 MP photo (4000 x 3000, synthetic shapes plus noise), end to
   end and split into encoder, decoder calls, screening (filters + NMS on
   low-res data) and finishing (full-resolution upsampling of the kept masks);
3. the same with the quality filters off (every candidate survives to NMS), the
   worst case of screening and finishing;
4. every preset of ``amg.PRESETS`` (``--presets``), against ``amg.estimate_seconds``;
5. the screening cost per candidate mask for smooth (decoder-like) and noise logits.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench import common
from sam_onnx import Point, Prompts, Sam2Predictor, amg

PHOTO_HW = (3000, 4000)
BATCH_SIZES = (1, 4, 8, 16, 32, 64)


def synthetic_photo(hw: tuple[int, int], seed: int = 0) -> np.ndarray:
    """``(H, W, 3)`` uint8: a gradient, 40 random filled ellipses and rectangles, and noise."""
    rng = np.random.default_rng(seed)
    h, w = hw
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    image = np.stack([xx / w * 160, yy / h * 160, np.full_like(xx, 80.0)], axis=-1)
    for _ in range(40):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        rx, ry = rng.uniform(w * 0.02, w * 0.15), rng.uniform(h * 0.02, h * 0.15)
        x0, x1, y0, y1 = (int(max(0, cx - rx)), int(min(w, cx + rx)), int(max(0, cy - ry)), int(min(h, cy + ry)))
        inside = ((xx[y0:y1, x0:x1] - cx) / rx) ** 2 + ((yy[y0:y1, x0:x1] - cy) / ry) ** 2 <= 1 \
            if rng.random() < 0.5 else np.ones((y1 - y0, x1 - x0), bool)
        image[y0:y1, x0:x1][inside] = rng.uniform(0, 255, 3)
    image += rng.normal(0, 8, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


class TimedPredictor:
    """Forwards ``encode`` / ``decode_many`` and adds up their wall time."""

    def __init__(self, predictor: Sam2Predictor) -> None:
        self.predictor = predictor
        self.encode_s = self.decode_s = 0.0
        self.encodes = self.decodes = 0

    def encode(self, image):
        t0 = time.perf_counter()
        out = self.predictor.encode(image)
        self.encode_s += time.perf_counter() - t0
        self.encodes += 1
        return out

    def decode_many(self, embedding, objects, **kwargs):
        t0 = time.perf_counter()
        out = self.predictor.decode_many(embedding, objects, **kwargs)
        self.decode_s += time.perf_counter() - t0
        self.decodes += 1
        return out


def bench_batches(predictor: Sam2Predictor, embedding, repeat: int) -> list[dict]:
    rng = np.random.default_rng(1)
    h, w = embedding.original_hw
    rows = []
    for size in BATCH_SIZES:
        objects = [Prompts((Point(float(x), float(y)),)) for x, y in zip(rng.uniform(0, w - 1, size),
                                                                           rng.uniform(0, h - 1, size))]
        predictor.decode_many(embedding, objects, max_batch=size)  # warm-up
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            predictor.decode_many(embedding, objects, max_batch=size)
            times.append(time.perf_counter() - t0)
        median = statistics.median(times)
        rows.append({"batch": size, "seconds_per_call": median, "ms_per_point": median / size * 1e3,
                     "min_s": min(times), "max_s": max(times)})
        print(f"  batch {size:3d}: {median * 1e3:8.1f} ms/call  {median / size * 1e3:6.2f} ms/point  "
              f"(min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f})", flush=True)
    return rows


def blob_logits(count: int, seed: int = 0) -> np.ndarray:
    """``(count, 3, 256, 256)`` float32 smooth logits (three nested discs per point, like a real decoder)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:256, :256].astype(np.float32)
    out = np.empty((count, 3, 256, 256), np.float32)
    for p in range(count):
        cy, cx, radius = rng.uniform(20, 236), rng.uniform(20, 236), rng.uniform(4, 90)
        for k, scale in enumerate((0.6, 1.0, 1.5)):
            out[p, k] = 8.0 * (1.0 - np.hypot(yy - cy, xx - cx) / (radius * scale))
    return out


def bench_screening(noise_logits: np.ndarray, repeat: int) -> list[dict]:
    """Seconds per candidate mask of the low-res screening, smooth vs noise logits, filters open."""
    settings = amg.EverythingSettings(pred_iou_thresh=0.0, stability_score_thresh=0.0)
    crop = amg.make_plan(settings, PHOTO_HW).crops[0]
    rows = []
    for name, logits in (("smooth discs (real-decoder-like)", blob_logits(len(noise_logits))),
                         ("stand-in output (noise)", noise_logits)):
        scores = np.full(logits.shape[:2], 0.9, np.float32)
        points = crop.points_xy[:len(logits)]
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            amg._screen_batch(logits, scores, points, crop, PHOTO_HW, settings, amg._Candidates())
            times.append(time.perf_counter() - t0)
        per_candidate = statistics.median(times) / logits.shape[0] / logits.shape[1]
        rows.append({"logits": name, "ms_per_candidate": per_candidate * 1e3})
        print(f"  {name:<34} {per_candidate * 1e3:6.2f} ms per candidate mask", flush=True)
    return rows


def _per_call(batches: list[dict], size: int) -> float:
    """Measured seconds per call of ``size`` points (linear interpolation in the batch size)."""
    sizes = [row["batch"] for row in batches]
    per_point = [row["seconds_per_call"] / row["batch"] for row in batches]
    return float(np.interp(size, sizes, per_point)) * size


def run_grid(predictor: Sam2Predictor, rgb: np.ndarray, settings: amg.EverythingSettings, label: str,
             call_s: float, encode_s: float) -> dict:
    """One ``amg.generate`` run; ``call_s`` = measured seconds per decoder call of this batch size."""
    timed = TimedPredictor(predictor)
    plan = amg.make_plan(settings, rgb.shape[:2])
    estimate = amg.estimate_seconds(plan, call_s, encode_s)
    t0 = time.perf_counter()
    masks = amg.generate(timed, rgb, settings)
    total = time.perf_counter() - t0
    t1 = time.perf_counter()
    labels = amg.label_map(masks, rgb.shape[:2])
    label_s = time.perf_counter() - t1
    other = total - timed.encode_s - timed.decode_s
    row = {"run": label, "settings": settings.to_dict(), "points": plan.points,
           "decoder_calls": plan.decoder_calls, "encoder_runs": plan.encoder_runs,
           "total_s": total, "encode_s": timed.encode_s, "decode_s": timed.decode_s,
           "grid_s": timed.encode_s + timed.decode_s, "screen_and_finish_s": other,
           "estimate_s": estimate, "masks": len(masks), "label_map_s": label_s,
           "labels_used": int(labels.max())}
    print(f"  {label:<28} {plan.points:5d} pts {plan.decoder_calls:4d} calls {plan.encoder_runs} enc | "
          f"total {total:6.2f} s = encode {timed.encode_s:5.2f} + decode {timed.decode_s:6.2f} + "
          f"screen/finish {other:5.2f} | estimate {estimate:6.2f} s | {len(masks)} masks", flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", help=f"folder with encoder.onnx + decoder.onnx (default ${common.STANDIN_ENV})")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=5, help="timed decoder calls per batch size")
    parser.add_argument("--presets", nargs="*", default=list(amg.PRESETS), help="presets to time (none: skip)")
    parser.add_argument("--e2e-batches", nargs="*", type=int, default=[1, 4, 16, 64],
                        help="batch sizes of the end-to-end 16 x 16 runs (none: skip)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    args.model_dir = common.model_dir(args.model_dir)
    predictor = Sam2Predictor.from_files(args.model_dir / "encoder.onnx", args.model_dir / "decoder.onnx",
                                         threads=args.threads)
    rgb = synthetic_photo(PHOTO_HW)
    print(f"model {args.model_dir}, {predictor.info.threads} threads; photo {PHOTO_HW[1]}x{PHOTO_HW[0]}", flush=True)
    predictor.encode(rgb)  # warm-up
    encodes = []
    for _ in range(2):
        t0 = time.perf_counter()
        embedding = predictor.encode(rgb)
        encodes.append(time.perf_counter() - t0)
    encode_s = statistics.median(encodes)
    print(f"encoder (12 MP, with preprocessing): {encode_s:.2f} s", flush=True)

    print("decoder seconds per call against the batch size:", flush=True)
    batches = bench_batches(predictor, embedding, args.repeat)

    print("screening (filters, holes/specks, stability, boxes) per candidate, 8 points x 3:", flush=True)
    objects = [Prompts((Point(float(x), float(y)),)) for x, y in amg.make_plan(amg.EverythingSettings(), PHOTO_HW)
               .crops[0].points_xy[:8]]
    noise = np.stack([r.low_res_logits for r in predictor.decode_many(embedding, objects, max_batch=8)])
    screening = bench_screening(noise, args.repeat)

    print("end to end on the 12 MP photo, 16 x 16 grid, against the batch size:", flush=True)
    base = amg.PRESETS["balanced"]
    by_batch = [run_grid(predictor, rgb, replace(base, batch_size=size), f"16x16 batch {size}",
                         _per_call(batches, size), encode_s) for size in args.e2e_batches]

    print("end to end on the 12 MP photo:", flush=True)
    runs = [run_grid(predictor, rgb, replace(base, pred_iou_thresh=0.0, stability_score_thresh=0.0),
                     "16x16 filters off", _per_call(batches, base.batch_size), encode_s)]
    for name in args.presets:
        preset = amg.PRESETS[name]
        runs.append(run_grid(predictor, rgb, preset, f"preset {name}", _per_call(batches, preset.batch_size),
                             encode_s))

    if args.json:
        args.json.write_text(json.dumps({
            "machine": {"platform": platform.platform(), "processor": platform.processor(),
                        "threads": predictor.info.threads},
            "model_dir": str(args.model_dir), "photo_hw": PHOTO_HW, "encode_s": encode_s,
            "batches": batches, "screening": screening, "end_to_end_by_batch": by_batch,
            "runs": runs}, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
