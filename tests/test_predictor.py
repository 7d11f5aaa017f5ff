"""End to end through onnxruntime with the analytic models: a click at pixel (x, y) gives the mask there.

The analytic decoder's correct answer is known in closed form (tests/analytic_models.py):
a disc of radius 64 model units around each positive click (an ellipse in a non-square
image), minus discs around negative clicks, clipped to the box, never on pure blue. Two
expectations are checked: the EXACT pipeline mask (the rule at the 256x256 cell centres
for the feeds the spec prescribes, upsampled half-pixel; only pixels whose logit rounds
within 1e-3 of 0 are left out), which catches half a model unit of shift, a missing pad
point and a swapped channel order; and the idealised mask a user would describe, which
the pipeline may miss only in a band one low-res cell wide around the boundary.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from sam_onnx import (
    Box,
    ImageEmbedding,
    InferenceError,
    InvalidImageError,
    InvalidPromptError,
    Point,
    Prompts,
)
from tests import analytic_models as am
from tests.conftest import make_rgb


def _prompt_args(prompts: Prompts):
    pts = [(p.x, p.y) for p in prompts.points] or None
    labels = [p.label for p in prompts.points] or None
    box = prompts.box.xyxy if prompts.box else None
    return pts, labels, box


def _expected(prompts: Prompts, hw, candidate=1):
    pts, labels, box = _prompt_args(prompts)
    return (am.expected_mask_original(pts, labels, box, hw, candidate),
            am.boundary_band(pts, labels, box, hw, candidate))


def _assert_mask_matches(mask, prompts, hw, candidate=1, key=None):
    assert mask.shape == hw
    exact, unsure = am.pipeline_mask(*_prompt_args(prompts), hw, candidate, key=key)
    wrong = (mask != exact) & ~unsure
    assert not wrong.any(), (f"{int(wrong.sum())} pixels differ from the exact pipeline mask, "
                             f"e.g. {np.argwhere(wrong)[:3].tolist()}")
    if key is None:
        expected, band = _expected(prompts, hw, candidate)
        wrong = (mask != expected) & ~band
        assert not wrong.any(), f"{int(wrong.sum())} pixels wrong outside the boundary band"
        assert expected[~band].any(), "test is vacuous: nothing expected inside the mask"


# Non-square (wide and tall), tiny, large and odd sizes; clicks near corners and centres.
SIZES_AND_CLICKS = [
    ((300, 500), (120, 200)),
    ((500, 300), (250, 60)),      # tall
    ((30, 400), (390, 20)),       # very wide, click near the right edge
    ((24, 16), (3, 20)),          # tiny
    ((3000, 4000), (3100, 400)),  # large (12 MP)
]


@pytest.mark.parametrize("hw,click", SIZES_AND_CLICKS)
def test_click_selects_the_region_around_the_clicked_pixel(predictor, hw, click):
    embedding = predictor.encode(make_rgb(*hw))
    prompts = Prompts((Point(*click),))
    result = predictor.decode(embedding, prompts)
    assert result.best_index == 1  # analytic scores (0.80, 0.95, 0.60) for clicks
    _assert_mask_matches(result.best_mask, prompts, hw)
    assert result.best_mask[click[1], click[0]]  # the clicked pixel itself is inside


def test_one_pixel_image_works_end_to_end(predictor):
    prompts = Prompts((Point(0, 0),))
    result = predictor.decode(predictor.encode(make_rgb(1, 1)), prompts)
    assert result.masks.shape == (3, 1, 1)
    # Pixel index 0 maps to the model frame's corner, 1.4 disc radii from the single pixel's centre.
    _expected_mask, _ = _expected(prompts, (1, 1))
    np.testing.assert_array_equal(result.best_mask, _expected_mask)


@pytest.mark.parametrize("candidate", [0, 1, 2])
def test_all_three_candidates_at_original_size(predictor, candidate):
    hw = (300, 500)
    prompts = Prompts((Point(250, 150),))
    result = predictor.decode(predictor.encode(make_rgb(*hw)), prompts)
    assert result.masks.shape == (3, *hw) and result.masks.dtype == bool
    _assert_mask_matches(result.masks[candidate], prompts, hw, candidate)
    assert result.masks[0].sum() < result.masks[1].sum() < result.masks[2].sum()


def test_negative_click_removes_a_region(predictor):
    hw = (400, 600)
    emb = predictor.encode(make_rgb(*hw))
    pos = Prompts((Point(300, 200),))
    both = pos.with_point(Point(330, 200, 0))
    a, b = predictor.decode(emb, pos).best_mask, predictor.decode(emb, both).best_mask
    assert a[200, 330] and not b[200, 330] and b[200, 270]
    _assert_mask_matches(b, both, hw)


@pytest.mark.parametrize("corners", [(50, 40, 260, 180), (260, 180, 50, 40), (260, 40, 50, 180)])
def test_box_in_any_corner_order(predictor, corners):
    hw = (300, 500)
    prompts = Prompts(box=Box(*corners))
    result = predictor.decode(predictor.encode(make_rgb(*hw)), prompts)
    assert result.best_index == 0  # analytic box-only scores (0.90, 0.70, 0.85)
    _assert_mask_matches(result.masks[1], prompts, hw)
    assert result.masks[1][100, 150] and not result.masks[1][250, 400]


def test_box_with_points(predictor):
    hw = (300, 500)
    prompts = Prompts((Point(100, 100), Point(120, 100, 0)), Box(50, 40, 260, 180))
    result = predictor.decode(predictor.encode(make_rgb(*hw)), prompts)
    _assert_mask_matches(result.best_mask, prompts, hw)


def test_negative_only_prompt_gives_an_empty_mask_not_an_error(predictor):
    result = predictor.decode(predictor.encode(make_rgb(100, 100)), Prompts((Point(50, 50, 0),)))
    assert result.best_index == 0 and not result.best_mask.any()


def test_decode_many_matches_one_by_one_and_keeps_order(predictor):
    hw = (300, 500)
    emb = predictor.encode(make_rgb(*hw))
    objects = [Prompts((Point(100, 100),)), Prompts(box=Box(300, 50, 450, 250)), Prompts((Point(400, 200),)),
               Prompts((Point(10, 10), Point(40, 30, 0))), Prompts((Point(250, 150),), Box(200, 100, 300, 200))]
    together = predictor.decode_many(emb, objects)
    assert len(together) == len(objects)
    for obj, res in zip(objects, together):
        alone = predictor.decode(emb, obj)
        np.testing.assert_array_equal(res.low_res_logits, alone.low_res_logits)
        np.testing.assert_array_equal(res.scores, alone.scores)
        _assert_mask_matches(res.masks[1], obj, hw)


def test_object_score_comes_from_this_image_and_these_prompts(predictor):
    for seed in (1, 2):
        rgb = make_rgb(200, 300, seed=seed) // (seed * 2)
        emb = predictor.encode(rgb)
        emb2 = am.reference_encoder(am.reference_pixel_values(rgb))[2]  # the spec's preprocessing, not ours
        one = predictor.decode(emb, Prompts((Point(10, 10),)))
        two = predictor.decode(emb, Prompts((Point(10, 10), Point(50, 50))))
        assert one.object_score_logit == pytest.approx(float(emb2[0, 0].mean()) + 0.5, abs=1e-4)
        assert two.object_score_logit == pytest.approx(one.object_score_logit + 0.5, abs=1e-5)


def _picture_with_patches(hw):
    """make_rgb with a pure-blue (key) and a pure-red rectangle of the same size side by side."""
    h, w = hw
    rgb = make_rgb(h, w, seed=5)
    rows, width = slice(h // 4, h * 3 // 4), w // 5
    rgb[rows, w // 5:w // 5 + width] = am.KEY_RGB
    rgb[rows, w * 3 // 5:w * 3 // 5 + width] = (255, 0, 0)
    return rgb


@pytest.mark.parametrize("hw", [(300, 500), (3000, 4000)])
def test_blue_is_cut_out_and_red_is_not_so_channel_order_shows(predictor, hw):
    """The analytic decoder never puts a pure-blue cell in a mask; a wrapper that feeds BGR cuts out the red
    patch instead. The key cells come from the spec's preprocessing, written out in the test models."""
    h, w = hw
    rgb = _picture_with_patches(hw)
    key = am.key_cells(rgb)
    assert key.sum() > 500
    prompts = Prompts(box=Box(w * 0.1, h * 0.1, w * 0.9, h * 0.9))
    result = predictor.decode(predictor.encode(rgb), prompts)
    _assert_mask_matches(result.masks[1], prompts, hw, key=key)
    blue = result.masks[1][h * 3 // 8:h * 5 // 8, w // 4:w * 3 // 8]
    red = result.masks[1][h * 3 // 8:h * 5 // 8, w * 13 // 20:w * 3 // 4]
    assert not blue.any() and red.all()


def test_embedding_is_immutable_and_carries_the_geometry(predictor):
    emb = predictor.encode(make_rgb(90, 160))
    assert isinstance(emb, ImageEmbedding) and emb.original_hw == (90, 160)
    assert [f.shape for f in emb.features] == [(1, 32, 256, 256), (1, 64, 128, 128), (1, 256, 64, 64)]
    with pytest.raises(ValueError):
        emb.features[0][0, 0, 0, 0] = 1.0
    assert emb.nbytes == sum(f.nbytes for f in emb.features)


def test_decode_uses_the_embeddings_geometry_not_any_predictor_state(predictor):
    small, large = predictor.encode(make_rgb(100, 100)), predictor.encode(make_rgb(400, 800))
    prompts = Prompts((Point(50, 50),))
    a = predictor.decode(small, prompts)
    predictor.decode(large, Prompts((Point(700, 300),)))
    b = predictor.decode(small, prompts)
    np.testing.assert_array_equal(a.low_res_logits, b.low_res_logits)
    assert b.best_mask.shape == (100, 100)


def test_prompts_outside_the_image_are_rejected_before_running(predictor):
    emb = predictor.encode(make_rgb(100, 200))
    for prompts in (Prompts((Point(200, 5),)), Prompts((Point(5, 100),)), Prompts(box=Box(0, 0, 201, 50))):
        with pytest.raises(InvalidPromptError, match="outside the 200×100 image"):
            predictor.decode(emb, prompts)
    with pytest.raises(InvalidPromptError, match="Add a point or a box"):
        predictor.decode(emb, Prompts())
    with pytest.raises(InvalidPromptError, match="ImageEmbedding"):
        predictor.decode("not an embedding", Prompts((Point(1, 1),)))


@pytest.mark.parametrize("image", [
    np.zeros((20, 30), np.uint8),                     # grey
    np.zeros((20, 30, 4), np.uint8),                  # RGBA
    np.zeros((20, 30, 3), np.float32),                # float
    Image.new("RGB", (30, 20), (10, 200, 30)),        # PIL
])
def test_encode_accepts_other_image_forms(predictor, image):
    assert predictor.encode(image).original_hw == (20, 30)


@pytest.mark.parametrize("bad", [np.zeros((0, 5, 3), np.uint8), np.zeros((5,), np.uint8), "image.png"])
def test_encode_rejects_non_images(predictor, bad):
    with pytest.raises(InvalidImageError):
        predictor.encode(bad)


def test_shared_predictor_is_safe_across_threads(predictor):
    hw = (240, 320)
    embeddings = [predictor.encode(make_rgb(*hw, seed=s)) for s in range(3)]
    clicks = [Prompts((Point(40 + 30 * i, 30 + 20 * i),)) for i in range(6)]
    expected = {(e, c): predictor.decode(embeddings[e], clicks[c]).low_res_logits
                for e in range(3) for c in range(6)}
    failures = []

    def worker(offset):
        for k in range(30):
            e, c = (k + offset) % 3, (k * 7 + offset) % 6
            got = predictor.decode(embeddings[e], clicks[c]).low_res_logits
            if not np.array_equal(got, expected[(e, c)]):
                failures.append((e, c))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


def test_runtime_failure_becomes_inference_error(predictor, monkeypatch):
    emb = predictor.encode(make_rgb(50, 50))

    class Exploding:
        def run(self, *args, **kwargs):
            raise RuntimeError("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT")

    monkeypatch.setattr(predictor, "_decoder", Exploding(), raising=False)
    with pytest.raises(InferenceError, match="failed to run"):
        predictor.decode(emb, Prompts((Point(1, 1),)))
