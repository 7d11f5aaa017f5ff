// Low-res logits -> a mask at any size, as sam_onnx/postprocess.py computes it (pure functions).
//
// The decoder returns 3 candidates of 256 x 256 logits in the model frame. The server picks the candidate
// with the highest predicted IoU (numpy argmax: the first of equal maxima), upsamples its logits to the
// output size with half-pixel bilinear interpolation (PyTorch align_corners=False, no antialias) and keeps
// the pixels whose logit is > 0. mask_crop_from_logits computes only the rows and columns whose bilinear
// footprint reads a cell above the threshold (+ one cell of margin); this is the same, with the same
// float32 rounding at every step (Math.fround), so the result is the server's bit for bit.

export const MASK_THRESHOLD = 0;
export const MARGIN_CELLS = 1;

/** Index of the largest score; the first one on ties (numpy.argmax). */
export function bestIndex(scores) {
  let best = 0;
  for (let k = 1; k < scores.length; k++) if (scores[k] > scores[best]) best = k;
  return best;
}

/** Source indices and float32 weights of half-pixel linear interpolation along one axis (postprocess._axis_weights). */
export function axisWeights(nIn, nOut) {
  const i0 = new Int32Array(nOut);
  const i1 = new Int32Array(nOut);
  const w = new Float32Array(nOut);
  const ratio = nIn / nOut;
  for (let i = 0; i < nOut; i++) {
    const src = Math.max((i + 0.5) * ratio - 0.5, 0);
    const lo = Math.min(Math.floor(src), nIn - 1);
    i0[i] = lo;
    i1[i] = Math.min(lo + 1, nIn - 1);
    w[i] = src - lo; // stored as float32, like .astype(np.float32)
  }
  return { i0, i1, w };
}

// First output index whose footprint reaches cell `lo` / one past the last that reaches cell `hi`
// (postprocess._output_span: i0 and i1 are non-decreasing).
function outputSpan(lo, hi, i0, i1) {
  let start = 0;
  while (start < i1.length && i1[start] < lo) start++;
  let stop = i0.length;
  while (stop > 0 && i0[stop - 1] > hi) stop--;
  return [start, Math.max(start, stop)];
}

/**
 * The mask of one candidate at `outHW`, cropped to where it can be true.
 * @param {Float32Array} logits - the candidate's h*w logits (row-major), model frame
 * @param {number} h @param {number} w - low-res size (256 x 256)
 * @param {[number, number]} outHW - output size (display pixels)
 * @param {number|null} [inside] - null: `bits` (Uint8Array, 1 inside); a number (a packed RGBA pixel, e.g. the
 *   object's colour): `pixels` instead (Uint32Array, that value inside, 0 outside: an ImageData's buffer as is)
 * @returns {{row0: number, col0: number, height: number, width: number, bits?: Uint8Array,
 *            pixels?: Uint32Array, area: number}}
 *   bits[r * width + c] = 1 inside; everything outside the crop is outside the mask.
 */
export function maskCrop(logits, h, w, outHW, inside = null) {
  const [outH, outW] = outHW;
  const Out = inside === null ? Uint8Array : Uint32Array;
  const value = inside === null ? 1 : inside;
  const field = inside === null ? 'bits' : 'pixels';
  let loR = h, hiR = -1, loC = w, hiC = -1;
  for (let r = 0; r < h; r++) {
    const base = r * w;
    for (let c = 0; c < w; c++) {
      if (logits[base + c] > MASK_THRESHOLD) {
        if (r < loR) loR = r;
        if (r > hiR) hiR = r;
        if (c < loC) loC = c;
        if (c > hiC) hiC = c;
      }
    }
  }
  const empty = { row0: 0, col0: 0, height: 0, width: 0, [field]: new Out(0), area: 0 };
  if (hiR < 0) return empty;
  loR = Math.max(0, loR - MARGIN_CELLS); hiR = Math.min(h - 1, hiR + MARGIN_CELLS);
  loC = Math.max(0, loC - MARGIN_CELLS); hiC = Math.min(w - 1, hiC + MARGIN_CELLS);
  const rows = axisWeights(h, outH);
  const cols = axisWeights(w, outW);
  const [rowStart, rowStop] = outputSpan(loR, hiR, rows.i0, rows.i1);
  const [colStart, colStop] = outputSpan(loC, hiC, cols.i0, cols.i1);
  if (rowStop <= rowStart || colStop <= colStart) return empty;
  const height = rowStop - rowStart;
  const width = colStop - colStart;
  const firstCol = cols.i0[colStart];
  const lastCol = cols.i1[colStop - 1];
  const band = lastCol - firstCol + 1;
  const f = Math.fround;
  // Per output column of the crop: its two cells in the row band and its float32 weight; columns reading the same
  // two cells form a run (about outW / w columns each).
  const left = new Int32Array(width), right = new Int32Array(width), weight = new Float32Array(width);
  const runStart = [0];
  let weightsBelowOne = true;
  for (let c = 0; c < width; c++) {
    left[c] = cols.i0[colStart + c] - firstCol;
    right[c] = cols.i1[colStart + c] - firstCol;
    weight[c] = cols.w[colStart + c];
    if (!(weight[c] < 1)) weightsBelowOne = false;
    if (c && (left[c] !== left[c - 1] || right[c] !== right[c - 1])) runStart.push(c);
  }
  runStart.push(width);
  const runs = runStart.length - 1;
  const out = new Out(height * width);
  const rowValues = new Float32Array(band);
  let area = 0;
  for (let r = 0; r < height; r++) {
    const y = rowStart + r;
    const top = rows.i0[y] * w + firstCol;
    const bottom = rows.i1[y] * w + firstCol;
    const wr = rows.w[y];
    for (let k = 0; k < band; k++) {
      const a = logits[top + k];
      rowValues[k] = f(a + f(f(logits[bottom + k] - a) * wr));
    }
    const at = r * width;
    for (let run = 0; run < runs; run++) {
      const c0 = runStart[run], c1 = runStart[run + 1];
      const a = rowValues[left[c0]], b = rowValues[right[c0]];
      // Exact shortcuts of the float32 interpolation: between two values <= 0 it is <= 0 (or NaN); between two
      // finite values > 0 with a weight < 1 it is > 0 (a + (b - a) * w rounds to no less than the smaller).
      if (a <= 0 && b <= 0) continue;
      if (weightsBelowOne && a > 0 && b > 0 && a < Infinity && b < Infinity) {
        out.fill(value, at + c0, at + c1);
        area += c1 - c0;
        continue;
      }
      const d = f(b - a);
      for (let c = c0; c < c1; c++) {
        if (f(a + f(d * weight[c])) > MASK_THRESHOLD) { out[at + c] = value; area++; }
      }
    }
  }
  return { row0: rowStart, col0: colStart, height, width, [field]: out, area };
}
