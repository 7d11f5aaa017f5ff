"""``--encoder auto`` checked after the start: the service serves on fp32 at once, checks behind the users, and
switches engines between two encoder runs without failing or repeating anyone's upload.

Real onnxruntime sessions of the analytic model behind a test table of two engines: "fp32" (the real fp32
engine, slowed to SLOW_S per run) and "quick" (the same engine, so its masks agree, FAST_S per run, and
LOAD_S to load: a slow candidate, so uploads arrive while the check runs). Times are sleeps far longer than
the analytic model's own run, so the outcome does not depend on how busy the machine is.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from sam_demo import encoder_check
from sam_demo.service import SegmentationService
from sam_onnx import Sam2Predictor
from sam_onnx import decoder as mask_decoder
from sam_onnx.encoders import FP32, EncoderSource, Variant, auto, ort_fp32
from tests.conftest import make_rgb

SLOW_S = 0.1
FAST_S = 0.01
LOAD_S = 1.0
UPLOADERS = 2
GAP_S = 4 * SLOW_S
"""Pause between one uploader's uploads: the gates fall idle for about a run now and then, the check's window."""
AFTER_UPLOADS = 2
"""Uploads each user still makes once the check and the switch are over."""
CHECK_TIMEOUT_S = 300.0
"""The check takes 10-90 s here (load average 1-16): it runs only in the gaps the users leave."""


class Engine:
    """The real fp32 engine under another name, slowed down; records every run (engine, thread) in ``runs``."""

    def __init__(self, inner, name: str, sleep: float, runs: list) -> None:
        self.inner, self.name, self.sleep, self.runs = inner, name, sleep, runs
        self.description = f"test engine {name}"

    def encode(self, pixel_values):
        self.runs.append((self.name, threading.current_thread().name))
        time.sleep(self.sleep)
        return self.inner.encode(pixel_values)


def _nice() -> int | None:
    if not sys.platform.startswith("linux"):
        return None
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.fixture
def setup(analytic_dir, tmp_path):
    runs: list[tuple[str, str]] = []
    loads: list[tuple[str, int | None]] = []

    def variant(name: str, sleep: float, load_s: float = 0.0) -> Variant:
        def load(source):
            loads.append((name, _nice()))
            time.sleep(load_s)
            return Engine(ort_fp32.load(source), name, sleep, runs)
        return Variant(name, load, auto_candidate=name != FP32)

    table = {FP32: variant(FP32, SLOW_S), "quick": variant("quick", FAST_S, LOAD_S)}
    source = EncoderSource(analytic_dir / "encoder.onnx", tmp_path / "cache", threads=1)
    decoder, _ = mask_decoder.load_decoder(analytic_dir / "decoder.onnx", threads=1)
    encoder, decision = auto.choose(source, lambda *a: pytest.fail("no check at the start"),
                                    decoder_path=analytic_dir / "decoder.onnx", table=table, later=True)
    assert decision.pending is not None and encoder.name == FP32 and decision.summary().startswith("auto: fp32")
    service = SegmentationService(Sam2Predictor(encoder, decoder, threads=1, decision=decision))

    def photo(k: int):
        path = tmp_path / f"photo{k}.png"
        Image.fromarray(make_rgb(48 + k % 7, 64 + k // 7 % 50, seed=k)).save(path)
        return path

    return service, table, runs, loads, photo


@pytest.mark.timeout(CHECK_TIMEOUT_S + 60)
def test_the_engine_switches_between_two_encoder_runs_without_a_failed_or_doubled_upload(setup):
    """Two users upload all along, before, during and after the switch: each upload is encoded exactly once,
    wholly on one engine; the engines change once, fp32 then the faster one."""
    service, table, runs, loads, photo = setup
    check = service.start_encoder_check(table=table)
    assert check is not None and service.model_summary()["encoder_check"] == "running"
    numbers = iter(range(10_000))
    lock = threading.Lock()
    uploaded: list[str] = []
    deadline = time.monotonic() + CHECK_TIMEOUT_S

    def uploader(_):
        after = 0
        while after < AFTER_UPLOADS and time.monotonic() < deadline:
            over = not check.running
            with lock:
                k = next(numbers)
            record, info = service.open_image(photo(k))  # raises if anything failed
            assert not info["cache_hit"]
            uploaded.append(record.key)
            after += over
            time.sleep(GAP_S)

    with ThreadPoolExecutor(UPLOADERS, thread_name_prefix="upload") as pool:
        list(pool.map(uploader, range(UPLOADERS)))
    assert check.join(0), f"the check did not end within {CHECK_TIMEOUT_S:.0f} s"
    assert check.state == encoder_check.SWITCHED

    uploads = [name for name, thread in runs if thread.startswith("upload")]
    assert len(uploads) == len(uploaded)  # each upload encoded once: none failed, none repeated
    switch = uploads.index("quick")
    assert uploads == [FP32] * switch + ["quick"] * (len(uploads) - switch)  # one switch, never back
    assert switch >= UPLOADERS and len(uploads) - switch >= UPLOADERS  # users uploaded on both sides of it
    assert service.predictor.info.encoder_name == "quick" and service.predictor.decision.chosen == "quick"
    assert "encoder_check" not in service.model_summary()
    if sys.platform.startswith("linux"):  # the check's engines ran at the lowest priority; the chosen one does not
        assert loads[-2:] == [("quick", encoder_check.LOWEST_NICE), ("quick", 0)]


def test_a_check_that_finds_nothing_faster_keeps_fp32_and_says_so(setup):
    service, table, runs, loads, photo = setup
    table["quick"] = Variant("quick", lambda source: Engine(ort_fp32.load(source), "quick", 3 * SLOW_S, runs))
    check = service.start_encoder_check(table=table)
    assert check.join(CHECK_TIMEOUT_S) and check.state == encoder_check.KEPT
    assert service.predictor.info.encoder_name == FP32
    assert "no faster variant" in service.predictor.info.encoder_selection
    stored = auto.load_decision(check.pending.stored_at, check.pending.key)
    assert stored is not None and stored.chosen == FP32  # the next start reuses it, in SAM_ONNX_CACHE_DIR
