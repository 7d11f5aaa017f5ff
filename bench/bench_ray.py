"""Uploads through the Ray Serve encoder deployment vs the local encoder: throughput, p50/p95, and the Ray hop.

Needs requirements-serve.txt. Starts a local Ray head in this process (127.0.0.1 only),
deploys the encoder with 1 and then 2 replicas, and sends ``--uploads`` encodes from
``--concurrency`` threads through :class:`~sam_onnx.encoders.remote.RemoteEncoder`
(the app's client, as with ``--ray-uploads``). The local baseline encodes the same burst one
at a time, as the app does, before and after the Ray runs (other jobs' load drifts).
Latency = from the burst's arrival to an upload's embeddings, queueing included.

Hop overhead of one upload = client wall time - the replica's own encoder time
(``X-Encode-Seconds``): pixels out, float16 embeddings back, routing, widening to float32.

    python -m bench.bench_ray --model-dir $SAM_STANDIN_DIR

On a 2-core box two replicas share the same two cores: they cannot beat one
replica with 2 threads by much; the numbers show the overhead and the queueing,
not the scale-out (that needs more machines: README, Scaling out with Ray Serve).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench.common import STANDIN_ENV, model_dir, percentile, write_json
from sam_onnx.encoders.remote import RemoteEncoder
from sam_onnx.encoders.wire import ENCODE_SECONDS_HEADER
from sam_serve.ray_serve import APP_NAME, LOOPBACK_ENV, ReplicaConfig, build_app, connect, deploy


def run_load(encode, inputs, concurrency: int) -> dict:
    """A burst: every upload arrives at once and at most ``concurrency`` are encoded at a time (the app's queue).

    An upload's latency runs from the burst to its embeddings (queueing included), as its user waits.
    """
    latencies = []
    started = time.perf_counter()

    def one(x):
        encode(x)
        latencies.append(time.perf_counter() - started)

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, inputs))
    wall = time.perf_counter() - started
    return {"uploads": len(inputs), "concurrency": concurrency, "wall_s": round(wall, 2),
            "uploads_per_s": round(len(inputs) / wall, 3), "p50_s": round(percentile(latencies, 50), 2),
            "p95_s": round(percentile(latencies, 95), 2)}


def hop(url: str, local_encode, x: np.ndarray, rounds: int) -> dict:
    """Interleaved single uploads: Ray round trip vs the replica's encoder time vs a local encode."""
    body = np.ascontiguousarray(x, dtype="<f4").tobytes()
    remote, inside, local = [], [], []
    for _ in range(rounds):
        started = time.perf_counter()
        request = urllib.request.Request(f"{url}/encode", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=300) as response:
            blob = response.read()
            replica_s = float(response.headers[ENCODE_SECONDS_HEADER])
        flat = np.frombuffer(blob, "<f2").astype(np.float32)  # the widening the app does
        remote.append(time.perf_counter() - started)
        inside.append(replica_s)
        assert flat.size == 4_194_304
        started = time.perf_counter()
        local_encode(x)
        local.append(time.perf_counter() - started)
    hops = [r - i for r, i in zip(remote, inside)]
    return {"rounds": rounds, "hop_ms_median": round(statistics.median(hops) * 1e3, 1),
            "hop_ms_all": [round(h * 1e3, 1) for h in hops],
            "replica_encode_s_median": round(statistics.median(inside), 3),
            "local_encode_s_median": round(statistics.median(local), 3),
            "hop_over_replica_encode": round(statistics.median(hops) / statistics.median(inside), 4),
            "hop_over_local_encode": round(statistics.median(hops) / statistics.median(local), 4)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir",
                        help=f"folder with encoder.onnx + decoder.onnx (default ${STANDIN_ENV}: a full-size stand-in)")
    parser.add_argument("--uploads", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--hop-rounds", type=int, default=5)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 2, help="CPUs of the local head")
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--niceness", type=int, default=0,
                        help="nice value of Ray's worker processes (Ray's default is 15, which on a shared machine "
                             "starves the replicas against the nice-0 local baseline; default 0 = a fair race)")
    args = parser.parse_args(argv)
    folder = str(model_dir(args.model_dir))
    os.environ.update({**LOOPBACK_ENV, "RAY_AUTH_MODE": "disabled", "RAY_worker_niceness": str(args.niceness)})

    from ray import serve

    from sam_onnx import encoders

    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((1, 3, 1024, 1024), dtype=np.float32) for _ in range(args.uploads)]
    local = encoders.from_pretrained(model_dir=folder, variant="fp32", threads=args.cpus)
    local.encode(inputs[0])  # warm-up
    report = {"cpus": args.cpus, "local": run_load(local.encode, inputs, 1)}
    connect(None, num_cpus=args.cpus, object_store_mb=512)
    port = 8000 + os.getpid() % 1000
    for replicas in (1, 2):
        threads = max(1, args.cpus // replicas)
        started = time.perf_counter()
        url = deploy(build_app(ReplicaConfig(folder, "fp32", threads), num_replicas=replicas,
                               replica_cpus=args.cpus / replicas), http_port=port)
        ready = time.perf_counter() - started
        remote = RemoteEncoder.connect(url, timeout_s=600)
        remote.encode(inputs[0])  # warm-up (reaches one replica; the burst below warms the others)
        row = {"replicas": replicas, "threads_per_replica": threads, "deploy_s": round(ready, 1),
               **run_load(remote.encode, inputs, args.concurrency)}
        if replicas == 1:
            row["hop"] = hop(url, local.encode, inputs[0], args.hop_rounds)
        report[f"ray_{replicas}"] = row
        print(json.dumps(row), flush=True)
        serve.delete(APP_NAME)
    report["local_again"] = run_load(local.encode, inputs, 1)  # the load of other jobs drifts: bracket Ray with local
    print(json.dumps(report, indent=1))
    if args.json:
        write_json(args.json, report)
    serve.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
