// Live preview and instant click paint: a plugin of the page's image view (sam_demo/static/view/main.js).
//
// While the pointer moves over the image (include/exclude mode), the page decodes the selected object's
// prompts plus the hovered point with the mode's label (client.js: at most one decode in flight, stale
// positions dropped) and draws the mask lightly in the object's colour. In box mode, after the first corner,
// the preview follows the second corner. Leaving the image clears it. On a touch screen, pressing and holding
// shows the preview; releasing commits the point (the view turns the release into a click).
//
// A click paints the page's mask for the new prompts at once (the preview's, when it was for exactly these
// prompts); the server's scene replaces it as soon as a scene holding that click is drawn. The server stays
// the single source of truth: nothing computed here is sent to it, and the final picture is always the
// server's.
//
// Fallback: without WebAssembly, when onnxruntime-web fails to load, or when the page runs out of memory,
// previews stop, the app works as without them, and the notice says once why.

import { DecoderUnavailable, PageDecoder, resolveUrls, unsupportedReason } from './client.js';
import { MAX_POINTS } from './feeds.js';

export const TOGGLE_KEY = 'sam-live-preview';       // localStorage: 'off' turns previews off in this browser
export const PREVIEW_OPACITY = 0.35;                 // "lightly": the preview's fill opacity
export const INSTANT_TIMEOUT_MS = 15000;             // an instant paint the server never answered goes away
export const OVERLAY_PREVIEW = 'sam-preview';
export const OVERLAY_INSTANT = 'sam-instant';
const LABELS = { include: 1, exclude: 0 };
const SAME_XY = 1e-3;                                // scenes carry coordinates to 1/1000 px

/** The selected object of a scene, or null. */
export function selectedObject(scene) {
  if (!scene || scene.selected == null) return null;
  return scene.objects.find((o) => o.id === scene.selected) || null;
}

/**
 * Whether the page's whole-image decoder gives what the server shows for this object: not for one whose
 * mask is its own (refined in a crop, or edited with the brush: the scene says ``own_mask``).
 */
export function decodable(obj) {
  return !obj || !obj.own_mask;
}

/** The prompts of an object as plain values: {points: [[x, y, label], ...], box: [x0, y0, x1, y1] | null}. */
export function promptsOf(obj) {
  return { points: obj && obj.points ? obj.points.map((p) => [p[0], p[1], p[2]]) : [],
           box: obj && obj.box ? obj.box.slice() : null };
}

/**
 * The prompts a click at (x, y) gives, from `base` (what the server will hold when the click arrives), as
 * the server's editor makes them; null when it would decode nothing new (box mode before its first corner,
 * a box without area, too many points).
 */
export function promptsAfterClick(base, pending, mode, x, y) {
  if (mode === 'box') {
    if (!pending) return null;
    const [px, py] = pending;
    if (px === x || py === y) return null;
    return { points: base.points, box: [px, py, x, y] };
  }
  if (!(mode in LABELS) || base.points.length >= MAX_POINTS) return null;
  return { points: [...base.points, [x, y, LABELS[mode]]], box: base.box };
}

/** The prompts a box dragged from (x, y) to (x1, y1) gives (the object's box replaced, its points kept). */
export function promptsAfterBox(base, x, y, x1, y1) {
  return { points: base.points, box: [x, y, x1, y1] };
}

function near(a, b) {
  return Math.abs(a - b) <= SAME_XY;
}

/** Equal prompts (coordinates to the scene's precision). */
export function samePrompts(a, b) {
  if (!a || !b || a.points.length !== b.points.length || !a.box !== !b.box) return false;
  if (a.box && !a.box.every((v, i) => near(v, b.box[i]))) return false;
  return a.points.every((p, i) => near(p[0], b.points[i][0]) && near(p[1], b.points[i][1]) && p[2] === b.points[i][2]);
}

/** True when `earlier` could be a state before `later` in one tab's sequence of clicks (its points a prefix). */
export function isEarlierState(earlier, later) {
  if (earlier.points.length > later.points.length) return false;
  return earlier.points.every((p, i) => near(p[0], later.points[i][0]) && near(p[1], later.points[i][1]) &&
                                        p[2] === later.points[i][2]);
}

/** A mask bitmap (any colour, clear outside) as the server's layers are: white inside, clear outside. */
export function whiteMask(bitmap) {
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const g = canvas.getContext('2d');
  g.drawImage(bitmap, 0, 0);
  g.globalCompositeOperation = 'source-in';
  g.fillStyle = '#ffffff';
  g.fillRect(0, 0, canvas.width, canvas.height);
  return canvas;
}

