// The page-side image view: draws the server's scene (sam_demo/scene.py) and turns pointer and keyboard
// input into `prompt` events in ORIGINAL pixels (geometry.js). Mounted by the view component's js_on_load
// (sam_demo/page.py: VIEW_BOOT), which hands over Gradio's `element`, `trigger`, `props` and `watch`.
//
// Plugin API (for the work packages that add previews, brushes, refine...): `element.samView` is the view;
//   view.on(name, cb) -> unsubscribe     names: 'hover' {x, y, cx?, cy?} | 'leave' {} (pointer over the image
//                                        or gone; cx, cy: its css position, absent for the keyboard cursor),
//                                        'press' {x, y, button}, 'commit' {kind, x, y, x1?, y1?} (a prompt
//                                        is about to be sent), 'stroke' {mode, points, ...} (a plugin's drag,
//                                        emitted by the plugin), 'scene' {scene}, 'transform' {t}, 'drawn' {},
//                                        'message' {text, error} (a message the page shows, e.g. a refusal)
//   view.addLayer(name, draw)            draw(ctx, frame) in CSS px after the masks, before the markers;
//                                        frame.t is the ViewTransform (geometry.js). removeLayer(name).
//   view.setOverlay(name, bitmap, rect, opacity = 1)   a bitmap (canvas/ImageBitmap) stretched over an
//                                        edge-frame rectangle [x0, y0, x1, y1] of ORIGINAL pixels (see
//                                        geometry.js); null bitmap removes it.
//   view.setLayerOverride(id, {bitmap, rect} | null)  draw object `id`'s mask from this bitmap (white on
//                                        transparent over an edge-frame rectangle of ORIGINAL pixels) instead of
//                                        its layer, exactly as layers are drawn (fill, outline); null: its layer.
//   view.redraw()                        schedule a redraw (next animation frame). view.lastDraw: {start, end}
//                                        (performance.now()) of the last frame drawn.
//   view.geometry                        the current ViewTransform (css <-> original), view.scene the scene.
//   view.registerMode(name, {cursor, onDown(p), onMove(p), onUp(p), onCancel(), onEnter(p)}) and
//                                        view.setMode(name | null): an input mode takes the pointer (p = {x, y,
//                                        cx, cy, event}: original pixel index and css); null gives it back to
//                                        clicks and boxes. onCancel: the press ended without a release (a
//                                        second finger started a pinch, the browser cancelled the pointer, or
//                                        the mode changed mid-press). onEnter({x, y}): Enter at the keyboard
//                                        cursor (instead of a click there).
//   view.addControl(element)             a plugin's control in the bar under the picture (left of the zoom).
//   view.send(name, data)                trigger a custom event of the component (names in page.VIEW_EVENTS).
// The server stays the single source of truth: plugins may paint, but only the scene is the picture.

import {ViewTransform} from './geometry.js';
import {drawFrame, drawCursor} from './render.js';

export const CLICK_SLOP_CSS = {mouse: 4, pen: 6, touch: 10};
// A press that moves less than this (CSS px) before release is a click; farther, it draws a box.
export const DOUBLE_CLICK_MS = 400;
export const DOUBLE_CLICK_CSS = 6;
// The second click of a double-click (within this time and distance of the first) adds nothing: one point.
export const LAYER_CACHE = 600;
// Decoded mask layers kept in the page beyond the current scene's (least recently used first out).
export const ZOOM_STEP = 1.5;          // one +/- press or key
export const WHEEL_ZOOM_PER_PX = 0.002; // zoom factor exp(-deltaY * this) per wheel event
export const PAN_KEY_CSS = 60;         // not used by arrows (they move the cursor); kept for plugins
export const CURSOR_STEP_CSS = 8;      // an arrow key moves the keyboard cursor this far on screen...
export const CURSOR_BIG_STEP = 8;      // ...times this with Shift
export const CURSOR_MARGIN_CSS = 24;   // the view pans to keep the cursor this far inside the box
export const FULL_RES_ABOVE = 1.0;     // load the full-resolution copy once a display pixel spans more device px
export const MODE_NAMES = {'+': 'include', '−': 'exclude', '▭': 'box', '✎': 'brush', '⌫': 'eraser'};
// The tool bar's mode choices by the first character of their label (app.MODE_LABELS); brush and eraser
// are input modes of the brush plugin (brush.js).

