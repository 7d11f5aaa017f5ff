"""The page's own decoder in headless Chromium: its floor, its speed, its parity with the server, its bytes.

Serves the app in this process on a model folder (default: the full-size stand-in, ``$SAM_STANDIN_DIR``) with
the page decoder on, opens a 12 MP photo on the server, and in Chromium, for threads on (the page is
cross-origin isolated, as the app serves it) and threads off (the same page with COOP/COEP removed, so
onnxruntime-web runs one thread):

* **floor**: bare ``session.run`` of the page's decoder copy on one prompt in the page's worker (no feeds
  building, no mask), ``--runs`` times after 3 warm-up runs: what no page-side code can beat;
* **decode to mask**: a whole page decode (feeds, run, best-of-3, the mask at display size) for the issue's
  30 parity prompts (20 points, 5 include+exclude layouts, 5 boxes);
* **parity**: each of those masks against the server's at display size (worst IoU, largest score
  difference);
* **bytes**: the embeddings fetched for the image (and again after a reload: 0 from Cache Storage), the
  decoder copy and onnxruntime-web.

Not a test; prints a table and writes JSON. ``bench/bench_browser.py`` measures the user-visible latencies
(pointer move to preview painted, click to first mask) on top of this.

    python -m bench.bench_page_decoder                       # stand-in, 12 MP, 30 runs
    python -m bench.bench_page_decoder --model-dir DIR --runs 50
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import common
from sam_onnx import Prompts
from tools import page_decoder_driver as driver
from tools.ports import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-renderer-backgrounding",
                 "--disable-background-timer-throttling", "--disable-backgrounding-occluded-windows"]
WARMUP_RUNS = 3
ISOLATION_HEADERS = ("cross-origin-opener-policy", "cross-origin-embedder-policy")
FLOOR_JS = """async ({ key, prompts, originalHW, runs }) =>
  window.__samDecoder.floor({ key, prompts, originalHW }, runs)"""
CACHE_BYTES_JS = """async () => { const c = await caches.open('sam2-embeddings-v1');
  let n = 0; for (const r of await c.keys()) n += (await (await c.match(r)).arrayBuffer()).byteLength; return n; }"""


class SentBytes:
    """ASGI middleware: body bytes the server sent per path under /sam-page/ (what the browser really fetched,
    cache hits excluded)."""

    def __init__(self, app, sent: dict[str, int]) -> None:
        self.app = app
        self.sent = sent

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith("/sam-page/"):
            await self.app(scope, receive, send)
            return

        async def counting(message):
            if message["type"] == "http.response.body":
                self.sent[path] = self.sent.get(path, 0) + len(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, counting)


def serve(folder: Path, cache_dir: Path, sent: dict[str, int]):
    """The app (as ``app.main`` wires it, page decoder on) in this process; returns (url, service, demo)."""
    import app
    from starlette.middleware import Middleware

    from sam_demo import page_decoder
    from sam_demo.service import SegmentationService
    from sam_onnx import Sam2Predictor

    predictor = Sam2Predictor.from_files(folder / "encoder.onnx", folder / "decoder.onnx")
    service = SegmentationService(predictor, page_decoder=page_decoder.prepare(predictor, cache_dir))
    demo = app.build_demo(service)
    kwargs = app.launch_kwargs("127.0.0.1", free_port(), routes=app.app_routes(service))
    kwargs["app_kwargs"]["middleware"].append(Middleware(SentBytes, sent=sent))
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, **kwargs)
    return url, service, demo


def _strip_isolation(route) -> None:
    response = route.fetch()
    headers = {k: v for k, v in response.headers.items() if k.lower() not in ISOLATION_HEADERS}
    route.fulfill(response=response, headers=headers)


def measure(browser, url: str, service, record, token: str, threads_on: bool, runs: int,
            sent: dict[str, int]) -> dict[str, Any]:
    """One thread setting in a fresh browser context (empty HTTP cache and Cache Storage)."""
    assets = service.page_decoder
    context = browser.new_context()
    page = context.new_page()
    if not threads_on:
        page.route(url, _strip_isolation)
    sent.clear()
    page.goto(url)
    started = time.perf_counter()
    info = driver.start(page, assets.page_config())
    urls = assets.embeddings_urls(record.key, token)
    load = driver.load_image(page, record.key, urls)
    ready_s = time.perf_counter() - started
    prompt = {"points": [[record.original_hw[1] / 3, record.original_hw[0] / 2, 1]], "box": None}
    floor = page.evaluate(FLOOR_JS, {"key": record.key, "prompts": prompt, "originalHW": list(record.original_hw),
                                     "runs": runs + WARMUP_RUNS})[WARMUP_RUNS:]
    prompts = driver.parity_prompts(record.original_hw)
    display_hw = record.frame.display_hw
    results = driver.decode(page, record.key, record.original_hw, display_hw, prompts)
    embedding = service.cached_image(record).embedding
    worst_iou, worst_score = 1.0, 0.0
    for prompt_dict, result in zip(prompts, results):
        server = service.predictor.decode(embedding, Prompts.from_dict(prompt_dict))
        expected = server.mask(server.best_index, hw=display_hw)
        worst_iou = min(worst_iou, driver.iou(driver.page_mask(result, display_hw), expected))
        worst_score = max(worst_score, float(np.abs(np.asarray(result["scores"]) - server.scores).max()))
    whole = [r["ms"]["run"] + r["ms"]["post"] for r in results]
    post = [r["ms"]["post"] for r in results]
    # A reload: a new page in the same browser fetches neither onnxruntime-web, the decoder nor the embeddings.
    before = dict(sent)
    page.reload()
    driver.start(page, assets.page_config())
    again = driver.load_image(page, record.key, urls)
    refetched = {u: n - before.get(u, 0) for u, n in sent.items() if n != before.get(u, 0)}
    context.close()
    sizes = {kind: sum(n for u, n in before.items() if u.startswith(f"/sam-page/{kind}"))
             for kind in ("ort", "decoder")}
    return {"threads_on": threads_on, "threads": info["threads"], "isolated": info["isolated"],
            "start to ready s": ready_s, "floor ms": floor, "floor p50": common.percentile(floor, 50),
            "floor p95": common.percentile(floor, 95), "decode to mask p50": common.percentile(whole, 50),
            "decode to mask p95": common.percentile(whole, 95), "mask post p50": common.percentile(post, 50),
            "worst IoU": worst_iou, "worst score diff": worst_score, "embedding bytes": load["bytesFetched"],
            "embedding bytes after reload": again["bytesFetched"], "ort bytes": sizes["ort"],
            "decoder bytes": sizes["decoder"], "refetched after reload": refetched}


def run(args) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    folder = common.model_dir(args.model_dir)
    photo = common.photo_file(args.photo_mp, "jpeg", Path(args.photos))
    foreign = common.ForeignLoad(children=True)
    result: dict[str, Any] = {"machine": common.machine_info(), "model_dir": str(folder), "photo": str(photo),
                              "runs": args.runs}
    with tempfile.TemporaryDirectory(prefix="bench-page-decoder-") as tmp:
        sent: dict[str, int] = {}
        url, service, demo = serve(folder, Path(tmp), sent)
        try:
            record, _ = service.open_image(photo)
            token = service.grants.issue("bench-tab", record.key)
            result["original_hw"], result["display_hw"] = record.original_hw, record.frame.display_hw
            common.wait_for_quiet(timeout_s=args.wait_quiet)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
                result["settings"] = [measure(browser, url, service, record, token, on, args.runs, sent)
                                      for on in (True, False)]
                browser.close()
        finally:
            demo.close()
    result["foreign_cpu_share"] = foreign.share()
    return result


def report(result: dict[str, Any]) -> str:
    m = result["machine"]
    rows = [{"setting": "threads on (isolated)" if s["threads_on"] else "threads off (not isolated)",
             "threads": s["threads"], "floor p50": s["floor p50"], "floor p95": s["floor p95"],
             "decode to mask p50": s["decode to mask p50"], "decode to mask p95": s["decode to mask p95"],
             "worst IoU": f"{s['worst IoU']:.4f}", "score diff": f"{s['worst score diff']:.1e}",
             "embeddings MB": s["embedding bytes"] / 1e6, "after reload": s["embedding bytes after reload"]}
            for s in result["settings"]]
    first = result["settings"][0]
    return "\n".join([
        f"Machine: {m['cpu']}, {m['affinity']} CPUs; Chromium headless; model {result['model_dir']}; photo "
        f"{result['original_hw']} shown at {result['display_hw']}; {result['runs']} floor runs; CPU share of "
        f"other processes: {result['foreign_cpu_share']:.2f}",
        common.table(rows, ("setting", "threads", "floor p50", "floor p95", "decode to mask p50",
                            "decode to mask p95", "worst IoU", "score diff", "embeddings MB", "after reload"), 1),
        f"once per browser: onnxruntime-web {first['ort bytes'] / 1e6:.2f} MB on the wire, decoder "
        f"{first['decoder bytes'] / 1e6:.1f} MB; fetched again after a reload: "
        f"{first['refetched after reload'] or 'nothing'}"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", help=f"encoder.onnx + decoder.onnx (default {common.STANDIN_DIR})")
    parser.add_argument("--runs", type=int, default=30, help="floor runs per thread setting")
    parser.add_argument("--photo-mp", type=float, default=12.0)
    parser.add_argument("--photos", default=str(common.RESULTS / "photos"))
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--chromium", default=CHROMIUM)
    parser.add_argument("--json", help="write the results here (default bench/results/page-decoder-<time>.json)")
    args = parser.parse_args(argv)
    return common.finish(run(args), args.json, "page-decoder", report)


if __name__ == "__main__":
    sys.exit(main())
