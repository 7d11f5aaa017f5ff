"""Choosing the model size: --model / SAM_ONNX_MODEL / from_pretrained(model=...) in Python, the CLI and the app.

Full-size models of every size are too slow for the test suite, so each size's folder here holds the reduced
real-architecture fixture (tests/fixtures/sam2_tiny: a plain-trace decoder with the onnxruntime Concat quirk):
what is tested is that the size chosen is the one loaded, named everywhere, and that the decoder repair and
its verification run for it. The full-size stand-ins of every size were run by hand (README: Model sizes).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import app
from sam_demo import bundle
from sam_demo.editor import Editor
from sam_demo.service import SegmentationService
from sam_onnx import ModelLoadError, Point, Prompts, Sam2Predictor, encoders
from sam_onnx.models import MODEL_ENV, MODELS
from tests.conftest import make_rgb

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "sam2_tiny"


@pytest.fixture(scope="module")
def sizes_root(tmp_path_factory) -> Path:
    """A model folder with one subfolder per size, each the reduced real-architecture fixture."""
    root = tmp_path_factory.mktemp("sizes")
    for size in MODELS:
        (root / size).mkdir()
        for name in ("encoder.onnx", "decoder.onnx"):
            (root / size / name).symlink_to(FIXTURE / name)
    return root


@pytest.fixture(autouse=True)
def no_model_env(monkeypatch):
    monkeypatch.delenv(MODEL_ENV, raising=False)
    monkeypatch.delenv("SAM_ONNX_MODEL_DIR", raising=False)


@pytest.mark.parametrize("size", list(MODELS))
def test_python_loads_the_size_asked_for_with_the_decoder_repaired_and_verified(sizes_root, size):
    predictor = Sam2Predictor.from_pretrained(model=size, model_dir=sizes_root, variant="fp32", threads=1)
    info = predictor.info
    assert info.model == f"sam2.1-hiera-{size}" and info.summary()["model"] == info.model
    assert info.source.endswith(f"/{size}") and info.decoder_path.startswith(str(sizes_root / size))
    assert info.repaired_concats >= 1  # the plain-trace decoder's Concat quirk was found and repaired
    assert info.describe().startswith(f"sam2.1-hiera-{size} from local folder")
    result = predictor.decode(predictor.encode(make_rgb(64, 96)), Prompts((Point(40, 30),)))
    assert result.best_mask.shape == (64, 96)


def test_the_environment_picks_the_size_and_an_argument_wins(sizes_root, monkeypatch):
    monkeypatch.setenv(MODEL_ENV, "large")
    assert Sam2Predictor.from_pretrained(model_dir=sizes_root, variant="fp32", threads=1).info.model == \
        "sam2.1-hiera-large"
    encoder = encoders.from_pretrained(model="tiny", model_dir=sizes_root, variant="fp32", threads=1)
    assert str(sizes_root / "tiny") in encoder.path


def test_a_folder_of_one_model_is_named_after_the_size_given(sizes_root):
    predictor = Sam2Predictor.from_pretrained(model="base-plus", model_dir=sizes_root / "tiny", variant="fp32",
                                              threads=1)
    assert predictor.info.model == "sam2.1-hiera-base-plus" and predictor.info.source.endswith("/tiny")


def test_an_unknown_model_is_refused_with_the_valid_names():
    with pytest.raises(ModelLoadError, match="choose one of tiny, small, base-plus, large"):
        Sam2Predictor.from_pretrained(model="huge")


def _cli(*args, env=None, timeout=120):
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    full_env.pop("SAM_ONNX_MODEL_DIR", None)
    return subprocess.run([sys.executable, "-m", "sam_onnx", *args], capture_output=True, text=True, cwd=REPO,
                          env=full_env, timeout=timeout)


def test_cli_model_flag_and_its_report(sizes_root, tmp_path):
    image = tmp_path / "photo.png"
    from PIL import Image

    Image.fromarray(make_rgb(48, 64)).save(image)
    out = tmp_path / "r.json"
    run = _cli(str(image), "--point", "20,20", "--model", "tiny", "--model-dir", str(sizes_root), "--encoder", "fp32",
               "--json", str(out), "-q")
    assert run.returncode == 0, run.stderr
    assert json.loads(out.read_text())["model"]["model"] == "sam2.1-hiera-tiny"


@pytest.mark.parametrize("args, env", [(["--model", "huge"], {}), ([], {MODEL_ENV: "medium"})])
def test_cli_unknown_model_exits_2_with_the_valid_names(args, env, tmp_path):
    run = _cli("photo.png", "--point", "1,1", "--out", str(tmp_path / "m.png"), *args, env=env)
    assert run.returncode == 2
    assert "tiny" in run.stderr and "base-plus" in run.stderr and "large" in run.stderr
    assert "Traceback" not in run.stderr


def test_missing_model_files_offline_exit_at_once_naming_the_file(tmp_path):
    """HF_HUB_OFFLINE with an empty cache: exit status 1 within seconds, naming the size's first missing file."""
    from PIL import Image

    image = tmp_path / "photo.png"
    Image.fromarray(make_rgb(48, 64)).save(image)
    started = time.perf_counter()
    run = _cli(str(image), "--point", "20,20", "--model", "large", "--encoder", "fp32", "--out",
               str(tmp_path / "m.png"), env={"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9"})
    seconds = time.perf_counter() - started
    assert run.returncode == 1
    assert "onnx/vision_encoder.onnx of onnx-community/sam2.1-hiera-large-ONNX" in run.stderr
    assert "HF_HUB_OFFLINE" in run.stderr and "Traceback" not in run.stderr
    assert seconds < 30  # a process start and an import; nothing waits for the network (measured ~3 s)


