"""Bounded load and soak runs of the demo on THIS machine (docs/reliability.md, D. Load and resources).

Starts ``python app.py`` on 127.0.0.1 (or attaches to one there), drives it with up to 8
``gradio_client`` users (each: upload one image, then clicks with think time) plus a
canary that clicks every 2 s on a pre-encoded image, and samples the server's
``/proc/<pid>/status`` every 0.5 s. Prints a table and writes JSON: click and encode
p50/p95/max (round trip, and the server's own decode/encode times from the status line),
errors, RSS baseline/peak/plateau/slope, threads, files in the Gradio cache, and this
generator's own CPU time (a starved generator looks like a slow server).

Everything is bounded: users <= 8, clicks per user <= 200, wall time <= 1 h, a timeout
on every request; only 127.0.0.1/localhost can be targeted; only the server this tool
started is stopped.

Examples::

    # 4 users x 15 clicks on the real model (about 1 minute); or --model-dir DIR for local files
    python -m tools.load_harness --hub --users 4 --clicks 15

    # 30-minute soak: a new user every 30 s (encode + 10 clicks + close), 100 MB cache so it fills
    python -m tools.load_harness --hub --soak --duration 1800 --users 4 \\
        --new-user-every 30 --clicks 10 --cache-mb 100 --json soak.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from sam_demo import scene
from tools.ports import free_port

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
MAX_USERS = 8
MAX_CLICKS = 200
MAX_DURATION_S = 3600
REQUEST_TIMEOUT_S = 120.0
STARTUP_TIMEOUT_S = 180.0
SAMPLE_EVERY_S = 0.5
DISK_EVERY_S = 5.0
CANARY_EVERY_S = 2.0
THINK_S = (0.2, 0.8)
USER_STAGGER_S = 0.3
IMAGE_HW = (600, 800)
PLATEAU_TAIL = 0.25          # the plateau is the median RSS of the last quarter of the run
RSS_SLACK_MB = 800           # README "Memory bound" (docs/reliability.md, row D4): plateau <= baseline + image cache
#                              + 0.8 GB (decoder results 256, drawn backgrounds 128, scores 16, Gradio sessions <= 250,
#                              one upload decoded <= 130 MB)
CLICK_P95_TARGET_MS = 400.0  # 4 users on a 2-core machine
DRIFT_FROM_S = 600.0         # soak: once the caches are full (10 min), RSS may drift by less than
DRIFT_MAX_MB = 50            # 50 MB to the end of the run
DRIFT_MIN_RUN_S = 1200.0
LOCAL_PREFIXES = ("http://127.0.0.1:", "http://localhost:")

MODE_POSITIVE = "+ Include (positive point)"
MODE_NEGATIVE = "− Exclude (negative point)"


# ---------------------------------------------------------------------------- results
@dataclass
class Recorder:
    """Thread-safe lists of latencies (ms) per operation and of errors."""

    times: dict[str, list[float]] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, op: str, ms: float) -> None:
        with self.lock:
            self.times.setdefault(op, []).append(ms)

    def error(self, who: str, op: str, exc: BaseException) -> None:
        with self.lock:
            self.errors.append({"who": who, "op": op, "error": f"{type(exc).__name__}: {str(exc)[:300]}"})


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return float(np.percentile(np.asarray(values), q))


def summarise(values: list[float]) -> dict[str, Any]:
    return {"n": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95),
            "max": max(values) if values else None}


# ---------------------------------------------------------------------------- the server
def check_local(url: str) -> str:
    if not url.startswith(LOCAL_PREFIXES):
        raise SystemExit(f"refusing to load-test {url}: only http://127.0.0.1:<port> or http://localhost:<port>")
    return url.rstrip("/") + "/"



def wait_for_config(url: str, proc: subprocess.Popen | None, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the server exited with code {proc.returncode} before it was ready")
        try:
            if httpx.get(url + "config", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the server did not answer /config within {timeout_s:.0f} s")


@dataclass
class Server:
    url: str
    pid: int | None
    temp_dir: Path | None
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    def stop(self) -> None:
        """Stop the server this tool started (and only that one)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def start_server(model_dir: str | None, cache_mb: int, workdir: Path, extra_args: list[str]) -> Server:
    """``python app.py`` on 127.0.0.1 with ``model_dir`` (None: the pinned hub model, from the HF cache)."""
    port = free_port()
    temp_dir = workdir / "gradio-cache"
    temp_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(temp_dir),
           "GRADIO_SERVER_NAME": "127.0.0.1"}
    if model_dir is not None:
        env["HF_HUB_OFFLINE"] = "1"
    log_path = workdir / "server.log"
    command = [sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(port),
               *(["--model-dir", model_dir] if model_dir is not None else []), "--cache-mb", str(cache_mb),
               *extra_args]
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}/", proc.pid, temp_dir, proc, log_path)
    try:
        wait_for_config(server.url, proc, STARTUP_TIMEOUT_S)
    except BaseException:
        server.stop()
        raise
    return server


