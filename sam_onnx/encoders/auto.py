"""``--encoder auto``: the fastest encoder variant that gives the same masks as fp32 on this machine.

At start-up the bundled calibration photo (``calibration.jpg``, 600 x 400,
CC0) is encoded with onnxruntime fp32 and with each candidate variant, and the
same fixed prompts (single points, points with negatives, boxes, a box with a
point) are decoded from every embedding. A candidate is kept only if, on
every prompt, each of the three masks overlaps fp32's with IoU >=
``AGREEMENT.min_mask_iou`` and each predicted IoU score is within
``AGREEMENT.max_score_diff`` of fp32's, and only if it runs at most
``1 - MIN_SPEEDUP`` of fp32's time (timed interleaved with fp32, best of a few
runs). The fastest kept candidate wins, else fp32. A candidate that cannot
load or run is skipped with its reason; none is ever used unchecked.

The decision is stored as JSON under ``<cache_dir>/auto/`` keyed by the model
files' hashes, the CPU (model name and feature flags), the thread count, the
package versions, the candidates and the thresholds, so later starts load the
chosen variant directly. Any change to those makes a new check.

A one-shot program (the CLI) checks before it starts (:func:`choose`). A server
can start at once on fp32 instead (``choose(..., later=True)`` returns fp32 and
a :class:`Decision` whose ``pending`` :class:`Check` it runs later with
:func:`run_check`, e.g. in the background, at the lowest priority): every
encoder run of the check is then made inside the server's ``window``, which
says afterwards whether other work ran beside it, and a disturbed timed run
is timed again, so the decision compares undisturbed runs only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import contextlib
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import SamOnnxError
from ..geometry import Geometry
from ..types import NEGATIVE, Box, ImageEmbedding, MaskResult, Point, Prompts
from .base import EncoderSource, ImageEncoder, Variant, package_version
from .fingerprint import model_fingerprint
from .ort_fp32 import FP32

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Agreement:
    """How close a candidate's masks must be to fp32's on every calibration prompt."""

    min_mask_iou: float
    max_score_diff: float


AGREEMENT = Agreement(min_mask_iou=0.98, max_score_diff=0.02)
"""THE agreement thresholds of ``auto`` (issue #13): mask IoU >= 0.98, IoU-score difference <= 0.02."""
MIN_SPEEDUP = 0.15
"""A candidate must save at least this fraction of fp32's encoder time to be worth its risk."""
TIMED_RUNS = 2
"""Timed runs per encoder and candidate (after one warm-up run), interleaved with fp32."""
DECISION_FORMAT = 1
"""Bumped whenever the check changes, so that old decisions are not reused."""

CALIBRATION_IMAGE = Path(__file__).with_name("calibration.jpg")
"""Espresso cup on a saucer with a spoon, 600 x 400 (scikit-image's ``coffee.png``, CC0)."""
CALIBRATION_PROMPTS: tuple[tuple[str, Prompts], ...] = (
    ("point on the coffee", Prompts((Point(290, 145),))),
    ("point on the spoon", Prompts((Point(365, 285),))),
    ("point on the saucer rim", Prompts((Point(130, 300),))),
    ("cup, not the coffee", Prompts((Point(300, 225), Point(290, 145, NEGATIVE)))),
    ("saucer, not the cup or spoon",
     Prompts((Point(450, 250), Point(300, 225, NEGATIVE), Point(365, 285, NEGATIVE)))),
    ("box around the cup", Prompts(box=Box(170, 15, 410, 310))),
    ("box around the spoon", Prompts(box=Box(320, 60, 425, 330))),
    ("box around the saucer, not the cup", Prompts((Point(300, 225, NEGATIVE),), Box(75, 70, 480, 390))),
    ("box around the cup + handle", Prompts((Point(225, 270),), Box(170, 15, 410, 310))),
)
"""Fixed prompts in the calibration image's pixels (x right, y down)."""

Decode = Callable[[ImageEmbedding, Sequence[Prompts]], Sequence[MaskResult]]
"""Decodes several objects from one embedding (``Sam2Predictor.decode_many``)."""


@dataclass
class RunSeen:
    """What a :data:`Window` tells about the encoder run made inside it (set by the window, read after it)."""

    disturbed: bool = False
    """Other work ran beside the run, so its time says nothing about the engine."""


Window = Callable[[], contextlib.AbstractContextManager[RunSeen]]
"""Entered around every encoder run of the check (waits as long as the caller wants, e.g. until its users'
work is done); the :class:`RunSeen` it yields says afterwards whether the run was disturbed."""


@contextlib.contextmanager
def undisturbed() -> Iterator[RunSeen]:
    """The default :data:`Window`: nothing else runs here (a one-shot program checking before it starts)."""
    yield RunSeen()


@dataclass(frozen=True)
class Check:
    """An ``auto`` check to run: its candidates, what its decision is keyed by, where the decision is stored.

    Attributes:
        source: the model and the machine's settings.
        candidates: the variants tried against fp32.
        key: what the decision depends on (:func:`decision_key`).
        stored_at: the decision's file (:func:`decision_path`).
        use_cache: store the decision there.
        runs, agreement, min_speedup: as for :func:`choose`.
    """

    source: EncoderSource
    candidates: tuple[str, ...]
    key: Mapping[str, object] = field(repr=False)
    stored_at: Path
    use_cache: bool = True
    runs: int = TIMED_RUNS
    agreement: Agreement = AGREEMENT
    min_speedup: float = MIN_SPEEDUP


@dataclass(frozen=True)
class CandidateReport:
    """What the check found for one variant.

    Attributes:
        name: the variant.
        status: ``"reference"`` (fp32), ``"chosen"``, ``"accepted"`` (agrees
            and is fast enough, but another was faster), ``"rejected"`` or ``"skipped"``.
        reason: why rejected or skipped (empty otherwise).
        ms: best encoder wall time of the timed runs, or ``None`` if it never ran.
        ratio: ``ms`` / fp32's ``ms`` from the same interleaved runs.
        min_mask_iou: lowest mask IoU against fp32 over every prompt and candidate mask.
        max_score_diff: largest IoU-score difference against fp32.
        description: the engine's own description.
    """

    name: str
    status: str
    reason: str = ""
    ms: float | None = None
    ratio: float | None = None
    min_mask_iou: float | None = None
    max_score_diff: float | None = None
    description: str = ""

    def line(self) -> str:
        """One log line."""
        parts = [f"{self.name:14s} {self.status:9s}"]
        if self.ms is not None:
            parts.append(f"{self.ms:7.0f} ms" + (f" ({self.ratio:.2f}x fp32)" if self.ratio is not None else ""))
        if self.min_mask_iou is not None:
            parts.append(f"mask IoU >= {self.min_mask_iou:.4f}, score diff <= {self.max_score_diff:.4f}")
        if self.reason:
            parts.append(self.reason)
        return "  ".join(parts)


@dataclass(frozen=True)
class Decision:
    """The outcome of ``auto``: the variant to use and why.

    Attributes:
        chosen: the variant name.
        reports: one per variant looked at, fp32 first.
        from_cache: ``True`` when an earlier start's decision was reused.
        key: what the decision depends on (stored with it).
        pending: the check still to run (``choose(..., later=True)`` found no stored decision; ``chosen``
            is fp32 until then), else ``None``.
    """

    chosen: str
    reports: tuple[CandidateReport, ...]
    from_cache: bool = False
    key: Mapping[str, object] = field(default_factory=dict, repr=False)
    pending: Check | None = field(default=None, repr=False, compare=False)

    def summary(self) -> str:
        """A short phrase for the UI, e.g. ``"auto: 0.47x fp32, masks agree"``."""
        if self.pending is not None:
            return "auto: fp32 while the faster engines are checked"
        chosen = next((r for r in self.reports if r.name == self.chosen), None)
        how = "cached check" if self.from_cache else "checked here"
        if self.chosen == FP32 or chosen is None or chosen.ratio is None:
            return f"auto ({how}): no faster variant agreed with fp32"
        return f"auto ({how}): {chosen.ratio:.2f}x fp32 time, masks agree"


# ---------------------------------------------------------------------------- agreement
def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks; two empty masks agree (1.0)."""
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def compare(reference: Sequence[MaskResult], candidate: Sequence[MaskResult]) -> tuple[float, float]:
    """``(lowest mask IoU, largest score difference)`` over every prompt and every one of the 3 masks."""
    ious, diffs = [1.0], [0.0]
    for ref, cand in zip(reference, candidate, strict=True):
        ious.extend(mask_iou(a, b) for a, b in zip(ref.masks, cand.masks))
        diffs.append(float(np.max(np.abs(ref.scores.astype(np.float64) - cand.scores.astype(np.float64)))))
    return min(ious), max(diffs)


def agrees(min_iou: float, max_diff: float, agreement: Agreement = AGREEMENT) -> bool:
    return min_iou >= agreement.min_mask_iou and max_diff <= agreement.max_score_diff


# ---------------------------------------------------------------------------- calibration
def calibration_input(path: Path = CALIBRATION_IMAGE) -> tuple[np.ndarray, Geometry]:
    """The calibration photo as encoder input (``(1, 3, 1024, 1024)`` float32) and its geometry."""
    from ..image import load_image
    from ..preprocess import preprocess_image

    return preprocess_image(load_image(path).rgb)


def _timed(encoder: ImageEncoder, pixels: np.ndarray, window: Window,
           again: bool = True) -> tuple[float, tuple[np.ndarray, ...]]:
    """One encoder run's milliseconds and outputs, run ``again`` until no other work ran beside it."""
    while True:
        with window() as seen:
            started = time.perf_counter()
            outputs = encoder.encode(pixels)
            ms = (time.perf_counter() - started) * 1e3
        if not (seen.disturbed and again):
            return ms, outputs
        logger.debug("encoder check: other work ran beside %s's run; timing it again", encoder.name)


# ---------------------------------------------------------------------------- decision cache
def cpu_identity() -> dict[str, str]:
    """CPU model name and a hash of its feature flags (what decides which engines run fast)."""
    model, flags = platform.processor() or platform.machine(), ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = " ".join(sorted(value.split()))
                if model and flags and key.strip() == "flags":
                    break
    except OSError:
        pass
    return {"model": model, "flags": hashlib.sha256(flags.encode()).hexdigest()[:16]}


def decision_key(source: EncoderSource, candidates: Sequence[str], *, decoder_path: Path | None = None,
                 agreement: Agreement = AGREEMENT, min_speedup: float = MIN_SPEEDUP) -> dict[str, object]:
    """Everything a stored decision depends on (JSON-serialisable)."""
    return {
        "format": DECISION_FORMAT,
        "encoder": model_fingerprint(source.encoder_path),
        "decoder": model_fingerprint(decoder_path) if decoder_path is not None else None,
        "fp16_encoder": model_fingerprint(source.fp16_encoder_path) if source.fp16_encoder_path is not None else None,
        "cpu": cpu_identity(),
        "threads": source.threads,
        "providers": list(source.providers or ()),
        "packages": {name: package_version(name) for name in ("onnxruntime", "openvino", "numpy")},
        "candidates": list(candidates),
        "agreement": asdict(agreement),
        "min_speedup": min_speedup,
    }


def decision_path(cache_dir: Path, key: Mapping[str, object]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return cache_dir / "auto" / f"{digest}.json"


def load_decision(path: Path, key: Mapping[str, object]) -> Decision | None:
    """The stored decision at ``path`` if it exists, parses and was made for exactly ``key``."""
    try:
        data = json.loads(path.read_text())
        if data.get("key") != json.loads(json.dumps(key)):
            return None
        reports = tuple(CandidateReport(**r) for r in data["reports"])
        return Decision(str(data["chosen"]), reports, from_cache=True, key=key)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("ignoring the unreadable encoder decision %s (%s)", path, exc)
        return None


def save_decision(path: Path, decision: Decision) -> None:
    """Write atomically; a read-only cache only costs the check on the next start."""
    data = {"key": decision.key, "chosen": decision.chosen, "reports": [asdict(r) for r in decision.reports],
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".decision-", suffix=".json", dir=path.parent)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
        Path(tmp).replace(path)
    except OSError as exc:
        logger.warning("could not store the encoder decision in %s (%s); the check runs again next start",
                       path, exc)


# ---------------------------------------------------------------------------- the check
def choose(source: EncoderSource, decode_many: Decode, *, decoder_path: Path | None = None,
           table: Mapping[str, Variant] | None = None, candidates: Sequence[str] | None = None,
           runs: int = TIMED_RUNS, use_cache: bool = True, agreement: Agreement = AGREEMENT,
           min_speedup: float = MIN_SPEEDUP, later: bool = False) -> tuple[ImageEncoder, Decision]:
    """Pick and build the encoder for ``--encoder auto``.

    Args:
        source: the model and the machine's settings.
        decode_many: decodes prompts from an embedding (the predictor's decoder); called only by a check.
        decoder_path: the decoder file, for the decision key.
        table: variants by name (default: every registered variant).
        candidates: names to try against fp32 (default: every ``auto_candidate``).
        runs: timed runs per encoder (after a warm-up).
        use_cache: reuse and store decisions under ``source.cache_dir``.
        later: with no stored decision, return fp32 at once and leave the check to the caller
            (``decision.pending``, run with :func:`run_check`) instead of checking now.

    Returns:
        The chosen encoder (fp32 when no candidate qualifies, or while the check is pending) and the decision.

    Raises:
        ModelLoadError: only if fp32 itself cannot be loaded.
    """
    table = _table(table)
    if candidates is None:
        candidates = [name for name, v in table.items() if v.auto_candidate and name != FP32]
    key = decision_key(source, candidates, decoder_path=decoder_path, agreement=agreement, min_speedup=min_speedup)
    check = Check(source, tuple(candidates), key, decision_path(source.cache_dir, key), use_cache, runs, agreement,
                  min_speedup)
    if use_cache and (stored := load_decision(check.stored_at, key)) is not None:
        try:
            encoder = table[stored.chosen].load(source)
        except (SamOnnxError, KeyError) as exc:
            logger.warning("the stored encoder decision (%s) no longer loads (%s); checking again", stored.chosen, exc)
        else:
            logger.info("encoder: %s (%s, decided earlier: %s)", stored.chosen, encoder.description, check.stored_at)
            return encoder, stored
    if later:
        logger.info("encoder: fp32 for now; the auto check runs later (no decision stored in %s)", check.stored_at)
        return table[FP32].load(source), Decision(FP32, (), key=key, pending=check)
    return run_check(check, decode_many, table=table)


def run_check(check: Check, decode_many: Decode, *, table: Mapping[str, Variant] | None = None,
              window: Window = undisturbed) -> tuple[ImageEncoder, Decision]:
    """Run ``check`` (every encoder run inside ``window``) and store its decision.

    Returns:
        The chosen encoder, built by this call (its engine's threads are this thread's children), and the
        decision.

    Raises:
        ModelLoadError: only if fp32 itself cannot be loaded.
    """
    encoder, decision = _check(check.source, decode_many, _table(table), check.candidates, check.key, check.runs,
                               check.agreement, check.min_speedup, window)
    if check.use_cache:
        save_decision(check.stored_at, decision)
    return encoder, decision


def _table(table: Mapping[str, Variant] | None) -> Mapping[str, Variant]:
    if table is not None:
        return table
    from . import variants

    return variants()


def _check(source: EncoderSource, decode_many: Decode, table: Mapping[str, Variant], candidates: Sequence[str],
           key: Mapping[str, object], runs: int, agreement: Agreement,
           min_speedup: float, window: Window) -> tuple[ImageEncoder, Decision]:
    started = time.perf_counter()
    pixels, geometry = calibration_input()
    prompts = [p for _, p in CALIBRATION_PROMPTS]
    reference = table[FP32].load(source)  # failures here are real load errors: raise
    ref_first_ms, ref_outputs = _timed(reference, pixels, window)
    ref_results = decode_many(ImageEmbedding(ref_outputs, geometry), prompts)
    ref_times: list[float] = []
    reports: list[CandidateReport] = []
    best: tuple[float, str, ImageEncoder] | None = None
    for name in candidates:
        variant = table.get(name)
        if variant is None:
            reports.append(CandidateReport(name, "skipped", "unknown variant"))
            continue
        report, encoder = _try(variant, source, reference, pixels, geometry, prompts, ref_results, decode_many,
                               runs, agreement, min_speedup, ref_times, window)
        reports.append(report)
        logger.info("encoder check: %s", report.line())
        if encoder is not None and (best is None or report.ratio < best[0]):
            best = (report.ratio, name, encoder)
        del encoder  # a loser's memory goes now
    ref_ms = min(ref_times) if ref_times else ref_first_ms
    reports.insert(0, CandidateReport(FP32, "reference", ms=ref_ms, ratio=1.0, description=reference.description))
    chosen_name, chosen = (FP32, reference) if best is None else best[1:]
    reports = [replace(r, status="chosen") if r.name == chosen_name and r.name != FP32
               else r for r in reports]
    decision = Decision(chosen_name, tuple(reports), key=key)
    logger.info("encoder: %s (%s); auto check took %.1f s", chosen_name, chosen.description,
                time.perf_counter() - started)
    return chosen, decision


def _try(variant: Variant, source: EncoderSource, reference: ImageEncoder, pixels: np.ndarray, geometry: Geometry,
         prompts: Sequence[Prompts], ref_results: Sequence[MaskResult], decode_many: Decode, runs: int,
         agreement: Agreement, min_speedup: float, ref_times: list[float],
         window: Window) -> tuple[CandidateReport, ImageEncoder | None]:
    """Load, time (interleaved with fp32) and compare one candidate; never raises for the candidate's faults."""
    name = variant.name
    try:
        encoder = variant.load(source)
    except SamOnnxError as exc:
        return CandidateReport(name, "skipped", f"not available: {exc}"), None
    except Exception as exc:  # noqa: BLE001 - a third-party engine may fail in any way; skip it, say why
        return CandidateReport(name, "skipped", f"failed to load ({type(exc).__name__}: {exc})"), None
    try:
        _, outputs = _timed(encoder, pixels, window, again=False)  # warm-up; its output is as good as any
        results = decode_many(ImageEmbedding(outputs, geometry), prompts)
        min_iou, max_diff = compare(ref_results, results)
        mine, theirs = [], []
        for _ in range(max(1, runs)):
            theirs.append(_timed(reference, pixels, window)[0])
            mine.append(_timed(encoder, pixels, window)[0])
    except Exception as exc:  # noqa: BLE001 - same: a candidate that cannot run is skipped, never used
        return CandidateReport(name, "skipped", f"failed to run ({type(exc).__name__}: {exc})",
                               description=getattr(encoder, "description", "")), None
    ref_times.extend(theirs)
    ms, ratio = min(mine), min(mine) / min(theirs)
    faithful, fast = agrees(min_iou, max_diff, agreement), ratio <= 1.0 - min_speedup
    reasons = ([] if faithful else ["masks differ from fp32"]) + \
        ([] if fast else [f"not {min_speedup:.0%} faster than fp32"])
    return CandidateReport(name, "rejected" if reasons else "accepted", "; ".join(reasons), ms=ms, ratio=ratio,
                           min_mask_iou=min_iou, max_score_diff=max_diff,
                           description=encoder.description), (None if reasons else encoder)


def describe(decision: Decision) -> str:
    """Every candidate's line, for logs and the CLI."""
    return "\n".join(r.line() for r in decision.reports)

