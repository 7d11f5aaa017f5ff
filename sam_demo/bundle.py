"""Files a user takes away and brings back: the export bundle and the prompts file.

The export bundle holds, at the **original** resolution: a binary mask PNG per
object, a label map, an RGBA cut-out, a COCO RLE JSON (the exact masks), the
visible objects as polygons with their holes (GeoJSON, YOLO-seg with its class
list, COCO polygons, SVG outlines; :mod:`sam_onnx.vector`, simplified with the
export's tolerance), the prompts file and a zip of them all. The prompts file (JSON, format :data:`PROMPTS_FILE_FORMAT`)
holds an editor's objects and prompts in original pixels, with the image's
size and content hash, and loads back into the same image only.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sam_onnx import export, vector
from sam_onnx.errors import InvalidPromptError
from sam_onnx.geometry import CropFrame
from sam_onnx.strokes import paint, strokes_from_list
from sam_onnx.types import NUM_CANDIDATES, MaskResult, Prompts, short_repr

from .editor import (
    MAX_OBJECTS,
    MAX_STROKE_POINTS_PER_IMAGE,
    MAX_STROKES_PER_OBJECT,
    Editor,
    ObjectState,
    clean_name,
    crop_holds,
    parse_color,
)
from .limits import parse_json
from .overlay import color_for

PROMPTS_FILE_FORMAT = "sam_onnx.session/2"
"""The ``format`` tag of the prompts files this app writes (the name predates the tag and stays).

Version 2 adds optional per-object fields to version 1, each absent or ``null`` when unused:
``"crop"``, ``[x0, y0, x1, y1]`` whole pixels, where the object was refined
(:attr:`sam_demo.editor.ObjectState.crop`); ``"strokes"``, the object's brush and eraser strokes in order,
each ``{"points": [[x, y], ...], "radius": r, "erase": bool}`` in original pixels
(:attr:`sam_demo.editor.ObjectState.strokes`); ``"color"``, ``"#rrggbb"``, the colour the object is drawn and
exported in (written for every object; absent or ``null``: the palette colour of ``"color_index"``). Later
additions to version 2 stay optional, so every version-2 reader ignores what it does not know."""
PROMPTS_FILE_FORMATS = ("sam_onnx.session/1", PROMPTS_FILE_FORMAT)
"""Formats this app reads: version 1 files (before refinement) load as objects without a crop."""
PROMPTS_FILE_MAX_BYTES = 2 * 1024 * 1024
"""Largest prompts file accepted: the largest the app writes (256 objects of 32 points, 60-letter names, each with
its colour) is under 0.75 MB (tests/test_input_caps.py)."""


# ---------------------------------------------------------------------------- prompts file
def prompts_file_dict(editor: Editor, image_sha256: str | None = None, model: str = "") -> dict[str, Any]:
    """JSON-ready prompts file: image size (and hash), the model that made the masks, objects with their prompts
    and mask choices. ``model`` is an optional version-2 field (readers ignore it; prompts load on any model)."""
    h, w = editor.current.image_hw
    return {
        "format": PROMPTS_FILE_FORMAT,
        "image": {"width": w, "height": h, "sha256": image_sha256},
        "model": model or None,
        "objects": [{"id": o.id, "name": o.name, "color_index": o.color_index, "color": vector.hex_color(o.rgb),
                     "visible": editor.is_visible(o.id),
                     "candidate": o.candidate, **({"auto": True} if o.auto else {}), **o.prompts.to_dict(),
                     "crop": None if o.crop is None else list(o.crop.box),
                     "strokes": [st.to_dict() for st in o.strokes] or None} for o in editor.objects],
    }


def prompts_file_text(editor: Editor, image_sha256: str | None = None) -> str:
    """The prompts file as written to disk (:func:`prompts_file_dict`, one JSON value per line)."""
    return json.dumps(prompts_file_dict(editor, image_sha256), indent=1)


MAX_OBJECT_ID = 2**31 - 1
"""Largest object id in a prompts file (ids travel to the browser as numbers, which must stay exact)."""


def _whole_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _saved_size(image: Any) -> tuple[int, int]:
    """``(height, width)`` recorded in a prompts file's ``"image"`` entry, checked."""
    if not isinstance(image, Mapping):
        raise InvalidPromptError("This is not a prompts file saved by this app: 'image' must hold the image's "
                                 "width and height.")
    width, height = image.get("width"), image.get("height")
    for name, value in (("width", width), ("height", height)):
        if not _whole_number(value) or value < 1:
            raise InvalidPromptError(f"The prompts file's image {name} must be a whole number of pixels, "
                                     f"got {short_repr(value)}.")
    return height, width