# ---------------------------------------------------------------------------- sampling the server
def read_proc_status(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0]) / 1024
            elif key == "Threads":
                out[key] = int(rest.split()[0])
    return out


def disk_usage(folder: Path | None) -> tuple[int, float]:
    """Files and megabytes under ``folder`` (the server's Gradio cache)."""
    if folder is None or not folder.exists():
        return 0, 0.0
    count, size = 0, 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                size += os.stat(os.path.join(root, name)).st_size
                count += 1
            except OSError:
                continue
    return count, size / 1024 / 1024


class Sampler(threading.Thread):
    """Every 0.5 s: the server's RSS, peak RSS and thread count; every 5 s: files and MB in its Gradio cache."""

    def __init__(self, pid: int | None, temp_dir: Path | None) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.temp_dir = temp_dir
        self.samples: list[dict[str, float]] = []
        self.stop_event = threading.Event()
        self.started_at = time.monotonic()
        self._disk = (0, 0.0)
        self._disk_at = -1e9

    def sample(self) -> dict[str, float] | None:
        if self.pid is None:
            return None
        try:
            values = read_proc_status(self.pid)
        except OSError:
            return None
        values["t"] = time.monotonic() - self.started_at
        if values["t"] - self._disk_at >= DISK_EVERY_S:  # walking thousands of files is not free
            self._disk, self._disk_at = disk_usage(self.temp_dir), values["t"]
        values["files"], values["cache_mb"] = self._disk
        self.samples.append(values)
        return values

    def run(self) -> None:
        while not self.stop_event.wait(SAMPLE_EVERY_S):
            self.sample()


