"""The page's own decoder (onnxruntime-web in a Web Worker) against the server's: same masks, same scores.

* On the reduced real-architecture model (tests/fixtures/sam2_tiny, which has the onnxruntime Concat quirk):
  for 20 hovered points, 5 include+exclude layouts and 5 boxes, the page's mask at display resolution equals
  the server's (worst IoU >= 0.995) and the predicted IoU scores agree within 1e-3 (slow tier: ~1 min).
* On the analytic models the page's mask is the exact closed-form mask (``pipeline_mask``), pixel for pixel
  at display resolution, for a wide picture shown at full size, a 4000x3000 photo shown downscaled, and a
  picture with a "blue screen" region (a swapped channel or level in the embedding payload shows there).
* The pure modules (feeds.js, masks.js) give the server's feeds and masks bit for bit on random inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sam_onnx import Prompts
from sam_onnx.geometry import Geometry
from sam_onnx.postprocess import mask_crop_from_logits
from sam_onnx.prompts import encode_prompts
from tests import analytic_models as am
from tools import page_decoder_driver as decoder_page
from tests.browser.conftest import BIG_HW, WIDE_HW
from tests.browser.pixels import gradient_rgb

pytestmark = pytest.mark.browser

WORST_IOU = 0.995
SCORE_TOLERANCE = 1e-3
KEY_MARGIN_FP16 = 1e-2
"""Key cells (analytic models) must lie this far from the key tolerance so the page's float16 embeddings put
them on the same side (float16 rounds the normalised channel averages by at most ~1e-3)."""


def _serve_with_page_decoder(predictor, tmp_path_factory):
    """The demo app as ``app.main`` wires it, with the page decoder on; yields (url, service)."""
    import app
    from sam_demo import page_decoder
    from sam_demo.service import SegmentationService
    from tools.ports import free_port

    service = SegmentationService(predictor, image_cache_mb=128,
                                  page_decoder=page_decoder.prepare(predictor, tmp_path_factory.mktemp("cache")))
    demo = app.build_demo(service)
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True,
                            **app.launch_kwargs("127.0.0.1", free_port(), routes=app.app_routes(service)))
    try:
        yield {"url": url, "service": service, "assets": service.page_decoder}
    finally:
        demo.close()


@pytest.fixture(scope="module")
def fixture_server(tmp_path_factory):
    from sam_onnx import Sam2Predictor
    from tests.test_reference_fixture import FIXTURE

    predictor = Sam2Predictor.from_files(FIXTURE / "encoder.onnx", FIXTURE / "decoder.onnx", threads=1)
    yield from _serve_with_page_decoder(predictor, tmp_path_factory)


@pytest.fixture(scope="module")
def analytic_server(predictor, tmp_path_factory):
    yield from _serve_with_page_decoder(predictor, tmp_path_factory)


def _page(browser, server):
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    page.goto(server["url"])
    info = decoder_page.start(page, server["assets"].page_config())
    return context, page, info


def _open(server, page, path):
    """Open an image on the server, grant this test page access to it, load its embeddings into the page."""
    record, _ = server["service"].open_image(path)
    token = server["service"].grants.issue("test-tab", record.key)
    decoder_page.load_image(page, record.key, server["assets"].embeddings_urls(record.key, token))
    return record


@pytest.fixture(scope="module")
def fixture_page(browser, fixture_server):
    context, page, info = _page(browser, fixture_server)
    yield page, info
    context.close()


@pytest.fixture(scope="module")
def analytic_page(browser, analytic_server):
    context, page, info = _page(browser, analytic_server)
    yield page, info
    context.close()


def test_the_page_runs_multithreaded_when_isolated(analytic_page):
    _, info = analytic_page  # the app's headers and the browser decide it, not the model
    assert info["isolated"] is True
    assert info["threads"] >= 1


# Slow tier (README, Tests): 30 prompts decoded by the page and the server on the reduced real-architecture model,
# ~35-45 s plus ~15 s to start that model's server and page decoder; the default run keeps the analytic models'
# pixel-exact parity below and the bit-for-bit feeds and masks checks.
@pytest.mark.slow
def test_page_masks_equal_the_servers_on_the_real_architecture(fixture_server, fixture_page, tmp_path):
    page, _ = fixture_page
    path = tmp_path / "photo.png"
    Image.fromarray(gradient_rgb(1200, 1600, seed=5)).save(path)  # shown downscaled (1536 x 1152)
    record = _open(fixture_server, page, path)
    display_hw = record.frame.display_hw
    prompts = decoder_page.parity_prompts(record.original_hw)
    results = decoder_page.decode(page, record.key, record.original_hw, display_hw, prompts)
    embedding = fixture_server["service"].cached_image(record).embedding
    worst, worst_score, exact = 1.0, 0.0, 0
    for prompt, result in zip(prompts, results):
        server = fixture_server["service"].predictor.decode(embedding, Prompts.from_dict(prompt))
        expected = server.mask(server.best_index, hw=display_hw)
        got = decoder_page.page_mask(result, display_hw)
        worst = min(worst, decoder_page.iou(got, expected))
        worst_score = max(worst_score, float(np.abs(np.asarray(result["scores"]) - server.scores).max()))
        exact += int(np.array_equal(got, expected))
        assert result["best"] == server.best_index or abs(server.scores[result["best"]] - server.scores.max()) < \
            SCORE_TOLERANCE
    print(f"fixture parity: worst IoU {worst:.5f}, worst score difference {worst_score:.2e}, "
          f"{exact} of {len(prompts)} masks identical")
    assert worst >= WORST_IOU
    assert worst_score <= SCORE_TOLERANCE


def _blue_screen_picture() -> np.ndarray:
    """640 x 512 with a pure blue block whose edges fall on low-res cell borders (model x 256..768)."""
    rgb = gradient_rgb(512, 640, seed=7)
    rgb[128:384, 160:480] = am.KEY_RGB
    return rgb


@pytest.mark.parametrize("picture", ["wide", "big", "blue screen"])
def test_page_masks_are_the_closed_form_masks_on_the_analytic_models(analytic_server, analytic_page, tmp_path,
                                                                     picture):
    page, _ = analytic_page
    rgb = {"wide": lambda: gradient_rgb(*WIDE_HW), "big": lambda: gradient_rgb(*BIG_HW, seed=2),
           "blue screen": _blue_screen_picture}[picture]()
    path = tmp_path / f"{picture}.png"
    Image.fromarray(rgb).save(path)
    record = _open(analytic_server, page, path)
    h, w = record.original_hw
    display_hw = record.frame.display_hw
    emb0 = am.reference_encoder(am.reference_pixel_values(rgb).astype(np.float32))[0]
    distance = am.key_distance(emb0.astype(np.float16))[0]
    assert np.abs(distance - am.KEY_TOLERANCE).min() > KEY_MARGIN_FP16, "test picture: ambiguous key cells"
    key = am.key_cells(rgb, check_margin=False)
    assert key.any() == (picture == "blue screen")
    prompts = [{"points": [[w * 0.3, h * 0.4, 1]], "box": None},
               {"points": [[w * 0.5, h * 0.5, 1], [w * 0.55, h * 0.45, 0]], "box": None},
               {"points": [], "box": [w * 0.8, h * 0.9, w * 0.2, h * 0.15]},
               {"points": [[w * 0.5, h * 0.6, 1]], "box": [w * 0.1, h * 0.2, w * 0.7, h * 0.8]},
               {"points": [[w * 0.6, h * 0.3, 0]], "box": None}]
    results = decoder_page.decode(page, record.key, record.original_hw, display_hw, prompts)
    for prompt, result in zip(prompts, results):
        points = np.array([p[:2] for p in prompt["points"]]).reshape(-1, 2)
        labels = [p[2] for p in prompt["points"]]
        box = sorted_box(prompt["box"])
        candidate = 1 if 1 in labels else 0  # the analytic scores' argmax (IOU_WITH/WITHOUT_POSITIVE)
        assert result["best"] == candidate
        exact, unsure = am.pipeline_mask(points, labels, box, (h, w), candidate, key=key, out_hw=display_hw)
        got = decoder_page.page_mask(result, display_hw)
        wrong = (got != exact) & ~unsure
        assert exact[~unsure].any() or not got.any()
        assert not wrong.any(), f"{prompt}: {int(wrong.sum())} pixels differ from the closed-form mask"


def sorted_box(box):
    if box is None:
        return None
    x0, y0, x1, y1 = box
    return [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]


# ---------------------------------------------------------------------------- the pure modules, bit for bit
FEEDS_JS = """async ({ cases }) => {
  const { decoderFeeds } = await import('/sam-page/js/feeds.js');
  return cases.map(({ prompts, hw }) => {
    const f = decoderFeeds(prompts, hw);
    return { points: Array.from(f.input_points.data), pointsDims: f.input_points.dims,
             labels: Array.from(f.input_labels.data, Number), labelsDims: f.input_labels.dims,
             boxes: Array.from(f.input_boxes.data), boxesDims: f.input_boxes.dims };
  });
}"""


def test_feeds_js_builds_the_servers_feeds_bit_for_bit(analytic_page):
    page, _ = analytic_page
    rng = np.random.default_rng(11)
    cases = []
    for _ in range(60):
        h, w = (int(v) for v in rng.integers(1, 9000, 2))
        n = int(rng.integers(0, 5))
        points = [[float(rng.uniform(0, w)) if rng.uniform() < 0.8 else float(rng.integers(0, w)),
                   float(rng.uniform(0, h)), int(rng.integers(0, 2))] for _ in range(n)]
        box = None
        if n == 0 or rng.uniform() < 0.4:
            xs, ys = rng.uniform(0, w, 2), rng.uniform(0, h, 2)
            box = [float(xs[0]), float(ys[0]), float(xs[1]), float(ys[1])]
        cases.append({"prompts": {"points": points, "box": box}, "hw": [h, w]})
    got = page.evaluate(FEEDS_JS, {"cases": cases})
    for case, js in zip(cases, got):
        (batch,) = encode_prompts([Prompts.from_dict(case["prompts"])], Geometry(tuple(case["hw"])))
        feeds = batch.feeds
        assert js["pointsDims"] == list(feeds["input_points"].shape)
        assert np.array_equal(np.asarray(js["points"], np.float32), feeds["input_points"].ravel())
        assert js["labels"] == feeds["input_labels"].ravel().tolist()
        assert js["labelsDims"] == list(feeds["input_labels"].shape)
        assert js["boxesDims"] == list(feeds["input_boxes"].shape)
        assert np.array_equal(np.asarray(js["boxes"], np.float32), feeds["input_boxes"].ravel())


MASKS_JS = """async ({ cases }) => {
  const { maskCrop, bestIndex } = await import('/sam-page/js/masks.js');
  return cases.map(({ logits, outHW, scores }) => {
    const c = maskCrop(Float32Array.from(logits), 256, 256, outHW);
    return { row0: c.row0, col0: c.col0, height: c.height, width: c.width, bits: Array.from(c.bits),
             best: bestIndex(scores) };
  });
}"""


def test_masks_js_is_the_servers_upsampling_bit_for_bit(analytic_page):
    page, _ = analytic_page
    rng = np.random.default_rng(12)
    cases = []
    for out_hw, spread in (((150, 240), 3.0), ((300, 41), 0.5), ((1152, 1536), 0.02), ((97, 1031), 1.0),
                           ((256, 256), 2.0)):
        yy, xx = np.mgrid[0:256, 0:256]
        blob = 30.0 - np.hypot(yy - rng.uniform(40, 200), xx - rng.uniform(40, 200))
        logits = (blob + rng.normal(0, spread, (256, 256))).astype(np.float32)
        scores = [float(v) for v in rng.choice([0.5, 0.7, 0.7], 3, replace=False)]
        cases.append({"logits": logits.ravel().tolist(), "outHW": list(out_hw), "scores": scores})
    cases.append({"logits": [-1.0] * 65536, "outHW": [10, 10], "scores": [0.1, 0.1, 0.1]})
    got = page.evaluate(MASKS_JS, {"cases": cases})
    for case, js in zip(cases, got):
        logits = np.asarray(case["logits"], np.float32).reshape(256, 256)
        crop, (row0, col0) = mask_crop_from_logits(logits, tuple(case["outHW"]))
        assert (js["row0"], js["col0"], js["height"], js["width"]) == (row0, col0, *crop.shape)
        assert np.array_equal(np.asarray(js["bits"], bool).reshape(crop.shape), crop)
        assert js["best"] == int(np.argmax(case["scores"]))


MASKS_FULL_JS = """async ({ cases }) => {
  const { maskCrop } = await import('/sam-page/js/masks.js');
  return cases.map(({ logits, outHW }) => {
    const c = maskCrop(Float32Array.from(logits), 256, 256, outHW);
    const p = maskCrop(Float32Array.from(logits), 256, 256, outHW, 0x80ff00ff);
    return { row0: c.row0, col0: c.col0, height: c.height, width: c.width, bits: Array.from(c.bits), area: c.area,
             painted: Array.from(p.pixels, (v) => (v === 0x80ff00ff ? 1 : v === 0 ? 0 : -1)), paintedArea: p.area };
  });
}"""


def test_masks_js_shortcuts_are_exact_on_extreme_logits(analytic_page):
    """masks.js skips the float32 interpolation between two cells of the same sign; on logits built to break that
    (huge next to tiny or subnormal values, +-inf, NaN, -0, weights close to 1) its mask is still the server's
    full upsampled mask (``mask_from_logits``) bit for bit, and the painted variant has the same pixels."""
    from sam_onnx.postprocess import mask_from_logits

    page, _ = analytic_page
    rng = np.random.default_rng(13)
    specials = np.array([3e38, -3e38, 1e-38, -1e-38, 1e-45, -1e-45, 0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0,
                         1e-7, 65504.0], np.float32)
    cases = []
    for out_hw in ((97, 1031), (300, 500), (255, 257), (4095, 33)):
        logits = rng.choice(specials, (256, 256)).astype(np.float32)
        logits[:64] = np.abs(logits[:64])  # a band of positives only: the shortcut "both > 0" at every weight
        cases.append({"logits": logits.ravel().tolist(), "outHW": list(out_hw)})
    got = page.evaluate(MASKS_FULL_JS, {"cases": cases})
    for case, js in zip(cases, got):
        logits = np.asarray(case["logits"], np.float32).reshape(256, 256)
        with np.errstate(invalid="ignore", over="ignore"):
            full = mask_from_logits(logits, tuple(case["outHW"]))
        mine = np.zeros_like(full)
        r0, c0, h, w = js["row0"], js["col0"], js["height"], js["width"]
        mine[r0:r0 + h, c0:c0 + w] = np.asarray(js["bits"], bool).reshape(h, w)
        assert np.array_equal(mine, full), f"{case['outHW']}: {int((mine != full).sum())} pixels differ"
        assert js["painted"] == js["bits"] and js["paintedArea"] == js["area"] == int(full.sum())


# ---------------------------------------------------------------------------- cross-origin isolation
def test_the_app_is_cross_origin_isolated_and_gradio_still_loads_its_theme(browser, analytic_server):
    """COOP/COEP (require-corp) must not cost Gradio anything: every file the page loads is the app's own,
    none is blocked, and the theme's font (served by Gradio itself) is in use."""
    context = browser.new_context()
    page = context.new_page()
    requests, problems = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("requestfailed", lambda r: problems.append(f"{r.url}: {r.failure}"))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    try:
        page.goto(analytic_server["url"])
        page.wait_for_selector("#display")
        state = page.evaluate("""async () => { await document.fonts.ready;
            return { isolated: self.crossOriginIsolated, shared: typeof SharedArrayBuffer === 'function',
                     font: getComputedStyle(document.querySelector('.gradio-container')).fontFamily,
                     loaded: [...document.fonts].filter((f) => f.status === 'loaded').map((f) => f.family) }; }""")
    finally:
        context.close()
    origin = analytic_server["url"].rstrip("/")
    foreign = [u for u in requests if not u.startswith((origin, "data:", "blob:"))]
    assert state["isolated"] and state["shared"]
    assert not foreign, f"cross-origin requests (blocked under require-corp): {foreign}"
    assert not problems, problems
    assert "Montserrat" in state["font"] and any("Montserrat" in f for f in state["loaded"]), state