function parse(value) {
  if (!value || typeof value !== 'string') return null;
  try { return JSON.parse(value); } catch (err) { console.error('view: bad scene', err); return null; }
}

class View {
  constructor({element, trigger, props, watch, root}) {
    this.element = element;
    this.trigger = trigger;
    this.props = props;
    this.root = root;
    this.box = element.querySelector('.sam-view') || element;
    this.canvas = document.createElement('canvas');
    this.canvas.className = 'sam-canvas';
    this.box.appendChild(this.canvas);
    this.scene = null;        // the scene drawn
    this.latest = null;       // the newest scene received (drawn once its files have loaded)
    this.photo = null;        // {url, img}
    this.layers = new Map();  // layer id -> {bitmap, promise, error}
    this.cache = new Map();   // render.js's per-frame cache
    this.t = null;            // ViewTransform
    this.listeners = new Map();
    this.hookLayers = new Map();
    this.overlays = new Map();
    this.layerOverrides = new Map();  // object id -> {bitmap, rect, layerId}: drawn instead of its layer
    this.overrideCount = 0;
    this.modes = new Map();
    this.mode = null;
    this.band = null;
    this.drawnCount = 0;
    this.resyncAsked = null;
    this.lastClick = null;
    this.press = null;
    this.frameRequested = false;
    this.pointers = new Map();  // active touch pointers (pinch and two-finger pan)
    this.pinch = null;
    this.pan = null;
    this.space = false;
    this.cursor = null;         // keyboard cursor, original pixel [x, y]
    this.keyboard = false;      // the cursor is drawn: the view was reached or used with keys
    this.full = null;           // the full-resolution copy, loaded on demand
    this.installChrome();
    this.installInput();
    this.installKeys();
    new ResizeObserver(() => this.resize()).observe(this.box);
    document.addEventListener('input', (e) => this.optionChanged(e));
    document.addEventListener('change', (e) => this.optionChanged(e));
    watch('value', () => this.receive(parse(props.value)));
    this.receive(parse(props.value));
  }

  // ------------------------------------------------------------------ plugin API
  on(name, cb) {
    if (!this.listeners.has(name)) this.listeners.set(name, new Set());
    this.listeners.get(name).add(cb);
    return () => this.listeners.get(name).delete(cb);
  }
  emit(name, data) {
    for (const cb of this.listeners.get(name) || []) {
      try { cb(data); } catch (err) { console.error(`view ${name} listener failed`, err); }
    }
  }
  addLayer(name, draw) { this.hookLayers.set(name, draw); this.redraw(); }
  removeLayer(name) { this.hookLayers.delete(name); this.redraw(); }
  setOverlay(name, bitmap, rect, opacity = 1) {
    if (bitmap) this.overlays.set(name, {bitmap, rect, opacity}); else this.overlays.delete(name);
    this.redraw();
  }
  setLayerOverride(id, layer) {
    if (layer) {
      this.layerOverrides.set(id, {bitmap: layer.bitmap, rect: layer.rect, layerId: `page-${++this.overrideCount}`});
    }
    else this.layerOverrides.delete(id);
    this.redraw();
  }
  registerMode(name, handlers) { this.modes.set(name, handlers); }
  setMode(name) {
    const mode = name && this.modes.has(name) ? name : null;
    if (mode !== this.mode && this.press && this.mode) {  // a press in the old mode ends here, unused
      this.press = null;
      this.modes.get(this.mode).onCancel?.();
    }
    this.mode = mode;
    this.canvas.style.cursor = (this.mode && this.modes.get(this.mode).cursor) || '';
  }
  get geometry() { return this.t; }
  send(name, data) { this.trigger(name, data); }
  addControl(element) {
    element.classList.add('sam-plugin-control');
    this.bar.insertBefore(element, this.bar.firstChild);
  }