# ---------------------------------------------------------------------------- users
def user_image(path: Path, seed: int, hw: tuple[int, int] = IMAGE_HW) -> Path:
    """A structured test photo, different per seed (so nobody hits another user's cache entry)."""
    rng = np.random.default_rng(seed)
    h, w = hw
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 255 // (w - 1) + seed * 41) % 256, (yy * 255 // (h - 1) + seed * 73) % 256,
                     ((xx // 40 + yy // 40) % 2) * 200], axis=-1)
    rgb = np.clip(base + rng.integers(-12, 13, base.shape), 0, 255).astype(np.uint8)
    Image.fromarray(rgb).save(path)
    return path


def status_timings(outputs: Any) -> dict[str, float]:
    """The server's own timings from the status line ("encode 2.91 s", "decode 52 ms", "render 30 ms")."""
    import re

    found: dict[str, float] = {}
    for value in outputs if isinstance(outputs, (list, tuple)) else [outputs]:
        if not isinstance(value, str):
            continue
        for name, number, unit in re.findall(r"\b(encode|decode|render) ([0-9.]+) (ms|s)\b", value):
            found[name] = float(number) * (1000.0 if unit == "s" else 1.0)
    return found


class User:
    """One browser tab: its own client (session, heartbeat), one upload, then clicks with think time."""

    def __init__(self, name: str, url: str, image: Path, clicks: int, recorder: Recorder, seed: int,
                 deadline: float) -> None:
        self.name = name
        self.url = url
        self.image = image
        self.clicks = clicks
        self.recorder = recorder
        self.rng = random.Random(seed)
        self.deadline = deadline
        self.display_hw = IMAGE_HW
        self.client = None
        self.http = httpx.Client()
        self.fetched: set[str] = set()

    def _call(self, op: str, *args, api_name: str) -> Any:
        """One event, timed until its result AND the displayed image are here (what the user waits for)."""
        started = time.perf_counter()
        job = self.client.submit(*args, api_name=api_name)
        result = job.result(timeout=REQUEST_TIMEOUT_S)
        shown = result[0] if isinstance(result, (list, tuple)) and result else None
        if isinstance(shown, str) and shown.startswith("{"):  # the page fetches the scene's new files at once
            for path in scene.files_of(json.loads(shown)):
                if path not in self.fetched:  # a browser caches them (immutable, content-addressed)
                    self.http.get(f"{self.url.rstrip('/')}/{path}", timeout=REQUEST_TIMEOUT_S).raise_for_status()
                    self.fetched.add(path)
        ms = (time.perf_counter() - started) * 1e3
        self.recorder.add(op, ms)
        wanted = ("encode",) if op == "encode" else ("decode", "render") if op in ("click", "canary_click") else ()
        for name, value in status_timings(result).items():
            if name in wanted:
                self.recorder.add(f"{'canary_' if op == 'canary_click' else ''}server_{name}", value)
        return result

    def connect(self) -> None:
        from gradio_client import Client

        # Outputs come back as URLs; only the scene's files are fetched (as a browser shows them first), not every
        # thumbnail one after another as gradio_client's downloader would (that measured the client, not the app).
        self.client = Client(self.url, verbose=False, download_files=False)

    def upload(self) -> bool:
        from gradio_client import handle_file

        try:
            self._call("encode", handle_file(str(self.image)), 0.5, True, api_name="/load_image")
            return True
        except Exception as exc:  # noqa: BLE001 - every failure is a counted error
            self.recorder.error(self.name, "encode", exc)
            return False

    def click(self, op: str = "click") -> None:
        h, w = self.display_hw
        x, y = self.rng.uniform(0, w - 1), self.rng.uniform(0, h - 1)
        mode = MODE_POSITIVE if self.rng.random() < 0.75 else MODE_NEGATIVE
        try:
            self._call(op, x, y, mode, 0.5, True, api_name="/click")
        except Exception as exc:  # noqa: BLE001
            self.recorder.error(self.name, op, exc)

    def run(self) -> None:
        try:
            self.connect()
            if not self.upload():
                return
            for k in range(self.clicks):
                if time.monotonic() > self.deadline:
                    break
                if k % 8 == 7:  # a fresh object now and then, as people do (and to stay under 32 points)
                    try:
                        self._call("new_object", 0.5, True, api_name="/add_object")
                    except Exception as exc:  # noqa: BLE001
                        self.recorder.error(self.name, "new_object", exc)
                self.click()
                time.sleep(self.rng.uniform(*THINK_S))
        except Exception as exc:  # noqa: BLE001
            self.recorder.error(self.name, "session", exc)
        finally:
            self.close()

    def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()
        self.http.close()


class Canary(threading.Thread):
    """A user who keeps clicking (every 2 s) on an image encoded before the load starts, plus GET /config."""

    def __init__(self, user: User) -> None:
        super().__init__(daemon=True)
        self.user = user
        self.stop_event = threading.Event()

    def run(self) -> None:
        clicks = 0
        while not self.stop_event.wait(CANARY_EVERY_S):
            if clicks and clicks % 30 == 0:
                try:  # stay under the per-object point cap
                    self.user._call("canary_clear", 0.5, True, api_name="/clear_object")
                except Exception as exc:  # noqa: BLE001
                    self.user.recorder.error("canary", "canary_clear", exc)
            self.user.click("canary_click")
            clicks += 1
            started = time.perf_counter()
            try:
                httpx.get(self.user.url + "config", timeout=REQUEST_TIMEOUT_S).raise_for_status()
                self.user.recorder.add("canary_config", (time.perf_counter() - started) * 1e3)
            except httpx.HTTPError as exc:
                self.user.recorder.error("canary", "config", exc)


# ---------------------------------------------------------------------------- a run
@dataclass
class RunConfig:
    users: int = 4
    clicks: int = 15
    duration_s: float = 300.0
    soak: bool = False
    new_user_every_s: float = 30.0
    cache_mb: int = 1024
    click_p95_target_ms: float = CLICK_P95_TARGET_MS

    def __post_init__(self) -> None:
        if not 1 <= self.users <= MAX_USERS:
            raise ValueError(f"users must be 1..{MAX_USERS}")
        if not 1 <= self.clicks <= MAX_CLICKS:
            raise ValueError(f"clicks must be 1..{MAX_CLICKS}")
        if not 0 < self.duration_s <= MAX_DURATION_S:
            raise ValueError(f"duration must be in (0, {MAX_DURATION_S}] s")


def memory_report(samples: list[dict[str, float]], baseline_mb: float | None, cache_mb: int,
                  load_started_t: float) -> dict[str, Any]:
    if not samples:
        return {"sampled": False}
    during = [s for s in samples if s["t"] >= load_started_t] or samples
    rss = [s["VmRSS"] for s in during]
    tail = during[int(len(during) * (1 - PLATEAU_TAIL)):] or during
    plateau = statistics.median(s["VmRSS"] for s in tail)
    half = during[len(during) // 2:]
    slope = None
    if len(half) >= 4 and half[-1]["t"] > half[0]["t"]:
        t = np.asarray([s["t"] for s in half]) / 60.0
        slope = float(np.polyfit(t, np.asarray([s["VmRSS"] for s in half]), 1)[0])
    bound = None if baseline_mb is None else baseline_mb + cache_mb + RSS_SLACK_MB
    at_drift_start = [s["VmRSS"] for s in during if s["t"] - during[0]["t"] >= DRIFT_FROM_S]
    drift = rss[-1] - at_drift_start[0] if at_drift_start and during[-1]["t"] - during[0]["t"] >= DRIFT_MIN_RUN_S \
        else None
    return {
        "sampled": True, "baseline_mb": baseline_mb, "peak_mb": max(rss), "end_mb": rss[-1], "plateau_mb": plateau,
        "vm_hwm_mb": max(s["VmHWM"] for s in samples), "slope_mb_per_min_second_half": slope,
        "drift_after_10_min_mb": drift,
        "bound_mb": bound, "threads_start": during[0]["Threads"], "threads_end": during[-1]["Threads"],
        "threads_max": max(s["Threads"] for s in during), "cache_files_start": during[0]["files"],
        "cache_files_end": during[-1]["files"], "cache_disk_mb_end": during[-1]["cache_mb"],
        "samples": len(samples),
    }


def run_load(server: Server, config: RunConfig, workdir: Path,
             progress: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
    """One bounded run against ``server``; returns the JSON-ready report."""
    check_local(server.url)
    recorder = Recorder()
    images = workdir / "images"
    images.mkdir(parents=True, exist_ok=True)
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    wall_started = time.monotonic()
    deadline = wall_started + config.duration_s
    sampler = Sampler(server.pid, server.temp_dir)
    sampler.sample()
    sampler.start()

    canary_user = User("canary", server.url, user_image(images / "canary.png", 999), 1, recorder, 999, deadline)
    canary_user.connect()
    if not canary_user.upload():
        raise SystemExit(f"the canary could not upload: {recorder.errors}")
    canary_user.click("canary_click")  # its first mask, so later clicks measure steady state
    time.sleep(1.0)
    baseline = sampler.sample()
    baseline_mb = baseline["VmRSS"] if baseline else None
    load_started_t = baseline["t"] if baseline else 0.0
    progress(f"baseline RSS {baseline_mb} MB; starting users")
    canary = Canary(canary_user)
    canary.start()

    threads: list[threading.Thread] = []

    def start_user(k: int) -> None:
        user = User(f"user{k}", server.url, user_image(images / f"user{k}.png", 1000 + k), config.clicks, recorder,
                    k, deadline)
        thread = threading.Thread(target=user.run, name=f"user{k}", daemon=True)
        thread.start()
        threads.append(thread)

    sessions = 0
    if config.soak:
        while time.monotonic() < deadline:
            alive = [t for t in threads if t.is_alive()]
            if len(alive) < config.users:
                start_user(sessions)
                sessions += 1
                progress(f"soak: session {sessions} started ({len(alive) + 1} active)")
            next_start = time.monotonic() + config.new_user_every_s
            while time.monotonic() < min(next_start, deadline):
                time.sleep(0.2)
    else:
        for k in range(config.users):
            start_user(k)
            sessions += 1
            time.sleep(USER_STAGGER_S)
    for thread in threads:
        thread.join(max(0.0, deadline + REQUEST_TIMEOUT_S - time.monotonic()))
    canary.stop_event.set()
    canary.join(REQUEST_TIMEOUT_S)
    canary_user.close()
    time.sleep(SAMPLE_EVERY_S * 2)
    sampler.stop_event.set()
    sampler.join(5)
    sampler.sample()
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)

    unfinished = sum(t.is_alive() for t in threads)
    memory = memory_report(sampler.samples, baseline_mb, config.cache_mb, load_started_t)
    operations = {op: summarise(values) for op, values in sorted(recorder.times.items())}
    click_p95 = operations.get("click", {}).get("p95")
    checks = {
        "no_errors": not recorder.errors,
        "all_users_finished": unfinished == 0,
        f"click_p95_le_{config.click_p95_target_ms:.0f}ms": click_p95 is not None
        and click_p95 <= config.click_p95_target_ms,
    }
    if memory.get("drift_after_10_min_mb") is not None:  # soak runs of 20 min or more
        checks[f"rss_drift_after_10_min_lt_{DRIFT_MAX_MB}mb"] = memory["drift_after_10_min_mb"] < DRIFT_MAX_MB
    if memory.get("bound_mb") is not None:
        checks["rss_plateau_le_bound"] = memory["plateau_mb"] <= memory["bound_mb"]
        checks["rss_peak_le_bound"] = memory["peak_mb"] <= memory["bound_mb"]
    return {
        "config": asdict(config), "url": server.url, "sessions": sessions,
        "wall_s": time.monotonic() - wall_started,
        "generator_cpu_s": (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime),
        "operations_ms": operations, "errors": len(recorder.errors), "error_samples": recorder.errors[:10],
        "memory": memory, "checks": checks, "passed": all(checks.values()),
        "rss_series": [(round(s["t"], 1), round(s["VmRSS"], 1)) for s in sampler.samples[:: max(1, len(
            sampler.samples) // 200)]],
    }


def format_table(report: dict[str, Any]) -> str:
    def fmt(value: float | None, unit: str = "") -> str:
        return "—" if value is None else f"{value:.0f}{unit}"

    lines = [f"{'operation':<24}{'n':>6}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}"]
    for op, stats in report["operations_ms"].items():
        lines.append(f"{op:<24}{stats['n']:>6}{fmt(stats['p50']):>10}{fmt(stats['p95']):>10}{fmt(stats['max']):>10}")
    memory = report["memory"]
    if memory.get("sampled"):
        lines.append(f"server RSS MB: baseline {fmt(memory['baseline_mb'])}, peak {fmt(memory['peak_mb'])}, "
                     f"plateau {fmt(memory['plateau_mb'])}, end {fmt(memory['end_mb'])}, "
                     f"bound {fmt(memory['bound_mb'])}"
                     f"; slope (2nd half) {memory['slope_mb_per_min_second_half'] or 0:.1f} MB/min; threads "
                     f"{memory['threads_start']:.0f}→{memory['threads_end']:.0f}; cache files "
                     f"{memory['cache_files_start']:.0f}→{memory['cache_files_end']:.0f} "
                     f"({memory['cache_disk_mb_end']:.0f} MB on disk)")
        if memory.get("drift_after_10_min_mb") is not None:
            lines.append(f"RSS drift from minute 10 to the end: {memory['drift_after_10_min_mb']:+.0f} MB")
    lines.append(f"sessions {report['sessions']}, errors {report['errors']}, wall {report['wall_s']:.0f} s, "
                 f"generator CPU {report['generator_cpu_s']:.1f} s")
    lines.append("checks: " + ", ".join(f"{k}={'PASS' if v else 'FAIL'}" for k, v in report["checks"].items()))
    for error in report["error_samples"]:
        lines.append(f"  error {error['who']} {error['op']}: {error['error']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--model-dir", help="start `python app.py --model-dir DIR` on 127.0.0.1 (and stop it after)")
    where.add_argument("--hub", action="store_true",
                       help="start `python app.py` with the pinned hub model (downloaded once into the HF cache)")
    where.add_argument("--url", help="attach to a running app on http://127.0.0.1:<port>/ instead")
    parser.add_argument("--pid", type=int, help="with --url: the server's PID, to sample its memory")
    parser.add_argument("--users", type=int, default=4, help=f"concurrent users, 1..{MAX_USERS} (default 4)")
    parser.add_argument("--clicks", type=int, default=15, help=f"clicks per user, 1..{MAX_CLICKS} (default 15)")
    parser.add_argument("--duration", type=float, default=300.0,
                        help=f"wall-time bound in seconds, <= {MAX_DURATION_S} (default 300)")
    parser.add_argument("--soak", action="store_true",
                        help="session churn until --duration: a new user every --new-user-every s")
    parser.add_argument("--new-user-every", type=float, default=30.0, help="soak: seconds between new users")
    parser.add_argument("--cache-mb", type=int, default=1024, help="server image cache (default 1024)")
    parser.add_argument("--click-p95-target", type=float, default=CLICK_P95_TARGET_MS, help="ms (default 400)")
    parser.add_argument("--server-arg", action="append", default=[], help="extra argument for app.py (repeatable)")
    parser.add_argument("--json", help="write the report here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    config = RunConfig(users=args.users, clicks=args.clicks, duration_s=args.duration, soak=args.soak,
                       new_user_every_s=args.new_user_every, cache_mb=args.cache_mb,
                       click_p95_target_ms=args.click_p95_target)
    with tempfile.TemporaryDirectory(prefix="sam-load-") as tmp:
        workdir = Path(tmp)
        if args.url:
            server = Server(check_local(args.url), args.pid, None)
            wait_for_config(server.url, None, 30)
        else:
            server = start_server(None if args.hub else args.model_dir, args.cache_mb, workdir, args.server_arg)
        try:
            report = run_load(server, config, workdir, progress=logger.info)
        finally:
            server.stop()
    print(format_table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
