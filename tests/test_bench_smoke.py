"""The benchmark scripts run end to end (on the small analytic models) and write their JSON.

Nothing here is timed: these only catch a benchmark broken by a change in the
code it measures (renamed functions it times, a new handler signature...).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import bench_ab, bench_pipeline, bench_session_options

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(300)  # most start `python app.py` (up to 180 s on a loaded machine), then run
SLOW = pytest.mark.slow
"""The slow tier (``-m slow``; ``.ci/run`` runs it after the default command): the benchmarks that start app processes
or run whole rounds, 12-135 s each, 318 s of this module's 328 s at load average 7-18; the quick ones stay in the
default run."""


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("photos")


@SLOW
def test_pipeline_benchmark_writes_every_section(analytic_dir, photos, tmp_path, capsys):
    out = tmp_path / "pipeline.json"
    code = bench_pipeline.main(["--model-dir", str(analytic_dir), "--sizes", "0.3", "0.6", "--formats", "jpeg", "png",
                                "--upload-repeat", "1", "--click-repeat", "1", "--export-repeat", "1",
                                "--target-mp", "0.3", "--memory-images", "2", "--photos", str(photos),
                                "--json", str(out), "--quiet"])
    assert code == 0
    result = json.loads(out.read_text())
    assert {"load", "upload", "click", "batched", "export", "memory", "machine"} <= set(result)
    assert {r["photo"] for r in result["upload"]} == {"0.3 MP JPEG", "0.3 MP PNG", "0.6 MP JPEG", "0.6 MP PNG"}
    clicks = {(r["photo"], r["click"]) for r in result["click"]}
    assert clicks == {(f"{mp} MP", name) for mp in ("0.3", "0.6") for name in bench_pipeline.CLICK_SCENARIOS}
    for row in result["upload"]:
        assert row["total"] >= row["encoder"] > 0
    for row in result["click"]:
        assert row["total"] >= row["decoder"] > 0
    assert result["export"]["files"] >= 6
    printed = capsys.readouterr().out
    assert "Upload to ready" in printed and "Click to overlay" in printed and "Export at full resolution" in printed


@SLOW
def test_pipeline_benchmark_in_separate_processes(analytic_dir, photos, tmp_path):
    out = tmp_path / "pipeline.json"
    code = bench_pipeline.main(["--model-dir", str(analytic_dir), "--stages", "upload", "click", "--sizes", "0.3",
                                "--formats", "jpeg", "--upload-repeat", "1", "--click-repeat", "1",
                                "--processes", "2", "--photos", str(photos), "--json", str(out), "--quiet"])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["processes"] == 2 and len(result["runs"]) == 2
    assert all(len(row["per_process"]) == 2 for row in result["click"])


@SLOW
def test_session_options_benchmark(analytic_dir, photos, tmp_path):
    out = tmp_path / "options.json"
    code = bench_session_options.main(["--model-dir", str(analytic_dir), "--configs", "app", "threads-1",
                                       "--rounds", "1", "--enc-runs", "1", "--dec-runs", "1",
                                       "--photos", str(photos), "--json", str(out)])
    assert code == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["config"] for r in rows] == ["app", "threads-1"]
    assert all(r["encoder"] > 0 and r["decoder 1 point"] > 0 for r in rows)


def test_ab_benchmarks(analytic_dir, photos, capsys):
    image_py = Path(bench_pipeline.common.REPO) / "sam_onnx" / "image.py"
    assert bench_ab.main(["load-image", "--old", str(image_py), "--sizes", "0.3", "--repeat", "1",
                          "--photos", str(photos)]) == 0
    assert bench_ab.main(["display-copy", "--model-dir", str(analytic_dir), "--sizes", "0.3", "--repeat", "1",
                          "--photos", str(photos)]) == 0
    printed = capsys.readouterr().out
    assert "load_image old" in printed and "beyond the encoder run" in printed


def _run_bench_browser(analytic_dir, photos, out, *args: str) -> dict:
    """``bench.bench_browser`` on the analytic models and a 0.3 MP photo, no warm-up, with ``args``: its JSON.
    In its own process: Playwright's sync API refuses to start inside another test's event loop."""
    subprocess.run([sys.executable, "-m", "bench.bench_browser", "--model-dir", str(analytic_dir), *args,
                    "--warmup", "0", "--photo-mp", "0.3", "--photos", str(photos), "--json", str(out)],
                   check=True, timeout=600, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    return json.loads(out.read_text())


@SLOW
@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium")
def test_browser_benchmark(analytic_dir, photos, tmp_path):
    pytest.importorskip("playwright")
    result = _run_bench_browser(analytic_dir, photos, tmp_path / "browser.json", "--clicks", "2")
    assert len(result["samples"]) == 2
    assert result["click to paint"]["p50"] > 0 and result["upload to ready ms"] > 0


@SLOW
@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium")
def test_browser_benchmark_breaks_a_preview_down_by_stage(analytic_dir, photos, tmp_path):
    """--ab-rev: both pages preview, and every stage of each preview has its marks (page and worker)."""
    pytest.importorskip("playwright")
    (setting,) = _run_bench_browser(analytic_dir, photos, tmp_path / "ab.json", "--ab-rev", "HEAD", "--threads", "off",
                                    "--moves", "2")["ab"]
    for name in ("A", "B"):
        assert len(setting[name]["preview"]) == 2 and len(setting[name]["floor"]) == 2
        stages = setting[name]["preview stages"]
        assert [row["n"] for row in stages] == [2] * len(stages), stages
        assert 0 < setting[name]["overhead p50"] < setting[name]["preview p50"]


@SLOW
def test_fairness_limits_and_estimate_benchmarks(analytic_dir, tmp_path):
    from bench import bench_estimate, bench_fairness, bench_limits

    out = tmp_path / "fairness.json"
    assert bench_fairness.main(["--model-dir", str(analytic_dir), "--objects", "12", "--points", "3", "--rounds", "1",
                                "--clicks", "2", "--think", "0", "--warmup", "0.2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["b_idle_ms"]["n"] == 2 and result["b_busy_ms"]["n"] == 2 and result["a_action_ms"]["n"] >= 1
    assert not result["a_errors"] and result["p95_ratio"] > 0
    out = tmp_path / "limits.json"
    assert bench_limits.main(["--model-dir", str(analytic_dir), "--repeat", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert {row["status"] for row in result["requests"]} == {413, 400} and result["served_on"]
    out = tmp_path / "estimate.json"
    assert bench_estimate.main(["--model-dir", str(analytic_dir), "--presets", "fast", "--sizes", "0.3",
                                "--rounds", "1", "--json", str(out)]) == 0
    assert len(json.loads(out.read_text())["runs"]) == 1


@SLOW
def test_encoder_benchmark_forces_each_variant_against_bare_fp32(analytic_dir, photos, tmp_path, capsys):
    from bench import bench_encoders

    out = tmp_path / "encoders.json"
    bench_encoders.main(["--model-dir", str(analytic_dir), "--variants", "fp32", "int8", "--rounds", "2",
                         "--mp", "0.3", "--photos", str(photos), "--json", str(out), "--auto"])
    result = json.loads(out.read_text())
    assert [r["variant"] for r in result["rows"]] == ["fp32", "int8"]
    for row in result["rows"]:
        assert len(row["samples"]) == 2 and row["upload-to-ready ms"] >= row["encoder ms"] > 0
        assert row["bare ORT fp32 ms"] > 0 and row["upload / bare"] > 0
    assert result["auto"]["chosen"] in {"fp32", "int8", "openvino-bf16", "openvino-f32"}
    printed = capsys.readouterr().out
    assert "| variant |" in printed and "auto would pick" in printed


def test_refine_benchmark_measures_every_shape(tmp_path):
    """bench_refine's precision part, offline, on a smaller photo (the shapes keep their pixel sizes)."""
    from bench import bench_refine

    out = tmp_path / "refine.json"
    assert bench_refine.main(["--standin", "", "--size", "1600", "1200", "--json", str(out), "--quiet"]) == 0
    result = json.loads(out.read_text())
    assert [r["shape"] for r in result["precision"]] == [s.name for s in bench_refine.shapes((1200, 1600))]
    for row in result["precision"]:
        assert row["mean_after"] < row["mean_before"] and row["iou_after"] > row["iou_before"], row
        assert row["coarse_px_outside_crop"] == 0


