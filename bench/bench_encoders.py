"""Upload-to-ready with each encoder variant forced in turn, against bare onnxruntime fp32 in the same run.

Issue #13's measure: for each ``--encoder`` variant, the time from a 12 MP
upload to the ready view (the app's real path: ``SegmentationService.open_image``
-> ``app.show_image`` -> Gradio encoding the outputs, with a fresh service so
nothing is cached), divided by the time of one bare onnxruntime fp32 encoder
run (``InferenceSession`` with default options, the floor of
bench/README.md) measured just before it. Rounds are interleaved (every round
runs the bare encoder before each variant's upload, in alternating order), so
the machine's load affects both sides of each ratio alike. Every variant's
predictor is loaded once up front (the app's warm-up encode included).

On the random-weight stand-in the masks are noise, so whether a variant
agrees with fp32 cannot be judged there: variants are forced for timing.
``--auto`` additionally runs the ``auto`` check once (fresh decision cache)
and prints what it would pick here and why.

Run from the repository root::

    python -m bench.bench_encoders                     # stand-in ($SAM_STANDIN_DIR), every variant, 5 rounds
    python -m bench.bench_encoders --variants fp32 openvino-bf16 --rounds 8 --auto
    python -m bench.bench_encoders --model-dir DIR      # encoder.onnx + decoder.onnx (+ encoder_fp16.onnx)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import bench_pipeline, common

DEFAULT_VARIANTS = ("fp32", "int8", "openvino-bf16", "openvino-f32", "fp16")
TARGET_RATIO = 0.45
"""Issue #13: upload-to-ready at 12 MP <= 0.45 x the bare onnxruntime fp32 encoder, same run."""
COLUMNS = ("variant", "encoder ms", "upload-to-ready ms", "bare ORT fp32 ms", "encoder / bare", "upload / bare",
           "CPU time: upload / bare", "target <= 0.45")


def bare_encoder(encoder: Path, threads: int | None = None, options=None):
    """One bare onnxruntime fp32 encoder run (default session options: what bench-model.md measured; or
    ``options``, an ``onnxruntime.SessionOptions``, e.g. the app's :func:`sam_onnx.session.session_options`)."""
    import onnxruntime as ort

    if options is None:
        options = ort.SessionOptions()
        if threads:  # same thread count as the variants when --threads is given
            options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(encoder), sess_options=options, providers=["CPUExecutionProvider"])
    pixels = np.random.default_rng(0).standard_normal((1, 3, 1024, 1024), dtype=np.float32)
    session.run(None, {"pixel_values": pixels})  # warm-up

    def run() -> tuple[float, float]:
        started, cpu = time.perf_counter(), time.process_time()
        session.run(None, {"pixel_values": pixels})
        return (time.perf_counter() - started) * 1e3, (time.process_time() - cpu) * 1e3
    return run


def load_variants(folder: Path, variants, threads: int | None, cache_dir: Path) -> dict[str, Any]:
    from sam_onnx import ModelLoadError, Sam2Predictor

    fp16 = folder / "encoder_fp16.onnx"
    if "fp16" in variants and not fp16.is_file():  # the stand-in has none: a converted copy, made once
        from bench import bench_session_options

        fp16 = bench_session_options.fp16_encoder(folder, common.RESULTS / f"fp16-{folder.name}")
    predictors = {}
    for name in variants:
        started = time.perf_counter()
        try:
            predictor = Sam2Predictor.from_files(folder / "encoder.onnx", folder / "decoder.onnx", threads=threads,
                                                 variant=name, fp16_encoder_path=fp16 if fp16.is_file() else None,
                                                 encoder_cache_dir=cache_dir)
        except ModelLoadError as exc:
            common.progress(f"{name}: skipped ({exc})")
            continue
        predictor.encode(np.zeros((64, 64, 3), np.uint8))  # the app's warm-up encode
        predictors[name] = predictor
        common.progress(f"{name}: {predictor.info.encoder_description}, ready in {time.perf_counter() - started:.1f} s")
    return predictors


def upload_once(service, outputs, probe, path: Path) -> tuple[float, float, float]:
    """``(upload-to-ready ms, encoder ms, process CPU ms)`` of one upload to a fresh service."""
    import app

    probe.take()
    started, cpu = time.perf_counter(), time.process_time()
    record, info = service.open_image(path)
    outputs.encode(app.show_image(service, (record, info), bench_pipeline.DISPLAY_OPACITY, True))
    total, cpu_ms = (time.perf_counter() - started) * 1e3, (time.process_time() - cpu) * 1e3
    stages, _ = probe.take()
    if info.get("cache_hit"):
        raise RuntimeError("a fresh service answered from its cache")
    return total, stages.get("encoder", float("nan")), cpu_ms


