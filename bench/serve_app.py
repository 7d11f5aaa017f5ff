"""Run ``app.py`` (its real ``main``) for the browser benchmark, with optional bench-only swaps.

    python -m bench.serve_app [--masks blobs|model] [--gallery-format FMT] -- APP_ARGS...

``--masks blobs`` (default) replaces the decoder's mask logits with smooth
shapes around the prompts (see ``bench_pipeline.BlobMasks``): the stand-in
model's random weights give noise masks that no real model produces. The
decoder still runs. ``--gallery-format`` is a what-if for a proposed app
change (the candidate thumbnails' file format). Everything else is the
unchanged app.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    ours, app_argv = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else ([], argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--masks", choices=("blobs", "model"), default="blobs")
    parser.add_argument("--gallery-format", choices=("webp", "jpeg", "png"))
    args = parser.parse_args(ours)
    if args.masks == "blobs":
        from bench import common
        from bench.bench_pipeline import BlobMasks

        BlobMasks(common.Probe())
    import app

    if args.gallery_format:
        build = app.build_demo

        def build_demo(service):
            demo = build(service)
            for block in demo.blocks.values():
                if getattr(block, "elem_id", None) == "candidates":
                    block.format = args.gallery_format
            return demo

        app.build_demo = build_demo
    app.main(app_argv)


if __name__ == "__main__":
    main()
