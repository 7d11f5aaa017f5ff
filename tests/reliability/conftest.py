"""Fixtures for the reliability rows (docs/reliability.md): a real server on 127.0.0.1 with
the analytic models, a session with work in it, and switches that inject runtime faults.

The server is the app exactly as ``python app.py`` builds it (``app.build_demo`` +
``app.launch_kwargs``); only the onnxruntime sessions (the decoder's, and the one inside the fp32
encoder engine) are wrapped so that a test can make them fail, stall or hang on purpose.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass

import gradio as gr
import numpy as np
import pytest

import app
from sam_demo import fair, gc_pauses
from sam_demo.service import SegmentationService
from sam_onnx import Sam2Predictor
from sam_onnx.encoders import OrtEncoder
from tests.conftest import make_rgb
from tools.ports import free_port
from tools.rawapi import Outcome, RawSession, Snapshot, png_bytes

PHOTO_HW = (120, 160)
MESSAGE_DEADLINE_S = 6.0
"""docs/reliability.md's bound for a clear message, even on a heavily loaded machine. Measured: 0.05 to 0.3 s on an
idle machine; 4.9 s once with two CPU burners beside the suite and a load average of 12 from other jobs on the
2 cores. A message that waited for a model run or a hang still fails."""
LEAK_PATTERN = re.compile(r"Traceback|File \"|/tmp/|/root/|/home/|/work/|/etc/|\.py\b|Exception\b")


# ---------------------------------------------------------------------------- fault injection
Fault = Callable[..., list]


class SwitchableSession:
    """An onnxruntime session whose ``run`` can be made to fail, stall or hang (off by default)."""

    def __init__(self, real) -> None:
        self._real = real
        self.fault: Fault | None = None

    def run(self, output_names, feeds, *args, **kwargs):
        fault = self.fault
        if fault is None:
            return self._real.run(output_names, feeds, *args, **kwargs)
        return fault(self._real, output_names, feeds, *args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._real, name)


def wrong_dtype_fault(real, output_names, feeds, *args, **kwargs):
    """A genuine onnxruntime error (InvalidArgument: unexpected input type), as a bug in the feeds would give."""
    name = next(iter(feeds))
    forged = dict(feeds)
    forged[name] = np.asarray(feeds[name], dtype=np.float64)
    return real.run(output_names, forged, *args, **kwargs)


def stall_fault(seconds: float) -> Fault:
    def stall(real, output_names, feeds, *args, **kwargs):
        threading.Event().wait(seconds)
        return real.run(output_names, feeds, *args, **kwargs)

    return stall


def hang_fault(release: threading.Event, limit_s: float = 30.0) -> Fault:
    """Block until ``release`` is set (bounded by ``limit_s`` so a failing test cannot hang the run)."""

    def hang(real, output_names, feeds, *args, **kwargs):
        release.wait(limit_s)
        return real.run(output_names, feeds, *args, **kwargs)

    return hang


SIGNAL_TIMEOUT_S = 30.0
"""Longest wait for a server-side signal (:class:`Watch`): a bound against a broken test, never reached when it
works."""


class Watch:
    """A fault that lets the model run (after ``inner``, if given) and records whose work reached it.

    Each call is counted under the tab it runs for (:data:`sam_demo.fair.current_owner`, a session hash),
    so a test can wait until another user's job really runs on the server before it measures anything
    (:meth:`wait_for`), instead of sleeping and hoping.
    """

    def __init__(self, inner: Fault | None = None) -> None:
        self.inner = inner
        self.calls: Counter[Hashable] = Counter()
        """Model runs started, per tab."""
        self.done: Counter[Hashable] = Counter()
        """Model runs ended (returned or raised), per tab."""
        self._cond = threading.Condition()

    def __call__(self, real, output_names, feeds, *args, **kwargs):
        owner = fair.current_owner.get()
        with self._cond:
            self.calls[owner] += 1
            self._cond.notify_all()
        try:
            if self.inner is not None:
                return self.inner(real, output_names, feeds, *args, **kwargs)
            return real.run(output_names, feeds, *args, **kwargs)
        finally:
            with self._cond:
                self.done[owner] += 1

    def wait_for(self, owner: Hashable, calls: int = 1, timeout_s: float = SIGNAL_TIMEOUT_S) -> None:
        """Return once ``owner``'s work has reached the model ``calls`` times in all (fail after ``timeout_s``)."""
        with self._cond:
            reached = self._cond.wait_for(lambda: self.calls[owner] >= calls, timeout_s)
        assert reached, f"{owner!r}'s work did not reach the model {calls} times in {timeout_s} s: {dict(self.calls)}"


