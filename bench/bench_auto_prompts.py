"""Should ``--encoder auto`` check agreement on simulated click sequences instead of its nine fixed prompts?

``auto`` keeps a faster encoder variant only if its masks agree with fp32's on the calibration photo
(:mod:`sam_onnx.encoders.auto`: every mask IoU >= 0.98, every score within 0.02, on nine fixed prompts). This
measures, per variant, what the same rule decides on the nine prompts and on click sequences made by RITM's
simulated user (:mod:`sam_onnx.clicks`), and what each costs in decoder calls and time:

- **fixed**: the nine calibration prompts (points, negatives, boxes), as ``auto`` runs them.
- **simulated**: for each single-point calibration prompt, the simulated user works towards fp32's largest mask
  of that point (an object bigger than the first mask, so the sequence has corrective clicks, negative ones
  too), ``--clicks`` clicks with fp32's masks; every prefix of every sequence is one prompt, decoded from fp32's
  and from the variant's embedding.

Both sets are compared by the same rule (``auto.compare`` / ``auto.agrees``). A decision that differs between
the two, on some model, is the evidence that would justify the simulated sequences; the extra decoder calls are
their price. Run on the random-weight stand-in by default (its logits hover near zero, the hardest case for
agreement; masks are noise) and on any ``--model-dir``::

    python -m bench.bench_auto_prompts                          # $SAM_STANDIN_DIR, variants int8 openvino-bf16 openvino-f32
    python -m bench.bench_auto_prompts --model-dir DIR --variants int8 --clicks 5
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import common

DEFAULT_VARIANTS = ("int8", "openvino-bf16", "openvino-f32")
LARGEST = 2
"""The candidate taken as the simulated user's target: SAM's three masks grow from part to whole."""


def simulated_prompts(predictor, embedding, points, clicks_per_object: int):
    """Prompts of the simulated user's sequences (every prefix), towards fp32's largest mask of each point."""
    from sam_onnx import Prompts, clicks

    out = []
    for point in points:
        target = predictor.decode(embedding, Prompts((point,))).masks[LARGEST]
        if not target.any():
            continue
        trial = clicks.simulate(target, clicks.predictor_segmenter(predictor, embedding), targets=(),
                                max_clicks=clicks_per_object)
        out += [Prompts(tuple(c.point() for c in trial.clicks[:k])) for k in range(1, len(trial.clicks) + 1)]
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    from sam_onnx import Sam2Predictor, encoders
    from sam_onnx.encoders import auto
    from sam_onnx.types import ImageEmbedding

    folder = common.model_dir(args.model_dir)
    pixels, geometry = auto.calibration_input()
    fixed = [p for _, p in auto.CALIBRATION_PROMPTS]
    points = [p.points[0] for p in fixed if len(p.points) == 1 and p.box is None and p.points[0].positive]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-auto-prompts-") as cache:
        reference = Sam2Predictor.from_files(folder / "encoder.onnx", folder / "decoder.onnx", variant="fp32",
                                             encoder_cache_dir=cache)
        ref_embedding = ImageEmbedding(reference.encoder.encode(pixels), geometry)
        simulated = simulated_prompts(reference, ref_embedding, points, args.clicks)
        sets = {"fixed": fixed, "simulated": simulated}
        ref_results = {}
        for name, prompts in sets.items():
            started = time.perf_counter()
            ref_results[name] = reference.decode_many(ref_embedding, prompts)
            ref_results[name + " s"] = time.perf_counter() - started
        source = encoders.EncoderSource(folder / "encoder.onnx", Path(cache), reference.info.threads)
        for variant in args.variants:
            try:
                encoder = encoders.load_encoder(variant, source)
            except Exception as exc:  # noqa: BLE001 - a variant this machine cannot run is reported, not fatal
                rows.append({"variant": variant, "skipped": str(exc)[:120]})
                continue
            embedding = ImageEmbedding(encoder.encode(pixels), geometry)
            row: dict[str, Any] = {"variant": encoder.name}
            for name, prompts in sets.items():
                started = time.perf_counter()
                results = reference.decode_many(embedding, prompts)
                seconds = time.perf_counter() - started
                min_iou, max_diff = auto.compare(ref_results[name], results)
                row.update({f"{name} prompts": len(prompts), f"{name} min IoU": min_iou,
                            f"{name} max score diff": max_diff,
                            f"{name} agrees": auto.agrees(min_iou, max_diff),
                            f"{name} decode s": seconds + ref_results[name + " s"]})
            row["same decision"] = row["fixed agrees"] == row["simulated agrees"]
            rows.append(row)
            del encoder
    return {"machine": common.machine_info(gradio=False), "model_dir": str(folder), "clicks": args.clicks,
            "rows": rows, "simulated_prompts": [p.to_dict() for p in simulated]}


def report(result: dict[str, Any]) -> str:
    m = result["machine"]
    columns = ("variant", "fixed prompts", "fixed min IoU", "fixed max score diff", "fixed agrees",
               "simulated prompts", "simulated min IoU", "simulated max score diff", "simulated agrees",
               "same decision", "fixed decode s", "simulated decode s")
    lines = [f"CPU {m['cpu']} ({m['affinity']} cores usable), load average {m['loadavg_1min']}; model "
             f"{result['model_dir']}; the rule: every mask IoU >= 0.98 and score diff <= 0.02 (auto.AGREEMENT)", "",
             common.table(result["rows"], columns, digits=4)]
    lines += [f"skipped {r['variant']}: {r['skipped']}" for r in result["rows"] if "skipped" in r]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_auto_prompts", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", help="encoder.onnx + decoder.onnx (default: $SAM_STANDIN_DIR)")
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS))
    parser.add_argument("--clicks", type=int, default=5, help="simulated clicks per object")
    parser.add_argument("--json", help="default: bench/results/auto-prompts-<time>.json")
    args = parser.parse_args(argv)
    return common.finish(run(args), args.json, "auto-prompts", report)


if __name__ == "__main__":
    raise SystemExit(main())
