"""Property tests for what a caller controls at the app's edges.

The pure wrapper values have their own properties (tests/test_types.py, test_geometry.py,
test_editor.py, test_image.py for arrays); these cover the joins: any JSON a forged
click or an API call can carry, and any image FILE (every Pillow mode the allowed formats
can hold, any size, any EXIF orientation) through the same loader and display mapping the
app uses.
"""

from __future__ import annotations

import io
import math
import os

import gradio as gr
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

import app
from sam_demo.editor import Editor
from sam_demo.service import SegmentationService
from sam_onnx.errors import InvalidPromptError
from sam_onnx.geometry import DisplayFrame
from sam_onnx.image import ImageLimits, load_image
from tests.reliability.conftest import png_bytes, smooth_rgb

SETTINGS = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
PROPERTIES = (settings(derandomize=True, max_examples=150, **SETTINGS) if os.environ.get("CI")
              else settings(max_examples=150, **SETTINGS))
ANY_SIZE = ImageLimits(max_pixels=4096 * 4096, max_side=4096, min_side=1, max_aspect=4096.0)

json_scalars = (st.none() | st.booleans() | st.integers(-10**15, 10**15) | st.text(max_size=8)
                | st.floats(allow_nan=True, allow_infinity=True))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)


@pytest.fixture(scope="module")
def state(predictor, tmp_path_factory):
    service = SegmentationService(predictor, image_cache_mb=64)
    path = tmp_path_factory.mktemp("prop") / "p.png"
    path.write_bytes(png_bytes(smooth_rgb(90, 120, seed=9)))
    record, _ = service.open_image(str(path))
    return service, str(path), app.AppState(record, Editor.start(record.original_hw), "property-tab")


edges = st.sampled_from([-1e-9, 0, 89, 89.5, 90, 119, 119.5, 120])
"""Coordinates at and just beyond the 120x90 image's edges (``state``'s image), where an off-by-one would show."""


@PROPERTIES
@given(index=json_values | st.tuples(json_scalars | edges, json_scalars | edges).map(list))
@example(index=[120, 5]).via("the first column past the image")
@example(index=[5, 90]).via("the first row past the image")
@example(index=[119.999, 89.999]).via("the last pixel's far corner")
def test_any_forged_click_position_is_in_bounds_or_a_prompt_error(state, index):
    _, _, app_state = state
    h, w = app_state.record.frame.display_hw
    try:
        x, y = app._display_xy(index, app_state)
    except InvalidPromptError as exc:
        assert str(exc)
        return
    assert math.isfinite(x) and math.isfinite(y) and 0 <= x < w and 0 <= y < h


coordinate = json_scalars | st.floats(-10, 130) | edges
view_prompts = json_values | st.fixed_dictionaries(
    {"kind": st.sampled_from(app.PROMPT_KINDS + ("drag",))},
    optional={"x": coordinate, "y": coordinate, "x1": coordinate, "y1": coordinate})


@PROPERTIES
@given(data=view_prompts, mode=st.sampled_from([app.MODE_POSITIVE, app.MODE_NEGATIVE, app.MODE_BOX]))
@example(data={"kind": "click", "x": 119.5, "y": 5}, mode=app.MODE_POSITIVE).via("past the last pixel centre")
@example(data={"kind": "box", "x": 0, "y": 0, "x1": 119, "y1": 89.5}, mode=app.MODE_BOX).via("a box one past")
def test_any_forged_view_prompt_lands_on_the_image_or_is_a_prompt_error(state, data, mode):
    """The page's ``prompt`` event (original pixels, what a click on the view sends) from a forged request."""
    _, _, app_state = state
    h, w = app_state.record.original_hw
    try:
        edited = app._apply_prompt(app_state, mode, data)
    except InvalidPromptError as exc:
        assert str(exc)
        return
    prompts = edited.editor.selected.prompts
    xy = [(p.x, p.y) for p in prompts.points]
    if prompts.box is not None:
        xy += [(prompts.box.x0, prompts.box.y0), (prompts.box.x1, prompts.box.y1)]
    if edited.editor.pending_corner is not None:
        xy.append(edited.editor.pending_corner)
    assert xy, "an accepted prompt left no trace"
    assert all(math.isfinite(x) and math.isfinite(y) and 0 <= x <= w - 1 and 0 <= y <= h - 1 for x, y in xy), xy


