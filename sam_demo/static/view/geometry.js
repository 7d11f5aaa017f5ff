// The ONE place where coordinates change frame on the page (mirrors sam_onnx/geometry.py).
//
// Frames (every coordinate names its frame):
// * original: pixels of the upright original image, (W, H). A point (x, y) is a pixel INDEX: the pixel's
//   centre is at (x, y); the image spans [-0.5, W - 0.5] x [-0.5, H - 0.5]. Prompts use it.
// * edges: the same frame shifted by half a pixel: the image spans [0, W] x [0, H] and pixel (x, y) covers
//   [x, x + 1) x [y, y + 1). Mask layer rectangles use it (sam_demo/layers.py). edge = index + 0.5.
// * display: pixels of the downscaled copy the page loads, (w, h); pixel-index convention, as original.
// * model: the 1024 x 1024 square SAM sees; the image is squashed into it (x_model = x * 1024 / W).
// * css: CSS pixels relative to the view's canvas element's top-left corner (what pointer events give,
//   minus the element's bounding rectangle); the canvas backing store has devicePixelRatio pixels per
//   CSS pixel.
//
// The view transform maps edges to css: css = t + edge * s (s = CSS px per original px, the same on both
// axes: the image keeps its aspect ratio on the page).

export const MODEL_SIDE = 1024;

// Original pixel index -> 1024 model frame (sam_onnx.geometry.Geometry.to_model_xy).
export function toModel(x, y, W, H) {
  return [x * MODEL_SIDE / W, y * MODEL_SIDE / H];
}

// 1024 model frame -> original pixel index (Geometry.to_original_xy).
export function fromModel(xm, ym, W, H) {
  return [xm * W / MODEL_SIDE, ym * H / MODEL_SIDE];
}

// One axis of DisplayFrame._map: pixel-index coordinate in a frame of `src` pixels -> one of `dst` pixels,
// clamped to [0, dst - 1].
function mapAxis(v, src, dst) {
  const out = src === dst ? v : (v + 0.5) * (dst / src) - 0.5;
  return Math.min(Math.max(out, 0), dst - 1);
}

// Display pixel index -> original pixel index, clamped (DisplayFrame.to_original_xy).
export function displayToOriginal(x, y, W, H, w, h) {
  return [mapAxis(x, w, W), mapAxis(y, h, H)];
}

// Original pixel index -> display pixel index, clamped (DisplayFrame.to_display_xy).
export function originalToDisplay(x, y, W, H, w, h) {
  return [mapAxis(x, W, w), mapAxis(y, H, h)];
}

// The original pixel (integer index) that contains an edge-frame position, clamped to the image.
export function pixelAt(edge, size) {
  return Math.min(Math.max(Math.floor(edge), 0), size - 1);
}

export const MIN_ZOOM = 1;
export const MAX_ZOOM = 64;
// Largest zoom (relative to the fit) at which one original pixel is at most MAX_PIXEL_CSS CSS px.
export const MAX_PIXEL_CSS = 48;

// The view transform of one image in a box of (boxW, boxH) CSS px.
//
// `fit` shows the whole image, never larger than the display copy's natural size (one display pixel per
// CSS pixel), centred, with its top-left corner on a whole CSS pixel. `zoom` is relative to the fit
// (1 = fit); (tx, ty) is where the image's edge origin lies in CSS px.
export class ViewTransform {
  constructor(W, H, w, h, boxW, boxH) {
    this.W = W; this.H = H; this.w = w; this.h = h;
    this.boxW = boxW; this.boxH = boxH;
    this.fitScale = Math.min(boxW / W, boxH / H, w / W);
    this.zoom = 1;
    this.s = this.fitScale;
    this.tx = Math.round((boxW - W * this.s) / 2);
    this.ty = Math.round((boxH - H * this.s) / 2);
  }

  // The display copy at its natural size in a box of exactly its size (one display pixel per CSS pixel):
  // the canonical frame of view snapshots (tests compare them with display-frame expectations).
  static natural(W, H, w, h) {
    const t = new ViewTransform(W, H, w, h, w, h);
    t.fitScale = t.s = w / W;
    t.tx = 0; t.ty = 0;
    return t;
  }

  // A copy (transforms are replaced, never mutated, so a drawn frame can remember the one it used).
  clone() {
    const t = Object.create(ViewTransform.prototype);
    return Object.assign(t, this);
  }

