"""Rows E1-E10 of reliability.md section 3 at the app level: model files, runtime, disk, memory, hangs.

The wrapper-level halves of E1-E6 are in tests/test_hub.py (hub cache, hashes, sidecars,
providers); here ``python app.py`` itself must fail fast with the message and a non-zero
exit, and a running app must survive runtime faults with the user's work intact.
``pytest tests/reliability -k E7_``.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import app
from tests.reliability.conftest import assert_message, hang_fault, png_bytes, smooth_rgb, wrong_dtype_fault
from tests.reliability.rawapi import RawSession, file_data
from tests.test_image import bomb_png

ROOT = Path(app.__file__).resolve().parent
STARTUP_FAILURE_DEADLINE_S = 30.0


# ---------------------------------------------------------------------------- E1-E6: start-up failures
def _start_app(args: list[str], env_extra: dict[str, str]) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "SAM_ONNX_MODEL_DIR"}
    env.update({"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", **env_extra})
    return subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", "0", "--no-warmup", *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def startups(tmp_path_factory, analytic_dir):
    """Every broken start-up at once (each is a separate Python process importing Gradio)."""
    root = tmp_path_factory.mktemp("startups")
    truncated, html = root / "truncated", root / "html"
    for folder in (truncated, html):
        folder.mkdir()
    (truncated / "encoder.onnx").write_bytes((analytic_dir / "encoder.onnx").read_bytes())
    (truncated / "decoder.onnx").write_bytes((analytic_dir / "decoder.onnx").read_bytes()[:3000])
    (html / "encoder.onnx").write_text("<html><body>404 Not Found</body></html>")
    (html / "decoder.onnx").write_bytes((analytic_dir / "decoder.onnx").read_bytes())
    empty_home = root / "hf-home"
    empty_home.mkdir()
    cases = {
        "missing_dir": (["--model-dir", "/nonexistent"], {}),
        "offline_empty_cache": ([], {"HF_HOME": str(empty_home)}),
        "truncated_decoder": (["--model-dir", str(truncated)], {}),
        "html_as_encoder": (["--model-dir", str(html)], {}),
        "cuda_on_cpu_build": (["--model-dir", str(analytic_dir), "--provider", "CUDAExecutionProvider"], {}),
    }
    started = time.perf_counter()
    procs = {name: _start_app(*case) for name, case in cases.items()}
    results = {}
    for name, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=STARTUP_FAILURE_DEADLINE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        results[name] = (proc.returncode, out + err, time.perf_counter() - started)
    return results


def assert_fails_fast(result, *fragments: str) -> None:
    code, output, seconds = result
    assert code not in (0, None), output[-2000:]
    last = output.strip().splitlines()[-1]
    assert last.startswith("error: "), output[-2000:]
    for fragment in fragments:
        assert fragment in last, last
    assert "Traceback" not in output
    assert seconds < STARTUP_FAILURE_DEADLINE_S


def test_E_model_dir_missing_fails_fast(startups):
    assert_fails_fast(startups["missing_dir"], "/nonexistent does not exist", "--model-dir")


def test_E1_offline_with_nothing_cached_fails_fast(startups):
    assert_fails_fast(startups["offline_empty_cache"], "not in the Hugging Face cache", "HF_HUB_OFFLINE",
                      "--model-dir")


def test_E2_is_the_hub_test():
    """E2 (hub unreachable while downloads are allowed) takes ~25 s of huggingface_hub retries; it runs once,
    in tests/test_hub.py::test_unreachable_hub_fails_fast_with_a_clear_message."""
    from tests import test_hub

    assert hasattr(test_hub, "test_unreachable_hub_fails_fast_with_a_clear_message")


def test_E3_damaged_model_file_fails_fast_naming_it(startups):
    assert_fails_fast(startups["truncated_decoder"], "decoder.onnx", "damaged, truncated")


def test_E4_wrong_file_fails_fast_naming_it(startups):
    assert_fails_fast(startups["html_as_encoder"], "encoder.onnx", "not a valid ONNX file")


def test_E5_is_the_hub_test():
    """E5 (missing or truncated .onnx_data) is tested on hub-cache and local layouts in tests/test_hub.py."""
    from tests import test_hub

    assert hasattr(test_hub, "test_external_data_missing_or_truncated")
    assert hasattr(test_hub, "test_missing_sidecar_in_cache_is_reported")


def test_E6_unavailable_provider_fails_fast_naming_it(startups):
    assert_fails_fast(startups["cuda_on_cpu_build"], "CUDAExecutionProvider is not available", "available:")


# ---------------------------------------------------------------------------- E7-E10: faults while serving
def test_E7_decoder_error_at_request_time(work, faults):
    faults.decoder.fault = wrong_dtype_fault  # a real onnxruntime InvalidArgument, as a feed bug would give
    message = assert_message(work.session.click(30, 100), r"^The mask decoder failed to run \(\w+\); try again")
    assert "InvalidArgument" in message or "Fail" in message
    faults.reset()
    work.assert_unchanged()
    assert work.session.click(30, 100).ok  # and the same click works once the fault is gone


def test_E7_encoder_error_at_upload(work, faults):
    faults.encoder.fault = wrong_dtype_fault
    path = work.session.upload(png_bytes(smooth_rgb(96, 128, seed=70)), "new.png")
    pattern = r"^The image encoder failed to run \(\w+\); try again"
    assert_message(work.session.load(path), pattern)
    assert_message(work.session.ui_open(path), pattern)
    faults.reset()
    work.assert_unchanged()


def test_E8_disk_full_while_saving_an_output(work, monkeypatch):
    import gradio.processing_utils as processing_utils

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "/tmp/gradio/x.jpeg")

    with monkeypatch.context() as patch:
        patch.setattr(processing_utils, "save_img_array_to_cache", no_space)
        assert_message(work.session.click(30, 100), r"^The server is out of disk space")
    work.assert_unchanged()


def test_E8_disk_full_while_exporting(work, monkeypatch):
    import sam_demo.bundle as bundle_module

    class FullDisk:
        def __init__(self, *args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(bundle_module.zipfile, "ZipFile", FullDisk)
        assert_message(work.session.call("export", []), r"^The server is out of disk space")
    work.assert_unchanged()


def read_status(pid: int) -> dict[str, int]:
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) // 1024
    return values


def test_E9_memory_is_bounded_by_construction(served):
    """Many bombs at once are refused from their headers (no decode); encoder concurrency 1; capped caches."""
    before = read_status(os.getpid())
    sessions = [RawSession(served.url) for _ in range(6)]
    paths = [s.upload(bomb_png(10_000), "bomb.png") for s in sessions]
    started = time.perf_counter()
    events = [s.submit("load_image", [file_data(p), 0.5, True]) for s, p in zip(sessions, paths)]
    for s, e in zip(sessions, events):
        assert_message(s.wait(e), r"^The image is 100 MP; the limit is 40 MP\.$", deadline_s=3.0)
    assert time.perf_counter() - started < 3.0  # six 100 MP decodes would take ~20 s here
    after = read_status(os.getpid())
    assert after["VmHWM"] - before["VmHWM"] < 150, (before, after)  # one decode alone would add >= 100 MB
    stats = served.service.cache_stats()
    assert stats["images"]["max_bytes"] <= 1024 ** 3 and stats["results"]["max_bytes"] <= 256 * 1024 ** 2
    encode_limits = {fn.concurrency_limit for fn in served.demo.fns.values() if fn.concurrency_id == app.ENCODE_QUEUE}
    assert encode_limits == {1}
    for s in sessions:
        s.close()


def test_E10_a_hung_encoder_does_not_stop_the_other_queues(work, served, faults):
    release = threading.Event()
    faults.encoder.fault = hang_fault(release, limit_s=30.0)  # bounded: a broken test cannot hang the run
    stuck = RawSession(served.url)
    try:
        pending = stuck.submit("load_image", [file_data(stuck.upload(png_bytes(smooth_rgb(96, 128, 80)), "h.png")),
                                              0.5, True])
        time.sleep(0.3)
        for k in range(5):
            outcome = work.session.click(20 + 10 * k, 100)
            assert outcome.ok and outcome.seconds < 2.0, outcome
        assert work.session.http.get("/config").status_code == 200
        assert work.session.call("undo", [0.5, True]).ok
    finally:
        release.set()
    assert stuck.wait(pending, timeout_s=30).ok  # and the hung user is served once the encoder returns
    stuck.close()
