"""What each model size costs: encoder time (bare onnxruntime and upload-to-ready at 12 MP), decoder time, peak
RSS and download size, with every ratio to small taken within the same round.

Every measurement is its own process (so peak RSS is one model's), and the sizes take turns: each round runs
every size once, in alternating order, each as two processes:

- **bare**: a bare onnxruntime ``InferenceSession`` on the encoder file (default options: the floor of
  bench/README.md), one warm-up run, then ``--runs`` timed runs of random pixels; the median.
- **app**: the app's code with that size forced to ``fp32`` (``Sam2Predictor.from_pretrained(model=...)``,
  decoder repair and verification included): load time, one untimed upload, then ``--runs`` uploads of a
  12 MP JPEG to a fresh :class:`~sam_demo.service.SegmentationService` (upload-to-ready: read, EXIF, hash,
  preprocess, encode, first view, Gradio's encoding of the outputs), the encoder's own share of it, ``--clicks``
  decoder calls for one point, and the process's peak RSS.

Ratios to small are computed per round (the same machine load on both sides) and their median is reported.
Download sizes are the published files' (the model table, :mod:`sam_onnx.models`), beside the stand-in's files.

The default models are the random-weight stand-ins of every size (real architectures and graph sizes,
meaningless masks: timings and memory carry over, accuracy does not), one subfolder per size::

    python -m bench.bench_models                                   # $SAM_STANDIN_ROOT, else ~/.cache/sam2-standin
    python -m bench.bench_models --root DIR --sizes tiny small --rounds 3 --runs 3
    python -m bench.bench_models --together small,tiny             # memory of the app's --models small,tiny
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import common

STANDIN_ROOT_ENV = "SAM_STANDIN_ROOT"
"""Folder with one stand-in per size (``tiny/``, ``small/``, ``base-plus/``, ``large/``, each encoder.onnx +
decoder.onnx), as ``make_bench_sam2_onnx.py --size S`` writes them."""
DEFAULT_ROOT = Path.home() / ".cache" / "sam2-standin"
REFERENCE = "small"
"""Ratios are to this size (the default model)."""
CLICK_POINT = (0.4, 0.45)
"""The decoder calls' point, as fractions of the image's width and height."""
COLUMNS = ("model", "download MB", "stand-in MB", "load s", "bare encoder ms", "upload-to-ready ms",
           "encoder in upload ms", "decoder ms", "peak RSS MiB", "bare × small", "upload × small",
           "decoder × small", "RSS × small", "bare CPU × small", "upload CPU × small", "decoder CPU × small",
           "others' CPU share")


# ---------------------------------------------------------------------------- children (one measurement each)
def child_bare(folder: Path, runs: int, threads: int | None) -> dict[str, Any]:
    """Bare onnxruntime on the encoder file: median ms of ``runs`` runs after a warm-up."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    started = time.perf_counter()
    session = ort.InferenceSession(str(folder / "encoder.onnx"), sess_options=options,
                                   providers=["CPUExecutionProvider"])
    load_s = time.perf_counter() - started
    pixels = np.random.default_rng(0).standard_normal((1, 3, 1024, 1024), dtype=np.float32)
    session.run(None, {"pixel_values": pixels})
    times, cpu = [], []
    for _ in range(runs):
        began, began_cpu = time.perf_counter(), time.process_time()
        session.run(None, {"pixel_values": pixels})
        times.append((time.perf_counter() - began) * 1e3)
        cpu.append((time.process_time() - began_cpu) * 1e3)
    return {"bare encoder ms": statistics.median(times), "bare samples": times,
            "bare encoder CPU ms": statistics.median(cpu), "bare load s": load_s,
            "bare peak RSS MiB": common.peak_rss_mib()}