def test_view_encode_benchmark_runs_idle_and_busy_rounds(analytic_dir, tmp_path):
    from bench import bench_view_encode

    out = tmp_path / "view.json"
    assert bench_view_encode.main(["--model-dir", str(analytic_dir), "--rounds", "1", "--clicks", "3", "--think",
                                   "0.05", "--megapixels", "0.3", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [r["busy"] for r in result["rows"]] == [False, True]
    assert result["rows"][1]["views_encoded"] >= 1 and {"click_p95_ratio", "upload_ratio"} <= set(result["summary"])


def test_intake_benchmark_times_shown_and_ready_against_bare(analytic_dir, photos, tmp_path, capsys):
    from bench import bench_intake

    out = tmp_path / "intake.json"
    assert bench_intake.main(["--model-dir", str(analytic_dir), "--rounds", "2", "--mp", "0.3", "--photos",
                              str(photos), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert len(result["samples"]) == 2
    assert all(s["ready"] >= s["shown"] > 0 and s["bare"] > 0 and s["bare app options"] > 0
               for s in result["samples"])
    out = capsys.readouterr().out
    assert "upload -> ready" in out and "bare with the app's session options" in out


@SLOW
def test_startup_benchmark_serves_before_the_check_and_times_uploads_during_it(analytic_dir, photos, tmp_path,
                                                                               capsys):
    from bench import bench_startup

    out = tmp_path / "startup.json"
    assert bench_startup.main(["--model-dir", str(analytic_dir), "--offsets", "0.05", "--mp", "0.3", "--photos",
                               str(photos), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    page = result["first_page"]
    assert page["first_page_s"] > 0 and page["checking_when_served"] and page["decision_stored"]
    assert len(result["uploads"]) == 1 and result["uploads"][0]["check_state"] in ("switched", "kept")
    assert "first page" in capsys.readouterr().out


def test_crowded_benchmark_decodes_one_object_per_click(analytic_dir, tmp_path):
    """bench_crowded on the analytic models with a results cache too small for the two users' objects: each click
    still decodes one object."""
    from bench import bench_crowded

    out = tmp_path / "crowded.json"  # a 1 MB results cache: one object's logits, of the users' 2 x 5
    assert bench_crowded.main(["--model-dir", str(analytic_dir), "--objects", "6", "--points", "2", "--clicks", "4",
                               "--result-cache-mb", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [c["decoded"] for c in result["clicks"]] == [1, 1, 1, 1] and result["max_decoded"] == 1
