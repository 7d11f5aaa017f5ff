"""sam_demo.previews: which requests get a small preview, and what it is (the browser test: test_upload_preview)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from sam_demo.previews import PREVIEW_SIDE, make_preview, wants_image
from tests.conftest import make_rgb

EXIF_ORIENTATION_TAG = 274
ROTATE_90_CW = 6


def test_only_an_img_load_wants_a_preview():
    assert wants_image([(b"Sec-Fetch-Dest", b"image"), (b"accept", b"*/*")])
    assert not wants_image([(b"sec-fetch-dest", b"empty"), (b"accept", b"image/avif,image/*")])  # a script's fetch
    assert not wants_image([(b"sec-fetch-dest", b"document")])                                     # a download
    assert wants_image([(b"accept", b"image/avif,image/webp,*/*;q=0.8")])    # plain HTTP: no Sec-Fetch headers
    assert not wants_image([(b"accept", b"*/*")])
    assert not wants_image([(b"sec-fetch-dest", b"image"), (b"range", b"bytes=0-99")])


def test_the_preview_is_small_upright_and_jpeg():
    stored = np.ascontiguousarray(np.rot90(make_rgb(1200, 900), k=1))  # 900 x 1200 stored, portrait upright
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = ROTATE_90_CW
    raw = io.BytesIO()
    Image.fromarray(stored).save(raw, "JPEG", exif=exif.tobytes(), quality=95)
    preview = make_preview(raw.getvalue())
    with Image.open(io.BytesIO(preview)) as image:
        assert image.format == "JPEG" and image.size == (PREVIEW_SIDE * 900 // 1200, PREVIEW_SIDE)
        assert EXIF_ORIENTATION_TAG not in image.getexif()
    assert len(preview) < len(raw.getvalue()) / 10


def test_not_a_picture_gets_no_preview():
    assert make_preview(b"This is a text file, not a picture.\n") is None