BITMAP_JS = """async ({ key, originalHW, outHW, prompts, colour }) => {
  const plain = await window.__samDecoder.decode({ key, prompts, originalHW, outHW });
  const painted = await window.__samDecoder.decode({ key, prompts, originalHW, outHW, colour });
  const c = painted.crop;
  const canvas = new OffscreenCanvas(c.bitmap.width, c.bitmap.height);
  const g = canvas.getContext('2d');
  g.drawImage(c.bitmap, 0, 0);
  const rgba = g.getImageData(0, 0, canvas.width, canvas.height).data;
  let wrong = 0, inside = 0;
  for (let i = 0; i < plain.crop.bits.length; i++) {
    const on = rgba[4 * i + 3] === 255 && rgba[4 * i] === 0xe6 && rgba[4 * i + 1] === 0x9f && rgba[4 * i + 2] === 0x00;
    const off = rgba[4 * i + 3] === 0;
    if (plain.crop.bits[i] ? !on : !off) wrong += 1;
    inside += plain.crop.bits[i];
  }
  return { wrong, inside, same: c.row0 === plain.crop.row0 && c.col0 === plain.crop.col0 &&
           c.width === plain.crop.width && c.height === plain.crop.height && !('bits' in c) };
}"""


def test_a_painted_mask_is_the_mask_in_the_objects_colour(analytic_server, analytic_page, tmp_path):
    """Previews come back as ImageBitmaps made in the worker: exactly the mask's pixels, in the object's colour."""
    page, _ = analytic_page
    path = tmp_path / "wide.png"
    Image.fromarray(gradient_rgb(*WIDE_HW)).save(path)
    record = _open(analytic_server, page, path)
    h, w = record.original_hw
    got = page.evaluate(BITMAP_JS, {"key": record.key, "originalHW": [h, w], "outHW": list(record.frame.display_hw),
                                    "prompts": {"points": [[w / 2, h / 2, 1]], "box": None}, "colour": "#e69f00"})
    assert got["same"] and got["inside"] > 0 and got["wrong"] == 0


