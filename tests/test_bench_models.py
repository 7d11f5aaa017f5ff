"""The per-size benchmark (python -m bench.bench_models) runs end to end on the analytic models (no timing
assertions: it only catches a benchmark broken by a change in what it measures)."""

from __future__ import annotations

import json

import pytest

from bench import bench_models

SLOW_CHILDREN = pytest.mark.timeout(400)
"""Each run starts one process per size and kind (each importing onnxruntime, the app's ones Gradio too): ~50 s
on an idle machine, 141 s and over at load average 17-25 on the 2 shared cores (pytest-timeout's 120 s hit)."""


@pytest.mark.slow  # the slow tier: a child process per model size (32 s at load average 7-18)
@SLOW_CHILDREN
def test_models_benchmark_measures_every_size_and_ratios_to_small(analytic_dir, tmp_path, capsys):
    root = tmp_path / "models"
    for size in ("tiny", "small"):
        (root / size).mkdir(parents=True)
        for name in ("encoder.onnx", "decoder.onnx"):
            (root / size / name).symlink_to(analytic_dir / name)
    out = tmp_path / "models.json"
    assert bench_models.main(["--root", str(root), "--sizes", "tiny", "small", "--rounds", "1", "--runs", "1",
                              "--clicks", "2", "--mp", "0.3", "--photos", str(tmp_path / "photos"),
                              "--json", str(out)]) == 0
    rows = {r["model"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"tiny", "small"}
    assert rows["small"]["upload × small"] == 1.0 and rows["small"]["bare × small"] == 1.0
    assert rows["small"]["bare CPU × small"] == 1.0 and rows["small"]["upload CPU × small"] == 1.0
    assert 0.0 <= rows["tiny"]["others' CPU share"] <= 1.0
    for row in rows.values():
        assert row["upload-to-ready ms"] >= row["encoder in upload ms"] > 0
        assert row["bare encoder ms"] > 0 and row["decoder ms"] > 0 and row["peak RSS MiB"] > 0
        assert row["bare encoder CPU ms"] > 0 and row["upload CPU ms"] > 0 and row["decoder CPU ms"] > 0
    assert rows["tiny"]["download MB"] == bench_models_download("tiny")
    assert "upload × small" in capsys.readouterr().out


def bench_models_download(size: str) -> float:
    from sam_onnx.models import MODELS

    return MODELS[size].download_bytes / 1e6


@SLOW_CHILDREN
def test_models_together_reports_what_each_model_adds(analytic_dir, tmp_path, capsys):
    root = tmp_path / "models"
    for size in ("tiny", "small"):
        (root / size).mkdir(parents=True)
        for name in ("encoder.onnx", "decoder.onnx"):
            (root / size / name).symlink_to(analytic_dir / name)
    out = tmp_path / "together.json"
    assert bench_models.main(["--root", str(root), "--together", "small,tiny", "--mp", "0.3",
                              "--photos", str(tmp_path / "photos"), "--json", str(out)]) == 0
    steps = [s["step"] for s in json.loads(out.read_text())["steps"]]
    assert steps == ["started (imports)", "small loaded", "tiny loaded", "0.3 MP upload encoded with small",
                     "0.3 MP upload encoded with tiny"]
    assert "added MiB" in capsys.readouterr().out
