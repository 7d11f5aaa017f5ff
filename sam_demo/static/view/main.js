// The page-side image view: draws the server's scene (sam_demo/scene.py) and turns pointer and keyboard
// input into `prompt` events in ORIGINAL pixels (geometry.js). Mounted by the view component's js_on_load
// (sam_demo/page.py: VIEW_BOOT), which hands over Gradio's `element`, `trigger`, `props` and `watch`.
//
// Plugin API (for the work packages that add previews, brushes, refine...): `element.samView` is the view;
//   view.on(name, cb) -> unsubscribe     names: 'hover' {x, y} | 'leave' {} (pointer over the image or gone),
//                                        'press' {x, y, button}, 'commit' {kind, x, y, x1?, y1?} (a prompt
//                                        is about to be sent), 'stroke' {mode, points} (a drag in a
//                                        registered input mode), 'scene' {scene}, 'transform' {t}, 'drawn' {}
//   view.addLayer(name, draw)            draw(ctx, frame) in CSS px after the masks, before the markers;
//                                        frame.t is the ViewTransform (geometry.js). removeLayer(name).
//   view.setOverlay(name, bitmap, rect, opacity = 1)   a bitmap (canvas/ImageBitmap) stretched over an
//                                        edge-frame rectangle [x0, y0, x1, y1] of ORIGINAL pixels (see
//                                        geometry.js); null bitmap removes it.
//   view.redraw()                        schedule a redraw (next animation frame).
//   view.geometry                        the current ViewTransform (css <-> original), view.scene the scene.
//   view.registerMode(name, {cursor, onDown(p), onMove(p), onUp(p)}) and view.setMode(name | null): an
//                                        input mode takes the pointer (p = {x, y, cx, cy, event}: original
//                                        pixel index and css); null gives it back to clicks and boxes.
//   view.send(name, data)                trigger a custom event of the component (names in page.VIEW_EVENTS).
// The server stays the single source of truth: plugins may paint, but only the scene is the picture.

import {ViewTransform} from './geometry.js';
import {drawFrame} from './render.js';

export const CLICK_SLOP_CSS = {mouse: 4, pen: 6, touch: 10};
// A press that moves less than this (CSS px) before release is a click; farther, it draws a box.
export const DOUBLE_CLICK_MS = 400;
export const DOUBLE_CLICK_CSS = 6;
// The second click of a double-click (within this time and distance of the first) adds nothing: one point.
export const LAYER_CACHE = 600;
// Decoded mask layers kept in the page beyond the current scene's (least recently used first out).

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
    this.modes = new Map();
    this.mode = null;
    this.band = null;
    this.drawnCount = 0;
    this.resyncAsked = null;
    this.lastClick = null;
    this.press = null;
    this.frameRequested = false;
    this.installInput();
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
  registerMode(name, handlers) { this.modes.set(name, handlers); }
  setMode(name) {
    this.mode = name && this.modes.has(name) ? name : null;
    this.canvas.style.cursor = (this.mode && this.modes.get(this.mode).cursor) || '';
  }
  get geometry() { return this.t; }
  send(name, data) { this.trigger(name, data); }

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
      this.scene = scene;
      this.box.dataset.state = 'image';
      delete this.box.dataset.loading;
      if (first) this.layout(true);
      this.draw();
      this.drawnCount += 1;
      this.box.dataset.drawn = String(this.drawnCount);
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

  frame() {
    const scene = this.scene;
    const objects = scene.objects.map((o) => {
      const entry = o.layer ? this.layers.get(o.layer.id) : null;
      return {id: o.id, colour: o.color, visible: o.visible, selected: o.selected, auto: o.auto,
              points: o.points, box: o.box, layerId: o.layer && o.layer.id, rect: o.layer && o.layer.rect,
              bitmap: entry && entry.bitmap};
    });
    return {t: this.t, dpr: this.dpr, photo: this.photo && this.photo.img, objects, pending: scene.pending,
            options: this.options(), band: this.band, hooks: {overlays: this.overlays, layers: this.hookLayers},
            scene};
  }

  draw() {
    if (!this.scene || !this.t) {
      drawFrame(this.canvas, {t: null, photo: null}, this.cache);
      return;
    }
    drawFrame(this.canvas, this.frame(), this.cache);
  }

  // ------------------------------------------------------------------ input
  point(e) {
    const r = this.canvas.getBoundingClientRect();
    const cx = e.clientX - r.left, cy = e.clientY - r.top;
    const pixel = this.t ? this.t.cssToPixel(cx, cy) : null;
    return {cx, cy, x: pixel ? pixel[0] : null, y: pixel ? pixel[1] : null, event: e};
  }

  commit(data) {
    this.emit('commit', data);
    this.trigger('prompt', data);
  }

  installInput() {
    const c = this.canvas;
    c.addEventListener('pointerdown', (e) => {
      if (!this.scene || (e.pointerType === 'mouse' && e.button !== 0)) return;
      const p = this.point(e);
      if (p.x === null) return;
      e.preventDefault();
      c.setPointerCapture(e.pointerId);
      this.press = {id: e.pointerId, type: e.pointerType, start: p, moved: false};
      this.emit('press', {x: p.x, y: p.y, button: e.button});
      if (this.mode) this.modes.get(this.mode).onDown?.(p);
    });
    c.addEventListener('pointermove', (e) => {
      const p = this.point(e);
      if (!this.press || this.press.id !== e.pointerId) {
        if (p.x === null) this.emit('leave', {}); else this.emit('hover', {x: p.x, y: p.y});
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
    const finish = (e, cancelled) => {
      if (!this.press || this.press.id !== e.pointerId) return;
      const press = this.press;
      this.press = null;
      const p = this.point(e);
      if (this.mode) { this.modes.get(this.mode).onUp?.(p); return; }
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