points = st.lists(st.one_of(st.tuples(st.floats(-10, 130), st.floats(-10, 100), st.sampled_from([0, 1, 2, -1]))
                            .map(list), json_values), max_size=4)
objects = st.fixed_dictionaries({}, optional={"points": points | json_values,
                                              "box": st.lists(st.floats(-10, 130), min_size=4, max_size=4)
                                              | json_values})


@PROPERTIES
@given(prompts=st.one_of(st.lists(objects, max_size=3), objects, json_values))
def test_any_api_prompts_give_masks_or_a_message(state, prompts):
    service, path, _ = state
    try:
        result = app.api_segment(service, path, prompts)
    except gr.Error as exc:
        assert exc.message and "Traceback" not in exc.message
        return
    assert result["width"] == 120 and result["height"] == 90 and result["objects"]


MODES_BY_FORMAT = {
    "PNG": ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"],
    "JPEG": ["L", "RGB", "CMYK"],
    "WEBP": ["RGB", "RGBA"],
    "GIF": ["L", "P"],
    "BMP": ["1", "L", "P", "RGB"],
}
EXIF_FORMATS = {"PNG", "JPEG", "WEBP"}
SWAPS_SIDES = {5, 6, 7, 8}


@st.composite
def image_files(draw):
    fmt = draw(st.sampled_from(sorted(MODES_BY_FORMAT)))
    mode = draw(st.sampled_from(MODES_BY_FORMAT[fmt]))
    h, w = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    orientation = draw(st.integers(1, 8)) if fmt in EXIF_FORMATS else 1
    seed = draw(st.integers(0, 2**16))
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    image = Image.fromarray(rgb).convert(mode if mode != "I;16" else "L")
    if mode == "I;16":
        image = Image.fromarray(np.asarray(image).astype(np.uint16) * 257)
    params = {}
    if orientation != 1:
        exif = Image.Exif()
        exif[0x0112] = orientation
        params["exif"] = exif.tobytes()
    buffer = io.BytesIO()
    try:
        image.save(buffer, fmt, **params)
    except (OSError, ValueError, KeyError):
        assume(False)
    return buffer.getvalue(), (h, w), orientation, fmt


@PROPERTIES
@given(file=image_files(), side=st.integers(8, 64), fx=st.floats(0, 1), fy=st.floats(0, 1))
def test_any_mode_size_and_orientation_loads_upright_and_clicks_map_inside(file, side, fx, fy):
    data, (h, w), orientation, fmt = file
    loaded = load_image(data, limits=ANY_SIZE)
    rgb = loaded.rgb
    upright_hw = (w, h) if orientation in SWAPS_SIDES else (h, w)
    assert rgb.shape == (*upright_hw, 3) and rgb.dtype == np.uint8
    assert rgb.flags.c_contiguous and rgb.flags.writeable
    if fmt in ("PNG", "BMP", "GIF"):
        reference = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
        if reference.mode in ("L", "RGB", "P") and "transparency" not in reference.info:
            np.testing.assert_array_equal(rgb, np.asarray(reference.convert("RGB")))  # lossless: exact
    frame = DisplayFrame.fit(rgb.shape[:2], side)
    dh, dw = frame.display_hw
    x, y = frame.to_original_xy([fx * (dw - 1), fy * (dh - 1)]).tolist()
    assert 0 <= x <= upright_hw[1] - 1 and 0 <= y <= upright_hw[0] - 1