# ---------------------------------------------------------------------------- the live preview's logic
# preview.js on a stand-in view (the plugin API of sam_demo/static/view/main.js: on/emit, setOverlay, scene,
# latest, options, element), with the page decoder the test page already started. The real view's tests are in
# tests/browser/test_live_preview.py.
OUT_OF_MEMORY_REASON = "RangeError: Array buffer allocation failed"
OUT_OF_MEMORY_JS = f"""
// A PageDecoder (client.js) on a stand-in worker that holds every image but answers every decode as the
// worker does when the page runs out of memory (worker.js: kind 'memory').
function outOfMemoryDecoder(PageDecoder) {{
  const worker = {{ terminated: false, onmessage: null, onerror: null, terminate() {{ this.terminated = true; }},
    postMessage(m) {{ setTimeout(() => worker.onmessage({{ data: m.type === 'image' ? {{ type: 'image', key: m.key }}
      : {{ type: 'error', id: m.id, kind: 'memory', reason: '{OUT_OF_MEMORY_REASON}' }} }}), 5); }} }};
  window.__oomWorker = worker;
  return new PageDecoder(worker, {{ threads: 1, isolated: false }});
}}"""
FAKE_VIEW_JS = """async ({ scene, mode, fail, storageKey }) => {""" + OUT_OF_MEMORY_JS + """
  const root = window.__samRoot;
  const { LivePreview } = await import(new URL('sam-page/js/preview.js', root).href);
  const { DecoderUnavailable, PageDecoder } = await import(new URL('sam-page/js/client.js', root).href);
  const listeners = new Map();
  const view = {
    scene, latest: scene, element: document.createElement('div'), overlays: new Map(), log: [],
    on(n, cb) { if (!listeners.has(n)) listeners.set(n, new Set()); listeners.get(n).add(cb);
                return () => listeners.get(n).delete(cb); },
    emit(n, d) { for (const cb of listeners.get(n) || []) cb(d); },
    setOverlay(name, bitmap, rect, opacity) {
      if (bitmap) view.overlays.set(name, { bitmap, rect, opacity }); else view.overlays.delete(name);
      view.log.push([name, !!bitmap]);
    },
    options() { return { opacity: 0.5 }; },
  };
  const store = new Map();
  const storage = { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, v) };
  window.__notices = [];
  window.__mode = mode;
  const start = fail === 'oom' ? () => Promise.resolve(outOfMemoryDecoder(PageDecoder))
              : fail ? () => Promise.reject(new DecoderUnavailable(fail))
              : () => Promise.resolve(window.__samDecoder);
  const preview = new LivePreview(view, { enabled: true },
    { notice: (t) => window.__notices.push(t), startDecoder: start, mode: () => window.__mode, storage });
  window.__view = view;
  window.__preview = preview;
  window.__storage = storage;
  if (!fail) await preview.image.ready;
  return true;
}"""
IDLE_JS = """async () => { const p = window.__preview;
  for (let i = 0; i < 400 && (p.decoder?.busy || p.asked && !p.asked.result); i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  return { stats: p.stats, overlays: [...window.__view.overlays.keys()],
           shown: p.shown && { x: p.shown.x, y: p.shown.y, prompts: p.shown.prompts } }; }"""
