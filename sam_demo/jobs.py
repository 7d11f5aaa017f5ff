"""Long jobs of the demo (segment everything): up-front estimates, measured speeds, cancel flags.

The service runs the job (:meth:`sam_demo.service.SegmentationService.segment_everything`);
this module holds what a UI needs around it: what a preset will cost before it
runs, from this server's measured model speeds, and a way to stop a run from
another request.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace

from sam_onnx import amg
from sam_onnx.abort import Abort
from sam_onnx.errors import InvalidPromptError
from sam_onnx.types import Box, Point, Prompts

FoundObject = tuple[Prompts, "int | None"]
"""A mask found by segment everything, as an object's prompts and its fixed candidate (None = best)."""


class SpeedMeter:
    """Moving averages of measured speeds, for up-front time estimates (thread-safe).

    The first measurement of a quantity replaces its prior (the priors are for a
    2-core CPU and can be far off on other hardware); later ones are smoothed.
    """

    SMOOTHING = 0.3

    def __init__(self, decode_seconds: float = 0.05, encode_seconds: float = 2.5) -> None:
        self._values: dict[str, float] = {"decode": decode_seconds, "encode": encode_seconds}
        self._measured: set[str] = set()
        self._lock = threading.Lock()

    def _record(self, name: str, value: float) -> None:
        with self._lock:
            if name not in self._measured:
                self._values[name] = value
                self._measured.add(name)
            else:
                self._values[name] += self.SMOOTHING * (value - self._values[name])

    def record_decode(self, seconds: float, objects: int) -> None:
        if objects > 0:
            self._record("decode", seconds / objects)

    def record_encode(self, seconds: float) -> None:
        self._record("encode", seconds)

    def record_everything(self, grid_seconds: float, points: int, finish_seconds: float | None = None,
                          kept: int = 0, megapixels: float = 0.0) -> None:
        """A finished segment-everything run (encoder runs left out).

        Args:
            grid_seconds: the decoder calls and the screening of their masks (independent of the image size:
                it works on the 256×256 logits).
            points: grid points of the run.
            finish_seconds: the final upsampling of the kept masks to the image's size (None: not measured).
            kept: masks kept; megapixels: the image's size.
        """
        if points > 0 and grid_seconds > 0:
            self._record("grid_per_point", grid_seconds / points)
        if finish_seconds is not None and points > 0:
            self._record("kept_per_point", kept / points)
            if kept and megapixels > 0:
                self._record("finish_per_mask_mp", finish_seconds / (kept * megapixels))

    def measured(self, name: str) -> float | None:
        with self._lock:
            return self._values.get(name) if name in self._measured else None

    @property
    def decode_seconds_per_object(self) -> float:
        return self._values["decode"]

    @property
    def encode_seconds(self) -> float:
        return self._values["encode"]


class CancelRegistry:
    """Cancel flags of runs a user may stop or leave (uploads, segment everything, refines), keyed by a caller's
    token (e.g. a browser tab's id and the kind of run).

    A flag is an :class:`~sam_onnx.abort.Abort`: setting it also stops an encoder run made under it at once
    (:meth:`sam_onnx.Sam2Predictor.encode_pixels`). Entries exist only while a run is in progress, so the
    registry stays as small as the number of concurrent runs.
    """

    def __init__(self) -> None:
        self._events: dict[str, Abort] = {}
        self._lock = threading.Lock()

    def start(self, token: str) -> Abort:
        """A new run of ``token``: its flag (a run of the same token still registered is left to finish)."""
        event = Abort()
        with self._lock:
            self._events[token] = event
        return event

    def cancel(self, token: str, reason: str = "") -> bool:
        """Ask the run of ``token`` to stop (``reason``: see :attr:`sam_onnx.abort.Abort.reason`); False if none
        is running."""
        with self._lock:
            event = self._events.get(token)
        if event is None:
            return False
        event.set(reason)
        return True

    def finish(self, token: str, event: Abort) -> None:
        with self._lock:
            if self._events.get(token) is event:
                del self._events[token]


@dataclass(frozen=True)
class EverythingEstimate:
    """What a segment-everything run will do, before it runs."""

    preset: str
    points_per_side: int
    points: int
    decoder_calls: int
    encoder_runs: int
    seconds: float
    """Expected wall time, other users' current work included (``load_factor``)."""
    load_factor: float = 1.0
    """How much slower than alone the run is expected to be because of other users' current work (:func:`load_factor`)."""