APP_START_FAILURE_CPU_S = 30.0
"""CPU seconds the app may spend before it stops for a missing model: a process start and Gradio's import
(measured 5 s of CPU, 45 s of wall time at load average 15 on the 2 shared cores; so CPU time, not wall time)."""


@contextlib.contextmanager
def _hub_contacts():
    """A local stand-in for the hub: a listening socket that counts the connections made to it.

    Yields ``(endpoint URL, list of contacts)``; nothing is ever answered (a process that waited for the
    hub would wait here, as it would for a slow network).
    """
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    contacts: list[tuple[str, int]] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, address = server.accept()
            except OSError:
                continue
            contacts.append(address)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", contacts
    finally:
        stop.set()
        thread.join()
        server.close()


@pytest.mark.timeout(240)  # a process importing Gradio: 45 s of wall time at load average 15 (see above)
def test_app_missing_model_files_offline_exit_at_once_naming_the_file(tmp_path):
    """``app.py --model tiny`` offline with an empty cache: status 1, its last line names tiny's first missing file
    (the size asked for, not the default's), before anything is served. "At once": it never contacts the hub
    (a counting socket stands in for it) and stops after a bounded amount of its own CPU time."""
    with _hub_contacts() as (endpoint, contacts):
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": endpoint,
               "GRADIO_ANALYTICS_ENABLED": "False"}
        env.pop("SAM_ONNX_MODEL_DIR", None)
        env.pop(MODEL_ENV, None)
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        run = subprocess.run([sys.executable, str(REPO / "app.py"), "--model", "tiny", "--port", "0", "--no-warmup"],
                             capture_output=True, text=True, cwd=REPO, env=env, timeout=200)
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    last = run.stderr.strip().splitlines()[-1]
    assert run.returncode == 1, run.stderr[-2000:]
    assert last.startswith("error: ") and "onnx/vision_encoder.onnx of onnx-community/sam2.1-hiera-tiny-ONNX" in last
    assert "HF_HUB_OFFLINE" in last and "Traceback" not in run.stderr and "serving on" not in run.stderr
    assert contacts == [], "the app tried to reach the hub although downloads are off"
    assert cpu_s < APP_START_FAILURE_CPU_S


@pytest.mark.parametrize("argv, env", [(["--model", "huge"], {}), ([], {MODEL_ENV: "xl"})])
def test_app_unknown_model_exits_2_with_the_valid_names(argv, env, monkeypatch, capsys):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as exit_info:
        app.parse_args(argv)
    assert exit_info.value.code == 2
    assert "tiny, small, base-plus, large" in capsys.readouterr().err.replace("'", "")


def test_app_model_flag(monkeypatch):
    assert app.parse_args(["--model", "tiny"]).model == "tiny"
    monkeypatch.setenv(MODEL_ENV, "base_plus")
    assert app.parse_args([]).model == "base-plus"
    monkeypatch.delenv(MODEL_ENV)
    assert app.parse_args([]).model == "small"


@pytest.fixture(scope="module")
def tiny_service(sizes_root):
    predictor = Sam2Predictor.from_pretrained(model="tiny", model_dir=sizes_root, variant="fp32", threads=1)
    return SegmentationService(predictor)


def test_status_line_segment_answer_and_exports_name_the_model(tiny_service, tmp_path):
    from PIL import Image

    path = tmp_path / "photo.png"
    Image.fromarray(make_rgb(48, 64)).save(path)
    out = app.show_image(tiny_service, app.open_image(tiny_service, str(path)), 0.5, True)
    status = next(v for v in out if isinstance(v, str) and "encoder" in v and "threads" in v)
    assert "sam2.1-hiera-tiny" in status
    answer = tiny_service.segment(str(path), [Prompts((Point(20, 20),))])
    assert answer["model"]["model"] == "sam2.1-hiera-tiny"
    record, _ = tiny_service.open_image(path)
    editor = Editor.start(record.original_hw).add_point(20, 20)
    files = tiny_service.export(record, editor, tmp_path / "export")
    coco = json.loads(next(f for f in files if f.name.endswith("_coco_rle.json")).read_text())
    prompts_file = next(f for f in files if f.name.endswith("_prompts.json"))
    assert coco["info"]["model"] == "sam2.1-hiera-tiny"
    assert json.loads(prompts_file.read_text())["model"] == "sam2.1-hiera-tiny"
    # a prompts file made with one model loads on any: the model is information, not a key
    again = bundle.read_prompts_file(prompts_file, record.original_hw, record.key)
    assert [o.prompts for o in again.objects] == [o.prompts for o in editor.objects]


def test_openvino_blobs_are_kept_per_model(tmp_path):
    from sam_onnx.encoders.base import EncoderSource
    from sam_onnx.encoders.openvino_cpu import blob_cache_dir

    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    a.write_bytes(FIXTURE.joinpath("encoder.onnx").read_bytes())
    b.write_bytes(FIXTURE.joinpath("decoder.onnx").read_bytes())
    source = EncoderSource(a, tmp_path / "cache", 1)
    assert blob_cache_dir(source, a) != blob_cache_dir(source, b)
    assert blob_cache_dir(source, a) == blob_cache_dir(source, a)
    assert blob_cache_dir(source, a).parent == tmp_path / "cache" / "openvino"
    assert np.all([p.is_relative_to(tmp_path / "cache") for p in (blob_cache_dir(source, a),)])
