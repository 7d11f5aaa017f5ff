"""``--encoder auto``'s two guarantees, each part on its own (issue 21):

1. a candidate whose masks differ from fp32's in ANY of the three candidate masks (or any predicted IoU) of
   any calibration prompt is rejected, however fast it is;
2. the stored decision is reused only for exactly the same model files, CPU (model and feature flags),
   threads, providers, package versions, candidates and thresholds: each of them, changed alone, means a
   new check.

Real onnxruntime sessions on the analytic models; the disagreement is injected into one candidate mask of
one prompt's decoder result, so nothing depends on how a real variant happens to round.
"""

from __future__ import annotations

import builtins
import dataclasses
import io
import math
import shutil
from pathlib import Path

import onnx
import pytest

from sam_onnx import Sam2Predictor
from sam_onnx.encoders import FP32, EncoderSource, Variant, auto, ort_fp32
from sam_onnx.types import NUM_CANDIDATES, ImageEmbedding, MaskResult

MARK = 7.25
"""Written into the first embedding value of a marked candidate's output, so the decoder wrapper knows it."""
SCORE_STEP = 0.03
"""A predicted-IoU change just over ``AGREEMENT.max_score_diff`` (0.02)."""
CPUINFO = "processor\t: 0\nmodel name\t: {model}\nflags\t\t: {flags}\n\n"


class Marked:
    """fp32, with :data:`MARK` in its first embedding value (the analytic masks do not change)."""

    def __init__(self, inner, name: str) -> None:
        self.inner, self.name, self.description = inner, name, f"marked {name}"

    def encode(self, pixel_values):
        first, *rest = self.inner.encode(pixel_values)
        first = first.copy()
        first.flat[0] = MARK
        return (first, *rest)


def decoder_that_alters(decode_many, candidate: int | None, what: str):
    """``decode_many`` whose results for a marked embedding differ from the real ones in one place only: the
    ``candidate``-th mask (``what="mask"``, logits negated) or score (``what="score"``) of the last prompt."""

    def decode(embedding: ImageEmbedding, prompts):
        results = list(decode_many(embedding, prompts))
        if candidate is None or embedding.features[0].flat[0] != MARK:
            return results
        last = results[-1]
        logits, scores = last.low_res_logits.copy(), last.scores.copy()
        if what == "mask":
            logits[candidate] = -logits[candidate]
        else:
            scores[candidate] = min(1.0, scores[candidate] + SCORE_STEP) if scores[candidate] < 0.5 else \
                scores[candidate] - SCORE_STEP
        results[-1] = MaskResult(logits, scores, last.object_score_logit, last.geometry)
        return results

    return decode


@pytest.fixture(scope="module")
def analytic_decode(analytic_dir):
    return Sam2Predictor.from_files(analytic_dir / "encoder.onnx", analytic_dir / "decoder.onnx",
                                    threads=1).decode_many


def _choose(analytic_dir, tmp_path, decode, **kwargs):
    table = {FP32: Variant(FP32, ort_fp32.load), "candidate": Variant("candidate",
                                                                      lambda s: Marked(ort_fp32.load(s), "candidate"))}
    return auto.choose(EncoderSource(analytic_dir / "encoder.onnx", tmp_path, threads=1), decode, table=table,
                       runs=1, min_speedup=-math.inf, **kwargs)


def test_the_marked_candidate_agrees_when_nothing_is_altered(analytic_dir, tmp_path, analytic_decode):
    """The control: the mark alone changes no mask, so a rejection below is the altered candidate's doing."""
    _, decision = _choose(analytic_dir, tmp_path, decoder_that_alters(analytic_decode, None, "mask"),
                          use_cache=False)
    assert decision.chosen == "candidate", decision.reports


@pytest.mark.parametrize("what", ["mask", "score"])
@pytest.mark.parametrize("candidate", range(NUM_CANDIDATES))
def test_a_difference_in_any_one_of_the_three_candidates_rejects_the_variant(analytic_dir, tmp_path, analytic_decode,
                                                                             candidate, what):
    encoder, decision = _choose(analytic_dir, tmp_path, decoder_that_alters(analytic_decode, candidate, what),
                                use_cache=False)
    report = next(r for r in decision.reports if r.name == "candidate")
    assert report.status == "rejected" and "masks differ" in report.reason, report
    assert decision.chosen == FP32 and encoder.name == FP32
    if what == "mask":
        assert report.min_mask_iou < auto.AGREEMENT.min_mask_iou
    else:
        assert report.max_score_diff > auto.AGREEMENT.max_score_diff and report.min_mask_iou == 1.0


# ---------------------------------------------------------------------------- the decision's key
def _copy(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dst)
    return dst


def _other_model(src: Path, dst: Path) -> Path:
    """The same graph with new bytes (a new release of the same model)."""
    model = onnx.load(str(src))
    onnx.helper.set_model_props(model, {"release": "2"})
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    return dst


