"""Drive the demo page in Chromium as a person would: upload, click or tap exact pixels, read what is shown.

Coordinates: *CSS* pixels of the viewport (where the pointer goes) and
*display* pixels of the image file the page shows (what Gradio reports).
Gradio maps a click with ``object-fit: scale-down`` maths
(``get_coordinates_of_clicked_image`` in gradio's ImagePreview component)::

    s = min(box_w / natural_w, box_h / natural_h, 1)
    x_display = Math.round((clientX - box_left - (box_w - natural_w * s) / 2) / s)

and Chromium delivers ``clientX``/``clientY`` as whole CSS pixels (a mouse click
truncates fractional positions, a tap rounds them), so :class:`ImageBox` aims at
a whole CSS pixel and predicts the display pixel Gradio will report from the
page's own layout numbers.

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

DISPLAY_IMG = "#display img"
UPLOAD_INPUT = "#input_image input[type=file]"
STATUS = "#status"
EXPORT_BUTTON = "#export_btn"
DOWNLOAD_LINKS = "#downloads a[data-testid=download-link]"
TOAST_TEXT = "[data-testid=toast-text]"
CANDIDATE_CAPTIONS = "#candidates .caption-label"
OBJECT_ROWS = "#objects .obj-row"
SELECTED_ROW = "#objects .obj-row.selected"
EXAMPLE_BUTTON = "button.gallery-item:has(img[src$='/{name}'])"

MODE_LABELS = {"include": "Include", "exclude": "Exclude", "box": "Box"}
"""Visible text of the mode radio choices (app.MODES)."""

# JS: the display <img> has loaded a file other than `old` (the overlay is a new file per update).
_NEW_DISPLAY_JS = """old => { const i = document.querySelector('#display img');
  return !!i && i.src !== old && i.complete && i.naturalWidth > 0; }"""
_LOADED_JS = """([w, h, text]) => { const i = document.querySelector('#display img');
  const s = document.querySelector('#status');
  return !!i && i.complete && i.naturalWidth === w && i.naturalHeight === h && !!s && s.innerText.includes(text); }"""
# JS: the display <img> shows a loaded file (while a new one loads, its natural size reads 0).
_SHOWN_DISPLAY_JS = """() => { const i = document.querySelector('#display img');
  return !!i && i.complete && i.naturalWidth > 0; }"""
_BOX_JS = """e => { const r = e.getBoundingClientRect();
  return [r.left, r.top, r.width, r.height, e.naturalWidth, e.naturalHeight]; }"""
# JS: the image's decoded pixels, as the browser shows them (same origin, so the canvas is readable).
_PIXELS_JS = """async img => { if (!img.complete) await img.decode();
  const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
  c.getContext('2d').drawImage(img, 0, 0); return c.toDataURL('image/png'); }"""
_LINKS_JS = """sel => [...document.querySelectorAll(sel)].map(a => [a.getAttribute('download'), a.href])"""


def js_round(value: float) -> int:
    """JavaScript ``Math.round`` (halves go up, unlike Python's ``round``)."""
    return math.floor(value + 0.5)


@dataclass(frozen=True)
class ImageBox:
    """Where the display ``<img>`` lies on the page (CSS px) and its natural size (display px)."""

    left: float
    top: float
    width: float
    height: float
    natural_w: int
    natural_h: int

    @property
    def scale(self) -> float:
        """CSS px per display px (``object-fit: scale-down`` never enlarges)."""
        return min(self.width / self.natural_w, self.height / self.natural_h, 1.0)

    @property
    def origin(self) -> tuple[float, float]:
        """CSS position of the top-left corner of the drawn picture (it is centred in the box)."""
        s = self.scale
        return self.left + (self.width - self.natural_w * s) / 2, self.top + (self.height - self.natural_h * s) / 2

    @property
    def tolerance(self) -> int:
        """How far (display px) a whole-CSS-pixel click may land from an aimed display pixel."""
        return math.ceil(1 / (2 * self.scale))

    def aim(self, x: int, y: int) -> tuple[int, int]:
        """The whole CSS pixel nearest to where Gradio maps display pixel ``(x, y)``.

        Of the two whole pixels around the exact spot, the one Gradio maps back to ``(x, y)`` is
        preferred (a picture with an odd width, centred in an even box, starts at a half CSS pixel).
        """
        ox, oy = self.origin
        return self._aim_axis(ox, x), self._aim_axis(oy, y)

    def _aim_axis(self, origin: float, target: int) -> int:
        exact = origin + target * self.scale
        below = math.floor(exact)
        ranked = sorted((below, below + 1), key=lambda c: (self._report_axis(origin, c) != target, abs(c - exact)))
        return ranked[0]

    def _report_axis(self, origin: float, client: int) -> int:
        return js_round((client - origin) / self.scale)

    def reported(self, client_x: int, client_y: int) -> tuple[int, int]:
        """The display pixel Gradio reports for a click at ``(client_x, client_y)``."""
        ox, oy = self.origin
        return self._report_axis(ox, client_x), self._report_axis(oy, client_y)


@dataclass(frozen=True)
class Click:
    """A click or tap on the display: where the pointer went and what Gradio reported."""

    aimed: tuple[int, int]     # display px the test meant
    client: tuple[int, int]    # CSS px the pointer went to
    reported: tuple[int, int]  # display px Gradio computes for that position
    box: ImageBox


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
        self.page.wait_for_selector("#display")
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

    def display_src(self) -> str | None:
        img = self.page.locator(DISPLAY_IMG)
        return img.first.get_attribute("src") if img.count() else None

    def wait_for_display(self, hw: tuple[int, int], original_hw: tuple[int, int]) -> None:
        """Wait until the display shows an image of ``hw`` (display px) and the status names ``original_hw``."""
        h, w = original_hw
        self.page.wait_for_function(_LOADED_JS, arg=[hw[1], hw[0], f"{w}×{h}"])

    def wait_for_new_display(self, old_src: str | None, timeout_ms: float | None = None) -> str:
        """Wait until the display shows a file other than ``old_src`` (the overlay is a new file per update)."""
        self.page.wait_for_function(_NEW_DISPLAY_JS, arg=old_src, timeout=timeout_ms)
        return self.display_src()

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

    # ------------------------------------------------------------------ the display image
    def image_box(self) -> ImageBox:
        """Where the display image is, measured once its file has loaded (an edit may have just swapped it)."""
        self.page.wait_for_function(_SHOWN_DISPLAY_JS)
        img = self.page.locator(DISPLAY_IMG).first
        img.scroll_into_view_if_needed()
        return ImageBox(*img.evaluate(_BOX_JS))

    def click_display(self, x: int, y: int) -> Click:
        """Click (or tap) display pixel ``(x, y)`` and wait for the new overlay."""
        box = self.image_box()
        client = box.aim(x, y)
        old = self.display_src()
        if self.touch:
            self.page.touchscreen.tap(*client)
        else:
            self.page.mouse.click(*client)
        self.wait_for_new_display(old)
        return Click((x, y), client, box.reported(*client), box)

    def display_pixels(self) -> NDArray[np.uint8]:
        """The ``(h, w, 3)`` pixels of the shown display image, decoded by the browser."""
        data_url = self.page.locator(DISPLAY_IMG).first.evaluate(_PIXELS_JS)
        raw = base64.b64decode(data_url.split(",", 1)[1])
        return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))

    # ------------------------------------------------------------------ controls
    def set_mode(self, mode: str) -> None:
        """Choose include / exclude / box on the mode radio."""
        self.tap_or_click(self.page.locator("#mode label", has_text=MODE_LABELS[mode]))
        self.page.wait_for_function(
            "text => [...document.querySelectorAll('#mode label')].some(l => l.innerText.includes(text) "
            "&& l.querySelector('input').checked)", arg=MODE_LABELS[mode])

    def checked_mode(self) -> str:
        """The mode whose radio is checked ('include', 'exclude' or 'box')."""
        text = self.page.locator("#mode label:has(input:checked)").inner_text()
        return next(mode for mode, label in MODE_LABELS.items() if label in text)

    def press_button(self, elem_id: str) -> str:
        """Click a button that changes the overlay (undo, redo, clear...) and wait for the new overlay."""
        old = self.display_src()
        self.tap_or_click(self.page.locator(f"#{elem_id}"))
        return self.wait_for_new_display(old)

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
        """Click (tap) thumbnail ``number`` (1..3) of the candidate gallery and wait for the overlay."""
        old = self.display_src()
        self.tap_or_click(self.page.locator(f"#candidates button[aria-label='Thumbnail {number} of 3']"))
        self.wait_for_chosen_candidate(number)
        self.wait_for_new_display(old)

    def press_key(self, key: str, timeout_ms: float | None = None) -> str:
        """Press a shortcut key that changes the overlay (undo, redo, clear, 1/2/3) and wait for the new one."""
        old = self.display_src()
        self.page.keyboard.press(key)
        return self.wait_for_new_display(old, timeout_ms)

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
