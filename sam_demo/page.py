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
HEAD = """
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