@pytest.fixture
def cpu(monkeypatch):
    """The CPU as ``/proc/cpuinfo`` describes it: ``cpu["model"]`` and ``cpu["flags"]`` can be changed."""
    described = {"model": "Example CPU 9000", "flags": "fpu sse avx2 avx512f"}
    real_open = builtins.open

    def fake_open(file, *args, **kwargs):
        if str(file) == "/proc/cpuinfo":
            return io.StringIO(CPUINFO.format(**described))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    return described


@pytest.fixture
def versions(monkeypatch):
    """Installed package versions as ``auto`` sees them; change one in the returned dict."""
    installed = {"onnxruntime": "1.32.0", "openvino": "2026.4.0", "numpy": "2.4.6"}
    monkeypatch.setattr(auto, "package_version", lambda name: installed.get(name))
    return installed


CHANGES = {
    "encoder file": lambda ctx: ctx.update(source=dataclasses.replace(
        ctx["source"], encoder_path=_other_model(ctx["source"].encoder_path, ctx["tmp"] / "new" / "encoder.onnx"))),
    "decoder file": lambda ctx: ctx.update(decoder=_other_model(ctx["decoder"], ctx["tmp"] / "new" / "decoder.onnx")),
    "fp16 encoder file": lambda ctx: ctx.update(source=dataclasses.replace(
        ctx["source"], fp16_encoder_path=_copy(ctx["decoder"], ctx["tmp"] / "fp16" / "encoder_fp16.onnx"))),
    "CPU model": lambda ctx: ctx["cpu"].update(model="Example CPU 9001"),
    "CPU flags": lambda ctx: ctx["cpu"].update(flags="fpu sse avx2 avx512f avx512_bf16"),
    "threads": lambda ctx: ctx.update(source=dataclasses.replace(ctx["source"], threads=2)),
    "providers": lambda ctx: ctx.update(source=dataclasses.replace(ctx["source"], providers=("CPUExecutionProvider",))),
    "onnxruntime version": lambda ctx: ctx["versions"].update(onnxruntime="1.33.0"),
    "openvino version": lambda ctx: ctx["versions"].update(openvino="2026.5.0"),
    "numpy version": lambda ctx: ctx["versions"].update(numpy="2.5.0"),
    "candidates": lambda ctx: ctx.update(candidates=["int8"]),
    "mask IoU threshold": lambda ctx: ctx.update(agreement=auto.Agreement(0.99, auto.AGREEMENT.max_score_diff)),
    "score threshold": lambda ctx: ctx.update(agreement=auto.Agreement(auto.AGREEMENT.min_mask_iou, 0.01)),
    "speed threshold": lambda ctx: ctx.update(min_speedup=0.2),
}


def _path(ctx) -> Path:
    key = auto.decision_key(ctx["source"], ctx["candidates"], decoder_path=ctx["decoder"], agreement=ctx["agreement"],
                            min_speedup=ctx["min_speedup"])
    return auto.decision_path(ctx["tmp"] / "cache", key)


@pytest.mark.parametrize("change", list(CHANGES))
def test_every_component_of_the_decision_key_changes_it(analytic_dir, tmp_path, cpu, versions, change):
    ctx = {"tmp": tmp_path, "cpu": cpu, "versions": versions, "candidates": ["candidate"],
           "source": EncoderSource(_copy(analytic_dir / "encoder.onnx", tmp_path / "m" / "encoder.onnx"),
                                   tmp_path / "cache", threads=1),
           "decoder": _copy(analytic_dir / "decoder.onnx", tmp_path / "m" / "decoder.onnx"),
           "agreement": auto.AGREEMENT, "min_speedup": auto.MIN_SPEEDUP}
    before = _path(ctx)
    assert _path(ctx) == before  # the key is stable while nothing changes
    CHANGES[change](ctx)
    assert _path(ctx) != before, f"a new {change} would reuse the stored decision"


def test_a_stored_decision_is_reused_on_the_same_machine_and_checked_again_on_other_cpu_flags(
        analytic_dir, tmp_path, cpu, versions, analytic_decode):
    decode = decoder_that_alters(analytic_decode, None, "mask")
    _, first = _choose(analytic_dir, tmp_path, decode, decoder_path=analytic_dir / "decoder.onnx")
    assert not first.from_cache
    _, again = _choose(analytic_dir, tmp_path, decode, decoder_path=analytic_dir / "decoder.onnx")
    assert again.from_cache and again.chosen == first.chosen
    cpu["flags"] += " amx_tile"  # the same model name on a CPU that has other instructions
    _, other_cpu = _choose(analytic_dir, tmp_path, decode, decoder_path=analytic_dir / "decoder.onnx")
    assert not other_cpu.from_cache
    versions["openvino"] = "2027.0.0"
    _, other_package = _choose(analytic_dir, tmp_path, decode, decoder_path=analytic_dir / "decoder.onnx")
    assert not other_package.from_cache
    assert len(list((tmp_path / "auto").glob("*.json"))) == 3
