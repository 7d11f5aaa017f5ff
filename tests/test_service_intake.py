"""The upload intake in two steps (issue 24): the photo can be shown before its encoder run, and nothing of any
upload's intake (reading, display copies, hash, preprocessing) runs beside an encoder run.

Real onnxruntime sessions of the analytic model; the encoder is slowed down (a sleep) so that overlaps, if the
code allowed them, would be long enough to see on a busy machine.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from sam_demo import service as service_module
from sam_demo import view
from sam_demo.service import SegmentationService
from sam_onnx import Sam2Predictor
from sam_onnx.preprocess import preprocess_image
from tests.conftest import make_rgb

ENCODE_S = 0.3
"""The slowed encoder run: far longer than the analytic model's own (a few ms)."""
INTAKE_STAGES = ("load_upright", "file_key", "preprocess_upright")
"""Module-level functions of sam_demo.service that an upload's intake calls (plus view.display_images)."""


class Timeline:
    """Intervals (stage, thread, start, end) of the wrapped functions, from any thread."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str, float, float]] = []
        self._lock = threading.Lock()

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self.spans.append((name, threading.current_thread().name, started, time.perf_counter()))
        return timed

    def of(self, name: str) -> list[tuple[float, float]]:
        return [(a, b) for n, _, a, b in self.spans if n == name]


class SlowEncoder:
    def __init__(self, inner, timeline: Timeline) -> None:
        self.inner, self.name, self.description = inner, inner.name, inner.description
        self.runs = 0
        self.encode = timeline.wrap("encoder", self._encode)

    def _encode(self, pixel_values):
        self.runs += 1
        time.sleep(ENCODE_S)
        return self.inner.encode(pixel_values)


@pytest.fixture
def setup(analytic_dir, monkeypatch, tmp_path):
    timeline = Timeline()
    base = Sam2Predictor.from_files(analytic_dir / "encoder.onnx", analytic_dir / "decoder.onnx", threads=1)
    encoder = SlowEncoder(base.encoder, timeline)
    for name in INTAKE_STAGES:
        monkeypatch.setattr(service_module, name, timeline.wrap(name, getattr(service_module, name)))
    monkeypatch.setattr(view, "display_images", timeline.wrap("display_images", view.display_images))
    monkeypatch.setattr(service_module, "_jpeg", timeline.wrap("jpeg", service_module._jpeg))
    service = SegmentationService(base.with_encoder(encoder, None), display_max_side=96)
    photos = []
    for k in range(4):
        photos.append(tmp_path / f"photo{k}.png")
        Image.fromarray(make_rgb(150 + 10 * k, 240, seed=k)).save(photos[-1])
    return service, encoder, timeline, photos


def test_a_received_photo_can_be_shown_before_its_encoder_run(setup):
    service, encoder, timeline, photos = setup
    record, info = service.receive_image(photos[0])
    assert encoder.runs == 0 and info["receive_ms"] >= info["load_ms"] > 0
    rgb = np.asarray(Image.open(photos[0]).convert("RGB"))
    waiting = service._received.get(record.key)
    assert np.array_equal(waiting.pixel_values, preprocess_image(rgb)[0])  # not a single value changed
    assert np.array_equal(waiting.display_rgb, view.display_images(rgb, record.frame)[0])
    shown = service.display_rgb(record)
    assert shown.shape == (*record.frame.display_hw, 3)
    made = len(timeline.of("jpeg"))
    jpeg = service.display_jpeg(record.key)  # what the page loads, served before the encoder ran
    assert jpeg[:2] == b"\xff\xd8" and encoder.runs == 0
    assert len(timeline.of("jpeg")) == made == 1  # made in step 1, not by the page's request during the encode
    encoded = service.encode_image(record)
    assert encoder.runs == 1 and not encoded["cache_hit"]
    cached = service.cached_image(record)
    assert np.array_equal(cached.display_rgb, shown)
    pixels, _ = preprocess_image(np.asarray(Image.open(photos[0]).convert("RGB")))
    assert np.array_equal(cached.embedding.features[2], encoder.inner.encode(pixels)[2])  # same input, bit for bit
    assert service.encode_image(record)["cache_hit"] and encoder.runs == 1


def test_no_intake_work_runs_beside_an_encoder_run(setup):
    """Three users upload at once: every stage of every intake ends before an encoder run starts or starts after
    it ended, and each upload's display copy and hash are made before its own encoder run."""
    service, encoder, timeline, photos = setup
    with ThreadPoolExecutor(3, thread_name_prefix="user") as pool:
        records = list(pool.map(lambda p: service.open_image(p)[0], photos[:3]))
    runs = timeline.of("encoder")
    assert len(runs) == 3 and encoder.runs == 3
    intake = [(name, a, b) for name, _, a, b in timeline.spans if name != "encoder"]
    assert len(intake) == 3 * (len(INTAKE_STAGES) + 2)  # + display copies and the display JPEG
    overlaps = [(name, a, b) for name, a, b in intake for (ea, eb) in runs if a < eb and ea < b]
    assert not overlaps
    assert all(service.cached_image(r) is not None for r in records)