OVERLAY_JS = """async (name) => { const o = window.__view.overlays.get(name); if (!o) return null;
  const c = new OffscreenCanvas(o.bitmap.width, o.bitmap.height); const g = c.getContext('2d');
  g.drawImage(o.bitmap, 0, 0); const px = g.getImageData(0, 0, c.width, c.height).data;
  const alpha = new Array(c.width * c.height); for (let i = 0; i < alpha.length; i++) alpha[i] = px[4 * i + 3] ? 1 : 0;
  return { rect: o.rect, opacity: o.opacity, width: c.width, height: c.height, alpha,
           rgb: [px[4 * alpha.indexOf(1)], px[4 * alpha.indexOf(1) + 1], px[4 * alpha.indexOf(1) + 2]] }; }"""


def _scene(record, token, assets, points=(), box=None, pending=None):
    h, w = record.original_hw
    dh, dw = record.frame.display_hw
    urls = {k: f"{{root}}{v}" for k, v in assets.embeddings_urls(record.key, token).items()}
    return {"image": {"w": w, "h": h, "dw": dw, "dh": dh, "embeddings": {"key": record.key, **urls}},
            "objects": [{"id": 1, "color": "#e69f00", "points": [list(p) for p in points], "box": box}],
            "selected": 1, "pending": pending}


