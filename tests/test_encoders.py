"""Encoder variants behind one seam, and ``--encoder auto`` picking only faithful, faster ones.

Real onnxruntime sessions throughout: the reduced transformers fixture
(tests/fixtures/sam2_tiny, a real SAM 2 graph whose masks depend on the
embeddings) for agreement, the analytic models for the selection mechanics.
Agreement tests switch the speed rule off (``min_speedup=-inf``); speed tests
slow encoders down with sleeps much longer than the analytic model's run, so no
test depends on how busy the machine is.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import shutil
import time
from pathlib import Path

import numpy as np
import onnx
import pytest

from sam_onnx import ModelLoadError, Sam2Predictor
from sam_onnx.encoders import (
    FP32,
    EncoderSource,
    EncoderUnavailable,
    Variant,
    auto,
    encoder_choices,
    load_encoder,
    ort_fp32,
    ort_int8,
    requested_encoder,
)
from sam_onnx.errors import InferenceError
from sam_onnx.types import ImageEmbedding

FIXTURE = Path(__file__).parent / "fixtures" / "sam2_tiny"
PERTURBATION = 0.1
"""Noise (x each output's std) that moves the fixture's masks to IoU ~0.84 against fp32."""
SLIGHT = 0.002
"""Noise small enough to keep every fixture mask at IoU > 0.99."""


# ---------------------------------------------------------------------------- helpers
class Wrapped:
    """A real encoder, optionally slowed down (fixed sleep) and/or perturbed (seeded noise on the embeddings)."""

    def __init__(self, inner, name: str, *, sleep: float = 0.0, noise: float = 0.0) -> None:
        self.inner, self.name, self.sleep, self.noise = inner, name, sleep, noise
        self.description = f"{inner.description} (sleep {sleep}s, noise {noise})"
        self.calls = 0
        self._noise: tuple[np.ndarray, ...] | None = None

    def encode(self, pixel_values):
        self.calls += 1
        time.sleep(self.sleep)
        outputs = self.inner.encode(pixel_values)
        if not self.noise:
            return outputs
        if self._noise is None:  # drawn once, so that a noisy encoder is not slower than its inner one
            rng = np.random.default_rng(0)
            self._noise = tuple(self.noise * o.std() * rng.standard_normal(o.shape).astype(np.float32)
                                for o in outputs)
        return tuple(o + n for o, n in zip(outputs, self._noise))


class Loads:
    """Counts how often each variant of a test table is built."""

    def __init__(self) -> None:
        self.count: dict[str, int] = {}

    def variant(self, name: str, build, **kwargs) -> Variant:
        def load(source):
            self.count[name] = self.count.get(name, 0) + 1
            return build(source)
        return Variant(name, load, **kwargs)


def _source(encoder: Path, cache: Path, **kwargs) -> EncoderSource:
    return EncoderSource(encoder, cache, threads=1, **kwargs)


def _fixture_predictor():
    return Sam2Predictor.from_files(FIXTURE / "encoder.onnx", FIXTURE / "decoder.onnx", threads=1)


@pytest.fixture(scope="module")
def fixture_decode():
    return _fixture_predictor().decode_many


@pytest.fixture(scope="module")
def analytic_decode(analytic_dir):
    return Sam2Predictor.from_files(analytic_dir / "encoder.onnx", analytic_dir / "decoder.onnx",
                                    threads=1).decode_many


def _slow_fp32(sleep: float):
    return lambda source: Wrapped(ort_fp32.load(source), FP32, sleep=sleep)


def _report(decision, name):
    return next(r for r in decision.reports if r.name == name)


# ---------------------------------------------------------------------------- agreement rule
def test_agreement_thresholds_are_the_issue_s_and_bound_both_ways():
    assert (auto.AGREEMENT.min_mask_iou, auto.AGREEMENT.max_score_diff, auto.MIN_SPEEDUP) == (0.98, 0.02, 0.15)
    assert auto.agrees(0.98, 0.02) and auto.agrees(1.0, 0.0)
    assert not auto.agrees(0.9799, 0.0) and not auto.agrees(1.0, 0.0201)


def test_mask_iou_counts_pixels_and_two_empty_masks_agree():
    a = np.zeros((10, 10), bool)
    assert auto.mask_iou(a, a) == 1.0
    b = a.copy()
    b[:5] = True
    c = a.copy()
    c[:4] = True
    assert auto.mask_iou(b, c) == pytest.approx(40 / 50)
    assert auto.mask_iou(b, a) == 0.0


def test_calibration_prompts_cover_every_layout_inside_the_photo():
    _, geometry = auto.calibration_input()
    assert geometry.original_hw == (400, 600)
    layouts = {(bool(p.points), p.box is not None, any(not q.positive for q in p.points))
               for _, p in auto.CALIBRATION_PROMPTS}
    assert {(True, False, False), (True, False, True), (False, True, False), (True, True, True),
            (True, True, False)} <= layouts
    for _, prompts in auto.CALIBRATION_PROMPTS:
        prompts.check_inside(geometry.original_hw)


# ---------------------------------------------------------------------------- auto on the fixture
def test_auto_rejects_a_perturbed_candidate_though_it_is_the_quickest(tmp_path, fixture_decode, caplog):
    """Perturbed embeddings change the fixture's masks: never chosen, though it is the fastest candidate."""
    loads = Loads()
    table = {
        FP32: loads.variant(FP32, ort_fp32.load),
        "perturbed": loads.variant("perturbed", lambda s: Wrapped(ort_fp32.load(s), "perturbed", noise=PERTURBATION)),
        "faithful": loads.variant("faithful", lambda s: Wrapped(ort_fp32.load(s), "faithful", sleep=0.1)),
    }
    with caplog.at_level(logging.INFO, logger="sam_onnx.encoders.auto"):
        encoder, decision = auto.choose(_source(FIXTURE / "encoder.onnx", tmp_path), fixture_decode, table=table,
                                        runs=1, use_cache=False, min_speedup=-math.inf)
    perturbed = _report(decision, "perturbed")
    assert perturbed.status == "rejected" and "masks differ" in perturbed.reason
    assert perturbed.min_mask_iou < auto.AGREEMENT.min_mask_iou
    assert decision.chosen == "faithful" and encoder.name == "faithful"
    assert _report(decision, "faithful").min_mask_iou == 1.0
    assert "perturbed" in caplog.text and "masks differ" in caplog.text  # every candidate is logged


def test_auto_keeps_fp32_when_the_only_fast_candidate_disagrees(tmp_path, fixture_decode):
    table = {FP32: Variant(FP32, ort_fp32.load),
             "perturbed": Variant("perturbed", lambda s: Wrapped(ort_fp32.load(s), "perturbed", noise=PERTURBATION))}
    encoder, decision = auto.choose(_source(FIXTURE / "encoder.onnx", tmp_path), fixture_decode, table=table,
                                    runs=1, use_cache=False, min_speedup=-math.inf)
    assert decision.chosen == FP32 and encoder.name == FP32
    assert "no faster variant agreed" in decision.summary()


def test_auto_accepts_slight_numeric_differences(tmp_path, fixture_decode):
    """Noise of the size of bf16 rounding keeps every mask: the check is not bit-exactness."""
    table = {FP32: Variant(FP32, ort_fp32.load),
             "slight": Variant("slight", lambda s: Wrapped(ort_fp32.load(s), "slight", noise=SLIGHT))}
    _, decision = auto.choose(_source(FIXTURE / "encoder.onnx", tmp_path), fixture_decode, table=table, runs=1,
                              use_cache=False, min_speedup=-math.inf)
    slight = _report(decision, "slight")
    assert decision.chosen == "slight", slight
    assert auto.AGREEMENT.min_mask_iou <= slight.min_mask_iou < 1.0


# ---------------------------------------------------------------------------- auto mechanics (analytic)
def test_auto_skips_candidates_that_fail_to_load_or_run_and_says_why(tmp_path, analytic_dir, analytic_decode,
                                                                      caplog):
    def unavailable(source):
        raise EncoderUnavailable("the examplevino package is not installed")

    def crashes(source):
        raise RuntimeError("segfault-ish")

    class Fails:
        name, description = "fails-to-run", "raises on encode"

        def encode(self, pixel_values):
            raise InferenceError("engine died")

    class WrongShapes:
        name, description = "wrong-shapes", "returns the wrong embeddings"

        def encode(self, pixel_values):
            return tuple(np.zeros((1, 8, 8, 8), np.float32) for _ in range(3))

    table = {FP32: Variant(FP32, _slow_fp32(0.2)), "missing": Variant("missing", unavailable),
             "crashes": Variant("crashes", crashes), "fails-to-run": Variant("fails-to-run", lambda s: Fails()),
             "wrong-shapes": Variant("wrong-shapes", lambda s: WrongShapes())}
    with caplog.at_level(logging.INFO, logger="sam_onnx.encoders.auto"):
        encoder, decision = auto.choose(_source(analytic_dir / "encoder.onnx", tmp_path), analytic_decode,
                                        table=table, runs=1, use_cache=False)
    assert decision.chosen == FP32 and encoder.name == FP32
    reasons = {r.name: (r.status, r.reason) for r in decision.reports}
    assert reasons["missing"] == ("skipped", "not available: the examplevino package is not installed")
    assert reasons["crashes"][0] == "skipped" and "RuntimeError: segfault-ish" in reasons["crashes"][1]
    assert reasons["fails-to-run"][0] == "skipped" and "engine died" in reasons["fails-to-run"][1]
    assert reasons["wrong-shapes"][0] == "skipped" and "failed to run" in reasons["wrong-shapes"][1]
    for name in ("missing", "crashes", "fails-to-run", "wrong-shapes"):
        assert name in caplog.text


def test_auto_needs_a_15_percent_gain_and_takes_the_fastest(tmp_path, analytic_dir, analytic_decode):
    same = lambda name, sleep: Variant(name, lambda s: Wrapped(ort_fp32.load(s), name, sleep=sleep))  # noqa: E731
    table = {FP32: Variant(FP32, _slow_fp32(0.4)), "marginal": same("marginal", 0.4),
             "fast": same("fast", 0.1), "fastest": same("fastest", 0.0)}
    encoder, decision = auto.choose(_source(analytic_dir / "encoder.onnx", tmp_path), analytic_decode, table=table,
                                    runs=3, use_cache=False)
    marginal = _report(decision, "marginal")
    assert marginal.status == "rejected" and "15% faster" in marginal.reason and marginal.ratio > 0.85
    assert _report(decision, "fast").status == "accepted"
    assert decision.chosen == "fastest" and _report(decision, "fastest").status == "chosen"
    assert decision.reports[0].name == FP32 and decision.reports[0].status == "reference"


def test_a_check_in_the_background_times_again_every_run_other_work_disturbed(tmp_path, analytic_dir,
                                                                           analytic_decode):
    """Run behind a server's users, the check learns from its window when a user's work ran beside a timed run
    (which then took longer) and times that run again: a candidate no faster than undisturbed fp32 is rejected,
    though every first fp32 run was slowed."""
    import contextlib

    calls = {"windows": 0, "busy": False}

    @contextlib.contextmanager
    def window():
        calls["windows"] += 1
        calls["busy"] = calls["windows"] % 2 == 1  # every other run shares the CPU with a user's upload
        seen = auto.RunSeen()
        yield seen
        seen.disturbed = calls["busy"]

    class Contended(Wrapped):
        def encode(self, pixel_values):
            time.sleep(CONTENDED_S if calls["busy"] else 0.0)
            return super().encode(pixel_values)

    table = {FP32: Variant(FP32, lambda s: Contended(ort_fp32.load(s), FP32, sleep=0.2)),
             "marginal": Variant("marginal", lambda s: Wrapped(ort_fp32.load(s), "marginal", sleep=0.2))}
    check = auto.choose(_source(analytic_dir / "encoder.onnx", tmp_path), analytic_decode, table=table,
                        use_cache=False, later=True)[1].pending
    encoder, decision = auto.run_check(check, analytic_decode, table=table, window=window)
    assert decision.chosen == FP32 and _report(decision, "marginal").status == "rejected"
    assert _report(decision, "marginal").ratio > 1 - auto.MIN_SPEEDUP


CONTENDED_S = 0.4
"""What a user's work beside a timed run adds to it in the test above."""


def _copy_models(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for name in ("encoder.onnx", "decoder.onnx"):
        shutil.copy(src / name, dst / name)
    return dst


def test_auto_decision_is_stored_reused_and_invalidated_by_a_new_model(tmp_path, analytic_dir, analytic_decode):
    models = _copy_models(analytic_dir, tmp_path / "models")
    cache = tmp_path / "cache"
    loads = Loads()
    table = {FP32: loads.variant(FP32, _slow_fp32(0.2)),
             "quick": loads.variant("quick", lambda s: Wrapped(ort_fp32.load(s), "quick"))}
    source = _source(models / "encoder.onnx", cache)

    choose = functools.partial(auto.choose, source, analytic_decode, table=table, runs=1, min_speedup=-math.inf)
    first, decision = choose()
    assert decision.chosen == "quick" and not decision.from_cache
    stored = list((cache / "auto").glob("*.json"))
    assert len(stored) == 1 and json.loads(stored[0].read_text())["chosen"] == "quick"

    loads.count.clear()
    again, reused = choose()
    assert reused.from_cache and reused.chosen == "quick" and again.name == "quick"
    assert loads.count == {"quick": 1}  # no fp32 reference, no check: the chosen variant only
    assert again.calls == 0  # and not a single calibration encode

    model = onnx.load(str(models / "encoder.onnx"))  # same graph, new bytes: a new model hash
    onnx.helper.set_model_props(model, {"release": "2"})
    onnx.save(model, str(models / "encoder.onnx"))
    loads.count.clear()
    _, rechecked = choose()
    assert not rechecked.from_cache and loads.count == {FP32: 1, "quick": 1}
    assert rechecked.key["encoder"] != decision.key["encoder"]
    assert len(list((cache / "auto").glob("*.json"))) == 2


def test_stored_decision_that_no_longer_loads_or_is_damaged_means_a_new_check(tmp_path, analytic_dir,
                                                                              analytic_decode):
    cache = tmp_path / "cache"
    works = {"ok": True}

    def quick(source):
        if not works["ok"]:
            raise EncoderUnavailable("its package was uninstalled")
        return Wrapped(ort_fp32.load(source), "quick")

    table = {FP32: Variant(FP32, _slow_fp32(0.2)), "quick": Variant("quick", quick)}
    choose = functools.partial(auto.choose, _source(analytic_dir / "encoder.onnx", cache), analytic_decode,
                               table=table, runs=1, min_speedup=-math.inf)
    assert choose()[1].chosen == "quick"

    works["ok"] = False
    encoder, decision = choose()
    assert not decision.from_cache and decision.chosen == FP32 and encoder.name == FP32
    assert _report(decision, "quick").status == "skipped"

    (stored,) = (cache / "auto").glob("*.json")
    stored.write_text("{not json")
    _, decision = choose()
    assert not decision.from_cache and decision.chosen == FP32


def test_decision_key_names_model_cpu_threads_packages_and_thresholds(tmp_path, analytic_dir):
    key = auto.decision_key(_source(analytic_dir / "encoder.onnx", tmp_path), ["int8"],
                            decoder_path=analytic_dir / "decoder.onnx")
    assert len(key["encoder"]) == 64 and len(key["decoder"]) == 64
    assert key["cpu"]["model"] and len(key["cpu"]["flags"]) == 16
    assert key["threads"] == 1 and key["packages"]["onnxruntime"]
    assert key["agreement"] == {"min_mask_iou": 0.98, "max_score_diff": 0.02} and key["candidates"] == ["int8"]


# ---------------------------------------------------------------------------- the engines
def test_int8_is_made_once_from_the_fixture_keyed_by_hash_and_onnxruntime_version(tmp_path):
    source = _source(FIXTURE / "encoder.onnx", tmp_path)
    encoder = ort_int8.load(source)
    path = ort_int8.int8_path(source)
    assert path.is_file() and path.parent.parent == tmp_path / "int8"
    assert f"onnxruntime{ort_int8.ort_session.version()}" in path.parent.name
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops and encoder.name == "int8"

    reference = ort_fp32.load(source)
    pixels, _ = auto.calibration_input()
    for got, want in zip(encoder.encode(pixels), reference.encode(pixels), strict=True):
        assert got.dtype == np.float32 and got.shape == want.shape
        rel = np.linalg.norm(got - want) / np.linalg.norm(want)
        assert 0 < rel < 0.1  # quantized (not a copy), and close

    made = path.stat().st_mtime_ns
    ort_int8.load(source)
    assert path.stat().st_mtime_ns == made  # reused, not made again

    path.write_bytes(path.read_bytes()[:1000])  # damaged (e.g. a full disk): made again, not a crash
    assert ort_int8.load(source).encode(pixels)[0].shape == (1, 32, 256, 256)

    other = tmp_path / "other.onnx"
    model = onnx.load(str(FIXTURE / "encoder.onnx"))
    onnx.helper.set_model_props(model, {"release": "2"})
    onnx.save(model, str(other))
    assert ort_int8.int8_path(_source(other, tmp_path)) != path


def test_openvino_runs_the_fixture_like_fp32_within_its_precision(tmp_path):
    pytest.importorskip("openvino", reason="the optional openvino package is not installed")
    from sam_onnx.encoders import openvino_cpu

    source = _source(FIXTURE / "encoder.onnx", tmp_path)
    pixels, _ = auto.calibration_input()
    reference = ort_fp32.load(source).encode(pixels)
    tolerance = {"f32": 1e-4, "bf16": 3e-2}
    supported = openvino_cpu.supported_precisions()
    assert "f32" in supported
    for precision in supported:
        encoder = openvino_cpu.load(source, precision)
        assert encoder.name == f"openvino-{precision}" and precision in encoder.description
        for got, want in zip(encoder.encode(pixels), reference, strict=True):
            assert got.dtype == np.float32 and got.flags.c_contiguous
            assert np.linalg.norm(got - want) / np.linalg.norm(want) < tolerance[precision]
    assert load_encoder("openvino", source).name == openvino_cpu.default_variant()


def _without(monkeypatch, package: str) -> None:
    """Make ``import package`` fail as if it were not installed."""
    import builtins

    real_import = builtins.__import__

    def guarded(name, *args, **kwargs):
        if name == package or name.startswith(f"{package}."):
            raise ImportError(f"No module named {package!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", guarded)


def test_openvino_missing_is_a_reason_not_a_crash(tmp_path, monkeypatch):
    from sam_onnx.encoders import openvino_cpu

    _without(monkeypatch, "openvino")
    assert openvino_cpu.supported_precisions() == ()
    with pytest.raises(EncoderUnavailable, match="openvino package is not installed"):
        openvino_cpu.load(_source(FIXTURE / "encoder.onnx", tmp_path), "f32")


# ---------------------------------------------------------------------------- the predictor and the names
def test_predictor_reports_the_encoder_and_keeps_injected_sessions_working(predictor):
    info = predictor.info
    assert (info.encoder_name, info.encoder_dtype, info.encoder_selection) == (FP32, "float32", "forced")
    assert "onnxruntime" in info.encoder_description


def test_from_files_auto_and_forced_variants(tmp_path, analytic_dir):
    auto_predictor = Sam2Predictor.from_files(analytic_dir / "encoder.onnx", analytic_dir / "decoder.onnx",
                                              threads=1, variant="auto", encoder_cache_dir=tmp_path)
    assert auto_predictor.info.encoder_selection.startswith("auto")
    assert auto_predictor.decision is not None and auto_predictor.decision.reports[0].name == FP32
    int8 = Sam2Predictor.from_files(analytic_dir / "encoder.onnx", analytic_dir / "decoder.onnx", threads=1,
                                    variant="int8", encoder_cache_dir=tmp_path)
    assert int8.info.encoder_name == "int8" and int8.info.encoder_path.startswith(str(tmp_path))
    with pytest.raises(ModelLoadError, match="fp16 encoder cannot run here"):
        Sam2Predictor.from_files(analytic_dir / "encoder.onnx", analytic_dir / "decoder.onnx", threads=1,
                                 variant="fp16", encoder_cache_dir=tmp_path)


def test_an_auto_encoder_alone_loads_a_decoder_only_to_run_its_check(tmp_path, analytic_dir, monkeypatch):
    """``encoders.from_pretrained(variant="auto")``: the first start checks (its decoder loaded once, for the
    masks); the next one finds the stored decision and loads no decoder at all."""
    from sam_onnx import decoder as mask_decoder
    from sam_onnx import encoders

    loads = []
    real = mask_decoder.load_decoder
    monkeypatch.setattr(mask_decoder, "load_decoder", lambda *a, **k: loads.append(a) or real(*a, **k))
    first = encoders.from_pretrained(model_dir=analytic_dir, variant="auto", threads=1, encoder_cache_dir=tmp_path)
    assert len(loads) == 1
    again = encoders.from_pretrained(model_dir=analytic_dir, variant="auto", threads=1, encoder_cache_dir=tmp_path)
    assert len(loads) == 1 and again.name == first.name


def test_encoder_names_flag_and_environment(monkeypatch):
    assert {"auto", "fp32", "int8", "openvino", "fp16"} <= set(encoder_choices())
    monkeypatch.delenv("SAM_ONNX_ENCODER", raising=False)
    assert requested_encoder() == "auto"
    monkeypatch.setenv("SAM_ONNX_ENCODER", "INT8")
    assert requested_encoder() == "int8" and requested_encoder("fp32") == "fp32"
    monkeypatch.setenv("SAM_ONNX_ENCODER", "turbo")
    with pytest.raises(ModelLoadError, match="Unknown encoder 'turbo' \\(from SAM_ONNX_ENCODER\\)"):
        requested_encoder()


def test_from_pretrained_takes_the_encoder_from_the_environment(tmp_path, analytic_dir, monkeypatch):
    monkeypatch.setenv("SAM_ONNX_ENCODER", "int8")
    predictor = Sam2Predictor.from_pretrained(model_dir=analytic_dir, threads=1, encoder_cache_dir=tmp_path)
    assert predictor.info.encoder_name == "int8"
    assert Sam2Predictor.from_pretrained(model_dir=analytic_dir, threads=1, variant="fp32").info.encoder_name == FP32


def test_every_variant_gives_the_same_embeddings_contract(tmp_path):
    """Whatever runs inside, the predictor gets float32 arrays of the three contract shapes."""
    source = _source(FIXTURE / "encoder.onnx", tmp_path)
    pixels, geometry = auto.calibration_input()
    for name in ("fp32", "int8"):
        outputs = load_encoder(name, source).encode(pixels)
        ImageEmbedding(outputs, geometry)  # accepted by the value type
        assert [o.shape for o in outputs] == [(1, 32, 256, 256), (1, 64, 128, 128), (1, 256, 64, 64)]


def test_auto_on_a_damaged_encoder_fails_with_the_load_message(tmp_path, analytic_dir):
    (tmp_path / "encoder.onnx").write_text("<html><body>404 Not Found</body></html>")
    shutil.copy(analytic_dir / "decoder.onnx", tmp_path / "decoder.onnx")
    with pytest.raises(ModelLoadError, match="not a valid ONNX file"):
        Sam2Predictor.from_files(tmp_path / "encoder.onnx", tmp_path / "decoder.onnx", threads=1, variant="auto",
                                 encoder_cache_dir=tmp_path / "cache")


def test_openvino_int8_is_made_once_from_the_fixture_and_stays_close_to_fp32(tmp_path):
    pytest.importorskip("openvino", reason="the optional openvino package is not installed")
    pytest.importorskip("nncf", reason="the optional nncf package is not installed")
    from sam_onnx.encoders import openvino_int8

    source = _source(FIXTURE / "encoder.onnx", tmp_path)
    encoder = openvino_int8.load(source)
    path = openvino_int8.int8_ir_path(source)
    assert path.is_file() and path.with_suffix(".bin").is_file() and encoder.name == "openvino-int8"
    assert "FakeQuantize" in path.read_text()  # really quantized
    pixels, _ = auto.calibration_input()
    for got, want in zip(encoder.encode(pixels), ort_fp32.load(source).encode(pixels), strict=True):
        assert got.dtype == np.float32 and 0 < np.linalg.norm(got - want) / np.linalg.norm(want) < 0.1
    made = path.stat().st_mtime_ns
    openvino_int8.load(source)
    assert path.stat().st_mtime_ns == made  # reused


def test_openvino_int8_without_nncf_is_a_reason(tmp_path, monkeypatch):
    from sam_onnx.encoders import openvino_int8

    _without(monkeypatch, "nncf")
    with pytest.raises(EncoderUnavailable, match="(nncf|openvino) package is not installed"):
        openvino_int8.load(_source(FIXTURE / "encoder.onnx", tmp_path))
