"""The scene: everything the page's view needs to draw an image and its objects, as one JSON value.

The app sends the scene as the ``value`` of the view component (``gr.HTML``, ``elem_id="display"``)
after every edit; the page (``sam_demo/static/view/``) draws it. Pure functions of the editor, the
image record and the service's :class:`~sam_demo.view.View`; no pixels travel in it (the photo and
the mask layers are fetched by URL, :mod:`sam_demo.routes`, and cached by the browser).

Schema (version :data:`SCENE_VERSION`; keys are short because the scene travels after every click)::

    {
      "v": 1,                                   # this schema's version
      "image": {
        "w": W, "h": H,                         # upright original size (EXIF orientation applied), px
        "dw": w, "dh": h,                       # display copy size, px
        "token": "...",                         # this tab's grant for the image (sam_demo.grants)
        "display": "view/<token>/display.jpg",  # URLs relative to the app's root
        "full": "view/<token>/full.jpg",        # upright original at full resolution (load lazily)
        "layers": "view/<token>/layer/",        # + "<layer id>.png"
        "model": {"side": 1024, "sx": 1024/W, "sy": 1024/H},  # model frame: x_model = x * sx (squashed)
        "embeddings": {"key": "<sha256>",       # only with the page's decoder (sam_demo.page_decoder):
                       "url": "sam-page/embeddings/<model>/<token>",   # this tab's fetch of them,
                       "cacheUrl": "sam-page/cache/<model>/<sha256>"}  # the browser's cache entry
      },
      "objects": [                              # list order: later objects are drawn on top
        {"id": 3, "name": "Object 3", "color": "#e69f00",     # the object's colour (ObjectState.rgb)
         "visible": true, "selected": false, "auto": false,   # left out when default (OBJECT_DEFAULTS)
         "points": [[x, y, label], ...],        # ORIGINAL pixel-index coordinates, label 1 = include
         "box": [x0, y0, x1, y1] | null,        # ORIGINAL pixel-index coordinates
         "candidate": 0|1|2|null,               # the user's choice (null = best score)
         "shown": 0|1|2|null,                   # the candidate drawn (null without prompts)
         "score": iou | null,                   # predicted IoU of the shown candidate
         "scores": [iou0, iou1, iou2] | null,   # per candidate: the selected object only
         "strokes": n,                          # brush/eraser strokes it has (left out when 0)
         "own_mask": true,                      # only when set: the mask is not the whole-image decoder's
                                                # (refined in a crop, or brush strokes): no page preview
         "layer": {"id": "<24 hex>",            # content address of the 1-bit PNG
                   "rect": [x0, y0, x1, y1],    # what it covers, in ORIGINAL pixel EDGES (image = [0,W]x[0,H])
                   "size": [bw, bh]} | null}    # the bitmap's size, px (null: no prompts or empty mask)
      ],
      "selected": 3 | null,                     # id of the selected object (its prompts: objects[..])
      "pending": [x, y] | null,                 # a box's first corner, ORIGINAL pixel-index coordinates
      "view": {"opacity": 0.5, "outline": true} # as the controls were when the scene was made
    }

Objects found by segment everything (``auto``) carry no ``points``/``box`` unless selected: the view
draws no markers for them, and 256 of them would otherwise double the scene's size. Coordinates are
rounded to :data:`COORD_DIGITS` decimals (1/1000 of a pixel), layer rectangles to :data:`RECT_DIGITS`,
scores to :data:`SCORE_DIGITS`. Keys whose value is the default in :data:`OBJECT_DEFAULTS` are left out.
"""

from __future__ import annotations

import json
from typing import Any

from sam_onnx.geometry import MODEL_SIDE

from .editor import Editor, ObjectState
from .layers import Place
from .view import ObjectView, View, ViewOptions

SCENE_VERSION = 1
COORD_DIGITS = 3
RECT_DIGITS = 2
"""Decimals of layer rectangles (original pixels; 0.005 px at most off, 0.04 CSS px at 8x zoom)."""
SCORE_DIGITS = 4
OBJECT_DEFAULTS = {"visible": True, "selected": False, "auto": False, "candidate": None, "scores": None,
                   "strokes": 0}
