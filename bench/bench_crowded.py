"""Clicks while several users hold many objects: more decoder results than the results cache holds.

Each user's editor holds ``--objects`` objects of ``--points`` points (256 × 32: every documented limit at its
maximum) on an image of its own, in one :class:`~sam_demo.service.SegmentationService` (in-process, no HTTP). Every
user's first view decodes and draws all its objects; then the users click in turn, each click adding a point to
its last object, and each click's render is timed with the number of objects it decoded. A decoder result keeps
the low-res logits of three candidates (0.79 MB), so the default 256 MB results cache holds 324 objects' results:
two users of 256 objects do not fit. A click should still decode one object (README, "An edit costs what it
changes").

    python -m bench.bench_crowded                       # stand-in ($SAM_STANDIN_DIR), 2 users, 4 clicks
    python -m bench.bench_crowded --users 3 --clicks 6 --model-dir DIR
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import common
from sam_demo.service import DEFAULT_RESULT_CACHE_MB

IMAGE_HW = (600, 900)
"""The users' images (original pixels), as bench_fairness's."""


def run(args) -> dict[str, Any]:
    from sam_demo.service import SegmentationService
    from sam_onnx import Sam2Predictor
    from tools.scenarios import photo, prompts_editor

    folder = common.model_dir(args.model_dir)
    predictor = Sam2Predictor.from_files(folder / "encoder.onnx", folder / "decoder.onnx", threads=args.threads)
    service = SegmentationService(predictor, result_cache_mb=args.result_cache_mb)
    users = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.users):
            path = Path(tmp) / f"user{k + 1}.png"
            path.write_bytes(photo(k + 1, IMAGE_HW))
            record, _ = service.open_image(path)
            users.append([record, prompts_editor(args.objects, args.points, IMAGE_HW, seed=k + 1)])
        first = []
        for record, editor in users:
            started = time.perf_counter()
            service.render(record, editor)
            first.append(time.perf_counter() - started)
            common.progress(f"first view of {args.objects} objects: {first[-1]:.1f} s")
        rng = np.random.default_rng(0)
        clicks = []
        for c in range(args.clicks):
            user = users[c % len(users)]
            user[1] = user[1].add_point(float(rng.uniform(0, IMAGE_HW[1] - 1)), float(rng.uniform(0, IMAGE_HW[0] - 1)))
            started = time.perf_counter()
            view = service.render(*user)
            clicks.append({"user": c % len(users) + 1, "ms": (time.perf_counter() - started) * 1e3,
                           "decoded": view.timings_ms["decoded"]})
            common.progress(f"user {clicks[-1]['user']} click: {clicks[-1]['ms']:.0f} ms, {clicks[-1]['decoded']} decoded")
    return {"machine": common.machine_info(gradio=False), "model_dir": str(folder), "args": vars(args),
            "first_view_s": first, "clicks": clicks,
            "median_click_ms": statistics.median(c["ms"] for c in clicks),
            "max_decoded": max(c["decoded"] for c in clicks)}


def report(result: dict[str, Any]) -> str:
    a, m = result["args"], result["machine"]
    return "\n".join([
        f"CPU {m['cpu']} ({m['affinity']} cores), load average at start {m['loadavg_1min']}",
        f"{a['users']} users x {a['objects']} objects of {a['points']} points; first views "
        + ", ".join(f"{s:.1f} s" for s in result["first_view_s"]),
        f"clicks in turn: median {result['median_click_ms']:.0f} ms, at most {result['max_decoded']} object(s) "
        f"decoded per click (1 expected)"])


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", help=f"folder with encoder.onnx + decoder.onnx (default ${common.STANDIN_ENV})")
    parser.add_argument("--users", type=int, default=2)
    parser.add_argument("--objects", type=int, default=256)
    parser.add_argument("--points", type=int, default=32)
    parser.add_argument("--clicks", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None, help="threads per onnxruntime session (default: cores)")
    parser.add_argument("--result-cache-mb", type=int, default=DEFAULT_RESULT_CACHE_MB,
                        help="what-if: the decoder results cache, MB (default: the app's)")
    parser.add_argument("--json", help="write the results here (default bench/results/crowded-<time>.json)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    return common.finish(run(args), args.json, "crowded", report)


if __name__ == "__main__":
    sys.exit(main())
