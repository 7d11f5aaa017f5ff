"""Fixtures for the end-to-end tests: the demo served in-process on the analytic models, and Chromium.

Chromium is Debian's ``chromium`` driven by Playwright through ``executable_path``
(no browser download). Without it (or without the ``playwright`` package) every
browser test is skipped with one line saying how to install them; under CI
(``CI`` or ``SAM_TEST_REQUIRE_BROWSER`` set) that is a failure instead, so a
CI run cannot go green without them.

Environment:
    SAM_TEST_CHROMIUM: path of the Chromium binary (default ``/usr/bin/chromium``,
        else ``chromium`` on PATH). Point it at a missing file to see the skip.
    SAM_TEST_REQUIRE_BROWSER: "1" to fail instead of skipping (implied by ``CI``).
    SAM_TEST_NO_WASM: "1" runs every page without WebAssembly (an init script removes it): the page's own
        decoder cannot start, so live previews are off with one notice, and every scenario must pass as
        without them (``.ci/run`` runs the click, box and undo scenarios this way).

The demo serves the page's own decoder, as the app does; its live previews are turned off in each page
(the per-browser toggle, set by an init script) so the pixel checks see the server's picture only.
tests/browser/test_live_preview.py turns them on.

Each test gets a new page (a new tab: a new Gradio session, no page state, listeners, routes or network
emulation of an earlier test) in a browser context shared by the tests on the same server with the same
screen (``contexts``): its HTTP and code caches make a page open in about half the time of a new context's.
What a context would carry from one test to the next is reset: the site's localStorage is cleared when a tab
loads its first document (``FRESH_TAB_JS``), cookies and granted permissions when a test ends. Tests about
what a first visit downloads or what a browser remembers (test_live_preview.py) keep a context of their own.

Screenshots of key states go to ``artifacts/screenshots/<test>_<state>.png`` at
the repository root (git-ignored); a failing test also saves ``<test>_failure.png``.
"""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.browser.pixels import gradient_rgb
from tests.browser.ui import DemoPage
from tools.ports import free_port

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "artifacts" / "screenshots"

CHROMIUM_ENV = "SAM_TEST_CHROMIUM"
REQUIRE_ENV = "SAM_TEST_REQUIRE_BROWSER"
NO_WASM_ENV = "SAM_TEST_NO_WASM"
PREVIEWS_OFF_JS = "localStorage.setItem('sam-live-preview', 'off');"
"""Init script: the live-preview toggle (sam_demo/static/decoder/preview.js TOGGLE_KEY) off; a fresh context
without it has previews on, as a first visit does."""
NO_WASM_JS = "Object.defineProperty(globalThis, 'WebAssembly', {value: undefined, configurable: true});"
"""Init script: a browser without WebAssembly."""
FRESH_TAB_JS = """if (!sessionStorage.getItem('sam-test-tab')) {
  localStorage.clear(); sessionStorage.setItem('sam-test-tab', '1'); }"""
"""Init script of a shared context: the first document of each tab (sessionStorage is per tab and survives its
reloads) starts with an empty localStorage (the brush size, the preview toggle), as in a new context; a reload
within the test keeps what the test stored, as a browser does."""
DEFAULT_CHROMIUM = "/usr/bin/chromium"
INSTALL_HINT = ("browser tests skipped: install Chromium (apt-get install chromium) and "
                "`pip install -r requirements-test.txt`")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]

DESKTOP = {"viewport": {"width": 1440, "height": 1000}}
LAPTOP = {"viewport": {"width": 1366, "height": 900}}
"""The most common laptop screen: the work area must fit it without scrolling."""
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
"""A phone-sized page (iPhone 12-14 CSS size) with touch input."""
TIMEOUT_MS = 60_000
"""Longest wait for any page condition. The analytic models answer in milliseconds and a page update takes
about 0.1 s, but with the 2 cores shared by CPU burners and other jobs (load average 12) a wait passed 20 s
once; a page that never updates still fails."""

# test pictures: (H, W) in original pixels
WIDE_HW = (576, 704)
"""Non-square, small enough to be shown at natural size on the desktop page (scale 1), large enough that the
3 candidate masks (16 model units apart: 11 x 9 px here) differ visibly beyond the drawn outlines."""
BIG_HW = (3000, 4000)
PHONE_PHOTO_HW = (320, 240)
"""Upright size of the EXIF-rotated photo (portrait, stored sideways)."""
EXIF_ORIENTATION_TAG = 274
EXIF_ROTATE_90_CW = 6