  get maxZoom() {
    return Math.max(MIN_ZOOM, Math.min(MAX_ZOOM, MAX_PIXEL_CSS / this.fitScale));
  }

  // edge frame -> css
  edgeToCss(ex, ey) { return [this.tx + ex * this.s, this.ty + ey * this.s]; }
  // css -> edge frame
  cssToEdge(cx, cy) { return [(cx - this.tx) / this.s, (cy - this.ty) / this.s]; }
  // original pixel index -> css (the pixel's centre)
  originalToCss(x, y) { return this.edgeToCss(x + 0.5, y + 0.5); }
  // css -> original pixel index (continuous, not clamped)
  cssToOriginal(cx, cy) { const [ex, ey] = this.cssToEdge(cx, cy); return [ex - 0.5, ey - 0.5]; }
  // a length (a brush radius): css px -> original px, and back
  lengthToOriginal(css) { return css / this.s; }
  lengthToCss(original) { return original * this.s; }
  // css -> the original pixel under it (integer index), or null outside the image
  cssToPixel(cx, cy) {
    const [ex, ey] = this.cssToEdge(cx, cy);
    if (ex < 0 || ey < 0 || ex >= this.W || ey >= this.H) return null;
    return [pixelAt(ex, this.W), pixelAt(ey, this.H)];
  }
  // The image's rectangle in css: [left, top, right, bottom].
  imageCss() { return [this.tx, this.ty, this.tx + this.W * this.s, this.ty + this.H * this.s]; }
  // The part of the image visible in the box, in css: [left, top, right, bottom].
  visibleCss() {
    const [l, t, r, b] = this.imageCss();
    return [Math.max(l, 0), Math.max(t, 0), Math.min(r, this.boxW), Math.min(b, this.boxH)];
  }
  // Original pixels per display pixel (>= 1): how coarse the display copy is.
  get displayStep() { return this.W / this.w; }

  // A transform zoomed to `zoom` (clamped) keeping the css point (cx, cy) fixed.
  zoomedAt(zoom, cx, cy) {
    const t = this.clone();
    t.zoom = Math.min(Math.max(zoom, MIN_ZOOM), this.maxZoom);
    const [ex, ey] = this.cssToEdge(cx, cy);
    t.s = this.fitScale * t.zoom;
    t.tx = cx - ex * t.s;
    t.ty = cy - ey * t.s;
    return t.clamped();
  }

  // A transform moved by (dx, dy) css px (clamped).
  panned(dx, dy) {
    const t = this.clone();
    t.tx += dx; t.ty += dy;
    return t.clamped();
  }

  // The image cannot leave the box: when it is larger than the box it covers it, else it is centred.
  clamped() {
    const t = this.clone();
    const iw = t.W * t.s, ih = t.H * t.s;
    t.tx = iw <= t.boxW ? Math.round((t.boxW - iw) / 2) : Math.min(0, Math.max(t.boxW - iw, t.tx));
    t.ty = ih <= t.boxH ? Math.round((t.boxH - ih) / 2) : Math.min(0, Math.max(t.boxH - ih, t.ty));
    return t;
  }

  // A transform that keeps the original pixel (x, y) inside the box with `margin` css px around it.
  showing(x, y, margin) {
    const [cx, cy] = this.originalToCss(x, y);
    let dx = 0, dy = 0;
    if (cx < margin) dx = margin - cx; else if (cx > this.boxW - margin) dx = this.boxW - margin - cx;
    if (cy < margin) dy = margin - cy; else if (cy > this.boxH - margin) dy = this.boxH - margin - cy;
    return dx || dy ? this.panned(dx, dy) : this;
  }

  // The same view in a new box size: the same zoom, centred on the same image point.
  resized(boxW, boxH) {
    const [ex, ey] = this.cssToEdge(this.boxW / 2, this.boxH / 2);
    const t = new ViewTransform(this.W, this.H, this.w, this.h, boxW, boxH);
    if (this.zoom === 1) return t;
    const z = t.clone();
    z.zoom = Math.min(this.zoom, t.maxZoom);
    z.s = t.fitScale * z.zoom;
    z.tx = boxW / 2 - ex * z.s;
    z.ty = boxH / 2 - ey * z.s;
    return z.clamped();
  }
}
