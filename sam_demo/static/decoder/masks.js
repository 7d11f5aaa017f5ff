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
 * @returns {{row0: number, col0: number, height: number, width: number, bits: Uint8Array, area: number}}
 *   bits[r * width + c] = 1 inside; everything outside the crop is outside the mask.
 */
export function maskCrop(logits, h, w, outHW) {
  const [outH, outW] = outHW;
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
  const empty = { row0: 0, col0: 0, height: 0, width: 0, bits: new Uint8Array(0), area: 0 };
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
  const bits = new Uint8Array(height * width);
  const rowValues = new Float32Array(band);
  let area = 0;
  for (let r = 0; r < height; r++) {
    const y = rowStart + r;
    const top = rows.i0[y] * w;
    const bottom = rows.i1[y] * w;
    const wr = rows.w[y];
    for (let k = 0; k < band; k++) {
      const a = logits[top + firstCol + k];
      rowValues[k] = f(a + f(f(logits[bottom + firstCol + k] - a) * wr));
    }
    const out = r * width;
    for (let c = 0; c < width; c++) {
      const x = colStart + c;
      const left = rowValues[cols.i0[x] - firstCol];
      const value = f(left + f(f(rowValues[cols.i1[x] - firstCol] - left) * cols.w[x]));
      if (value > MASK_THRESHOLD) { bits[out + c] = 1; area++; }
    }
  }
  return { row0: rowStart, col0: colStart, height, width, bits, area };
}
