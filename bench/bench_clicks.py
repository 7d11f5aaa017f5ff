"""Click accuracy: RITM's simulated user against our pipeline, per model, encoder variant and refinement.

The field's interactive-segmentation numbers (mIoU after 1, 3 and 5 clicks; NoC@85/90, the clicks needed to
reach 85 / 90 % IoU, a miss counting as 20) with RITM's click simulator (:mod:`sam_onnx.clicks`): the first
click at the object's deepest interior pixel, each next one at the deepest pixel of the larger error
(positive for a missed region, negative for an extra one), every click kept, up to 20. Each image is encoded
once per model and encoder variant; every click is one decoder call with all clicks so far, the best-scoring
of the 3 candidates counting, as in the app.

**Offline (the default) this is a plumbing check, not an accuracy measurement.** It runs synthetic shapes
through the content-following test models (``tools/content_models.py``: the real I/O contract; a positive
click selects every low-res cell whose colour is close to the clicked one, a negative click removes them),
where the right answer is known by construction: a shape of one colour takes one click, k shapes of k colours
take k clicks, and an object with a decoy of its own colour can never be separated from it (a miss, counted
as 20). Every scene says what it should take (``expected``) and the table shows what it took. That checks the
simulator, the prompts, the frames, the encoder variants and crop refinement fit together; it says nothing
about SAM 2.1. The random-weight stand-ins (``--model-dir tiny=DIR``) run the real graphs through the same
loop, but their masks are noise, so their accuracy means nothing either.

**Real numbers** need the published weights and the data sets (GrabCut: 50 objects, Berkeley: 100, as RITM
packs them) on a machine with network access::

    # the data sets (RITM's packaging; 11 MB and 7 MB)
    mkdir -p ~/datasets && cd ~/datasets
    curl -LO https://github.com/saic-vul/fbrs_interactive_segmentation/releases/download/v1.0/GrabCut.zip
    curl -LO https://github.com/saic-vul/fbrs_interactive_segmentation/releases/download/v1.0/Berkeley.zip
    unzip -q GrabCut.zip && unzip -q Berkeley.zip      # -> GrabCut/{data_GT,boundary_GT}, Berkeley/{images,masks}
    # the model files come from the Hugging Face hub on first use (or pass --model-dir NAME=DIR)
    python -m bench.bench_clicks --data ~/datasets --datasets GrabCut Berkeley --model-dir small=DIR

Masks follow RITM's loader: the first channel of the mask file (blue, as OpenCV reads it); 128 = the
uncertain band, ignored in the IoU and never clicked; above 128 = object.

Run from the repository root::

    python -m bench.bench_clicks                                  # offline default: content models, shapes
    python -m bench.bench_clicks --encoders fp32 int8 --model-dir small=$SAM_STANDIN_DIR
    python -m bench.bench_clicks --all-clicks --max-clicks 20     # always 20 clicks (full mIoU@k curves)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench import common
from sam_onnx import clicks
from sam_onnx.errors import ModelLoadError, SamOnnxError

SCENE_SIDE = 512
"""Side of the square synthetic scenes (one low-res cell of a whole-image pass is 2 x 2 pixels there)."""
BACKGROUND_RGB = (112, 128, 96)
COLOURS = {"orange": (230, 120, 30), "purple": (120, 40, 160), "teal": (20, 160, 150)}
"""Object colours on a grey-green background, each at least twice the content model's colour tolerance from the
background and from one another (normalised RGB), none pure blue."""
TEXTURE_SIGMA = 6.0
"""Pixel noise of the scenes (grey levels), so that a real model sees texture; a tenth of the content model's
tolerance."""
NEVER = clicks.MAX_CLICKS
"""``expected`` of a scene the content model can never get right (NoC counts a miss as the budget)."""

DATASETS = {"GrabCut": ("data_GT", "boundary_GT"), "Berkeley": ("images", "masks")}
"""RITM's folder layout of each data set: (images folder, masks folder) under ``<data>/<name>/``."""
MASK_IGNORE = 128
"""Value of the uncertain band in GrabCut/Berkeley masks (RITM: 128 -> ignore, > 128 -> object)."""
DEFAULT_ENCODERS = ("fp32", "int8", "openvino")
COLUMNS = ("data", "model", "encoder", "refine", "objects", "mIoU@1", "mIoU@3", "mIoU@5", "NoC@85", "NoC@90",
           ">=20@85", ">=20@90", "clicks", "encode s", "ms/click")
