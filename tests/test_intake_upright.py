"""The upload intake without a whole-image array (issue 24, item 2): :func:`sam_onnx.image.load_upright` keeps
the decoded photo as a Pillow image as stored, and the encoder input and the display copy are made from it without
turning the whole photo upright; the key is the file's hash. None of this may change a single value of the encoder
input: the same ``pixel_values`` as the array route of the upright pixels."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from sam_demo import view
from sam_demo.service import SegmentationService, file_key, image_key
from sam_onnx import Sam2Predictor
from sam_onnx.geometry import DisplayFrame
from sam_onnx.image import Note, UprightImage, load_image, load_upright, rgb_chunks
from sam_onnx.preprocess import preprocess_image, preprocess_pil, preprocess_upright
from tests.conftest import make_rgb

EXIF_ORIENTATION = 0x0112


def _file(image: Image.Image, fmt: str, orientation: int = 1, **params) -> bytes:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    out = io.BytesIO()
    image.save(out, fmt, exif=exif, **params)
    return out.getvalue()


def _rgba() -> Image.Image:
    rgba = np.dstack([make_rgb(23, 31, seed=2), np.linspace(0, 255, 23 * 31).reshape(23, 31).astype(np.uint8)])
    return Image.fromarray(rgba, "RGBA")


FILES = {
    **{f"jpeg-exif-{k}": (lambda k=k: _file(Image.fromarray(make_rgb(37, 53, seed=k)), "JPEG", k, quality=95))
       for k in range(1, 9)},
    "png-rgba": lambda: _file(_rgba(), "PNG"),
    "png-rgb-transparency-key": lambda: _file(Image.fromarray(make_rgb(19, 27)), "PNG", transparency=(0, 0, 0)),
    "png-16-bit-grey": lambda: _file(Image.fromarray((np.arange(24 * 30).reshape(24, 30) * 90).astype(np.uint16)),
                                     "PNG"),
    "gif-palette": lambda: _file(Image.fromarray(make_rgb(21, 35, seed=5)).convert("P"), "GIF"),
    "jpeg-cmyk": lambda: _file(Image.fromarray(make_rgb(22, 26, seed=6)).convert("CMYK"), "JPEG"),
    "webp-grey": lambda: _file(Image.fromarray(make_rgb(25, 18, seed=7)[..., 0]), "WEBP", lossless=True),
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_load_upright_gives_load_images_pixels_notes_and_format(name):
    data = FILES[name]()
    upright, loaded = load_upright(data), load_image(data)
    image = upright.upright()
    assert image.mode == upright.stored.mode == "RGB" and upright.hw == loaded.rgb.shape[:2]
    np.testing.assert_array_equal(np.asarray(image), loaded.rgb)
    assert (upright.format, upright.notes) == (loaded.format, loaded.notes)
    rotated = name in {f"jpeg-exif-{k}" for k in range(2, 9)}
    assert (Note.ROTATED in upright.notes) == rotated == (upright.orientation is not None)
    assert (upright.stored is image) == (not rotated)  # turned upright only on demand; no copy when upright


@pytest.mark.parametrize("chunk_bytes", [1, 1000, 3 * 41 * 7, 1 << 20])
def test_rgb_chunks_join_to_the_packed_pixels(chunk_bytes):
    image = Image.fromarray(make_rgb(29, 41, seed=3))
    chunks = list(rgb_chunks(image, chunk_bytes))
    assert b"".join(chunks) == np.asarray(image).tobytes()
    assert chunk_bytes >= 1 << 20 or len(chunks) > 1  # pieces, not one copy of the whole image


def test_rgb_chunks_refuse_other_modes():
    with pytest.raises(ValueError, match="RGB"):
        next(rgb_chunks(Image.new("RGBA", (4, 4))))


@pytest.mark.parametrize("hw", [(37, 53), (53, 37), (1, 1)])
def test_the_key_of_a_pil_image_is_the_key_of_its_array(hw):
    rgb = make_rgb(*hw, seed=4)
    assert image_key(Image.fromarray(rgb)) == image_key(rgb)
    if hw[0] != hw[1]:  # the shape counts: the same bytes as another shape are another image
        assert image_key(Image.fromarray(rgb.reshape(hw[1], hw[0], 3))) != image_key(rgb)


@pytest.mark.parametrize("hw", [(1500, 1100), (700, 1300), (300, 200)])  # shrink, mixed, enlarge
def test_preprocess_pil_is_preprocess_image_bit_for_bit(hw):
    rgb = make_rgb(*hw, seed=hw[0])
    pixels, geometry = preprocess_pil(Image.fromarray(rgb))
    expected, expected_geometry = preprocess_image(rgb)
    assert pixels.dtype == np.float32 and np.array_equal(pixels, expected)
    assert geometry == expected_geometry


@pytest.mark.parametrize("hw", [(1500, 1100), (1100, 1500), (2049, 1031), (700, 1300), (300, 200), (1024, 777),
                                (1, 1), (3, 2000)])  # shrink, mixed, enlarge, one side already 1024, extreme
@pytest.mark.parametrize("orientation", list(Image.Transpose))
def test_the_encoder_input_of_the_stored_pixels_is_the_upright_ones_bit_for_bit(hw, orientation):
    """preprocess_upright squashes the stored pixels (rows pass first for a quarter turn) and turns the 1 MP
    result: every value equals preprocess_pil of the photo turned upright as a whole."""
    stored = Image.fromarray(make_rgb(*hw, seed=hw[0] + hw[1]))
    upright = UprightImage(stored, orientation, "PNG")
    pixels, geometry = preprocess_upright(upright)
    expected, expected_geometry = preprocess_pil(upright.upright())
    assert pixels.dtype == np.float32 and pixels.flags["C_CONTIGUOUS"]
    assert np.array_equal(pixels, expected) and geometry == expected_geometry


def test_preprocess_pil_refuses_other_modes():
    with pytest.raises(ValueError, match="RGB"):
        preprocess_pil(Image.new("L", (8, 8)))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_the_display_copy_of_the_stored_pixels_is_the_upright_ones_within_a_grey_level(orientation):
    """view.display_images resizes the stored pixels and turns the small copy: the same size and orientation as
    resizing the upright photo, each value within one grey level (exactly equal without an orientation)."""
    loaded = load_upright(_file(Image.fromarray(make_rgb(300, 410, seed=orientation)), "PNG", orientation))
    rgb = np.asarray(loaded.upright())
    frame = DisplayFrame.fit(rgb.shape[:2], 100)
    display, thumbnail = view.display_images(loaded, frame)
    expected, expected_thumbnail = view.display_images(rgb, frame)
    assert display.shape == expected.shape == (*frame.display_hw, 3) and thumbnail.shape == expected_thumbnail.shape
    difference = np.abs(display.astype(int) - expected)
    assert difference.max() <= (0 if orientation == 1 else 1)
    assert difference.mean() < 0.5  # not a neighbour's pixels: the orientation is right


@pytest.mark.parametrize("orientation", [1, 6])
def test_an_exif_rotated_upload_keeps_its_key_and_input(analytic_dir, tmp_path, orientation):
    """The service's intake from the Pillow images: the file's SHA-256 as the key, the same encoder input as the
    array route gives for the upright pixels; the display copy within a grey level of the upright pixels'."""
    path = tmp_path / "photo.jpg"
    path.write_bytes(_file(Image.fromarray(make_rgb(180, 260, seed=orientation)), "JPEG", orientation))
    predictor = Sam2Predictor.from_files(analytic_dir / "encoder.onnx", analytic_dir / "decoder.onnx", threads=1)
    service = SegmentationService(predictor, display_max_side=96)
    record, _ = service.receive_image(path)
    rgb = load_image(path).rgb
    assert record.key == hashlib.sha256(path.read_bytes()).hexdigest() and record.original_hw == rgb.shape[:2]
    waiting = service._received.get(record.key)
    assert np.array_equal(waiting.pixel_values, preprocess_image(rgb)[0])
    expected_display = np.asarray(Image.fromarray(rgb).resize(record.frame.display_hw[::-1], Image.BILINEAR))
    assert np.abs(service.display_rgb(record).astype(int) - expected_display).max() <= (orientation != 1)


