"""Shared helpers of the benchmark scripts: test photos, stage probes, statistics, tables, JSON.

Not a library module: only ``bench/*.py`` import it (run them with ``PYTHONPATH=.``
from the repository root).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
STANDIN_ENV = "SAM_STANDIN_DIR"
"""Environment variable naming a folder with the full-size random-weight stand-in (encoder.onnx + decoder.onnx:
the real architecture and graph sizes, meaningless masks), used when ``--model-dir`` is not given."""
STANDIN_DIR = Path(os.environ[STANDIN_ENV]) if os.environ.get(STANDIN_ENV) else None

PHOTO_SOURCE = REPO / "assets" / "rocket.jpg"
PHOTO_ASPECT = (4, 3)
"""Photos are 4:3 like most phone and camera pictures (stored landscape)."""
JPEG_QUALITY = 90
EXIF_ORIENTATION_TAG = 0x0112
ROTATE_90_CW = 6
"""EXIF orientation of a phone held upright: the stored landscape pixels are shown turned 90° clockwise."""
NOISE_SIGMA = 9.0
"""Per-pixel sensor-like noise: gives JPEG/PNG sizes close to real photos (about 0.3 / 1.9 bytes per pixel)."""


# ---------------------------------------------------------------------------- machine
def machine_info(*, gradio: bool = True) -> dict[str, Any]:
    """CPU, memory and library versions of this run (goes into every JSON file); ``gradio=False`` leaves out
    Gradio's version (importing it takes seconds, in benchmarks that do not use it)."""
    import onnxruntime
    import PIL

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        mem_gib = float("nan")
    info = {"cpu": cpu, "cpus": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
            "mem_gib": round(mem_gib, 1), "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__, "numpy": np.__version__, "pillow": PIL.__version__,
            "loadavg_1min": round(os.getloadavg()[0], 2)}
    try:
        if gradio:
            import gradio as gradio_module

            info["gradio"] = gradio_module.__version__
    except ImportError:
        pass
    return info


