"""Oversized and malformed requests against the served app: how fast they are refused, and the server's memory.

Starts ``python app.py`` on 127.0.0.1 (``tools.load_harness.start_server``; ``--model-dir`` or
``$SAM_STANDIN_DIR``: the full-size stand-in), samples its RSS from ``/proc`` every 0.5 s, and sends,
``--repeat`` times each:

* a 30 MB JSON body to ``/gradio_api/call/segment`` with its ``Content-Length`` (the "30 MB of points"
  of issue 10, which before was parsed, took 20-27 s and left RSS ~1 GB higher);
* the same body chunked, without a ``Content-Length``;
* 100,000 nested brackets (a legal size, refused for its depth);
* a prompts value of 100,000 points inside a 1.2 MB body (a legal size; refused for its 300,000 values before
  Gradio parses it: Gradio walks every value on its event loop, 1.5 s for this one).

Prints each request's status and time and the RSS before, at its peak and after (the done-when of
issue 10: refused in at most 2 s, RSS back within 100 MB), and writes JSON.

    python -m bench.bench_limits --repeat 5
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import finish, machine_info, model_dir, table
from tools.load_harness import Sampler, read_proc_status, start_server
from tools.rawapi import RawSession
from tools.scenarios import deep_body, many_values_body, oversized_body, photo

BODY_MB = 30
DEPTH = 100_000
POINTS = 100_000
IMAGE_HW = (600, 900)


def run(args: argparse.Namespace) -> dict[str, Any]:
    args.model_dir = model_dir(args.model_dir)
    big = oversized_body(BODY_MB * 1024 * 1024, "bench")
    deep = deep_body(DEPTH, "bench")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="sam-limits-") as tmp:
        server = start_server(str(args.model_dir), 1024, Path(tmp), [])
        try:
            url = server.url.rstrip("/")
            session = RawSession(server.url)
            assert session.load_bytes(photo(1, IMAGE_HW)).ok and session.click(100, 100).ok
            image = session.upload(photo(2, IMAGE_HW), "p.png")
            many_points = many_values_body(image, POINTS, session.session_hash)
            time.sleep(2)
            sampler = Sampler(server.pid, None)
            before = read_proc_status(server.pid)["VmRSS"]
            sampler.start()
            headers = {"content-type": "application/json"}
            cases = {
                f"{BODY_MB} MB body, Content-Length": lambda http: http.post(f"{url}/gradio_api/call/segment",
                                                                             content=big, headers=headers),
                f"{BODY_MB} MB body, chunked": lambda http: http.post(
                    f"{url}/gradio_api/queue/join", headers=headers,
                    content=(big[i:i + (1 << 20)] for i in range(0, len(big), 1 << 20))),
                "100,000 nested brackets": lambda http: http.post(f"{url}/gradio_api/call/segment", content=deep,
                                                                  headers=headers),
                "100,000 points (1.2 MB)": lambda http: session.call("segment", [], raw_body=many_points),
            }
            with httpx.Client(timeout=120) as http:
                for name, send in cases.items():
                    for _ in range(args.repeat):
                        started = time.perf_counter()
                        response = send(http)
                        seconds = time.perf_counter() - started
                        status = getattr(response, "status_code", None) or getattr(response, "status", None)
                        message = (response.json().get("detail") if hasattr(response, "json")
                                   else response.error) or ""
                        rows.append({"request": name, "status": status, "seconds": seconds,
                                     "message": str(message)[:90]})
            time.sleep(3)
            gc.collect()
            after = read_proc_status(server.pid)["VmRSS"]
            sampler.stop_event.set()
            sampler.join(5)
            peak = max([s["VmRSS"] for s in sampler.samples] + [after])
            served_on = session.click(200, 150).ok
        finally:
            server.stop()
    return {"repeat": args.repeat, "requests": rows, "rss_mb": {"before": before, "peak": peak, "after": after},
            "served_on": served_on, "model_dir": str(args.model_dir), "machine": machine_info()}


def report(result: dict[str, Any]) -> str:
    by_case: dict[str, list[dict[str, Any]]] = {}
    for row in result["requests"]:
        by_case.setdefault(row["request"], []).append(row)
    rows = [{"request": name, "n": len(items), "status": ", ".join(sorted({str(r["status"]) for r in items})),
             "max s": max(r["seconds"] for r in items), "message": items[0]["message"]}
            for name, items in by_case.items()]
    rss = result["rss_mb"]
    return "\n".join([table(rows, ["request", "n", "status", "max s", "message"], digits=2), "",
                      f"server RSS: before {rss['before']:.0f} MB, peak {rss['peak']:.0f} MB, after "
                      f"{rss['after']:.0f} MB ({rss['after'] - rss['before']:+.0f} MB); a click afterwards "
                      f"{'succeeded' if result['served_on'] else 'FAILED'}. Load average "
                      f"{result['machine']['loadavg_1min']}."])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--model-dir", help="folder with encoder.onnx + decoder.onnx (default: $SAM_STANDIN_DIR)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", help="write the result here (default bench/results/limits-<time>.json)")
    args = parser.parse_args(argv)
    return finish(run(args), args.json, "limits", report)


if __name__ == "__main__":
    raise SystemExit(main())