  // ------------------------------------------------------------------ scene
  receive(scene) {
    this.latest = scene;
    this.emit('scene', {scene});
    if (!scene) {
      this.scene = null;
      this.box.dataset.state = 'empty';
      this.photo = null;
      this.redraw();
      return;
    }
    this.box.dataset.loading = '1';
    this.load(scene).then(() => {
      if (this.latest !== scene) return;  // a newer scene arrived meanwhile: it will be drawn instead
      const first = !this.scene || this.scene.image.token !== scene.image.token;
      if (first) this.setBusy(null);
      this.scene = scene;
      this.box.dataset.state = 'image';
      delete this.box.dataset.loading;
      if (first) this.layout(true);
      this.draw();
      this.drawnCount += 1;
      this.box.dataset.drawn = String(this.drawnCount);
      this.describe(first);
      this.emit('drawn', {});
    }, (err) => {
      if (this.latest !== scene) return;
      console.warn('view: a file of the scene could not be loaded; asking for a fresh scene', err);
      if (this.resyncAsked !== scene) {
        this.resyncAsked = scene;
        this.trigger('resync', {});
      }
    });
  }

  url(path) { return this.root + path; }

  loadPhoto(scene) {
    const url = this.url(scene.image.display);
    if (this.photo && this.photo.url === url) return this.photo.promise;
    const img = new Image();
    img.decoding = 'async';
    const promise = new Promise((resolve, reject) => {
      img.onload = () => resolve(img);
      img.onerror = () => reject(new Error(`photo ${url} did not load`));
    });
    img.src = url;
    this.photo = {url, img, promise};
    this.full = null;
    this.box.style.setProperty('--sam-aspect', `${scene.image.w} / ${scene.image.h}`);
    this.box.style.setProperty('--sam-natural-h', `${scene.image.dh}px`);
    return promise;
  }

  loadLayer(scene, layer) {
    let entry = this.layers.get(layer.id);
    if (entry && !entry.error) {
      this.layers.delete(layer.id);  // most recently used last
      this.layers.set(layer.id, entry);
      return entry.promise;
    }
    const url = this.url(scene.image.layers + layer.id + '.png');
    entry = {bitmap: null, error: null};
    entry.promise = fetch(url, {credentials: 'same-origin'}).then((r) => {
      if (!r.ok) throw new Error(`layer ${layer.id}: HTTP ${r.status}`);
      return r.blob();
    }).then((blob) => createImageBitmap(blob)).then((bitmap) => {
      entry.bitmap = bitmap;
      return bitmap;
    }, (err) => { entry.error = err; throw err; });
    this.layers.set(layer.id, entry);
    return entry.promise;
  }

  load(scene) {
    const waits = [this.loadPhoto(scene)];
    for (const o of scene.objects) if (o.layer) waits.push(this.loadLayer(scene, o.layer));
    const keep = new Set(scene.objects.filter((o) => o.layer).map((o) => o.layer.id));
    let extra = this.layers.size - keep.size - LAYER_CACHE;
    for (const id of this.layers.keys()) {
      if (extra <= 0) break;
      if (!keep.has(id)) { this.layers.delete(id); extra -= 1; }
    }
    return Promise.all(waits);
  }

  // ------------------------------------------------------------------ layout and drawing
  resize() {
    if (!this.scene) return;
    this.layout(false);
    this.draw();
  }

  layout(reset) {
    const r = this.box.getBoundingClientRect();
    const w = Math.max(1, r.width), h = Math.max(1, r.height);
    const dpr = window.devicePixelRatio || 1;
    this.dpr = dpr;
    this.canvas.width = Math.round(w * dpr);
    this.canvas.height = Math.round(h * dpr);
    const im = this.scene.image;
    if (reset || !this.t || this.t.W !== im.w || this.t.H !== im.h) {
      this.t = new ViewTransform(im.w, im.h, im.dw, im.dh, w, h);
    } else if (this.t.boxW !== w || this.t.boxH !== h) {
      this.t = this.t.resized(w, h);
    }
    this.emit('transform', {t: this.t});
  }

  options() {
    const opts = {...((this.scene && this.scene.view) || {opacity: 0.5, outline: true})};
    const range = document.querySelector('#opacity input[type=range]');
    if (range) opts.opacity = Number(range.value);
    const check = document.querySelector('#contour input[type=checkbox]');
    if (check) opts.outline = check.checked;
    return opts;
  }

  optionChanged(e) {
    const target = e.target;
    if (target instanceof Element && target.closest('#opacity, #contour')) this.redraw();
  }

  redraw() {
    if (this.frameRequested) return;
    this.frameRequested = true;
    requestAnimationFrame(() => { this.frameRequested = false; this.draw(); });
  }

