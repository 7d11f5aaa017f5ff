"""onnxruntime session options for the SAM 2.1 encoder and decoder: one process per measurement.

Each configuration starts from ``sam_onnx.session.session_options`` (what the
app uses) and changes one thing. Every measurement runs in its own process
(the 2-vCPU machines here are bimodal between processes), configurations
interleaved, and the table shows the median over processes of each process's
median. Not a test.

Run from the repository root::

    python -m bench.bench_session_options                      # all configurations, 3 rounds
    python -m bench.bench_session_options --configs app spinning --rounds 5
    python -m bench.bench_session_options --model-dir DIR --fp16  # also an fp16 copy of the encoder

Configurations:

* ``app``: intra-op threads = cores, one inter-op thread, spinning off,
  ORT_ENABLE_ALL, memory arena on (``sam_onnx.session.session_options``);
* ``ort-default``: a bare ``SessionOptions()`` (what bench-model.md measured);
* ``spinning``: intra/inter-op spinning on (onnxruntime's default);
* ``threads-1``: one intra-op thread;
* ``basic`` / ``extended``: a lower graph optimisation level;
* ``no-arena``: the CPU memory arena off;
* ``fp16-encoder`` (with ``--fp16``): the encoder converted to float16 with
  ``onnxruntime.transformers.float16`` (written once under bench/results/).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import common

CONFIGS = ("app", "ort-default", "spinning", "threads-1", "basic", "extended", "no-arena")
FP16_CONFIG = "fp16-encoder"
COLUMNS = ("config", "processes", "encoder load", "decoder load", "encoder", "decoder 1 point", "decoder box + points",
           "decoder 3 objects", "peak RSS MiB")


def options_for(config: str, threads: int | None):
    import onnxruntime as ort

    from sam_onnx import session

    if config == "ort-default":
        return ort.SessionOptions()
    opts = session.session_options(threads)
    if config == "spinning":
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "1")
    elif config == "threads-1":
        opts.intra_op_num_threads = 1
    elif config == "basic":
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    elif config == "extended":
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    elif config == "no-arena":
        opts.enable_cpu_mem_arena = False
    elif config not in ("app", FP16_CONFIG):
        raise SystemExit(f"unknown configuration {config!r}")
    return opts


def fp16_encoder(folder: Path, out_dir: Path) -> Path:
    """A float16 copy of ``folder/encoder.onnx`` (inputs and outputs float16, like the published fp16 file)."""
    out = out_dir / "encoder_fp16.onnx"
    if out.is_file():
        return out
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    out_dir.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(folder / "encoder.onnx"))
    # Resize's scales must stay float32; blocked ops run in float32 between Casts.
    half = convert_float_to_float16(model, keep_io_types=False, disable_shape_infer=False,
                                    op_block_list=[*DEFAULT_OP_BLOCK_LIST, "Resize"])
    tmp = out.with_suffix(".tmp")
    onnx.save(half, str(tmp))
    tmp.replace(out)
    return out


def timed(fn, runs: int, warmup: int) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1e3)
    return {"median": common.median(times), "min": min(times), "max": max(times)}


def run_worker(args) -> dict[str, Any]:
    import onnxruntime as ort

    from sam_onnx import session
    from sam_onnx.graph_repair import load_repaired_decoder
    from sam_onnx.image import load_image
    from sam_onnx.preprocess import preprocess_image

    folder = common.model_dir(args.model_dir)
    config = args.worker
    opts = options_for(config, args.threads)
    encoder_path = Path(args.fp16_path) if config == FP16_CONFIG else folder / "encoder.onnx"
    providers = [session.CPU_PROVIDER]
    foreign = common.ForeignLoad()
    result: dict[str, Any] = {"config": config, "machine": common.machine_info(),
                              "intra_op_num_threads": opts.intra_op_num_threads}
    started = time.perf_counter()
    encoder = ort.InferenceSession(str(encoder_path), sess_options=opts, providers=providers)
    result["encoder load"] = (time.perf_counter() - started) * 1e3
    started = time.perf_counter()
    decoder_bytes, _ = load_repaired_decoder(folder / "decoder.onnx")
    decoder = ort.InferenceSession(decoder_bytes, sess_options=options_for(config, args.threads), providers=providers)
    result["decoder load"] = (time.perf_counter() - started) * 1e3

    rgb = load_image(common.photo_file(1.0, "jpeg", Path(args.photos))).rgb
    pixels, _ = preprocess_image(rgb)
    dtype = session.input_type(encoder, "pixel_values")
    feeds = {"pixel_values": pixels.astype(dtype)}
    embedding: dict[str, np.ndarray] = {}

    def encode():
        outs = encoder.run(list(session.EMBEDDING_NAMES), feeds)
        embedding.update({n: o.astype(np.float32, copy=False) for n, o in zip(session.EMBEDDING_NAMES, outs)})

    result["encoder"] = timed(encode, args.enc_runs, 1)["median"]
    f32, i64 = np.float32, np.int64
    no_box = np.zeros((1, 0, 4), f32)
    box = np.array([[[180.0, 220.0, 760.0, 840.0]]], f32)
    prompts = {
        "decoder 1 point": (np.array([[[[512.0, 400.0]]]], f32), np.array([[[1]]], i64), no_box),
        "decoder box + points": (np.array([[[[512.0, 400.0], [300.0, 700.0]]]], f32), np.array([[[1, 0]]], i64),
                                 box),
        "decoder 3 objects": (np.array([[[[512.0, 400.0]], [[200.0, 200.0]], [[800.0, 700.0]]]], f32),
                              np.ones((1, 3, 1), i64), no_box),
    }
    names = list(session.DECODER_OUTPUT_NAMES)
    for label, (points, labels, boxes) in prompts.items():
        feed = {"input_points": points, "input_labels": labels, "input_boxes": boxes, **embedding}
        result[label] = timed(lambda feed=feed: decoder.run(names, feed), args.dec_runs, 3)["median"]
    result["peak RSS MiB"] = common.peak_rss_mib()
    result["foreign_cpu_share"] = foreign.share()
    return result


def run_all(args) -> dict[str, Any]:
    configs = list(args.configs)
    fp16_path = None
    if args.fp16:
        fp16_path = fp16_encoder(common.model_dir(args.model_dir), common.RESULTS / "fp16")
        configs.append(FP16_CONFIG)
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory(prefix="bench-options-") as tmp:
        for round_ in range(args.rounds):
            order = configs if round_ % 2 == 0 else configs[::-1]
            for config in order:
                out = Path(tmp) / f"{config}-{round_}.json"
                cmd = [sys.executable, "-m", "bench.bench_session_options", "--worker", config, "--json", str(out),
                       "--photos", args.photos,
                       "--enc-runs", str(args.enc_runs), "--dec-runs", str(args.dec_runs)]
                if args.model_dir:
                    cmd += ["--model-dir", args.model_dir]
                if args.threads:
                    cmd += ["--threads", str(args.threads)]
                if fp16_path:
                    cmd += ["--fp16-path", str(fp16_path)]
                common.wait_for_quiet(timeout_s=args.wait_quiet)
                subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(common.REPO)})
                runs[config].append(json.loads(out.read_text()))
                print(f"[bench] round {round_ + 1} {config}: encoder {runs[config][-1]['encoder']:.0f} ms, "
                      f"decoder {runs[config][-1]['decoder 1 point']:.1f} ms", file=sys.stderr, flush=True)
    rows = []
    for config in configs:
        numeric = [{k: v for k, v in r.items() if isinstance(v, (int, float))} for r in runs[config]]
        clean = [n for n in numeric if n["foreign_cpu_share"] <= args.max_foreign] or numeric
        rows.append({"config": config, **common.summarize(clean), "processes": f"{len(clean)}/{len(numeric)}",
                     "per_process": {k: [round(n[k], 3 if k == "foreign_cpu_share" else 1) for n in numeric]
                                     for k in numeric[0]}})
    return {"machine": runs[configs[0]][0]["machine"], "model_dir": str(common.model_dir(args.model_dir)),
            "rounds": args.rounds, "max_foreign": args.max_foreign, "rows": rows}


def report(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [f"Machine: {m['cpu']}, {m['affinity']} CPUs; onnxruntime {m['onnxruntime']}; model {result['model_dir']}; "
             f"{result['rounds']} processes per configuration (median of per-process medians, ms; 'processes' = "
             f"those kept / run, leaving out processes during which other work took > {result['max_foreign']} "
             f"of the CPUs)",
             common.table(result["rows"], COLUMNS, 1), "", "Per process (encoder / decoder 1 point, ms):"]
    for row in result["rows"]:
        pp = row["per_process"]
        lines.append(f"  {row['config']:13s} encoder {pp['encoder']}  decoder {pp['decoder 1 point']}  "
                     f"foreign CPU {pp.get('foreign_cpu_share')}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", help=f"folder with encoder.onnx + decoder.onnx (default {common.STANDIN_DIR})")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    parser.add_argument("--fp16", action="store_true", help="also time an fp16 copy of the encoder")
    parser.add_argument("--rounds", type=int, default=3, help="processes per configuration")
    parser.add_argument("--enc-runs", type=int, default=3)
    parser.add_argument("--dec-runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-foreign", type=float, default=0.25,
                        help="leave out processes during which other processes used more than this CPU share "
                             "(unless all did)")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="before each process, wait up to this long for other processes to go quiet")
    parser.add_argument("--photos", default=str(common.RESULTS / "photos"))
    parser.add_argument("--json", help="write the results here (default bench/results/session-options-<time>.json)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--fp16-path", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        common.write_json(args.json, run_worker(args))
        return 0
    result = run_all(args)
    return common.finish(result, args.json, "session-options", report)


if __name__ == "__main__":
    sys.exit(main())