@pytest.fixture
def fake_view(analytic_server, analytic_page, tmp_path):
    """A LivePreview on a stand-in view over a wide picture; returns (page, record, start(scene, ...))."""
    page, _ = analytic_page
    path = tmp_path / "wide.png"
    Image.fromarray(gradient_rgb(*WIDE_HW)).save(path)
    record = _open(analytic_server, page, path)
    token = analytic_server["service"].grants.issue("test-tab", record.key)

    def start(mode="include", fail=None, **prompts):
        scene = _scene(record, token, analytic_server["assets"], **prompts)
        root = page.evaluate("window.__samRoot")
        for k in ("url", "cacheUrl"):
            scene["image"]["embeddings"][k] = scene["image"]["embeddings"][k].replace("{root}", root)
        page.evaluate(FAKE_VIEW_JS, {"scene": scene, "mode": mode, "fail": fail, "storageKey": "x"})
        return scene

    yield page, record, start
    page.evaluate("window.__preview && window.__preview.destroy()")


def _overlay_mask(overlay, record) -> np.ndarray:
    """The display-size mask an overlay shows: its bitmap placed at its rect (edge frame of original pixels)."""
    h, w = record.original_hw
    dh, dw = record.frame.display_hw
    mask = np.zeros((dh, dw), bool)
    x0, y0 = round(overlay["rect"][0] * dw / w), round(overlay["rect"][1] * dh / h)
    bits = np.asarray(overlay["alpha"], bool).reshape(overlay["height"], overlay["width"])
    mask[y0:y0 + overlay["height"], x0:x0 + overlay["width"]] = bits
    return mask