SCENE_COLUMNS = ("scene", "model", "encoder", "refine", "expected", "NoC@85", "NoC@90", "IoU@1", "last IoU",
                 "clicks")


@dataclass(frozen=True)
class Scene:
    """One object to segment.

    Attributes:
        name: the scene or file name.
        dataset: ``"shapes"`` for the synthetic ones, else the data set's name.
        rgb: ``(H, W, 3)`` uint8, original pixels, upright.
        gt: ``(H, W)`` bool, the object.
        ignore: ``(H, W)`` bool, pixels counted nowhere, or ``None``.
        expected: NoC@90 the content test model must give (by construction; ``None`` for data sets).
    """

    name: str
    dataset: str
    rgb: np.ndarray = field(repr=False)
    gt: np.ndarray = field(repr=False)
    ignore: np.ndarray | None = field(default=None, repr=False)
    expected: int | None = None


# ---------------------------------------------------------------------------- synthetic shapes
def _discs(hw: tuple[int, int], centres: Sequence[tuple[int, int]], r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:hw[0], 0:hw[1]]
    mask = np.zeros(hw, bool)
    for cx, cy in centres:
        mask |= (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    return mask


def _paint(hw: tuple[int, int], layers: Sequence[tuple[np.ndarray, str]], seed: int) -> np.ndarray:
    """The background with each ``(mask, colour name)`` painted over it, plus pixel noise: ``(H, W, 3)`` uint8."""
    rgb = np.empty((*hw, 3), np.float32)
    rgb[:] = BACKGROUND_RGB
    for mask, colour in layers:
        rgb[mask] = COLOURS[colour]
    rgb += np.random.default_rng(seed).normal(0.0, TEXTURE_SIGMA, rgb.shape).astype(np.float32)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def synthetic_scenes() -> list[Scene]:
    """The offline scenes, each with the NoC@90 the content model must give (see the module docstring)."""
    square = (SCENE_SIDE, SCENE_SIDE)
    wide = (480, 640)
    yy, xx = np.mgrid[0:SCENE_SIDE, 0:SCENE_SIDE]
    centre = (xx - 256) ** 2 + (yy - 256) ** 2
    disc, left, right = _discs(square, [(200, 260)], 40), _discs(square, [(150, 140)], 36), \
        _discs(square, [(360, 330)], 36)
    square_96 = (abs(xx - 256) < 48) & (abs(yy - 256) < 48)
    ring = (centre <= 60 ** 2) & (centre > 30 ** 2)
    bar = (abs(xx - 256) < 100) & (abs(yy - 200) < 8)
    wide_discs = [_discs(wide, [c], 40) for c in ((120, 110), (330, 250), (520, 380))]
    decoy = _discs(square, [(380, 120)], 30)
    scenes = [  # name, hw, gt, painted layers, expected NoC@90
        ("disc", square, disc, [(disc, "orange")], 1),
        ("square 96 px", square, square_96, [(square_96, "orange")], 1),
        ("ring 60/30 px", square, ring, [(ring, "orange")], 1),
        ("bar 200x16 px", square, bar, [(bar, "orange")], 1),
        ("two discs, one colour", square, left | right, [(left | right, "orange")], 1),
        ("two discs, two colours", square, left | right, [(left, "orange"), (right, "purple")], 2),
        ("three colours, 640x480", wide, wide_discs[0] | wide_discs[1] | wide_discs[2],
         list(zip(wide_discs, ("orange", "purple", "teal"))), 3),
        ("disc + decoy of its colour", square, disc, [(disc, "orange"), (decoy, "orange")], NEVER),
    ]
    return [Scene(name, "shapes", _paint(hw, layers, seed), gt, None, expected)
            for seed, (name, hw, gt, layers, expected) in enumerate(scenes)]


# ---------------------------------------------------------------------------- data sets
def read_mask(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(object, ignore)`` bool masks of a GrabCut/Berkeley mask file, as RITM reads it (first channel in
    OpenCV's BGR order, i.e. blue; 128 = ignore, above 128 = object)."""
    with Image.open(path) as image:
        values = np.asarray(image.convert("RGB"))[..., 2]
    return values > MASK_IGNORE, values == MASK_IGNORE


def dataset_scenes(root: Path, name: str, limit: int | None = None) -> Iterator[Scene]:
    """The objects of one data set under ``root/<name>/``, one at a time (each image is decoded when used).

    One object per mask file; its image is the file with the same stem, or, for Berkeley's second objects
    (``239007a.png``), the stem without the trailing letter.

    Raises:
        SystemExit: the folders are missing (with what to download), or a mask has no image.
    """
    from sam_onnx.image import load_image

    images_dir, masks_dir = (root / name / sub for sub in DATASETS[name])
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise SystemExit(f"{folder} not found: unpack {name}.zip into {root} (see python -m bench.bench_clicks "
                             "--help for the download)")
    images = {p.stem: p for p in images_dir.iterdir() if p.is_file()}
    masks = sorted(p for p in masks_dir.iterdir() if p.is_file())
    for mask_path in masks[:limit]:
        stem = mask_path.stem
        image_path = images.get(stem) or (images.get(stem[:-1]) if stem[-1:].isalpha() else None)
        if image_path is None:
            raise SystemExit(f"no image in {images_dir} for the mask {mask_path.name}")
        rgb = load_image(image_path).rgb
        gt, ignore = read_mask(mask_path)
        if gt.shape != rgb.shape[:2]:
            raise SystemExit(f"{mask_path.name} is {gt.shape[1]}x{gt.shape[0]} but its image is "
                             f"{rgb.shape[1]}x{rgb.shape[0]}")
        yield Scene(stem, name, rgb, gt, ignore)


# ---------------------------------------------------------------------------- models and refinements
Refinement = Callable[[Any, np.ndarray, Any], clicks.Segmenter]
"""``(predictor, rgb, embedding) -> Segmenter``: how one session's clicks become masks."""


def whole_image(predictor, rgb: np.ndarray, embedding) -> clicks.Segmenter:
    """Every click decoded on the whole image's embedding (the app without refinement)."""
    return clicks.predictor_segmenter(predictor, embedding)


def crop_refined(predictor, rgb: np.ndarray, embedding) -> clicks.Segmenter:
    """Clicks decoded in a crop around the object, as the app's refine does (``sam_onnx.refine``).

    The first click is decoded on the whole image; its mask gives the crop (:func:`sam_onnx.refine.crop_for`:
    the mask's box plus 20 %), which is encoded once; that click and the later ones are decoded there. An include
    click outside the crop goes back to the whole image and a new crop, as in the app's editor; an exclude click
    outside it keeps the crop. When there is no crop to make (empty mask, or the crop would be the whole image)
    the whole-image mask counts. Every crop encode is timed with the clicks (it is the refinement's cost).
    """
    from sam_onnx import Prompts, refine
    from sam_onnx.errors import InvalidPromptError

    crops: dict[Any, Any] = {}  # CropFrame -> its embedding, for this session
    current: list[Any] = [None]

    def segment(clicks_so_far: Sequence[clicks.Click]) -> np.ndarray:
        prompts = Prompts(tuple(c.point() for c in clicks_so_far))
        crop = current[0]
        if crop is not None and any(p.positive and not crop.contains_xy((p.x, p.y)) for p in prompts.points):
            crop = None
        if crop is None:
            whole = predictor.decode(embedding, prompts)
            try:
                crop = refine.crop_for(whole, prompts)
            except InvalidPromptError:
                current[0] = None
                return whole.best_mask
            current[0] = crop
        if crop not in crops:
            crops[crop] = predictor.encode_crop(rgb, crop)
        return predictor.decode(crops[crop], prompts).best_mask

    return segment


REFINEMENTS: dict[str, Refinement] = {"none": whole_image, "crop": crop_refined}
"""Ways to turn clicks into masks, by ``--refine`` name."""


def test_models(folder: Path) -> Path:
    """Write the content-following test models (``tools/content_models.py``) into ``folder``."""
    from tools import content_models

    content_models.save_models(folder)
    return folder


def parse_model_dir(text: str) -> tuple[str, Path]:
    """``NAME=DIR`` or ``DIR`` (named after the folder)."""
    name, sep, folder = text.partition("=")
    path = Path(folder if sep else name).expanduser()
    return (name if sep else path.name), path


def load_predictor(folder: Path, encoder: str):
    """A predictor on ``folder``'s encoder.onnx + decoder.onnx with the encoder variant forced."""
    from sam_onnx import Sam2Predictor

    return Sam2Predictor.from_files(folder / "encoder.onnx", folder / "decoder.onnx", variant=encoder)


# ---------------------------------------------------------------------------- the run
def evaluate(predictor, scenes: Sequence[Scene], refinements: Sequence[str], *, max_clicks: int,
             all_clicks: bool) -> dict[str, dict[str, Any]]:
    """Every scene's trial per refinement: ``{refine: {"trials": [...], "encode_s": s, "decode_s": s}}``."""
    out: dict[str, dict[str, Any]] = {r: {"trials": [], "encode_s": 0.0, "decode_s": 0.0} for r in refinements}
    for scene in scenes:
        started = time.perf_counter()
        embedding = predictor.encode(scene.rgb)
        encode_s = time.perf_counter() - started
        for name in refinements:
            segment = REFINEMENTS[name](predictor, scene.rgb, embedding)
            spent = [0.0]

            def timed(clicks_so_far, segment=segment, spent=spent):
                began = time.perf_counter()
                try:
                    return segment(clicks_so_far)
                finally:
                    spent[0] += time.perf_counter() - began

            trial = clicks.simulate(scene.gt, timed, ignore=scene.ignore, max_clicks=max_clicks,
                                    targets=() if all_clicks else clicks.IOU_THRESHOLDS)
            out[name]["trials"].append((scene, trial))
            out[name]["encode_s"] += encode_s
            out[name]["decode_s"] += spent[0]
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    models = [parse_model_dir(m) for m in args.model_dir]
    tmp = None
    if not models:
        tmp = tempfile.TemporaryDirectory(prefix="bench-clicks-")
        models = [("content", test_models(Path(tmp.name)))]
    unknown = [r for r in args.refine if r not in REFINEMENTS]
    if unknown:
        raise SystemExit(f"unknown --refine {', '.join(unknown)}; this build has {', '.join(REFINEMENTS)}")
    rows, scene_rows, skipped = [], [], []
    try:
        for data_name in args.datasets:
            for model_name, folder in models:
                for encoder in args.encoders:
                    try:
                        predictor = load_predictor(folder, encoder)
                    except (ModelLoadError, SamOnnxError) as exc:
                        skipped.append({"model": model_name, "encoder": encoder, "reason": str(exc)})
                        continue
                    scenes = (synthetic_scenes() if data_name == "shapes"
                              else list(dataset_scenes(args.data, data_name, args.limit)))
                    results = evaluate(predictor, scenes, args.refine, max_clicks=args.max_clicks,
                                       all_clicks=args.all_clicks)
                    for refine, result in results.items():
                        trials = [t for _, t in result["trials"]]
                        summary = clicks.summarise(trials)
                        rows.append({"data": data_name, "model": model_name, "encoder": predictor.info.encoder_name,
                                     "refine": refine, **summary.to_dict(),
                                     "encode s": result["encode_s"],
                                     "ms/click": 1e3 * result["decode_s"] / max(1, summary.clicks)})
                        for scene, trial in result["trials"]:
                            scene_rows.append({
                                "data": data_name, "scene": scene.name, "model": model_name,
                                "encoder": predictor.info.encoder_name, "refine": refine,
                                "expected": "—" if scene.expected is None else scene.expected,
                                "NoC@85": trial.noc(0.85),
                                "NoC@90": trial.noc(0.90), "IoU@1": trial.iou_at(1), "last IoU": trial.ious[-1],
                                "clicks": "".join("+" if c.positive else "-" for c in trial.clicks),
                                "ended": trial.ended})
                    del predictor
    finally:
        if tmp is not None:
            tmp.cleanup()
    return {"machine": common.machine_info(gradio=False), "args": {k: (str(v) if isinstance(v, Path) else v)
                                                      for k, v in vars(args).items()},
            "models": [{"name": n, "dir": str(p) if tmp is None else "content test models (generated)"}
                       for n, p in models],
            "rows": rows, "scenes": scene_rows, "skipped": skipped,
            "seconds": time.perf_counter() - started}


def report(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [f"CPU {m['cpu']} ({m['affinity']} cores usable), onnxruntime {m['onnxruntime']}, load average "
             f"{m['loadavg_1min']} at the start; {result['seconds']:.0f} s in all", ""]
    if any(r["data"] == "shapes" for r in result["rows"]):
        lines += ["Synthetic shapes: a PLUMBING CHECK of the simulator, prompts, frames, encoder variants and "
                  "refinement, not an accuracy measurement (the content test models' right answers are known: "
                  "'expected'; random-weight stand-ins give noise).", ""]
    lines.append(common.table(result["rows"], COLUMNS, digits=3))
    if result["scenes"] and any(r["data"] == "shapes" for r in result["scenes"]):
        lines += ["", "Per scene (clicks: + positive, - negative, in order):", "",
                  common.table([r for r in result["scenes"] if r["data"] == "shapes"], SCENE_COLUMNS, digits=3)]
    for s in result["skipped"]:
        lines.append(f"skipped {s['model']} / {s['encoder']}: {s['reason']}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_clicks", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", action="append", default=[], metavar="[NAME=]DIR",
                        help="a folder with encoder.onnx + decoder.onnx (repeatable; default: the content-following "
                             "test models, generated)")
    parser.add_argument("--encoders", nargs="+", default=list(DEFAULT_ENCODERS),
                        help="encoder variants, each forced in turn (default: %(default)s; unavailable ones are "
                             "skipped with the reason)")
    parser.add_argument("--refine", nargs="+", default=list(REFINEMENTS),
                        help="how clicks become masks: none = the whole image's embedding, crop = refined in a crop "
                             "around the object (default: %(default)s)")
    parser.add_argument("--data", type=Path, help="folder holding GrabCut/ and Berkeley/ (RITM's zips, unpacked)")
    parser.add_argument("--datasets", nargs="+", choices=("shapes", *DATASETS), default=None,
                        help="default: shapes, or GrabCut and Berkeley when --data is given")
    parser.add_argument("--limit", type=int, help="at most this many objects per data set")
    parser.add_argument("--max-clicks", type=int, default=clicks.MAX_CLICKS)
    parser.add_argument("--all-clicks", action="store_true",
                        help="always make --max-clicks clicks (default: stop once IoU >= 0.90, as RITM does; "
                             "mIoU@k then repeats the IoU a stopped session ended with)")
    parser.add_argument("--json", help="where to write the results (default: bench/results/clicks-<time>.json)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.datasets is None:
        args.datasets = list(DATASETS) if args.data else ["shapes"]
    if any(d != "shapes" for d in args.datasets) and args.data is None:
        parser.error("GrabCut and Berkeley need --data DIR")
    return common.finish(run(args), args.json, "clicks", report)


if __name__ == "__main__":
    raise SystemExit(main())
