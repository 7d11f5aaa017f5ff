"""Drive the demo page in Chromium as a person would: upload, click or tap exact pixels, read what is shown.

Coordinates: *CSS* pixels of the viewport (where the pointer goes), *original* pixels of the upright
image (what the app records) and *display* pixels of the downscaled copy. The page's view
(``sam_demo/static/view``) draws the image on a canvas: the image's pixel edge ``e`` (original pixels,
the image spans ``[0, W]``) lies at CSS ``left + tx + e * s``, with the scale ``s`` and offset ``tx``
read from the page. This module checks them against its own fit rule (:meth:`ViewBox.check_fit`: the
whole image, never larger than the display copy, centred on a whole CSS pixel) and predicts, with its
own arithmetic, which original pixel a click at a whole CSS pixel lands on (Chromium delivers pointer
positions of a scripted click as whole CSS pixels): the pixel under the pointer.

Playwright is imported lazily (only the fixtures need it), so this module
imports fine where Playwright is not installed.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from PIL import Image

if TYPE_CHECKING:
    from playwright.sync_api import Page

VIEW = "#display .sam-view"
VIEW_CANVAS = "#display .sam-canvas"
UPLOAD_INPUT = "#input_image input[type=file]"
STATUS = "#status"
EXPORT_BUTTON = "#export_btn"
DOWNLOAD_LINKS = "#downloads a[data-testid=download-link]"
TOAST_TEXT = "[data-testid=toast-text]"
CANDIDATE_CAPTIONS = "#candidates .caption-label"
OBJECT_ROWS = "#objects .obj-row"
SELECTED_ROW = "#objects .obj-row.selected"
EXAMPLE_BUTTON = "button.gallery-item:has(img[src$='/{name}'])"

FINGER_REST_MS = 100
"""A finger rests this long before it lifts, as a careful one does: Chromium takes a lift while moving (its velocity
tracker assumes a pointer stopped after 40 ms) as a fling, and swallows the next tap to stop that fling; a tap on
the Eraser button right after a quick stroke was lost that way in about 1 run in 3."""

MODE_LABELS = {"include": "Include", "exclude": "Exclude", "box": "Box", "brush": "Brush", "eraser": "Eraser"}
"""Visible text of the mode radio choices (app.MODES)."""

# JS: how many scenes the view has drawn (sam_demo/static/view/main.js counts them in data-drawn).
_DRAWN_JS = """() => { const v = document.querySelector('#display .sam-view');
  return v && v.dataset.drawn ? Number(v.dataset.drawn) : 0; }"""
_NEW_SCENE_JS = """old => { const v = document.querySelector('#display .sam-view');
  return !!v && Number(v.dataset.drawn || 0) > old && !v.dataset.loading; }"""
_POINTS_JS = """n => { const d = document.querySelector('#display'); const v = d && d.samView;
  const o = v && v.scene && v.scene.objects.find((x) => x.id === v.scene.selected);
  return !!o && !!o.points && o.points.length === n && !v.box.dataset.loading; }"""
_NEXT_FRAME_JS = "() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"
_LOADED_JS = """([w, h, text]) => { const d = document.querySelector('#display'); const v = d && d.samView;
  const s = document.querySelector('#status');
  return !!v && !!v.scene && v.scene.image.w === w && v.scene.image.h === h && !v.box.dataset.loading
    && !!s && s.innerText.includes(text); }"""
# JS: where the view draws the image: the canvas's client rectangle and the view transform.
_VIEW_BOX_JS = """() => { const v = document.querySelector('#display').samView; const t = v.geometry;
  const r = v.canvas.getBoundingClientRect(); const im = v.scene.image;
  return [r.left, r.top, t.boxW, t.boxH, t.tx, t.ty, t.s, im.w, im.h, im.dw, im.dh, v.dpr,
          v.canvas.width, v.canvas.height]; }"""
# JS: the canvas's pixels (same origin, so readable), and a snapshot of the scene at the display size.
_CANVAS_JS = """() => document.querySelector('#display').samView.canvas.toDataURL('image/png')"""
_SNAPSHOT_JS = """() => document.querySelector('#display').samView.snapshot()"""
_LINKS_JS = """sel => [...document.querySelectorAll(sel)].map(a => [a.getAttribute('download'), a.href])"""


def decode_data_url(data_url: str) -> NDArray[np.uint8]:
    """The ``(h, w, 3)`` RGB pixels of a PNG data URL."""
    raw = base64.b64decode(data_url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))


@dataclass(frozen=True)
class ViewBox:
    """Where the view draws the image (CSS px), as the page reports it, and the image's sizes.

    ``left``/``top``: the canvas's client position; ``box_w``/``box_h``: its CSS size; ``tx``/``ty``: the
    image's top-left corner in it; ``s``: CSS px per original pixel; ``W``/``H`` original and ``dw``/``dh``
    display sizes; ``dpr``: device pixels per CSS pixel; ``canvas_w``/``canvas_h``: the backing store.
    """

    left: float
    top: float
    box_w: float
    box_h: float
    tx: float
    ty: float
    s: float
    W: int
    H: int
    dw: int
    dh: int
    dpr: float
    canvas_w: int
    canvas_h: int

    def check_fit(self) -> None:
        """At zoom 1 the whole image is shown, never larger than the display copy, centred on a whole CSS px."""
        fit = min(self.box_w / self.W, self.box_h / self.H, self.dw / self.W)
        assert math.isclose(self.s, fit, rel_tol=1e-9), f"scale {self.s}, the fit rule gives {fit}"
        assert self.tx == round((self.box_w - self.W * fit) / 2) and self.ty == round((self.box_h - self.H * fit) / 2)
        assert (self.canvas_w, self.canvas_h) == (round(self.box_w * self.dpr), round(self.box_h * self.dpr))

    @property
    def natural(self) -> bool:
        """One display pixel per canvas pixel: the canvas shows the display frame as it is."""
        return self.dpr == 1 and self.s * self.W == self.dw and self.tx == int(self.tx) and self.ty == int(self.ty)

    @property
    def tolerance(self) -> int:
        """How far (original px) a whole-CSS-pixel click may land from an aimed original pixel."""
        return math.ceil(1 / (2 * self.s)) if self.s < 1 else 0

    def aim(self, x: int, y: int) -> tuple[int, int]:
        """The whole CSS pixel (client coordinates) nearest to original pixel ``(x, y)``'s centre, preferring
        one that lands on that pixel."""
        return self._aim_axis(self.left + self.tx, x, self.W), self._aim_axis(self.top + self.ty, y, self.H)

    def _aim_axis(self, origin: float, target: int, size: int) -> int:
        exact = origin + (target + 0.5) * self.s
        below = math.floor(exact)
        inside = lambda c: origin <= c < origin + size * self.s  # noqa: E731 - a pointer off the picture is no click
        ranked = sorted((below - 1, below, below + 1, below + 2),
                        key=lambda c: (not inside(c), self._pixel_axis(origin, c, size) != target, abs(c - exact)))
        return ranked[0]

    def _pixel_axis(self, origin: float, client: float, size: int) -> int:
        return min(max(math.floor((client - origin) / self.s), 0), size - 1)

    def reported(self, client_x: float, client_y: float) -> tuple[int, int]:
        """The original pixel under a click at ``(client_x, client_y)``: what the page must send."""
        return (self._pixel_axis(self.left + self.tx, client_x, self.W),
                self._pixel_axis(self.top + self.ty, client_y, self.H))


@dataclass(frozen=True)
class Click:
    """A click or tap on the image: where the pointer went and the original pixel under it."""

    aimed: tuple[int, int]     # original px the test meant
    client: tuple[int, int]    # CSS px the pointer went to
    reported: tuple[int, int]  # original px under that position (ViewBox.reported)
    box: ViewBox


@dataclass(frozen=True)
class Export:
    """The files of one export, as downloaded from the page: name -> bytes."""

    files: dict[str, bytes]

    def named(self, suffix: str) -> bytes:
        matches = [name for name in self.files if name.endswith(suffix)]
        assert len(matches) == 1, f"expected one file ending in {suffix!r}, got {sorted(self.files)}"
        return self.files[matches[0]]

    def mask(self, object_id: int) -> NDArray[np.uint8]:
        """The ``(H, W)`` uint8 mask PNG of an object (0 or 255), original resolution."""
        return np.asarray(Image.open(io.BytesIO(self.named(f"_object{object_id}_mask.png"))))

    @property
    def session(self) -> dict:
        """The saved prompts (``*_prompts.json``): objects with points/box in original pixels."""
        return json.loads(self.named("_prompts.json"))

    @property
    def coco(self) -> dict:
        return json.loads(self.named("_coco_rle.json"))


class DemoPage:
    """One browser tab on the demo (one Gradio session).

    Args:
        page: a Playwright page in a fresh context.
        url: the demo's address.
        shots: folder for screenshots; ``name`` prefixes their file names.
        touch: tap instead of clicking (a phone context with ``has_touch``).
    """

    def __init__(self, page: Page, url: str, shots: Path, name: str, *, touch: bool = False) -> None:
        self.page = page
        self.url = url
        self.shots = shots
        self.name = name
        self.touch = touch

    # ------------------------------------------------------------------ basics
    def open(self) -> DemoPage:
        self.page.goto(self.url)
        self.page.wait_for_selector(VIEW_CANVAS, state="attached")  # the view's modules have loaded
        self.page.wait_for_selector(UPLOAD_INPUT, state="attached")
        return self

    def track_events(self) -> list[str]:
        """Start recording the events this page sends to the server; returns the live list of their api names.

        Each entry is the ``api_name`` of one request to Gradio's queue (e.g. ``ui_open_image`` for an upload,
        ``ui_click`` for a click on the display), in the order sent. Playwright delivers the requests while the
        test waits in one of its calls (``page.wait_for_timeout``, not ``time.sleep``).
        """
        names = self.page.evaluate("window.gradio_config.dependencies.map(d => d.api_name)")
        sent: list[str] = []

        def on_request(request) -> None:
            if "/queue/join" in request.url and request.post_data:
                sent.append(names[json.loads(request.post_data)["fn_index"]])

        self.page.on("request", on_request)
        return sent

    def slow_network(self, latency_ms: float) -> None:
        """Add ``latency_ms`` to every request of this page, as a real network does (Chromium's emulation)."""
        cdp = self.page.context.new_cdp_session(self.page)
        cdp.send("Network.enable")
        cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": latency_ms,
                                                       "downloadThroughput": -1, "uploadThroughput": -1})

    def screenshot(self, state: str) -> Path:
        """Save the whole page as ``<shots>/<test>_<state>.png``."""
        path = self.shots / f"{self.name}_{state}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def status(self) -> str:
        return self.page.locator(STATUS).inner_text()

    def drawn(self) -> int:
        """How many scenes the view has drawn so far (each edit's answer is one)."""
        return self.page.evaluate(_DRAWN_JS)

    def wait_for_display(self, hw: tuple[int, int], original_hw: tuple[int, int]) -> None:
        """Wait until the view shows an image of ``original_hw`` whose display copy is ``hw`` and the status names it."""
        h, w = original_hw
        self.page.wait_for_function(_LOADED_JS, arg=[w, h, f"{w}×{h}"])
        box = self.view_box()
        assert (box.dh, box.dw) == tuple(hw), f"display copy {box.dw}x{box.dh}, expected {hw[1]}x{hw[0]}"

    def wait_for_scene(self, drawn_before: int, timeout_ms: float | None = None) -> int:
        """Wait until the view has drawn a scene newer than the ``drawn_before``-th; returns the new count."""
        self.page.wait_for_function(_NEW_SCENE_JS, arg=drawn_before, timeout=timeout_ms)
        return self.drawn()

    def wait_for_points(self, count: int, timeout_ms: float | None = None) -> None:
        """Wait until the view has drawn (all files loaded) a scene whose selected object has ``count`` points."""
        self.page.wait_for_function(_POINTS_JS, arg=count, timeout=timeout_ms)

    def next_frame(self) -> None:
        """Wait until the page has drawn its next animation frame (what an input changed is on the canvas)."""
        self.page.evaluate(_NEXT_FRAME_JS)

    def upload(self, path: Path, display_hw: tuple[int, int], original_hw: tuple[int, int] | None = None) -> None:
        """Upload a file with the image input and wait until it is shown."""
        self.page.locator(UPLOAD_INPUT).set_input_files(str(path))
        self.wait_for_display(display_hw, original_hw or display_hw)

    def pick_example(self, file_name: str, display_hw: tuple[int, int]) -> None:
        button = self.page.locator(EXAMPLE_BUTTON.format(name=file_name))
        self.tap_or_click(button)
        self.wait_for_display(display_hw, display_hw)

    def tap_or_click(self, locator) -> None:
        if self.touch:
            locator.tap()
        else:
            locator.click()

    # ------------------------------------------------------------------ the image view
    def view_box(self) -> ViewBox:
        """Where the view draws the image now (scrolled into view first)."""
        self.page.locator(VIEW).scroll_into_view_if_needed()
        return ViewBox(*self.page.evaluate(_VIEW_BOX_JS))

    def click_image(self, x: int, y: int) -> Click:
        """Click (or tap) original pixel ``(x, y)`` and wait for the new scene to be drawn."""
        box = self.view_box()
        client = box.aim(x, y)
        before = self.drawn()
        if self.touch:
            self.page.touchscreen.tap(*client)
        else:
            self.page.mouse.click(*client)
        self.wait_for_scene(before)
        return Click((x, y), client, box.reported(*client), box)

    def display_pixels(self) -> NDArray[np.uint8]:
        """The ``(dh, dw, 3)`` picture in display pixels: the canvas's own pixels when it shows the display copy
        at its natural size, else the view's snapshot of the same scene at that size (the same renderer)."""
        box = self.view_box()
        if box.natural:
            canvas = decode_data_url(self.page.evaluate(_CANVAS_JS))
            return canvas[int(box.ty):int(box.ty) + box.dh, int(box.tx):int(box.tx) + box.dw]
        return decode_data_url(self.page.evaluate(_SNAPSHOT_JS))

    def canvas_pixels(self) -> NDArray[np.uint8]:
        """The view canvas's ``(h, w, 3)`` device pixels as shown."""
        return decode_data_url(self.page.evaluate(_CANVAS_JS))

    # ------------------------------------------------------------------ controls
    def set_mode(self, mode: str) -> None:
        """Choose include / exclude / box / brush / eraser on the mode radio."""
        self.tap_or_click(self.page.locator("#mode label", has_text=MODE_LABELS[mode]))
        self.page.wait_for_function(
            "text => [...document.querySelectorAll('#mode label')].some(l => l.innerText.includes(text) "
            "&& l.querySelector('input').checked)", arg=MODE_LABELS[mode])

    def checked_mode(self) -> str:
        """The mode whose radio is checked ('include', 'exclude', 'box', 'brush' or 'eraser')."""
        text = self.page.locator("#mode label:has(input:checked)").inner_text()
        return next(mode for mode, label in MODE_LABELS.items() if label in text)

    def press_button(self, elem_id: str) -> int:
        """Click a button that changes the picture (undo, redo, clear...) and wait for the new scene."""
        before = self.drawn()
        self.tap_or_click(self.page.locator(f"#{elem_id}"))
        return self.wait_for_scene(before)

    def add_object(self) -> None:
        """'+ New object' (the overlay does not change; the object list grows)."""
        count = self.page.locator(OBJECT_ROWS).count()
        self.tap_or_click(self.page.locator("#add_object_btn"))
        self.wait_for_objects(count + 1)

    def wait_for_objects(self, count: int) -> None:
        self.page.wait_for_function(
            "([sel, n]) => document.querySelectorAll(sel).length === n", arg=[OBJECT_ROWS, count])

    def object_rows(self) -> list[str]:
        return self.page.locator(OBJECT_ROWS).all_inner_texts()

    def selected_object(self) -> str:
        """The text of the object list's selected row (name and score)."""
        return self.page.locator(SELECTED_ROW).inner_text()

    def select_object(self, name: str) -> None:
        """Click (tap) the object list's row of ``name`` and wait until it is the selected row."""
        row = self.page.locator(OBJECT_ROWS, has=self.page.locator("b", has_text=re.compile(f"^{re.escape(name)}$")))
        row.scroll_into_view_if_needed()
        self.tap_or_click(row)
        self.page.wait_for_function(
            "([sel, name]) => { const r = document.querySelector(sel);"
            " return !!r && r.querySelector('b').innerText === name; }",
            arg=[SELECTED_ROW, name])

    def candidate_captions(self) -> list[str]:
        return self.page.locator(CANDIDATE_CAPTIONS).all_inner_texts()

    def wait_for_chosen_candidate(self, number: int) -> None:
        """Wait until the candidate gallery marks mask ``number`` (1..3) as chosen (✓)."""
        self.page.wait_for_function(
            "([sel, n]) => { const c = [...document.querySelectorAll(sel)].map(e => e.innerText);"
            " return c.length === 3 && c[n - 1].startsWith('✓') && c.filter(t => t.startsWith('✓')).length === 1; }",
            arg=[CANDIDATE_CAPTIONS, number])

    def choose_candidate(self, number: int) -> None:
        """Click (tap) thumbnail ``number`` (1..3) of the candidate gallery and wait for the new scene."""
        before = self.drawn()
        self.tap_or_click(self.page.locator(f"#candidates button[aria-label='Thumbnail {number} of 3']"))
        self.wait_for_chosen_candidate(number)
        self.wait_for_scene(before)

    def press_key(self, key: str, timeout_ms: float | None = None) -> int:
        """Press a shortcut key that changes the picture (undo, redo, clear, 1/2/3) and wait for the new scene."""
        before = self.drawn()
        self.page.keyboard.press(key)
        return self.wait_for_scene(before, timeout_ms)

    def focus_page(self) -> None:
        """Give keyboard focus to the page itself (a neutral spot: the title), as a user clicking there."""
        self.page.locator("#title").click()

    def toasts(self) -> list[str]:
        return self.page.locator(TOAST_TEXT).all_inner_texts()

    # ------------------------------------------------------------------ downloads
    def _links(self) -> list[tuple[str, str]]:
        return self.page.evaluate(_LINKS_JS, DOWNLOAD_LINKS)

    def export(self) -> Export:
        """Press 'Export masks', wait for a new file list and download every file (over the page's session)."""
        before = self._links()
        self.tap_or_click(self.page.locator(EXPORT_BUTTON))
        self.page.wait_for_function(
            "([sel, old]) => { const l = [...document.querySelectorAll(sel)].map(a => a.href);"
            " return l.some(h => h.endsWith('_prompts.json'))"
            " && (l.length !== old.length || l.some((h, i) => h !== old[i])); }",
            arg=[DOWNLOAD_LINKS, [href for _, href in before]])
        return self.listed_files()

    def listed_files(self) -> Export:
        """Download every file the download list shows now (over the page's session)."""
        files = {}
        for name, href in self._links():
            response = self.page.request.get(href)
            assert response.ok, f"download of {name} failed: HTTP {response.status}"
            files[name] = response.body()
        return Export(files)

    def download(self, suffix: str) -> bytes:
        """Download one listed file by clicking its link, as a user does (a real browser download)."""
        link = self.page.locator(DOWNLOAD_LINKS)
        names = [name for name, _ in self._links()]
        matches = [i for i, name in enumerate(names) if re.search(re.escape(suffix) + "$", name or "")]
        assert len(matches) == 1, f"expected one link ending in {suffix!r}, got {names}"
        with self.page.expect_download() as info:
            link.nth(matches[0]).click()
        return Path(info.value.path()).read_bytes()
