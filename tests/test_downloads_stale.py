"""The download list never offers an export as current after the masks changed (issue 22, items 3 and 8).

Every edit's answer carries the download list: emptied (``None``) when what an export holds changed
(prompts, candidate, names, shown objects, another image), left as it is (``gr.skip()``) otherwise
(selecting an object, a first box corner, a view resync).
"""

from __future__ import annotations

import gradio as gr
import pytest
from PIL import Image

import app
from sam_demo.service import SegmentationService
from tests.app_support import OUT
from tests.conftest import make_rgb

KEPT = gr.skip()


@pytest.fixture(scope="module")
def service(predictor):
    return SegmentationService(predictor, display_max_side=1536, image_cache_mb=64)


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("stale") / "photo.png"
    Image.fromarray(make_rgb(300, 500)).save(path)
    return path


def click(service, out, x, y, mode=app.MODE_POSITIVE):
    return app.prompt(service, out[OUT["state"]], mode, 0.5, True, gr.EventData(None, {"kind": "click", "x": x, "y": y}))


def test_edits_that_change_the_masks_empty_the_download_list(service, photo):
    opened = app.show_image(service, app.open_image(service, str(photo)), 0.5, True)
    assert opened[OUT["downloads"]] is None, "a new image: the previous image's files go"
    out = click(service, opened, 120, 200)
    assert out[OUT["downloads"]] is None
    state = out[OUT["state"]]
    changes = {
        "undo": app.undo(service, state, 0.5, True),
        "exclude point": click(service, out, 150, 210, app.MODE_NEGATIVE),
        "candidate": app.choose_candidate_api(service, state, 3, 0.5, True),
        "clear": app.clear_object(service, state, 0.5, True),
        "hide": app.toggle_object(service, state, 0.5, True),
        "rename": app.rename_object(service, state, "cup", 0.5, True),
    }
    for name, answer in changes.items():
        assert answer[OUT["downloads"]] is None, f"{name} changes what an export holds"


def test_edits_that_keep_the_masks_keep_the_download_list(service, photo):
    out = click(service, app.show_image(service, app.open_image(service, str(photo)), 0.5, True), 120, 200)
    out = app.add_object(service, out[OUT["state"]], 0.5, True)
    state = out[OUT["state"]]
    first_id = state.editor.objects[0].id
    kept = {
        "select": app.select_object(service, state, first_id, 0.5, True),
        "first box corner": click(service, out, 40, 40, app.MODE_BOX),
        "resync": app.rerender(service, state, 0.5, True),
    }
    for name, answer in kept.items():
        assert answer[OUT["downloads"]] == KEPT, f"{name} changes no mask: the list stays"
