"""Upload to ready against a bare onnxruntime encoder run, interleaved in one process (issue 24, item 2).

Each round runs one bare onnxruntime fp32 encoder run (``bench_encoders.bare_encoder``: an ``InferenceSession``
with default options, the floor) and one upload of the same 12 MP photo to a fresh service on the app's fp32
engine (``SegmentationService.open_image``: read, display copies and hash, preprocessing, then the encoder run),
in alternating order, so the machine's load affects both sides of each ratio alike; and one bare run with the app's
session options (``sam_onnx.session.session_options``: spinning off), which tells how much of the gap is those options
rather than the intake. Reported per round:

- ``shown``: :meth:`~sam_demo.service.SegmentationService.receive_image` done, i.e. the photo can be shown
  (display copy and its JPEG made), before the encoder runs;
- ``ready``: the embedding is cached, the image can be clicked;
- ``ready / bare``: the issue's measure (target <= 1.10);
- ``bare app options / bare``: the bare run with the app's session options against the default ones;
- ``encode / bare app options``: the upload's encoder step (ready - shown) against that run (1.0: the encoder step
  costs no more than the app's session itself);
- ``cpu ready / cpu bare``: the same in the process's CPU time (both cores; less sensitive to other processes
  than wall time, but it counts the intake's work on both cores in full, not its critical path).

Run from the repository root::

    python -m bench.bench_intake                          # stand-in ($SAM_STANDIN_DIR), 12 MP JPEG, 8 rounds
    python -m bench.bench_intake --model-dir DIR --rounds 12 --mp 12 --format png
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import common
from bench.bench_encoders import bare_encoder

TARGET_RATIO = 1.10
"""Issue 24: upload to ready at 12 MP on the fp32 engine <= 1.10 x the bare encoder."""
ARMS = ("bare", "upload", "bare app options")
"""What each round runs, in an order that rotates from round to round."""


def upload_once(service, path: Path) -> dict[str, float]:
    """One upload to a fresh service: milliseconds to shown and to ready."""
    started, cpu_started = time.perf_counter(), time.process_time()
    record, _ = service.receive_image(path)
    shown = time.perf_counter()
    info = service.encode_image(record)
    ready, cpu_ready = time.perf_counter(), time.process_time()
    if info["cache_hit"]:
        raise RuntimeError("a fresh service answered from its cache")
    return {"shown": (shown - started) * 1e3, "ready": (ready - started) * 1e3,
            "cpu ready": (cpu_ready - cpu_started) * 1e3}


def run(args) -> dict[str, Any]:
    from sam_demo.service import SegmentationService
    from sam_onnx import Sam2Predictor
    from sam_onnx.image import ImageLimits
    from sam_onnx.session import session_options

    folder = common.model_dir(args.model_dir)
    photo = common.photo_file(args.mp, args.format, Path(args.photos))
    foreign = common.ForeignLoad()
    bare = bare_encoder(folder / "encoder.onnx", args.threads)
    bare_app = bare_encoder(folder / "encoder.onnx", options=session_options(args.threads))
    predictor = Sam2Predictor.from_files(folder / "encoder.onnx", folder / "decoder.onnx", threads=args.threads)
    limits = ImageLimits(max_bytes=None)
    predictor.encode(np.zeros((64, 64, 3), np.uint8))  # the app's warm-up encode
    upload_once(SegmentationService(predictor, limits=limits), photo)  # first-call costs, untimed
    samples = []
    for r in range(args.rounds):
        common.wait_for_quiet(timeout_s=args.wait_quiet)
        foreign_round = common.ForeignLoad()
        order = ARMS[r % len(ARMS):] + ARMS[:r % len(ARMS)]  # each arm first, second and last in turn
        sample: dict[str, float] = {}
        for what in order:
            if what == "bare":
                sample["bare"], sample["cpu bare"] = bare()
            elif what == "bare app options":
                sample["bare app options"], sample["cpu bare app options"] = bare_app()
            else:
                sample.update(upload_once(SegmentationService(predictor, limits=limits), photo))
        sample["ready / bare"] = sample["ready"] / sample["bare"]
        sample["bare app options / bare"] = sample["bare app options"] / sample["bare"]
        sample["encode / bare app options"] = (sample["ready"] - sample["shown"]) / sample["bare app options"]
        sample["shown / bare"] = sample["shown"] / sample["bare"]
        sample["cpu ready / cpu bare"] = sample["cpu ready"] / sample["cpu bare"]
        sample["foreign share"] = round(foreign_round.share(), 3)
        samples.append(sample)
        common.progress(f"round {r + 1}/{args.rounds}: bare {sample['bare']:.0f} ms (app options "
                  f"{sample['bare app options']:.0f} ms), shown {sample['shown']:.0f} ms, "
                  f"ready {sample['ready']:.0f} ms ({sample['ready / bare']:.3f} x bare)")
    med = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
    return {"machine": common.machine_info(gradio=False), "model_dir": str(folder), "photo": photo.name,
            "args": vars(args), "median": med, "samples": samples,
            "met": med["ready / bare"] <= TARGET_RATIO, "foreign_cpu_share": round(foreign.share(), 3),
            "peak_rss_mib": common.peak_rss_mib()}


def report(result: dict[str, Any]) -> str:
    m, med = result["machine"], result["median"]
    ratios = sorted(s["ready / bare"] for s in result["samples"])
    return "\n".join([
        f"CPU {m['cpu']} ({m['affinity']} cores), load average at start {m['loadavg_1min']}; {result['photo']}; "
        f"{len(result['samples'])} rounds; other processes used {result['foreign_cpu_share']:.0%} of the CPUs",
        f"bare onnxruntime fp32 encoder: {med['bare']:.0f} ms (median)",
        f"upload -> shown (display copy ready, before the encoder): {med['shown']:.0f} ms "
        f"({med['shown / bare']:.3f} x bare)",
        f"upload -> ready: {med['ready']:.0f} ms = {med['ready / bare']:.3f} x bare (median of per-round ratios; "
        f"range {ratios[0]:.3f}-{ratios[-1]:.3f}); target <= {TARGET_RATIO}: "
        f"{'met' if result['met'] else 'not met'}",
        f"in CPU time: ready {med['cpu ready']:.0f} ms, bare {med['cpu bare']:.0f} ms = "
        f"{med['cpu ready / cpu bare']:.3f} x (median of per-round ratios)",
        f"bare with the app's session options (spinning off): {med['bare app options']:.0f} ms = "
        f"{med['bare app options / bare']:.3f} x bare ({med['cpu bare app options']:.0f} ms CPU); the upload's "
        f"encoder step (ready - shown) = {med['encode / bare app options']:.3f} x it"])


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", help=f"folder with encoder.onnx + decoder.onnx (default ${common.STANDIN_ENV})")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--mp", type=float, default=12.0, help="photo size in megapixels")
    parser.add_argument("--format", choices=("jpeg", "png"), default="jpeg")
    parser.add_argument("--threads", type=int, default=None, help="threads per onnxruntime session (default: cores)")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="before each round, wait up to this long for other processes to go quiet")
    parser.add_argument("--photos", default=str(common.RESULTS / "photos"), help="where test photos are kept")
    parser.add_argument("--json", help="write the results here (default bench/results/intake-<time>.json)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    return common.finish(run(args), args.json, "intake", report)


if __name__ == "__main__":
    sys.exit(main())