def test_the_encoder_input_is_c_contiguous():
    """onnxruntime copies a strided input before every encoder run; the input is made contiguous once."""
    pixels, _ = preprocess_pil(Image.fromarray(make_rgb(90, 70, seed=9)))
    assert pixels.flags["C_CONTIGUOUS"] and pixels.shape == (1, 3, 1024, 1024)


def test_the_intake_never_turns_the_whole_photo(analytic_dir, tmp_path, monkeypatch):
    """A quarter-turned photo is taken in without UprightImage.upright (a 12 MP turn, ~40 ms on the upload's
    critical path); its encoder input is still the upright pixels' one."""
    path = tmp_path / "photo.jpg"
    path.write_bytes(_file(Image.fromarray(make_rgb(120, 170, seed=3)), "JPEG", 6))
    predictor = Sam2Predictor.from_files(analytic_dir / "encoder.onnx", analytic_dir / "decoder.onnx", threads=1)
    service = SegmentationService(predictor, display_max_side=96)
    expected = preprocess_image(load_image(path).rgb)[0]
    monkeypatch.setattr(UprightImage, "upright", lambda self: pytest.fail("the whole photo was turned"))
    record, _ = service.receive_image(path)
    assert np.array_equal(service._received.get(record.key).pixel_values, expected)


def test_the_key_is_the_files_sha256(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(make_rgb(40, 30, seed=8)).save(path)
    assert file_key(path) == hashlib.sha256(path.read_bytes()).hexdigest()
