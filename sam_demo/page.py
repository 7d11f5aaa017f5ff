"""The page's static parts: title, help text, CSS, the image view's mount and the scripts for keys and rows.

Sizes are CSS lengths. The layout is built in ``app.build_demo``; the element ids used here (``#display``,
``#objects``, ``#object_select``, ``#mode`` ...) are the ``elem_id`` values given there.
"""

import json

TITLE = """# Segment Anything 2.1 — click to segment
SAM 2.1 on onnxruntime (CPU; the model in use is named under the image): the image is encoded once on upload;
every click only runs the small mask decoder."""

HELP = """**Upload or paste an image** (or pick an example), then click on it. **+ Include** points add to the
mask, **− Exclude** points cut regions away, **▭ Box** takes two clicks at opposite corners. Each object has its
own prompts and colour: **+ New object** starts one, a click on a row of the list selects it. Pick one of the 3
candidate masks under the list. **Refine** re-encodes a crop around the selected object for a mask as sharp as
the photo (small objects, thin parts, exact edges; a second or two). On a phone, tap. **Live preview** (the tick box
under the status line): the mask under the pointer shows lightly before you click, computed in your
browser; on a phone, press and hold to see it, release to add the point. **✎ Brush** and **⌫ Eraser** fix what
SAM got wrong: drag over the picture (one finger on a phone) to add to or erase from the selected object's
mask (it needs a point or a box first); the size, in screen pixels, is the slider under the picture, and each
stroke is one undo. New clicks keep the strokes. Two fingers zoom and pan.

**Keys:** `P` include · `N` exclude · `B` box · `D` brush · `E` eraser · `[` `]` brush size · hold `Ctrl`
while painting to swap brush and eraser · `Z` undo · `Y` / `Shift+Z` redo · `Esc` clear object ·
`A` new object · `R` refine the selected object · `1` `2` `3` choose a mask."""

MODE_GROUP_LABEL = "Prompt mode"
"""The accessible name of the mode radio group (``A11Y_SCRIPT``)."""
UPLOAD_BOX_HEIGHT = 120
"""Pixels: the upload box is a thumbnail once the image is shown below."""
ZOOM_BAR_HEIGHT = "30px"
"""The view's zoom buttons under the picture (never over it: every pixel of the image takes clicks)."""
WORK_AREA_OFFSET = "330px"
"""Room above and below the image on a desktop: the top band, the tool bar, the zoom bar, the status line (two
lines) and margins (measured in tests/browser/test_layout.py)."""
DISPLAY_HEIGHT = f"clamp(280px, calc(100vh - {WORK_AREA_OFFSET}), 1100px)"
"""The image box fills the window's height below the top band and tool bar, leaving the status line visible."""
EMPTY_DISPLAY_HEIGHT = "120px"
"""Before an upload the image box is low and the help is shown under it."""
OBJECT_LIST_MAX_HEIGHT = "min(40vh, 360px)"
"""The object list scrolls beyond this, however many objects there are (segment everything adds up to 256)."""
DOWNLOADS_EMPTY_HEIGHT = "64px"
"""The download list before an export: a low box (Gradio's empty file box is 270 px tall, whatever its height)."""
STATUS_ENGINE_CLASS = "sam-engine"
"""The status line's times and engine details (``app._status``): shown on a desktop, not on a phone."""
BRUSH_SLIDER_WIDTH = "110px"
"""The brush size slider in the bar under the picture (brush and eraser modes)."""
PHONE_BRUSH_SLIDER_WIDTH = "90px"
"""The brush size slider in the bar under the picture (brush and eraser modes); on a phone it shares a 326 px
bar with the zoom buttons."""
MODE_PADDING = ".6em"
"""Side padding of a mode choice: the five modes and the history buttons share one row on a 1366 px laptop."""
PHONE_MODE_BASIS = "28%"
"""On a phone the mode choices wrap: three on the first row, two on the second."""
PHONE_MAX_WIDTH = "640px"
PHONE_DISPLAY_HEIGHT = "75vh"
PHONE_EXAMPLE_SIDE = "56px"