def rss_mib() -> float:
    """Resident memory of this process now, MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class ForeignLoad:
    """How busy the CPUs were with OTHER processes while a measurement ran (benchmarks are noisy on 2 cores).

    ``share()`` is the busy CPU time of everything but this process (and its
    children, when ``children=True``), as a fraction of all CPUs, since construction.
    """

    def __init__(self, children: bool = False) -> None:
        self.children = children
        self._start = self._snapshot()

    def _snapshot(self) -> tuple[float, float, float]:
        with open("/proc/stat") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
        total = sum(fields[:8])
        usage = os.times()
        own = usage.user + usage.system
        if self.children:
            own += usage.children_user + usage.children_system
        return total, total - idle, own * os.sysconf("SC_CLK_TCK")

    def share(self) -> float:
        total0, busy0, own0 = self._start
        total1, busy1, own1 = self._snapshot()
        if total1 <= total0:
            return 0.0
        return max(0.0, (busy1 - busy0) - (own1 - own0)) / (total1 - total0)


def wait_for_quiet(max_share: float = 0.15, window_s: float = 2.0, timeout_s: float = 0.0) -> float:
    """Wait (up to ``timeout_s``) until other processes use less than ``max_share`` of the CPUs.

    Returns the last share seen (0 without waiting when ``timeout_s`` is 0).
    Other work on a 2-core machine changes every number here; the share is
    recorded next to each measurement.
    """
    deadline = time.monotonic() + timeout_s
    share = 0.0
    while time.monotonic() < deadline:
        probe = ForeignLoad()
        time.sleep(window_s)
        share = probe.share()
        if share < max_share:
            break
    return share


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def model_dir(arg: str | None) -> Path:
    """``--model-dir`` or, by default, ``$SAM_STANDIN_DIR``; a folder with encoder.onnx + decoder.onnx."""
    folder = Path(arg) if arg else STANDIN_DIR
    if folder is None:
        raise SystemExit(f"pass --model-dir (a folder with encoder.onnx and decoder.onnx) or set {STANDIN_ENV}")
    for name in ("encoder.onnx", "decoder.onnx"):
        if not (folder / name).is_file():
            raise SystemExit(f"{folder / name} not found: pass --model-dir with encoder.onnx and decoder.onnx")
    return folder


# ---------------------------------------------------------------------------- photos
def photo_hw(megapixels: float) -> tuple[int, int]:
    """Stored ``(h, w)`` of a 4:3 landscape photo with about ``megapixels`` MP (e.g. 12 -> 3000 x 4000)."""
    aw, ah = PHOTO_ASPECT
    unit = (megapixels * 1e6 / (aw * ah)) ** 0.5
    return int(round(unit * ah)), int(round(unit * aw))


def synthetic_photo(megapixels: float, seed: int = 0) -> np.ndarray:
    """``(h, w, 3)`` uint8 landscape photo: an example picture upscaled, plus sensor-like noise.

    Real photos have fine texture everywhere, which is what makes JPEG and PNG
    decoding cost what it does; the noise stands in for it.
    """
    h, w = photo_hw(megapixels)
    base = Image.open(PHOTO_SOURCE).convert("RGB").resize((w, h), Image.Resampling.BICUBIC)
    rng = np.random.default_rng(seed)
    out = np.asarray(base, dtype=np.float32)
    out = out + rng.normal(0.0, NOISE_SIGMA, out.shape).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def photo_file(megapixels: float, fmt: str, folder: Path, seed: int = 0) -> Path:
    """A test photo file, made once and kept in ``folder``.

    ``fmt`` is ``"jpeg"`` (quality 90, EXIF orientation 6 like a phone held
    upright: the app turns it to portrait) or ``"png"`` (no EXIF, landscape).
    """
    folder.mkdir(parents=True, exist_ok=True)
    suffix = {"jpeg": "jpg", "png": "png"}[fmt]
    path = folder / f"photo_{megapixels:g}mp_s{seed}.{suffix}"
    if path.is_file():
        return path
    image = Image.fromarray(synthetic_photo(megapixels, seed))
    tmp = path.with_suffix(".tmp")
    if fmt == "jpeg":
        exif = Image.Exif()
        exif[EXIF_ORIENTATION_TAG] = ROTATE_90_CW
        image.save(tmp, format="JPEG", quality=JPEG_QUALITY, exif=exif)
    else:
        image.save(tmp, format="PNG")
    tmp.replace(path)
    return path


# ---------------------------------------------------------------------------- probes
class Probe:
    """Times calls of functions looked up through module or class attributes, by stage name.

    ``probe.wrap(module, "name", "stage")`` replaces ``module.name`` with a
    timing wrapper (restored by :meth:`close`), so the real code path runs
    unchanged and each stage's wall time adds up per :meth:`take`. Calls in
    worker threads count too (stages may then overlap in time).
    """

    def __init__(self) -> None:
        self._times: dict[str, float] = defaultdict(float)
        self._calls: dict[str, int] = defaultdict(int)
        self._undo: list[tuple[Any, str, Any]] = []
        self._lock = threading.Lock()
        self.timeline: list[tuple[str, str, float, float]] | None = None
        """Set to a list to also record ``(stage, thread name, start, end)`` of every timed call."""

    def wrap(self, owner: Any, attr: str, stage: str | Callable[..., str | None]) -> None:
        """Time ``owner.attr``; ``stage`` may be a function of the call's arguments (None = not timed)."""
        original = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)
        func = original.__func__ if isinstance(original, staticmethod) else original

        def timed(*args, **kwargs):
            name = stage(*args, **kwargs) if callable(stage) else stage
            if name is None:
                return func(*args, **kwargs)
            started = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                ended = time.perf_counter()
                self.add(name, ended - started)
                if self.timeline is not None:
                    self.timeline.append((name, threading.current_thread().name, started, ended))

        setattr(owner, attr, staticmethod(timed) if isinstance(original, staticmethod) else timed)
        self._undo.append((owner, attr, original))

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self._times[stage] += seconds * 1e3
            self._calls[stage] += 1

    @contextmanager
    def stage(self, name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def take(self) -> tuple[dict[str, float], dict[str, int]]:
        """Milliseconds and call counts per stage since the last take; resets them."""
        with self._lock:
            times, calls = dict(self._times), dict(self._calls)
            self._times.clear()
            self._calls.clear()
        return times, calls

    def close(self) -> None:
        for owner, attr, original in reversed(self._undo):
            setattr(owner, attr, original)
        self._undo.clear()


# ---------------------------------------------------------------------------- statistics
def median(values: Iterable[float]) -> float:
    values = [v for v in values if v is not None and not np.isnan(v)]
    return float(statistics.median(values)) if values else float("nan")


def summarize(samples: Sequence[dict[str, float]]) -> dict[str, float]:
    """Per-key medians of a list of ``{stage: ms}`` samples (a missing key counts as 0)."""
    keys = sorted({k for s in samples for k in s})
    return {k: median(s.get(k, 0.0) for s in samples) for k in keys}


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")


# ---------------------------------------------------------------------------- output
def fmt(value: Any, digits: int = 1) -> str:
    if isinstance(value, float):
        if np.isnan(value):
            return "—"
        return f"{value:.{digits}f}"
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], digits: int = 1) -> str:
    """A GitHub-markdown table of ``rows`` (dicts) with the given columns."""
    head = "| " + " | ".join(columns) + " |"
    rule = "| " + " | ".join("---" for _ in columns) + " |"
    body = ["| " + " | ".join(fmt(row.get(c, ""), digits) for c in columns) + " |" for row in rows]
    return "\n".join([head, rule, *body])


def write_json(path: str | os.PathLike, data: dict[str, Any]) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1, default=_jsonable))
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def timestamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def progress(message: str) -> None:
    """A benchmark's progress line, on stderr (the report and the JSON's path go to stdout)."""
    print(message, file=sys.stderr, flush=True)


def finish(result: dict[str, Any], json_arg: str | None, name: str, report: Callable[[dict[str, Any]], str]) -> int:
    """The end of a benchmark's ``main``: write the JSON (``--json`` or ``bench/results/<name>-<time>.json``),
    print the report and where the JSON went; returns the exit code 0."""
    path = Path(json_arg) if json_arg else RESULTS / f"{name}-{timestamp()}.json"
    write_json(path, result)
    print(report(result))
    print(f"JSON: {path}")
    return 0