def test_an_upload_pushed_out_before_its_encoder_run_is_read_again(setup, monkeypatch):
    service, encoder, timeline, photos = setup
    record, _ = service.receive_image(photos[1])
    assert service._received.pop(record.key) is not None  # as if three newer uploads had pushed it out
    loads = len(timeline.of("load_upright"))
    service.encode_image(record)
    assert len(timeline.of("load_upright")) == loads + 1 and encoder.runs == 1
    assert service.cached_image(record).display_rgb.shape == (*record.frame.display_hw, 3)


def test_the_same_file_uploaded_again_is_not_read_again(setup, tmp_path):
    """A file already encoded (the same bytes under another name: another tab's upload, an example clicked
    again) is known by its hash: nothing is decoded or encoded again, and the new record points at the new file;
    a file with other bytes is read."""
    service, encoder, timeline, photos = setup
    first, _ = service.open_image(photos[0])
    again = tmp_path / "again.png"
    again.write_bytes(photos[0].read_bytes())
    loads = len(timeline.of("load_upright"))
    record, info = service.open_image(again)
    assert len(timeline.of("load_upright")) == loads and encoder.runs == 1 and info["cache_hit"]
    assert (record.key, record.frame, record.notes) == (first.key, first.frame, first.notes)
    assert record.path == str(again) and record.name == "again"
    assert np.array_equal(service.display_rgb(record), service.display_rgb(first))
    service.open_image(photos[1])
    assert len(timeline.of("load_upright")) == loads + 1 and encoder.runs == 2


@pytest.mark.parametrize("what", ["missing", "not an image", "too large"])
def test_a_bad_file_is_refused_before_it_is_hashed(analytic_dir, tmp_path, monkeypatch, what):
    """The file's size and header are checked before its hash reads it all (a huge file costs no read)."""
    from sam_onnx.errors import InvalidImageError
    from sam_onnx.image import ImageLimits

    path = tmp_path / "upload.png"
    if what == "not an image":
        path.write_bytes(b"hello" * 100)
    elif what == "too large":
        Image.fromarray(make_rgb(64, 64, seed=1)).save(path)
    predictor = Sam2Predictor.from_files(analytic_dir / "encoder.onnx", analytic_dir / "decoder.onnx", threads=1)
    limits = ImageLimits(max_bytes=100) if what == "too large" else service_module.big_photos.OPEN_LIMITS
    service = SegmentationService(predictor, open_limits=limits)
    monkeypatch.setattr(service_module, "file_key", lambda p: pytest.fail("a bad file was hashed"))
    with pytest.raises(InvalidImageError):
        service.receive_image(path)


def test_a_file_changed_on_the_server_is_not_read_again_as_the_same_image(setup):
    """An upload pushed out before its encoder run is read again from its file; a file whose bytes changed
    meanwhile (its hash is no longer the record's key) is refused, not encoded under the old key."""
    from sam_onnx.errors import InvalidImageError

    service, encoder, timeline, photos = setup
    record, _ = service.receive_image(photos[2])
    assert service._received.pop(record.key) is not None  # as if three newer uploads had pushed it out
    Image.fromarray(make_rgb(160, 240, seed=99)).save(photos[2])
    with pytest.raises(InvalidImageError, match="changed on the server"):
        service.encode_image(record)
    assert encoder.runs == 0 and service._images.get(record.key) is None