def child_app(size: str, root: Path, photo: Path, runs: int, clicks: int, threads: int | None) -> dict[str, Any]:
    """The app's path with ``size`` forced to fp32: load, uploads at 12 MP, decoder calls, peak RSS."""
    import app
    from bench import bench_encoders, bench_pipeline
    from sam_demo.service import SegmentationService
    from sam_onnx import Point, Prompts, Sam2Predictor
    from sam_onnx.image import ImageLimits

    started = time.perf_counter()
    predictor = Sam2Predictor.from_pretrained(model=size, model_dir=root, variant="fp32", threads=threads)
    load_s = time.perf_counter() - started
    rss_loaded = common.rss_mib()
    probe = common.Probe()  # the encoder engine's own call: its share of each upload
    probe.wrap(type(predictor.encoder), "encode", "encoder")
    limits = ImageLimits(max_bytes=None)
    try:
        outputs = bench_pipeline.Outputs(app.build_demo(SegmentationService(predictor, limits=limits)))
        bench_encoders.upload_once(SegmentationService(predictor, limits=limits), outputs, probe, photo)  # warm
        uploads, encoders, upload_cpu = [], [], []
        for _ in range(runs):
            total, encoder_ms, cpu_ms = bench_encoders.upload_once(SegmentationService(predictor, limits=limits),
                                                                   outputs, probe, photo)
            uploads.append(total)
            encoders.append(encoder_ms)
            upload_cpu.append(cpu_ms)
    finally:
        probe.close()
    from sam_onnx.image import load_image

    rgb = load_image(photo).rgb
    embedding = predictor.encode(rgb)
    h, w = rgb.shape[:2]
    prompts = Prompts((Point(w * CLICK_POINT[0], h * CLICK_POINT[1]),))
    predictor.decode(embedding, prompts)
    decodes, decode_cpu = [], []
    for _ in range(clicks):
        began, began_cpu = time.perf_counter(), time.process_time()
        predictor.decode(embedding, prompts)
        decodes.append((time.perf_counter() - began) * 1e3)
        decode_cpu.append((time.process_time() - began_cpu) * 1e3)
    return {"model": predictor.info.model, "load s": load_s, "RSS after load MiB": rss_loaded,
            "upload-to-ready ms": statistics.median(uploads), "upload samples": uploads,
            "encoder in upload ms": statistics.median(encoders), "decoder ms": statistics.median(decodes),
            "upload CPU ms": statistics.median(upload_cpu), "decoder CPU ms": statistics.median(decode_cpu),
            "peak RSS MiB": common.peak_rss_mib(), "repaired concats": predictor.info.repaired_concats}


def together(args: argparse.Namespace) -> dict[str, Any]:
    """``--together A,B``: the app's several-models set-up in this one process (``--models``): RSS after loading
    each model (fp32, as the app loads them), then after a 12 MP upload encoded with each in turn."""
    from sam_demo.service import SegmentationService
    from sam_onnx import Sam2Predictor
    from sam_onnx.image import ImageLimits

    names = [n.strip() for n in args.together.split(",") if n.strip()]
    photo = common.photo_file(args.mp, "jpeg", Path(args.photos))
    steps = [{"step": "started (imports)", "RSS MiB": common.rss_mib()}]
    predictors = {}
    for name in names:
        predictors[name] = Sam2Predictor.from_pretrained(model=name, model_dir=args.root, variant="fp32",
                                                         threads=args.threads)
        steps.append({"step": f"{name} loaded", "RSS MiB": common.rss_mib()})
    service = SegmentationService(predictors[names[0]], models=predictors, limits=ImageLimits(max_bytes=None))
    for name in names:
        service.open_image(photo, model=name)
        steps.append({"step": f"{args.mp:g} MP upload encoded with {name}", "RSS MiB": common.rss_mib()})
    for step, before in zip(steps[1:], steps):
        step["added MiB"] = step["RSS MiB"] - before["RSS MiB"]
    return {"machine": common.machine_info(gradio=False), "models": names, "photo": photo.name, "steps": steps,
            "peak RSS MiB": common.peak_rss_mib()}


