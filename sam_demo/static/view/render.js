// Draws a scene on the view's canvas: the photo, each visible object's mask layer coloured here with the
// chosen opacity, outlines one screen (device) pixel wide, the selected object on top with a white outline,
// point markers and boxes as vectors, a box's pending corner; plugin layers and overlays in between.
//
// Drawing order (as sam_demo/overlay.py drew it on the server before): the fills of the visible objects in
// list order with the selected one last (on top); the outlines of the others; the selected object's halo
// (white ring outside its edge, dark rim beyond) and outline; plugin overlays and layers; boxes and points of
// the others (objects found by "segment everything" draw none), then the selected object's; the pending
// corner; the rubber band of a drag. Frames: see geometry.js. All mask work is in device pixels of the canvas
// (css * devicePixelRatio), so an outline is one device pixel wide at any zoom.

export const DARK = '#141414';
export const WHITE = '#ffffff';
export const MARKER_RADIUS_CSS = 8;       // point marker radius, CSS px (constant on screen at any zoom)
export const MARKER_RIM_CSS = 1.5;        // dark rim around a marker
export const GLYPH_ARM = 0.55;            // half length of the +/- bars, as a fraction of the radius
export const GLYPH_HALF_THICKNESS = 0.13; // half thickness of the bars, as a fraction of the radius
export const BOX_LINE_CSS = 2;            // box outline in the object's colour, between two dark lines
export const CROSSHAIR_ARM_CSS = 12;      // pending corner crosshair half length
export const SMOOTH_BELOW = 2;            // photo smoothing while an original pixel spans fewer device px
export const POSITIVE = 1;

function canvas(w, h) {
  const c = document.createElement('canvas');
  c.width = Math.max(1, w); c.height = Math.max(1, h);
  return c;
}

// A layer's bitmap coloured: the object's colour where the mask is, transparent elsewhere (bitmap size).
export function colourise(bitmap, colour) {
  const c = canvas(bitmap.width, bitmap.height);
  const g = c.getContext('2d');
  g.drawImage(bitmap, 0, 0);
  g.globalCompositeOperation = 'source-in';
  g.fillStyle = colour;
  g.fillRect(0, 0, c.width, c.height);
  return c;
}

// Where a layer's edge-frame rectangle lies on the canvas, in device px (floats).
export function deviceRect(rect, t, dpr) {
  return [(t.tx + rect[0] * t.s) * dpr, (t.ty + rect[1] * t.s) * dpr,
          (t.tx + rect[2] * t.s) * dpr, (t.ty + rect[3] * t.s) * dpr];
}

const PAD = 3; // device px kept around a mask's visible part for the outline maths

// The mask drawn at device resolution over its visible part (plus PAD): {c, x, y} (canvas and its device
// position), or null when it is off screen.
function maskOnScreen(bitmap, rect, t, dpr, W, H) {
  const [x0, y0, x1, y1] = deviceRect(rect, t, dpr);
  const rx0 = Math.max(Math.floor(x0), -PAD) - PAD, ry0 = Math.max(Math.floor(y0), -PAD) - PAD;
  const rx1 = Math.min(Math.ceil(x1), W + PAD) + PAD, ry1 = Math.min(Math.ceil(y1), H + PAD) + PAD;
  if (rx1 <= rx0 || ry1 <= ry0 || rx1 < 0 || ry1 < 0 || rx0 > W || ry0 > H) return null;
  const c = canvas(rx1 - rx0, ry1 - ry0);
  const g = c.getContext('2d');
  g.imageSmoothingEnabled = false;
  g.drawImage(bitmap, x0 - rx0, y0 - ry0, x1 - x0, y1 - y0);
  return {c, x: rx0, y: ry0};
}

const CROSS = [[1, 0], [-1, 0], [0, 1], [0, -1]];

function copy(src) {
  const c = canvas(src.width, src.height);
  c.getContext('2d').drawImage(src, 0, 0);
  return c;
}

// Erosion by one device pixel (4-neighbourhood): a pixel stays where it and its 4 neighbours are inside.
function erode(src) {
  const c = copy(src);
  const g = c.getContext('2d');
  g.globalCompositeOperation = 'destination-in';
  for (const [dx, dy] of CROSS) g.drawImage(src, dx, dy);
  return c;
}

// Dilation by one device pixel (4-neighbourhood).
function dilate(src) {
  const c = copy(src);
  const g = c.getContext('2d');
  for (const [dx, dy] of CROSS) g.drawImage(src, dx, dy);
  return c;
}

// `a` minus `b`, painted `colour`.
function ring(a, b, colour) {
  const c = copy(a);
  const g = c.getContext('2d');
  g.globalCompositeOperation = 'destination-out';
  g.drawImage(b, 0, 0);
  g.globalCompositeOperation = 'source-in';
  g.fillStyle = colour;
  g.fillRect(0, 0, c.width, c.height);
  return c;
}

// The outline pieces of one object at the current transform: {x, y, inner, halo?, rim?} in device px.
export function outlines(bitmap, rect, t, dpr, W, H, colour, selected) {
  const m = maskOnScreen(bitmap, rect, t, dpr, W, H);
  if (!m) return null;
  const out = {x: m.x, y: m.y, inner: ring(m.c, erode(m.c), colour)};
  if (selected) {
    const d1 = dilate(m.c);
    out.halo = ring(d1, m.c, WHITE);
    out.rim = ring(dilate(d1), d1, DARK);
  }
  return out;
}

// ---------------------------------------------------------------------------- vectors (CSS px)
function clampInside(v, lo, hi, r) {
  if (hi - lo < 2 * r) return (lo + hi) / 2;
  return Math.min(Math.max(v, lo + r), hi - r);
}

// A point marker: a disc in the object's colour with a dark rim and a white + or -; a point nearer to the
// visible image's edge than the marker's radius is moved inward just enough to be drawn whole.
export function drawPoint(g, t, x, y, label, colour) {
  const [l, tp, r, b] = t.visibleCss();
  let [cx, cy] = t.originalToCss(x, y);
  if (cx < l || cx > r || cy < tp || cy > b) return;
  const R = MARKER_RADIUS_CSS, reach = R + MARKER_RIM_CSS;
  cx = clampInside(cx, l, r, reach);
  cy = clampInside(cy, tp, b, reach);
  g.beginPath();
  g.arc(cx, cy, R + MARKER_RIM_CSS / 2, 0, 2 * Math.PI);
  g.fillStyle = colour;
  g.fill();
  g.lineWidth = MARKER_RIM_CSS;
  g.strokeStyle = DARK;
  g.stroke();
  g.fillStyle = WHITE;
  const arm = R * GLYPH_ARM, half = R * GLYPH_HALF_THICKNESS;
  g.fillRect(cx - arm, cy - half, 2 * arm, 2 * half);
  if (label === POSITIVE) g.fillRect(cx - half, cy - arm, 2 * half, 2 * arm);
}

// A box (original pixel-index corners, inclusive pixels): a line in the object's colour between dark lines,
// on the edges of the pixels it spans.
export function drawBox(g, t, box, colour) {
  const [x0, y0] = t.edgeToCss(Math.min(box[0], box[2]), Math.min(box[1], box[3]));
  const [x1, y1] = t.edgeToCss(Math.max(box[0], box[2]) + 1, Math.max(box[1], box[3]) + 1);
  g.lineWidth = BOX_LINE_CSS + 2;
  g.strokeStyle = DARK;
  g.strokeRect(x0, y0, x1 - x0, y1 - y0);
  g.lineWidth = BOX_LINE_CSS;
  g.strokeStyle = colour;
  g.strokeRect(x0, y0, x1 - x0, y1 - y0);
}

// The first corner of a box being drawn: a white crosshair with a dark rim.
export function drawCrosshair(g, t, x, y) {
  const [cx, cy] = t.originalToCss(x, y);
  const a = CROSSHAIR_ARM_CSS;
  for (const [w, c] of [[4, DARK], [2, WHITE]]) {
    g.lineWidth = w;
    g.strokeStyle = c;
    g.beginPath();
    g.moveTo(cx - a, cy); g.lineTo(cx + a, cy);
    g.moveTo(cx, cy - a); g.lineTo(cx, cy + a);
    g.stroke();
  }
}

// A drag's rubber band between two original pixel-index corners (dashed, white on dark).
export function drawRubberBand(g, t, a, b) {
  const [x0, y0] = t.edgeToCss(Math.min(a[0], b[0]), Math.min(a[1], b[1]));
  const [x1, y1] = t.edgeToCss(Math.max(a[0], b[0]) + 1, Math.max(a[1], b[1]) + 1);
  g.lineWidth = 1;
  g.setLineDash([]);
  g.strokeStyle = DARK;
  g.strokeRect(x0 - 0.5, y0 - 0.5, x1 - x0 + 1, y1 - y0 + 1);
  g.setLineDash([4, 4]);
  g.strokeStyle = WHITE;
  g.strokeRect(x0 - 0.5, y0 - 0.5, x1 - x0 + 1, y1 - y0 + 1);
  g.setLineDash([]);
}

// The keyboard cursor: a square around the original pixel it is on (at least CURSOR_MIN_CSS wide), white on dark.
export const CURSOR_MIN_CSS = 14;
export function drawCursor(g, t, x, y) {
  const [l, tp] = t.edgeToCss(x, y);
  const [r, b] = t.edgeToCss(x + 1, y + 1);
  const cx = (l + r) / 2, cy = (tp + b) / 2, half = Math.max(CURSOR_MIN_CSS, r - l) / 2;
  for (const [w, c] of [[3, DARK], [1.5, WHITE]]) {
    g.lineWidth = w;
    g.strokeStyle = c;
    g.strokeRect(cx - half, cy - half, 2 * half, 2 * half);
    g.beginPath();
    g.moveTo(cx - half - 5, cy); g.lineTo(cx - half + 4, cy);
    g.moveTo(cx + half - 4, cy); g.lineTo(cx + half + 5, cy);
    g.moveTo(cx, cy - half - 5); g.lineTo(cx, cy - half + 4);
    g.moveTo(cx, cy + half - 4); g.lineTo(cx, cy + half + 5);
    g.stroke();
  }
}

// ---------------------------------------------------------------------------- the whole picture
const BASE = 'base'; // cache key of the picture under the overlays: {key, c (canvas), used (cache keys it drew from)}

// The photo, the objects' fills and their outlines, on a cleared context in device px.
function drawBase(g, frame, cache, used, order, tkey, W, H) {
  const {t, dpr} = frame;
  // the photo: the full-resolution copy when it is loaded and finer than the display copy on screen
  const [il, it, ir, ib] = t.imageCss();
  const photo = frame.photo;
  g.imageSmoothingEnabled = t.s * dpr < SMOOTH_BELOW;
  g.imageSmoothingQuality = 'high';
  g.drawImage(photo, il * dpr, it * dpr, (ir - il) * dpr, (ib - it) * dpr);
  // fills
  g.imageSmoothingEnabled = false;
  g.globalAlpha = frame.options.opacity;
  for (const o of order) {
    const key = `fill|${o.layerId}|${o.colour}`;
    used.add(key);
    let coloured = cache.get(key);
    if (!coloured) { coloured = colourise(o.bitmap, o.colour); cache.set(key, coloured); }
    const [x0, y0, x1, y1] = deviceRect(o.rect, t, dpr);
    g.drawImage(coloured, x0, y0, x1 - x0, y1 - y0);
  }
  g.globalAlpha = 1;
  // outlines: the others', then the selected object's halo and its own
  for (const o of order) {
    if (!frame.options.outline && !o.selected) continue;
    const key = `edge|${o.layerId}|${o.colour}|${o.selected}|${tkey}`;
    used.add(key);
    let edge = cache.get(key);
    if (edge === undefined) {
      edge = outlines(o.bitmap, o.rect, t, dpr, W, H, o.colour, o.selected);
      cache.set(key, edge);
    }
    if (!edge) continue;
    if (edge.rim) g.drawImage(edge.rim, edge.x, edge.y);
    if (edge.halo) g.drawImage(edge.halo, edge.x, edge.y);
    if (frame.options.outline) g.drawImage(edge.inner, edge.x, edge.y);
  }
}

// frame: {t, dpr, photo, objects: [{id, colour, visible, selected, auto, points, box, bitmap, rect, layerId}],
//         pending, options: {opacity, outline}, band: [a, b] | null, hooks: {overlays, layers}}
// cache: a Map the caller keeps between frames (coloured bitmaps and outlines).
export function drawFrame(cnv, frame, cache) {
  const {t, dpr} = frame;
  const g = cnv.getContext('2d');
  const W = cnv.width, H = cnv.height;
  g.setTransform(1, 0, 0, 1, 0, 0);
  g.globalAlpha = 1;
  g.globalCompositeOperation = 'source-over';
  g.clearRect(0, 0, W, H);
  if (!frame.photo) return;
  const used = new Set();
  const drawn = frame.objects.filter((o) => o.visible && o.bitmap);
  const order = [...drawn.filter((o) => !o.selected), ...drawn.filter((o) => o.selected)];
  const tkey = `${t.tx},${t.ty},${t.s},${dpr},${W},${H}`;
  // The layers under the plugins' overlays (photo, fills, outlines) change with the scene, the transform and the
  // options, not with an overlay (a live preview): they are drawn once into BASE and copied one to one after.
  const key = [tkey, frame.photo.currentSrc || frame.photo.src, frame.photo.naturalWidth ?? frame.photo.width,
               frame.options.opacity, frame.options.outline,
               ...order.map((o) => `${o.layerId}|${o.colour}|${o.selected}`)].join(';');
  let base = cache.get(BASE);
  if (!base || base.key !== key) {
    const c = base && base.c.width === W && base.c.height === H ? base.c : canvas(W, H);
    const b = c.getContext('2d');
    b.setTransform(1, 0, 0, 1, 0, 0);
    b.globalAlpha = 1;
    b.globalCompositeOperation = 'source-over';
    b.clearRect(0, 0, W, H);
    drawBase(b, frame, cache, used, order, tkey, W, H);
    base = {key, c};
  } else {
    for (const k of base.used) used.add(k);
  }
  base.used = used;
  cache.set(BASE, base);
  used.add(BASE);
  g.drawImage(base.c, 0, 0);

  // plugin overlays (bitmaps over an edge-frame rectangle) and layers (draw callbacks), in the order added
  for (const ov of frame.hooks.overlays.values()) {
    const [x0, y0, x1, y1] = deviceRect(ov.rect, t, dpr);
    g.globalAlpha = ov.opacity;
    g.imageSmoothingEnabled = false;
    g.drawImage(ov.bitmap, x0, y0, x1 - x0, y1 - y0);
    g.globalAlpha = 1;
  }
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  for (const draw of frame.hooks.layers.values()) {
    g.save();
    try { draw(g, frame); } catch (err) { console.error('view layer failed', err); }
    g.restore();
  }
  // vectors, clipped to the visible image
  const [vl, vt, vr, vb] = t.visibleCss();
  g.save();
  g.beginPath();
  g.rect(vl, vt, vr - vl, vb - vt);
  g.clip();
  const marked = frame.objects.filter((o) => o.visible && (o.selected || !o.auto));
  const vectorOrder = [...marked.filter((o) => !o.selected), ...marked.filter((o) => o.selected)];
  for (const o of vectorOrder) if (o.box) drawBox(g, t, o.box, o.colour);
  for (const o of vectorOrder) for (const [x, y, label] of o.points || []) drawPoint(g, t, x, y, label, o.colour);
  if (frame.pending) drawCrosshair(g, t, frame.pending[0], frame.pending[1]);
  if (frame.band) drawRubberBand(g, t, frame.band[0], frame.band[1]);
  g.restore();
  for (const key of [...cache.keys()]) if (!used.has(key)) cache.delete(key);
}