  // The photo to draw: the full-resolution copy once it is loaded and the display copy is coarser than the
  // screen (a display pixel spans more than FULL_RES_ABOVE device pixels); asks for it when it is needed.
  photoFor(t) {
    const coarse = t.s * this.dpr * t.displayStep > FULL_RES_ABOVE && t.w < t.W;
    if (!coarse) return this.photo && this.photo.img;
    if (!this.full && this.scene) {
      const img = new Image();
      img.decoding = 'async';
      const full = this.full = {img, ready: false, url: this.url(this.scene.image.full)};
      img.onload = () => { full.ready = true; this.redraw(); };
      img.src = full.url;
    }
    return this.full && this.full.ready ? this.full.img : this.photo && this.photo.img;
  }

  frame() {
    const scene = this.scene;
    const objects = scene.objects.map((o) => {
      const entry = o.layer ? this.layers.get(o.layer.id) : null;
      const over = this.layerOverrides.get(o.id);
      return {id: o.id, colour: o.color, visible: o.visible !== false, selected: !!o.selected, auto: !!o.auto,
              points: o.points, box: o.box, layerId: over ? over.layerId : o.layer && o.layer.id,
              rect: over ? over.rect : o.layer && o.layer.rect, bitmap: over ? over.bitmap : entry && entry.bitmap};
    });
    return {t: this.t, dpr: this.dpr, photo: this.photoFor(this.t), objects, pending: scene.pending,
            options: this.options(), band: this.band, hooks: {overlays: this.overlays, layers: this.hookLayers},
            scene};
  }

  draw() {
    const start = performance.now();
    try { this.drawScene(); } finally { this.lastDraw = {start, end: performance.now()}; }
  }

  drawScene() {
    if (!this.scene || !this.t) {
      drawFrame(this.canvas, {t: null, photo: null}, this.cache);
      return;
    }
    const f = this.frame();
    drawFrame(this.canvas, f, this.cache);
    if (this.cursor && this.keyboard && document.activeElement === this.box) {
      const g = this.canvas.getContext('2d');
      g.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
      drawCursor(g, this.t, this.cursor[0], this.cursor[1]);
    }
    this.zoomLabel.textContent = `${Math.round(this.t.zoom * 100) / 100}×`;
  }

  // ------------------------------------------------------------------ zoom and pan
  setTransform(t) {
    this.t = t;
    this.zoomLabel.textContent = `${Math.round(t.zoom * 100) / 100}×`;
    this.emit('transform', {t});
    this.redraw();
  }
  zoomBy(factor, cx, cy) {
    if (!this.t) return;
    const x = cx ?? this.t.boxW / 2, y = cy ?? this.t.boxH / 2;
    this.setTransform(this.t.zoomedAt(this.t.zoom * factor, x, y));
  }
  zoomTo(zoom, cx, cy) { if (this.t) this.setTransform(this.t.zoomedAt(zoom, cx ?? this.t.boxW / 2, cy ?? this.t.boxH / 2)); }
  resetZoom() { if (this.t) this.setTransform(this.t.zoomedAt(1, this.t.boxW / 2, this.t.boxH / 2)); }
  panBy(dx, dy) { if (this.t) this.setTransform(this.t.panned(dx, dy)); }

