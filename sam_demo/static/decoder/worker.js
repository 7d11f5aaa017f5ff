// The page's decoder, in a module Web Worker: onnxruntime-web (WebAssembly) runs the server's decoder graph
// on embeddings the server sent, for prompts the page sends. One decode at a time (the client keeps at most
// one in flight); at most MAX_IMAGES images' embeddings are held here.
//
// Messages in (postMessage({type, ...})):
//   init   {ortUrl, wasmPrefix, decoderUrl, threads}      -> ready {threads, isolated, loadMs} | failed {reason, kind}
//   image  {key, buffer: ArrayBuffer (transferred)}       -> image {key} | failed {key, reason}
//   decode {id, key, prompts, originalHW, outHW, colour?}  -> mask {id, key, scores, best, crop, objectScore, ms,
//                                                                  marks} | error {id, reason, kind}
//          crop = {row0, col0, height, width, area} in display pixels (outHW) plus, without `colour`,
//          bits (Uint8Array, 1 inside) or, with `colour` ('#rrggbb'), bitmap (an ImageBitmap: the mask in that
//          colour, opaque inside and clear outside, ready to draw)
//   forget {key}
//   floor  {id, key, prompts, originalHW, runs}           -> floor {id, ms: [...]}: bare session.run times (the
//                                                            benchmark's floor: no feeds building, no upsampling)
// marks: when each stage of a decode ended, in epoch ms (performance.timeOrigin + now(): comparable with the
// page's clock) {got (message received), fed (feeds built), ran (session.run returned), cropped (mask at outHW),
// bitmap (ImageBitmap made), posted (result handed to postMessage)}; ms: {run, post} durations of the same.
// `kind` is 'memory' when the failure looks like running out of memory (the page turns previews off).

import { decoderFeeds, promptProblem } from './feeds.js';
import { bestIndex, maskCrop } from './masks.js';
import { parsePayload } from './payload.js';

export const MAX_IMAGES = 3;
const LOW_RES = 256;
const CANDIDATES = 3;

let ort = null;
let session = null;
const images = new Map(); // key -> {originalHW, tensors}; insertion order = least recently used first

function failureKind(error) {
  const text = String(error && (error.message || error));
  return error instanceof RangeError || /memory|allocat|OOM|Aborted/i.test(text) ? 'memory' : 'error';
}

export const FILES_CACHE = 'sam2-page-decoder-v1';
export const WASM_FILE = 'ort-wasm-simd-threaded.wasm';