def report_together(result: dict[str, Any]) -> str:
    return (f"One process with {', '.join(result['models'])} (the app's --models); {result['photo']}; peak RSS "
            f"{result['peak RSS MiB']:.0f} MiB\n\n" + common.table(result["steps"], ("step", "RSS MiB", "added MiB"), 0))


# ---------------------------------------------------------------------------- the parent
def _run_child(args: argparse.Namespace, kind: str, size: str, photo: Path) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        path = Path(out.name)
    cmd = [sys.executable, "-m", "bench.bench_models", "--child", kind, "--child-size", size, "--root",
           str(args.root), "--child-photo", str(photo), "--runs", str(args.runs), "--clicks", str(args.clicks),
           "--child-out", str(path)] + (["--threads", str(args.threads)] if args.threads else [])
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "SAM_ONNX_ENCODER": "fp32"}
    try:
        subprocess.run(cmd, check=True, cwd=common.REPO, env=env, stdout=subprocess.DEVNULL)
        return json.loads(path.read_text())
    finally:
        path.unlink(missing_ok=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    for size in args.sizes:
        for name in ("encoder.onnx", "decoder.onnx"):
            if not (args.root / size / name).is_file():
                raise SystemExit(f"{args.root / size / name} not found: build the stand-in with "
                                 f"../shared/tools/make_bench_sam2_onnx.py --size {size} --out {args.root / size}")
    if REFERENCE not in args.sizes:
        raise SystemExit(f"--sizes must include {REFERENCE}: ratios are to it")
    photo = common.photo_file(args.mp, "jpeg", Path(args.photos))
    overall = common.ForeignLoad()
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    rounds: list[dict[str, dict[str, Any]]] = []
    for r in range(args.rounds):
        order = list(args.sizes) if r % 2 == 0 else list(args.sizes)[::-1]
        this: dict[str, dict[str, Any]] = {}
        for size in order:
            waited = common.wait_for_quiet(timeout_s=args.wait_quiet)
            foreign = common.ForeignLoad(children=True)
            bare = _run_child(args, "bare", size, photo)
            bare_share = foreign.share()
            common.wait_for_quiet(timeout_s=args.wait_quiet)
            foreign = common.ForeignLoad(children=True)
            this[size] = {**bare, **_run_child(args, "app", size, photo), "quiet before": waited,
                          "others' CPU share bare": bare_share, "others' CPU share app": foreign.share()}
            common.progress(f"round {r + 1}/{args.rounds} {size}: bare {this[size]['bare encoder ms']:.0f} ms, upload "
                      f"{this[size]['upload-to-ready ms']:.0f} ms, decoder {this[size]['decoder ms']:.1f} ms, "
                      f"peak RSS {this[size]['peak RSS MiB']:.0f} MiB")
        rounds.append(this)
        result = _summary(args, rounds, photo, started, load_before, overall)
        if args.json and r + 1 < args.rounds:  # the rounds so far, in case a long run on a busy machine is cut short
            common.write_json(Path(args.json + ".partial"), result)
    if args.json:
        Path(args.json + ".partial").unlink(missing_ok=True)
    return result


def _summary(args: argparse.Namespace, rounds: list[dict[str, dict[str, Any]]], photo: Path, started: float,
             load_before: float, overall: common.ForeignLoad) -> dict[str, Any]:
    """The rows of the rounds so far: per size the medians over rounds and the medians of per-round ratios."""
    from sam_onnx.models import MODELS

    rows = []
    for size in args.sizes:
        per_round = [rnd[size] for rnd in rounds]
        med = {k: statistics.median(p[k] for p in per_round) for k in
               ("load s", "bare encoder ms", "upload-to-ready ms", "encoder in upload ms", "decoder ms",
                "peak RSS MiB", "RSS after load MiB", "bare encoder CPU ms", "upload CPU ms", "decoder CPU ms")}
        ratios = {f"{label} × small": statistics.median(rnd[size][key] / rnd[REFERENCE][key] for rnd in rounds)
                  for label, key in (("bare", "bare encoder ms"), ("upload", "upload-to-ready ms"),
                                     ("decoder", "decoder ms"), ("RSS", "peak RSS MiB"),
                                     ("bare CPU", "bare encoder CPU ms"), ("upload CPU", "upload CPU ms"),
                                     ("decoder CPU", "decoder CPU ms"))}
        spec = MODELS[size]
        standin = sum((args.root / size / n).stat().st_size for n in ("encoder.onnx", "decoder.onnx"))
        shares = [p[k] for p in per_round for k in ("others' CPU share bare", "others' CPU share app")]
        rows.append({"model": size, **med, **ratios, "others' CPU share": statistics.median(shares),
                     "download MB": spec.download_bytes / 1e6 if spec.download_bytes else float("nan"),
                     "stand-in MB": standin / 1e6, "rounds": per_round})
    args_json = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    return {"machine": common.machine_info(), "args": {**args_json, "rounds": len(rounds)},
            "photo": photo.name, "rows": rows, "seconds": time.perf_counter() - started,
            "loadavg_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "foreign_cpu_share": round(overall.share(), 3)}


def report(result: dict[str, Any]) -> str:
    m = result["machine"]
    before, after = result["loadavg_1min_before_after"]
    lines = [f"CPU {m['cpu']} ({m['affinity']} cores usable), onnxruntime {m['onnxruntime']}; {result['photo']}; "
             f"{result['args']['rounds']} rounds × {result['args']['runs']} runs; load average {before} → {after}, "
             f"other processes used {result['foreign_cpu_share']:.0%} of the CPUs; {result['seconds']:.0f} s. "
             "Medians over rounds; ratios: median of per-round ratios to small (CPU: this process's CPU time over "
             "all threads, steadier than wall time when other processes load the machine). Random-weight "
             "stand-ins; download = the published fp32 files (— = unpublished).", "",
             common.table(result["rows"], COLUMNS, digits=2)]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_models", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path,
                        default=Path(os.environ.get(STANDIN_ROOT_ENV) or DEFAULT_ROOT).expanduser(),
                        help=f"folder with one subfolder per size (default ${STANDIN_ROOT_ENV}, else {DEFAULT_ROOT})")
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small", "base-plus", "large"],
                        choices=["tiny", "small", "base-plus", "large"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--runs", type=int, default=2, help="timed encoder runs / uploads per process")
    parser.add_argument("--clicks", type=int, default=15, help="timed decoder calls per process")
    parser.add_argument("--mp", type=float, default=12.0, help="photo size in megapixels")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                        help="before each process, wait up to S seconds for other processes to use < 15 %% of the "
                             "CPUs (their share during each measurement is recorded either way)")
    parser.add_argument("--photos", default=str(common.RESULTS / "photos"))
    parser.add_argument("--json", help="default: bench/results/models-<time>.json")
    parser.add_argument("--together", metavar="A,B",
                        help="instead: load these sizes into one process as the app's --models does and report "
                             "the RSS each model and each model's first upload adds")
    for name in ("--child", "--child-size", "--child-photo", "--child-out"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.child:
        gradio_tmp = tempfile.mkdtemp(prefix="bench-models-gradio-")  # this process's own, removed after
        os.environ["GRADIO_TEMP_DIR"] = gradio_tmp
        try:
            result = (child_bare(args.root / args.child_size, args.runs, args.threads) if args.child == "bare" else
                      child_app(args.child_size, args.root, Path(args.child_photo), args.runs, args.clicks,
                                args.threads))
        finally:
            shutil.rmtree(gradio_tmp, ignore_errors=True)
        Path(args.child_out).write_text(json.dumps(result))
        return 0
    if args.together:
        return common.finish(together(args), args.json, "models-together", report_together)
    return common.finish(run(args), args.json, "models", report)


if __name__ == "__main__":
    raise SystemExit(main())
