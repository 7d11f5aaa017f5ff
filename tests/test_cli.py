"""``python -m sam_onnx``: mask PNG, cut-out and JSON from points and boxes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sam_onnx.cli import main
from tests import analytic_models as am
from tests.conftest import make_rgb


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(make_rgb(300, 500)).save(path)
    return path


def _run(analytic_dir, *args):
    return main([*map(str, args), "--model-dir", str(analytic_dir), "--threads", "1", "-q"])


def test_points_and_box_write_mask_cutout_and_json(tmp_path, photo, analytic_dir):
    out, cut, report = tmp_path / "mask.png", tmp_path / "cut.png", tmp_path / "r.json"
    code = _run(analytic_dir, photo, "--point", "200,120", "--point", "230,120,0", "--box", "400,250,50,20",
                "--out", out, "--cutout", cut, "--json", report)
    assert code == 0
    mask = np.asarray(Image.open(out))
    assert mask.shape == (300, 500) and set(np.unique(mask)) <= {0, 255}
    am.assert_pipeline_mask(mask == 255, [(200, 120), (230, 120)], [1, 0], (50, 20, 400, 250), (300, 500))
    rgba = np.asarray(Image.open(cut))
    assert rgba.shape == (300, 500, 4)
    np.testing.assert_array_equal(rgba[..., 3], mask)
    np.testing.assert_array_equal(rgba[..., :3][mask == 255], make_rgb(300, 500)[mask == 255])
    data = json.loads(report.read_text())
    assert len(data["scores"]) == 3 and data["chosen_index"] == data["best_index"] == int(np.argmax(data["scores"]))
    assert 0 <= data["object_score"] <= 1 and data["width"] == 500 and data["height"] == 300
    assert data["prompts"]["box"] == [50, 20, 400, 250]


def test_mask_index_picks_another_candidate(tmp_path, photo, analytic_dir):
    small, best = tmp_path / "small.png", tmp_path / "best.png"
    assert _run(analytic_dir, photo, "--point", "250,150", "--out", best) == 0
    assert _run(analytic_dir, photo, "--point", "250,150", "--out", small, "--mask-index", "0") == 0
    assert (np.asarray(Image.open(small)) > 0).sum() < (np.asarray(Image.open(best)) > 0).sum()


def test_refine_writes_the_mask_of_the_crop_and_names_the_crop(tmp_path, analytic_dir):
    """``--refine``: the analytic disc of the crop (mask box + 20 %, at least 256 px) instead of the image's."""
    path = tmp_path / "wide.png"
    Image.fromarray(make_rgb(600, 1000)).save(path)
    out, report = tmp_path / "mask.png", tmp_path / "r.json"
    assert _run(analytic_dir, path, "--point", "500,300", "--refine", "--out", out, "--json", report) == 0
    data = json.loads(report.read_text())
    x0, y0, x1, y1 = data["crop"]
    assert (x1 - x0, y1 - y0) == (256, 256)  # the disc (125 x 75 px) + 20 %, widened to the 256 px minimum
    mask = np.asarray(Image.open(out)) == 255
    exact, unsure = am.pipeline_mask([(500 - x0, 300 - y0)], [1], None, (y1 - y0, x1 - x0))
    assert not ((mask[y0:y1, x0:x1] != exact) & ~unsure).any() and mask.sum() == mask[y0:y1, x0:x1].sum()
    assert "refine" in data["timings_ms"]


def test_exif_rotated_photo_uses_upright_coordinates(tmp_path, analytic_dir):
    upright = make_rgb(200, 120)  # tall as the user sees it
    stored = np.rot90(upright, k=1)  # stored sideways (120 high, 200 wide), EXIF 6 = rotate 90 cw to show
    exif = Image.Exif()
    exif[274] = 6
    path = tmp_path / "phone.jpg"
    Image.fromarray(np.ascontiguousarray(stored)).save(path, exif=exif.tobytes(), quality=95)
    out = tmp_path / "m.png"
    assert _run(analytic_dir, path, "--point", "30,170", "--out", out) == 0
    mask = np.asarray(Image.open(out))
    assert mask.shape == (200, 120) and mask[170, 30] == 255