"""Object keys left out of the scene when they have these values (most objects: 256 of them travel)."""
VIEW_URL_PREFIX = "view/"
"""Where the image routes live, relative to the app's root (``sam_demo.routes``)."""
EMPTY_SCENE = ""
"""The view's value before any image is open (the page shows its placeholder)."""


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _xy(values) -> list[float]:
    return [round(float(v), COORD_DIGITS) for v in values]


def image_urls(token: str) -> dict[str, str]:
    """The URLs of one granted image's files, relative to the app's root."""
    base = f"{VIEW_URL_PREFIX}{token}/"
    return {"display": base + "display.jpg", "full": base + "full.jpg", "layers": base + "layer/"}


def _layer(entry: tuple[str, Place] | None) -> dict[str, Any] | None:
    if entry is None or entry[1].empty:
        return None
    layer_id, layer = entry
    return {"id": layer_id, "rect": [round(v, RECT_DIGITS) for v in layer.rect], "size": [layer.size[1], layer.size[0]]}


def _object(obj: ObjectState, row: ObjectView, selected: bool, drawn: tuple[str, Place] | None,
            scores: tuple[float, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": obj.id, "name": obj.name, "color": _hex(obj.rgb)}
    for key, value in (("visible", row.visible), ("selected", selected), ("auto", obj.auto),
                       ("candidate", obj.candidate)):
        if value != OBJECT_DEFAULTS[key]:
            out[key] = value
    if selected or not obj.auto:
        out["points"] = [[*_xy((p.x, p.y)), int(p.label)] for p in obj.prompts.points]
        box = obj.prompts.box
        out["box"] = None if box is None else _xy((box.x0, box.y0, box.x1, box.y1))
    out["shown"] = row.candidate
    out["score"] = None if row.score is None else round(row.score, SCORE_DIGITS)
    if selected and scores:
        out["scores"] = [round(float(s), SCORE_DIGITS) for s in scores]
    if obj.strokes:
        out["strokes"] = len(obj.strokes)  # the page's brush draws a stroke until the scene counts it
    out["layer"] = _layer(drawn)
    if obj.crop is not None or obj.strokes:
        out["own_mask"] = True
    return out


def build_scene(editor: Editor, original_hw: tuple[int, int], display_hw: tuple[int, int], view: View,
                token: str, options: ViewOptions, image_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The scene (see the module docstring) of one tab's image after an edit.

    Args:
        editor: the tab's objects (prompts in original pixels).
        original_hw, display_hw: ``(H, W)`` of the upright original and ``(h, w)`` of the display copy.
        view: the service's :class:`~sam_demo.view.View` of this editor (rows, layers).
        token: the tab's grant for this image (:class:`sam_demo.grants.Grants`).
        options: opacity and outline, as the controls were.
        image_extra: more fields of ``image`` (the page decoder's ``embeddings``,
            :func:`sam_demo.page_decoder.scene_fields`).
    """
    (h, w), (dh, dw) = original_hw, display_hw
    rows = {row.id: row for row in view.objects}
    objects = [_object(o, rows[o.id], o.id == editor.selected_id, view.layers.get(o.id), view.candidate_scores)
               for o in editor.objects]
    pending = editor.pending_corner
    return {
        "v": SCENE_VERSION,
        "image": {"w": w, "h": h, "dw": dw, "dh": dh, "token": token, **image_urls(token),
                  "model": {"side": MODEL_SIDE, "sx": MODEL_SIDE / w, "sy": MODEL_SIDE / h}, **(image_extra or {})},
        "objects": objects,
        "selected": editor.selected_id,
        "pending": None if pending is None else _xy(pending),
        "view": {"opacity": float(options.opacity), "outline": bool(options.contour)},
    }


def files_of(scene: dict[str, Any]) -> list[str]:
    """The URLs (relative to the app's root) the page loads to draw ``scene``: the display copy, then each
    visible object's layer, in list order."""
    image = scene["image"]
    return [image["display"], *(image["layers"] + o["layer"]["id"] + ".png" for o in scene["objects"]
                                if o.get("visible", True) and o["layer"] is not None)]


def to_json(scene: dict[str, Any]) -> str:
    """The scene as the compact JSON text the view component's value carries."""
    return json.dumps(scene, separators=(",", ":"), ensure_ascii=False)