def chromium_path() -> str | None:
    """The Chromium binary to drive, or None when there is none."""
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    if os.access(DEFAULT_CHROMIUM, os.X_OK):
        return DEFAULT_CHROMIUM
    return shutil.which("chromium")


@functools.cache
def browser_problem() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if chromium_path() is None:
        return f"no Chromium at {os.environ.get(CHROMIUM_ENV) or DEFAULT_CHROMIUM}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed"
    return None


def _unavailable(reason: str):
    if os.environ.get(REQUIRE_ENV) == "1" or os.environ.get("CI"):
        pytest.fail(f"browser tests required here but {reason}", pytrace=False)
    # raised here, not from a fixture, so pytest folds every skip into one summary line
    raise pytest.skip.Exception(INSTALL_HINT)


def pytest_runtest_setup(item):
    if item.get_closest_marker("browser") is not None and (problem := browser_problem()) is not None:
        _unavailable(problem)



# ---------------------------------------------------------------------------- browser and server
@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole run."""
    problem = browser_problem()
    if problem is not None:
        _unavailable(problem)
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    playwright = sync_playwright().start()
    try:
        try:
            chromium = playwright.chromium.launch(executable_path=path, headless=True, args=LAUNCH_ARGS)
        except Exception as exc:  # noqa: BLE001 - any launch failure means "no usable browser"
            _unavailable(f"Chromium at {path} did not start: {str(exc).splitlines()[0]}")
        yield chromium
        chromium.close()
    finally:
        playwright.stop()


def _serve(predictor, image_cache_mb: int, models=None):
    """The demo on ``predictor`` (and ``models`` to choose from, by name), served in this process on a free port:
    yields its URL, closes it after."""
    import app
    from sam_demo import page_decoder
    from sam_demo.service import SegmentationService
    from sam_onnx.encoders import default_cache_dir

    service = SegmentationService(predictor, image_cache_mb=image_cache_mb, models=models,
                                  page_decoder=page_decoder.prepare(predictor, default_cache_dir()))
    demo = app.build_demo(service)
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True,
                            **app.launch_kwargs("127.0.0.1", free_port(), routes=app.app_routes(service)))
    try:
        yield url
    finally:
        demo.close()


@pytest.fixture(scope="session")
def demo_url(predictor):
    """The demo on the analytic models (default display side 1536)."""
    yield from _serve(predictor, image_cache_mb=256)


@pytest.fixture(scope="session")
def fixture_demo_url():
    """The demo on the reduced real-architecture model (tests/fixtures/sam2_tiny) instead of the
    analytic ones, for the cases compared with PyTorch's masks."""
    from sam_onnx import Sam2Predictor
    from tests.test_reference_fixture import FIXTURE

    predictor = Sam2Predictor.from_files(FIXTURE / "encoder.onnx", FIXTURE / "decoder.onnx", threads=1)
    yield from _serve(predictor, image_cache_mb=64)


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.browser_failed = report.failed


def _new_context(browser, options: dict, previews: bool, shared: bool = False):
    """A browser context with the tests' timeout and init scripts (see the module docstring)."""
    context = browser.new_context(**options)
    context.set_default_timeout(TIMEOUT_MS)
    if shared:
        context.add_init_script(FRESH_TAB_JS)
    if os.environ.get(NO_WASM_ENV) == "1":
        context.add_init_script(NO_WASM_JS)
    elif not previews:
        context.add_init_script(PREVIEWS_OFF_JS)
    return context


@pytest.fixture(scope="session")
def contexts(browser):
    """``get(url, options)``: the shared context for pages on the server at ``url`` with the screen ``options``
    (live previews off), made on first use and closed at the end of the run."""
    made: dict[tuple, object] = {}

    def get(url: str, options: dict):
        key = (url, repr(sorted(options.items())))
        if key not in made:
            made[key] = _new_context(browser, options, previews=False, shared=True)
        return made[key]

    yield get
    for context in made.values():
        context.close()


