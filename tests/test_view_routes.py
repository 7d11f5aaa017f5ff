"""The view's HTTP routes and their access tokens: only a tab that opened an image gets that image's files.

``sam_demo.grants`` issues one unguessable token per (browser tab, image); ``sam_demo.routes`` serves the
view's scripts, an image's display and full-resolution copies and its mask layers (``sam_demo.layers``)
only for the image a token names. Served here with Starlette's test client on the analytic models.
"""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import Image
from starlette.applications import Starlette
from starlette.testclient import TestClient

import app
from sam_demo import layers
from sam_demo.editor import Editor
from sam_demo.layers import draw_layer
from sam_demo.grants import Grants
from sam_demo.service import SegmentationService
from sam_onnx.types import Point, Prompts
from tests.conftest import make_rgb


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------------------- grants
def test_one_token_per_tab_and_image_and_each_resolves_to_its_image():
    grants = Grants()
    a = grants.issue("tab-1", "image-a")
    assert grants.issue("tab-1", "image-a") == a, "the same tab and image keep their token"
    b = grants.issue("tab-2", "image-a")
    c = grants.issue("tab-1", "image-b")
    assert len({a, b, c}) == 3, "another tab or another image gets another token"
    assert len(a) >= 22, "128 random bits"
    assert [grants.resolve(t) for t in (a, b, c)] == ["image-a", "image-a", "image-b"]
    assert grants.resolve("not-a-token") is None and grants.resolve(None) is None


def test_a_token_expires_after_its_ttl_unless_used():
    clock = Clock()
    grants = Grants(ttl_s=10, clock=clock)
    used, idle = grants.issue("t1", "k"), grants.issue("t2", "k")
    clock.now = 9
    assert grants.resolve(used) == "k"  # a use extends its life
    clock.now = 12
    assert grants.resolve(used) == "k"
    assert grants.resolve(idle) is None, "unused for longer than the TTL: gone"
    assert grants.issue("t2", "k") != idle, "a new token after expiry (the old one stays dead)"
    assert grants.resolve(idle) is None


def test_the_registry_is_bounded_least_recently_used_first_out():
    grants = Grants(capacity=3)
    tokens = [grants.issue(f"tab{i}", "k") for i in range(3)]
    grants.resolve(tokens[0])  # tokens[1] is now the least recently used
    grants.issue("tab3", "k")
    assert len(grants) == 3
    assert grants.resolve(tokens[1]) is None
    assert grants.resolve(tokens[0]) == "k" and grants.resolve(tokens[2]) == "k"


def test_grants_from_many_threads_stay_consistent():
    grants = Grants(capacity=10_000)
    out: dict[int, str] = {}

    def work(i: int) -> None:
        for _ in range(50):
            token = grants.issue(f"tab{i % 8}", "k")
            assert grants.resolve(token) == "k"
        out[i] = grants.issue(f"tab{i % 8}", "k")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(grants) == 8
    assert all(out[i] == out[i % 8] for i in out), "each tab has one token whatever the interleaving"


# ---------------------------------------------------------------------------- routes
@pytest.fixture(scope="module")
def service(predictor):
    return SegmentationService(predictor, image_cache_mb=64, display_max_side=200)


@pytest.fixture(scope="module")
def http(service):
    with TestClient(Starlette(routes=app.app_routes(service))) as client:
        yield client


@pytest.fixture(scope="module")
def photos(tmp_path_factory, service):
    """Two opened images: a (300, 500) one shown downscaled to 120 x 200, and a small one shown as it is."""
    folder = tmp_path_factory.mktemp("photos")
    records = {}
    for name, hw, seed in (("a", (300, 500), 1), ("b", (90, 120), 2)):
        path = folder / f"{name}.png"
        Image.fromarray(make_rgb(*hw, seed=seed)).save(path)
        records[name] = service.open_image(path)[0]
    return records


