"""Fairness between users: does one user's heavy work delay another user's click?

Starts ``python app.py`` on 127.0.0.1 (``tools.load_harness.start_server``) with a model folder
(``--model-dir``, default ``$SAM_STANDIN_DIR``: the full-size stand-in), then:

* user B opens a photo and clicks (think time ``--think`` s) while nobody else works: **idle**;
* user A opens another photo and loads a prompts file of ``--objects`` objects of ``--points``
  points (256 × 32 by default, every documented limit at its maximum), so A *holds* that many
  objects; the last one is empty and selected, as after "+ New object";
* then, in interleaved rounds, B clicks while nobody else works (idle) and while A works
  (busy), where A's work is one of (``--scenario``):

  - ``click``: A clicks on its selected object with ``--a-think`` s between clicks (default: as
    often as B; 0 = back to back), each click decoding one object and drawing it over A's 255 others;
  - ``load``: A loads a fresh 256-object prompts file back to back (every object decoded and drawn);
  - ``segment``: A calls ``/segment`` with 256 one-point objects back to back;
  - ``everything``: A runs segment everything (``balanced``) back to back.

B's click time is the round trip a browser waits for: submit → answer → overlay file fetched.
It prints B's p50/p95 idle and busy, their ratio, A's own times, and the server's RSS, and
writes JSON. Idle and busy rounds alternate so that the machine's mood (other processes on
the 2 shared cores) affects both alike; the ratio is the figure to read.

    python -m bench.bench_fairness --scenario click --rounds 4 --clicks 15
    python -m bench.bench_fairness --scenario click --a-think 0 --rounds 4 --clicks 15   # A clicks back to back
    python -m bench.bench_fairness --scenario load --rounds 3 --clicks 10
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import finish, machine_info, model_dir, table
from tools.load_harness import Sampler, read_proc_status, start_server, summarise
from tools.rawapi import file_data
from tools.scenarios import SCENARIOS, BusyUser, Clicker, interleaved_rounds, photo, prompts_file

IMAGE_HW = (600, 900)


def stats(values: list[float]) -> dict[str, Any]:
    """n, p50, p95 and max in milliseconds of durations in seconds (None when there are none)."""
    return summarise([v * 1e3 for v in values])


def run(args: argparse.Namespace) -> dict[str, Any]:
    args.model_dir = model_dir(args.model_dir)
    with tempfile.TemporaryDirectory(prefix="sam-fair-") as tmp:
        server = start_server(str(args.model_dir), 1024, Path(tmp), [])
        try:
            sampler = Sampler(server.pid, None)
            sampler.start()
            b = Clicker.open(server.url, photo(1, IMAGE_HW), IMAGE_HW, seed=1, fetch_overlay=True)
            b.click()  # B's first mask: later clicks measure the steady state
            a = Clicker.open(server.url, photo(2, IMAGE_HW), IMAGE_HW, seed=2, fetch_overlay=True)
            started = time.perf_counter()
            path = a.session.upload(prompts_file(args.objects, args.points, IMAGE_HW, 1000), "a.json")
            outcome = a.session.call("load_prompts", [file_data(path), 0.5, True])
            assert outcome.ok, outcome
            a_load_s = time.perf_counter() - started
            rss_holding = read_proc_status(server.pid)["VmRSS"] if server.pid else None

            def busy_user(round_: int) -> BusyUser:
                return BusyUser(a, args.scenario, objects=args.objects, points=args.points, seed=5000 + 100 * round_,
                                think_s=args.think if args.a_think is None else args.a_think,
                                segment_image=photo(77, IMAGE_HW))

            def ready(user: BusyUser) -> None:
                # A subprocess server shows no gate to wait on: A's first request is out, then a warm-up.
                user.started.wait(60)
                time.sleep(args.warmup)

            rounds = interleaved_rounds(b, busy_user, rounds=args.rounds, clicks=args.clicks, think_s=args.think,
                                        ready=ready)
            sampler.stop_event.set()
            peak = max((s["VmRSS"] for s in sampler.samples), default=None)
        finally:
            server.stop()
    idle_s, busy_s = stats(rounds.idle), stats(rounds.busy)
    return {
        "scenario": args.scenario, "objects": args.objects, "points": args.points, "rounds": args.rounds,
        "clicks_per_round": args.clicks, "think_s": args.think, "a_think_s": args.a_think,
        "model_dir": str(args.model_dir),
        "b_idle_ms": idle_s, "b_busy_ms": busy_s,
        "p95_ratio": busy_s["p95"] / idle_s["p95"] if idle_s["p95"] else None,
        "p50_ratio": busy_s["p50"] / idle_s["p50"] if idle_s["p50"] else None,
        "a_first_load_s": a_load_s, "a_action_ms": stats(rounds.a_times), "a_errors": rounds.a_errors[:5],
        "server_rss_mb": {"holding": rss_holding, "peak": peak}, "machine": machine_info(),
    }


def report(result: dict[str, Any]) -> str:
    rows = [{"who": "B, nobody else working", **result["b_idle_ms"]},
            {"who": f"B, while A works ({result['scenario']})", **result["b_busy_ms"]},
            {"who": f"A's {result['scenario']}" + ("" if result["a_think_s"] is None
                                                    else f" (pause {result['a_think_s']} s)"),
             **result["a_action_ms"]}]
    lines = [f"Fairness: A holds {result['objects']} objects of {result['points']} points "
             f"(first load {result['a_first_load_s']:.1f} s); {result['rounds']} interleaved rounds of "
             f"{result['clicks_per_round']} clicks by B. Load average {result['machine']['loadavg_1min']}.",
             "", table(rows, ["who", "n", "p50", "p95", "max"], digits=0), "",
             f"B's click p95 busy / idle: **{result['p95_ratio']:.2f}** (p50: {result['p50_ratio']:.2f}); "
             f"server RSS while A holds its objects {result['server_rss_mb']['holding']:.0f} MB, "
             f"peak {result['server_rss_mb']['peak']:.0f} MB."]
    if result["a_errors"]:
        lines.append(f"A's errors: {result['a_errors']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--model-dir", help="folder with encoder.onnx + decoder.onnx (default: $SAM_STANDIN_DIR)")
    parser.add_argument("--scenario", choices=SCENARIOS, default="click")
    parser.add_argument("--objects", type=int, default=256, help="objects A holds (default 256, the limit)")
    parser.add_argument("--points", type=int, default=32, help="points per object (default 32, the limit)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clicks", type=int, default=15, help="B's clicks per round and condition")
    parser.add_argument("--think", type=float, default=0.3, help="B's pause between clicks, s")
    parser.add_argument("--a-think", type=float, help="click scenario: A's pause between clicks, s (default: --think)")
    parser.add_argument("--warmup", type=float, default=1.0, help="s between A starting and B clicking")
    parser.add_argument("--json", help="write the result here (default bench/results/fairness-<time>.json)")
    args = parser.parse_args(argv)
    return finish(run(args), args.json, f"fairness-{args.scenario}", report)


if __name__ == "__main__":
    raise SystemExit(main())