def _open(request, browser, demo_url, screenshots, options: dict, touch: bool, previews: bool = False,
          contexts=None):
    """Yields a DemoPage open on ``demo_url`` in a new tab: in the shared context of ``contexts`` when given
    (previews off), else in a context of its own, closed after the test."""
    name = request.node.name.replace("[", "_").replace("]", "").replace("/", "_")
    for old in screenshots.glob(f"{name}_*.png"):
        old.unlink()
    shared = contexts is not None and not previews
    context = contexts(demo_url, options) if shared else _new_context(browser, options, previews)
    demo = DemoPage(context.new_page(), demo_url, screenshots, name, touch=touch)
    try:
        yield demo.open()
        if getattr(request.node, "browser_failed", False):
            demo.screenshot("failure")
        elif os.environ.get(NO_WASM_ENV) == "1":
            _check_no_wasm_notice(demo.page)
    finally:
        if shared:
            demo.page.close()
            context.clear_cookies()
            context.clear_permissions()
        else:
            context.close()


NO_WASM_NOTICE = ("Live previews are off: this browser has no WebAssembly. Clicks work as usual (the server draws "
                  "every mask).")
NOTICE_STATE_JS = """() => { const view = document.querySelector('#display')?.samView;
  return { bars: document.querySelectorAll('#live-preview').length,
           notices: [...document.querySelectorAll('#live-preview .sam-live-preview-notice')].map((n) => n.textContent),
           embeddings: !!view?.scene?.image?.embeddings }; }"""


def _check_no_wasm_notice(page) -> None:
    """Without WebAssembly (``SAM_TEST_NO_WASM=1``), after a scenario that passed: one preview bar with one
    notice, which says why previews are off once an image was offered to the page's decoder (empty before)."""
    if page.is_closed():
        return
    state = page.evaluate(NOTICE_STATE_JS)
    assert state["bars"] == 1, state
    allowed = [[NO_WASM_NOTICE]] if state["embeddings"] else [[NO_WASM_NOTICE], [""]]
    assert state["notices"] in allowed, state


@pytest.fixture
def desktop(request, browser, demo_url, screenshots, contexts):
    """A new session in a new 1440x1000 desktop page, driven with the mouse and keyboard."""
    yield from _open(request, browser, demo_url, screenshots, DESKTOP, touch=False, contexts=contexts)


@pytest.fixture
def real_graph_desktop(request, browser, fixture_demo_url, screenshots, contexts):
    """A desktop page on the demo that runs the reduced real-architecture model."""
    yield from _open(request, browser, fixture_demo_url, screenshots, DESKTOP, touch=False, contexts=contexts)


@pytest.fixture
def laptop(request, browser, demo_url, screenshots, contexts):
    """A fresh session in a 1366x900 page (mouse and keyboard)."""
    yield from _open(request, browser, demo_url, screenshots, LAPTOP, touch=False, contexts=contexts)


@pytest.fixture
def phone(request, browser, demo_url, screenshots, contexts):
    """A fresh session in a 390x844 phone page with touch input (taps, no mouse)."""
    yield from _open(request, browser, demo_url, screenshots, PHONE, touch=True, contexts=contexts)


# ---------------------------------------------------------------------------- test pictures
@pytest.fixture(scope="session")
def pictures(tmp_path_factory) -> dict[str, Path]:
    """Test files: a wide PNG, a phone JPEG stored sideways with EXIF orientation 6, a 4000x3000 JPEG and a
    text file named .png. All are smooth gradients (see ``pixels.gradient_rgb``)."""
    folder = tmp_path_factory.mktemp("pictures")
    files = {"wide": folder / "wide.png", "exif": folder / "phone_photo.jpg", "big": folder / "big_photo.jpg",
             "bad": folder / "not_an_image.png"}
    Image.fromarray(gradient_rgb(*WIDE_HW)).save(files["wide"])
    upright = gradient_rgb(*PHONE_PHOTO_HW, seed=1)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = EXIF_ROTATE_90_CW
    stored = np.ascontiguousarray(np.rot90(upright, k=1))  # rotating it 90° clockwise gives `upright` back
    Image.fromarray(stored).save(files["exif"], exif=exif.tobytes(), quality=95)
    Image.fromarray(gradient_rgb(*BIG_HW, seed=2)).save(files["big"], quality=90)
    files["bad"].write_text("This is a text file, not a picture.\n")
    return files