def test_a_hover_previews_the_closed_form_mask_of_the_prompts_plus_the_hovered_point(fake_view):
    page, record, start = fake_view
    h, w = record.original_hw
    start(points=[(w * 0.3, h * 0.3, 1)])
    x, y = int(w * 0.6), int(h * 0.55)
    page.evaluate("([x, y]) => window.__view.emit('hover', {x, y})", [x, y])
    state = page.evaluate(IDLE_JS)
    assert state["overlays"] == ["sam-preview"]
    overlay = page.evaluate(OVERLAY_JS, "sam-preview")
    assert overlay["opacity"] < 0.5 and overlay["rgb"] == [0xe6, 0x9f, 0x00]  # lightly, in the object's colour
    exact, unsure = am.pipeline_mask([[w * 0.3, h * 0.3], [x, y]], [1, 1], None, (h, w), 1,
                                     out_hw=record.frame.display_hw)
    wrong = (_overlay_mask(overlay, record) != exact) & ~unsure
    assert exact.any() and not wrong.any()


@pytest.mark.parametrize("mode", ["exclude", "box"])
def test_exclude_and_box_previews(fake_view, mode):
    page, record, start = fake_view
    h, w = record.original_hw
    base = [(w * 0.5, h * 0.5, 1)]
    pending = [w * 0.2, h * 0.2] if mode == "box" else None
    start(mode=mode, points=base, pending=pending)
    x, y = int(w * 0.55), int(h * 0.55)
    page.evaluate("([x, y]) => window.__view.emit('hover', {x, y})", [x, y])
    state = page.evaluate(IDLE_JS)
    if mode == "exclude":
        assert state["shown"]["prompts"] == {"points": [list(base[0]), [x, y, 0]], "box": None}
        exact, unsure = am.pipeline_mask([base[0][:2], [x, y]], [1, 0], None, (h, w), 1, out_hw=record.frame.display_hw)
    else:  # the preview follows the second corner
        assert state["shown"]["prompts"] == {"points": [list(base[0])], "box": [*pending, x, y]}
        exact, unsure = am.pipeline_mask([base[0][:2]], [1], [*pending, x, y], (h, w), 1,
                                         out_hw=record.frame.display_hw)
    overlay = page.evaluate(OVERLAY_JS, "sam-preview")
    assert not ((_overlay_mask(overlay, record) != exact) & ~unsure).any()


