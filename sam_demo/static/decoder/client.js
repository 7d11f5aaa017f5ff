// The page's side of the in-browser decoder: starts the worker, brings an image's embeddings into it
// (from the browser's Cache Storage when this browser has fetched them before), and schedules decodes:
// at most one in flight; previews are "latest wins" (a newer pointer position replaces a waiting one, and
// the waiting one resolves to null), exact requests (clicks) are never dropped and go first.
//
// Nothing here touches the DOM; sam_demo/static/decoder/preview.js draws.

export const EMBEDDINGS_CACHE = 'sam2-embeddings-v1';
export const MAX_CACHED_IMAGES = 8; // Cache Storage entries (8.4 MB each) kept per browser; oldest dropped first
export const START_TIMEOUT_MS = 120000; // onnxruntime-web + a 21 MB decoder on a slow line
// Images whose embeddings the worker holds (8.4 MB each, float16); must not exceed worker.js MAX_IMAGES.
export const MAX_WORKER_IMAGES = 3;

const URL_FIELDS = ['ortUrl', 'wasmPrefix', 'decoderUrl', 'workerUrl', 'clientUrl', 'url', 'cacheUrl'];

/** A copy of `config` (or an image's urls) with its URLs, relative to the app's root, made absolute. */
export function resolveUrls(config, root) {
  const out = { ...config };
  for (const field of URL_FIELDS) if (typeof out[field] === 'string') out[field] = new URL(out[field], root).href;
  return out;
}

/** Why this browser cannot run the page's decoder at all, or null. */
export function unsupportedReason() {
  if (typeof WebAssembly !== 'object' || typeof WebAssembly.instantiate !== 'function') {
    return 'this browser has no WebAssembly';
  }
  if (typeof Worker !== 'function') return 'this browser has no Web Workers';
  return null;
}

export class DecoderUnavailable extends Error {
  constructor(reason, kind = 'error') {
    super(reason);
    this.reason = reason;
    this.kind = kind;
  }
}

