#!/usr/bin/env python3
"""Reference preprocessing of a large photo-sized image, from transformers' own Sam2ImageProcessor.

Every photo takes the DOWNSCALE path of the encoder resize (a 12 MP photo becomes 1024 x 1024),
and the reduced fixture's image (150 x 240) only takes the upscale path. This tool makes a
deterministic 3000 x 2000 image from an integer formula (``large_image``: no random generator,
no files, so the test rebuilds it bit for bit), runs transformers' ``Sam2ImageProcessor`` on it
and stores a small summary of its ``pixel_values`` in ``tests/data/downscale_reference.npz``:

=================  ==================  ====================================================
key                shape, dtype        content
=================  ==================  ====================================================
``levels_grid``    [3,128,128] uint8   reference grey levels (see below) at ``[:, ::8, ::8]``
``crop_origins``   [K,2] int32         (row, col) of each full-resolution crop, model frame
``crops``          [K,3,64,64] uint8   reference grey levels of those 64 x 64 crops
``block_sums``     [3,64,64] int64     sum of the grey levels over every 16 x 16 block
``channel_means``  [3] float64         mean grey level of each channel, whole image
``image_sha256``   str                 SHA-256 of ``large_image().tobytes()``
``versions``       str (JSON)          torch, torchvision, transformers, numpy, Pillow
=================  ==================  ====================================================

"Grey levels" are the reference ``pixel_values`` mapped back through the ImageNet mean and std,
``v * std * 255 + mean * 255``. transformers resizes the uint8 image in uint8 (torchvision's
antialiased bilinear kernel, with rounding), so they are whole numbers; the tool checks that
they are, to within 1e-3, and refuses to write otherwise.

Usage (needs torch with a MATCHING torchvision, and transformers 5.x; the README of
tests/fixtures/sam2_tiny explains why the torch+cpu build cannot be used)::

    python tools/make_downscale_reference.py [--out tests/data/downscale_reference.npz]

The image formula lives here and is imported by tests/test_preprocess_reference.py; change it
only together with the stored reference.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np

LARGE_HW = (2000, 3000)
"""(H, W) of the test image: photo-sized, non-square, and not a multiple of 1024 on either axis."""
MODEL_SIDE = 1024
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GRID_STEP = 8
CROP_SIDE = 64
CROP_ORIGINS = ((0, 0), (480, 500), (960, 960), (200, 830), (700, 96))
"""Crops at the corners (edge handling of the filter) and inside (noise, stripes, discs)."""
BLOCK = 16
INTEGER_TOLERANCE = 1e-3
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "downscale_reference.npz"


def _hash_byte(x: np.ndarray, y: np.ndarray, salt: int) -> np.ndarray:
    """A well-mixed byte per pixel from integer arithmetic only (exactly reproducible anywhere)."""
    h = (x * 73856093) ^ (y * 19349663) ^ (salt * 83492791)
    h = (h * 2654435761) & 0xFFFFFFFF
    h ^= h >> 15
    h = (h * 2246822519) & 0xFFFFFFFF
    return (h >> 24) & 0xFF


def large_image(hw: tuple[int, int] = LARGE_HW) -> np.ndarray:
    """The deterministic ``(H, W, 3)`` uint8 RGB test image.

    Every channel is different (so a swapped channel order shows) and mixes smooth gradients,
    per-pixel noise (which only an antialiasing filter averages away), thin stripes and a
    checkerboard finer than the downscale factor (aliasing), and sharp-edged discs.
    """
    h, w = hw
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    stripes = ((x // 3) % 2) * 50
    checker = ((x // 5 + y // 7) % 2) * 70
    discs = np.zeros((h, w), np.int64)
    for cy, cx, r, value in ((500, 700, 300, 90), (1400, 2200, 450, 120), (1000, 1500, 120, 150)):
        discs += np.where((y - cy) ** 2 + (x - cx) ** 2 < r * r, value, 0)
    red = 20 + x * 120 // w + stripes + _hash_byte(x, y, 1) // 4
    green = 30 + y * 100 // h + checker + _hash_byte(x, y, 2) // 3
    blue = 10 + discs + _hash_byte(x, y, 3) // 2 + ((x + 2 * y) % 97)
    return np.clip(np.stack([red, green, blue], axis=-1), 0, 255).astype(np.uint8)


def image_sha256(rgb: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(rgb).tobytes()).hexdigest()


def to_grey_levels(pixel_values: np.ndarray) -> np.ndarray:
    """``[1,3,S,S]`` ImageNet-normalised values -> ``[3,S,S]`` float64 grey levels (0..255 scale)."""
    v = np.asarray(pixel_values, np.float64)[0]
    mean = np.asarray(IMAGENET_MEAN)[:, None, None]
    std = np.asarray(IMAGENET_STD)[:, None, None]
    return (v * std + mean) * 255.0


def summarise(levels: np.ndarray) -> dict[str, np.ndarray]:
    """The stored summary of ``[3,1024,1024]`` grey levels (uint8-valued)."""
    c = levels.shape[0]
    crops = np.stack([levels[:, r:r + CROP_SIDE, q:q + CROP_SIDE] for r, q in CROP_ORIGINS])
    blocks = levels.reshape(c, MODEL_SIDE // BLOCK, BLOCK, MODEL_SIDE // BLOCK, BLOCK).sum(axis=(2, 4))
    return {
        "levels_grid": levels[:, ::GRID_STEP, ::GRID_STEP].astype(np.uint8),
        "crop_origins": np.asarray(CROP_ORIGINS, np.int32),
        "crops": crops.astype(np.uint8),
        "block_sums": blocks.astype(np.int64),
        "channel_means": levels.reshape(c, -1).mean(axis=1),
    }


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed with fixed zip timestamps, so the same inputs give the same bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.save(member, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, member.getvalue())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    import PIL
    import torch
    import torchvision
    import transformers
    from transformers import Sam2ImageProcessor

    rgb = large_image()
    pixel_values = Sam2ImageProcessor()(images=rgb, return_tensors="np")["pixel_values"]
    assert pixel_values.shape == (1, 3, MODEL_SIDE, MODEL_SIDE), pixel_values.shape
    levels = to_grey_levels(pixel_values)
    off_integer = float(np.abs(levels - np.round(levels)).max())
    print(f"reference grey levels are whole numbers to within {off_integer:.2e}", file=sys.stderr)
    if off_integer > INTEGER_TOLERANCE:
        print("refusing to write: the reference did not resize in uint8 as this tool assumes", file=sys.stderr)
        return 1
    levels = np.round(levels)
    versions = {"torch": torch.__version__, "torchvision": torchvision.__version__,
                "transformers": transformers.__version__, "numpy": np.__version__, "pillow": PIL.__version__}
    arrays = summarise(levels)
    arrays["image_sha256"] = np.asarray(image_sha256(rgb))
    arrays["versions"] = np.asarray(json.dumps(versions, sort_keys=True))
    _write_npz(args.out, arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes); {versions}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