def test_box_mode_without_a_first_corner_previews_nothing(fake_view):
    page, record, start = fake_view
    start(mode="box")
    page.evaluate("() => window.__view.emit('hover', {x: 10, y: 10})")
    assert page.evaluate(IDLE_JS)["overlays"] == []


def test_stale_positions_are_dropped_and_the_last_one_is_shown(fake_view):
    page, record, start = fake_view
    h, w = record.original_hw
    start()
    moves = [[int(w * (0.2 + 0.02 * k)), int(h * 0.5)] for k in range(30)]
    page.evaluate("(moves) => { for (const [x, y] of moves) window.__view.emit('hover', {x, y}); }", moves)
    state = page.evaluate(IDLE_JS)
    assert state["stats"]["asked"] == 30
    assert state["stats"]["stale"] >= 25  # at most one decode ran beside the last: the rest never started
    assert [state["shown"]["x"], state["shown"]["y"]] == moves[-1]


def test_leaving_the_image_clears_the_preview_and_a_late_result_is_not_drawn(fake_view):
    page, record, start = fake_view
    start()
    page.evaluate("() => { window.__view.emit('hover', {x: 300, y: 200}); window.__view.emit('leave', {}); }")
    state = page.evaluate(IDLE_JS)
    assert state["overlays"] == [] and state["stats"]["previews"] == 0