def run(args) -> dict[str, Any]:
    import app
    from sam_demo.service import SegmentationService
    from sam_onnx.image import ImageLimits

    folder = common.model_dir(args.model_dir)
    photo = common.photo_file(args.mp, args.format, Path(args.photos))
    cache_dir = Path(tempfile.mkdtemp(prefix="bench-encoders-cache-"))
    gradio_tmp = tempfile.mkdtemp(prefix="bench-gradio-")
    os.environ["GRADIO_TEMP_DIR"] = gradio_tmp
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    probe = bench_pipeline.install_probes()
    foreign = common.ForeignLoad()
    result: dict[str, Any] = {"machine": common.machine_info(), "model_dir": str(folder), "photo": photo.name,
                              "args": vars(args)}
    try:
        bare = bare_encoder(folder / "encoder.onnx", args.threads)
        predictors = load_variants(folder, args.variants, args.threads, cache_dir)
        limits = ImageLimits(max_bytes=None)
        outputs = bench_pipeline.Outputs(app.build_demo(SegmentationService(next(iter(predictors.values())),
                                                                            limits=limits)))
        for predictor in predictors.values():  # one untimed upload each (first-call costs)
            upload_once(SegmentationService(predictor, limits=limits), outputs, probe, photo)
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in predictors}
        for r in range(args.rounds):
            order = list(predictors) if r % 2 == 0 else list(predictors)[::-1]
            for name in order:
                common.wait_for_quiet(timeout_s=args.wait_quiet)
                bare_ms, bare_cpu = bare()
                total, encoder_ms, cpu_ms = upload_once(SegmentationService(predictors[name], limits=limits),
                                                        outputs, probe, photo)
                samples[name].append({"bare": bare_ms, "upload": total, "encoder": encoder_ms,
                                      "upload / bare": total / bare_ms, "encoder / bare": encoder_ms / bare_ms,
                                      "bare cpu": bare_cpu, "upload cpu": cpu_ms,
                                      "upload cpu / bare cpu": cpu_ms / bare_cpu})
            common.progress(f"round {r + 1}/{args.rounds}: " + ", ".join(
                f"{n} {samples[n][-1]['upload']:.0f}/{samples[n][-1]['bare']:.0f}" for n in predictors))
        result["rows"] = [_row(name, predictors[name], samples[name]) for name in predictors]
        if args.auto:
            result["auto"] = run_auto(folder, args.threads)
    finally:
        probe.close()
        shutil.rmtree(gradio_tmp, ignore_errors=True)
        shutil.rmtree(cache_dir, ignore_errors=True)
    result["foreign_cpu_share"] = round(foreign.share(), 3)
    result["peak_rss_mib"] = common.peak_rss_mib()
    return result


def _row(name: str, predictor, samples: list[dict[str, float]]) -> dict[str, Any]:
    med = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
    return {"variant": name, "description": predictor.info.encoder_description, "encoder ms": med["encoder"],
            "upload-to-ready ms": med["upload"], "bare ORT fp32 ms": med["bare"],
            "encoder / bare": med["encoder / bare"], "upload / bare": med["upload / bare"],
            "CPU time: upload / bare": med["upload cpu / bare cpu"],
            "target <= 0.45": "met" if med["upload / bare"] <= TARGET_RATIO else "not met", "samples": samples}


def run_auto(folder: Path, threads: int | None) -> dict[str, Any]:
    """What ``--encoder auto`` picks on this machine (a fresh check, not a stored decision)."""
    from sam_onnx import Sam2Predictor
    from sam_onnx.encoders import auto

    with tempfile.TemporaryDirectory(prefix="bench-auto-") as cache:
        fp16 = folder / "encoder_fp16.onnx"
        predictor = Sam2Predictor.from_files(folder / "encoder.onnx", folder / "decoder.onnx", threads=threads,
                                             variant="auto", fp16_encoder_path=fp16 if fp16.is_file() else None,
                                             encoder_cache_dir=cache)
    decision = predictor.decision
    common.progress("auto:\n" + auto.describe(decision))
    return {"chosen": decision.chosen, "summary": decision.summary(),
            "reports": [r.__dict__ for r in decision.reports]}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.0f}"
    return str(value)


def report(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [f"CPU {m['cpu']} ({m['affinity']} cores usable), onnxruntime {m['onnxruntime']}; "
             f"{result['photo']}; rounds {result['args']['rounds']}; other processes used "
             f"{result['foreign_cpu_share']:.0%} of the CPUs; medians (ratios: median of per-round ratios; "
             "CPU time = this process's CPU time over all threads)", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines += ["| " + " | ".join(_fmt(row[c]) for c in COLUMNS) + " |" for row in result["rows"]]
    if "auto" in result:
        lines += ["", f"auto would pick: **{result['auto']['chosen']}** ({result['auto']['summary']})"]
        lines += [f"    {r['name']}: {r['status']} {r['reason']}".rstrip() for r in result["auto"]["reports"]]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, help="folder with encoder.onnx + decoder.onnx (default: stand-in)")
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS),
                        help="encoder variants to force (default: %(default)s; unavailable ones are skipped)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mp", type=float, default=12.0, help="photo size in megapixels")
    parser.add_argument("--format", choices=("jpeg", "png"), default="jpeg")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--auto", action="store_true", help="also run the auto check once and show its pick")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                        help="before each measured pair, wait up to S seconds for other processes to go quiet")
    parser.add_argument("--photos", default=str(common.RESULTS / "photos"))
    parser.add_argument("--json", type=Path, default=common.RESULTS / "encoders.json")
    args = parser.parse_args(argv)
    result = run(args)
    common.write_json(args.json, result)
    print(report(result))


if __name__ == "__main__":
    main()
