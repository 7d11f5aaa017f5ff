// The decoder's prompt feeds, built as sam_onnx/prompts.py builds them (one object per call).
//
// Prompts come in ORIGINAL pixels of the upright image (x right, y down, pixel centre at the integer index)
// and go to the 1024 x 1024 model frame through the view's geometry.js (the one JS mirror of
// sam_onnx.geometry), rounded once to float32 as the server's float32 feed is.
// Three layouts, exactly as the server feeds them (docs/model-io.md):
//   points only : the object's points + one (0, 0) point with label -1, input_boxes [1, 0, 4]
//   box only    : input_points [1, 1, 0, 2], input_labels [1, 1, 0], input_boxes [1, 1, 4]
//   box + points: input_points [1, 1, N, 2], input_labels [1, 1, N], input_boxes [1, 1, 4], no pad point
// Pure functions; no DOM, no onnxruntime (the worker wraps the arrays in tensors).

// Served at /sam-page/js/ (sam_demo/page_decoder.py); the view's modules at /view/static/ (sam_demo/routes.py).
import { toModel } from '../../view/static/geometry.js';

/** Original pixels -> the model frame, as the float32 feed holds it (Geometry.to_model_xy). */
export function toModelXY([x, y], [h, w]) {
  const [mx, my] = toModel(x, y, w, h);
  return [Math.fround(mx), Math.fround(my)];
}

export const LABEL_NOT_A_POINT = -1;
export const PAD_POINT_XY = [0, 0];
export const MAX_POINTS = 32; // sam_onnx.types: at most 32 points per object

/** Box corners given in any order, as sam_onnx.types.Box stores them: [x0, y0, x1, y1] with x0 <= x1, y0 <= y1. */
export function sortedBox([ax, ay, bx, by]) {
  return [Math.min(ax, bx), Math.min(ay, by), Math.max(ax, bx), Math.max(ay, by)];
}

/**
 * Check a prompt object {points: [[x, y, label], ...], box: [x0, y0, x1, y1] | null} against the image.
 * Returns an error message, or null when the server would accept it too.
 */
export function promptProblem(prompts, originalHW) {
  const [h, w] = originalHW;
  const points = prompts.points || [];
  if (!points.length && !prompts.box) return 'no prompts';
  if (points.length > MAX_POINTS) return `more than ${MAX_POINTS} points`;
  // The same rules as sam_onnx.types: a point on a pixel (0 <= x < W), a box's edges in [0, W] x [0, H].
  for (const [x, y, label] of points) {
    const inside = Number.isFinite(x) && Number.isFinite(y) && x >= 0 && y >= 0 && x < w && y < h;
    if (!inside) return 'a point outside the image';
    if (label !== 0 && label !== 1) return 'a point label other than 0 or 1';
  }
  if (prompts.box) {
    const [x0, y0, x1, y1] = sortedBox(prompts.box);
    if (![x0, y0, x1, y1].every(Number.isFinite)) return 'a box corner that is not a number';
    if (x0 === x1 || y0 === y1) return 'a box without area';
    if (x0 < 0 || y0 < 0 || x1 > w || y1 > h) return 'a box outside the image';
  }
  return null;
}

/**
 * The three prompt feeds for one object.
 * @returns {{input_points: {data: Float32Array, dims: number[]},
 *            input_labels: {data: BigInt64Array, dims: number[]},
 *            input_boxes: {data: Float32Array, dims: number[]}}}
 */
export function decoderFeeds(prompts, originalHW) {
  const points = prompts.points || [];
  const box = prompts.box || null;
  const pad = box === null;
  const n = points.length + (pad ? 1 : 0);
  const xy = new Float32Array(n * 2);
  const labels = new BigInt64Array(n);
  points.forEach(([x, y, label], i) => {
    const [mx, my] = toModelXY([x, y], originalHW);
    xy[2 * i] = mx;
    xy[2 * i + 1] = my;
    labels[i] = BigInt(label);
  });
  if (pad) {
    xy[2 * (n - 1)] = PAD_POINT_XY[0];
    xy[2 * (n - 1) + 1] = PAD_POINT_XY[1];
    labels[n - 1] = BigInt(LABEL_NOT_A_POINT);
  }
  if (box === null) {
    return {
      input_points: { data: xy, dims: [1, 1, n, 2] },
      input_labels: { data: labels, dims: [1, 1, n] },
      input_boxes: { data: new Float32Array(0), dims: [1, 0, 4] },
    };
  }
  const [x0, y0, x1, y1] = sortedBox(box);
  const [bx0, by0] = toModelXY([x0, y0], originalHW);
  const [bx1, by1] = toModelXY([x1, y1], originalHW);
  return {
    input_points: { data: xy, dims: [1, 1, n, 2] },
    input_labels: { data: labels, dims: [1, 1, n] },
    input_boxes: { data: new Float32Array([bx0, by0, bx1, by1]), dims: [1, 1, 4] },
  };
}
