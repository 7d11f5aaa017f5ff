"""The app's segment-everything estimate against the measured run time, through the service as the app calls it.

A fresh :class:`~sam_demo.service.SegmentationService` (``warm_up()`` first, as ``python app.py`` does),
then ``--rounds`` rounds over the presets and photo sizes: the estimate the page shows before the run,
then the run, timed. The first row is the estimate a user sees before any run on the server (from the
warm-up's measurements), the others learn from the runs before them. Prints each run and the median
absolute error, writes JSON. The machine is shared: other processes change the speed between runs, which
no estimate can foresee; ``foreign load`` is printed per run.

    python -m bench.bench_estimate --rounds 2 --presets fast balanced
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import finish, machine_info, model_dir, photo_file, table
from sam_demo.service import SegmentationService
from sam_onnx import Sam2Predictor


def run(args: argparse.Namespace) -> dict[str, Any]:
    args.model_dir = model_dir(args.model_dir)
    predictor = Sam2Predictor.from_files(args.model_dir / "encoder.onnx", args.model_dir / "decoder.onnx")
    service = SegmentationService(predictor)
    service.warm_up()
    rows = []
    with tempfile.TemporaryDirectory(prefix="sam-estimate-") as tmp:
        for round_ in range(args.rounds):
            for preset in args.presets:
                for k, megapixels in enumerate(args.sizes):
                    path = photo_file(megapixels, "jpeg", Path(tmp), seed=100 * round_ + k)
                    record, _ = service.open_image(str(path))
                    estimate = service.everything_estimate(record, preset).seconds
                    load = os.getloadavg()[0]
                    started = time.perf_counter()
                    found = service.segment_everything(record, preset)
                    measured = time.perf_counter() - started
                    rows.append({"round": round_, "preset": preset, "MP": megapixels, "estimate s": estimate,
                                 "measured s": measured, "error %": 100 * (estimate - measured) / measured,
                                 "masks": len(found), "load": load})
                    print(rows[-1], flush=True)
    errors = [abs(r["error %"]) for r in rows]
    return {"runs": rows, "median_abs_error_pct": statistics.median(errors),
            "within_30_pct": sum(e <= 30 for e in errors), "model_dir": str(args.model_dir),
            "machine": machine_info()}


def report(result: dict[str, Any]) -> str:
    return "\n".join([
        table(result["runs"], ["round", "preset", "MP", "estimate s", "measured s", "error %", "masks", "load"]),
        "", f"median |error| {result['median_abs_error_pct']:.0f} %; {result['within_30_pct']} of "
            f"{len(result['runs'])} runs within 30 %."])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--model-dir", help="folder with encoder.onnx + decoder.onnx (default: $SAM_STANDIN_DIR)")
    parser.add_argument("--presets", nargs="+", default=["fast", "balanced"])
    parser.add_argument("--sizes", nargs="+", type=float, default=[12.0, 2.0], help="photo sizes in megapixels")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", help="write the result here (default bench/results/estimate-<time>.json)")
    args = parser.parse_args(argv)
    return finish(run(args), args.json, "estimate", report)


if __name__ == "__main__":
    raise SystemExit(main())
