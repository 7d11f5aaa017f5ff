"""``python -m sam_onnx IMAGE --everything``: label map PNG and COCO RLE JSON, with the analytic models.

Every grid point of the analytic decoder gives discs of known size around it (see
tests/test_amg.py), so the number of masks, their places and their drawing order
are known in advance.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sam_onnx import amg
from sam_onnx.cli import main
from sam_onnx.export import decode_rle
from tests.conftest import make_rgb

HW = (300, 500)
OPEN = ["--stability-thresh", "0", "--min-region-area", "0"]


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(make_rgb(*HW)).save(path)
    return path


def _run(analytic_dir, *args):
    return main([*map(str, args), "--model-dir", str(analytic_dir), "--threads", "1", "-q"])


def test_label_map_and_rle_json_describe_the_same_masks(tmp_path, photo, analytic_dir):
    labels_png, report = tmp_path / "labels.png", tmp_path / "masks.json"
    assert _run(analytic_dir, photo, "--everything", "--points-per-side", "4", "--pred-iou-thresh", "0.9", *OPEN,
                "--out", labels_png, "--json", report) == 0
    image = Image.open(labels_png)
    labels = np.asarray(image)
    assert image.mode == "L" and labels.shape == HW
    data = json.loads(report.read_text())
    assert data["count"] == len(data["masks"]) == 16 and data["points"] == 16
    assert set(np.unique(labels)) == set(range(17))  # the discs of a 4 x 4 grid do not overlap
    grid = {tuple(p) for p in amg.make_plan(amg.EverythingSettings(points_per_side=4), HW).crops[0].points_xy}
    assert {tuple(m["point_coords"][0]) for m in data["masks"]} == grid
    for record in data["masks"]:
        mask = decode_rle(record["segmentation"])
        assert record["segmentation"]["size"] == list(HW)
        np.testing.assert_array_equal(mask, labels == record["label"])
        x, y, w, h = record["bbox"]
        assert record["area"] == int(mask.sum()) and mask[y:y + h, x:x + w].sum() == record["area"]
        assert record["crop_box"] == [0, 0, 500, 300] and record["predicted_iou"] == pytest.approx(0.95)
        assert 0 <= record["stability_score"] <= 1
    areas = [m["area"] for m in data["masks"]]
    assert areas == sorted(areas, reverse=True) and [m["label"] for m in data["masks"]] == list(range(1, 17))


def test_small_masks_are_drawn_on_top_of_large_ones(tmp_path, photo, analytic_dir):
    labels_png, report = tmp_path / "labels.png", tmp_path / "masks.json"
    assert _run(analytic_dir, photo, "--everything", "--points-per-side", "1", "--pred-iou-thresh", "0.5", *OPEN,
                "--out", labels_png, "--json", report) == 0
    labels = np.asarray(Image.open(labels_png))
    masks = json.loads(report.read_text())["masks"]
    assert [m["candidate"] for m in masks] == [2, 1, 0]  # three nested discs, largest first
    assert labels[150, 250] == 3  # the centre shows the smallest
    for record in masks:  # each mask is visible exactly where no smaller one covers it
        visible = decode_rle(record["segmentation"]) & (labels == record["label"])
        assert visible.sum() > 0


def test_presets_and_flags_set_the_run(tmp_path, photo, analytic_dir):
    report = tmp_path / "masks.json"
    assert _run(analytic_dir, photo, "--everything", "--json", report) == 0
    data = json.loads(report.read_text())
    assert data["preset"] == "balanced" and data["settings"] == amg.PRESETS["balanced"].to_dict()
    assert data["points"] == 256
    assert _run(analytic_dir, photo, "--everything", "--preset", "fast", "--points-per-side", "3",
                "--box-nms-thresh", "0.5", "--json", report) == 0
    data = json.loads(report.read_text())
    assert data["points"] == 9 and data["settings"]["box_nms_thresh"] == 0.5
    assert data["settings"]["pred_iou_thresh"] == amg.PRESETS["fast"].pred_iou_thresh


def test_more_than_255_masks_give_a_16_bit_label_map(tmp_path, photo, analytic_dir):
    labels_png, report = tmp_path / "labels.png", tmp_path / "masks.json"
    assert _run(analytic_dir, photo, "--everything", "--points-per-side", "10", "--pred-iou-thresh", "0.5", *OPEN,
                "--box-nms-thresh", "1", "--out", labels_png, "--json", report) == 0
    count = json.loads(report.read_text())["count"]
    assert count == 300
    labels = np.asarray(Image.open(labels_png))
    assert labels.dtype == np.uint16 and labels.shape == HW
    assert labels.max() == count  # the last (smallest) mask is drawn on top of everything


@pytest.mark.parametrize("args,message", [
    (["--point", "10,10", "--out", "x.png"], "leave out --point and --box"),
    (["--cutout", "x.png"], "--cutout, --mask-index and --refine are for one object"),
    ([], "nothing to write"),
    (["--pred-iou-thresh", "2", "--json", "x.json"], "pred_iou_thresh must be in [0, 1]"),
    (["--points-per-side", "0", "--json", "x.json"], "must be at least 1"),
    (["--preset", "slow", "--json", "x.json"], "invalid choice"),
])
def test_bad_everything_arguments_exit_2_with_a_clear_message(tmp_path, photo, analytic_dir, capsys, args, message):
    with pytest.raises(SystemExit) as info:
        _run(analytic_dir, photo, "--everything", *[str(tmp_path / a) if a.endswith((".png", ".json")) else a
                                                     for a in args])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not any(tmp_path.glob("x.*"))


def test_unreadable_image_exits_2(tmp_path, analytic_dir, capsys):
    bad = tmp_path / "notes.png"
    bad.write_text("hello")
    assert _run(analytic_dir, bad, "--everything", "--json", tmp_path / "m.json") == 2
    assert "Could not read this image" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()


def test_module_entry_point_prints_a_summary(tmp_path, photo, analytic_dir):
    report = tmp_path / "masks.json"
    proc = subprocess.run([sys.executable, "-m", "sam_onnx", str(photo), "--everything", "--preset", "fast",
                           "--json", str(report), "--model-dir", str(analytic_dir)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "masks from 64 points" in proc.stdout and report.is_file()
    assert "decoder calls" in proc.stderr  # progress is logged
