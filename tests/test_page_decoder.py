"""The page decoder's HTTP side (sam_demo.page_decoder): what each route serves, to whom, and how it is cached.

Served through Starlette's test client with the same routes and middleware the app passes to Gradio.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.testclient import TestClient

from sam_demo import page_decoder
from sam_onnx import Sam2Predictor, web
from sam_onnx.geometry import Geometry
from sam_onnx.types import ImageEmbedding
from tests.test_reference_fixture import FIXTURE
from tools import vendor_ort

TOKEN = "tab-one-token_0123456789"
OTHER_TOKEN = "tab-two-token_0123456789"
KEY, OTHER_KEY = "a" * 64, "b" * 64
ORIGINAL_HW = (300, 400)


def _embedding(seed: int) -> ImageEmbedding:
    rng = np.random.default_rng(seed)
    return ImageEmbedding([rng.standard_normal((1, *chw), dtype=np.float32) for chw in ((32, 256, 256),
                           (64, 128, 128), (256, 64, 64))], Geometry(ORIGINAL_HW))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    predictor = Sam2Predictor.from_files(FIXTURE / "encoder.onnx", FIXTURE / "decoder.onnx", threads=1)
    assets = page_decoder.prepare(predictor, tmp_path_factory.mktemp("cache"))
    tokens = {TOKEN: KEY, OTHER_TOKEN: OTHER_KEY}
    embeddings = {KEY: _embedding(0), OTHER_KEY: _embedding(1)}
    app = Starlette(routes=page_decoder.routes(assets, tokens.get, embeddings.get),
                    middleware=[Middleware(page_decoder.CrossOriginIsolation)])
    return assets, embeddings, TestClient(app)


def test_onnxruntime_web_is_served_compressed_and_immutable(setup):
    assets, _, client = setup
    prefix = "/" + assets.page_config()["wasmPrefix"]
    response = client.get(prefix + "ort-wasm-simd-threaded.wasm", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["content-type"] == "application/wasm"
    assert "immutable" in response.headers["cache-control"] and "max-age=31536000" in response.headers["cache-control"]
    manifest = page_decoder.ort_manifest()["files"]["ort-wasm-simd-threaded.wasm"]
    assert int(response.headers["content-length"]) == manifest["stored_bytes"] < 4_000_000
    assert hashlib.sha256(response.content).hexdigest() == manifest["sha256"]  # httpx inflated it
    plain = client.get(prefix + "ort-wasm-simd-threaded.wasm", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and hashlib.sha256(plain.content).hexdigest() == manifest["sha256"]
    module = client.get("/" + assets.page_config()["ortUrl"])
    assert module.headers["content-type"].startswith("text/javascript") and b"ONNX Runtime Web" in module.content


@pytest.mark.parametrize("path", ["/sam-page/ort/0.0.1/ort.wasm.min.mjs", "/sam-page/ort/{v}/ort.all.min.mjs",
                                  "/sam-page/ort/{v}/..%2Fmanifest.json", "/sam-page/js/../page_decoder.py",
                                  "/sam-page/decoder/0123.onnx", "/sam-page/js/nothing.js"])
def test_unknown_files_are_not_found(setup, path):
    _, _, client = setup
    assert client.get(path.format(v=vendor_ort.VERSION)).status_code == 404


def test_the_decoder_copy_is_served_by_content_hash_and_immutable(setup):
    assets, _, client = setup
    response = client.get("/" + assets.page_config()["decoderUrl"])
    assert response.status_code == 200 and "immutable" in response.headers["cache-control"]
    assert hashlib.sha256(response.content).hexdigest() == assets.decoder.sha256
    assert len(response.content) == assets.page_config()["decoderBytes"]


def test_the_decoder_scripts_are_revalidated(setup):
    assets, _, client = setup
    response = client.get("/" + assets.page_config()["workerUrl"])
    assert response.status_code == 200 and response.headers["cache-control"] == "no-cache"
    assert response.headers["content-type"].startswith("text/javascript") and "etag" in response.headers
    again = client.get("/" + assets.page_config()["workerUrl"], headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_embeddings_go_only_to_the_token_of_that_image(setup):
    assets, embeddings, client = setup
    mine = client.get("/" + assets.embeddings_urls(KEY, TOKEN)["url"])
    assert mine.status_code == 200 and mine.headers["cache-control"] == "private, no-store"
    parsed = web.read_embedding_payload(mine.content)
    assert parsed.image_key == KEY and parsed.original_hw == ORIGINAL_HW
    assert np.array_equal(parsed.features[2], embeddings[KEY].features[2].astype(np.float16))
    assert len(mine.content) <= 8.5e6
    theirs = client.get("/" + assets.embeddings_urls(OTHER_KEY, OTHER_TOKEN)["url"])
    assert web.read_embedding_payload(theirs.content).image_key == OTHER_KEY
    for forged in ("not-a-token", KEY, "x" * 65, "%2e%2e"):
        response = client.get(f"/sam-page/embeddings/{assets.model_tag}/{forged}")
        assert response.status_code == 404 and response.content == b""


def test_embeddings_of_another_model_are_not_served(setup):
    """A page holding an old model tag (the server restarted with another model) gets nothing to mix."""
    assets, _, client = setup
    assert client.get(f"/sam-page/embeddings/{'0' * 16}/{TOKEN}").status_code == 404


def test_the_cache_url_names_no_token(setup):
    assets, _, _ = setup
    urls = assets.embeddings_urls(KEY, TOKEN)
    assert TOKEN in urls["url"] and TOKEN not in urls["cacheUrl"] and KEY in urls["cacheUrl"]
    assert assets.model_tag in urls["cacheUrl"]


def test_every_response_makes_the_page_cross_origin_isolated(setup):
    assets, _, client = setup
    for path in (assets.page_config()["ortUrl"], "sam-page/js/nothing.js", assets.page_config()["decoderUrl"]):
        headers = client.get("/" + path).headers
        assert headers["cross-origin-opener-policy"] == "same-origin"
        assert headers["cross-origin-embedder-policy"] == "require-corp"
        assert headers["cross-origin-resource-policy"] == "same-origin"


def test_a_model_tag_changes_with_the_decoder(setup):
    assets, _, _ = setup
    predictor = Sam2Predictor.from_files(FIXTURE / "encoder.onnx", FIXTURE / "decoder.onnx", threads=1)
    assert page_decoder.model_tag(predictor, assets.decoder.sha256) == assets.model_tag
    assert page_decoder.model_tag(predictor, "0" * 64) != assets.model_tag


def test_no_decoder_file_means_no_page_decoder(tmp_path):
    import onnxruntime as ort

    from sam_onnx.graph_repair import load_repaired_decoder

    decoder_bytes, _ = load_repaired_decoder(FIXTURE / "decoder.onnx")
    sessions = [ort.InferenceSession(path, providers=["CPUExecutionProvider"])
                for path in (str(FIXTURE / "encoder.onnx"), decoder_bytes)]
    assert page_decoder.prepare(Sam2Predictor(*sessions), tmp_path) is None



def test_the_config_says_where_the_files_are_or_why_previews_are_off(setup):
    assets, _, client = setup
    on = client.get("/sam-page/config.json")
    assert on.status_code == 200 and on.json()["enabled"] is True
    assert on.json()["decoderUrl"] == assets.page_config()["decoderUrl"]
    off_app = Starlette(routes=page_decoder.routes(None, {}.get, {}.get, off_reason="started with --no-page-decoder"))
    off = TestClient(off_app)
    assert off.get("/sam-page/config.json").json() == {"enabled": False, "reason": "started with --no-page-decoder"}
    assert off.get("/sam-page/js/preview.js").status_code == 200  # the view still loads the plugin, which stays idle
    assert off.get("/" + assets.page_config()["decoderUrl"]).status_code == 404


def test_scene_fields_name_the_image_and_the_tabs_grant(setup):
    assets, _, _ = setup
    fields = page_decoder.scene_fields(assets, KEY, TOKEN)["embeddings"]
    assert fields["key"] == KEY and TOKEN in fields["url"] and TOKEN not in fields["cacheUrl"]
    assert page_decoder.scene_fields(None, KEY, TOKEN) == {}


def test_an_upload_names_its_embeddings_only_once_encoded(setup, tmp_path):
    """The upload's first step shows the photo before the encoder runs: its scene names no embeddings (a fetch
    then would start a second encode); the ready step's scene does, with the tab's grant."""
    import app
    from PIL import Image

    from sam_demo.service import SegmentationService
    from tests.app_support import OUT, scene_of

    assets, _, _ = setup
    predictor = Sam2Predictor.from_files(FIXTURE / "encoder.onnx", FIXTURE / "decoder.onnx", threads=1)
    service = SegmentationService(predictor, image_cache_mb=64, page_decoder=assets)
    path = tmp_path / "photo.png"
    Image.fromarray(np.full((60, 80, 3), 120, np.uint8)).save(path)
    photo, ready = list(app.upload(service, str(path), None, 0.5, True))
    assert "embeddings" not in scene_of(photo)["image"]
    image = scene_of(ready)["image"]
    key = ready[OUT["state"]].record.key
    assert image["embeddings"] == {"key": key, **assets.embeddings_urls(key, image["token"])}
    assert service.grants.resolve(image["token"]) == key