  installChrome() {
    // on-screen zoom buttons and level, a description and a polite live region for screen readers
    const bar = this.bar = document.createElement('div');
    bar.className = 'sam-zoombar';
    const button = (label, title, action) => {
      const b = document.createElement('button');
      b.type = 'button'; b.textContent = label; b.title = title; b.setAttribute('aria-label', title);
      b.addEventListener('click', (e) => { e.stopPropagation(); action(); this.box.focus({preventScroll: true}); });
      bar.appendChild(b);
      return b;
    };
    this.zoomOut = button('−', 'Zoom out (-)', () => this.zoomBy(1 / ZOOM_STEP));
    this.zoomLabel = document.createElement('span');
    this.zoomLabel.className = 'sam-zoom-level';
    this.zoomLabel.setAttribute('aria-live', 'off');
    this.zoomLabel.textContent = '1×';
    bar.appendChild(this.zoomLabel);
    this.zoomIn = button('+', 'Zoom in (+)', () => this.zoomBy(ZOOM_STEP));
    this.zoomReset = button('⟲', 'Reset zoom (0)', () => this.resetZoom());
    this.box.after(bar);  // under the picture, never over it (a tap on any pixel of the image is a click)
    this.description = document.createElement('div');
    this.description.className = 'sam-sr';
    this.description.id = `sam-view-description-${Math.random().toString(36).slice(2, 9)}`;
    bar.after(this.description);  // outside the application role: read as plain text
    this.live = document.createElement('div');
    this.live.className = 'sam-sr';
    this.live.setAttribute('role', 'status');
    this.live.setAttribute('aria-live', 'polite');
    this.description.after(this.live);
    this.box.tabIndex = 0;
    this.box.setAttribute('role', 'application');
    this.box.setAttribute('aria-roledescription', 'image');
    this.box.setAttribute('aria-label', 'Image: no image open');
    this.box.setAttribute('aria-describedby', this.description.id);
    this.box.addEventListener('focus', () => {
      if (!this.pointerFocus) this.keyboard = true;  // reached with Tab, not by a click
      this.pointerFocus = false;
      if (this.scene && !this.cursor) this.cursorTo(this.t.W >> 1, this.t.H >> 1);
      this.redraw();
    });
    this.box.addEventListener('blur', () => this.redraw());
    this.busyNote = document.createElement('div');
    this.busyNote.className = 'sam-busy';
    this.busyNote.hidden = true;
    this.box.appendChild(this.busyNote);
    this.busy = null;
    const opening = 'Opening the new image…';
    document.addEventListener('change', (e) => {
      if (e.target instanceof Element && e.target.closest('#input_image') && e.target.files && e.target.files.length) {
        this.setBusy(opening);
      }
    }, true);
    document.addEventListener('click', (e) => {
      if (e.target instanceof Element && e.target.closest('#examples .gallery-item, #input_image button[aria-label^="Paste"]')) {
        this.setBusy(opening);
      }
    }, true);
    // errors (Gradio's toasts) are announced too; an error ends the wait for a new image
    new MutationObserver((records) => {
      for (const r of records) for (const n of r.addedNodes) {
        if (n instanceof Element) {
          const t = n.matches('[data-testid=toast-text]') ? n : n.querySelector('[data-testid=toast-text]');
          if (t && t.textContent.trim()) {
            this.announce(t.textContent.trim());
            this.emit('message', {text: t.textContent.trim(), error: /error/i.test(n.textContent)});
            if (this.busy && /error/i.test(n.textContent)) this.setBusy(null);
          }
        }
      }
    }).observe(document.body, {childList: true, subtree: true});
  }

  promptMode() {
    const checked = document.querySelector('#mode input[type=radio]:checked');
    const label = checked ? (checked.closest('label') || checked.parentElement).textContent.trim() : '';
    const found = Object.keys(MODE_NAMES).find((k) => label.startsWith(k));
    return found ? MODE_NAMES[found] : 'include';
  }

  announce(text) {
    // re-set the text so that a repeated message is announced again
    this.live.textContent = '';
    requestAnimationFrame(() => { this.live.textContent = text; });
  }