/** The edge-frame rectangle of ORIGINAL pixels a display-pixel crop covers: [x0, y0, x1, y1] (geometry.js). */
export function cropRect(crop, image) {
  const sx = image.w / image.dw, sy = image.h / image.dh;
  return [crop.col0 * sx, crop.row0 * sy, (crop.col0 + crop.width) * sx, (crop.row0 + crop.height) * sy];
}

export class LivePreview {
  /**
   * @param {object} view - the image view (main.js): on(), setOverlay(), scene / latest, options(), element
   * @param {object} config - sam-page/config.json with absolute URLs: {enabled, reason?, ortUrl, ...}
   * @param {{notice: (text: string) => void, startDecoder?: (config) => Promise<PageDecoder>,
   *          mode?: () => string, storage?: Storage}} hooks - mode() says 'include' | 'exclude' | 'box'
   */
  constructor(view, config, hooks) {
    this.view = view;
    this.config = config;
    this.notice = hooks.notice;
    this.startDecoder = hooks.startDecoder || ((c) => PageDecoder.start(c));
    this.mode = hooks.mode || (() => (view.promptMode ? view.promptMode() : 'include'));
    this.storage = hooks.storage || localStorage;
    this.enabled = this.storage.getItem(TOGGLE_KEY) !== 'off';
    this.decoder = null;       // PageDecoder once started
    this.starting = null;      // its promise
    this.off = null;           // why previews are off for good (a DecoderUnavailable), or null
    this.image = null;         // {key, url, cacheUrl, ready: Promise}
    this.hover = null;         // {x, y}: the original pixel under the pointer, or null
    this.asked = null;         // the newest preview request
    this.shown = null;         // the preview request drawn now
    this.seq = 0;              // numbers requests, newest highest
    this.version = 0;          // counts drawn scenes: a result for an older version is not drawn
    this.expected = null;      // the selected object's prompts once the clicks sent so far arrive, or null
    this.instant = null;       // {prompts, timer, ...} of a click painted by the page
    this.stats = { asked: 0, previews: 0, stale: 0, instant: 0, instantFromPreview: 0 };
    this.unsubscribe = [
      view.on('scene', ({ scene }) => this.onScene(scene)),
      view.on('drawn', () => this.onDrawn()),
      view.on('hover', ({ x, y }) => this.onHover(x, y)),
      view.on('press', ({ x, y }) => this.onHover(x, y)),  // touch: press and hold shows the preview
      view.on('leave', () => this.onLeave()),
      view.on('commit', (data) => this.onCommit(data)),
    ];
    this.onModeChange = (e) => { if (e.target instanceof Element && e.target.closest('#mode')) this.refresh(); };
    document.addEventListener('change', this.onModeChange);
    if (view.latest) this.onScene(view.latest);
  }

  setEnabled(on) {
    this.enabled = on;
    this.storage.setItem(TOGGLE_KEY, on ? 'on' : 'off');
    if (!on) this.clear();
    else if (this.view.latest) this.onScene(this.view.latest);
  }

  get active() {
    return this.enabled && !this.off && !!this.config.enabled;
  }

  // ------------------------------------------------------------------ decoder and embeddings
  ensureDecoder() {
    if (!this.starting) {
      const unsupported = unsupportedReason();
      this.starting = unsupported ? Promise.reject(new DecoderUnavailable(unsupported, 'nowasm'))
        : this.startDecoder(this.config);
      this.starting.then((decoder) => {
        this.decoder = decoder;
        decoder.onFailure = (error) => this.turnOff(error);
      }, (error) => this.turnOff(error));
    }
    return this.starting;
  }

  turnOff(error) {
    if (this.off) return;
    this.off = error instanceof DecoderUnavailable ? error : new DecoderUnavailable(String(error?.message || error));
    this.clear();
    this.notice(`Live previews are off: ${this.off.reason}. Clicks work as usual (the server draws every mask).`);
  }

  onScene(scene) {
    const e = scene && scene.image && scene.image.embeddings;
    if (!e || !this.active) return;
    if (this.image && this.image.key === e.key) return;
    this.clear();
    this.expected = null;
    const image = { key: e.key, url: e.url, cacheUrl: e.cacheUrl, ready: null };
    this.image = image;
    image.ready = this.ensureDecoder().then((decoder) => decoder.loadImage(image));
    image.ready.catch((error) => {
      // Without this image's embeddings there are no previews for it; a later scene (a new grant) retries.
      if (this.image === image && !(error instanceof DecoderUnavailable)) this.image = null;
    });
  }

