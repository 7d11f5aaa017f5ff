"""The page's static parts: help text, CSS and the keyboard-shortcut script (no logic)."""

HELP = """**How to use.** Upload or paste an image (or pick an example), then click on it:
**Include** points add to the mask, **Exclude** points cut regions away, **Box** takes two clicks at opposite
corners. Each object has its own prompts and colour; pick one of the 3 candidate masks below the objects.
**Keys:** `P` include · `N` exclude · `B` box · `Z` undo · `Y` / `Shift+Z` redo · `Esc` clear object ·
`A` new object · `1` `2` `3` choose a mask. On a phone, tap to click."""

CSS = """
#display img { cursor: crosshair; }
#object-list .obj-row { display: flex; align-items: center; gap: .5em; padding: .35em .5em; border-radius: 6px; }
#object-list .obj-row.selected { outline: 2px solid var(--color-accent); }
#object-list .obj-row.hidden { opacity: .5; }
#object-list .swatch { width: 1.1em; height: 1.1em; border-radius: 50%; display: inline-block;
                       border: 1px solid #0006; flex: none; }
#object-list .score { margin-left: auto; font-size: .85em; opacity: .8; }
#mode label { min-height: 44px; }
.hidden-controls { display: none !important; }
.tool-row button { min-height: 44px; }
@media (max-width: 640px) {
  #status { font-size: .8em; }
  /* On a phone the image fills the width; no tall empty frame around a landscape photo. */
  #display { height: auto !important; }
  #display .image-container, #display .image-frame { height: auto !important; max-height: 75vh; }
}
"""

# Keyboard shortcuts: click the matching control by elem_id; ignore keys typed into text fields.
KEYBOARD_SCRIPT = """
<script>
document.addEventListener('keydown', (e) => {
  const t = e.target;
  const typing = t && (t.isContentEditable || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' ||
    (t.tagName === 'INPUT' && !['radio', 'checkbox', 'range', 'button', 'submit'].includes(t.type)));
  if (typing) return;
  if (e.metaKey || e.altKey) return;
  const k = e.key.toLowerCase();
  const click = (id) => { const el = document.getElementById(id); if (el) el.click(); return !!el; };
  const mode = (i) => { const r = document.querySelectorAll('#mode input[type=radio]')[i]; if (r) r.click(); };
  let handled = true;
  if (e.ctrlKey) {
    if (k === 'z' && !e.shiftKey) click('undo_btn');
    else if (k === 'y' || (k === 'z' && e.shiftKey)) click('redo_btn');
    else handled = false;
  } else if (k === 'p' || k === '+') mode(0);
  else if (k === 'n' || k === '-') mode(1);
  else if (k === 'b') mode(2);
  else if (k === 'z' && !e.shiftKey) click('undo_btn');
  else if (k === 'y' || (k === 'z' && e.shiftKey)) click('redo_btn');
  else if (k === 'escape') click('clear_btn');
  else if (k === 'a') click('add_object_btn');
  else if (k === '1' || k === '2' || k === '3') click('candidate_' + k + '_btn');
  else handled = false;
  if (handled) e.preventDefault();
});
</script>
"""

# Clicks made while a new overlay loads. Gradio maps a click on the display from the <img>'s naturalWidth,
# which is 0 while the next overlay file loads (the same <img> gets a new src on every edit), and then drops
# the click. This script holds such a click and, once the file has loaded, replays it at the same position
# relative to the image, so Gradio maps it exactly as it would have mapped it on a loaded image. It is
# replayed only when the loaded file has the natural size of the one before (an overlay of the same image)
# and the image box kept its size; a click made while a different image was arriving is dropped, as the
# upload replaces the work on the old image anyway.
CLICK_HOLD_SCRIPT = """
<script>
(() => {
  const held = [];                 // clicks waiting for the display file, oldest first
  const replayed = new WeakSet();
  let shown = null;                // natural size of the display file loaded last
  const displayImg = (node) => {
    const frame = node instanceof Element ? node.closest('#display .image-frame') : null;
    return frame ? frame.querySelector('img') : null;
  };
  const ready = (img) => img.complete && img.naturalWidth > 0;
  const replay = (img) => {        // the file has loaded: send the held clicks, in order
    const size = img.naturalWidth + 'x' + img.naturalHeight;
    shown = size;
    const r = img.getBoundingClientRect();
    for (const c of held.splice(0)) {
      if (c.size !== size || c.w !== r.width || c.h !== r.height) continue;
      const ev = new MouseEvent('click', {bubbles: true, cancelable: true, composed: true, view: window});
      // MouseEvent() truncates clientX/Y to integers; keep the exact position relative to the image.
      Object.defineProperty(ev, 'clientX', {value: c.x + (r.left - c.left)});
      Object.defineProperty(ev, 'clientY', {value: c.y + (r.top - c.top)});
      replayed.add(ev);
      img.dispatchEvent(ev);
    }
  };
  document.addEventListener('click', (e) => {
    if (replayed.has(e)) return;
    const img = displayImg(e.target);
    if (!img) return;
    if (ready(img)) {              // loaded (its load event may still be queued): earlier clicks go first
      if (held.length) replay(img);
      return;
    }
    e.stopImmediatePropagation();
    e.preventDefault();
    const r = img.getBoundingClientRect();
    held.push({x: e.clientX, y: e.clientY, left: r.left, top: r.top, w: r.width, h: r.height, size: shown});
  }, true);
  document.addEventListener('load', (e) => {
    if (e.target instanceof HTMLImageElement && e.target.closest('#display .image-frame')) replay(e.target);
  }, true);
  document.addEventListener('error', (e) => {
    if (e.target instanceof HTMLImageElement && e.target.closest('#display .image-frame')) held.length = 0;
  }, true);
})();
</script>
"""

# Events reach the server in the order the page sends them. Each event is a separate POST to Gradio's queue
# (…/queue/join); two sent close together may travel on different connections and arrive swapped (a new
# connection costs extra round trips), so two quick clicks could be recorded in the wrong order and undo
# would remove the wrong one. Each join waits until the server has answered the previous one (it answers
# once the event is queued, not when it has run): one round trip between close events, no reordering.
IN_ORDER_SCRIPT = """
<script>
(() => {
  const send = window.fetch.bind(window);
  let previous = Promise.resolve();
  window.fetch = (input, init) => {
    const url = typeof input === 'string' ? input : (input && input.url) || String(input);
    if (!url.includes('/queue/join')) return send(input, init);
    const answer = previous.then(() => send(input, init));
    previous = answer.then(() => undefined, () => undefined);
    return answer;
  };
})();
</script>
"""

HEAD = KEYBOARD_SCRIPT + CLICK_HOLD_SCRIPT + IN_ORDER_SCRIPT