  // The view's accessible name and description: what the image is, what is selected, where the cursor is;
  // with `announce`, the result of the edit is also said in the live region (first: a new image).
  describe(first, announce = true) {
    const s = this.scene;
    const im = s.image;
    const sel = s.objects.find((o) => o.selected);
    const masks = s.objects.filter((o) => o.layer && o.visible !== false).length;
    this.box.setAttribute('aria-label', `Image ${im.w} by ${im.h} pixels, ${masks} mask${masks === 1 ? '' : 's'} shown`);
    const parts = [];
    if (sel) {
      const n = (sel.points || []).length, k = sel.strokes || 0;
      parts.push(`${sel.name} selected: ${n} point${n === 1 ? '' : 's'}${sel.box ? ' and a box' : ''}` +
                 (k ? `, ${k} brush stroke${k === 1 ? '' : 's'}` : '') +
                 (sel.score != null ? `, mask score ${sel.score.toFixed(2)}` : ', no mask yet'));
    }
    const mode = this.promptMode();
    parts.push(`Mode ${mode}.`);
    if (this.mode === mode) parts.push('Enter paints a dot of the brush size at the cursor (the eraser erases ' +
                                       'one); [ and ] change the brush size.');
    if (s.pending) parts.push('Box: first corner placed, place the opposite corner.');
    if (this.cursor) parts.push(`Cursor at ${this.cursor[0]}, ${this.cursor[1]}.`);
    parts.push('Arrow keys move the cursor (Shift: faster), Enter places a point in the current mode (two Enters ' +
               'place a box), Escape cancels a half-drawn box, plus and minus zoom, 0 resets the zoom.');
    this.description.textContent = parts.join(' ');
    if (!announce) return;
    // the same result again (the upload's second scene once the encoder ran, a resync): nothing new to say, and
    // saying "no mask" then would talk over "Image ... open"
    const said = JSON.stringify([im.token, sel ? [sel.id, sel.points, sel.box, sel.score] : null, s.pending,
                                 s.objects.length]);
    if (!first && !this.note && said === this.said) return;
    this.said = said;
    const note = this.note ? `${this.note} ` : '';
    this.note = null;
    if (!first && sel) {
      const result = sel.score != null ? `${sel.name}: mask updated, score ${sel.score.toFixed(2)}` : `${sel.name}: no mask`;
      this.announce(note + result + (s.pending ? '. First corner placed.' : '.'));
    }
    else if (first) this.announce(`Image ${im.w} by ${im.h} pixels open.`);
  }

  // ------------------------------------------------------------------ keyboard
  cursorTo(x, y) {
    if (!this.t) return;
    this.cursor = [Math.min(Math.max(Math.round(x), 0), this.t.W - 1), Math.min(Math.max(Math.round(y), 0), this.t.H - 1)];
    const t = this.t.showing(this.cursor[0], this.cursor[1], CURSOR_MARGIN_CSS);
    if (t !== this.t) this.setTransform(t); else this.redraw();
    this.emit('hover', {x: this.cursor[0], y: this.cursor[1]});
    if (this.scene) this.describe(true, false);
  }

