"""The app side of the Ray Serve backend, without Ray: the HTTP client, its faults and the start-up errors.

The server here is a real HTTP server (stdlib) around the real replica class
:class:`sam_serve.ray_serve.EncoderReplica` on the fixture model, so the bytes on
the wire are the deployment's; Ray only adds routing between replicas, which
tests/test_ray_serve.py covers on a real local Ray.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from sam_onnx import Sam2Predictor
from sam_onnx.encoders.remote import (
    ClusterUnavailableError,
    RemoteEncoder,
    normalise_address,
)
from sam_onnx.encoders.wire import EMBEDDING_BYTES
from sam_onnx.errors import InvalidImageError, ModelLoadError
from sam_serve.ray_serve import EncoderReplica, probe
from tests.replica_server import (
    FIXTURE,
    ReplicaServer,
    as_float16,
    fixture_predictor,
    fixture_replica,
    free_port,
    pixels,
)

UNREACHABLE_SECONDS = 5.0
FLOAT16_PIXEL_FLIPS = 4
"""Most mask pixels that flipped between float16 and float32 embeddings on this fixture (docs/ray-serve.md)."""


@pytest.fixture(scope="module")
def replica() -> EncoderReplica:
    return fixture_replica()


@pytest.fixture(scope="module")
def local() -> Sam2Predictor:
    return fixture_predictor()


@pytest.fixture
def server(replica):
    srv = ReplicaServer(replica)
    yield srv
    srv.stop()


def test_embeddings_are_the_local_ones_rounded_to_float16(server, local):
    remote = RemoteEncoder.connect(server.url)
    x = pixels(1)
    got = remote.encode(x)
    want = as_float16(local.encoder.encode(x))
    assert all(g.dtype == np.float32 and np.array_equal(g, w) for g, w in zip(got, want))
    assert remote.name == "ray:fp32" and server.url in remote.description


def test_a_failed_request_is_retried_once(server, local):
    remote = RemoteEncoder.connect(server.url)
    server.fail_next = 1  # what Serve answers when the replica dies mid-request
    x = pixels(2)
    assert all(np.array_equal(g, w) for g, w in zip(remote.encode(x), as_float16(local.encoder.encode(x))))
    assert remote.stats.retries == 1 and server.encodes >= 1


def test_two_failures_give_the_user_a_message_naming_the_cluster(server):
    remote = RemoteEncoder.connect(server.url)
    server.fail_next = 2
    with pytest.raises(ClusterUnavailableError, match="127.0.0.1") as info:
        remote.encode(pixels(3))
    assert "kept" in str(info.value) and remote.stats.retries == 1


def test_a_lost_cluster_is_a_message_or_the_local_fallback(replica, local):
    server = ReplicaServer(replica)
    plain = RemoteEncoder.connect(server.url)
    calls = []

    def load_local():
        calls.append(1)
        return local.encoder

    with_fallback = RemoteEncoder.connect(server.url, fallback=load_local)
    server.stop()
    started = time.perf_counter()
    with pytest.raises(ClusterUnavailableError, match="connection refused"):
        plain.encode(pixels(4))
    assert time.perf_counter() - started < UNREACHABLE_SECONDS
    x = pixels(5)
    got = with_fallback.encode(x)
    assert all(np.array_equal(g, w) for g, w in zip(got, local.encoder.encode(x)))  # exact: encoded here, float32
    with_fallback.encode(x)
    assert calls == [1] and with_fallback.stats.fallbacks == 2  # loaded once, then reused


def test_unreachable_deployment_at_start_up_names_the_address():
    port = free_port()
    started = time.perf_counter()
    with pytest.raises(ModelLoadError, match=f"http://127.0.0.1:{port}/sam-encoder is unreachable"):
        RemoteEncoder.connect(f"127.0.0.1:{port}")
    assert time.perf_counter() - started < UNREACHABLE_SECONDS
    with pytest.raises(ModelLoadError, match=f"127.0.0.1:{port} is unreachable"):
        probe(f"127.0.0.1:{port}")


@pytest.mark.parametrize(("address", "url"), [
    ("10.1.2.3", "http://10.1.2.3:8000/sam-encoder"),
    ("head:9000", "http://head:9000/sam-encoder"),
    ("http://head:8000/", "http://head:8000/sam-encoder"),
    ("https://enc.example/custom", "https://enc.example:443/custom"),
])
def test_addresses_are_normalised(address, url):
    assert normalise_address(address) == url


@pytest.mark.parametrize("address", ["", "ray://head:10001", "http://head:port"])
def test_bad_addresses_are_explained(address):
    with pytest.raises(ModelLoadError, match="ray-address"):
        normalise_address(address)


def test_wrong_input_is_refused_before_sending():
    remote = RemoteEncoder("http://127.0.0.1:9/sam-encoder", name="ray:fp32", description="")
    with pytest.raises(InvalidImageError):
        remote.encode(np.zeros((1, 3, 512, 512), np.float32))
    assert remote.stats.requests == 0 and EMBEDDING_BYTES == 8_388_608


def test_the_cli_encodes_on_the_deployment_and_names_an_unreachable_one(server, tmp_path, capsys):
    from sam_onnx.cli import main

    base = [str(FIXTURE / "image.png"), "--point", "120,70", "--model-dir", str(FIXTURE), "--threads", "1",
            "--encoder", "fp32", "-q"]
    before = server.encodes
    assert main([*base, "--encoder-backend", "ray", "--ray-address", server.url,
                 "--out", str(tmp_path / "ray.png")]) == 0
    assert server.encodes == before + 1
    assert main([*base, "--out", str(tmp_path / "local.png")]) == 0
    ray_mask, local_mask = (np.asarray(Image.open(tmp_path / n)) > 0 for n in ("ray.png", "local.png"))
    assert (ray_mask != local_mask).sum() <= FLOAT16_PIXEL_FLIPS  # float16 transfer: a few boundary pixels at most
    port = free_port()
    assert main([*base, "--encoder-backend", "ray", "--ray-address", f"127.0.0.1:{port}",
                 "--out", str(tmp_path / "x.png")]) != 0
    assert f"127.0.0.1:{port}" in capsys.readouterr().err


def test_the_replica_answers_only_its_protocol(server):
    """The routing and the body check Serve runs (EncoderReplica.respond) also answer here."""
    import urllib.error
    import urllib.request

    short = urllib.request.Request(f"{server.url}/encode", data=b"\0" * 16, method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(short, timeout=10)
    assert refused.value.code == 400 and "got 16" in refused.value.read().decode()
    with pytest.raises(urllib.error.HTTPError) as unknown:
        urllib.request.urlopen(f"{server.url}/nothing", timeout=10)
    assert unknown.value.code == 404 and server.encodes == 0