def _saved_crop(value: Any, image_hw: tuple[int, int], prompts: Prompts, where: str) -> CropFrame | None:
    """An object's ``"crop"`` entry, checked: ``null``/absent, or four whole pixels inside the image that hold
    the object's include points (as the editor keeps them)."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 4 or not all(_whole_number(v) for v in value):
        raise InvalidPromptError(f"{where}: 'crop' must be [x0, y0, x1, y1] in whole pixels or null, "
                                 f"got {short_repr(value)}.")
    try:
        crop = CropFrame(tuple(image_hw), tuple(value))
    except ValueError:
        raise InvalidPromptError(f"{where}: the crop {short_repr(value)} is not a rectangle inside the "
                                 f"{image_hw[1]}×{image_hw[0]} image.") from None
    if not crop_holds(crop, prompts):
        raise InvalidPromptError(f"{where}: its crop does not hold its include points.")
    return crop


def editor_from_prompts_file(data: Mapping[str, Any], image_hw: tuple[int, int]) -> Editor:
    """Rebuild an editor from :func:`prompts_file_dict` output, for an image of size ``image_hw``.

    Every value is checked for its type and range before anything is built:
    the number of objects before any object, an object's points before any
    point (:meth:`~sam_onnx.types.Prompts.from_dict`); ids are whole numbers
    from 1 to :data:`MAX_OBJECT_ID`, a mask choice is 0, 1, 2 or null, a crop
    null or a rectangle of the image that holds the object's prompts, a colour
    ``"#rrggbb"`` or null. Files of every version in
    :data:`PROMPTS_FILE_FORMATS` load.

    Raises:
        InvalidPromptError: not a prompts file, made for an image of another
            size, or holding invalid values (the message names the object).
    """
    if not isinstance(data, Mapping) or data.get("format") not in PROMPTS_FILE_FORMATS:
        raise InvalidPromptError("This is not a prompts file saved by this app.")
    saved_hw = _saved_size(data.get("image"))
    if saved_hw != tuple(image_hw):
        raise InvalidPromptError(f"These prompts were made for a {saved_hw[1]}×{saved_hw[0]} image; "
                                 f"this one is {image_hw[1]}×{image_hw[0]}.")
    raw = data.get("objects")
    if not isinstance(raw, list) or len(raw) > MAX_OBJECTS:
        raise InvalidPromptError(f"'objects' must be a list of at most {MAX_OBJECTS} objects.")
    objects: list[ObjectState] = []
    ids: set[int] = set()
    hidden: set[int] = set()
    stroke_points = 0
    for index, item in enumerate(raw):
        where = f"Object {index + 1}"
        if not isinstance(item, Mapping):
            raise InvalidPromptError(f"{where} is not a mapping.")
        try:
            prompts = Prompts.from_dict(item)
            prompts.check_inside(image_hw)
        except InvalidPromptError as exc:
            raise InvalidPromptError(f"{where}: {exc}") from None
        candidate = item.get("candidate")
        if candidate is not None and (not _whole_number(candidate) or candidate not in range(NUM_CANDIDATES)):
            raise InvalidPromptError(f"{where}: mask choice must be 0, 1, 2 or null, got {short_repr(candidate)}.")
        object_id = item.get("id", index + 1)
        if not _whole_number(object_id) or not 1 <= object_id <= MAX_OBJECT_ID:
            raise InvalidPromptError(f"{where}: 'id' must be a whole number from 1 to {MAX_OBJECT_ID}, "
                                     f"got {short_repr(object_id)}.")
        if object_id in ids:
            raise InvalidPromptError(f"{where}: id {object_id} is used twice; ids must be distinct.")
        ids.add(object_id)
        color = item.get("color_index", index)
        if not _whole_number(color) or not 0 <= color <= MAX_OBJECTS:
            color = index
        name = item.get("name", "")
        rgb = None
        if item.get("color") is not None:
            try:
                rgb = parse_color(item["color"])
            except InvalidPromptError as exc:
                raise InvalidPromptError(f"{where}: {exc}") from None
            if rgb == color_for(color):
                rgb = None  # the palette's colour (ObjectState.color)
        crop = _saved_crop(item.get("crop"), image_hw, prompts, where)
        try:
            strokes = strokes_from_list(item.get("strokes"), image_hw, MAX_STROKES_PER_OBJECT)
        except InvalidPromptError as exc:
            raise InvalidPromptError(f"{where}: {exc}") from None
        if strokes and prompts.is_empty:
            raise InvalidPromptError(f"{where}: it has strokes but no prompts.")
        stroke_points += sum(len(st.points) for st in strokes)
        if stroke_points > MAX_STROKE_POINTS_PER_IMAGE:
            raise InvalidPromptError(f"The strokes hold more than {MAX_STROKE_POINTS_PER_IMAGE} points in all.")
        objects.append(ObjectState(object_id, clean_name(name if isinstance(name, str) else "", f"Object {object_id}"),
                                   prompts, color, candidate, crop, strokes, auto=item.get("auto") is True,
                                   color=rgb))
        if item.get("visible", True) is False:
            hidden.add(object_id)
    return Editor.from_objects(image_hw, objects, hidden)


def read_prompts_file(path: str | Path, image_hw: tuple[int, int], image_sha256: str, *,
                      pixels_sha256: Callable[[], str] | None = None) -> Editor:
    """An editor from a prompts file on disk, checked against the open image.

    ``image_sha256`` is the open image's file hash; a file saved with another hash is refused unless
    ``pixels_sha256()``, the hash of the open image's pixels (the key files were saved with before), gives it.

    The file's size is checked before it is read, its nesting before it is
    parsed (:func:`sam_demo.limits.parse_json`), its structure before any
    object is built (:func:`editor_from_prompts_file`).

    Raises:
        InvalidPromptError: empty, too large, nested too deeply, not JSON, not
            a prompts file, or saved for another image.
    """
    path = Path(path)
    if path.stat().st_size > PROMPTS_FILE_MAX_BYTES:
        raise InvalidPromptError(f"The prompts file is larger than {PROMPTS_FILE_MAX_BYTES // (1024 * 1024)} MB.")
    parsed = parse_json(path.read_bytes(), "The prompts file", max_bytes=PROMPTS_FILE_MAX_BYTES)
    editor = editor_from_prompts_file(parsed, image_hw)
    saved_hash = parsed["image"].get("sha256")
    if saved_hash and saved_hash != image_sha256 and (pixels_sha256 is None or saved_hash != pixels_sha256()):
        raise InvalidPromptError("These prompts were saved for a different image of the same size.")
    return editor


# ---------------------------------------------------------------------------- export bundle
def coco_annotation(obj: ObjectState, result: MaskResult, candidate: int, mask: NDArray[np.bool_],
                    ann_id: int) -> dict[str, Any]:
    """One object's COCO annotation: RLE, area and box of ``mask``, plus its scores and prompts."""
    return {
        "id": ann_id, "image_id": 1, "category_id": 1, "iscrowd": 0,
        "object_id": obj.id, "name": obj.name,
        **export.coco_mask_fields(mask),
        "score": round(float(result.scores[candidate]), 6),
        "candidate": candidate, "predicted_ious": [round(float(s), 6) for s in result.scores],
        "object_score": round(result.object_score, 6),
        "prompts": obj.prompts.to_dict(), "strokes": len(obj.strokes),
    }