@pytest.mark.parametrize("args,message", [
    (["--point", "600,10"], "outside the 500×300 image"),
    (["--box", "5,5,5,50"], "no area"),
    (["--point", "1,2,7"], "label must be 1"),
    (["--point", "nan,2"], "finite"),
    ([], "at least one --point or a --box"),
])
def test_bad_prompts_exit_2_with_one_clear_line(tmp_path, photo, analytic_dir, capsys, args, message):
    with pytest.raises(SystemExit) if "label" in message or "no area" in message or "finite" in message \
            else _no_raise():
        code = _run(analytic_dir, photo, *args, "--out", tmp_path / "m.png")
        assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "m.png").exists()


class _no_raise:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_unreadable_image_and_missing_model(tmp_path, analytic_dir, capsys):
    bad = tmp_path / "notes.png"
    bad.write_text("hello")
    assert _run(analytic_dir, bad, "--point", "1,1", "--out", tmp_path / "m.png") == 2
    assert "Could not read this image" in capsys.readouterr().err
    photo = tmp_path / "p.png"
    Image.fromarray(make_rgb(50, 50)).save(photo)
    code = main([str(photo), "--point", "1,1", "--out", str(tmp_path / "m.png"), "--model-dir", str(tmp_path / "none")])
    assert code == 1
    assert "does not exist" in capsys.readouterr().err


def test_module_entry_point_runs(tmp_path, photo, analytic_dir):
    out = tmp_path / "m.png"
    proc = subprocess.run([sys.executable, "-m", "sam_onnx", str(photo), "--point", "100,100", "--out", str(out),
                           "--model-dir", str(analytic_dir)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "mask 1 of 3" in proc.stdout and out.is_file()


def test_a_bad_file_is_one_stderr_line_from_the_command(tmp_path, analytic_dir):
    """Issue 22: run as a command (its own logging, not pytest's), a file that is not an image gives exactly one
    line on stderr, the README's, and status 2 (the image loader's "Rejected image" log line was a second)."""
    bad = tmp_path / "notes.png"
    bad.write_text("hello")
    proc = subprocess.run([sys.executable, "-m", "sam_onnx", str(bad), "--point", "1,1", "--out",
                           str(tmp_path / "m.png"), "--model-dir", str(analytic_dir)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"error: {bad}: Could not read this image; use PNG, JPEG or WebP."]


def test_a_missing_file_is_named_and_said_missing(tmp_path, analytic_dir, capsys):
    missing = tmp_path / "holiday.jpg"
    assert _run(analytic_dir, missing, "--point", "1,1", "--out", tmp_path / "m.png") == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {missing}: The file does not exist."


@pytest.mark.parametrize("args, message", [
    (["--point", "1"], "--point needs 2 or 3 comma-separated numbers, got '1'"),
    (["--box", "a,b,c,d"], "--box must be numbers"),
    (["--mask-index", "7"], "invalid choice: 7"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
])
def test_usage_errors_are_one_line(tmp_path, photo, capsys, args, message):
    """The README promises one line on stderr and exit status 2 (not argparse's usage block)."""
    with pytest.raises(SystemExit) as exited:
        main([str(photo), *args, "--out", str(tmp_path / "m.png")])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith("python -m sam_onnx: error: ")
    assert err.rstrip().endswith("(see --help)")


def test_encoder_flag_picks_the_engine_and_the_report_names_it(tmp_path, photo, analytic_dir, monkeypatch):
    report = tmp_path / "r.json"
    assert _run(analytic_dir, photo, "--point", "200,120", "--json", report, "--encoder", "int8") == 0
    model = json.loads(report.read_text())["model"]
    assert (model["encoder"], model["encoder_selection"]) == ("int8", "forced")
    assert "int8" in model["encoder_description"]
    monkeypatch.setenv("SAM_ONNX_ENCODER", "auto")
    assert _run(analytic_dir, photo, "--point", "200,120", "--json", report) == 0
    assert json.loads(report.read_text())["model"]["encoder_selection"].startswith("auto")


def test_unknown_encoder_is_a_usage_error(photo, analytic_dir, capsys):
    with pytest.raises(SystemExit) as exc:
        _run(analytic_dir, photo, "--point", "1,1", "--out", "x.png", "--encoder", "turbo")
    assert exc.value.code == 2 and "invalid choice: 'turbo'" in capsys.readouterr().err
