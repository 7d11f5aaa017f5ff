"""Drive the page's own decoder (sam_demo/static/decoder) from a test or a benchmark, and read its masks back.

The page's modules are imported into a page of the running app (same origin, so the worker, onnxruntime-web
and the routes are the app's own); masks come back bit-packed (big-endian bit order, ``np.unpackbits``).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

START_JS = """async (cfg) => {
  const root = location.origin + '/';
  const { PageDecoder, resolveUrls } = await import(new URL(cfg.clientUrl, root).href);
  window.__samRoot = root;
  window.__samResolve = resolveUrls;
  const started = performance.now();
  window.__samDecoder = await PageDecoder.start(resolveUrls(cfg, root));
  return { ...window.__samDecoder.info, startMs: performance.now() - started,
           isolated: self.crossOriginIsolated };
}"""

LOAD_JS = """async (image) => {
  const started = performance.now();
  await window.__samDecoder.loadImage(window.__samResolve(image, window.__samRoot));
  return { ms: performance.now() - started, bytesFetched: window.__samDecoder.bytesFetched };
}"""

DECODE_JS = """async ({ key, originalHW, outHW, prompts }) => {
  const pack = (bits) => {
    const out = new Uint8Array(Math.ceil(bits.length / 8));
    for (let i = 0; i < bits.length; i++) if (bits[i]) out[i >> 3] |= 128 >> (i & 7);
    let text = '';
    for (let i = 0; i < out.length; i += 8192) text += String.fromCharCode(...out.subarray(i, i + 8192));
    return btoa(text);
  };
  const results = [];
  for (const p of prompts) {
    const r = await window.__samDecoder.decode({ key, prompts: p, originalHW, outHW });
    results.push({ scores: r.scores, best: r.best, objectScore: r.objectScore, ms: r.ms,
                   crop: { row0: r.crop.row0, col0: r.crop.col0, height: r.crop.height, width: r.crop.width,
                           area: r.crop.area, bits: pack(r.crop.bits) } });
  }
  return results;
}"""


def start(page, config: dict[str, Any]) -> dict[str, Any]:
    """Start the page decoder in ``page`` (already on the app); returns its info (threads, isolated, ...)."""
    return page.evaluate(START_JS, config)


def load_image(page, key: str, urls: dict[str, str]) -> dict[str, Any]:
    """Bring an image's embeddings into the page decoder (``urls`` from ``PageDecoderAssets.embeddings_urls``)."""
    return page.evaluate(LOAD_JS, {"key": key, **urls})


def decode(page, key: str, original_hw: Sequence[int], out_hw: Sequence[int],
           prompts: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Decode each prompt dict (``Prompts.to_dict()`` form) in the page, one after another."""
    return page.evaluate(DECODE_JS, {"key": key, "originalHW": list(original_hw), "outHW": list(out_hw),
                                     "prompts": list(prompts)})


def page_mask(result: dict[str, Any], out_hw: Sequence[int]) -> NDArray[np.bool_]:
    """The full ``out_hw`` bool mask of one page result (its crop pasted into an empty mask)."""
    crop = result["crop"]
    mask = np.zeros(tuple(out_hw), bool)
    h, w = crop["height"], crop["width"]
    if h and w:
        bits = np.unpackbits(np.frombuffer(base64.b64decode(crop["bits"]), np.uint8), count=h * w).astype(bool)
        mask[crop["row0"]:crop["row0"] + h, crop["col0"]:crop["col0"] + w] = bits.reshape(h, w)
    return mask


def iou(a: NDArray[np.bool_], b: NDArray[np.bool_]) -> float:
    """Intersection over union of two masks (1.0 when both are empty)."""
    union = int((a | b).sum())
    return 1.0 if union == 0 else int((a & b).sum()) / union


def parity_prompts(original_hw: Sequence[int], seed: int = 0) -> list[dict[str, Any]]:
    """The issue's parity set, in original pixels: 20 hovered points, 5 include+exclude layouts, 5 boxes."""
    h, w = original_hw
    rng = np.random.default_rng(seed)

    def point(label: int) -> list[float]:
        return [float(rng.uniform(0, w - 1)), float(rng.uniform(0, h - 1)), label]

    prompts = [{"points": [point(1)], "box": None} for _ in range(20)]
    for count in range(5):
        prompts.append({"points": [point(1), point(0)] + [point(int(k % 2)) for k in range(count)], "box": None})
    for _ in range(5):
        x0, x1 = sorted(rng.uniform(0, w, 2))
        y0, y1 = sorted(rng.uniform(0, h, 2))
        corners = [x1, y1, x0, y0] if rng.uniform() < 0.5 else [x0, y0, x1, y1]  # either drag direction
        prompts.append({"points": [], "box": [float(v) for v in corners]})
    return prompts