  /** The scene the server will answer the next click from, its selected object and the prompts to build on. */
  state() {
    const scene = this.view.latest || this.view.scene;
    const image = this.image;
    if (!this.active || !scene || !image || !scene.image?.embeddings || scene.image.embeddings.key !== image.key) {
      return null;
    }
    const obj = selectedObject(scene);
    if (!decodable(obj)) return null;
    return { scene, obj, base: this.expected || promptsOf(obj), colour: obj?.color || '#ffffff' };
  }

  request(state, prompts) {
    const { scene } = state;
    return { key: this.image.key, prompts, originalHW: [scene.image.h, scene.image.w],
             outHW: [scene.image.dh, scene.image.dw], colour: state.colour, image: scene.image };
  }

  // ------------------------------------------------------------------ preview
  ask(x, y) {
    const state = this.state();
    const prompts = state && promptsAfterClick(state.base, state.scene.pending, this.mode(), x, y);
    if (!prompts) { this.hidePreview(); return; }
    if (this.asked && samePrompts(this.asked.prompts, prompts) && this.asked.version === this.version) return;
    const request = { ...this.request(state, prompts), seq: ++this.seq, version: this.version, x, y,
                      asked: performance.now() };
    this.asked = request;
    this.stats.asked += 1;
    request.promise = this.image.ready.then(() => this.decoder.preview(request));
    request.promise.then((result) => {
      if (result === null) { this.stats.stale += 1; return; } // a newer position replaced it before it ran
      request.result = result;
      // Drawn when nothing newer is drawn yet, the pointer is still on the image and the prompts it built on
      // are still the scene's: while the pointer moves, each finished decode shows (never an older one).
      if (this.hover && request.version === this.version && (!this.shown || this.shown.seq < request.seq)) {
        this.showPreview(request);
      }
    }, () => {});
  }

  showPreview(request) {
    this.shown = request;
    this.stats.previews += 1;
    const crop = request.result.crop;
    this.view.setOverlay(OVERLAY_PREVIEW, crop.width ? crop.bitmap : null, cropRect(crop, request.image),
                         PREVIEW_OPACITY);
    request.shown = performance.now(); // handed to the view (drawn at its next frame: view.lastDraw)
    this.view.element?.dispatchEvent(new CustomEvent('sam-preview', { detail: request }));
  }

  hidePreview() {
    this.asked = null;
    this.shown = null;
    this.decoder?.cancelPreview();
    this.view.setOverlay(OVERLAY_PREVIEW, null);
  }

  onHover(x, y) {
    if (x == null || y == null) { this.onLeave(); return; }
    this.hover = { x, y };
    this.ask(x, y);
  }

  onLeave() {
    this.hover = null;
    this.hidePreview();
  }

  /** The prompts may have changed (a new scene, another mode): show the preview for the pointer's position. */
  refresh() {
    this.asked = null;
    if (this.hover) this.ask(this.hover.x, this.hover.y);
    else this.hidePreview();
  }

  // ------------------------------------------------------------------ clicks
  onCommit(data) {
    const state = this.state();
    const asked = this.asked;
    const shown = this.shown;
    this.hidePreview();
    if (!state) return;
    const prompts = data.kind === 'box' ? promptsAfterBox(state.base, data.x, data.y, data.x1, data.y1)
      : promptsAfterClick(state.base, state.scene.pending, this.mode(), data.x, data.y);
    if (!prompts) return;
    this.expected = prompts;
    const instant = { prompts, committed: performance.now(), x: data.x, y: data.y,
                      timer: setTimeout(() => this.expire(instant), INSTANT_TIMEOUT_MS) };
    this.clearInstant(this.instant);
    this.instant = instant;
    const paint = (result) => { if (this.instant === instant && result) this.paintInstant(instant, result, state); };
    if (shown && shown.result && samePrompts(shown.prompts, prompts)) {
      this.stats.instantFromPreview += 1;
      paint(shown.result);
      return;
    }
    const exact = () => this.decoder.decode(this.request(state, prompts)).then(paint, () => {});
    if (asked && samePrompts(asked.prompts, prompts)) {
      // The preview for exactly this click is running (or waiting: then it resolves to null).
      asked.promise.then((result) => (result ? paint(result) : exact()), () => {});
    } else {
      exact();
    }
  }