def test_a_click_is_painted_from_its_preview_at_once_and_the_servers_scene_replaces_it(fake_view):
    page, record, start = fake_view
    h, w = record.original_hw
    scene = start(points=[(w * 0.3, h * 0.3, 1)])
    page.evaluate("() => window.__view.emit('hover', {x: 400, y: 300})")
    page.evaluate(IDLE_JS)
    at_once = page.evaluate("""() => { window.__view.emit('commit', {kind: 'click', x: 400, y: 300});
        return [...window.__view.overlays.keys()]; }""")
    assert at_once == ["sam-instant"]  # painted in the same task as the click: no decode waited for
    assert page.evaluate("window.__preview.stats.instantFromPreview") == 1
    # the server's scene for an older state (another click still on its way) keeps the paint ...
    page.evaluate("(s) => { window.__view.scene = window.__view.latest = s; window.__view.emit('drawn', {}); }", scene)
    assert "sam-instant" in page.evaluate(IDLE_JS)["overlays"]
    # ... the scene holding this click replaces it
    scene["objects"][0]["points"].append([400, 300, 1])
    page.evaluate("(s) => { window.__view.scene = window.__view.latest = s; window.__view.emit('drawn', {}); }", scene)
    assert "sam-instant" not in page.evaluate(IDLE_JS)["overlays"]


def test_a_click_without_a_preview_is_decoded_and_painted(fake_view):
    page, record, start = fake_view
    start()
    page.evaluate("() => window.__view.emit('commit', {kind: 'click', x: 200, y: 150})")
    state = page.evaluate(IDLE_JS)
    assert state["overlays"] == ["sam-instant"] and state["stats"]["instant"] == 1
    assert state["stats"]["instantFromPreview"] == 0


def test_the_toggle_turns_previews_off_and_is_remembered(fake_view):
    page, record, start = fake_view
    start()
    page.evaluate("() => { window.__preview.setEnabled(false); window.__view.emit('hover', {x: 100, y: 100}); }")
    state = page.evaluate(IDLE_JS)
    assert state["overlays"] == [] and state["stats"]["asked"] == 0
    assert page.evaluate("window.__storage.getItem('sam-live-preview')") == "off"
    page.evaluate("() => window.__preview.setEnabled(true)")
    page.evaluate("() => window.__view.emit('hover', {x: 100, y: 100})")
    assert page.evaluate(IDLE_JS)["overlays"] == ["sam-preview"]


def test_when_the_decoder_cannot_start_previews_are_off_with_one_notice(fake_view):
    page, record, start = fake_view
    start(fail="onnxruntime-web failed to load (test)")
    page.evaluate("""async () => { for (let i = 0; i < 20; i++) window.__view.emit('hover', {x: 50 + i, y: 60});
        window.__view.emit('commit', {kind: 'click', x: 60, y: 60}); await new Promise((r) => setTimeout(r, 50)); }""")
    notices = page.evaluate("window.__notices")
    assert notices == ["Live previews are off: onnxruntime-web failed to load (test). Clicks work as usual "
                       "(the server draws every mask)."]
    assert page.evaluate("window.__view.log.filter(([n, on]) => on).length") == 0


def test_when_the_page_runs_out_of_memory_previews_stop_with_one_notice(fake_view):
    """A decode that fails for lack of memory (the worker says so) stops the decoder and the previews for good;
    the notice says why, once, however many decodes were waiting or come after."""
    page, record, start = fake_view
    start(fail="oom")
    moves = """async (y) => { for (let i = 0; i < 5; i++) window.__view.emit('hover', {x: 50 + 40 * i, y});
        window.__view.emit('commit', {kind: 'click', x: 80, y}); await new Promise((r) => setTimeout(r, 100)); }"""
    page.evaluate(moves, 60)
    page.wait_for_function("window.__notices.length > 0")  # once the embeddings reached the stand-in worker
    page.evaluate(moves, 90)
    assert page.evaluate("window.__notices") == [
        f"Live previews are off: out of memory ({OUT_OF_MEMORY_REASON}). Clicks work as usual "
        "(the server draws every mask)."]
    state = page.evaluate("""() => ({ off: window.__preview.active === false, terminated: window.__oomWorker.terminated,
        overlays: [...window.__view.overlays.keys()], drawn: window.__view.log.filter(([n, on]) => on).length })""")
    assert state == {"off": True, "terminated": True, "overlays": [], "drawn": 0}
