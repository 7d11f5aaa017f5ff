"""Command line: one object from prompts, or every object on a point grid.

One object::

    python -m sam_onnx IMAGE --point X,Y[,LABEL] ... [--box X0,Y0,X1,Y1] --out mask.png

Segment everything (:mod:`sam_onnx.amg`)::

    python -m sam_onnx IMAGE --everything [--preset fast|balanced|thorough] [--points-per-side N] \
        --out labels.png --json masks.json

Coordinates are pixels of the image as it looks upright (EXIF orientation
applied), ``x`` to the right and ``y`` down from the top-left pixel.

In ``--everything`` mode ``--out`` is a label map (0 = background, ``i`` =
the ``i``-th mask of the JSON list, 8-bit PNG up to 255 masks, else 16-bit).
Masks are listed largest first and drawn in that order, so a small object on
top of a large one stays visible. ``--json`` holds every mask as a SAM 2
``coco_rle`` record (``segmentation`` = COCO RLE ``size`` + ``counts``,
``area``, ``bbox`` [x, y, w, h], ``predicted_iou``, ``stability_score``,
``point_coords``, ``crop_box`` [x, y, w, h]) plus its ``label``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from . import amg, refine
from .encoders import ENCODER_ENV, encoder_choices
from .encoders.remote import BACKENDS, encoder_for_backend
from .errors import InvalidImageError, InvalidPromptError, ModelLoadError, SamOnnxError
from .export import cutout, label_map_image, mask_image
from .hub import MODEL_DIR_ENV, route_hub_logs_to_root
from .models import DEFAULT_MODEL, MODEL_ENV, model_choices, requested_model
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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


_SETTING_FLAGS = {"points_per_side": "points_per_side", "pred_iou_thresh": "pred_iou_thresh",
                  "stability_thresh": "stability_score_thresh", "min_region_area": "min_mask_region_area",
                  "box_nms_thresh": "box_nms_thresh", "crop_layers": "crop_n_layers"}
"""argparse destination -> :class:`~sam_onnx.amg.EverythingSettings` field."""


def everything_settings(args: argparse.Namespace) -> amg.EverythingSettings:
    """The preset with the flags given on the command line applied.

    Raises:
        ValueError: a value is out of range (the message names the setting).
    """
    overrides = {field: getattr(args, dest) for dest, field in _SETTING_FLAGS.items()
                 if getattr(args, dest, None) is not None}
    return replace(amg.PRESETS[args.preset], **overrides)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: "python -m sam_onnx: error: ... (see --help)" and exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m sam_onnx",
        description="Segment an object with SAM 2.1 (ONNX, CPU; --model picks the size) from points and/or a box, "
                    "or every object in the image (--everything).")
    parser.add_argument("image", type=Path, help="image file (PNG, JPEG, WebP, GIF, BMP)")
    parser.add_argument("--point", type=parse_point, action="append", default=[], metavar="X,Y[,LABEL]",
                        help="a click in image pixels; LABEL 1 = include (default), 0 = exclude. Repeatable.")
    parser.add_argument("--box", type=parse_box, metavar="X0,Y0,X1,Y1", help="a box around the object, in pixels")
    parser.add_argument("--out", type=Path, help="write the chosen (highest-scoring) mask as a binary PNG "
                                                 "(255 = object) at the image's size; with --everything, the "
                                                 "label map PNG (0 = background, i = mask i of the JSON)")
    parser.add_argument("--cutout", type=Path, help="write an RGBA PNG of the object on transparency")
    parser.add_argument("--json", type=Path, help="write scores of all 3 masks, the chosen index and the "
                                                  "object score as JSON; with --everything, every mask as "
                                                  "COCO RLE with its scores, box and grid point")
    parser.add_argument("--refine", action="store_true",
                        help="refine the object in a crop at full resolution (sam_onnx.refine): one more encoder run "
                             "for a mask as sharp as the photo; the JSON names the crop")
    parser.add_argument("--mask-index", type=int, choices=(0, 1, 2),
                        help="write this candidate instead of the highest-scoring one")
    every = parser.add_argument_group("segment everything")
    every.add_argument("--everything", action="store_true",
                       help="find every object: masks from a grid of points, filtered and de-duplicated")
    every.add_argument("--preset", choices=tuple(amg.PRESETS), default=amg.DEFAULT_PRESET,
                       help="speed/detail trade-off (default %(default)s: 16 x 16 points)")
    every.add_argument("--points-per-side", type=_positive_int, metavar="N", help="grid of N x N points")
    every.add_argument("--pred-iou-thresh", type=float, metavar="T",
                       help="keep masks whose predicted IoU is above T (0..1)")
    every.add_argument("--stability-thresh", type=float, metavar="T",
                       help="keep masks whose stability score is at least T (0..1)")
    every.add_argument("--min-region-area", type=int, metavar="CELLS",
                       help="fill holes and remove specks of at most CELLS low-res cells (1/65536 of the image; "
                            "0 = off)")
    every.add_argument("--box-nms-thresh", type=float, metavar="T",
                       help="drop a mask whose box overlaps a better one by IoU above T (1 = keep all)")
    every.add_argument("--crop-layers", type=int, metavar="N", help="also look at 4, 16, ... zoomed-in crops")
    model = parser.add_argument_group("model")
    model.add_argument("--model", type=str.lower, choices=model_choices(), default=None,
                       help=f"model size (default: ${MODEL_ENV}, else {DEFAULT_MODEL.size}); with --model-dir, the "
                            "size the folder holds (or its subfolder of that name)")
    model.add_argument("--model-dir", type=Path, help=f"local folder with the ONNX files (default: ${MODEL_DIR_ENV}, "
                                                      "else download the pinned model from the Hugging Face hub)")
    model.add_argument("--encoder", type=str.lower, choices=encoder_choices(), default=None,
                       help=f"image encoder engine (default: ${ENCODER_ENV}, else auto = the fastest variant whose "
                            "masks agree with fp32 on this machine, checked once and remembered)")
    model.add_argument("--fp16-encoder", action="store_true", help="same as --encoder fp16")
    model.add_argument("--provider", action="append", metavar="NAME",
                       help="onnxruntime execution provider (repeatable, in order of preference); default CPU")
    model.add_argument("--threads", type=int, help="threads per onnxruntime session (default: all cores)")
    model.add_argument("--encoder-backend", choices=BACKENDS, default="local",
                       help="encode here, or on the Ray Serve deployment at --ray-address (README: Scaling out "
                            "with Ray Serve); decoding always runs here")
    model.add_argument("--ray-address", metavar="URL", help="Serve HTTP address of the encoder, e.g. http://HEAD:8000")
    parser.add_argument("-q", "--quiet", action="store_true", help="only print errors")
    return parser


def run(args: argparse.Namespace) -> dict:
    """Do what the parsed arguments say; return the JSON report."""
    from .image import load_image

    prompts = Prompts(tuple(args.point), args.box)
    if prompts.is_empty:
        raise InvalidPromptError("Give at least one --point or a --box.")
    loaded = load_image(args.image)
    for note in loaded.notes:
        logger.info("%s", note)
    prompts.check_inside(loaded.rgb.shape[:2])  # fail before loading the model
    predictor = _predictor(args)
    started = time.perf_counter()
    embedding = predictor.encode(loaded.rgb)
    encoded = time.perf_counter()
    result = predictor.decode(embedding, prompts)
    decoded = time.perf_counter()
    timings = {"encode": round((encoded - started) * 1e3, 1), "decode": round((decoded - encoded) * 1e3, 1)}
    crop = None
    if args.refine:
        crop = refine.crop_for(result, prompts, args.mask_index)
        result = predictor.decode(predictor.encode_crop(loaded.rgb, crop), prompts)
        timings["refine"] = round((time.perf_counter() - decoded) * 1e3, 1)
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
        "model": predictor.info.summary(),
        "timings_ms": timings,
    }
    if crop is not None:
        report["crop"] = list(crop.box)
    if args.out:
        mask_image(mask).save(args.out, format="PNG")
    if args.cutout:
        cutout(loaded.rgb, mask).save(args.cutout, format="PNG")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


def run_everything(args: argparse.Namespace, settings: amg.EverythingSettings) -> dict:
    """``--everything``: write the label map and the RLE JSON; return the JSON report."""
    from .image import load_image

    loaded = load_image(args.image)
    for note in loaded.notes:
        logger.info("%s", note)
    h, w = loaded.rgb.shape[:2]
    plan = amg.make_plan(settings, (h, w))
    predictor = _predictor(args)
    logger.info("segment everything: %d points in %d decoder calls, %d encoder run(s)", plan.points,
                plan.decoder_calls, plan.encoder_runs)
    started = time.perf_counter()
    embedding = predictor.encode(loaded.rgb)
    encoded = time.perf_counter()
    masks = amg.generate(predictor, loaded.rgb, settings, embedding=embedding,
                         progress=_progress_logger(plan.decoder_calls))
    generated = time.perf_counter()
    records = [{"label": label, **m.to_record()} for label, m in enumerate(masks, start=1)]
    report = {
        "image": str(args.image), "width": w, "height": h, "mode": "everything",
        "preset": args.preset, "settings": settings.to_dict(),
        "points": plan.points, "decoder_calls": plan.decoder_calls, "encoder_runs": plan.encoder_runs,
        "count": len(masks),
        "label_map": "0 = background, i = masks[i - 1]; larger masks drawn first, smaller on top",
        "model": predictor.info.summary(),
        "timings_ms": {"encode": round((encoded - started) * 1e3, 1),
                       "generate": round((generated - encoded) * 1e3, 1)},
        "masks": records,
    }
    if args.out:
        label_map_image(amg.label_map(masks, (h, w))).save(args.out, format="PNG")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


def _predictor(args: argparse.Namespace):
    from .predictor import Sam2Predictor

    remote = encoder_for_backend(args.encoder_backend, args.ray_address)
    return Sam2Predictor.from_pretrained(model=args.model, model_dir=args.model_dir, fp16_encoder=args.fp16_encoder,
                                         variant=args.encoder, providers=args.provider, threads=args.threads,
                                         image_encoder=remote)


def _progress_logger(total: int):
    """A progress callback that logs every tenth of the decoder calls."""
    step = max(1, total // 10)

    def report(done: int, total_calls: int) -> None:
        if done and (done % step == 0 or done == total_calls):
            logger.info("  %d / %d decoder calls", done, total_calls)
    return report


def _check_everything_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> amg.EverythingSettings:
    if args.point or args.box:
        parser.error("--everything finds objects by itself: leave out --point and --box")
    if args.cutout or args.mask_index is not None or args.refine:
        parser.error("--cutout, --mask-index and --refine are for one object; with --everything use --out and/or "
                     "--json")
    if not (args.out or args.json):
        parser.error("nothing to write: give --out (label map) and/or --json (RLE masks)")
    try:
        return everything_settings(args)
    except ValueError as exc:
        parser.error(str(exc))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR if args.quiet else logging.INFO, format="%(message)s")
    # A refused image is this command's own one-line error (below); the loader's log line would be a second one.
    logging.getLogger("sam_onnx.image").setLevel(logging.WARNING)
    route_hub_logs_to_root()
    try:
        requested_model(args.model)  # $SAM_ONNX_MODEL too: a bad name is a usage error, before any work
    except ModelLoadError as exc:
        parser.error(str(exc))
    settings = _check_everything_args(parser, args) if args.everything else None
    if not (args.everything or args.out or args.cutout or args.json):
        parser.error("nothing to write: give --out, --cutout and/or --json")
    try:
        report = run_everything(args, settings) if settings is not None else run(args)
    except InvalidImageError as exc:
        print(f"error: {args.image}: {exc}", file=sys.stderr)  # name the file: the CLI may be given several
        return EXIT_USAGE
    except InvalidPromptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SamOnnxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if args.quiet:
        return 0
    if args.everything:
        print(f"{report['count']} masks from {report['points']} points; encode "
              f"{report['timings_ms']['encode']:.0f} ms, generate {report['timings_ms']['generate']:.0f} ms")
        return 0
    scores = ", ".join(f"{s:.3f}" for s in report["scores"])
    print(f"mask {report['chosen_index']} of 3 (scores {scores}; object score {report['object_score']:.3f}), "
          f"{report['mask_area']} px; encode {report['timings_ms']['encode']:.0f} ms, "
          f"decode {report['timings_ms']['decode']:.0f} ms")
    return 0