def object_mask(obj: ObjectState, result: MaskResult) -> NDArray[np.bool_]:
    """The ``(H, W)`` bool mask an object exports at the original resolution: its chosen candidate, then its
    strokes (:mod:`sam_onnx.strokes`) in order."""
    candidate = result.best_index if obj.candidate is None else obj.candidate
    mask = result.mask(candidate)
    if not obj.strokes:
        return mask
    return paint(np.array(mask), obj.strokes, mask.shape)


COCO_POLYGON_NOTE = ("COCO polygons cannot hold holes (pycocotools unites an annotation's rings): each part's "
                     "outer ring is given, so holes are filled. The exact masks are the RLE in *_coco_rle.json.")
YOLO_NOTE = "YOLO polygons have no holes: one line per part (its outer ring); class = the object's line in classes.txt."


def vector_files(out: Path, name: str, image_file_name: str, hw: tuple[int, int], objects: Sequence[ObjectState],
                 results: Sequence[MaskResult], masks: Sequence[NDArray[np.bool_]], *,
                 tolerance: float = vector.DEFAULT_TOLERANCE) -> list[Path]:
    """The polygon files of ``objects`` (the visible ones, in list order) and their ``(H, W)`` original masks.

    Writes GeoJSON (one feature per object: name, colour, scores, area, box), YOLO-seg lines with a class list
    (class = the object's index here), COCO polygons (outer rings; holes filled, see :data:`COCO_POLYGON_NOTE`)
    and an SVG of the outlines. ``tolerance`` is the simplification in original pixels (0 = exact).

    Returns:
        The written files.
    """
    tolerance = vector.check_tolerance(tolerance)
    polygons, items, annotations = [], [], []
    for index, (obj, result, mask) in enumerate(zip(objects, results, masks)):
        candidate = result.best_index if obj.candidate is None else obj.candidate
        shapes = vector.mask_polygons(mask, tolerance=tolerance)
        polygons.append(shapes)
        box = export.mask_bbox(mask)
        scores = {"score": round(float(result.scores[candidate]), 6), "candidate": candidate,
                  "predicted_ious": [round(float(s), 6) for s in result.scores],
                  "object_score": round(result.object_score, 6)}
        items.append(vector.VectorObject(obj.name, shapes, obj.rgb,
                                         {"object_id": obj.id, "class": index, **scores, "strokes": len(obj.strokes),
                                          "area": export.mask_area(mask), "bbox": box}))
        annotations.append({"id": index + 1, "image_id": 1, "category_id": index + 1, "iscrowd": 0,
                            "object_id": obj.id, "name": obj.name, "segmentation": vector.coco_polygons(shapes),
                            "area": export.mask_area(mask), "bbox": box, **scores})
    h, w = hw
    image = {"file_name": image_file_name}
    geojson = out / f"{name}_polygons.geojson"
    geojson.write_text(json.dumps(vector.geojson_feature_collection(items, hw, image=image, tolerance=tolerance)))
    yolo = out / f"{name}_yolo_seg.txt"
    yolo.write_text("".join(line + "\n" for line in vector.yolo_seg_lines(polygons, hw)))
    classes = out / f"{name}_yolo_classes.txt"
    classes.write_text("".join(obj.name + "\n" for obj in objects))
    coco = out / f"{name}_coco_polygons.json"
    coco.write_text(json.dumps({
        "info": {"description": COCO_POLYGON_NOTE, "tolerance_px": tolerance},
        "images": [{"id": 1, "file_name": image_file_name, "width": w, "height": h}],
        "categories": [{"id": i + 1, "name": o.name} for i, o in enumerate(objects)],
        "annotations": annotations}, indent=1))
    svg = out / f"{name}_outlines.svg"
    svg.write_text(vector.svg_document(items, hw, title=image_file_name))
    return [geojson, yolo, classes, coco, svg]


