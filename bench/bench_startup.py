"""A first start with ``--encoder auto`` and an empty cache: the first page, and uploads while the check runs.

Two measurements (issue 24, item 1):

- ``first page``: ``python app.py --model-dir DIR`` is started with an empty ``SAM_ONNX_CACHE_DIR`` and no
  ``SAM_ONNX_ENCODER`` (so ``auto`` has no decision), and the page is requested until it answers; the seconds
  from the start of the process to the first page, and whether the log said the check was still running then
  (the app serves on fp32 at once and checks in the background). The process is then left running until its
  check ends (its duration and outcome are read from the log), and stopped.
- ``uploads``: in this process, rounds of one upload of a 12 MP photo with no check running (the control) and
  one while a fresh background check runs (started ``--offsets`` seconds before the upload, a different point
  of the check each round), on the same fp32 engine and a new photo each time (no cache hits); the ratio of
  each round's two times is the issue's measure (target <= 1.3).

Run from the repository root::

    python -m bench.bench_startup                            # stand-in ($SAM_STANDIN_DIR)
    python -m bench.bench_startup --model-dir DIR --offsets 1 4 8 12 16 --skip-first-page
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench import common
from tools.ports import free_port

TARGET_FIRST_PAGE_S = 15.0
TARGET_UPLOAD_RATIO = 1.3
PAGE_TIMEOUT_S = 300.0
CHECK_TIMEOUT_S = 900.0
POLL_S = 0.1
CHECK_LATER_LOG = "the auto check runs later"
CHECK_END_LOG = re.compile(r"encoder check: (switched to|\S+ stays) (\S+)|background encoder check failed")


def first_page(folder: Path) -> dict[str, Any]:
    """Start the app with an empty cache and time its first page; then wait for its check, and stop it."""
    cache = Path(tempfile.mkdtemp(prefix="bench-startup-cache-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "SAM_ONNX_ENCODER"}
    env.update({"SAM_ONNX_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
                "PYTHONPATH": str(common.REPO)})
    log_path = cache / "app.log"
    started = time.perf_counter()
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "app.py", "--model-dir", str(folder), "--port", str(port)],
                                   cwd=common.REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        served_s = _wait_for_page(f"http://127.0.0.1:{port}/", process, started)
        text = log_path.read_text()
        result = {"first_page_s": served_s, "checking_when_served": CHECK_LATER_LOG in text
                  and not CHECK_END_LOG.search(text), "cache_dir_empty_at_start": True}
        while time.perf_counter() - started < CHECK_TIMEOUT_S and process.poll() is None:
            found = CHECK_END_LOG.search(log_path.read_text())
            if found:
                result["check_done_s"] = time.perf_counter() - started
                result["check_outcome"] = found.group(0)
                break
            time.sleep(1.0)
        result["decision_stored"] = any((cache / "auto").glob("*.json")) if (cache / "auto").is_dir() else False
        return result
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(cache, ignore_errors=True)


def _wait_for_page(url: str, process: subprocess.Popen, started: float) -> float:
    while time.perf_counter() - started < PAGE_TIMEOUT_S:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with status {process.returncode} before serving")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(POLL_S)
    raise RuntimeError(f"no page within {PAGE_TIMEOUT_S:.0f} s")


def uploads(folder: Path, offsets: list[float], mp: float, photos: Path, threads: int | None) -> list[dict]:
    """Per round: a control upload with no check, then one ``offset`` s into a fresh background check."""
    import numpy as np

    from sam_demo.service import SegmentationService
    from sam_onnx import Sam2Predictor
    from sam_onnx.image import ImageLimits

    rounds = []
    for r, offset in enumerate(offsets):
        cache = Path(tempfile.mkdtemp(prefix="bench-startup-round-"))
        try:
            predictor = Sam2Predictor.from_files(folder / "encoder.onnx", folder / "decoder.onnx", threads=threads,
                                                 variant="auto", check_later=True, encoder_cache_dir=cache)
            predictor.encode(np.zeros((64, 64, 3), np.uint8))  # the app's warm-up encode
            service = SegmentationService(predictor, limits=ImageLimits(max_bytes=None))
            control = _timed_upload(service, common.photo_file(mp, "jpeg", photos, seed=100 + 2 * r))
            check = service.start_encoder_check()
            time.sleep(offset)
            running = check.running
            during = _timed_upload(service, common.photo_file(mp, "jpeg", photos, seed=101 + 2 * r))
            still = check.running
            check.join(CHECK_TIMEOUT_S)
            row = {"offset_s": offset, "control_s": control, "during_s": during, "ratio": during / control,
                   "check_running_throughout": running and still, "check_s": check.seconds,
                   "check_state": check.state, "engine_after": service.predictor.info.encoder_name}
            rounds.append(row)
            common.progress(f"round {r + 1}/{len(offsets)}: control {control:.2f} s, during the check (+{offset:g} s) "
                      f"{during:.2f} s = {row['ratio']:.3f}; check {check.seconds:.0f} s, {check.state}")
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    return rounds


def _timed_upload(service, path: Path) -> float:
    started = time.perf_counter()
    _, info = service.open_image(path)
    if info["cache_hit"]:
        raise RuntimeError("an upload answered from the cache")
    return time.perf_counter() - started


def run(args) -> dict[str, Any]:
    folder = common.model_dir(args.model_dir)
    foreign = common.ForeignLoad()
    result: dict[str, Any] = {"machine": common.machine_info(gradio=False), "model_dir": str(folder),
                              "args": vars(args)}
    loadavg_before = os.getloadavg()
    if not args.skip_first_page:
        result["first_page"] = first_page(folder)
        common.progress(f"first page: {result['first_page']}")
    if args.offsets:
        result["uploads"] = uploads(folder, args.offsets, args.mp, Path(args.photos), args.threads)
        result["upload_ratio_median"] = statistics.median(r["ratio"] for r in result["uploads"])
    result["loadavg_before"] = loadavg_before
    result["loadavg_after"] = os.getloadavg()
    result["foreign_cpu_share"] = round(foreign.share(), 3)
    result["peak_rss_mib"] = common.peak_rss_mib()
    return result


def report(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [f"CPU {m['cpu']} ({m['affinity']} cores); load average before {result['loadavg_before'][0]:.2f}, "
             f"after {result['loadavg_after'][0]:.2f}; other processes used {result['foreign_cpu_share']:.0%} of "
             f"the CPUs; model {result['model_dir']}"]
    page = result.get("first_page")
    if page:
        lines.append(f"first page {page['first_page_s']:.1f} s after `python app.py` (target <= "
                     f"{TARGET_FIRST_PAGE_S:g} s), auto still checking then: {page['checking_when_served']}; check "
                     f"over after {page.get('check_done_s', float('nan')):.0f} s ({page.get('check_outcome')}), "
                     f"decision stored: {page['decision_stored']}")
    rows = result.get("uploads")
    if rows:
        lines.append("| check started before the upload | control upload | upload during the check | ratio | "
                     "check ran throughout | check | engine after |")
        lines.append("|---|---|---|---|---|---|---|")
        lines += [f"| {r['offset_s']:g} s | {r['control_s']:.2f} s | {r['during_s']:.2f} s | {r['ratio']:.3f} | "
                  f"{r['check_running_throughout']} | {r['check_s']:.0f} s, {r['check_state']} | "
                  f"{r['engine_after']} |" for r in rows]
        lines.append(f"median ratio {result['upload_ratio_median']:.3f} (target <= {TARGET_UPLOAD_RATIO}); "
                     f"worst {max(r['ratio'] for r in rows):.3f}; process peak RSS {result['peak_rss_mib']:.0f} MiB")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", help=f"folder with encoder.onnx + decoder.onnx (default ${common.STANDIN_ENV})")
    parser.add_argument("--offsets", type=float, nargs="*", default=[1.0, 4.0, 8.0, 12.0, 16.0],
                        help="seconds between a round's check start and its upload (one round each)")
    parser.add_argument("--mp", type=float, default=12.0, help="photo size in megapixels")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--skip-first-page", action="store_true", help="only the uploads")
    parser.add_argument("--photos", default=str(common.RESULTS / "photos"), help="where test photos are kept")
    parser.add_argument("--json", help="write the results here (default bench/results/startup-<time>.json)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    return common.finish(run(args), args.json, "startup", report)


if __name__ == "__main__":
    sys.exit(main())
