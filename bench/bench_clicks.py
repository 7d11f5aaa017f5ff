"""Click accuracy: RITM's simulated user against our pipeline, per model, encoder variant and refinement.

The field's interactive-segmentation numbers (mIoU after 1, 3 and 5 clicks; NoC@85/90, the clicks needed to
reach 85 / 90 % IoU, a miss counting as 20) with RITM's click simulator (:mod:`sam_onnx.clicks`): the first
click at the object's deepest interior pixel, each next one at the deepest pixel of the larger error
(positive for a missed region, negative for an extra one), every click kept, up to 20. Each image is encoded
once per model and encoder variant; every click is one decoder call with all clicks so far, the best-scoring
of the 3 candidates counting, as in the app.

**Offline (the default) this is a plumbing check, not an accuracy measurement.** It runs synthetic shapes
through the analytic test models (``tests/analytic_models.py``, written by ``python -m tests.analytic_models``:
the real I/O contract, a positive click selects a disc of 64 model units around it, a negative one removes
48), where the right answer is known: a scene of k separate discs of exactly that size takes exactly k clicks.
The table shows that the simulator, the prompts, the coordinate frames and the encoder variants fit together;
its numbers say nothing about SAM 2.1. The random-weight stand-ins (``--model-dir tiny=DIR``) run the real
graphs through the same loop, but their masks are noise, so their accuracy means nothing either.

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

    python -m bench.bench_clicks                                  # offline default: analytic models, shapes
    python -m bench.bench_clicks --encoders fp32 int8 --model-dir small=$SAM_STANDIN_DIR
    python -m bench.bench_clicks --all-clicks --max-clicks 20     # always 20 clicks (full mIoU@k curves)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
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

ANALYTIC_POSITIVE_RADIUS = 64.0
"""Radius in model units (1024 frame) of the disc the analytic decoder selects around a positive click
(``tests/analytic_models.POS_RADIUS``, restated so that the benchmark imports nothing of the tests;
``tests/test_clicks.py`` checks the two agree)."""
MODEL_SIDE = 1024
SCENE_SIDE = 512
"""Side of the square synthetic scenes: one analytic disc is 32 px in radius there."""
BACKGROUND_RGB = (112, 128, 96)
OBJECT_RGB = (230, 120, 30)
"""Scene colours: an orange object on grey-green (no pure blue anywhere: the analytic model keys blue out)."""
TEXTURE_SIGMA = 6.0
"""Pixel noise of the scenes, so that a real model sees texture (the analytic model ignores it)."""

DATASETS = {"GrabCut": ("data_GT", "boundary_GT"), "Berkeley": ("images", "masks")}
"""RITM's folder layout of each data set: (images folder, masks folder) under ``<data>/<name>/``."""
MASK_IGNORE = 128
"""Value of the uncertain band in GrabCut/Berkeley masks (RITM: 128 -> ignore, > 128 -> object)."""
DEFAULT_ENCODERS = ("fp32", "int8", "openvino")
COLUMNS = ("data", "model", "encoder", "refine", "objects", "mIoU@1", "mIoU@3", "mIoU@5", "NoC@85", "NoC@90",
           ">=20@85", ">=20@90", "clicks", "encode s", "ms/click")


@dataclass(frozen=True)
class Scene:
    """One object to segment.

    Attributes:
        name: the scene or file name.
        dataset: ``"shapes"`` for the synthetic ones, else the data set's name.
        rgb: ``(H, W, 3)`` uint8, original pixels, upright.
        gt: ``(H, W)`` bool, the object.
        ignore: ``(H, W)`` bool, pixels counted nowhere, or ``None``.
        analytic_noc: clicks the analytic test model needs to pass every NoC target (``None`` if no closed
            form: shapes it cannot draw).
    """

    name: str
    dataset: str
    rgb: np.ndarray = field(repr=False)
    gt: np.ndarray = field(repr=False)
    ignore: np.ndarray | None = field(default=None, repr=False)
    analytic_noc: int | None = None


# ---------------------------------------------------------------------------- synthetic shapes
def _ellipses(hw: tuple[int, int], centres: Sequence[tuple[int, int]], rx: float, ry: float) -> np.ndarray:
    yy, xx = np.mgrid[0:hw[0], 0:hw[1]]
    mask = np.zeros(hw, bool)
    for cx, cy in centres:
        mask |= ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0
    return mask


def _analytic_discs(hw: tuple[int, int], centres: Sequence[tuple[int, int]]) -> np.ndarray:
    """Discs of the analytic model's size as they look in an ``hw`` image (ellipses when it is not square)."""
    h, w = hw
    return _ellipses(hw, centres, ANALYTIC_POSITIVE_RADIUS * w / MODEL_SIDE, ANALYTIC_POSITIVE_RADIUS * h / MODEL_SIDE)


