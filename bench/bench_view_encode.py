"""Does encoding zoomed views ahead pay its way? What it costs other users (prints tables, writes JSON).

Run::

    python -m bench.bench_view_encode --model-dir "$SAM_STANDIN_DIR" --rounds 3

Issue 19 item 3: when a user has zoomed in and stopped, the view they see is encoded in the
background (:meth:`sam_demo.service.SegmentationService.encode_view`, lowest-priority turns), so
that their clicks there decode at the view's resolution. It is on by default only if it measures
well. In one process on the full-size stand-in (real encoder and decoder timings), with a 12 MP
photo open:

* user B clicks every ``--think`` seconds (an edit through ``service.render``: one decoder call and
  the drawing), ``--clicks`` times per round;
* user C uploads a new 12 MP photo once per round (upload to ready through ``service.open_image``);
* user A is idle, or zooms and pans: a new view of the photo every time the previous one is encoded
  (the worst case: a view encode always running or waiting).

Idle and busy rounds alternate. The figures: B's click p50/p95 and C's upload time, busy / idle.
The default is on only if B's click p95 stays within ``CLICK_P95_BOUND``x idle (the bound the other
heavy jobs meet, README "Fair to every user") and C's upload within ``UPLOAD_BOUND``x idle.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import common
from sam_demo.editor import Editor
from sam_demo.service import SegmentationService
from sam_onnx import Sam2Predictor

CLICK_P95_BOUND = 2.0
UPLOAD_BOUND = 1.5
VIEW_FRACTION = 0.25
"""A view spans this fraction of the photo's width and height: 1000 x 750 px of a 4000 x 3000 photo, as at 4x
zoom."""


def _views(hw: tuple[int, int], rng: np.random.Generator):
    h, w = hw
    vw, vh = w * VIEW_FRACTION, h * VIEW_FRACTION
    while True:
        x0, y0 = rng.uniform(0, w - vw), rng.uniform(0, h - vh)
        yield (float(x0), float(y0), float(x0 + vw), float(y0 + vh))


def one_round(service: SegmentationService, record, uploads: list[Path], busy: bool, clicks: int,
              think: float, seed: int) -> dict[str, Any]:
    stop = threading.Event()
    encoded = [0]

    def zooming_user() -> None:
        views = _views(record.original_hw, np.random.default_rng(seed))
        while not stop.is_set():
            if service.encode_view(record, next(views), cancel=stop.is_set) is not None:
                encoded[0] += 1

    zoomer = threading.Thread(target=zooming_user, name="user-A", daemon=True)
    if busy:
        zoomer.start()
        time.sleep(0.5)  # A's first view is under way
    upload_s: list[float] = []

    def uploading_user() -> None:
        time.sleep(think * clicks / 2)  # arrives mid-round
        started = time.perf_counter()
        service.open_image(str(uploads[seed % len(uploads)]))
        upload_s.append(time.perf_counter() - started)

    uploader = threading.Thread(target=uploading_user, name="user-C", daemon=True)
    uploader.start()
    h, w = record.original_hw
    rng = np.random.default_rng(seed + 1)
    editor = Editor.start((h, w))
    times = []
    for _ in range(clicks):
        editor = editor.add_point(float(rng.uniform(0, w - 1)), float(rng.uniform(0, h - 1)))
        started = time.perf_counter()
        service.render(record, editor)
        times.append(time.perf_counter() - started)
        time.sleep(think)
        if len(editor.selected.prompts.points) >= 8:
            editor = editor.add_object()
    uploader.join()
    stop.set()
    if busy:
        zoomer.join()
    return {"busy": busy, "click_p50_ms": common.percentile(times, 50) * 1e3,
            "click_p95_ms": common.percentile(times, 95) * 1e3, "upload_s": upload_s[0], "views_encoded": encoded[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", help=f"model folder (default ${common.STANDIN_ENV})")
    parser.add_argument("--rounds", type=int, default=3, help="idle and busy rounds each, interleaved")
    parser.add_argument("--clicks", type=int, default=15)
    parser.add_argument("--think", type=float, default=0.3, help="seconds between B's clicks")
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    folder = common.model_dir(args.model_dir)
    predictor = Sam2Predictor.from_files(folder / "encoder.onnx", folder / "decoder.onnx")
    service = SegmentationService(predictor, image_cache_mb=1024)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp)
        path = common.photo_file(args.megapixels, "jpeg", photos)
        uploads = [common.photo_file(args.megapixels, "jpeg", photos, seed=s) for s in range(1, 2 * args.rounds + 1)]
        record, _ = service.open_image(str(path))
        service.render(record, Editor.start(record.original_hw).add_point(10, 10))  # warm
        for r in range(args.rounds):
            for busy in (False, True):
                row = one_round(service, record, uploads, busy, args.clicks, args.think, seed=2 * r + busy)
                rows.append(row)
                print(f"round {r + 1} {'busy' if busy else 'idle'}: click p95 {row['click_p95_ms']:.0f} ms, "
                      f"upload {row['upload_s']:.2f} s, views encoded {row['views_encoded']}", flush=True)
    idle = [r for r in rows if not r["busy"]]
    busy = [r for r in rows if r["busy"]]
    summary = {
        "click_p95_ratio": common.median(r["click_p95_ms"] for r in busy) / common.median(r["click_p95_ms"] for r in idle),
        "click_p50_ratio": common.median(r["click_p50_ms"] for r in busy) / common.median(r["click_p50_ms"] for r in idle),
        "upload_ratio": common.median(r["upload_s"] for r in busy) / common.median(r["upload_s"] for r in idle),
    }
    summary["on_by_default"] = summary["click_p95_ratio"] <= CLICK_P95_BOUND and summary["upload_ratio"] <= UPLOAD_BOUND
    result = {"rows": rows, "summary": summary, "machine": common.machine_info(),
              "bounds": {"click_p95": CLICK_P95_BOUND, "upload": UPLOAD_BOUND}}

    def report(res: dict[str, Any]) -> str:
        s = res["summary"]
        return "\n".join([
            common.table(res["rows"], ["busy", "click_p50_ms", "click_p95_ms", "upload_s", "views_encoded"]),
            f"busy/idle: click p95 {s['click_p95_ratio']:.2f}x (p50 {s['click_p50_ratio']:.2f}x), upload "
            f"{s['upload_ratio']:.2f}x; bounds {CLICK_P95_BOUND}x / {UPLOAD_BOUND}x -> on by default: "
            f"{s['on_by_default']}; load average {res['machine']['loadavg_1min']}"])

    return common.finish(result, args.json, "view-encode", report)


if __name__ == "__main__":
    raise SystemExit(main())