  installKeys() {
    this.box.addEventListener('keydown', (e) => {
      if (!this.scene || e.ctrlKey || e.metaKey || e.altKey) return;
      const arrows = {ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1]};
      let handled = true;
      const wasKeyboard = this.keyboard;
      this.keyboard = true;  // drawn from now on, for the keys this view handles
      if (arrows[e.key]) {
        const [dx, dy] = arrows[e.key];
        const step = Math.max(1, Math.round(CURSOR_STEP_CSS / this.t.s)) * (e.shiftKey ? CURSOR_BIG_STEP : 1);
        const [x, y] = this.cursor || [this.t.W >> 1, this.t.H >> 1];
        this.cursorTo(x + dx * step, y + dy * step);
      } else if (e.key === 'Enter' || e.key === ' ') {
        if (e.key === ' ') { handled = false; }
        else {
          if (!this.cursor) this.cursorTo(this.t.W >> 1, this.t.H >> 1);
          const enter = this.mode && this.modes.get(this.mode).onEnter;
          if (enter) enter({x: this.cursor[0], y: this.cursor[1]});
          else this.commit({kind: 'click', x: this.cursor[0], y: this.cursor[1]});
        }
      } else if (e.key === '+' || e.key === '=') this.zoomBy(ZOOM_STEP, ...this.cursorCss());
      else if (e.key === '-' || e.key === '_') this.zoomBy(1 / ZOOM_STEP, ...this.cursorCss());
      else if (e.key === '0') this.resetZoom();
      else if (e.key === 'Escape' && this.scene.pending) {
        const undo = document.getElementById('undo_btn');  // undo cancels a half-drawn box (and nothing else)
        if (undo) undo.click();
        this.note = 'Box cancelled.';  // said with the answer
      } else handled = false;
      if (handled) { e.preventDefault(); e.stopPropagation(); } else this.keyboard = wasKeyboard;
    });
    document.addEventListener('keydown', (e) => { if (e.key === ' ' && e.target === this.box) { this.space = true; e.preventDefault(); } });
    document.addEventListener('keyup', (e) => { if (e.key === ' ') this.space = false; });
  }

  cursorCss() { return this.cursor ? this.t.originalToCss(this.cursor[0], this.cursor[1]) : []; }

  // The scene as drawn now, at the display copy's natural size (one display pixel per canvas pixel, no
  // devicePixelRatio): a PNG data URL. For tests and plugins that compare with display-frame pixels.
  snapshot() {
    if (!this.scene) return null;
    const im = this.scene.image;
    const c = document.createElement('canvas');
    c.width = im.dw; c.height = im.dh;
    const f = this.frame();
    f.t = ViewTransform.natural(im.w, im.h, im.dw, im.dh);
    f.dpr = 1;
    f.band = null;
    drawFrame(c, f, new Map());
    return c.toDataURL('image/png');
  }

  // ------------------------------------------------------------------ input
  point(e) {
    const r = this.canvas.getBoundingClientRect();
    const cx = e.clientX - r.left, cy = e.clientY - r.top;
    const pixel = this.t ? this.t.cssToPixel(cx, cy) : null;
    return {cx, cy, x: pixel ? pixel[0] : null, y: pixel ? pixel[1] : null, event: e};
  }

  // While a new image is being opened (upload, paste or example), clicks on the old one are refused with a
  // visible message: the old image's work is about to be replaced.
  setBusy(text) {
    this.busy = text;
    this.busyNote.textContent = text || '';
    this.busyNote.hidden = !text;
  }

  commit(data) {
    if (this.busy) {
      this.busyNote.textContent = `${this.busy} Your click was not used: click again once it is shown.`;
      this.announce('The new image is still opening; the click was not used.');
      return;
    }
    this.emit('commit', data);
    this.trigger('prompt', data);
  }

  installInput() {
    const c = this.canvas;
    c.addEventListener('wheel', (e) => {
      if (!this.scene) return;
      e.preventDefault();
      const p = this.point(e);
      this.zoomBy(Math.exp(-e.deltaY * WHEEL_ZOOM_PER_PX), p.cx, p.cy);
    }, {passive: false});
    c.addEventListener('pointerdown', (e) => {
      if (!this.scene) return;
      const p = this.point(e);
      if (e.pointerType === 'touch') {
        this.pointers.set(e.pointerId, p);
        if (this.pointers.size === 2) {  // two fingers: pinch and pan; the first finger's press is no click
          if (this.press && this.mode) this.modes.get(this.mode).onCancel?.();  // nor a stroke
          this.press = null;
          this.band = null;
          const [a, b] = [...this.pointers.values()];
          this.pinch = {d: Math.hypot(a.cx - b.cx, a.cy - b.cy), cx: (a.cx + b.cx) / 2, cy: (a.cy + b.cy) / 2,
                        t: this.t};
          c.setPointerCapture(e.pointerId);
          return;
        }
      }
      if (e.button === 1 || (e.button === 0 && this.space)) {  // middle drag or space + drag pans
        e.preventDefault();
        c.setPointerCapture(e.pointerId);
        this.pan = {id: e.pointerId, cx: p.cx, cy: p.cy};
        return;
      }
      if (e.pointerType === 'mouse' && e.button !== 0) return;
      if (p.x === null) return;
      e.preventDefault();
      this.cursor = [p.x, p.y];  // the keyboard cursor follows the pointer (set first: focusing places it)
      this.keyboard = false;     // and is drawn only once keys are used
      this.pointerFocus = document.activeElement !== this.box;
      this.box.focus({preventScroll: true});
      c.setPointerCapture(e.pointerId);
      this.press = {id: e.pointerId, type: e.pointerType, start: p, moved: false};
      this.emit('press', {x: p.x, y: p.y, button: e.button});
      if (this.mode) this.modes.get(this.mode).onDown?.(p);
    });
    c.addEventListener('pointermove', (e) => {
      const p = this.point(e);
      if (this.pointers.has(e.pointerId)) this.pointers.set(e.pointerId, p);
      if (this.pinch && this.pointers.size === 2) {
        const [a, b] = [...this.pointers.values()];
        const d = Math.hypot(a.cx - b.cx, a.cy - b.cy), cx = (a.cx + b.cx) / 2, cy = (a.cy + b.cy) / 2;
        const start = this.pinch;
        const zoomed = start.t.zoomedAt(start.t.zoom * d / Math.max(1, start.d), start.cx, start.cy);
        this.setTransform(zoomed.panned(cx - start.cx, cy - start.cy));
        return;
      }
      if (this.pan && this.pan.id === e.pointerId) {
        this.panBy(p.cx - this.pan.cx, p.cy - this.pan.cy);
        this.pan.cx = p.cx; this.pan.cy = p.cy;
        return;
      }
      if (!this.press || this.press.id !== e.pointerId) {
        const early = this.rawHover === `${e.clientX},${e.clientY}`;  // pointerrawupdate emitted it already
        this.rawHover = null;
        if (early) return;
        if (p.x === null) this.emit('leave', {}); else this.emit('hover', {x: p.x, y: p.y, cx: p.cx, cy: p.cy});
        return;
      }
      if (this.mode) { this.modes.get(this.mode).onMove?.(p); return; }
      const s = this.press.start;
      const slop = CLICK_SLOP_CSS[this.press.type] ?? CLICK_SLOP_CSS.mouse;
      if (!this.press.moved && Math.hypot(p.cx - s.cx, p.cy - s.cy) < slop) return;
      this.press.moved = true;
      const end = this.clampedPixel(p);
      this.band = [[s.x, s.y], end];
      this.redraw();
    });
    // A pointer that hovers (not pressed) is reported as soon as the browser has it: `pointerrawupdate` (Chromium,
    // secure pages) is not held back to the next animation frame as `pointermove` is, which saves a live preview
    // up to a frame; the `pointermove` at the same position then emits nothing more.
    this.rawHover = null;
    if ('onpointerrawupdate' in window) {
      c.addEventListener('pointerrawupdate', (e) => {
        if (!this.scene || this.pinch || this.pan || this.press || this.pointers.has(e.pointerId)) return;
        const p = this.point(e);
        this.rawHover = `${e.clientX},${e.clientY}`;
        if (p.x === null) this.emit('leave', {}); else this.emit('hover', {x: p.x, y: p.y, cx: p.cx, cy: p.cy});
      });
    }
    const finish = (e, cancelled) => {
      this.pointers.delete(e.pointerId);
      if (this.pinch) { if (this.pointers.size < 2) this.pinch = null; return; }
      if (this.pan && this.pan.id === e.pointerId) { this.pan = null; return; }
      if (!this.press || this.press.id !== e.pointerId) return;
      const press = this.press;
      this.press = null;
      const p = this.point(e);
      if (this.mode) {
        const handlers = this.modes.get(this.mode);
        if (cancelled && handlers.onCancel) handlers.onCancel(); else handlers.onUp?.(p);
        return;
      }
      if (this.band) { this.band = null; this.redraw(); }
      if (cancelled) return;
      const s = press.start;
      if (press.moved) {
        const [x1, y1] = this.clampedPixel(p);
        if (x1 !== s.x && y1 !== s.y) this.commit({kind: 'box', x: s.x, y: s.y, x1, y1});
        return;
      }
      const now = performance.now();
      const last = this.lastClick;
      if (last && now - last.time < DOUBLE_CLICK_MS && Math.hypot(s.cx - last.cx, s.cy - last.cy) < DOUBLE_CLICK_CSS) {
        this.lastClick = null;  // the second half of a double-click: one point only
        return;
      }
      this.lastClick = {time: now, cx: s.cx, cy: s.cy};
      this.commit({kind: 'click', x: s.x, y: s.y});
    };
    c.addEventListener('pointerup', (e) => finish(e, false));
    c.addEventListener('pointercancel', (e) => finish(e, true));
    c.addEventListener('pointerleave', () => { if (!this.press) this.emit('leave', {}); });
    c.addEventListener('dragstart', (e) => e.preventDefault());
    c.addEventListener('contextmenu', (e) => { if (this.press) e.preventDefault(); });
  }

  // The original pixel under a css point, clamped into the image (a drag may end outside it).
  clampedPixel(p) {
    const [ex, ey] = this.t.cssToEdge(p.cx, p.cy);
    return [Math.min(Math.max(Math.floor(ex), 0), this.t.W - 1), Math.min(Math.max(Math.floor(ey), 0), this.t.H - 1)];
  }
}

export function mount(args) {
  const view = new View(args);
  args.element.samView = view;
  const host = args.element.closest('#display');  // the component's root (elem_id): where tests look
  if (host) host.samView = view;
  return view;
}