def _paint(gt: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rgb = np.where(gt[..., None], np.array(OBJECT_RGB, np.float32), np.array(BACKGROUND_RGB, np.float32))
    rgb = rgb + rng.normal(0.0, TEXTURE_SIGMA, rgb.shape).astype(np.float32)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def synthetic_scenes() -> list[Scene]:
    """The offline scenes: k separate analytic-size discs (the answer is known: k clicks), and shapes the
    analytic model cannot draw with one disc per click (a square, a ring, a thin bar), whose click counts show
    negative clicks and the 20-click budget at work."""
    square = (SCENE_SIDE, SCENE_SIDE)
    wide = (480, 640)
    yy, xx = np.mgrid[0:SCENE_SIDE, 0:SCENE_SIDE]
    shapes: list[tuple[str, np.ndarray, int | None]] = [
        ("disc", _analytic_discs(square, [(200, 260)]), 1),
        ("two discs", _analytic_discs(square, [(150, 140), (360, 330)]), 2),
        ("three discs, 640x480", _analytic_discs(wide, [(120, 110), (330, 250), (520, 380)]), 3),
        ("square 96 px", (abs(xx - 256) < 48) & (abs(yy - 256) < 48), None),
        ("ring 60/30 px", ((xx - 256) ** 2 + (yy - 256) ** 2 <= 60 ** 2) & ((xx - 256) ** 2 + (yy - 256) ** 2 > 30 ** 2),
         None),
        ("bar 200x12 px", (abs(xx - 256) < 100) & (abs(yy - 200) < 6), None),
    ]
    return [Scene(name, "shapes", _paint(gt, seed), gt, None, noc)
            for seed, (name, gt, noc) in enumerate(shapes)]


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
"""``(predictor, rgb, embedding) -> Segmenter``: how clicks become a mask."""

REFINEMENTS: dict[str, Refinement] = {
    "none": lambda predictor, rgb, embedding: clicks.predictor_segmenter(predictor, embedding),
}
"""Ways to turn clicks into masks, by ``--refine`` name. ``none`` decodes the whole-image embedding. Crop
refinement (issue 19) plugs in here as ``"crop"``: a function that, given the predictor, the image and its
embedding, returns a segmenter that refines each mask in a crop."""


def analytic_models(folder: Path) -> Path:
    """Write the analytic test models into ``folder`` with their own command line (no import of the tests)."""
    subprocess.run([sys.executable, "-m", "tests.analytic_models", "--out", str(folder)], check=True,
                   cwd=common.REPO, stdout=subprocess.DEVNULL)
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
        models = [("analytic", analytic_models(Path(tmp.name)))]
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
                                "expected (analytic)": "—" if scene.analytic_noc is None else scene.analytic_noc,
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
            "models": [{"name": n, "dir": str(p) if tmp is None else "analytic (generated)"} for n, p in models],
            "rows": rows, "scenes": scene_rows, "skipped": skipped,
            "seconds": time.perf_counter() - started}


def report(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [f"CPU {m['cpu']} ({m['affinity']} cores usable), onnxruntime {m['onnxruntime']}, load average "
             f"{m['loadavg_1min']} at the start; {result['seconds']:.0f} s in all", ""]
    if any(r["data"] == "shapes" for r in result["rows"]):
        lines += ["Synthetic shapes: a PLUMBING CHECK of the simulator, prompts, frames and encoder variants, not "
                  "an accuracy measurement (the analytic models' right answers are known; random-weight "
                  "stand-ins give noise).", ""]
    lines.append(common.table(result["rows"], COLUMNS, digits=3))
    if result["scenes"] and any(r["data"] == "shapes" for r in result["scenes"]):
        columns = ("scene", "model", "encoder", "refine", "expected (analytic)", "NoC@85", "NoC@90", "IoU@1",
                   "last IoU", "clicks")
        lines += ["", "Per scene (clicks: + positive, - negative, in order):", "",
                  common.table([r for r in result["scenes"] if r["data"] == "shapes"], columns, digits=3)]
    for s in result["skipped"]:
        lines.append(f"skipped {s['model']} / {s['encoder']}: {s['reason']}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_clicks", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", action="append", default=[], metavar="[NAME=]DIR",
                        help="a folder with encoder.onnx + decoder.onnx (repeatable; default: the analytic test "
                             "models, generated)")
    parser.add_argument("--encoders", nargs="+", default=list(DEFAULT_ENCODERS),
                        help="encoder variants, each forced in turn (default: %(default)s; unavailable ones are "
                             "skipped with the reason)")
    parser.add_argument("--refine", nargs="+", default=["none"], help=f"refinements ({', '.join(REFINEMENTS)})")
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