  /**
   * Show the page's mask for the clicked object until the server's scene arrives. With the view's layer
   * override it replaces the object's drawn layer (so an exclude click shrinks it at once) and is drawn as the
   * server's layers are, fill and outline; else it is an overlay at the scene's opacity.
   */
  paintInstant(instant, result, state) {
    this.stats.instant += 1;
    const crop = result.crop;
    const rect = cropRect(crop, state.scene.image);
    const id = state.obj ? state.obj.id : null;
    if (this.view.setLayerOverride && id != null) {
      instant.objectId = id;
      this.view.setLayerOverride(id, { bitmap: crop.width ? whiteMask(crop.bitmap) : new OffscreenCanvas(1, 1), rect });
    } else {
      const opacity = this.view.options ? this.view.options().opacity : 0.5;
      this.view.setOverlay(OVERLAY_INSTANT, crop.width ? crop.bitmap : null, rect, opacity);
    }
    instant.painted = performance.now();
    this.view.element?.dispatchEvent(new CustomEvent('sam-instant', { detail: instant }));
  }

  /** The server never answered with a scene for this click (it refused it): its paint goes away. */
  expire(instant) {
    if (this.instant !== instant) return;
    this.expected = null;
    this.clearInstant(instant);
  }

  clearInstant(instant) {
    if (!instant) return;
    clearTimeout(instant.timer);
    if (this.instant === instant) {
      this.instant = null;
      if (instant.objectId != null) this.view.setLayerOverride(instant.objectId, null);
      this.view.setOverlay(OVERLAY_INSTANT, null);
    }
  }

  /** A server scene is on screen: the server's picture replaces the page's paint once it holds the clicks. */
  onDrawn() {
    this.version += 1;
    const obj = selectedObject(this.view.scene);
    const drawn = promptsOf(obj);
    if (this.expected && (samePrompts(drawn, this.expected) || !isEarlierState(drawn, this.expected))) {
      this.expected = null; // in step with the server again (or something else happened: undo, an error)
    }
    if (this.instant && !this.expected) this.clearInstant(this.instant);
    this.refresh();
  }

  clear() {
    this.hidePreview();
    this.clearInstant(this.instant);
  }

  destroy() {
    this.clear();
    for (const off of this.unsubscribe) off();
    document.removeEventListener('change', this.onModeChange);
  }
}

// ---------------------------------------------------------------------------- on the page
export const BAR_ID = 'live-preview';

/**
 * The toggle ("Live preview", remembered per browser) and the one-line notice, under the status line.
 * Nothing of it talks to the server.
 */
export class PreviewBar {
  constructor(doc = document) {
    this.doc = doc;
    this.element = doc.createElement('div');
    this.element.id = BAR_ID;
    this.element.className = 'sam-live-preview';
    this.element.innerHTML = '<label title="Show the mask under the pointer before you click (computed in this '
      + 'browser; nothing is sent to the server)"><input type="checkbox" style="appearance:auto;'
      + 'accent-color:var(--color-accent);margin-right:.4em"> Live preview</label>'
      + '<span class="sam-live-preview-notice" role="status"></span>';
    this.checkbox = this.element.querySelector('input');
    this.noticeText = this.element.querySelector('.sam-live-preview-notice');
    this.said = null;
  }

  /** Put the bar under the status line (or at the end of `fallback` when there is none). */
  mount(fallback) {
    const status = this.doc.getElementById('status');
    const anchor = status && (status.closest('.block') || status);
    if (anchor && anchor.parentNode) anchor.parentNode.insertBefore(this.element, anchor.nextSibling);
    else fallback.appendChild(this.element);
  }

  bind(preview) {
    this.checkbox.checked = preview.enabled;
    this.checkbox.addEventListener('change', () => preview.setEnabled(this.checkbox.checked));
    if (!preview.config.enabled) this.element.hidden = true; // the server offers no previews: nothing to toggle
  }

  /** Say why previews are off: once (a second reason while the first shows is not added). */
  say(text) {
    if (this.said) return;
    this.said = text;
    this.noticeText.textContent = text;
    this.checkbox.checked = false;
    this.checkbox.disabled = true;
  }
}

/**
 * Install the live preview on a mounted view (the view's boot script calls this after mount).
 * @param {object} view - main.js's view
 * @param {{root?: string}} options - the app's root URL (gradio_config.root)
 */
export async function install(view, { root = `${location.origin}/` } = {}) {
  let config;
  try {
    const response = await fetch(new URL('sam-page/config.json', root), { cache: 'no-cache' });
    config = response.ok ? await response.json() : { enabled: false, reason: `HTTP ${response.status}` };
  } catch (error) {
    config = { enabled: false, reason: 'the settings did not load' };
  }
  const bar = new PreviewBar();
  bar.mount(view.element);
  const preview = new LivePreview(view, resolveUrls(config, root), { notice: (text) => bar.say(text) });
  bar.bind(preview);
  view.livePreview = preview;
  return preview;
}
