"""Several models in one app (--models small,tiny): the service's per-model images and caches, the switch that
keeps every prompt and decodes it again, the app's flags and control, the Spaces front matter.

Two models whose masks differ everywhere stand in for two sizes: "small" is the analytic pair (a disc around a
click) and "tiny" the content-following pair (tools/content_models.py: the cells of the clicked colour).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import app
from sam_demo.editor import Editor
from sam_demo.service import SegmentationService
from sam_onnx import InvalidPromptError, Point, Prompts, Sam2Predictor
from sam_onnx.models import DEFAULT_MODEL
from tests.conftest import make_rgb
from tools import content_models

REPO = Path(__file__).resolve().parent.parent
HW = (96, 128)


@pytest.fixture(scope="module")
def two_models(analytic_dir, tmp_path_factory):
    content = tmp_path_factory.mktemp("content")
    content_models.save_models(content)
    small = Sam2Predictor.from_files(analytic_dir / "encoder.onnx", analytic_dir / "decoder.onnx", threads=1,
                                     model="sam2.1-hiera-small")
    tiny = Sam2Predictor.from_files(content / "encoder.onnx", content / "decoder.onnx", threads=1,
                                    model="sam2.1-hiera-tiny")
    return {"small": small, "tiny": tiny}


@pytest.fixture(scope="module")
def service(two_models):
    return SegmentationService(two_models["small"], models=two_models, image_cache_mb=64)


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    rgb = np.zeros((*HW, 3), np.uint8)
    rgb[:] = (112, 128, 96)
    rgb[20:60, 30:80] = (230, 120, 30)  # an orange block: what the content model selects
    Image.fromarray(rgb).save(path)
    return path


def _expected(predictor, path, prompts):
    rgb = np.asarray(Image.open(path).convert("RGB"))
    return predictor.decode(predictor.encode(rgb), prompts).best_mask


PROMPTS = (Prompts((Point(50, 40),)), Prompts((Point(100, 80),)))


def test_one_model_offers_no_choice(predictor):
    assert SegmentationService(predictor).model_names == ()


def test_the_default_comes_first_and_names_resolve(service, two_models):
    assert service.model_names == ("small", "tiny") and service.default_model == "small"
    assert service.predictor_for("") is service.predictor_for("small") is two_models["small"]
    assert service.predictor_for("tiny") is two_models["tiny"]
    with pytest.raises(InvalidPromptError, match="no model 'large'; it has small, tiny"):
        service.predictor_for("large")


def test_switching_keeps_the_prompts_and_decodes_them_with_the_other_model(service, two_models, photo):
    record, _ = service.open_image(photo)
    assert record.model == "" and record.key == record.content_key
    editor = Editor.start(record.original_hw).add_point(50, 40).add_object().add_point(100, 80)
    small = service.object_results(record, editor.objects)

    tiny_record, info = service.switch_model(record, "tiny")
    assert not info["cache_hit"] and tiny_record.model == "tiny"
    assert tiny_record.content_key == record.content_key and tiny_record.key == f"{record.key}@tiny"
    tiny = service.object_results(tiny_record, editor.objects)
    for obj, a, b in zip(editor.objects, small, tiny):
        np.testing.assert_array_equal(a.best_mask, _expected(two_models["small"], photo, obj.prompts))
        np.testing.assert_array_equal(b.best_mask, _expected(two_models["tiny"], photo, obj.prompts))
        assert (a.best_mask != b.best_mask).any(), "the two models' masks differ: the switch re-decoded"

    back, info = service.switch_model(tiny_record, "small")
    assert info["cache_hit"] and back == record  # the default's image is still cached: no encoder run
    np.testing.assert_array_equal(service.object_results(back, editor.objects)[0].best_mask, small[0].best_mask)


def test_the_chosen_model_encodes_new_uploads_and_is_named(service, photo, tmp_path):
    record, _ = service.open_image(photo, model="tiny")
    assert record.model == "tiny"
    assert service.model_summary(record.model)["model"] == "sam2.1-hiera-tiny"
    editor = Editor.start(record.original_hw).add_point(50, 40)
    files = service.export(record, editor, tmp_path / "out")
    coco = json.loads(next(f for f in files if f.name.endswith("_coco_rle.json")).read_text())
    prompts = json.loads(next(f for f in files if f.name.endswith("_prompts.json")).read_text())
    assert coco["info"]["model"] == prompts["model"] == "sam2.1-hiera-tiny"
    assert coco["images"][0]["sha256"] == prompts["image"]["sha256"] == record.content_key  # the pixels' hash
    # the page's decoder is the default model's: it gets no embedding of another model's image
    assert service.embedding(record.key) is None
    assert service.embedding(service.open_image(photo)[0].key) is not None


def test_switching_to_an_unknown_model_or_a_vanished_file_changes_nothing(service, photo, tmp_path):
    record, _ = service.open_image(photo)
    with pytest.raises(InvalidPromptError, match="no model"):
        service.switch_model(record, "large")
    gone = tmp_path / "gone.png"
    Image.fromarray(make_rgb(*HW)).save(gone)
    vanished, _ = service.open_image(gone)
    gone.unlink()
    with pytest.raises(Exception, match="no longer on the server"):
        service.switch_model(vanished, "tiny")


# ---------------------------------------------------------------------------- the app
def test_app_handlers_switch_and_keep_every_prompt(service, two_models, photo, tmp_path):
    out = app.show_image(service, app.open_image(service, str(photo)), 0.5, True)
    state = out[app.OUTPUT_NAMES.index("state")]
    for x, y in ((50, 40), (100, 80)):
        out = app.click_api(service, state, x, y, app.MODE_POSITIVE, 0.5, True)
        state = out[app.OUTPUT_NAMES.index("state")]
        if x == 50:
            out = app.add_object(service, state, 0.5, True)
            state = out[app.OUTPUT_NAMES.index("state")]
    before = [o.prompts for o in state.editor.objects]
    assert app.switch_model(service, None, "tiny") is None  # no image yet: the choice is for the next upload
    record, _ = app.open_image(service, str(photo), "tiny")  # ... which the tab's choice then encodes
    assert record.model == "tiny"
    assert app.switch_model(service, state, "small") is None  # already on it: nothing to do
    loaded = app.switch_model(service, state, "tiny")
    out = app.show_switched(service, loaded, state, 0.5, True)
    state = out[app.OUTPUT_NAMES.index("state")]
    assert state.record.model == "tiny" and [o.prompts for o in state.editor.objects] == before
    status = out[app.OUTPUT_NAMES.index("status")]
    assert "now sam2.1-hiera-tiny" in status and "sam2.1-hiera-tiny · encoder" in status
    # a switch that finishes after the tab moved on to another image is dropped
    other_photo = tmp_path / "other.png"
    Image.fromarray(make_rgb(*HW, seed=5)).save(other_photo)
    out = app.show_image(service, app.open_image(service, str(other_photo)), 0.5, True, state)
    moved_on = out[app.OUTPUT_NAMES.index("state")]
    assert app.show_switched(service, loaded, moved_on, 0.5, True) == app.unchanged()


def test_the_page_shows_the_choice_only_with_several_models(service, predictor):
    def choice(demo):
        return next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "model_choice")

    two = choice(app.build_demo(service))
    assert two.visible and [c[1] for c in two.choices] == ["small", "tiny"] and two.value == "small"
    assert not choice(app.build_demo(SegmentationService(predictor))).visible


@pytest.mark.parametrize("argv, models", [(["--models", "small,tiny"], ["small", "tiny"]),
                                          (["--models", "small, tiny", "--model", "tiny"], ["tiny", "small"]),
                                          (["--models", "large,tiny"], ["large", "tiny"]),
                                          (["--models", "base_plus"], ["base-plus"]),
                                          ([], ["small"])])
def test_models_flag(argv, models, monkeypatch):
    monkeypatch.delenv("SAM_ONNX_MODEL", raising=False)
    monkeypatch.delenv(app.MODELS_ENV, raising=False)
    args = app.parse_args(argv)
    assert args.models == models and args.model == models[0]


@pytest.mark.parametrize("argv, message", [
    (["--models", "small,huge"], "'huge'; choose one of tiny, small, base-plus, large"),
    (["--models", "small,tiny", "--encoder-backend", "ray", "--ray-address", "http://127.0.0.1:9"],
     "--models needs the local encoder")])
def test_bad_models_flag_exits_2(argv, message, monkeypatch, capsys):
    monkeypatch.delenv(app.MODELS_ENV, raising=False)
    with pytest.raises(SystemExit) as exit_info:
        app.parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_spaces_front_matter_preloads_only_the_default_model():
    """The Space downloads the default model's four fp32 files at build time, nothing of the other sizes."""
    front = (REPO / "README.md").read_text().split("---")[1]
    preload = re.search(r"preload_from_hub:\n((?:  - .*\n)+)", front).group(1).strip().splitlines()
    assert len(preload) == 1
    repo, files, revision = preload[0].removeprefix("  - ").strip("- ").split()
    assert repo == DEFAULT_MODEL.repo_id and revision == DEFAULT_MODEL.revision
    assert files.split(",") == [f.path for f in (*DEFAULT_MODEL.encoder_files.all, *DEFAULT_MODEL.decoder_files.all)]
    assert re.findall(r"^  - (onnx-community/\S+)$", front, re.M) == [DEFAULT_MODEL.repo_id]  # models:
