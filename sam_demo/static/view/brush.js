// Brush and eraser: a plugin of the page's image view (main.js) that paints onto the selected object's mask.
//
// In the tool bar's Brush or Eraser mode the view hands the pointer to this plugin (view.registerMode): a
// press and drag (mouse, pen, or one finger; two fingers still pinch and pan) draws a stroke that the page
// shows at once in an overlay layer (view.addLayer), with no server round trip per pointer move. When the
// stroke ends it is sent as ONE `stroke` event {points: [[x, y], ...], radius, erase} in ORIGINAL pixels
// (pixel-index convention, through the view's transform, geometry.js); the radius is the brush size in
// screen (CSS) pixels converted at the current zoom. The server (app.stroke_event, sam_onnx.strokes) paints
// exactly the pixels whose centre lies within the radius of the polyline, after SAM's mask, one undo step
// per stroke. Enter paints a dot of the brush's size at the keyboard cursor.
//
// What is drawn here is what is sent: the polyline of the recorded points (each clamped to the image),
// stroked with round joins and caps 2 * radius wide. Where the brush adds, the new area is tinted in the
// object's colour; where the eraser removes part of the object's mask, the photo shows again. A finished
// stroke stays drawn until a scene holding it is drawn (the object's `strokes` count reaches it), the server
// refuses it (a message), or PENDING_TIMEOUT_MS pass: the final picture is always the server's.
//
// Eraser: its own mode (key E), as the separate eraser tool of CVAT, Label Studio, GIMP and Photoshop, and
// because a touch screen has no modifier key; holding Ctrl while painting swaps brush and eraser for that
// stroke, as X-AnyLabeling's brush does (Ctrl erases). Size: `[` smaller, `]` larger, or the slider under
// the picture; the brush's outline follows the pointer.

import {SMOOTH_BELOW, deviceRect} from './render.js';

export const MODES = {brush: false, eraser: true};   // view mode name -> the stroke erases
export const SIZE_MIN_CSS = 2;                        // brush diameter on screen, CSS px
export const SIZE_MAX_CSS = 200;
export const SIZE_DEFAULT_CSS = 24;
export const SIZE_STEP = 1.25;                        // one [ or ] press: this factor smaller or larger
export const SLIDER_STEPS = 100;                      // the size slider is logarithmic over this many steps
export const MIN_MOVE_CSS = 1;                        // a pointer move shorter than this adds no point
export const MAX_STROKE_POINTS = 1000;                // sam_onnx.strokes.MAX_STROKE_POINTS: longer -> several
export const MIN_RADIUS = 0.5;                        // sam_onnx.strokes.MIN_RADIUS / MAX_RADIUS, original px
export const MAX_RADIUS = 1000;
export const COORD_DIGITS = 3;                        // decimals sent (the scene's, 1/1000 original px)
export const PENDING_TIMEOUT_MS = 15000;              // a stroke the server never answered stops being drawn
export const MIN_PREVIEW_OPACITY = 0.3;               // the painted area stays visible at a low mask opacity
export const OUTLINE_DARK_CSS = 3;                    // the brush outline: a white ring on a dark one
export const OUTLINE_LIGHT_CSS = 1.5;
export const SIZE_STORAGE_KEY = 'sam-brush-size';     // localStorage: the size chosen last in this browser
export const ERASE_MODIFIER = 'ctrlKey';              // held at the press: brush <-> eraser for that stroke
export const LAYER = 'sam-brush';

export function clampSize(size) {
  return Math.min(Math.max(Math.round(size), SIZE_MIN_CSS), SIZE_MAX_CSS);
}

// The slider's position (0..SLIDER_STEPS) of a size, and back: equal steps are equal ratios.
export function sizeToSlider(size) {
  return Math.round(SLIDER_STEPS * Math.log(clampSize(size) / SIZE_MIN_CSS) / Math.log(SIZE_MAX_CSS / SIZE_MIN_CSS));
}
export function sliderToSize(value) {
  return clampSize(SIZE_MIN_CSS * Math.pow(SIZE_MAX_CSS / SIZE_MIN_CSS, Number(value) / SLIDER_STEPS));
}

// The radius in original px of a brush `sizeCss` wide on screen at transform `t`, within the server's limits.
export function radiusOriginal(sizeCss, t) {
  return Math.min(Math.max(t.lengthToOriginal(sizeCss / 2), MIN_RADIUS), MAX_RADIUS);
}

function round(v) {
  const k = 10 ** COORD_DIGITS;
  return Math.round(v * k) / k;
}

// The original pixel-index position under css (cx, cy), clamped to the image's edges (a drag may leave it).
export function strokePoint(t, cx, cy) {
  const [x, y] = t.cssToOriginal(cx, cy);
  return [round(Math.min(Math.max(x, -0.5), t.W - 0.5)), round(Math.min(Math.max(y, -0.5), t.H - 0.5))];
}

// A polyline cut into pieces of at most `max` points; consecutive pieces share their joining point, so the
// pieces paint exactly what the whole does.
export function pieces(points, max = MAX_STROKE_POINTS) {
  if (points.length <= max) return [points];
  const out = [];
  for (let start = 0; start < points.length - 1; start += max - 1) out.push(points.slice(start, start + max));
  return out;
}

// The stroke's shape (opaque white) on a context whose transform maps css to its pixels.
function trace(g, t, stroke) {
  const width = 2 * t.lengthToCss(stroke.radius);
  const css = stroke.points.map(([x, y]) => t.originalToCss(x, y));
  g.fillStyle = g.strokeStyle = '#fff';
  if (css.length === 1) {
    g.beginPath();
    g.arc(css[0][0], css[0][1], width / 2, 0, 2 * Math.PI);
    g.fill();
    return;
  }
  g.lineWidth = width;
  g.lineCap = 'round';
  g.lineJoin = 'round';
  g.beginPath();
  g.moveTo(css[0][0], css[0][1]);
  for (const [x, y] of css.slice(1)) g.lineTo(x, y);
  g.stroke();
}

class Brush {
  constructor(view) {
    this.view = view;
    this.size = clampSize(Number(localStorage.getItem(SIZE_STORAGE_KEY)) || SIZE_DEFAULT_CSS);
    this.active = null;    // the stroke being drawn: {objectId, points, radius, erase, last: [cx, cy]}
    this.pending = [];     // sent, not yet in a drawn scene: {objectId, points, radius, erase, expect, timer}
    this.hover = null;     // where the pointer (or keyboard cursor) is: {cx, cy} css
    this.scratch = [];     // two canvases for compositing the preview
    for (const [mode, erase] of Object.entries(MODES)) view.registerMode(mode, this.handlers(erase));
    view.addLayer(LAYER, (g, frame) => this.draw(g, frame));
    this.installControl();
    view.on('hover', (p) => this.moved(p));
    view.on('leave', () => { this.hover = null; if (this.mode) view.redraw(); });
    view.on('drawn', () => this.drawn());
    view.on('message', (m) => { if (m.error) this.dropPending(() => true); });
    view.on('scene', () => this.sync());
    document.addEventListener('change', (e) => {  // after Gradio has unchecked the previous choice
      if (e.target instanceof Element && e.target.closest('#mode')) setTimeout(() => this.sync(), 0);
    });
    document.addEventListener('keydown', (e) => this.key(e));
    this.sync();
  }

  get mode() { return this.view.mode in MODES ? this.view.mode : null; }

  // The view's input mode follows the tool bar's choice (view.promptMode reads the radio).
  sync() {
    const chosen = this.view.promptMode();
    const mode = chosen in MODES ? chosen : null;
    if (mode !== this.mode) this.view.setMode(mode);
    this.control.hidden = !mode;
    this.name.textContent = mode === 'eraser' ? 'Eraser' : 'Brush';
    this.view.redraw();
  }

  // ------------------------------------------------------------------ size
  installControl() {
    const el = this.control = document.createElement('label');
    el.className = 'sam-brush';
    el.title = 'Brush size on screen: [ smaller, ] larger';
    this.name = document.createElement('span');
    this.slider = document.createElement('input');
    Object.assign(this.slider, {type: 'range', min: 0, max: SLIDER_STEPS, step: 1});
    this.slider.setAttribute('aria-label', 'Brush size');
    this.readout = document.createElement('output');
    el.append(this.name, this.slider, this.readout);
    this.slider.addEventListener('input', () => this.setSize(sliderToSize(this.slider.value)));
    this.view.addControl(el);
    this.setSize(this.size);
  }

  setSize(size) {
    this.size = clampSize(size);
    this.slider.value = String(sizeToSlider(this.size));
    this.slider.setAttribute('aria-valuetext', `${this.size} pixels`);
    this.readout.textContent = `${this.size} px`;
    try { localStorage.setItem(SIZE_STORAGE_KEY, String(this.size)); } catch (err) { /* private mode */ }
    this.view.redraw();
  }

  key(e) {
    if (!this.mode || e.ctrlKey || e.metaKey || e.altKey || (e.key !== '[' && e.key !== ']')) return;
    const t = e.target;
    if (t && (t.isContentEditable || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' ||
              (t.tagName === 'INPUT' && !['radio', 'checkbox', 'range', 'button', 'submit'].includes(t.type)))) return;
    this.setSize(e.key === ']' ? Math.max(this.size + 1, this.size * SIZE_STEP) : Math.min(this.size - 1, this.size / SIZE_STEP));
    e.preventDefault();
  }

  // ------------------------------------------------------------------ input
  handlers(erase) {
    return {
      cursor: 'crosshair',
      onDown: (p) => this.down(p, erase !== !!(p.event && p.event[ERASE_MODIFIER])),
      onMove: (p) => this.move(p),
      onUp: (p) => this.up(p),
      onCancel: () => { this.active = null; this.view.redraw(); },
      onEnter: ({x, y}) => this.dab(x, y, erase),
    };
  }

  down(p, erase) {
    const view = this.view, t = view.geometry;
    if (!view.scene || !t || view.busy) return;
    this.active = {objectId: view.scene.selected, radius: radiusOriginal(this.size, t), erase,
                   points: [strokePoint(t, p.cx, p.cy)], last: [p.cx, p.cy]};
    this.hover = {cx: p.cx, cy: p.cy};
    view.redraw();
  }

  move(p) {
    this.hover = {cx: p.cx, cy: p.cy};
    const a = this.active;
    if (a && Math.hypot(p.cx - a.last[0], p.cy - a.last[1]) >= MIN_MOVE_CSS) {
      a.points.push(strokePoint(this.view.geometry, p.cx, p.cy));
      a.last = [p.cx, p.cy];
    }
    this.view.redraw();
  }

  up(p) {
    const a = this.active;
    if (!a) return;
    this.active = null;
    const end = strokePoint(this.view.geometry, p.cx, p.cy);
    const tail = a.points[a.points.length - 1];
    if (end[0] !== tail[0] || end[1] !== tail[1]) a.points.push(end);
    this.send(a);
  }

  dab(x, y, erase) {
    const view = this.view, t = view.geometry;
    if (!view.scene || !t || view.busy) return;
    this.send({objectId: view.scene.selected, radius: radiusOriginal(this.size, t), erase, points: [[x, y]]});
  }

  moved(p) {
    if (!this.mode) return;
    const t = this.view.geometry;
    if (p.cx !== undefined) this.hover = {cx: p.cx, cy: p.cy};
    else if (t) { const [cx, cy] = t.originalToCss(p.x, p.y); this.hover = {cx, cy}; }
    this.view.redraw();
  }

  // ------------------------------------------------------------------ to the server
  strokesOf(scene, objectId) {
    const obj = scene && scene.objects.find((o) => o.id === objectId);
    return obj ? obj.strokes || 0 : 0;
  }

  send(stroke) {
    const view = this.view;
    const mode = stroke.erase ? 'eraser' : 'brush';
    for (const points of pieces(stroke.points)) {
      const before = this.pending.filter((s) => s.objectId === stroke.objectId).length;
      const entry = {...stroke, points, token: view.latest && view.latest.image.token,
                     expect: this.strokesOf(view.latest, stroke.objectId) + before + 1};
      entry.timer = setTimeout(() => this.dropPending((s) => s === entry), PENDING_TIMEOUT_MS);
      this.pending.push(entry);
      const data = {points, radius: stroke.radius, erase: stroke.erase};
      view.emit('stroke', {mode, ...data});
      view.send('stroke', data);
    }
    view.redraw();
  }

  // A drawn scene holds a pending stroke once its object has as many strokes as expected (or the image or the
  // object is gone).
  drawn() {
    const scene = this.view.scene;
    this.dropPending((s) => {
      const obj = scene.objects.find((o) => o.id === s.objectId);
      return !obj || scene.image.token !== s.token || (obj.strokes || 0) >= s.expect;
    });
  }

  dropPending(which) {
    const keep = [];
    for (const s of this.pending) {
      if (which(s)) clearTimeout(s.timer); else keep.push(s);
    }
    if (keep.length !== this.pending.length) { this.pending = keep; this.view.redraw(); }
  }

  // ------------------------------------------------------------------ drawing
  canvasFor(k, w, h) {
    let c = this.scratch[k];
    if (!c) c = this.scratch[k] = document.createElement('canvas');
    if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
    const g = c.getContext('2d');
    g.setTransform(1, 0, 0, 1, 0, 0);
    g.globalCompositeOperation = 'source-over';
    g.globalAlpha = 1;
    g.clearRect(0, 0, w, h);
    return [c, g];
  }

  draw(g, frame) {
    const strokes = this.active ? [...this.pending, this.active] : this.pending;
    const ids = [...new Set(strokes.map((s) => s.objectId))];
    for (const id of ids) {
      const obj = frame.objects.find((o) => o.id === id);
      if (obj && obj.visible) this.drawObject(g, frame, obj, strokes.filter((s) => s.objectId === id));
    }
    if (this.mode && this.hover && frame.t === this.view.geometry) this.drawOutline(g, frame.t);
  }

  // The object's strokes in order: `added` = what they paint that the mask lacks (tinted in its colour),
  // `removed` = what they erase of the mask (the photo drawn again there); the last stroke wins a pixel.
  drawObject(g, frame, obj, strokes) {
    const {t, dpr} = frame;
    const w = g.canvas.width, h = g.canvas.height;
    const [added, ga] = this.canvasFor(0, w, h);
    const [removed, gr] = this.canvasFor(1, w, h);
    for (const [c, addsHere] of [[ga, true], [gr, false]]) {
      c.setTransform(dpr, 0, 0, dpr, 0, 0);
      for (const s of strokes) {
        c.globalCompositeOperation = s.erase === addsHere ? 'destination-out' : 'source-over';
        trace(c, t, s);
      }
      c.setTransform(1, 0, 0, 1, 0, 0);
      c.imageSmoothingEnabled = false;
    }
    if (obj.bitmap) {
      const [x0, y0, x1, y1] = deviceRect(obj.rect, t, dpr);
      ga.globalCompositeOperation = 'destination-out';
      ga.drawImage(obj.bitmap, x0, y0, x1 - x0, y1 - y0);
      gr.globalCompositeOperation = 'destination-in';
      gr.drawImage(obj.bitmap, x0, y0, x1 - x0, y1 - y0);
      if (frame.photo) {
        const [il, it, ir, ib] = t.imageCss();
        gr.globalCompositeOperation = 'source-in';
        gr.imageSmoothingEnabled = t.s * dpr < SMOOTH_BELOW;
        gr.imageSmoothingQuality = 'high';
        gr.drawImage(frame.photo, il * dpr, it * dpr, (ir - il) * dpr, (ib - it) * dpr);
      }
    } else {
      gr.clearRect(0, 0, w, h);  // nothing to erase
    }
    ga.globalCompositeOperation = 'source-in';
    ga.fillStyle = obj.colour;
    ga.fillRect(0, 0, w, h);
    const [vl, vt, vr, vb] = t.visibleCss();
    g.save();
    g.setTransform(1, 0, 0, 1, 0, 0);
    g.beginPath();
    g.rect(vl * dpr, vt * dpr, (vr - vl) * dpr, (vb - vt) * dpr);
    g.clip();
    g.imageSmoothingEnabled = false;
    g.drawImage(removed, 0, 0);
    g.globalAlpha = Math.max(frame.options.opacity, MIN_PREVIEW_OPACITY);
    g.drawImage(added, 0, 0);
    g.restore();
  }

  // The brush's outline where the pointer is: its true size (the radius sent, on screen).
  drawOutline(g, t) {
    const r = t.lengthToCss(radiusOriginal(this.size, t));
    const {cx, cy} = this.hover;
    for (const [width, colour] of [[OUTLINE_DARK_CSS, '#141414'], [OUTLINE_LIGHT_CSS, '#ffffff']]) {
      g.lineWidth = width;
      g.strokeStyle = colour;
      g.beginPath();
      g.arc(cx, cy, r, 0, 2 * Math.PI);
      g.stroke();
    }
  }
}

export function install(view) {
  if (!view.brush) view.brush = new Brush(view);
  return view.brush;
}
