"""tools/check_model.py: every layout repeatable, and the unrepaired control must show the quirk.

The control is what makes the tool's verdict mean something: on a file with the onnxruntime Concat
quirk, the decoder as shipped must give different logits from the repaired one. If it does not (the
repair was a no-op, or stale memory happened to repeat), the tool must fail rather than pass quietly.
"""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

from sam_onnx.graph_repair import load_repaired_decoder
from tools import check_model

FIXTURE = Path(__file__).parent / "fixtures" / "sam2_tiny"


def test_check_model_on_the_quirky_fixture(capsys):
    assert check_model.main(["--model-dir", str(FIXTURE)]) == 0
    out = capsys.readouterr().out
    assert "prompt Concat nodes repaired: 1" in out
    assert "the unrepaired decoder differs" in out
    assert "all layouts deterministic and repeatable; the control is as expected" in out
    assert out.count(" True") >= 3 * len(check_model.LAYOUTS)


def test_check_model_fails_when_the_unrepaired_control_is_not_different(capsys, monkeypatch):
    """Stand-in for "the control shows nothing": the 'unrepaired' session secretly runs the repaired graph."""
    repaired_bytes, report = load_repaired_decoder(FIXTURE / "decoder.onnx")
    assert report.changed
    monkeypatch.setattr(check_model, "unrepaired_decoder",
                        lambda path: ort.InferenceSession(repaired_bytes, providers=["CPUExecutionProvider"]))
    assert check_model.main(["--model-dir", str(FIXTURE)]) == 1
    out = capsys.readouterr().out
    assert "CONTROL NOT DIFFERENT" in out and "RESULT: FAILED" in out


def test_check_model_without_a_quirk_needs_an_identical_control(analytic_dir, capsys):
    """The analytic decoder has no prompt Concat: nothing is repaired, and the control must equal the run."""
    assert check_model.main(["--model-dir", str(analytic_dir)]) == 0
    out = capsys.readouterr().out
    assert "prompt Concat nodes repaired: 0" in out
    assert "nothing was repaired and the unrepaired decoder gives the same logits" in out
