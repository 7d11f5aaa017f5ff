"""The measurement behind `auto`'s prompts (python -m bench.bench_auto_prompts) runs end to end on the analytic
models: the simulated user's sequences are built from fp32's masks and judged by auto's own rule."""

from __future__ import annotations

import json

from bench import bench_auto_prompts
from sam_onnx.encoders import auto


def test_fixed_and_simulated_prompts_are_judged_by_autos_rule(analytic_dir, tmp_path, capsys):
    out = tmp_path / "auto_prompts.json"
    assert bench_auto_prompts.main(["--model-dir", str(analytic_dir), "--variants", "int8", "no-such-variant",
                                    "--clicks", "3", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    row, skipped = result["rows"]
    assert row["fixed prompts"] == len(auto.CALIBRATION_PROMPTS)
    assert 0 < row["simulated prompts"] <= 3 * 3  # three single-point objects, at most 3 clicks each
    assert row["fixed agrees"] == auto.agrees(row["fixed min IoU"], row["fixed max score diff"])
    assert row["simulated agrees"] == auto.agrees(row["simulated min IoU"], row["simulated max score diff"])
    assert "skipped" in skipped
    assert "same decision" in capsys.readouterr().out