@dataclass
class Switches:
    encoder: SwitchableSession
    decoder: SwitchableSession

    def reset(self) -> None:
        self.encoder.fault = None
        self.decoder.fault = None


@pytest.fixture(scope="session")
def switchable_predictor(analytic_dir) -> tuple[Sam2Predictor, Switches]:
    predictor = Sam2Predictor.from_files(analytic_dir / "encoder.onnx", analytic_dir / "decoder.onnx", threads=1)
    switches = Switches(SwitchableSession(predictor._encoder.session), SwitchableSession(predictor._decoder))
    predictor._encoder = OrtEncoder(switches.encoder, name=predictor.info.encoder_name, path=predictor.info.encoder_path)
    predictor._decoder = switches.decoder
    return predictor, switches


@pytest.fixture
def faults(switchable_predictor) -> Iterator[Switches]:
    switches = switchable_predictor[1]
    switches.reset()
    yield switches
    switches.reset()


# ---------------------------------------------------------------------------- servers

@dataclass
class Served:
    url: str
    demo: gr.Blocks
    service: SegmentationService


@contextlib.contextmanager
def serve(service: SegmentationService, *, queue_max_size: int | None = None) -> Iterator[Served]:
    """The app on 127.0.0.1 with the production launch settings; closed on exit."""
    demo = app.build_demo(service)
    if queue_max_size is not None:
        demo.queue(max_size=queue_max_size)
    url = app.launch(demo, service, "127.0.0.1", free_port())  # as app.main serves, start-up objects frozen
    try:
        yield Served(url, demo, service)
    finally:
        demo.close()
        gc_pauses.thaw()  # this process serves again later: what the closed server left can be collected


@pytest.fixture(scope="session", autouse=True)
def _exports_in_a_temp_dir(tmp_path_factory) -> Iterator[None]:
    """Snapshots export often; keep those files out of the shared system temp folder."""
    saved = app.EXPORT_ROOT
    app.EXPORT_ROOT = tmp_path_factory.mktemp("exports")
    yield
    app.EXPORT_ROOT = saved


@pytest.fixture(scope="session")
def served(switchable_predictor) -> Iterator[Served]:
    service = SegmentationService(switchable_predictor[0], image_cache_mb=256)
    with serve(service) as s:
        yield s


def smooth_rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A noise-free (h, w, 3) uint8 gradient, different per seed (survives JPEG display nearly exactly)."""
    yy, xx = np.mgrid[0:h, 0:w]
    r = (xx * 255 // max(w - 1, 1) + 37 * seed) % 256
    g = (yy * 255 // max(h - 1, 1) + 91 * seed) % 256
    b = np.full_like(xx, (60 + 53 * seed) % 256)
    return np.stack([r, g, b], -1).astype(np.uint8)


@pytest.fixture(scope="session")
def photo_bytes() -> bytes:
    return png_bytes(make_rgb(*PHOTO_HW, seed=11))


@pytest.fixture
def raw(served) -> Iterator[RawSession]:
    """A fresh, empty session."""
    with RawSession(served.url) as session:
        yield session


@dataclass
class Work:
    """A session with an image, two clicks (include + exclude) and its snapshot."""

    session: RawSession
    before: Snapshot

    def assert_unchanged(self) -> None:
        self.before.assert_same(self.session.snapshot())


def start_work(session: RawSession, photo: bytes) -> Work:
    assert session.load_bytes(photo).ok
    assert session.click(60, 50).ok
    assert session.click(75, 50, app.MODE_NEGATIVE).ok
    before = session.snapshot()
    assert before.objects and len(before.objects[0]["points"]) == 2
    return Work(session, before)


@pytest.fixture
def work(raw, photo_bytes) -> Work:
    return start_work(raw, photo_bytes)


# ---------------------------------------------------------------------------- assertions
def assert_message(outcome: Outcome, pattern: str, *, deadline_s: float = MESSAGE_DEADLINE_S) -> str:
    """The event failed with a non-null, specific message, free of paths and tracebacks, in time."""
    assert not outcome.ok, f"expected an error, got success: {str(outcome.data)[:200]}"
    message = outcome.error
    assert isinstance(message, str) and message.strip(), f"bare 'Error' (null message): {outcome.data!r}"
    assert re.search(pattern, message), f"{message!r} does not match {pattern!r}"
    assert not LEAK_PATTERN.search(message), f"message leaks internals: {message!r}"
    assert outcome.seconds <= deadline_s, f"message took {outcome.seconds:.2f} s"
    return message
