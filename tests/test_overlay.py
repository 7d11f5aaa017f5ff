"""Overlay drawing: what a user sees on the display image after a click."""

from __future__ import annotations

import numpy as np
import pytest

from sam_demo.editor import MAX_OBJECTS
from sam_demo.overlay import (
    DARK,
    PALETTE,
    PALETTE_SIZE,
    WHITE,
    MaskLayer,
    candidate_thumbnails,
    color_for,
    render_overlay,
    thumbnail_hw,
)
from sam_onnx.postprocess import mask_crop_from_logits, mask_from_logits
from tests.conftest import make_rgb

ORANGE, SKY = PALETTE[0], PALETTE[1]
HW = (240, 320)


def grey(hw=HW, value=(100, 50, 200)) -> np.ndarray:
    out = np.empty((*hw, 3), np.uint8)
    out[...] = value
    return out


def rect_mask(hw=HW, rows=(60, 180), cols=(80, 240)) -> np.ndarray:
    mask = np.zeros(hw, bool)
    mask[rows[0] : rows[1], cols[0] : cols[1]] = True
    return mask


def disc_mask(hw=HW, centre=(120, 160), radius=70) -> np.ndarray:
    yy, xx = np.mgrid[: hw[0], : hw[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < radius**2


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a != b).any(axis=-1)


def near(mask: np.ndarray, distance: int) -> np.ndarray:
    """Pixels within `distance` (square neighbourhood) of a mask pixel."""
    out = mask.copy()
    for _ in range(distance):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= grown[:, :-1].copy()
        grown[:, :-1] |= grown[:, 1:].copy()
        out = grown
    return out


def boundary_inside(mask: np.ndarray) -> np.ndarray:
    """Mask pixels with a 4-neighbour outside the mask (or outside the image)."""
    padded = np.pad(mask, 1, constant_values=False)
    eroded = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~eroded


# --------------------------------------------------------------------------- palette


def test_palette_starts_with_okabe_ito_without_black():
    assert len(PALETTE) == 7 and len(set(PALETTE)) == 7
    assert (0, 0, 0) not in PALETTE
    assert PALETTE[0] == (230, 159, 0) and PALETTE[1] == (86, 180, 233)  # orange, sky blue first
    assert [color_for(i) for i in range(7)] == list(PALETTE)


def test_every_object_of_an_image_has_its_own_colour():
    """Colours used to repeat from the 8th object; now each of MAX_OBJECTS has its own, the first ones most apart."""
    colours = [color_for(i) for i in range(MAX_OBJECTS)]
    assert PALETTE_SIZE == MAX_OBJECTS and len(set(colours)) == MAX_OBJECTS
    assert color_for(MAX_OBJECTS) == color_for(0)  # colour indices from a prompts file may be larger
    rgb = np.array(colours, dtype=float)
    apart = np.linalg.norm(rgb[:, None] - rgb[None], axis=-1) + np.eye(MAX_OBJECTS) * 1e9
    okabe_ito = apart[:7, :7].min()
    assert apart[:12, :12].min() >= 0.9 * okabe_ito, "the first 12 about as far apart as the Okabe-Ito colours"
    assert apart[:64, :64].min() >= 25 and apart.min() >= 15, "later ones closer, but never alike"
    # neither white (glyphs, selection halo) nor near-black (rims) nor grey like a photo
    assert all(max(c) - min(c) >= 50 and sum(c) < 3 * 240 and max(c) >= 110 for c in colours), colours


# --------------------------------------------------------------------------- fill and contour


def test_pixels_away_from_masks_and_markers_are_unchanged():
    base = make_rgb(*HW, seed=1)
    mask = disc_mask()
    out = render_overlay(base, [MaskLayer(mask, ORANGE)])
    assert out.shape == base.shape and out.dtype == np.uint8
    far = ~mask  # unselected: nothing is drawn outside the mask
    np.testing.assert_array_equal(out[far], base[far])
    assert changed(out, base)[mask].all()


@pytest.mark.parametrize("opacity, expected", [
    (0.5, ((100 + 230 + 1) // 2, (50 + 159 + 1) // 2, (200 + 0 + 1) // 2)),  # rounded halfway blend
    (0.25, (133, 77, 150)),  # 100 + 130/4 = 132.5 -> 133; 50 + 27.25 -> 77; 200 - 50 -> 150
    (1.0, ORANGE),
])
def test_inside_the_mask_the_colour_moves_toward_the_layer_colour_by_opacity(opacity, expected):
    out = render_overlay(grey(), [MaskLayer(rect_mask(), ORANGE)], opacity=opacity)
    assert tuple(out[120, 160]) == expected
    interior = rect_mask(rows=(63, 177), cols=(83, 237))  # 3 px away from the edge: fill only
    assert (out[interior] == expected).all()


def test_opacity_zero_draws_only_the_contour():
    base = make_rgb(*HW, seed=2)
    mask = disc_mask()
    out = render_overlay(base, [MaskLayer(mask, SKY)], opacity=0.0)
    drawn = changed(out, base)
    assert drawn.any()
    interior = mask & ~near(~mask, 3)
    np.testing.assert_array_equal(out[interior], base[interior])
    assert (out[drawn] == SKY).all()


def test_contour_lies_on_the_mask_boundary():
    base = grey()
    mask = disc_mask()
    out = render_overlay(base, [MaskLayer(mask, SKY)], opacity=0.0)
    contour = changed(out, base)
    assert not (contour & ~mask).any()  # inside the mask only
    assert contour[boundary_inside(mask)].all()  # every boundary pixel is outlined
    assert not (contour & ~near(~mask, 2)).any()  # about 2 px wide, no deeper


def test_contour_can_be_switched_off():
    base = grey()
    out = render_overlay(base, [MaskLayer(rect_mask(), SKY)], opacity=0.0, contour=False)
    np.testing.assert_array_equal(out, base)


def test_mask_touching_the_image_edge_is_outlined_along_the_edge():
    mask = rect_mask(rows=(0, 100), cols=(0, 320))
    out = render_overlay(grey(), [MaskLayer(mask, SKY)], opacity=0.0)
    assert (out[0, 10:310] == SKY).all() and (out[50, 0] == SKY).all()


def test_selected_layer_is_outlined_differently():
    base = make_rgb(*HW, seed=3)
    mask = disc_mask()
    plain = render_overlay(base, [MaskLayer(mask, ORANGE)])
    selected = render_overlay(base, [MaskLayer(mask, ORANGE, selected=True)])
    assert changed(plain, selected).any()
    halo = changed(selected, base) & ~mask
    assert halo.any()  # drawn just outside the mask ...
    assert not (halo & ~near(mask, 4)).any()  # ... and only just
    assert (selected[halo] == WHITE).all(axis=-1).any() and (selected[halo] == DARK).all(axis=-1).any()
    # The fill inside is the same: only the outline tells which object is being edited.
    interior = mask & ~near(~mask, 3)
    np.testing.assert_array_equal(plain[interior], selected[interior])


def test_selection_stays_visible_with_contours_off():
    base = grey()
    out = render_overlay(base, [MaskLayer(disc_mask(), ORANGE, selected=True)], opacity=0.0, contour=False)
    assert changed(out, base).any()


def test_later_layers_are_on_top():
    first, second = rect_mask(cols=(40, 200)), rect_mask(cols=(120, 280))
    base = grey()
    out = render_overlay(base, [MaskLayer(first, ORANGE), MaskLayer(second, SKY)], opacity=1.0)
    assert tuple(out[120, 160]) == SKY and tuple(out[120, 60]) == ORANGE
    swapped = render_overlay(base, [MaskLayer(second, SKY), MaskLayer(first, ORANGE)], opacity=1.0)
    assert tuple(swapped[120, 160]) == ORANGE
    # With partial opacity the overlap is blended in order: orange first, then sky blue.
    half = render_overlay(base, [MaskLayer(first, ORANGE), MaskLayer(second, SKY)], opacity=0.5)
    once = [(b + o + 1) // 2 for b, o in zip((100, 50, 200), ORANGE, strict=True)]
    assert tuple(half[120, 160]) == tuple((v + s + 1) // 2 for v, s in zip(once, SKY, strict=True))


def test_crop_layer_draws_exactly_like_the_full_mask():
    logits = np.full((256, 256), -4.0, np.float32)
    yy, xx = np.mgrid[:256, :256]
    logits[(yy - 100) ** 2 + (xx - 140) ** 2 < 30**2] = 4.0
    hw = (300, 400)
    crop, offset = mask_crop_from_logits(logits, hw)
    base = make_rgb(*hw, seed=4)
    points = ((175.0, 118.0, 1),)
    for selected in (False, True):
        full = render_overlay(base, [MaskLayer(mask_from_logits(logits, hw), ORANGE, selected, points)])
        cropped = render_overlay(base, [MaskLayer.from_crop(crop, offset, hw, color=ORANGE, selected=selected,
                                                            points=points)])
        np.testing.assert_array_equal(cropped, full)


def test_empty_crop_still_draws_markers():
    base = grey()
    layer = MaskLayer.from_crop(np.zeros((0, 0), bool), (0, 0), HW, color=ORANGE, points=((50.0, 60.0, 1),))
    out = render_overlay(base, [layer])
    assert changed(out, base)[60, 50]


# --------------------------------------------------------------------------- markers


MHW = (600, 800)  # markers are sized from the image: radius ~10 px here


def point_layer(x, y, label, color=ORANGE, hw=MHW) -> MaskLayer:
    return MaskLayer(np.zeros(hw, bool), color, points=((x, y, label),))


def test_points_are_centred_on_the_clicked_pixel():
    base = grey(MHW)
    for label in (1, 0):
        out = render_overlay(base, [point_layer(100, 70, label)])
        assert tuple(out[70, 100]) == WHITE  # the glyph crosses the centre
        rows, cols = np.nonzero(changed(out, base))
        assert rows.mean() == pytest.approx(70, abs=0.01) and cols.mean() == pytest.approx(100, abs=0.01)
        assert rows.min() < 70 - 5 and cols.max() > 100 + 5  # a disc, not a dot


def test_positive_and_negative_points_differ_without_colour():
    base = grey(MHW)
    plus = render_overlay(base, [point_layer(100, 70, 1)])
    minus = render_overlay(base, [point_layer(100, 70, 0)])
    glyph_white = lambda out: (out == WHITE).all(axis=-1)  # noqa: E731
    # Same colours, different shape: "+" has a vertical bar, "-" does not.
    assert tuple(plus[66, 100]) == WHITE and tuple(minus[66, 100]) == ORANGE
    assert tuple(plus[70, 96]) == WHITE and tuple(minus[70, 96]) == WHITE  # both have the horizontal bar
    assert glyph_white(plus).sum() > glyph_white(minus).sum()
    # A dark rim keeps the marker visible on any background.
    for out in (plus, minus):
        assert (out[70, 80:100].max(axis=-1) <= 60).any() and (out[50:70, 100].max(axis=-1) <= 60).any()


def test_markers_sit_above_all_masks_and_use_the_layer_colour():
    mask = rect_mask(MHW, rows=(100, 300), cols=(100, 400))
    layers = [MaskLayer(mask, ORANGE, points=((200.0, 200.0, 0),)), MaskLayer(mask, SKY)]
    out = render_overlay(grey(MHW), layers, opacity=1.0)
    assert tuple(out[196, 200]) == ORANGE  # the marker's fill, not hidden by the sky-blue layer on top
    assert tuple(out[200, 200]) == WHITE and tuple(out[250, 250]) == SKY


def test_the_selected_objects_markers_are_drawn_last():
    empty = np.zeros(MHW, bool)
    for selected_first in (True, False):
        layers = [MaskLayer(empty, SKY, selected=True, points=((200.0, 200.0, 0),)),
                  MaskLayer(empty, ORANGE, points=((200.0, 200.0, 0),))]
        out = render_overlay(grey(MHW), layers if selected_first else layers[::-1])
        assert tuple(out[196, 200]) == SKY


@pytest.mark.parametrize("x, y", [(0, 0), (799, 3), (5, 300), (400, 599), (799.4, 599.4)])
def test_a_marker_at_the_image_edge_is_drawn_whole(x, y):
    """It used to be cut by the edge, to a sliver in a corner; it moves inward just enough to be whole."""
    base = grey(MHW)

    def drawn(px, py):
        out = render_overlay(base, [point_layer(px, py, 1)])
        return out, changed(out, base)

    middle_out, middle = drawn(400.5, 300.5)
    out, marker = drawn(x, y)
    rows, cols = np.nonzero(marker)
    assert marker.sum() >= 0.95 * middle.sum(), "part of the marker is missing"
    assert np.ptp(rows) >= np.ptp(np.nonzero(middle)[0]) - 1 and np.ptp(cols) >= np.ptp(np.nonzero(middle)[1]) - 1
    def glyph_span(img):  # rows and columns the white "+" covers (anti-aliased)
        rows, cols = np.nonzero((img >= 230).all(axis=-1))
        return np.ptp(rows), np.ptp(cols)

    assert all(a >= b - 1 for a, b in zip(glyph_span(out), glyph_span(middle_out))), "the glyph is cut"
    centre = (rows.mean(), cols.mean())
    assert np.hypot(centre[0] - y, centre[1] - x) <= 1.5 * 10.4 + 1, "the marker stays next to the point"


def test_points_off_the_image_are_not_moved_onto_it():
    base = grey(MHW)
    out = render_overlay(base, [point_layer(-30.0, 100.0, 1), point_layer(900.0, 100.0, 0)])
    np.testing.assert_array_equal(out, base)


def test_markers_scale_with_the_image_and_marker_scale():
    def marker_pixels(hw, scale=1.0):
        base = grey(hw)
        out = render_overlay(base, [point_layer(hw[1] / 2, hw[0] / 2, 1, hw=hw)], marker_scale=scale)
        return changed(out, base).sum()

    assert marker_pixels((1152, 1536)) > 2 * marker_pixels((480, 640))
    assert marker_pixels((480, 640), 2.0) > 3 * marker_pixels((480, 640))


def test_box_outline_lies_on_the_box_edges():
    base = grey(MHW)
    layer = MaskLayer(np.zeros(MHW, bool), SKY, box=(40, 30, 280, 200))
    out = render_overlay(base, [layer])
    for y, x in ((30, 160), (200, 160), (100, 40), (100, 280), (30, 40), (200, 280)):
        assert tuple(out[y, x]) == SKY
    # A contrasting dark line runs along both sides of the coloured one.
    for line in (out[100, :120], out[100, 279::-1], out[:120, 160], out[199::-1, 160]):
        is_sky = (line == SKY).all(axis=-1)
        first, last = np.flatnonzero(is_sky)[[0, -1]]
        assert is_sky[first : last + 1].all() and last - first + 1 >= 2  # one line, at least 2 px wide
        assert tuple(line[first - 1]) == DARK and tuple(line[last + 1]) == DARK
        assert tuple(line[first - 2]) == (100, 50, 200) and tuple(line[last + 2]) == (100, 50, 200)
    # Inside and outside the box nothing else changes.
    assert tuple(out[100, 160]) == (100, 50, 200) and tuple(out[5, 5]) == (100, 50, 200)


def test_reversed_box_corners_draw_the_same_box():
    base = grey(MHW)
    a = render_overlay(base, [MaskLayer(np.zeros(MHW, bool), SKY, box=(40, 30, 280, 200))])
    b = render_overlay(base, [MaskLayer(np.zeros(MHW, bool), SKY, box=(280, 200, 40, 30))])
    np.testing.assert_array_equal(a, b)


def test_pending_corner_is_drawn_as_a_crosshair():
    base = grey(MHW)
    out = render_overlay(base, [], pending_corner=(100.0, 80.0))
    drawn = changed(out, base)
    assert tuple(out[80, 100]) == WHITE
    assert drawn[80, 100 + 12] and drawn[80 + 12, 100] and drawn[80, 100 - 12]  # long arms
    assert not drawn[80 + 8, 100 + 8]  # a cross, not a disc
    assert not drawn[0, 0]


# --------------------------------------------------------------------------- robustness


def test_inputs_are_not_modified_and_read_only_inputs_work():
    base = make_rgb(*HW, seed=5)
    mask = disc_mask()
    base.setflags(write=False)
    mask.setflags(write=False)
    base_before, mask_before = base.copy(), mask.copy()
    layer = MaskLayer(mask, ORANGE, selected=True, points=((10.0, 10.0, 1),), box=(5, 5, 100, 100))
    out = render_overlay(base, [layer], pending_corner=(200.0, 200.0))
    thumbs = candidate_thumbnails(base, [mask, mask], ORANGE)
    np.testing.assert_array_equal(base, base_before)
    np.testing.assert_array_equal(mask, mask_before)
    assert out.flags.writeable and not np.shares_memory(out, base)
    assert all(not np.shares_memory(t, base) for t in thumbs)


def test_no_layers_returns_an_equal_copy():
    base = make_rgb(*HW, seed=6)
    out = render_overlay(base, [])
    np.testing.assert_array_equal(out, base)
    assert not np.shares_memory(out, base)


@pytest.mark.parametrize("hw", [(1, 1), (3, 5), (5, 3), (2, 200)])
def test_tiny_images_and_markers_at_or_beyond_the_edges(hw):
    base = make_rgb(*hw, seed=7)
    h, w = hw
    corners = ((0.0, 0.0, 1), (w - 1.0, h - 1.0, 0), (-3.0, 2.0, 1), (w + 50.0, -50.0, 0), (float("nan"), 1.0, 1))
    layers = [
        MaskLayer(np.ones(hw, bool), ORANGE, selected=True, points=corners, box=(-10, -10, w + 10, h + 10)),
        MaskLayer(np.zeros(hw, bool), SKY, points=((w / 2, h / 2, 0),), box=(0, 0, w - 1, h - 1)),
    ]
    out = render_overlay(base, layers, pending_corner=(w - 1.0, 0.0))
    assert out.shape == base.shape and out.dtype == np.uint8
    out = render_overlay(base, layers, opacity=0.0, contour=False, marker_scale=5.0)
    assert out.shape == base.shape


def test_layer_validation():
    with pytest.raises(ValueError):
        MaskLayer.from_crop(np.ones((10, 10), bool), (235, 0), HW, color=ORANGE)  # crop sticks out
    with pytest.raises(ValueError):
        MaskLayer(np.ones((3, 3, 3), bool), ORANGE)
    with pytest.raises(ValueError):
        MaskLayer(np.ones((3, 3), bool), (300, 0, 0))
    with pytest.raises(ValueError):
        render_overlay(grey(), [MaskLayer(np.ones((10, 10), bool), ORANGE)])  # drawn for another size
    with pytest.raises(ValueError):
        render_overlay(grey(), [], opacity=1.5)
    with pytest.raises(ValueError):
        render_overlay(np.zeros((10, 10, 4), np.uint8), [])


# --------------------------------------------------------------------------- thumbnails


@pytest.mark.parametrize("hw, size, expected", [((300, 500), 160, (96, 160)), ((1536, 1152), 160, (160, 120)),
                                                 ((50, 40), 160, (160, 128)), ((1, 900), 100, (1, 100))])
def test_thumbnails_have_the_requested_size_and_aspect(hw, size, expected):
    assert thumbnail_hw(hw, size) == expected
    base = make_rgb(*hw, seed=8)
    masks = [np.zeros(hw, bool), np.ones(hw, bool), np.ones(expected, bool)]  # any size is accepted
    thumbs = candidate_thumbnails(base, masks, SKY, size=size)
    assert len(thumbs) == 3
    assert all(t.shape == (*expected, 3) and t.dtype == np.uint8 for t in thumbs)


def test_thumbnails_show_each_candidate():
    hw = (300, 400)
    base = grey(hw)
    th = thumbnail_hw(hw)
    small, big = np.zeros(th, bool), np.zeros(th, bool)
    small[50:70, 70:90] = True
    big[20:100, 30:130] = True
    empty, t_small, t_big = candidate_thumbnails(base, [np.zeros(th, bool), small, big], ORANGE)
    assert (empty == (100, 50, 200)).all()  # no mask: just the (downscaled) image
    assert changed(t_small, empty).sum() < changed(t_big, empty).sum()
    assert tuple(t_big[60, 80]) == ((100 + 230 + 1) // 2, (50 + 159 + 1) // 2, (200 + 1) // 2)
    assert candidate_thumbnails(base, [], ORANGE) == []