def test_the_view_scripts_are_served_and_revalidated(http):
    for name in ("main.js", "geometry.js", "render.js"):
        r = http.get(f"/view/static/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
        assert r.headers["cache-control"] == "no-cache" and "etag" in r.headers
    for bad in ("nothing.js", "..%2Froutes.py", "main.py", "%2E%2E%2Fgrants.py"):
        assert http.get(f"/view/static/{bad}").status_code == 404, bad


def test_a_token_gets_its_image_and_nothing_else(service, http, photos):
    a, b = photos["a"], photos["b"]
    token_a = service.grants.issue("tab-1", a.key)
    r = http.get(f"/view/{token_a}/display.jpg")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert "immutable" in r.headers["cache-control"] and "private" in r.headers["cache-control"]
    assert Image.open(io.BytesIO(r.content)).size == (200, 120)
    full = http.get(f"/view/{token_a}/full.jpg")
    assert full.status_code == 200 and Image.open(io.BytesIO(full.content)).size == (500, 300)
    for url in ("/view/AAAAAAAAAAAAAAAAAAAAAA/display.jpg", "/view/../display.jpg", f"/view/{token_a}x/full.jpg"):
        assert http.get(url).status_code == 404, url
    token_b = service.grants.issue("tab-2", b.key)
    shown_b = Image.open(io.BytesIO(http.get(f"/view/{token_b}/display.jpg").content))
    assert shown_b.size == (120, 90), "another tab's token names its own image"


def test_mask_layers_are_content_addressed_and_only_served_for_their_image(service, http, photos):
    a = photos["a"]
    prompts = Prompts((Point(250, 150),))
    result = service.results(a, [prompts])[0]
    layer_id, layer = service.layer(a, prompts, 1, result)
    assert layer_id == layers.LayerSpec(a.key, prompts, 1, a.frame.display_hw).layer_id
    token_a = service.grants.issue("tab-1", a.key)
    r = http.get(f"/view/{token_a}/layer/{layer_id}.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert "immutable" in r.headers["cache-control"]
    assert r.content[24] == 1, "a 1-bit PNG (IHDR bit depth)"
    mask = layers.decode_png(r.content)
    assert mask.shape == layer.size and mask.any()
    # the second session: its own token is valid, but for its own image only
    token_b = service.grants.issue("tab-2", photos["b"].key)
    assert http.get(f"/view/{token_b}/layer/{layer_id}.png").status_code == 404
    assert http.get(f"/view/{token_a}/layer/{'0' * 32}.png").status_code == 404


def test_an_evicted_layer_is_drawn_again_the_same(service, http, photos):
    a = photos["a"]
    prompts = Prompts((Point(100, 60),))
    layer_id, layer = service.layer(a, prompts, 0, service.results(a, [prompts])[0])
    token = service.grants.issue("tab-1", a.key)
    service._layers.clear()
    service._results.clear()
    again = http.get(f"/view/{token}/layer/{layer_id}.png")
    assert again.status_code == 200 and again.content == layer.png


def test_layer_pixels_are_the_display_mask_and_its_rectangle_maps_to_original_pixels(service, photos):
    a = photos["a"]
    prompts = Prompts((Point(250, 150),))
    result = service.results(a, [prompts])[0]
    layer = layers.draw_layer(result, 1, a.frame)
    full = np.zeros(a.frame.display_hw, bool)
    (r0, c0), (h, w) = layer.offset, layer.size
    full[r0:r0 + h, c0:c0 + w] = layers.decode_png(layer.png)
    assert np.array_equal(full, result.mask(1, a.frame.display_hw)), "the layer is the display-size mask"
    oh, ow = a.original_hw
    dh, dw = a.frame.display_hw
    assert layer.rect == pytest.approx((c0 * ow / dw, r0 * oh / dh, (c0 + w) * ow / dw, (r0 + h) * oh / dh))


def test_an_edit_needs_neither_the_pngs_nor_the_results_of_the_other_objects(service, http, photos, monkeypatch):
    """12 objects drawn; then every PNG and decoder result pushed out of their caches (other users' work): a
    click on one object decodes and draws that object only, the scene still places the other 11 where they
    were, and a page that asks for one of their PNGs gets the same bytes as before."""
    a = photos["a"]
    prompts = [Prompts((Point(30 + 35 * k, 40 + 18 * k),)) for k in range(12)]
    editor = Editor.start(a.original_hw).add_objects(prompts)
    before = service.render(a, editor)
    token = service.grants.issue("tab-1", a.key)
    layer_id, _ = before.layers[editor.objects[3].id]
    png = http.get(f"/view/{token}/layer/{layer_id}.png").content
    service._layers.clear()
    service._results.clear()
    drawn: list[int] = []
    monkeypatch.setattr(layers, "draw_layer", lambda *args, **kw: (drawn.append(1), draw_layer(*args, **kw))[1])
    edited = editor.select(editor.objects[5].id).add_point(220, 130)
    after = service.render(a, edited)
    assert after.timings_ms["decoded"] == 1 and len(drawn) == 1
    assert {k: v for k, v in after.layers.items() if k != editor.objects[5].id} == \
        {k: v for k, v in before.layers.items() if k != editor.objects[5].id}
    assert after.layers[editor.objects[5].id] != before.layers[editor.objects[5].id]
    assert http.get(f"/view/{token}/layer/{layer_id}.png").content == png  # drawn again on request, the same