// The decoder copy (21 MB) and onnxruntime-web's WebAssembly (15 MB) from this browser's Cache Storage when
// it has them, else from the server (once). Both URLs name their content (a hash, a version), so an entry
// never goes stale; entries of other URLs (an older model or version) are deleted. The HTTP cache alone is
// not enough: Chromium does not keep a file this large in an in-memory cache, nor above 1/8 of its disk cache.
async function cachedFiles(urls) {
  let cache = null;
  try {
    cache = typeof caches === 'object' ? await caches.open(FILES_CACHE) : null; // secure contexts only
  } catch (error) {
    cache = null;
  }
  const out = [];
  for (const url of urls) {
    const hit = cache ? await cache.match(url) : null;
    if (hit) { out.push(await hit.arrayBuffer()); continue; }
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${url.split('/').pop()} answered HTTP ${response.status}`);
    const buffer = await response.arrayBuffer();
    if (cache) {
      try {
        await cache.put(url, new Response(buffer.slice(0)));
      } catch (error) {
        // no room: the next visit downloads it again
      }
    }
    out.push(buffer);
  }
  if (cache) {
    for (const request of await cache.keys()) if (!urls.includes(request.url)) await cache.delete(request);
  }
  return out;
}

async function init({ ortUrl, wasmPrefix, decoderUrl, threads }) {
  const started = performance.now();
  if (typeof WebAssembly !== 'object') {
    throw Object.assign(new Error('this browser has no WebAssembly'), { kind: 'nowasm' });
  }
  ort = await import(ortUrl);
  const [wasm, model] = await cachedFiles([wasmPrefix + WASM_FILE, decoderUrl]);
  ort.env.wasm.wasmPaths = wasmPrefix;
  ort.env.wasm.wasmBinary = wasm;
  // Threads need cross-origin isolation (SharedArrayBuffer); otherwise onnxruntime-web runs one thread.
  ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.max(1, threads) : 1;
  ort.env.wasm.proxy = false; // this worker already keeps the page's main thread free
  session = await ort.InferenceSession.create(new Uint8Array(model), {
    executionProviders: ['wasm'],
    graphOptimizationLevel: 'all',
  });
  return { threads: ort.env.wasm.numThreads, isolated: !!self.crossOriginIsolated,
           loadMs: performance.now() - started };
}

function addImage(key, buffer) {
  const parsed = parsePayload(buffer);
  if (parsed.imageKey !== key) throw new Error('the embeddings belong to another image');
  const tensors = {};
  for (const level of parsed.levels) tensors[level.name] = new ort.Tensor('float16', level.data, level.dims);
  images.delete(key);
  images.set(key, { originalHW: parsed.originalHW, tensors });
  while (images.size > MAX_IMAGES) images.delete(images.keys().next().value);
}

/** '#rrggbb' as one opaque RGBA pixel packed in a Uint32 (the byte order of an ImageData on this machine). */
function packedColour(colour) {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(colour.slice(i, i + 2), 16));
  const bytes = new Uint8Array([r, g, b, 255]);
  return new Uint32Array(bytes.buffer)[0];
}

let easel = null; // an OffscreenCanvas kept between previews (a pointer moving over one object: same crop size)

/**
 * The painted crop (maskCrop's `pixels`) as an ImageBitmap, made here so the page's thread only draws it:
 * written into an OffscreenCanvas and transferred out of it, synchronously (createImageBitmap is a promise that
 * settles in a later task of this worker).
 */
function bitmapOf(crop) {
  const width = Math.max(1, crop.width), height = Math.max(1, crop.height);
  if (typeof OffscreenCanvas !== 'function') { // an older browser: the promise
    return createImageBitmap(crop.width ? new ImageData(new Uint8ClampedArray(crop.pixels.buffer), width, height)
      : new ImageData(1, 1));
  }
  if (!easel) easel = new OffscreenCanvas(width, height);
  if (easel.width !== width || easel.height !== height) {
    easel.width = width;
    easel.height = height;
  }
  const g = easel.getContext('2d');
  if (crop.width) g.putImageData(new ImageData(new Uint8ClampedArray(crop.pixels.buffer), width, height), 0, 0);
  return easel.transferToImageBitmap(); // leaves the canvas blank (transparent) for the next one
}

/** Now in epoch ms: the worker's and the page's performance clocks have different origins. */
const clock = () => performance.timeOrigin + performance.now();

async function decode({ key, prompts, originalHW, outHW, colour }, marks) {
  const image = images.get(key);
  if (!image) throw new Error('no embeddings for this image');
  images.delete(key); // most recently used last
  images.set(key, image);
  if (image.originalHW[0] !== originalHW[0] || image.originalHW[1] !== originalHW[1]) {
    throw new Error('the embeddings were made for another image size');
  }
  const problem = promptProblem(prompts, originalHW);
  if (problem) throw new Error(`cannot decode ${problem}`);
  const started = performance.now();
  const feeds = { ...image.tensors };
  for (const [name, { data, dims }] of Object.entries(decoderFeeds(prompts, originalHW))) {
    feeds[name] = new ort.Tensor(data instanceof BigInt64Array ? 'int64' : 'float32', data, dims);
  }
  marks.fed = clock();
  const out = await session.run(feeds);
  const ran = performance.now();
  marks.ran = clock();
  const scores = Array.from(out.iou_scores.data.slice(0, CANDIDATES));
  const best = bestIndex(scores);
  const plane = LOW_RES * LOW_RES;
  const logits = out.pred_masks.data.subarray(best * plane, (best + 1) * plane);
  // With a colour the mask is painted while it is upsampled (one pass; no 0/1 copy to paint afterwards).
  const crop = maskCrop(logits, LOW_RES, LOW_RES, outHW, colour ? packedColour(colour) : null);
  const objectScore = 1 / (1 + Math.exp(-out.object_score_logits.data[0]));
  for (const tensor of Object.values(out)) tensor.dispose?.();
  marks.cropped = clock();
  if (colour) {
    crop.bitmap = await bitmapOf(crop);
    delete crop.pixels;
  }
  marks.bitmap = clock();
  return { scores, best, crop, objectScore, marks, ms: { run: ran - started, post: performance.now() - ran } };
}

async function floor({ key, prompts, originalHW, runs }) {
  const image = images.get(key);
  if (!image) throw new Error('no embeddings for this image');
  const feeds = { ...image.tensors };
  for (const [name, { data, dims }] of Object.entries(decoderFeeds(prompts, originalHW))) {
    feeds[name] = new ort.Tensor(data instanceof BigInt64Array ? 'int64' : 'float32', data, dims);
  }
  const ms = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    const out = await session.run(feeds);
    ms.push(performance.now() - started);
    for (const tensor of Object.values(out)) tensor.dispose?.();
  }
  return ms;
}

self.onmessage = async ({ data }) => {
  const { type } = data;
  try {
    if (type === 'init') {
      self.postMessage({ type: 'ready', ...(await init(data)) });
    } else if (type === 'image') {
      addImage(data.key, data.buffer);
      self.postMessage({ type: 'image', key: data.key });
    } else if (type === 'decode') {
      const result = await decode(data, { got: clock() });
      result.marks.posted = clock();
      const transfer = result.crop.bitmap ? [result.crop.bitmap] : [result.crop.bits.buffer];
      self.postMessage({ type: 'mask', id: data.id, key: data.key, ...result }, transfer);
    } else if (type === 'floor') {
      self.postMessage({ type: 'floor', id: data.id, ms: await floor(data) });
    } else if (type === 'forget') {
      images.delete(data.key);
    }
  } catch (error) {
    const reason = String(error && (error.message || error));
    const kind = error && error.kind ? error.kind : failureKind(error);
    if (type === 'init') self.postMessage({ type: 'failed', reason, kind });
    else if (type === 'image') self.postMessage({ type: 'failed', key: data.key, reason, kind });
    else self.postMessage({ type: 'error', id: data.id, reason, kind });
  }
};