def write_bundle(out_dir: str | Path, name: str, image_file_name: str, image_sha256: str, rgb: NDArray[np.uint8],
                 editor: Editor, objects: Sequence[ObjectState], results: Sequence[MaskResult],
                 step: Callable[[int, int], None] = lambda done, total: None, *,
                 tolerance: float = vector.DEFAULT_TOLERANCE, model: str = "") -> list[Path]:
    """Write the export bundle for ``objects`` (those with prompts) and their decoder ``results``.

    Args:
        out_dir: folder to write into (created if needed).
        name: file-name-safe stem for every file.
        image_file_name: the image's file name, recorded in the COCO JSON.
        image_sha256: the SHA-256 of the image's file (COCO JSON and prompts file).
        rgb: ``(H, W, 3)`` uint8 original image (for the cut-out).
        editor: the user's editor (visibility, and the prompts file).
        objects: the objects to export, in order; label ``i + 1`` is ``objects[i]``.
        results: their decoder results, in the same order.
        step: called as ``step(done, total)`` after each object's mask file (progress).
        tolerance: polygon simplification in original pixels for the vector files (0 = exact).
        model: the model that made the masks (``"sam2.1-hiera-small"``), named in the COCO JSON's ``info`` and
            in the prompts file.

    Returns:
        The written files; the last one is a zip holding all the others.
    """
    tolerance = vector.check_tolerance(tolerance)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    masks = []
    files: list[Path] = []
    annotations = []
    for obj, result in zip(objects, results):
        candidate = result.best_index if obj.candidate is None else obj.candidate
        mask = object_mask(obj, result)
        masks.append(mask)
        path = out / f"{name}_object{obj.id}_mask.png"
        export.mask_image(mask).save(path, format="PNG")
        files.append(path)
        annotations.append(coco_annotation(obj, result, candidate, mask, len(annotations) + 1))
        step(len(annotations), len(objects))
    labels = out / f"{name}_labels.png"
    export.label_map_image(export.label_map(masks)).save(labels, format="PNG")
    shown = [i for i, o in enumerate(objects) if editor.is_visible(o.id)] or list(range(len(objects)))
    cut = out / f"{name}_cutout.png"
    export.cutout(rgb, np.logical_or.reduce([masks[i] for i in shown])).save(
        cut, format="PNG", compress_level=export.CUTOUT_PNG_COMPRESS_LEVEL)
    h, w = rgb.shape[:2]
    coco = {"info": {"description": "SAM 2.1 masks", "model": model or None},
            "images": [{"id": 1, "file_name": image_file_name, "width": w, "height": h, "sha256": image_sha256}],
            "categories": [{"id": 1, "name": "object"}],
            "annotations": annotations,
            "label_map": {"file": labels.name, "values": {str(i + 1): o.name for i, o in enumerate(objects)}}}
    coco_path = out / f"{name}_coco_rle.json"
    coco_path.write_text(json.dumps(coco, indent=1))
    polygon_files = vector_files(out, name, image_file_name, (h, w), [objects[i] for i in shown],
                                 [results[i] for i in shown], [masks[i] for i in shown], tolerance=tolerance)
    prompts_path = out / f"{name}_prompts.json"
    prompts_path.write_text(json.dumps(prompts_file_dict(editor, image_sha256, model), indent=1))
    files += [labels, cut, coco_path, *polygon_files, prompts_path]
    bundle = out / f"{name}_sam2_export.zip"
    with zipfile.ZipFile(bundle, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for f in files:  # PNGs are compressed already: store them, deflate only the JSON
            zf.write(f, f.name, compress_type=zipfile.ZIP_STORED if f.suffix == ".png" else None)
    return files + [bundle]
