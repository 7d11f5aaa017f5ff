"""The fairness and limits scenarios, written once for the tests and the benchmarks.

``tests/reliability/test_g_fairness.py`` asserts ratios over them on the analytic models in-process;
``bench/bench_fairness.py`` and ``bench/bench_limits.py`` print the numbers on the full-size stand-in.
Everything talks to the app through :mod:`tools.rawapi` (raw HTTP, 127.0.0.1 only).

* :func:`photo` and :func:`prompts_file`: a test photo, and a prompts file written by the engine's own
  writer (:func:`sam_demo.bundle.prompts_file_text`), so its format is never spelled out here.
* :class:`Clicker`: a tab that clicks at random places and times each click.
* :class:`BusyUser`: user A repeating one heavy action (:data:`SCENARIOS`) until stopped.
* :func:`interleaved_rounds`: user B clicks alone ("idle") and while A works ("busy"), round after round,
  so that the machine's mood affects both alike; ``ready`` waits for a signal that A's work really runs.
* :func:`oversized_body`, :func:`deep_body`, :func:`many_values_body`: requests over each limit of
  :class:`sam_demo.gradio_guard.RequestLimits`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sam_demo.bundle import prompts_file_text
from sam_demo.editor import Editor, ObjectState
from sam_onnx.types import MAX_POINTS_PER_OBJECT, NEGATIVE, POSITIVE, Point, Prompts
from tools.rawapi import RawSession, file_data, png_bytes

SCENARIOS = ("click", "load", "segment", "everything")
"""What user A keeps doing while B clicks (:class:`BusyUser`)."""
EVERYTHING_PRESET = "balanced"
POSITIVE_SHARE = 0.8
"""Share of include points in generated prompts files (the rest are exclude points)."""
FAILED_ACTION_PAUSE_S = 0.5
"""A busy user whose action failed waits this long before the next (the failure is recorded)."""


def photo(seed: int, hw: tuple[int, int]) -> bytes:
    """A PNG of ``hw`` pixels: gradients, a checkerboard and noise, different per seed."""
    rng = np.random.default_rng(seed)
    h, w = hw
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 255 // max(w - 1, 1) + seed * 41) % 256, (yy * 255 // max(h - 1, 1) + seed * 73) % 256,
                     ((xx // 40 + yy // 40) % 2) * 200], axis=-1)
    return png_bytes(np.clip(base + rng.integers(-12, 13, base.shape), 0, 255).astype(np.uint8))


def prompts_editor(objects: int, points: int, hw: tuple[int, int], seed: int) -> Editor:
    """An editor holding ``objects - 1`` objects of ``points`` random points (original pixels of an image of
    ``hw``) and an empty last object, selected, as after "+ New object"."""
    rng = np.random.default_rng(seed)
    h, w = hw
    items = [ObjectState(k + 1, f"Object {k + 1}", Prompts(tuple(
        Point(float(rng.uniform(0, w - 1)), float(rng.uniform(0, h - 1)),
              POSITIVE if rng.random() < POSITIVE_SHARE else NEGATIVE) for _ in range(points))), color_index=k)
        for k in range(objects - 1)]
    items.append(ObjectState(objects, f"Object {objects}", color_index=objects - 1))
    return Editor.from_objects(hw, items)


def prompts_file(objects: int, points: int, hw: tuple[int, int], seed: int) -> bytes:
    """:func:`prompts_editor` as the prompts file the app exports (UTF-8 bytes, no image hash)."""
    return prompts_file_text(prompts_editor(objects, points, hw, seed)).encode()


@dataclass
class Clicker:
    """A tab with an image that clicks at random places inside it.

    Args:
        session: the tab.
        hw: the image's size (original pixels).
        seed: for the click positions.
        fetch_overlay: time each click until its overlay file is fetched too, as a browser shows it.
    """

    session: RawSession
    hw: tuple[int, int]
    seed: int = 0
    fetch_overlay: bool = False
    points: int = 0
    rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    @classmethod
    def open(cls, url: str, image: bytes, hw: tuple[int, int], seed: int = 0, **kwargs) -> Clicker:
        """A new tab that has uploaded ``image`` (of size ``hw``)."""
        session = RawSession(url)
        outcome = session.load_bytes(image)
        assert outcome.ok, outcome
        return cls(session, hw, seed, **kwargs)

    def click(self) -> float:
        """One click at a random place; the seconds it took. The object is cleared before it would exceed
        the points limit."""
        if self.points >= MAX_POINTS_PER_OBJECT - 1:
            cleared = self.session.call("clear_object", [0.5, True])
            assert cleared.ok, cleared
            self.points = 0
        h, w = self.hw
        started = time.perf_counter()
        outcome = self.session.click(float(self.rng.uniform(0, w - 1)), float(self.rng.uniform(0, h - 1)))
        assert outcome.ok, outcome
        if self.fetch_overlay:
            self.session.overlay(outcome)
        self.points += 1
        return time.perf_counter() - started if self.fetch_overlay else outcome.seconds

    def clicks(self, count: int, think_s: float = 0.0) -> list[float]:
        times = []
        for _ in range(count):
            times.append(self.click())
            if think_s:
                time.sleep(think_s)  # a person's pause between clicks (not part of any click's time)
        return times

    def close(self) -> None:
        self.session.close()


class BusyUser(threading.Thread):
    """User A repeating one heavy action of :data:`SCENARIOS` until :attr:`stop_event` is set.

    * ``click``: A clicks on its selected object, ``think_s`` apart (0 = back to back);
    * ``load``: A loads a fresh prompts file of ``objects`` objects of ``points`` points;
    * ``segment``: A calls ``/segment`` with ``objects`` one-point objects on ``segment_image``;
    * ``everything``: A runs segment everything (:data:`EVERYTHING_PRESET`).

    Each action's seconds go to :attr:`times`, failures to :attr:`errors` (the run goes on).
    :attr:`started` is set when the first action is sent: a client-side signal only, so tests wait for a
    server-side one as well (the decoder running for A's tab).
    """

    def __init__(self, a: Clicker, scenario: str, *, objects: int = 256, points: int = MAX_POINTS_PER_OBJECT,
                 seed: int = 0, think_s: float = 0.0, segment_image: bytes | None = None) -> None:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; one of {SCENARIOS}")
        super().__init__(daemon=True, name=f"busy-{scenario}")
        self.a, self.scenario, self.objects, self.points = a, scenario, objects, points
        self.seed, self.think_s, self.segment_image = seed, think_s, segment_image
        self.stop_event = threading.Event()
        self.started = threading.Event()
        self.times: list[float] = []
        self.errors: list[str] = []
        self._image_path: str | None = None

    def action(self, k: int) -> None:
        session = self.a.session
        if self.scenario == "click":
            self.started.set()
            self.a.click()
        elif self.scenario == "load":
            path = session.upload(prompts_file(self.objects, self.points, self.a.hw, self.seed + k), "p.json")
            self.started.set()
            outcome = session.call("load_prompts", [file_data(path), 0.5, True])
            assert outcome.ok, outcome
        elif self.scenario == "segment":
            h, w = self.a.hw
            rng = np.random.default_rng(self.seed + k)
            objects = [{"points": [[float(rng.uniform(0, w - 1)), float(rng.uniform(0, h - 1)), 1]]}
                       for _ in range(self.objects)]
            self.started.set()
            outcome = session.call("segment", [file_data(self._image_path), objects])
            assert outcome.ok, outcome
        else:
            self.started.set()
            outcome = session.join("ui_everything", [None, EVERYTHING_PRESET])
            assert outcome.ok, outcome

    def run(self) -> None:
        if self.scenario == "segment":
            self._image_path = self.a.session.upload(self.segment_image or photo(77, self.a.hw), "a.png")
        k = 0
        while not self.stop_event.is_set():
            started = time.perf_counter()
            try:
                self.action(k)
                self.times.append(time.perf_counter() - started)
            except Exception as exc:  # noqa: BLE001 - reported, and the run goes on
                self.errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                self.stop_event.wait(FAILED_ACTION_PAUSE_S)
            if self.scenario == "click":
                self.stop_event.wait(self.think_s)  # a person's pause between clicks (not part of the click's time)
            k += 1

    def finish(self, timeout_s: float) -> None:
        """Stop after the running action; fails if that takes longer than ``timeout_s``."""
        self.stop_event.set()
        self.join(timeout_s)
        assert not self.is_alive(), f"user A's {self.scenario} did not end within {timeout_s} s"


@dataclass
class Rounds:
    """B's click times alone (``idle``) and while A worked (``busy``), and A's action times and errors."""

    idle: list[float] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)
    a_times: list[float] = field(default_factory=list)
    a_errors: list[str] = field(default_factory=list)


def interleaved_rounds(b: Clicker, busy_user: Callable[[int], BusyUser], *, rounds: int, clicks: int,
                       think_s: float = 0.0, ready: Callable[[BusyUser], None] = lambda user: None,
                       finish_s: float = 600.0) -> Rounds:
    """``rounds`` times: B clicks ``clicks`` times alone, then A starts (``busy_user(round)``), ``ready(A)``
    returns once A's work really runs, B clicks ``clicks`` times again, and A stops."""
    out = Rounds()
    for round_ in range(rounds):
        out.idle += b.clicks(clicks, think_s)
        user = busy_user(round_)
        user.start()
        try:
            ready(user)
            out.busy += b.clicks(clicks, think_s)
        finally:
            user.finish(finish_s)
        out.a_times += user.times
        out.a_errors += user.errors
    return out


# ---------------------------------------------------------------------------- limits
def oversized_body(size: int, session_hash: str = "scenario") -> bytes:
    """A valid JSON request body of at least ``size`` bytes: ``{"data": [1, 1, ...], "session_hash": ...}``."""
    numbers = b"1," * max(0, size // 2)
    return b'{"data": [' + numbers + b'1], "session_hash": "' + session_hash.encode() + b'"}'


def deep_body(depth: int, session_hash: str = "scenario") -> bytes:
    """A request body whose ``data`` value is nested ``depth`` lists deep (the body itself is one more)."""
    return b'{"data": ' + b"[" * depth + b"]" * depth + b', "session_hash": "' + session_hash.encode() + b'"}'


def many_values_body(image: str, points: int, session_hash: str = "scenario") -> bytes:
    """A ``/segment`` request of one object with ``points`` points (4 values each): legal in size, not in count."""
    return json.dumps({"data": [file_data(image), [{"points": [[1, 1, 1]] * points}]],
                       "session_hash": session_hash}).encode()
