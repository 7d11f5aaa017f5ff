"""The click benchmark (python -m bench.bench_clicks): known click counts through the real ONNX pipeline (analytic
and content-following test models), crop refinement, the data-set loader, the default run's time bound."""

from __future__ import annotations

import json
import resource

import numpy as np
import pytest

from bench import bench_clicks
from sam_onnx import clicks
from sam_onnx.clicks import Click, simulate
from tests import analytic_models as am


def analytic_discs(hw, centres):
    """Discs of the analytic decoder's size (POS_RADIUS model units) as they look in an ``hw`` image."""
    h, w = hw
    rx, ry = am.POS_RADIUS * w / am.MODEL_SIZE, am.POS_RADIUS * h / am.MODEL_SIZE
    yy, xx = np.mgrid[0:h, 0:w]
    mask = np.zeros(hw, bool)
    for cx, cy in centres:
        mask |= ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0
    return mask


@pytest.mark.parametrize("hw, centres", [((512, 512), [(200, 260)]),
                                         ((512, 512), [(150, 140), (360, 330)]),
                                         ((480, 640), [(120, 110), (330, 250), (520, 380)])])
def test_k_analytic_discs_take_k_clicks_through_the_pipeline(predictor, hw, centres):
    """Through the real ONNX pipeline with the analytic models (a positive click selects a disc of POS_RADIUS
    model units, whatever the image shows): k separate discs of exactly that size take exactly k clicks, each at
    a disc's centre; the 640x480 scene (ellipses in pixels) checks the frames."""
    gt = analytic_discs(hw, centres)
    rgb = np.full((*hw, 3), 100, np.uint8)
    trial = simulate(gt, clicks.predictor_segmenter(predictor, predictor.encode(rgb)))
    assert trial.noc(0.90) == len(centres)
    assert sorted((c.x, c.y) for c in trial.clicks) == sorted(centres)
    assert all(c.positive for c in trial.clicks) and trial.ious[-1] > 0.97


def test_a_negative_click_removes_a_region_through_the_pipeline(predictor):
    """The analytic decoder removes a disc of 48 model units around a negative click."""
    side = bench_clicks.SCENE_SIDE
    rgb = np.full((side, side, 3), 100, np.uint8)
    segment = clicks.predictor_segmenter(predictor, predictor.encode(rgb))
    whole = segment((Click(200, 200, True),))
    bitten = segment((Click(200, 200, True), Click(220, 200, False)))
    assert whole[200, 220] and not bitten[200, 220] and bitten[200, 185]


DEFAULT_RUN_BOUND_S = 120.0
"""The issue's bound: the default selection runs in under 2 minutes. Checked on the benchmark's CPU time (all its
threads, and any child process): with no waiting in the run, its wall time on a machine it has to itself is at
most that, while its wall time on the shared 2 cores depends on everyone else's jobs (see the test)."""


@pytest.mark.timeout(600)  # wall time under other engineers' load; the bound itself is on CPU time
def test_the_default_benchmark_runs_offline_within_two_minutes_and_gives_the_known_answers(tmp_path, capsys):
    """The issue's bound on the default selection (the content-following test models, every encoder variant this
    machine runs, with and without crop refinement, the synthetic shapes): measured at 20 s on the shared
    2-core machine at load average 6. Every scene takes the clicks the content model must take, and refining
    in a crop gives finer edges (a higher first-click IoU on the disc)."""
    out = tmp_path / "clicks.json"
    cpu_before = _cpu_s()
    assert bench_clicks.main(["--json", str(out)]) == 0
    assert _cpu_s() - cpu_before < DEFAULT_RUN_BOUND_S
    result = json.loads(out.read_text())
    assert {r["encoder"] for r in result["rows"]} >= {"fp32", "int8"}
    assert {r["refine"] for r in result["rows"]} == {"none", "crop"}
    scenes = result["scenes"]
    assert len(scenes) == len(bench_clicks.synthetic_scenes()) * len(result["rows"])
    for row in scenes:
        assert row["NoC@90"] == row["expected"], row
    first = {(r["encoder"], r["refine"]): r["IoU@1"] for r in scenes if r["scene"] == "disc"}
    for encoder in {r["encoder"] for r in result["rows"]}:
        assert first[(encoder, "crop")] > first[(encoder, "none")] + 0.005
    decoy = [r for r in scenes if r["scene"] == "disc + decoy of its colour"]
    assert all(r["clicks"] == "+-" + "+" * 18 for r in decoy)  # the negative click removes the object too
    printed = capsys.readouterr().out
    assert "PLUMBING CHECK" in printed and "mIoU@1" in printed and "NoC@90" in printed


def _cpu_s() -> float:
    """CPU seconds of this process (every thread) and its finished child processes."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def test_dataset_masks_are_read_as_ritm_reads_them(tmp_path):
    from PIL import Image

    root = tmp_path / "GrabCut"
    (root / "data_GT").mkdir(parents=True)
    (root / "boundary_GT").mkdir()
    rgb = np.full((40, 50, 3), 90, np.uint8)
    Image.fromarray(rgb).save(root / "data_GT" / "cat.jpg")
    values = np.zeros((40, 50), np.uint8)
    values[10:30, 10:40] = 255
    values[10:30, 10] = 128
    Image.fromarray(values).save(root / "boundary_GT" / "cat.bmp")
    (scene,) = bench_clicks.dataset_scenes(tmp_path, "GrabCut")
    assert scene.gt.sum() == 20 * 29 and scene.ignore.sum() == 20 and scene.rgb.shape == (40, 50, 3)
    with pytest.raises(SystemExit, match="Berkeley"):
        list(bench_clicks.dataset_scenes(tmp_path, "Berkeley"))


def test_berkeley_second_objects_find_their_image(tmp_path):
    from PIL import Image

    root = tmp_path / "Berkeley"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    Image.fromarray(np.full((30, 30, 3), 90, np.uint8)).save(root / "images" / "239007.jpg")
    for stem in ("239007", "239007a"):
        Image.fromarray(np.full((30, 30), 255, np.uint8)).save(root / "masks" / f"{stem}.png")
    assert [s.name for s in bench_clicks.dataset_scenes(tmp_path, "Berkeley")] == ["239007", "239007a"]


def test_benchmark_on_a_data_folder(tmp_path):
    """A data set in RITM's layout, through the content model: the disc takes one click, the uncertain band
    counts nowhere."""
    from PIL import Image

    from tools import content_models

    root = tmp_path / "GrabCut"
    (root / "data_GT").mkdir(parents=True)
    (root / "boundary_GT").mkdir()
    scene = bench_clicks.synthetic_scenes()[0]
    Image.fromarray(scene.rgb).save(root / "data_GT" / "disc.png")
    Image.fromarray(np.where(scene.gt, 255, 0).astype(np.uint8)).save(root / "boundary_GT" / "disc.png")
    models = content_models.save_models(tmp_path / "content")[0].parent
    out = tmp_path / "r.json"
    assert bench_clicks.main(["--data", str(tmp_path), "--datasets", "GrabCut", "--encoders", "fp32",
                              "--refine", "none", "--model-dir", f"content={models}", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["data"] == "GrabCut" and row["NoC@90"] == 1 and row["objects"] == 1


def test_unknown_refinement_is_refused(analytic_dir):
    with pytest.raises(SystemExit, match="zoom"):
        bench_clicks.main(["--refine", "zoom", "--model-dir", str(analytic_dir), "--encoders", "fp32"])