EVERYTHING_BATCH = 2
"""Grid points per decoder call in the app. The decoder's cost is linear in the points on CPU (batching buys
nothing, see :data:`sam_onnx.amg.DEFAULT_BATCH_SIZE`), and each call and the screening of its masks is one
piece of a fair turn (:mod:`sam_demo.fair`): 2 points keep a piece near 50 ms, so another user's click
waits for at most that."""


def preset(name: str) -> amg.EverythingSettings:
    """The settings of a named preset, with the app's :data:`EVERYTHING_BATCH`.

    Raises:
        InvalidPromptError: no such preset.
    """
    try:
        return replace(amg.PRESETS[name], batch_size=EVERYTHING_BATCH)
    except KeyError:
        raise InvalidPromptError(f"Unknown preset {name!r}; choose one of {', '.join(amg.PRESETS)}.") from None


LOAD_WINDOW_S = 10.0
"""Other users' work over this many recent seconds is taken as what the run will share the server with."""


@dataclass(frozen=True)
class Load:
    """Other users' recent work (see :meth:`sam_demo.fair.FairGate.others_share`).

    Attributes:
        compute_share: share of the compute gate's time other owners held turns (decoder calls, drawing), 0-1.
        compute_owners: how many other owners that was.
        encoder_share: share of the encoder slots' time others' encoder runs held, 0-1.
    """

    compute_share: float = 0.0
    compute_owners: int = 0
    encoder_share: float = 0.0


def load_factor(load: Load) -> float:
    """How much longer than alone a CPU-bound run takes beside ``load`` (1 = alone).

    The compute gate is round robin: others who used a share ``b`` of it keep about that share (a user who clicks
    now and then), but ``k`` owners who work without pause leave this run only ``1/(k+1)`` of it; so the run gets
    ``1 - min(b, k/(k+1))`` of the gate. An encoder run beside it takes the two cores' attention about half the
    time (onnxruntime and the decoder each use both): ``e`` of encoder time slows the run by ``1/(1 - e/2)``.
    Issue 22: one other user working (b near 1, k = 1) doubled the run (25 s estimated, 45-53 s taken).
    """
    k = load.compute_owners
    taken = min(max(load.compute_share, 0.0), k / (k + 1)) if k else 0.0
    encoder = min(max(load.encoder_share, 0.0), 1.0)
    return 1.0 / (1.0 - taken) / (1.0 - encoder / 2)


def estimate(preset_name: str, image_hw: tuple[int, int], speed: SpeedMeter, load: Load = Load()) -> EverythingEstimate:
    """Up-front cost of segment everything with a preset on an already encoded image of size ``image_hw``, beside
    other users' current ``load`` (default none)."""
    settings = preset(preset_name)
    plan = amg.make_plan(settings, image_hw)
    grid = speed.measured("grid_per_point")
    if grid is None:  # nothing measured yet: the wrapper's model of the cost
        seconds = amg.estimate_seconds(plan, speed.decode_seconds_per_object * settings.batch_size,
                                       speed.encode_seconds, image_encoded=True)
    else:  # this server's measured costs: per grid point (decoder call included), per kept mask and megapixel
        kept = speed.measured("kept_per_point") or 0.0
        finish = speed.measured("finish_per_mask_mp") or 0.0
        megapixels = image_hw[0] * image_hw[1] / 1e6
        seconds = amg.estimate_seconds(plan, 0.0, speed.encode_seconds, image_encoded=True,
                                       overhead_seconds_per_point=grid + kept * megapixels * finish)
    factor = load_factor(load)
    return EverythingEstimate(preset_name, settings.points_per_side, plan.points, plan.decoder_calls,
                              plan.encoder_runs, seconds * factor, factor)


def found_objects(masks: Sequence[amg.EverythingMask], image_hw: tuple[int, int]) -> list[FoundObject]:
    """Masks found by segment everything as prompts for new objects.

    A mask found on the whole image becomes its grid point plus the chosen
    candidate. A mask found in a crop (the "thorough" preset) becomes its
    point plus its bounding box, the closest whole-image prompt.
    """
    h, w = image_hw
    out: list[FoundObject] = []
    for m in masks:
        if tuple(m.crop_box) == (0, 0, w, h):
            out.append((m.prompts, m.candidate))
        else:
            x, y, bw, bh = m.bbox
            out.append((Prompts((Point(*m.point_xy),), Box(x, y, x + bw, y + bh)), None))
    return out
