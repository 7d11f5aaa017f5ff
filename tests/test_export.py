"""COCO RLE, area and box of ``sam_onnx.export`` against the reference implementation, pycocotools.

The round trips elsewhere (test_amg, test_cli_everything, test_app_*) decode with our own
``decode_rle``, so a bug shared by the encoder and the decoder (row-major order instead of
COCO's column-major, say) would pass them. Here pycocotools is the oracle: the compressed
string, the uncompressed counts, the size, and decoding in both directions must agree.
"""

from __future__ import annotations

import numpy as np
import pytest

from sam_onnx.export import decode_rle, encode_rle, mask_area, mask_bbox, rle_counts

coco = pytest.importorskip("pycocotools.mask", reason="pycocotools is in requirements-test.txt")

TWELVE_MP_HW = (3000, 4000)

# pycocotools 2.0.11's decode calls np.array(copy=False) on its own type under numpy 2; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")


def _coco_encode(mask: np.ndarray) -> dict:
    """pycocotools' RLE of an (H, W) bool mask, with the counts as str (as JSON carries them)."""
    rle = coco.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}


def _random_masks() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(20240611)
    cases = [
        ("empty", np.zeros((7, 5), bool)),
        ("full", np.ones((7, 5), bool)),
        ("one_pixel_image_off", np.zeros((1, 1), bool)),
        ("one_pixel_image_on", np.ones((1, 1), bool)),
        ("single_pixel_first", np.pad(np.ones((1, 1), bool), ((0, 6), (0, 4)))),
        ("single_pixel_last", np.pad(np.ones((1, 1), bool), ((6, 0), (4, 0)))),
        ("single_pixel_inside", np.pad(np.ones((1, 1), bool), ((2, 4), (3, 1)))),
        ("one_row", rng.random((1, 37)) < 0.5),
        ("one_column", rng.random((41, 1)) < 0.5),
        ("first_column_only", np.pad(np.ones((9, 1), bool), ((0, 0), (0, 6)))),
        ("last_row_only", np.pad(np.ones((1, 11), bool), ((8, 0), (0, 0)))),
    ]
    # Odd, prime and non-square shapes; densities from almost empty to almost full, so that
    # runs longer than 31 (multi-chunk LEB128) and differences of both signs occur.
    for i in range(60):
        h, w = int(rng.integers(1, 90)), int(rng.integers(1, 90))
        density = float(rng.choice([0.01, 0.2, 0.5, 0.8, 0.99]))
        cases.append((f"random_{i}_{h}x{w}_p{density}", rng.random((h, w)) < density))
    # Blobs: long runs, so counts far beyond 2**5 and 2**10.
    for i in range(10):
        h, w = int(rng.integers(50, 400)), int(rng.integers(50, 400))
        yy, xx = np.mgrid[0:h, 0:w]
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(5, max(h, w))
        cases.append((f"disc_{i}_{h}x{w}", (yy - cy) ** 2 + (xx - cx) ** 2 < r * r))
    return cases


CASES = _random_masks()


@pytest.mark.parametrize("name,mask", CASES, ids=[name for name, _ in CASES])
def test_encoder_matches_pycocotools(name, mask):
    ours = encode_rle(mask)
    assert ours == _coco_encode(mask)
    assert ours["size"] == [mask.shape[0], mask.shape[1]]


@pytest.mark.parametrize("name,mask", CASES, ids=[name for name, _ in CASES])
def test_uncompressed_counts_compress_to_pycocotools_string(name, mask):
    """Our column-major counts, compressed by pycocotools, give its own encoding of the mask."""
    h, w = mask.shape
    counts = rle_counts(mask)
    assert sum(counts) == h * w and counts[0] >= 0 and all(c > 0 for c in counts[1:])
    compressed = coco.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    assert compressed["counts"].decode("ascii") == _coco_encode(mask)["counts"]


@pytest.mark.parametrize("name,mask", CASES, ids=[name for name, _ in CASES])
def test_decoders_read_each_others_rle(name, mask):
    theirs = _coco_encode(mask)
    np.testing.assert_array_equal(decode_rle(theirs), mask)
    # pycocotools hands out bytes; a caller may pass those straight in.
    np.testing.assert_array_equal(decode_rle({**theirs, "counts": theirs["counts"].encode("ascii")}), mask)
    ours = encode_rle(mask)
    decoded = coco.decode({"size": ours["size"], "counts": ours["counts"].encode("ascii")})
    np.testing.assert_array_equal(decoded.astype(bool), mask)


@pytest.mark.parametrize("name,mask", CASES, ids=[name for name, _ in CASES])
def test_area_and_bbox_match_pycocotools(name, mask):
    rle = coco.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert mask_area(mask) == int(coco.area(rle))
    box = mask_bbox(mask)
    if not mask.any():
        assert box is None
    else:
        # pycocotools' [x, y, width, height] counts the pixels the mask spans (a 1-pixel mask is 1 x 1).
        assert box == [int(v) for v in coco.toBbox(rle)]


def test_a_12_megapixel_mask_matches_pycocotools():
    h, w = TWELVE_MP_HW
    yy, xx = np.ogrid[0:h, 0:w]
    mask = ((yy - 1400) ** 2 + (xx - 2100) ** 2 < 1100**2) ^ ((xx // 97 + yy // 61) % 5 == 0)
    mask[:, -1] = True  # a last column, so the final run ends exactly at H * W
    mask[2000:2003, 10:4000:3] = False
    ours = encode_rle(mask)
    assert ours == _coco_encode(mask)
    np.testing.assert_array_equal(decode_rle(_coco_encode(mask)), mask)
    np.testing.assert_array_equal(coco.decode({"size": ours["size"], "counts": ours["counts"].encode()}), mask)


def test_known_small_mask_is_column_major_background_first():
    """A hand-checked value: one pixel at row 1, col 2 of a 3 x 4 mask is preceded by 7 background pixels
    in column-major order (3 + 3 in columns 0 and 1, 1 in column 2)."""
    mask = np.zeros((3, 4), bool)
    mask[1, 2] = True
    assert rle_counts(mask) == [7, 1, 4]
    assert encode_rle(mask) == {"size": [3, 4], "counts": "714"} == _coco_encode(mask)
    assert rle_counts(np.ones((2, 2), bool)) == [0, 4]


def test_decode_rejects_counts_that_do_not_fill_the_image():
    with pytest.raises(ValueError, match="sum to"):
        decode_rle({"size": [3, 4], "counts": [7, 1, 3]})
