"""Click-to-paint in a real browser: ``python app.py`` on localhost, driven by Playwright + Chromium.

Starts the app as a subprocess (``app.main`` with ``--model-dir DIR --port
PORT``, warm-up on, as a user would run it, through ``bench/serve_app.py``,
which can swap the stand-in's noise masks for object-like ones), opens it in headless Chromium, uploads a photo,
then clicks on the image and measures, inside the page, the time from the
click event to the first frame painted with the new picture: the page's view
(``sam_demo/static/view``) counts the scenes it has drawn (``data-drawn``), and
a task posted from the next ``requestAnimationFrame`` after the count grows runs
right after that frame is painted. (The old ``gr.Image`` display is measured the
same way from its ``<img>``'s new ``src``, so the script also runs on older
commits for a before/after.) Also the bytes each click brings to the page
(Chromium's ``Network.dataReceived``: the event's answer on the queue's stream,
the changed mask layer, the candidate thumbnails), upload-to-ready (file chosen
-> first picture painted) and the server's own decode/render times that the
status line shows. Prints a table and writes JSON. Not a test.

Measured here (2-core VM, other sessions' load: foreign CPU share 0.88-0.90; stand-in small, 12 MP JPEG,
8 clicks, ``--app-args --encoder fp32 --no-warmup``): bytes per click 296.5 kB with the old ``gr.Image``
display (commit 82b63ad: overlay JPEG + thumbnails + the event's answer) and 26.8 kB with the page's view
(scene JSON + one 1-bit layer + thumbnails), 11x fewer. Click-to-paint times on that loaded machine are not
comparable between the two runs.

With ``--page-decoder`` (issue 23) it measures the page's own decoder too, each setting in a fresh browser
context on the same server: **server only** (live previews off: every mask comes from the server; the clicks
above), then **page decoder, threads on** (the page cross-origin isolated, as the app serves it) and **threads
off** (COOP/COEP stripped from the page, so onnxruntime-web runs one thread). For each page-decoder setting:
the **floor** (bare ``session.run`` of the page's decoder in its worker, ``--floor-runs`` times, one after each
move's preview, interleaved with the moves so both see the same load: what no page
code can beat), **pointer move -> preview painted** over ``--moves`` moves (from the ``pointermove`` event's
time stamp to the frame painted after its preview was handed to the view; the pointer waits for each preview,
so this is the latency, not the throughput), and **click -> first mask painted** (the page's instant paint or
the server's scene, whichever is painted first; the pointer hovered the point first, as a hand does). The
report checks the issue's targets: preview p50 <= floor + 40 ms and p95 <= 2 x floor; click first-mask p50 no
slower than the server-only path. It also breaks each preview down by stage, from marks the page and its worker
record (``STAGES``: pointer event, asked, posted, worker received, feeds built, ``session.run`` done, mask cropped,
bitmap made, result posted, received, handed to the view, frame drawn, frame painted), and reports the
**overhead**: move -> painted minus that decode's own ``session.run``, i.e. what the page adds to the floor, free
of the run's own spread on a shared machine. The script waits for each preview on a promise, not by polling every
animation frame (which would keep the page rendering on the CPUs the decoder needs).

``--ab-rev REV`` measures previews only, A/B: two pages on one server, A served the page's scripts (view and
decoder modules) as they are at git revision REV, B this checkout's, moves interleaved at the same positions.

Run from the repository root (needs Debian's ``chromium`` and the
``playwright`` Python package; no ``playwright install``)::

    python -m bench.bench_browser                      # stand-in model, 12 MP JPEG, 30 clicks
    python -m bench.bench_browser --model-dir DIR --clicks 50 --photo-mp 1
    python -m bench.bench_browser --page-decoder --clicks 20 --moves 50   # + the page's own decoder
    python -m bench.bench_browser --ab-rev main --threads off --moves 40  # previews: main's scripts vs this checkout
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from urllib.parse import urlparse
from pathlib import Path
from typing import Any

import numpy as np

from bench import common
from tools.ports import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-renderer-backgrounding",
                 "--disable-background-timer-throttling", "--disable-backgrounding-occluded-windows"]
VIEWPORT = {"width": 1400, "height": 1000}
CLICKS_PER_OBJECT = 4
"""After this many points the object is cleared (its prompts would otherwise keep growing)."""
TARGET_P50_MS = 150.0
SERVER_START_TIMEOUT_S = 180.0
PAINT_TIMEOUT_MS = 30_000
SETTLE_MS = 400
"""Wait around each click so that every byte it brings (the thumbnails follow the picture) is counted for it."""
UPLOAD_TIMEOUT_MS = 180_000

# Records click times and paints of new #display images (performance.now() clock).
INSTRUMENT_JS = """
() => {
  if (window.__bench) return;
  const bench = window.__bench = {clicks: [], paints: [], lastSrc: null};
  document.addEventListener('click', (e) => {
    if (e.target.closest && e.target.closest('#display')) bench.clicks.push(performance.now());
  }, true);
  // The next rendering opportunity, then a task queued from it: runs just after that frame is painted.
  const painted = (src, seen) => requestAnimationFrame(() => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => bench.paints.push({src: src, seen: seen, painted: performance.now()});
    channel.port2.postMessage(null);
  });
  const check = () => {
    const view = document.querySelector('#display .sam-view');
    if (view) {  // the page-side view: a new scene drawn on its canvas
      const drawn = view.dataset.drawn;
      if (!drawn || drawn === bench.lastSrc) return;
      bench.lastSrc = drawn;
      painted(drawn, performance.now());
      return;
    }
    const img = document.querySelector('#display img');  // the old gr.Image display (older commits)
    if (!img || !img.src || img.src === bench.lastSrc) return;
    const src = bench.lastSrc = img.src;
    const seen = performance.now();
    img.decode().then(() => painted(src, seen), () => painted(src, seen));
  };
  new MutationObserver(check).observe(document.body, {subtree: true, childList: true, attributes: true,
                                                      attributeFilter: ['src', 'data-drawn']});
  check();
}
"""

# Resource timings of the requests a click caused, relative to the click (ms), and the new image's fetch end.
NETWORK_JS = """
({since, src}) => {
  const entries = performance.getEntriesByType('resource').filter((e) => e.startTime >= since);
  const image = entries.find((e) => e.name === src) || entries.filter((e) => e.name.includes('/layer/')).pop();
  performance.clearResourceTimings();
  return {image_end: image ? image.responseEnd - since : null,
          requests: entries.map((e) => [e.name.replace(location.origin, '').slice(0, 60),
                                        Math.round(e.startTime - since), Math.round(e.responseEnd - since)])};
}
"""

STATUS_TIMES = re.compile(r"decode (\d+) ms.*?render (\d+) ms")

PREVIEW_TARGET_OVER_FLOOR_MS = 40.0
PREVIEW_TARGET_P95_FLOORS = 2.0
PREVIEWS_OFF_JS = "localStorage.setItem('sam-live-preview', 'off');"
ISOLATION_HEADERS = ("cross-origin-opener-policy", "cross-origin-embedder-policy")
LIVE = "document.querySelector('#display').samView.livePreview"
# Pointer moves on the canvas, previews and instant paints handed to the view, each with the time of the frame
# painted after it (a task queued from the next animation frame runs just after that frame is painted).
PREVIEW_INSTRUMENT_JS = f"""
() => {{
  const b = window.__bench, view = document.querySelector('#display').samView;
  b.moves = []; b.previews = []; b.instants = []; b.previewWaiters = [];
  // Resolves once more than n previews are painted: the script waits on this instead of polling every animation
  // frame (wait_for_function), which would keep the page rendering frames on the CPUs the decoder needs.
  b.waitPreview = (n, ms) => new Promise((resolve, reject) => {{
    if (b.previews.length > n) {{ resolve(); return; }}
    b.previewWaiters.push({{n, resolve}});
    setTimeout(() => reject(new Error(`no preview painted within ${{ms}} ms`)), ms);
  }});
  view.canvas.addEventListener('pointermove', (e) => b.moves.push(e.timeStamp), true);
  // A preview's stage marks on this page's clock (worker.js marks are epoch ms): see STAGES.
  const marks = (d) => {{
    const r = d.result, m = r.marks || {{}}, o = performance.timeOrigin, drawn = view.lastDraw || {{}};
    const ok = drawn.start >= d.shown;  // the view's frame callback ran before this one, after the hand-over
    const at = (v) => (Number.isFinite(v) ? v : null);  // older pages record fewer marks
    return {{asked: at(d.asked), sent: at(r.sent), got: at(m.got - o), fed: at(m.fed - o), ran: at(m.ran - o),
             cropped: at(m.cropped - o), bitmap: at(m.bitmap - o), posted: at(m.posted - o),
             received: at(r.received), shown: at(d.shown), draw_start: ok ? drawn.start : null,
             draw_end: ok ? drawn.end : null}};
  }};
  const painted = (list, detail, stages) => requestAnimationFrame(() => {{
    const at = stages ? stages(detail) : null;
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {{
      list.push({{x: detail.x, y: detail.y, painted: performance.now(), marks: at}});
      const due = b.previewWaiters.filter((w) => b.previews.length > w.n);
      b.previewWaiters = b.previewWaiters.filter((w) => !due.includes(w));
      for (const w of due) w.resolve();
    }};
    channel.port2.postMessage(null);
  }});
  view.element.addEventListener('sam-preview', (e) => painted(b.previews, e.detail, marks));
  view.element.addEventListener('sam-instant', (e) => painted(b.instants, e.detail));
}}
"""
STAGES = (("move", "asked", "pointer event -> preview asked (event dispatch, view's hover)"),
          ("asked", "sent", "asked -> posted to the worker (embeddings ready, scheduling)"),
          ("sent", "got", "postMessage -> worker receives it"),
          ("got", "fed", "worker: prompt feeds built"),
          ("fed", "ran", "worker: session.run (the floor's part)"),
          ("ran", "cropped", "worker: best candidate upsampled + cropped (masks.js)"),
          ("cropped", "bitmap", "worker: ImageBitmap painted"),
          ("bitmap", "posted", "worker: result posted"),
          ("posted", "received", "postMessage -> page receives it"),
          ("received", "shown", "page: result handed to the view"),
          ("shown", "draw_start", "view: wait for its frame"),
          ("draw_start", "draw_end", "view: frame drawn"),
          ("draw_end", "painted", "frame presented"))
"""Stages of pointer move -> preview painted, between the marks the page and its worker record (page clock, ms)."""
READY_JS = f"""async () => {{ for (let i = 0; i < 6000; i++) {{ const p = {LIVE};
    if (p && p.off) return p.off.reason;
    if (p && p.decoder && p.image) {{ await p.image.ready; return p.decoder.info; }}
    await new Promise((r) => setTimeout(r, 20)); }} return 'not ready'; }}"""
FLOOR_JS = f"""async (runs) => {{ const p = {LIVE}, s = document.querySelector('#display').samView.scene;
  const hw = [s.image.h, s.image.w];
  return p.decoder.floor({{key: p.image.key, prompts: {{points: [[hw[1] / 3, hw[0] / 2, 1]], box: null}},
                          originalHW: hw}}, runs); }}"""



def start_app(model_dir: Path, port: int, log_path: Path, masks: str, extra: list[str],
              gallery_format: str | None = None) -> subprocess.Popen:
    """``app.py``'s own ``main`` in a subprocess (through ``serve_app.py`` for the mask swap)."""
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(common.REPO)}
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    launcher = ["-m", "bench.serve_app", "--masks", masks]
    if gallery_format:
        launcher += ["--gallery-format", gallery_format]
    proc = subprocess.Popen([sys.executable, *launcher, "--", "--model-dir", str(model_dir),
                             "--host", "127.0.0.1", "--port", str(port), *extra],
                            cwd=common.REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    proc._bench_log = log  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"app.py exited with {proc.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    stop_app(proc)
    raise SystemExit(f"app.py did not answer on {url} within {SERVER_START_TIMEOUT_S:.0f} s; see {log_path}")


def stop_app(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # the app's own process group (start_new_session)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    proc._bench_log.close()  # type: ignore[attr-defined]


def _wait_paints(page, count: int, timeout_ms: int) -> dict[str, Any]:
    page.wait_for_function("(n) => window.__bench.paints.length > n", arg=count, timeout=timeout_ms)
    return page.evaluate("() => window.__bench.paints[window.__bench.paints.length - 1]")


def _wait_preview(page, count: int) -> None:
    """Until more than ``count`` previews are painted (PREVIEW_INSTRUMENT_JS's waitPreview: no polling)."""
    page.evaluate("([n, ms]) => window.__bench.waitPreview(n, ms)", [count, PAINT_TIMEOUT_MS])


def _image_box(page) -> dict[str, float]:
    """Where the picture is drawn (CSS px): the view's image rectangle, or the old ``<img>``'s picture."""
    page.locator("#display").first.scroll_into_view_if_needed()
    return page.evaluate("""() => { const d = document.querySelector('#display');
        if (d.samView) { const t = d.samView.geometry, r = d.samView.canvas.getBoundingClientRect();
          const [l, tp, rt, b] = t.imageCss(); return {left: r.left + l, top: r.top + tp, width: rt - l, height: b - tp}; }
        const el = d.querySelector('img'), r = el.getBoundingClientRect();
        const s = Math.min(r.width / el.naturalWidth, r.height / el.naturalHeight);
        const w = el.naturalWidth * s, h = el.naturalHeight * s;
        return {left: r.left + (r.width - w) / 2, top: r.top + (r.height - h) / 2, width: w, height: h}; }""")


def _click_point(box: dict[str, float], rng: np.random.Generator) -> tuple[float, float]:
    """A point inside the drawn picture, away from its edges."""
    fx, fy = rng.uniform(0.15, 0.85, 2)
    return box["left"] + fx * box["width"], box["top"] + fy * box["height"]


class Bytes:
    """Bytes the page receives, from Chromium's network events (CDP ``Network.dataReceived``, encoded length:
    what travelled, headers aside), counted from :meth:`reset`."""

    def __init__(self, page) -> None:
        self.total = 0
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.on("Network.dataReceived", self._received)
        self.cdp.send("Network.enable")
        self.cdp.send("Network.setCacheDisabled", {"cacheDisabled": False})

    def _received(self, event: dict) -> None:
        self.total += int(event.get("encodedDataLength") or event.get("dataLength") or 0)

    def reset(self) -> int:
        total, self.total = self.total, 0
        return total


def run(args) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    folder = common.model_dir(args.model_dir)
    photo = common.photo_file(args.photo_mp, args.photo_format, Path(args.photos))
    port = args.port or free_port()
    foreign = common.ForeignLoad(children=True)
    result: dict[str, Any] = {"machine": common.machine_info(), "model_dir": str(folder), "photo": str(photo),
                              "photo_mp": args.photo_mp, "clicks": args.clicks, "masks": args.masks,
                              "gallery_format": args.gallery_format, "app_args": args.app_args}
    with tempfile.TemporaryDirectory(prefix="bench-browser-") as tmp:
        log_path = Path(tmp) / "app.log"
        started = time.perf_counter()
        common.wait_for_quiet(timeout_s=args.wait_quiet)
        proc = start_app(folder, port, log_path, args.masks, args.app_args, args.gallery_format)
        result["server start s"] = time.perf_counter() - started
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
                url = f"http://127.0.0.1:{port}/"
                if args.ab_rev:
                    settings = {"both": (True, False), "on": (True,), "off": (False,)}[args.threads]
                    result["ab"] = [_ab_setting(browser, url, photo, args, on) for on in settings]
                    result["loadavg"] = os.getloadavg()
                    result["foreign_cpu_share"] = foreign.share()
                    browser.close()
                    return result
                if args.page_decoder:
                    settings = {"both": (True, False), "on": (True,), "off": (False,)}[args.threads]
                    result["settings"] = [_page_decoder_setting(browser, url, photo, args, on) for on in settings]
                context = browser.new_context(viewport=VIEWPORT)
                context.add_init_script(PREVIEWS_OFF_JS)  # server only: every mask comes from the server
                page = context.new_page()
                page.goto(url)
                page.wait_for_selector("#input_image", timeout=60_000)
                page.evaluate(INSTRUMENT_JS)
                received = Bytes(page)
                received.reset()
                t0 = time.perf_counter()
                page.locator("#input_image input[type=file]").set_input_files(str(photo))
                _wait_paints(page, 0, UPLOAD_TIMEOUT_MS)
                result["upload to ready ms"] = (time.perf_counter() - t0) * 1e3
                page.wait_for_timeout(1000)  # the upload's thumbnails and preview arrive after the first paint
                result["upload bytes"] = received.reset()
                result["upload status"] = page.locator("#status").inner_text()
                page.wait_for_timeout(300)
                samples = _clicks(page, args.clicks, args.warmup, np.random.default_rng(args.seed), received)
                browser.close()
        finally:
            stop_app(proc)
            result["app log tail"] = log_path.read_text(errors="replace").splitlines()[-15:]
    paint = [s["click to paint"] for s in samples]
    result["samples"] = samples
    result["click to paint"] = {"p50": common.percentile(paint, 50), "p90": common.percentile(paint, 90),
                                "min": min(paint), "max": max(paint)}
    for key in ("click to new src", "image fetched", "src to paint", "server decode", "server render", "bytes"):
        result[key] = common.median(s[key] for s in samples)
    result["foreign_cpu_share"] = foreign.share()
    return result


def _strip_isolation(route) -> None:
    response = route.fetch()
    route.fulfill(response=response,
                  headers={k: v for k, v in response.headers.items() if k.lower() not in ISOLATION_HEADERS})


STATIC_ROUTES = {"/view/static/": "sam_demo/static/view/", "/sam-page/js/": "sam_demo/static/decoder/"}
"""URL path prefix of the page's own scripts -> their folder in the repository (sam_demo/routes.py, page_decoder.py)."""
NOT_FORWARDED = {"etag", "content-length", "content-encoding", "last-modified", "cache-control"}


def _scripts_of_revision(context, rev: str) -> None:
    """Serve this context the page's scripts (view and decoder modules, worker included) as they are at git
    revision ``rev`` of this repository, with the app's own headers (COOP/COEP kept): the A of an A/B run."""
    def handle(route) -> None:
        path = urlparse(route.request.url).path
        prefix = next(p for p in STATIC_ROUTES if p in path)
        name = path.split(prefix, 1)[1]
        shown = subprocess.run(["git", "-C", str(common.REPO), "show", f"{rev}:{STATIC_ROUTES[prefix]}{name}"],
                               capture_output=True, check=False)
        response = route.fetch()
        if shown.returncode:  # a file the revision does not have: the app's
            route.fulfill(response=response)
            return
        headers = {k: v for k, v in response.headers.items() if k.lower() not in NOT_FORWARDED}
        route.fulfill(status=200, headers={**headers, "cache-control": "no-store"}, body=shown.stdout)
    for prefix in STATIC_ROUTES:
        context.route(f"**{prefix}**", handle)


def _open_decoder_page(browser, url: str, photo: Path, threads_on: bool, rev: str | None = None):
    """A fresh context with the photo open and the page decoder ready: (context, page, info | error text)."""
    context = browser.new_context(viewport=VIEWPORT)
    if rev:
        _scripts_of_revision(context, rev)
    page = context.new_page()
    if not threads_on:
        page.route(url, _strip_isolation)
    page.goto(url)
    page.wait_for_selector("#input_image", timeout=60_000)
    page.evaluate(INSTRUMENT_JS)
    page.locator("#input_image input[type=file]").set_input_files(str(photo))
    _wait_paints(page, 0, UPLOAD_TIMEOUT_MS)
    info = page.evaluate(READY_JS)
    if isinstance(info, dict):
        page.evaluate(PREVIEW_INSTRUMENT_JS)
        page.evaluate(FLOOR_JS, 3)  # warm-up
    return context, page, info


def _one_move(page, rng_point: tuple[float, float]) -> tuple[float, dict[str, Any]]:
    """Move the pointer to fractions (fx, fy) of the picture, wait for its preview to be painted:
    (move -> painted ms, the preview's marks with move and painted added, or {})."""
    box = _image_box(page)
    x, y = box["left"] + rng_point[0] * box["width"], box["top"] + rng_point[1] * box["height"]
    before = page.evaluate("() => window.__bench.previews.length")
    page.mouse.move(x, y)
    _wait_preview(page, before)
    moved, shown = page.evaluate("(n) => [window.__bench.moves[window.__bench.moves.length - 1], "
                                 "window.__bench.previews[window.__bench.previews.length - 1]]", before)
    marks = {**shown["marks"], "move": moved, "painted": shown["painted"]} if shown.get("marks") else {}
    return shown["painted"] - moved, marks


def _ab_setting(browser, url: str, photo: Path, args, threads_on: bool) -> dict[str, Any]:
    """A/B, interleaved: two pages on the same server, A with the page's scripts of ``args.ab_rev``, B with this
    checkout's; each move goes to both (in alternating order) at the same picture position, and each page's
    floor is measured one run after each of its moves, so both see the same load."""
    pages = {}
    for name, rev in (("A", args.ab_rev), ("B", None)):
        context, page, info = _open_decoder_page(browser, url, photo, threads_on, rev)
        if not isinstance(info, dict):
            return {"threads_on": threads_on, "error": f"{name}: {info}"}
        pages[name] = {"context": context, "page": page, "info": info, "floor": [], "preview": [], "marks": []}
    rng = np.random.default_rng(args.seed + 1)
    for k in range(args.moves + args.warmup):
        point = tuple(rng.uniform(0.15, 0.85, 2))
        for name in ("A", "B") if k % 2 == 0 else ("B", "A"):
            p = pages[name]
            ms, marks = _one_move(p["page"], point)
            if k >= args.warmup:
                p["preview"].append(ms)
                if marks:
                    p["marks"].append(marks)
                p["floor"] += p["page"].evaluate(FLOOR_JS, 1)
            p["page"].wait_for_timeout(30)
    out = {"threads_on": threads_on, "ab_rev": args.ab_rev}
    for name, p in pages.items():
        p["context"].close()
        out[name] = {"threads": p["info"]["threads"], "floor p50": common.percentile(p["floor"], 50),
                     "floor p95": common.percentile(p["floor"], 95), "preview p50": common.percentile(p["preview"], 50),
                     "preview p95": common.percentile(p["preview"], 95),
                     "over floor p50": common.percentile(p["preview"], 50) - common.percentile(p["floor"], 50),
                     "overhead p50": _overhead_p50(stage_breakdown(p["marks"])),
                     "preview stages": stage_breakdown(p["marks"]), "floor": p["floor"], "preview": p["preview"],
                     "preview marks": p["marks"]}
    return out


def ab_report(result: dict[str, Any]) -> str:
    """The A/B table (A = the page's scripts at ``--ab-rev``, B = this checkout) and B's stage breakdown."""
    lines = [f"Machine: {result['machine']['cpu']}; load average {result.get('loadavg')}; CPU share used by others: "
             f"{result['foreign_cpu_share']:.2f}"]
    for s in result["ab"]:
        if "error" in s:
            lines.append(f"threads {'on' if s['threads_on'] else 'off'}: {s['error']}")
            continue
        rows = [{"page scripts": f"{name}: {s['ab_rev'] if name == 'A' else 'this checkout'}",
                 **{k: s[name][k] for k in ("floor p50", "floor p95", "preview p50", "preview p95", "over floor p50",
                                            "overhead p50")}}
                for name in ("A", "B")]
        lines += ["", f"A/B interleaved, threads {'on' if s['threads_on'] else 'off'} ({s['B']['threads']} thread(s)), "
                      f"pointer move -> preview painted (ms):",
                  common.table(rows, ("page scripts", "floor p50", "floor p95", "preview p50", "preview p95",
                                      "over floor p50", "overhead p50"), 1)]
        for name in ("A", "B"):
            if any(r["n"] for r in s[name]["preview stages"]):
                lines += ["", f"{name} by stage:", common.table(s[name]["preview stages"], ("stage", "n", "p10", "p50",
                                                                                            "p95", "mean"), 1)]
    return "\n".join(lines)


def _page_decoder_setting(browser, url: str, photo: Path, args, threads_on: bool) -> dict[str, Any]:
    """One page-decoder setting in a fresh context: floor, preview latency over ``args.moves`` moves, clicks."""
    context, page, info = _open_decoder_page(browser, url, photo, threads_on)
    if not isinstance(info, dict):
        context.close()
        return {"threads_on": threads_on, "error": str(info)}
    # The floor is measured interleaved with the moves (one bare run after each move's preview is painted), so
    # on a shared machine both see the same load; the rest of --floor-runs follow the moves.
    floor = []  # (the page's decoder was warmed up by _open_decoder_page)
    rng = np.random.default_rng(args.seed + 1)
    preview = []
    stages: list[dict[str, float]] = []
    for k in range(args.moves + args.warmup):
        box = _image_box(page)
        x, y = _click_point(box, rng)
        before = page.evaluate("() => [window.__bench.moves.length, window.__bench.previews.length]")
        page.mouse.move(x, y)
        _wait_preview(page, before[1])
        moved, shown = page.evaluate("(n) => [window.__bench.moves[window.__bench.moves.length - 1], "
                                     "window.__bench.previews[window.__bench.previews.length - 1]]", before[1])
        if k >= args.warmup:
            preview.append(shown["painted"] - moved)
            if shown.get("marks"):
                stages.append({**shown["marks"], "move": moved, "painted": shown["painted"]})
            if len(floor) < args.floor_runs:
                floor += page.evaluate(FLOOR_JS, 1)
        page.wait_for_timeout(30)
    if len(floor) < args.floor_runs:
        floor += page.evaluate(FLOOR_JS, args.floor_runs - len(floor))
    firsts = []
    for k in range(args.clicks + args.warmup):
        if k and k % CLICKS_PER_OBJECT == 0:
            before = page.evaluate("() => window.__bench.paints.length")
            page.locator("#clear_btn").click()
            _wait_paints(page, before, PAINT_TIMEOUT_MS)
        box = _image_box(page)
        x, y = _click_point(box, rng)
        n_prev = page.evaluate("() => window.__bench.previews.length")
        page.mouse.move(x, y)  # a hand hovers the point before it clicks: its preview is on screen
        _wait_preview(page, n_prev)
        page.wait_for_timeout(SETTLE_MS)
        paints, instants, clicks = page.evaluate("() => [window.__bench.paints.length, window.__bench.instants.length,"
                                                 " window.__bench.clicks.length]")
        page.mouse.click(x, y)
        _wait_paints(page, paints, PAINT_TIMEOUT_MS)
        clicked, scene, instant = page.evaluate(
            "([c, p, i]) => [window.__bench.clicks[c], window.__bench.paints[p], window.__bench.instants[i] || null]",
            [clicks, paints, instants])
        if k >= args.warmup:
            first = min(scene["painted"], instant["painted"] if instant else float("inf"))
            firsts.append({"first mask": first - clicked, "scene": scene["painted"] - clicked,
                           "instant": instant["painted"] - clicked if instant else None})
        page.wait_for_timeout(50)
    stats = page.evaluate(f"() => {LIVE}.stats")
    context.close()
    first = [f["first mask"] for f in firsts]
    return {"threads_on": threads_on, "threads": info["threads"], "isolated": info["isolated"],
            "floor": floor, "floor p50": common.percentile(floor, 50), "floor p95": common.percentile(floor, 95),
            "preview": preview, "preview p50": common.percentile(preview, 50),
            "preview p95": common.percentile(preview, 95), "preview stages": stage_breakdown(stages),
            "preview marks": stages, "clicks": firsts,
            "first mask p50": common.percentile(first, 50), "first mask p90": common.percentile(first, 90),
            "scene p50": common.percentile([f["scene"] for f in firsts], 50), "stats": stats}


OVERHEAD = ("move", "painted", "overhead: pointer event -> painted minus that decode's own session.run")


def stage_breakdown(marks: list[dict[str, float | None]]) -> list[dict[str, Any]]:
    """Per stage of :data:`STAGES`: p10 / p50 / p95 / mean duration (ms) over the moves that recorded both marks;
    the last row is the whole path minus each decode's own ``session.run`` (what the page adds to the floor,
    free of the run's own spread on a shared machine; p10 is the least disturbed by other processes)."""
    rows = []
    for start, end, what in (*STAGES, OVERHEAD):
        d = [m[end] - m[start] - ((m["ran"] - m["fed"]) if what is OVERHEAD[2] else 0) for m in marks
             if m.get(start) is not None and m.get(end) is not None
             and (what is not OVERHEAD[2] or (m.get("ran") is not None and m.get("fed") is not None))]
        rows.append({"stage": what, "from": start, "to": end, "n": len(d),
                     **{f"p{q}": common.percentile(d, q) if d else float("nan") for q in (10, 50, 95)},
                     "mean": float(np.mean(d)) if d else float("nan")})
    return rows


def _overhead_p50(stages: list[dict[str, Any]]) -> float:
    return next((r["p50"] for r in stages if r["stage"] == OVERHEAD[2]), float("nan"))


def _clicks(page, count: int, warmup: int, rng: np.random.Generator, received: Bytes) -> list[dict[str, float]]:
    samples = []
    done = 0
    while len(samples) < count:
        if done and done % CLICKS_PER_OBJECT == 0:
            before = page.evaluate("() => window.__bench.paints.length")
            page.locator("#clear_btn").click()
            _wait_paints(page, before, PAINT_TIMEOUT_MS)
            page.wait_for_timeout(100)
        box = _image_box(page)
        x, y = _click_point(box, rng)
        before = page.evaluate("() => window.__bench.paints.length")
        clicks_before = page.evaluate("() => window.__bench.clicks.length")
        page.wait_for_timeout(SETTLE_MS)  # what the last click still brings (thumbnails) is not this click's
        received.reset()
        page.mouse.click(x, y)
        paint = _wait_paints(page, before, PAINT_TIMEOUT_MS)
        page.wait_for_timeout(SETTLE_MS)  # the candidate thumbnails load after the picture is painted
        click_bytes = received.reset()
        clicked = page.evaluate("(n) => window.__bench.clicks[n]", clicks_before)
        network = page.evaluate(NETWORK_JS, {"since": clicked, "src": paint["src"]})
        status = page.locator("#status").inner_text()
        done += 1
        if done <= warmup:
            continue
        match = STATUS_TIMES.search(status)
        samples.append({"click to paint": paint["painted"] - clicked, "click to new src": paint["seen"] - clicked,
                        "src to paint": paint["painted"] - paint["seen"],
                        "image fetched": network["image_end"], "requests": network["requests"], "bytes": click_bytes,
                        "server decode": float(match.group(1)) if match else float("nan"),
                        "server render": float(match.group(2)) if match else float("nan")})
        page.wait_for_timeout(50)  # a user does not click within the same frame
    return samples


def report(result: dict[str, Any]) -> str:
    m = result["machine"]
    c = result["click to paint"]
    rows = [{"measure": "click to paint p50", "ms": c["p50"]}, {"measure": "click to paint p90", "ms": c["p90"]},
            {"measure": "click to paint min / max", "ms": f"{c['min']:.0f} / {c['max']:.0f}"},
            {"measure": "  click to new image src (median)", "ms": result["click to new src"]},
            {"measure": "  click to new image fetched (median)", "ms": result["image fetched"]},
            {"measure": "  new src to painted (median)", "ms": result["src to paint"]},
            {"measure": "  server decode (status line, median)", "ms": result["server decode"]},
            {"measure": "  server render (status line, median)", "ms": result["server render"]},
            {"measure": f"upload to ready ({result['photo_mp']:g} MP)", "ms": result["upload to ready ms"]},
            {"measure": "bytes per click (median, kB)", "ms": result["bytes"] / 1e3},
            {"measure": "bytes of the upload's answer (kB)", "ms": result["upload bytes"] / 1e3}]
    met = "met" if c["p50"] <= TARGET_P50_MS else "NOT met"
    lines = [
        f"Machine: {m['cpu']}, {m['affinity']} CPUs; Chromium headless on localhost; model {result['model_dir']}; "
        f"{len(result['samples'])} clicks; masks: {result['masks']}; CPU share used by processes other than this "
        f"script and the app server (Chromium included): {result['foreign_cpu_share']:.2f}",
        common.table(rows, ("measure", "ms"), 1), "",
        f"Target click-to-paint p50 <= {TARGET_P50_MS:.0f} ms: {met} ({c['p50']:.0f} ms)"]
    if result.get("settings"):
        lines += ["", page_decoder_report(result)]
    return "\n".join(lines)


def page_decoder_report(result: dict[str, Any]) -> str:
    """The page decoder's settings beside the server-only clicks, with the issue's targets."""
    server = result["click to paint"]["p50"]
    rows = [{"setting": "server only (previews off)", "first mask p50": server,
             "first mask p90": result["click to paint"]["p90"]}]
    verdicts = []
    for s in result["settings"]:
        name = f"page decoder, threads {'on' if s['threads_on'] else 'off'}"
        if "error" in s:
            rows.append({"setting": name, "floor p50": s["error"]})
            continue
        rows.append({"setting": f"{name} ({s['threads']} thread{'s' if s['threads'] > 1 else ''})",
                     "floor p50": s["floor p50"], "floor p95": s["floor p95"], "preview p50": s["preview p50"],
                     "preview p95": s["preview p95"], "overhead p50": _overhead_p50(s.get("preview stages", [])),
                     "first mask p50": s["first mask p50"],
                     "first mask p90": s["first mask p90"], "scene p50": s["scene p50"]})
        p50_ok = s["preview p50"] <= s["floor p50"] + PREVIEW_TARGET_OVER_FLOOR_MS
        p95_ok = s["preview p95"] <= PREVIEW_TARGET_P95_FLOORS * s["floor p50"]
        click_ok = s["first mask p50"] <= server
        verdicts.append(f"{name}: preview p50 <= floor + {PREVIEW_TARGET_OVER_FLOOR_MS:.0f} ms "
                        f"{'met' if p50_ok else 'NOT met'}; p95 <= {PREVIEW_TARGET_P95_FLOORS:g} x floor "
                        f"{'met' if p95_ok else 'NOT met'}; click first mask p50 <= server only "
                        f"{'met' if click_ok else 'NOT met'}")
    breakdowns = []
    for s in result["settings"]:
        if s.get("preview stages"):
            breakdowns += ["", f"pointer move -> preview painted by stage, threads {'on' if s['threads_on'] else 'off'}"
                           f" (floor p50 {s['floor p50']:.1f} ms, preview p50 {s['preview p50']:.1f} ms):",
                           common.table(s["preview stages"], ("stage", "n", "p10", "p50", "p95", "mean"), 1)]
    columns = ("setting", "floor p50", "floor p95", "preview p50", "preview p95", "overhead p50", "first mask p50",
               "first mask p90", "scene p50")
    return "\n".join([common.table(rows, columns, 1), *verdicts, *breakdowns])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", help=f"folder with encoder.onnx + decoder.onnx (default {common.STANDIN_DIR})")
    parser.add_argument("--clicks", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=2, help="clicks not counted at the start")
    parser.add_argument("--photo-mp", type=float, default=12.0)
    parser.add_argument("--photo-format", choices=("jpeg", "png"), default="jpeg")
    parser.add_argument("--photos", default=str(common.RESULTS / "photos"))
    parser.add_argument("--masks", choices=("blobs", "model"), default="blobs",
                        help="blobs: object-like masks instead of the stand-in's noise (bench/serve_app.py)")
    parser.add_argument("--gallery-format", choices=("webp", "jpeg", "png"),
                        help="what-if: candidate thumbnails in this format instead of the app's")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="before starting, wait up to this long for other processes to go quiet")
    parser.add_argument("--page-decoder", action="store_true",
                        help="also measure the page's own decoder (floor, previews, clicks; threads on and off)")
    parser.add_argument("--moves", type=int, default=50, help="pointer moves per page-decoder setting")
    parser.add_argument("--ab-rev", metavar="REV",
                        help="A/B instead: previews only, pages with the page's scripts of git revision REV (A) and "
                             "of this checkout (B), moves interleaved (e.g. --ab-rev main)")
    parser.add_argument("--threads", choices=("both", "on", "off"), default="both",
                        help="page-decoder thread settings to measure (on: cross-origin isolated; off: one thread)")
    parser.add_argument("--floor-runs", type=int, default=30, help="bare decoder runs per page-decoder setting")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chromium", default=CHROMIUM)
    parser.add_argument("--app-args", nargs=argparse.REMAINDER, default=[],
                        help="extra arguments for app.py (last on the command line)")
    parser.add_argument("--json", help="write the results here (default bench/results/browser-<time>.json)")
    args = parser.parse_args(argv)
    result = run(args)
    if args.ab_rev:
        return common.finish(result, args.json, "browser-ab", ab_report)
    return common.finish(result, args.json, "browser", report)


if __name__ == "__main__":
    sys.exit(main())