export class PageDecoder {
  /**
   * Start the worker and load onnxruntime-web and the decoder in it.
   * @param {{workerUrl: string, ortUrl: string, wasmPrefix: string, decoderUrl: string, threads?: number}} config
   * @returns {Promise<PageDecoder>} rejects with DecoderUnavailable (reason for the status line)
   */
  static async start(config) {
    const unsupported = unsupportedReason();
    if (unsupported) throw new DecoderUnavailable(unsupported, 'nowasm');
    let worker;
    try {
      worker = new Worker(config.workerUrl, { type: 'module', name: 'sam-page-decoder' });
    } catch (error) {
      throw new DecoderUnavailable(`the decoder worker did not start (${error.message || error})`);
    }
    const threads = config.threads ?? (navigator.hardwareConcurrency || 1);
    const info = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new DecoderUnavailable('onnxruntime-web did not load in time')),
                               config.startTimeoutMs ?? START_TIMEOUT_MS);
      worker.onerror = (event) => {
        clearTimeout(timer);
        event.preventDefault?.();
        reject(new DecoderUnavailable(`onnxruntime-web failed to load (${event.message || 'worker error'})`));
      };
      worker.onmessage = ({ data }) => {
        clearTimeout(timer);
        if (data.type === 'ready') resolve(data);
        else reject(new DecoderUnavailable(data.kind === 'memory' ? `not enough memory for the decoder (${data.reason})`
          : data.kind === 'nowasm' ? data.reason : `onnxruntime-web failed to load (${data.reason})`, data.kind));
      };
      worker.postMessage({ type: 'init', ortUrl: config.ortUrl, wasmPrefix: config.wasmPrefix,
                           decoderUrl: config.decoderUrl, threads });
    }).catch((error) => { worker.terminate(); throw error; });
    return new PageDecoder(worker, info);
  }

  constructor(worker, info) {
    this.worker = worker;
    this.info = info; // {threads, isolated, loadMs}
    this.failed = null; // a DecoderUnavailable once the decoder broke (e.g. out of memory)
    this.onFailure = null;
    this.bytesFetched = 0; // embeddings downloaded over the network by this page
    this._images = new Map(); // key -> Promise (the worker holds it) ; mirrors the worker's LRU
    this._waiting = new Map(); // message id -> {resolve, reject}
    this._imageWaiters = new Map(); // key -> {resolve, reject}
    this._nextId = 1;
    this._running = null;
    this._exact = []; // queued click decodes, in order
    this._preview = null; // the one waiting preview
    worker.onmessage = ({ data }) => this._onMessage(data);
    worker.onerror = (event) => this._fail(new DecoderUnavailable(`the decoder worker stopped (${event.message})`));
  }

  /** True while a decode runs or waits. */
  get busy() {
    return this._running !== null || this._exact.length > 0 || this._preview !== null;
  }

  /**
   * Make sure the worker holds an image's embeddings: from the worker's memory, this browser's Cache Storage,
   * or (first time only) the server.
   * @param {{key: string, url: string, cacheUrl: string}} image - url carries the tab's grant for the image;
   *   cacheUrl names the image and model only (sam_demo/page_decoder.py)
   */
  loadImage(image) {
    if (this.failed) return Promise.reject(this.failed);
    let loading = this._images.get(image.key);
    if (loading) {
      this._images.delete(image.key);
      this._images.set(image.key, loading);
      return loading;
    }
    loading = this._fetchEmbeddings(image).then((buffer) => new Promise((resolve, reject) => {
      this._imageWaiters.set(image.key, { resolve, reject });
      this.worker.postMessage({ type: 'image', key: image.key, buffer }, [buffer]);
    }));
    loading.catch(() => this._images.delete(image.key));
    this._images.set(image.key, loading);
    while (this._images.size > MAX_WORKER_IMAGES) {
      const oldest = this._images.keys().next().value;
      this._images.delete(oldest);
      this.worker.postMessage({ type: 'forget', key: oldest });
    }
    return loading;
  }

  async _fetchEmbeddings({ url, cacheUrl }) {
    const cache = await openCache();
    if (cache) {
      const hit = await cache.match(cacheUrl);
      if (hit) return hit.arrayBuffer();
    }
    const response = await fetch(url, { cache: 'no-store' });
    if (!response.ok) throw new Error(`the embeddings answered HTTP ${response.status}`);
    const buffer = await response.arrayBuffer();
    this.bytesFetched += buffer.byteLength;
    if (cache) {
      try {
        const headers = { 'Content-Type': 'application/octet-stream' };
        await cache.put(cacheUrl, new Response(buffer.slice(0), { headers }));
        const keys = await cache.keys();
        for (const old of keys.slice(0, Math.max(0, keys.length - MAX_CACHED_IMAGES))) await cache.delete(old);
      } catch (error) {
        // A full disk or a private window: previews still work, the next visit fetches again.
      }
    }
    return buffer;
  }

  /**
   * Decode for a preview: resolves to the result, or null when a newer preview replaced this one first.
   * A result is worker.js's `mask` message plus `sent` and `received` (performance.now() here: the request
   * posted to the worker, its answer received).
   * @param {{key: string, prompts: object, originalHW: number[], outHW: number[], colour?: string}} request
   *   with `colour` the mask comes back as an ImageBitmap in that colour (worker.js)
   */
  preview(request) {
    if (this.failed) return Promise.reject(this.failed);
    if (this._preview) this._preview.resolve(null); // stale: a newer position arrived before it started
    return new Promise((resolve, reject) => {
      this._preview = { request, resolve, reject };
      this._pump();
    });
  }

  /** Decode that is never dropped (a click); runs before any waiting preview. */
  decode(request) {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this._exact.push({ request, resolve, reject });
      this._pump();
    });
  }

  /** Bare session.run times (ms) of one prompt, `runs` times in a row: the benchmark's floor. */
  floor(request, runs) {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this._exact.push({ request: { ...request, floorRuns: runs }, resolve, reject });
      this._pump();
    });
  }

  /** Drop a waiting preview (the pointer left the image); a running one still finishes. */
  cancelPreview() {
    if (this._preview) {
      this._preview.resolve(null);
      this._preview = null;
    }
  }

  _pump() {
    if (this._running || this.failed) return;
    const job = this._exact.shift() || this._preview;
    if (!job) return;
    if (job === this._preview) this._preview = null;
    const id = this._nextId++;
    this._running = job;
    this._waiting.set(id, job);
    const { key, prompts, originalHW, outHW, colour, floorRuns } = job.request;
    job.sent = performance.now();
    if (floorRuns) this.worker.postMessage({ type: 'floor', id, key, prompts, originalHW, runs: floorRuns });
    else this.worker.postMessage({ type: 'decode', id, key, prompts, originalHW, outHW, colour });
  }

  _onMessage(data) {
    if (data.type === 'image' || (data.type === 'failed' && data.key)) {
      const waiter = this._imageWaiters.get(data.key);
      this._imageWaiters.delete(data.key);
      if (waiter) data.type === 'image' ? waiter.resolve(data.key) : waiter.reject(new Error(data.reason));
      if (data.kind === 'memory') this._fail(new DecoderUnavailable(`out of memory (${data.reason})`, 'memory'));
      return;
    }
    const job = this._waiting.get(data.id);
    this._waiting.delete(data.id);
    this._running = null;
    if (job) {
      if (data.type === 'mask') job.resolve({ ...data, sent: job.sent, received: performance.now() });
      else if (data.type === 'floor') job.resolve(data.ms);
      else job.reject(new Error(data.reason));
    }
    if (data.type === 'error' && data.kind === 'memory') {
      this._fail(new DecoderUnavailable(`out of memory (${data.reason})`, 'memory'));
      return;
    }
    this._pump();
  }

  _fail(error) {
    if (this.failed) return;
    this.failed = error;
    const jobs = [...this._waiting.values(), ...this._exact, ...(this._preview ? [this._preview] : [])];
    for (const job of jobs) job.reject(error);
    this._waiting.clear();
    this._exact = [];
    this._preview = null;
    this._running = null;
    this.worker.terminate();
    this.onFailure?.(error);
  }
}


async function openCache() {
  try {
    return typeof caches === 'object' ? await caches.open(EMBEDDINGS_CACHE) : null; // secure contexts only
  } catch (error) {
    return null;
  }
}
