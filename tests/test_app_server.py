"""The app served for real, driven with gradio_client (analytic models): public API and hidden per-click API."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

import app
from sam_demo.service import SegmentationService
from sam_onnx.export import decode_rle
from tests import analytic_models as am
from tests.conftest import make_rgb
from tests.app_support import CLIENT_OUT
from tools.ports import free_port


@pytest.fixture(scope="module")
def server(predictor):
    service = SegmentationService(predictor, image_cache_mb=256)
    demo = app.build_demo(service)
    kwargs = app.launch_kwargs("127.0.0.1", free_port(), routes=app.app_routes(service))
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, **kwargs)
    try:
        yield url
    finally:
        demo.close()


@pytest.fixture
def client(server, tmp_path):
    c = Client(server, download_files=str(tmp_path), verbose=False)
    yield c
    c.close()


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(make_rgb(300, 500)).save(path)
    return path


def _load(client, photo):
    return client.predict(handle_file(str(photo)), 0.5, True, api_name="/load_image")


def _click(client, x, y, mode=app.MODE_POSITIVE):
    return client.predict(x, y, mode, 0.5, True, api_name="/click")


def test_public_segment_endpoint(client, photo):
    result = client.predict(handle_file(str(photo)), [{"points": [[250, 150, 1]], "box": None}],
                            api_name="/segment")
    obj = result["objects"][0]
    am.assert_pipeline_mask(decode_rle(obj["mask_rle"]), [(250, 150)], [1], None, (300, 500))
    assert obj["best_index"] == int(np.argmax(obj["scores"])) and result["width"] == 500


def test_segment_errors_are_readable(client, photo):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="outside the 500×300 image"):
        client.predict(handle_file(str(photo)), [{"points": [[900, 1, 1]]}], api_name="/segment")
    bad = photo.with_suffix(".txt")
    bad.write_text("hello")
    with pytest.raises(AppError, match="Could not read this image"):
        client.predict(handle_file(str(bad)), [{"points": [[1, 1, 1]]}], api_name="/segment")


def test_api_lists_the_documented_endpoint_and_hides_state(client):
    info = client.view_api(return_format="dict", print_info=False)
    named = info["named_endpoints"]
    assert "/segment" in named
    for endpoint in named.values():
        assert all("state" not in (p.get("label") or "").lower() for p in endpoint["parameters"])


def test_clicks_and_export_pixel_by_pixel(client, photo, tmp_path):
    out = _load(client, photo)
    assert "500×300" in out[CLIENT_OUT["status"]]
    out = _click(client, 120, 100)
    scene = json.loads(out[CLIENT_OUT["display"]])  # the hidden API answers with the view's scene
    assert (scene["image"]["w"], scene["image"]["h"]) == (500, 300)
    assert scene["objects"][0]["points"] == [[120, 100, 1]] and scene["objects"][0]["layer"]["size"]
    _click(client, 140, 100, app.MODE_NEGATIVE)
    files = client.predict(api_name="/export")
    mask_file = next(f for f in files if str(f).endswith("_object1_mask.png"))
    mask = np.asarray(Image.open(mask_file)) == 255
    prompts = ([(120, 100), (140, 100)], [1, 0], None, (300, 500))
    am.assert_pipeline_mask(mask, *prompts)
    prompts_file = json.loads(Path(next(f for f in files if str(f).endswith("_prompts.json"))).read_text())
    assert prompts_file["objects"][0]["points"] == [[120.0, 100.0, 1], [140.0, 100.0, 0]]


def test_browser_tabs_are_isolated(server, photo, tmp_path):
    a = Client(server, download_files=str(tmp_path), verbose=False)
    b = Client(server, download_files=str(tmp_path), verbose=False)
    try:
        _load(a, photo)
        _load(b, photo)
        _click(a, 100, 100)
        out_b = _click(b, 400, 200)
        files = b.predict(api_name="/export")
        prompts_file = json.loads(Path(next(f for f in files if str(f).endswith("_prompts.json"))).read_text())
        assert prompts_file["objects"][0]["points"] == [[400.0, 200.0, 1]]
        assert "IoU" in out_b[CLIENT_OUT["objects_html"]]
    finally:
        a.close()
        b.close()


def test_click_before_upload_and_outside_image(client, photo):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="Upload an image first"):
        _click(client, 5, 5)
    _load(client, photo)
    with pytest.raises(AppError, match="Click inside the image"):
        _click(client, 500, 5)


def test_readme_gradio_client_example_runs(server, capsys):
    """The README's /segment example, run as written against the test server."""
    import re

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "gradio_client" in b)
    code = block.replace('Client("http://127.0.0.1:7860/")', f'Client("{server}", verbose=False)')
    assert code != block
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 2 and all("[" in line for line in printed)


def test_a_stroke_through_the_hidden_api_reaches_the_export_and_undo_takes_it_back(client, photo):
    """The stroke event as the page will send it (one JSON value when the stroke ends), over HTTP."""
    from tests.test_strokes import brute_force

    _load(client, photo)
    _click(client, 250, 150)
    before = _object1_mask(client.predict(api_name="/export"))
    client.predict({"points": [[20, 20], [120, 60]], "radius": 5}, 0.5, True, api_name="/stroke")
    after = _object1_mask(client.predict(api_name="/export"))
    np.testing.assert_array_equal(after, before | brute_force([[20, 20], [120, 60]], 5, (300, 500)))
    with pytest.raises(AppError, match="radius"):
        client.predict({"points": [[20, 20]], "radius": 1e6}, 0.5, True, api_name="/stroke")
    client.predict(0.5, True, api_name="/undo")
    np.testing.assert_array_equal(_object1_mask(client.predict(api_name="/export")), before)


def _object1_mask(files) -> np.ndarray:
    return np.asarray(Image.open(next(f for f in files if str(f).endswith("_object1_mask.png")))) == 255