CSS = f"""
#top {{ align-items: center; gap: var(--spacing-lg); }}
#title h1 {{ font-size: 1.4rem; margin: 0 0 .2em; }}
#title p {{ margin: 0; font-size: .85rem; opacity: .8; }}
#toolbar {{ align-items: center; gap: var(--spacing-md); }}
#toolbar > *, #toolbar .form {{ margin: 0; border: none; background: none; box-shadow: none; }}
#mode {{ padding: 0; border: none; background: none; }}
#mode .wrap {{ gap: var(--spacing-sm); flex-wrap: nowrap; }}
#mode label {{ min-height: 40px; flex: 1 1 0; justify-content: center; white-space: nowrap;
               padding-inline: {MODE_PADDING}; }}
#mode label > span {{ margin-left: 0; }}  /* the round input is not drawn (below): no room kept for it */
/* The mode choices are a segmented control: the chosen one is filled, the round input is not drawn. */
#mode input[type=radio] {{ position: absolute; opacity: 0; width: 1px; height: 1px; }}
#mode label:has(input:focus-visible) {{ outline: 3px solid var(--color-accent); outline-offset: 2px; }}
#history {{ flex-wrap: nowrap; gap: var(--spacing-sm); min-width: min(100%, 300px); }}
#history button {{ min-height: 40px; padding-inline: .6em; white-space: nowrap; }}
#display .html-container {{ padding: 0; }}
#display .sam-view {{ position: relative; width: 100%; overflow: hidden;
                      background: var(--background-fill-secondary); }}
#display .sam-view[data-state=image] {{ aspect-ratio: var(--sam-aspect); height: auto;
  max-height: min({DISPLAY_HEIGHT}, var(--sam-natural-h)); }}
#display .sam-view:not([data-state=image]) {{ height: {EMPTY_DISPLAY_HEIGHT}; display: flex; align-items: center;
                                            justify-content: center; }}
#display .sam-view[data-state=image] .sam-placeholder {{ display: none; }}
#display .sam-placeholder {{ opacity: .7; padding: 1em; text-align: center; }}
#display .sam-canvas {{ position: absolute; inset: 0; width: 100%; height: 100%; cursor: crosshair;
                       touch-action: none; user-select: none; -webkit-user-select: none; }}
#display .sam-view:not([data-state=image]) .sam-canvas {{ display: none; }}
#display .sam-view:focus-visible {{ outline: 3px solid var(--color-accent); outline-offset: 2px; }}
#display .sam-view:focus {{ outline: 3px solid var(--color-accent); outline-offset: 2px; }}
#display .sam-zoombar {{ display: flex; justify-content: flex-end; align-items: center; gap: 2px;
                        height: {ZOOM_BAR_HEIGHT}; font-size: 13px; }}
#display .sam-zoombar button {{ min-width: 36px; height: 100%; border: 0; border-radius: 4px;
                               background: var(--background-fill-secondary); color: inherit; font: inherit;
                               font-size: 16px; cursor: pointer; }}
#display .sam-zoombar button:hover, #display .sam-zoombar button:focus-visible {{ background: var(--border-color-primary); }}
#display .sam-zoombar > .sam-plugin-control:first-child {{ margin-right: auto; }}  /* plugins' controls: left */
#display .sam-brush {{ display: flex; align-items: center; gap: .4em; height: 100%; white-space: nowrap; }}
#display .sam-brush[hidden] {{ display: none; }}
#display .sam-brush input[type=range] {{ width: {BRUSH_SLIDER_WIDTH}; accent-color: var(--color-accent); }}
#display .sam-brush output {{ min-width: 3.6em; font-variant-numeric: tabular-nums; }}
#display .sam-zoom-level {{ min-width: 3.2em; text-align: center; font-variant-numeric: tabular-nums; }}
#display .sam-view:not([data-state=image]) + .sam-zoombar {{ display: none; }}
#display .sam-busy {{ position: absolute; left: 50%; top: 8px; transform: translateX(-50%); padding: .3em .8em;
                     border-radius: 6px; background: #000c; color: #fff; font-size: 14px; pointer-events: none; }}
#display .sam-sr {{ position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0);
                   white-space: nowrap; }}
#work:has(#display .sam-view[data-state=image]) #help {{ display: none; }}
#status {{ min-height: 1.5em; }}
#status p {{ margin: 0; }}
#object-list {{ max-height: {OBJECT_LIST_MAX_HEIGHT}; overflow-y: auto; position: relative; padding: 2px; }}
#object-list .obj-row {{ display: flex; align-items: center; gap: .5em; width: 100%; padding: .35em .5em;
                        border: 0; border-radius: 6px; background: none; color: inherit; font: inherit;
                        text-align: left; cursor: pointer; }}
#object-list .obj-row:hover {{ background: var(--background-fill-secondary); }}
#object-list .obj-row.selected {{ outline: 2px solid var(--color-accent); outline-offset: -2px; }}
#object-list .obj-row.hidden {{ opacity: .5; }}
#object-list .swatch {{ width: 1.1em; height: 1.1em; border-radius: 50%; display: inline-block;
                       border: 1px solid #0006; flex: none; }}
#object-list .score {{ margin-left: auto; font-size: .85em; opacity: .8; }}
/* The candidates: the label above the thumbnails (not over them), each score readable under its thumbnail. */
#candidates label[data-testid=block-label] {{ position: static; margin: 0 0 2px; }}
#candidates .grid-container {{ padding-top: 0; }}
#candidates .grid-wrap {{ min-height: 0; overflow: visible; }}  /* as tall as one row of square thumbnails */
#candidates .caption-label {{ max-width: none; left: 2px; right: 2px; bottom: 2px; text-align: center;
                              font-size: .8rem; padding: 1px 2px; white-space: nowrap; }}
/* The download list: low while empty; whole file names (wrapped), never "photo_4… .png". */
#downloads .empty {{ min-height: 0; height: {DOWNLOADS_EMPTY_HEIGHT}; }}
#downloads .empty .icon {{ height: 50%; }}
#downloads .filename {{ display: block; overflow-wrap: anywhere; font-size: 0; }}  /* 0: no gap before .png */
#downloads .filename .stem, #downloads .filename .ext {{ display: inline; white-space: normal;
                                                         font-size: var(--text-md); }}
#downloads .label-clear-button {{ display: none; }}
/* The upload box's label above the picture (the "remove" button sat over it). */
#input_image label[data-testid=block-label] {{ position: static; font-size: .8rem; margin: 0; }}
#input_image .top-panel {{ top: auto; bottom: 2px; }}  /* "remove image": in the bottom corner, not on the label */
#object_color .sam-colour {{ display: flex; align-items: center; gap: .6em; padding: .35em .5em; }}
#object_color input[type=color] {{ width: 44px; height: 32px; padding: 0; border: 1px solid #0006;
                                  border-radius: 4px; background: none; cursor: pointer; }}
#object_color input[type=color]:disabled {{ opacity: .4; cursor: default; }}
.hidden-controls {{ display: none !important; }}
.tool-row button {{ min-height: 44px; }}
@media (pointer: coarse) {{
  #help p:last-child, #help_again p:last-child {{ display: none; }}  /* the keyboard shortcuts */
}}
@media (max-width: {PHONE_MAX_WIDTH}) {{
  #title h1 {{ font-size: 1.15rem; }}
  #title p {{ display: none; }}
  #examples .gallery {{ gap: 4px; }}
  #examples .gallery-item .container {{ width: {PHONE_EXAMPLE_SIDE}; height: {PHONE_EXAMPLE_SIDE}; }}
  #history button {{ padding-inline: .3em; }}
  #mode .wrap {{ flex-wrap: wrap; }}  /* five modes: two rows of large touch targets */
  #mode label {{ flex-basis: {PHONE_MODE_BASIS}; }}
  #display .sam-brush span {{ display: none; }}  /* the chosen mode shows in the tool bar; room for the zoom */
  #display .sam-brush input[type=range] {{ width: {PHONE_BRUSH_SLIDER_WIDTH}; }}
  #status {{ font-size: .8em; }}
  #input_image label[data-testid=block-label] {{ font-size: .7rem; }}
  #input_image label[data-testid=block-label] > span {{ display: none; }}  /* the icon: room for the words */
  #status .{STATUS_ENGINE_CLASS} {{ display: none; }}  /* engine details: desktop only (one or two lines) */
  /* On a phone the image fills the width; no tall empty frame around a landscape photo. */
  #display .sam-view[data-state=image] {{ max-height: min({PHONE_DISPLAY_HEIGHT}, var(--sam-natural-h)); }}
}}
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
  else if (k === 'd') mode(3);
  else if (k === 'e') mode(4);
  else if (k === 'z' && !e.shiftKey) click('undo_btn');
  else if (k === 'y' || (k === 'z' && e.shiftKey)) click('redo_btn');
  else if (k === 'escape') click('clear_btn');
  else if (k === 'a') click('add_object_btn');
  else if (k === 'r') click('refine_btn');
  else if (k === '1' || k === '2' || k === '3') click('candidate_' + k + '_btn');
  else handled = false;
  if (handled) e.preventDefault();
});
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

# The object list's rows select their object (through the hidden "Selected object" radio, whose .input event
# the app handles), and the selected row is kept in view when the list scrolls.
OBJECT_ROWS_SCRIPT = """
<script>
(() => {
  document.addEventListener('click', (e) => {
    const row = e.target instanceof Element ? e.target.closest('#object-list .obj-row') : null;
    if (!row || row.classList.contains('selected')) return;
    const radios = document.querySelectorAll('#object_select input[type=radio]');
    const radio = [...radios].find((r) => r.value === row.dataset.objectId);
    if (radio) radio.click();
  });
  // Keep the selected row in view when the selection changes (e.g. "+ New object" or segment everything
  // select the last row) or the list is drawn anew; leave the user's own scrolling alone otherwise.
  let seen = null, seenId = null;
  new MutationObserver(() => {
    const list = document.getElementById('object-list');
    const row = list && list.querySelector('.obj-row.selected');
    const id = row ? row.dataset.objectId : null;
    if (!list || (list === seen && id === seenId)) return;
    seen = list;
    seenId = id;
    if (row && (row.offsetTop < list.scrollTop ||
                row.offsetTop + row.offsetHeight > list.scrollTop + list.clientHeight)) {
      list.scrollTop = row.offsetTop - (list.clientHeight - row.offsetHeight) / 2;
    }
  }).observe(document, {childList: true, subtree: true});
})();
</script>
"""

# Names and roles Gradio leaves out (issue 22, item 2), kept up to date as Gradio redraws:
# * the three mode radios are one radio group (one Tab stop, arrow keys choose; Gradio names each radio apart),
#   named "Prompt mode";
# * each example button is named after its file ("Example: coffee.jpg"; Gradio's <img> has an empty alt);
# * each download link is named by its file name (Gradio's text is its size, "2.8 KB");
# * a new download list is announced in the view's polite live region ("Export ready: 12 files ...").
A11Y_SCRIPT = f"""
<script>
(() => {{
  const fileName = (url) => decodeURIComponent(String(url || '').split('?')[0].split(/[\\/=]/).pop());
  let listed = '';
  const fix = () => {{
    const group = document.querySelector('#mode .wrap');
    if (group && group.getAttribute('role') !== 'radiogroup') {{
      group.setAttribute('role', 'radiogroup');
      group.setAttribute('aria-label', {json.dumps(MODE_GROUP_LABEL)});
    }}
    for (const r of document.querySelectorAll('#mode input[type=radio]')) if (r.name !== 'sam-mode') r.name = 'sam-mode';
    for (const b of document.querySelectorAll('#examples button.gallery-item')) {{
      const img = b.querySelector('img');
      const label = img ? 'Example: ' + fileName(img.getAttribute('src')) : null;
      if (label && b.getAttribute('aria-label') !== label) b.setAttribute('aria-label', label);
    }}
    const links = [...document.querySelectorAll('#downloads a[download]')];
    for (const a of links) {{
      const name = a.getAttribute('download');
      if (name && a.getAttribute('aria-label') !== name) a.setAttribute('aria-label', name);
    }}
    const now = links.map((a) => a.href).join(' ');
    if (now !== listed) {{
      listed = now;
      const view = document.querySelector('#display');
      if (links.length && view && view.samView) {{
        view.samView.announce(`Export ready: ${{links.length}} files in the download list.`);
      }}
    }}
  }};
  let queued = false;
  new MutationObserver(() => {{
    if (!queued) {{ queued = true; requestAnimationFrame(() => {{ queued = false; fix(); }}); }}
  }}).observe(document, {{childList: true, subtree: true, attributes: true, attributeFilter: ['src', 'href', 'name']}});
}})();
</script>
"""

HEAD = KEYBOARD_SCRIPT + IN_ORDER_SCRIPT + OBJECT_ROWS_SCRIPT + A11Y_SCRIPT

# ---------------------------------------------------------------------------- the image view
VIEW_EVENTS = ("prompt", "stroke", "resync", "zoomed")
"""Custom events the view's page code triggers (``trigger(name, data)``); Gradio registers a listener
``display.<name>(...)`` only for names that appear quoted in ``js_on_load``, so every name is listed here.
``prompt``: a click/tap/Enter ``{"kind": "click", "x", "y"}`` or a dragged box ``{"kind": "box", "x", "y",
"x1", "y1"}`` in original pixels; ``stroke``: a brush or eraser stroke when it ends ``{"points": [[x, y], ...],
"radius": r, "erase": bool}`` in original pixels (``static/view/brush.js``); ``resync``: the page could not load
a file of the scene and asks for a fresh one; ``zoomed``: the view has been zoomed at least 2x and still for
0.5 s, ``{"rect": [x0, y0, x1, y1]}`` in the original pixel edge frame, or ``{}`` once it is zoomed out
(``sam_demo/static/view/zoomed.js``)."""
VIEW_TEMPLATE = ('<div class="sam-view" data-state="empty">'
                 '<div class="sam-placeholder">Upload an image (or pick an example), then click on it.</div></div>')
"""The view's constant HTML (Gradio re-renders a ``gr.HTML`` only when its template changes, never here);
``sam_demo/static/view/main.js`` adds the canvas and controls to it."""
VIEW_BOOT = (
    f"const events = {json.dumps(list(VIEW_EVENTS))};\n"
    "const root = String((window.gradio_config && window.gradio_config.root) || location.origin + location.pathname)"
    ".replace(/\\/?$/, '/');\n"
    "import(root + 'view/static/main.js').then((m) => m.mount({element, trigger, props, watch, root, events}))"
    ".then((view) => { import(root + 'view/static/zoomed.js').then((z) => z.mount(view))"
    "  .catch((err) => console.error('the zoomed-view plugin did not load', err));"
    "  import(root + 'view/static/brush.js').then((b) => b.install(view))"  # brush and eraser
    "  .catch((err) => console.error('the brush plugin did not load', err));"
    "  import(root + 'sam-page/js/preview.js').then((p) => p.install(view, {root}))"  # live preview
    "  .catch((err) => console.warn('live preview not installed', err)); })"
    ".catch((err) => console.error('the image view did not load', err));\n")
"""The view component's ``js_on_load``: imports the view's modules from the app (``sam_demo.routes``), then mounts
its plugins (``zoomed.js``: the zoomed view's region, for refining while zoomed; ``brush.js``: the brush and the
eraser; ``sam-page/js/preview.js``: live previews from the page's own decoder, :mod:`sam_demo.page_decoder`)."""


# ---------------------------------------------------------------------------- the object's colour
COLOUR_EVENT = "pick"
"""The colour control's custom event: ``{"color": "#rrggbb"}``, sent once when the browser's picker closes."""
COLOUR_TEMPLATE = ('<label class="sam-colour"><span>Colour</span>'
                   '<input type="color" aria-label="Colour of the selected object" disabled></label>')
"""The colour control's constant HTML (never re-rendered; ``sam_demo/static/view/colour.js`` shows the value)."""
COLOUR_BOOT = (
    "const root = String((window.gradio_config && window.gradio_config.root) || location.origin + location.pathname)"
    ".replace(/\\/?$/, '/');\n"
    f"import(root + 'view/static/colour.js').then((m) => m.mount({{element, trigger, props, watch}}))"
    ".catch((err) => console.error('the colour control did not load', err));  "
    f"// trigger({json.dumps(COLOUR_EVENT)}, ...)\n")
"""The colour control's ``js_on_load``; it names the custom event in quotes, as Gradio needs to register
``object_color.pick(...)``."""
