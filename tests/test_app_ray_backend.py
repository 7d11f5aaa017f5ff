"""The app with ``--encoder-backend ray``: start-up checks, uploads encoded by the deployment, a lost cluster.

The deployment here is the real replica class behind a stdlib HTTP server
(tests/test_remote_encoder.py); tests/test_ray_serve.py runs it on a real Ray.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

import app
from sam_onnx import Sam2Predictor
from sam_onnx.errors import ModelLoadError
from sam_serve.ray_serve import EncoderReplica
from tests.replica_server import FIXTURE, ReplicaServer, as_float16, fixture_predictor, fixture_replica, free_port


@pytest.fixture(scope="module")
def local() -> Sam2Predictor:
    return fixture_predictor()


@pytest.fixture(scope="module")
def replica() -> EncoderReplica:
    return fixture_replica()


@pytest.fixture
def server(replica):
    srv = ReplicaServer(replica)
    yield srv
    srv.stop()


def test_the_app_refuses_to_start_against_an_unreachable_cluster(capsys):
    port = free_port()
    args = app.parse_args(["--encoder-backend", "ray", "--ray-address", f"http://127.0.0.1:{port}",
                           "--model-dir", str(FIXTURE)])
    with pytest.raises(ModelLoadError, match=f"127.0.0.1:{port}"):
        app.make_service(args)
    args = app.parse_args(["--encoder-backend", "ray", "--model-dir", str(FIXTURE)])
    with pytest.raises(ModelLoadError, match="needs --ray-address"):
        app.make_service(args)


def test_the_app_encodes_uploads_on_the_deployment(server, local, tmp_path):
    args = app.parse_args(["--encoder-backend", "ray", "--ray-address", server.url, "--model-dir", str(FIXTURE),
                           "--no-warmup", "--ray-uploads", "3", "--threads", "1"])
    service = app.make_service(args)
    assert service.upload_concurrency == 3 and service.predictor.info.encoder_name == "ray:fp32"
    before = server.encodes
    record, _ = service.open_image(FIXTURE / "image.png")
    assert server.encodes == before + 1
    embedding = service.cached_image(record).embedding
    want = local.encode(np.asarray(Image.open(FIXTURE / "image.png").convert("RGB")))
    assert all(np.array_equal(g, w) for g, w in zip(embedding.features, as_float16(want.features)))
    # The cluster goes away: the next upload is a message for the user; the open image still decodes here.
    server.stop()
    other = tmp_path / "other.png"
    Image.fromarray(np.full((90, 160, 3), 200, np.uint8)).save(other)
    with pytest.raises(Exception, match="not answering") as info:
        app.open_image(service, str(other))
    assert type(info.value).__name__ == "Error"  # gr.Error: shown to the user, the session state untouched
    assert service.cached_image(record).embedding is embedding


@pytest.mark.parametrize("uploads_at_once", [1, 3])
def test_ray_uploads_sets_how_many_uploads_are_encoded_at_once(uploads_at_once, replica, tmp_path):
    """Three users upload together: with --ray-uploads 3 the deployment gets all three at once, with 1 one by one."""
    hold_s = 0.5  # each encode request is held this long, so three sent together overlap however busy the CPU is
    srv = ReplicaServer(replica, hold_s)
    try:
        args = app.parse_args(["--encoder-backend", "ray", "--ray-address", srv.url, "--model-dir", str(FIXTURE),
                               "--no-warmup", "--ray-uploads", str(uploads_at_once), "--threads", "1"])
        service = app.make_service(args)
        paths = []
        for i in range(3):
            paths.append(tmp_path / f"user{i}.png")
            Image.fromarray(np.full((80 + i, 120, 3), 40 * i, np.uint8)).save(paths[-1])
        with ThreadPoolExecutor(3) as pool:
            infos = list(pool.map(lambda p: service.open_image(p)[1], paths))
        assert not any(info["cache_hit"] for info in infos) and srv.encodes == 3
        assert srv.most_in_flight == uploads_at_once
    finally:
        srv.stop()
