"""Command line: ``python -m sam_onnx IMAGE --point X,Y[,LABEL] ... [--box X0,Y0,X1,Y1] --out mask.png``.

Coordinates are pixels of the image as it looks upright (EXIF orientation
applied), ``x`` to the right and ``y`` down from the top-left pixel.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .errors import InvalidImageError, InvalidPromptError, SamOnnxError
from .export import cutout, mask_image
from .hub import MODEL_DIR_ENV
from .types import POSITIVE, Box, Point, Prompts

logger = logging.getLogger("sam_onnx.cli")

EXIT_USAGE = 2
EXIT_FAILURE = 1


def _numbers(text: str, count: tuple[int, ...], what: str) -> list[float]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in count:
        raise argparse.ArgumentTypeError(f"{what} needs {' or '.join(map(str, count))} comma-separated numbers, "
                                         f"got {text!r}")
    try:
        return [float(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be numbers, got {text!r}") from None


def parse_point(text: str) -> Point:
    """``"X,Y"`` (positive) or ``"X,Y,LABEL"`` with LABEL 1 (positive) or 0 (negative)."""
    values = _numbers(text, (2, 3), "--point")
    label = values[2] if len(values) == 3 else POSITIVE
    if label not in (0, 1):
        raise argparse.ArgumentTypeError(f"--point label must be 1 (positive) or 0 (negative), got {text!r}")
    try:
        return Point(values[0], values[1], int(label))
    except InvalidPromptError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_box(text: str) -> Box:
    """``"X0,Y0,X1,Y1"``: two opposite corners in any order."""
    try:
        return Box(*_numbers(text, (4,), "--box"))
    except InvalidPromptError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sam_onnx",
        description="Segment an object with SAM 2.1 Hiera-Small (ONNX, CPU) from points and/or a box.")
    parser.add_argument("image", type=Path, help="image file (PNG, JPEG, WebP, GIF, BMP)")
    parser.add_argument("--point", type=parse_point, action="append", default=[], metavar="X,Y[,LABEL]",
                        help="a click in image pixels; LABEL 1 = include (default), 0 = exclude. Repeatable.")
    parser.add_argument("--box", type=parse_box, metavar="X0,Y0,X1,Y1", help="a box around the object, in pixels")
    parser.add_argument("--out", type=Path, help="write the chosen (highest-scoring) mask as a binary PNG "
                                                 "(255 = object) at the image's size")
    parser.add_argument("--cutout", type=Path, help="write an RGBA PNG of the object on transparency")
    parser.add_argument("--json", type=Path, help="write scores of all 3 masks, the chosen index and the "
                                                  "object score as JSON")
    parser.add_argument("--mask-index", type=int, choices=(0, 1, 2),
                        help="write this candidate instead of the highest-scoring one")
    model = parser.add_argument_group("model")
    model.add_argument("--model-dir", type=Path, help=f"local folder with the ONNX files (default: ${MODEL_DIR_ENV}, "
                                                      "else download the pinned model from the Hugging Face hub)")
    model.add_argument("--fp16-encoder", action="store_true", help="use the half-precision encoder")
    model.add_argument("--provider", action="append", metavar="NAME",
                       help="onnxruntime execution provider (repeatable, in order of preference); default CPU")
    model.add_argument("--threads", type=int, help="threads per onnxruntime session (default: all cores)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only print errors")
    return parser


def run(args: argparse.Namespace) -> dict:
    """Do what the parsed arguments say; return the JSON report."""
    from .image import load_image
    from .predictor import Sam2Predictor

    prompts = Prompts(tuple(args.point), args.box)
    if prompts.is_empty:
        raise InvalidPromptError("Give at least one --point or a --box.")
    loaded = load_image(args.image)
    for note in loaded.notes:
        logger.info("%s", note)
    prompts.check_inside(loaded.rgb.shape[:2])  # fail before loading the model
    predictor = Sam2Predictor.from_pretrained(model_dir=args.model_dir, fp16_encoder=args.fp16_encoder,
                                              providers=args.provider, threads=args.threads)
    started = time.perf_counter()
    embedding = predictor.encode(loaded.rgb)
    encoded = time.perf_counter()
    result = predictor.decode(embedding, prompts)
    decoded = time.perf_counter()
    index = result.best_index if args.mask_index is None else args.mask_index
    mask = result.mask(index)
    h, w = loaded.rgb.shape[:2]
    report = {
        "image": str(args.image), "width": w, "height": h,
        "prompts": prompts.to_dict(),
        "scores": [round(float(s), 6) for s in result.scores],
        "best_index": result.best_index, "chosen_index": index,
        "object_score": round(result.object_score, 6), "object_score_logit": round(result.object_score_logit, 6),
        "mask_area": int(mask.sum()),
        "model": {"source": predictor.info.source, "providers": list(predictor.info.providers),
                  "encoder_dtype": predictor.info.encoder_dtype},
        "timings_ms": {"encode": round((encoded - started) * 1e3, 1), "decode": round((decoded - encoded) * 1e3, 1)},
    }
    if args.out:
        mask_image(mask).save(args.out, format="PNG")
    if args.cutout:
        cutout(loaded.rgb, mask).save(args.cutout, format="PNG")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR if args.quiet else logging.INFO, format="%(message)s")
    if not (args.out or args.cutout or args.json):
        parser.error("nothing to write: give --out, --cutout and/or --json")
    try:
        report = run(args)
    except (InvalidImageError, InvalidPromptError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SamOnnxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if not args.quiet:
        scores = ", ".join(f"{s:.3f}" for s in report["scores"])
        print(f"mask {report['chosen_index']} of 3 (scores {scores}; object score {report['object_score']:.3f}), "
              f"{report['mask_area']} px; encode {report['timings_ms']['encode']:.0f} ms, "
              f"decode {report['timings_ms']['decode']:.0f} ms")
    return 0
