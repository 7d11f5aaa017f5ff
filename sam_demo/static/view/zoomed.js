// Refine while zoomed (issue 19 item 3): a plugin of the image view (main.js).
//
// Once the view has been zoomed to at least ZOOM_MIN times the fit and has stayed still for STILL_MS, the
// part of the image it shows is sent to the server as a `zoomed` event, {rect: [x0, y0, x1, y1]} in the
// ORIGINAL pixel edge frame (pixel i spans [i, i + 1); geometry.js). The server may encode that region in
// the background at the lowest priority (sam_demo.service.encode_view, when --zoom-encode is on), and
// clicks inside it then decode at the view's resolution. Zooming back under ZOOM_MIN sends `zoomed` with
// no rect (the view is gone); a new zoom or pan replaces the request (the server cancels the old one).
// A new image starts over. The server checks everything it receives.

export const ZOOM_MIN = 2;     // the view must be zoomed at least this much (relative to the fit)
export const STILL_MS = 500;   // ...and unchanged for this long
export const RECT_DIGITS = 3;  // rect values are rounded to 1/1000 of an original pixel

function visibleRect(t) {
  const [l, top, r, b] = t.visibleCss();
  const [x0, y0] = t.cssToEdge(l, top);
  const [x1, y1] = t.cssToEdge(r, b);
  const round = (v) => Math.round(v * 10 ** RECT_DIGITS) / 10 ** RECT_DIGITS;
  return [Math.max(0, x0), Math.max(0, y0), Math.min(t.W, x1), Math.min(t.H, y1)].map(round);
}

export function mount(view) {
  let timer = null;
  let sent = null;       // the rect last sent, or null (none sent, or the zoomed view is gone)
  let image = null;      // the image token of the scene: a new image starts over
  const same = (a, b) => a && b && a.length === b.length && a.every((v, i) => v === b[i]);
  view.on('scene', ({scene}) => {
    const token = scene && scene.image ? scene.image.token : null;
    if (token !== image) { image = token; sent = null; clearTimeout(timer); }
  });
  view.on('transform', ({t}) => {
    clearTimeout(timer);
    if (!t || t.zoom < ZOOM_MIN) {
      if (sent) { sent = null; view.send('zoomed', {}); }
      return;
    }
    timer = setTimeout(() => {
      const rect = visibleRect(t);
      if (same(rect, sent) || rect[2] <= rect[0] || rect[3] <= rect[1]) return;
      sent = rect;
      view.send('zoomed', {rect, zoom: Math.round(t.zoom * 1000) / 1000});
    }, STILL_MS);
  });
  return {visibleRect};
}
