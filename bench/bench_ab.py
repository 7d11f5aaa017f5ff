"""A/B comparisons of two variants in ONE process, alternating, for the levers in bench/README.md.

Alternating in one process cancels the machine's process-to-process (bimodal)
speed differences that separate runs suffer from. Prints medians. Not a test.

    # load_image of this tree vs an older sam_onnx/image.py (e.g. from git)
    git show HEAD~1:sam_onnx/image.py > /tmp/image_old.py
    python -m bench.bench_ab load-image --old /tmp/image_old.py

    # upload: display copies in a worker thread (the service) vs after the encoder (serial)
    python -m bench.bench_ab display-copy [--model-dir DIR]

    # upload step 1 (receive_image: read, hash, display copies, encoder input) of this tree vs an older
    # sam_demo/service.py; wall time and the process's CPU time, no encoder run
    git show HEAD~1:sam_demo/service.py > /tmp/service_old.py; git show HEAD~1:sam_demo/view.py > /tmp/view_old.py
    python -m bench.bench_ab intake --old /tmp/service_old.py --old-view /tmp/view_old.py --sizes 12
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

from bench import common


def _load_module(path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def load_image_ab(args) -> None:
    from sam_onnx import image as new

    old = _load_module(args.old, "image_old")
    limits_old, limits_new = old.ImageLimits(max_bytes=None), new.ImageLimits(max_bytes=None)
    for mp in args.sizes:
        for fmt in ("jpeg", "png"):
            path = common.photo_file(mp, fmt, Path(args.photos))
            a, b = old.load_image(path, limits=limits_old).rgb, new.load_image(path, limits=limits_new).rgb
            assert np.array_equal(a, b), "the variants decode to different pixels"
            times: dict[str, list[float]] = {"old": [], "new": []}
            for k in range(args.repeat):
                for name in (("old", "new") if k % 2 == 0 else ("new", "old")):
                    load, limits = (old.load_image, limits_old) if name == "old" else (new.load_image, limits_new)
                    started = time.perf_counter()
                    load(path, limits=limits)
                    times[name].append((time.perf_counter() - started) * 1e3)
            print(f"{mp:g} MP {fmt}: load_image old {common.median(times['old']):.0f} ms, "
                  f"new {common.median(times['new']):.0f} ms (median of {args.repeat})")


def display_copy_ab(args) -> None:
    """``SegmentationService.open_image`` (hash and display copies on the second core, beside the
    preprocessing) against the same steps one after the other, defined here as the baseline."""
    from sam_demo import service as svc
    from sam_demo import view
    from sam_onnx import Sam2Predictor, session
    from sam_onnx.geometry import DisplayFrame
    from sam_onnx.image import ImageLimits, load_image

    folder = common.model_dir(args.model_dir)
    predictor = Sam2Predictor.from_files(folder / "encoder.onnx", folder / "decoder.onnx")
    predictor.encode(np.zeros((64, 64, 3), np.uint8))
    limits = ImageLimits(max_bytes=None)

    def threaded(path):
        svc.SegmentationService(predictor, limits=limits).open_image(path)

    def serial(path):
        rgb = load_image(path, limits=limits).rgb
        svc.file_key(path)
        predictor.encode(rgb)
        view.display_images(rgb, DisplayFrame.fit(rgb.shape[:2], svc.DEFAULT_DISPLAY_SIDE))

    variants = {"serial": serial, "threaded": threaded}
    encoder_ms: list[float] = []
    original_run = session.run

    def timed_run(sess, names, feeds, *, label):
        started = time.perf_counter()
        try:
            return original_run(sess, names, feeds, label=label)
        finally:
            if label == "image encoder":
                encoder_ms.append((time.perf_counter() - started) * 1e3)

    session.run = timed_run
    foreign = common.ForeignLoad()
    try:
        for mp in args.sizes:
            for fmt in ("jpeg", "png"):
                path = common.photo_file(mp, fmt, Path(args.photos))
                beyond: dict[str, list[float]] = {k: [] for k in variants}
                for k in range(args.repeat):
                    for name in (list(variants) if k % 2 == 0 else list(variants)[::-1]):
                        encoder_ms.clear()
                        started = time.perf_counter()
                        variants[name](path)
                        beyond[name].append((time.perf_counter() - started) * 1e3 - sum(encoder_ms))
                print(f"{mp:g} MP {fmt}: upload beyond the encoder run: "
                      + ", ".join(f"{name} {common.median(v):.0f} ms" for name, v in beyond.items())
                      + f" (median of {args.repeat})")
    finally:
        session.run = original_run
    print(f"CPU share used by other processes: {foreign.share():.3f}")


def intake_ab(args) -> None:
    """Step 1 of an upload (:meth:`~sam_demo.service.SegmentationService.receive_image`) of an older service
    module against this tree's, alternating, each on a fresh service (no cache hit); no encoder runs."""
    from sam_demo import service as new
    from sam_onnx import Sam2Predictor
    from sam_onnx.image import ImageLimits

    old = _load_module(args.old, "sam_demo.service_old")  # a module of the package: its relative imports work
    if args.old_view:
        old.view = _load_module(args.old_view, "sam_demo.view_old")
    folder = common.model_dir(args.model_dir)
    predictor = Sam2Predictor.from_files(folder / "encoder.onnx", folder / "decoder.onnx")
    limits = ImageLimits(max_bytes=None)
    foreign = common.ForeignLoad()
    for mp in args.sizes:
        path = common.photo_file(mp, "jpeg", Path(args.photos))
        keys = {name: module.SegmentationService(predictor, limits=limits).receive_image(path)[0].key
                for name, module in (("old", old), ("new", new))}
        assert keys["old"] == keys["new"], "the variants hash the upload differently"
        wall: dict[str, list[float]] = {"old": [], "new": []}
        cpu: dict[str, list[float]] = {"old": [], "new": []}
        for k in range(args.repeat):
            for name in (("old", "new") if k % 2 == 0 else ("new", "old")):
                service = (old if name == "old" else new).SegmentationService(predictor, limits=limits)
                started, cpu_started = time.perf_counter(), time.process_time()
                service.receive_image(path)
                wall[name].append((time.perf_counter() - started) * 1e3)
                cpu[name].append((time.process_time() - cpu_started) * 1e3)
        print(f"{mp:g} MP jpeg: receive_image (upload -> shown) old {common.median(wall['old']):.0f} ms "
              f"({common.median(cpu['old']):.0f} ms CPU), new {common.median(wall['new']):.0f} ms "
              f"({common.median(cpu['new']):.0f} ms CPU); new/old per round "
              f"{common.median([b / a for a, b in zip(wall['old'], wall['new'])]):.3f} (median of {args.repeat})")
    print(f"CPU share used by other processes: {foreign.share():.3f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    a = sub.add_parser("load-image", help="load_image of this tree vs an older image.py")
    a.add_argument("--old", required=True, help="path of the older sam_onnx/image.py")
    b = sub.add_parser("display-copy", help="upload with the display copy threaded vs serial")
    b.add_argument("--model-dir", help=f"default {common.STANDIN_DIR}")
    c = sub.add_parser("intake", help="upload step 1 (receive_image) of this tree vs an older service.py")
    c.add_argument("--old", required=True, help="path of the older sam_demo/service.py")
    c.add_argument("--old-view", help="path of the older sam_demo/view.py, if the older service needs it")
    c.add_argument("--model-dir", help=f"default {common.STANDIN_DIR}")
    for p in (a, b, c):
        p.add_argument("--sizes", type=float, nargs="+", default=[12.0, 24.0])
        p.add_argument("--repeat", type=int, default=6)
        p.add_argument("--photos", default=str(common.RESULTS / "photos"))
    args = parser.parse_args(argv)
    {"load-image": load_image_ab, "display-copy": display_copy_ab, "intake": intake_ab}[args.what](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
