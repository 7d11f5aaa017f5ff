"""Masks → polygons with every part and every hole, and the vector files annotation tools import.

Frame: polygons are in **pixel-edge coordinates** of the original image
(:data:`sam_onnx.geometry.EDGE_OFFSET`): pixel ``(col c, row r)`` is the unit
square ``[c, c + 1] × [r, r + 1]`` and the image spans ``[0, W] × [0, H]``,
x to the right, y down. This is the frame of COCO polygons (pycocotools fills
``[0, 0, 2, 0, 2, 2, 0, 2]`` as exactly the 2 × 2 top-left pixels), of YOLO
(after dividing by ``W`` and ``H``) and of SVG drawn at 1:1.

How a mask becomes polygons (:func:`mask_polygons`):

1. **Specks** (8-connected parts with fewer than ``min_area`` pixels,
   :data:`DEFAULT_MIN_AREA`) are dropped from the mask first: stray pixels
   would otherwise become many tiny polygons, or vanish one tool at a time
   (cvat#7520). Holes are never filled.
2. **Tracing**: each horizontal run of mask pixels is a rectangle, and GEOS
   (through Shapely) unites them. The union of a mask's pixel squares *is* its
   area, so the result is exact by construction: outer rings and holes on pixel
   edges, every part, diagonal neighbours as two polygons touching at a corner,
   a one-pixel neck kept. Its validity (OGC) is GEOS's guarantee.
3. **Simplification**: Douglas–Peucker with ``tolerance`` (original pixels,
   :data:`DEFAULT_TOLERANCE`) keeping the topology (no ring collapses or
   crosses another). Vertices are a subset of the exact ones, so every
   coordinate stays a whole number. ``tolerance=0`` only removes collinear
   vertices: the polygons are still the exact mask.

Rasterising back (:func:`rasterize`) counts a pixel in when its centre
``(c + 0.5, r + 0.5)`` is inside the even-odd area: exact at tolerance 0, and
IoU ≥ 0.99 at the default tolerance on the shapes in ``tests/test_vector.py``.

Why Shapely and not OpenCV's ``findContours``: Shapely (BSD-3, a 2.3 MB wheel
over GEOS, wheels for Linux, macOS and Windows on CPython 3.10-3.14) does the
union, the topology-preserving simplification, ring orientation and validity
in one library; OpenCV (Apache-2.0, a 61 MB wheel, 153 MB installed) traces
pixel *centres*, so exact pixel-edge rings need a 2× upscale, and it was not
faster here (commit message: 12 MP masks, both ways).

Writers (pure; ``json.dumps`` / write them yourself): GeoJSON
(:func:`geojson_feature_collection`), YOLO-seg (:func:`yolo_seg_lines`), COCO
polygons (:func:`coco_polygons`, outer rings only: COCO polygons cannot hold
holes, RLE stays the exact format), SVG (:func:`svg_document`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry import MultiPolygon, Polygon

from .masks import small_components

DEFAULT_TOLERANCE = 0.7
"""Douglas–Peucker tolerance in original pixels for exported polygons, measured (``python -m bench.bench_vector``,
README "Vector exports"): the largest of 0, 0.5, 0.7, 1, 1.5, 2, 3 px that keeps IoU ≥ 0.99 on every round-trip
test shape (lowest 0.996); it halves the vertices of a 12 MP object's staircase outline. At 1 px the 45° stairs
collapse too (vertices ÷ 8) but thin shapes fall to IoU 0.977-0.988: users who want fewer vertices move the
detail slider."""
MAX_TOLERANCE = 20.0
"""Largest tolerance accepted (beyond it an object's outline is a rough hull)."""
DEFAULT_MIN_AREA = 16
"""Parts (8-connected) smaller than this many pixels are dropped before tracing (a 4 × 4 square is kept)."""
MAX_MIN_AREA = 1_000_000
YOLO_DECIMALS = 6
"""Decimals of normalised YOLO coordinates: 1e-6 of a 100,000 px side is a tenth of a pixel."""
SVG_FILL_OPACITY = 0.4
SVG_STROKE_WIDTH = 2.0
"""Outline width in screen pixels (``vector-effect: non-scaling-stroke``)."""


def _check_mask(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"expected an (H, W) mask, got shape {mask.shape}")
    return mask.astype(bool, copy=False)


def check_tolerance(tolerance: float) -> float:
    """A tolerance in original pixels, in ``[0, MAX_TOLERANCE]``.

    Raises:
        ValueError: not a finite number in range.
    """
    try:
        value = float(tolerance)
    except (TypeError, ValueError):
        raise ValueError(f"The polygon tolerance must be a number of pixels, got {tolerance!r}.") from None
    if not math.isfinite(value) or not 0 <= value <= MAX_TOLERANCE:
        raise ValueError(f"The polygon tolerance must be from 0 to {MAX_TOLERANCE:g} pixels, got {tolerance!r}.")
    return value


def drop_specks(mask: NDArray[np.bool_], min_area: int = DEFAULT_MIN_AREA) -> NDArray[np.bool_]:
    """``mask`` without its 8-connected parts of fewer than ``min_area`` pixels (a new array; holes untouched)."""
    mask = _check_mask(mask)
    if min_area <= 1 or not mask.any():
        return mask.copy()
    return mask & ~small_components(mask, int(min_area) - 1)


def _window(mask: NDArray[np.bool_]) -> tuple[NDArray[np.bool_], tuple[int, int]]:
    """The smallest window of ``mask`` holding all its pixels, and the window's ``(x, y)`` (``(0, 0)``-shaped when
    empty)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return mask[:0, :0], (0, 0)
    cols = np.flatnonzero(mask[rows[0]:rows[-1] + 1].any(axis=0))
    r0, c0 = int(rows[0]), int(cols[0])
    return mask[r0:int(rows[-1]) + 1, c0:int(cols[-1]) + 1], (c0, r0)


def trace(mask: NDArray[np.bool_], offset: tuple[int, int] = (0, 0)) -> MultiPolygon:
    """The exact area of ``mask`` as polygons on pixel edges (no speck removal, no simplification).

    Args:
        mask: ``(h, w)`` bool, a whole mask or a window of one.
        offset: original-pixel ``(x, y)`` of the window's top-left pixel.

    Returns:
        A valid ``MultiPolygon`` in pixel-edge coordinates (empty for an empty mask), exteriors
        counter-clockwise in the numbers (positive signed area), holes clockwise.
    """
    window, (c0, r0) = _window(_check_mask(mask))
    if window.size == 0:
        return MultiPolygon()
    padded = np.zeros((window.shape[0], window.shape[1] + 2), np.int8)
    padded[:, 1:-1] = window
    change = np.diff(padded, axis=1)
    run_rows, starts = np.nonzero(change == 1)
    _, ends = np.nonzero(change == -1)
    x0, y0 = c0 + int(offset[0]), r0 + int(offset[1])
    boxes = shapely.box(starts + x0, run_rows + y0, ends + x0, run_rows + y0 + 1)
    return _as_multipolygon(shapely.union_all(boxes))


def _as_multipolygon(geometry) -> MultiPolygon:
    """Polygonal parts of a geometry as one oriented MultiPolygon (exteriors CCW in the numbers)."""
    parts = [g for g in shapely.get_parts(geometry) if isinstance(g, Polygon) and not g.is_empty]
    if not parts:
        return MultiPolygon()
    return shapely.orient_polygons(MultiPolygon(parts), exterior_cw=False)


def simplify(polygons: MultiPolygon, tolerance: float = DEFAULT_TOLERANCE) -> MultiPolygon:
    """Douglas–Peucker with ``tolerance`` (pixels), topology kept; 0 drops collinear vertices only."""
    tolerance = check_tolerance(tolerance)
    if polygons.is_empty:
        return polygons
    # Collinear vertices first: GEOS keeps a ring's start point, which the tracer may leave mid-edge.
    simpler = shapely.simplify(polygons, 0.0, preserve_topology=True)
    if tolerance > 0:
        simpler = shapely.simplify(simpler, tolerance, preserve_topology=True)
    if not simpler.is_valid:  # GEOS keeps rings apart; repair rather than hand out an invalid file
        simpler = shapely.make_valid(simpler)
    return _as_multipolygon(simpler)


def mask_polygons(mask: NDArray[np.bool_], *, tolerance: float = DEFAULT_TOLERANCE,
                  min_area: int = DEFAULT_MIN_AREA, offset: tuple[int, int] = (0, 0)) -> MultiPolygon:
    """A mask's polygons for export: specks dropped, traced exactly, simplified (see the module docstring).

    Args:
        mask: ``(h, w)`` bool at the original resolution (or a window of it).
        tolerance: simplification in original pixels, ``0`` = exact.
        min_area: parts with fewer pixels are dropped; ``0`` or ``1`` keeps every pixel.
        offset: original-pixel ``(x, y)`` of the window's top-left pixel.

    Returns:
        A valid, oriented ``MultiPolygon`` in pixel-edge coordinates (whole numbers).
    """
    tolerance = check_tolerance(tolerance)
    window, (x, y) = _window(_check_mask(mask))  # specks and runs are found in the object's box only
    return simplify(trace(drop_specks(window, min_area), (x + int(offset[0]), y + int(offset[1]))), tolerance)


def rasterize(polygons, hw: tuple[int, int]) -> NDArray[np.bool_]:
    """``(H, W)`` bool: pixels whose centre ``(c + 0.5, r + 0.5)`` lies inside the (even-odd) area.

    The inverse of :func:`trace`; used to check exported files. Costs one point test per pixel of the
    polygons' bounding box.
    """
    h, w = (int(v) for v in hw)
    out = np.zeros((h, w), bool)
    if polygons is None or polygons.is_empty:
        return out
    x0, y0, x1, y1 = polygons.bounds
    c0, r0 = max(0, math.floor(x0)), max(0, math.floor(y0))
    c1, r1 = min(w, math.ceil(x1)), min(h, math.ceil(y1))
    if c1 <= c0 or r1 <= r0:
        return out
    shapely.prepare(polygons)
    ys, xs = np.mgrid[r0:r1, c0:c1]
    out[r0:r1, c0:c1] = shapely.contains_xy(polygons, xs + 0.5, ys + 0.5)
    return out


def iou(a: NDArray[np.bool_], b: NDArray[np.bool_]) -> float:
    """Intersection over union of two masks (1.0 when both are empty)."""
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


# ---------------------------------------------------------------------------------------------- rings
def _ring(coords) -> list[list[int]]:
    """A closed ring as ``[[x, y], ...]`` of whole numbers (first point repeated last)."""
    return [[int(round(x)), int(round(y))] for x, y in coords]


def polygon_rings(polygon: Polygon) -> list[list[list[int]]]:
    """GeoJSON rings of one polygon: the exterior, then its holes; closed, whole numbers."""
    return [_ring(polygon.exterior.coords)] + [_ring(hole.coords) for hole in polygon.interiors]


def outer_rings(polygons: MultiPolygon) -> list[list[tuple[int, int]]]:
    """The exterior ring of each part, not closed (first point not repeated), ``[(x, y), ...]``."""
    return [[(int(round(x)), int(round(y))) for x, y in p.exterior.coords[:-1]] for p in polygons.geoms]


# ---------------------------------------------------------------------------------------------- files
@dataclass(frozen=True)
class VectorObject:
    """One object to write: its polygons and what the files say about it.

    Attributes:
        name: the object's name (class name in YOLO).
        polygons: pixel-edge ``MultiPolygon`` from :func:`mask_polygons`.
        color: ``(r, g, b)`` 0-255.
        properties: extra JSON-ready values (ids, scores, area, bbox...) for GeoJSON.
    """

    name: str
    polygons: MultiPolygon
    color: tuple[int, int, int] = (255, 0, 0)
    properties: dict[str, Any] = field(default_factory=dict)


def hex_color(color: Sequence[int]) -> str:
    r, g, b = (int(v) for v in color)
    return f"#{r:02x}{g:02x}{b:02x}"


def geojson_geometry(polygons: MultiPolygon) -> dict[str, Any]:
    """A GeoJSON ``MultiPolygon`` (RFC 7946 §3.1.7): closed rings, exteriors counter-clockwise, holes clockwise
    (right-hand rule on the numbers), each hole inside its exterior."""
    return {"type": "MultiPolygon", "coordinates": [polygon_rings(p) for p in polygons.geoms]}


def geojson_feature_collection(objects: Sequence[VectorObject], hw: tuple[int, int], *,
                               image: dict[str, Any] | None = None, tolerance: float | None = None) -> dict[str, Any]:
    """One ``Feature`` per object (geometry + name, colour and ``properties``) in a ``FeatureCollection``.

    Coordinates are pixel-edge pixels of the original image (x right, y down, ``(0, 0)`` = its top-left
    corner), not longitude/latitude: the foreign member ``"coordinate_system"`` says so.
    """
    h, w = hw
    features = [{"type": "Feature", "id": index + 1, "geometry": geojson_geometry(obj.polygons),
                 "properties": {"name": obj.name, "color": hex_color(obj.color), **obj.properties}}
                for index, obj in enumerate(objects)]
    collection: dict[str, Any] = {
        "type": "FeatureCollection",
        "coordinate_system": "image pixels: x right, y down, (0, 0) = top-left corner of the image, "
                             f"({w}, {h}) = bottom-right corner",
        "image": {"width": w, "height": h, **(image or {})},
        "features": features,
    }
    if tolerance is not None:
        collection["tolerance_px"] = tolerance
    return collection


def yolo_seg_lines(polygons: Sequence[MultiPolygon], hw: tuple[int, int]) -> list[str]:
    """Ultralytics YOLO-seg label lines: ``class x1 y1 x2 y2 …``, one line per part of each object.

    ``class`` is the object's index in ``polygons`` (0-based); coordinates are the part's outer ring
    divided by the image width and height (in [0, 1], :data:`YOLO_DECIMALS` decimals). YOLO polygons
    have no holes: a hole is filled. A part whose ring has fewer than 3 points is left out.
    """
    h, w = hw
    lines = []
    for index, multi in enumerate(polygons):
        for ring in outer_rings(multi):
            if len(ring) < 3:
                continue
            values = " ".join(f"{x / w:.{YOLO_DECIMALS}f} {y / h:.{YOLO_DECIMALS}f}" for x, y in ring)
            lines.append(f"{index} {values}")
    return lines


def coco_polygons(polygons: MultiPolygon) -> list[list[int]]:
    """COCO ``segmentation`` polygons: each part's outer ring as ``[x1, y1, x2, y2, …]``.

    COCO polygons cannot hold holes (pycocotools unites the rings of an annotation), so holes are filled
    here: the RLE ``segmentation`` is the exact format.
    """
    return [[v for xy in ring for v in xy] for ring in outer_rings(polygons) if len(ring) >= 3]


def svg_path(polygons: MultiPolygon) -> str:
    """SVG path data of every ring (exteriors and holes), for ``fill-rule="evenodd"``."""
    parts = []
    for polygon in polygons.geoms:
        for ring in (polygon.exterior, *polygon.interiors):
            points = [(int(round(x)), int(round(y))) for x, y in ring.coords[:-1]]
            parts.append("M" + " ".join(f"{x} {y}" for x, y in points) + "Z")
    return "".join(parts)


def svg_document(objects: Sequence[VectorObject], hw: tuple[int, int], *, title: str = "",
                 fill_opacity: float = SVG_FILL_OPACITY, stroke_width: float = SVG_STROKE_WIDTH) -> str:
    """An SVG of the objects' outlines at the image's size (one ``<path>`` per object, even-odd fill).

    The drawing is ``W × H`` user units = original pixels in pixel-edge coordinates; later objects
    are drawn on top.
    """
    h, w = hw
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">']
    if title:
        out.append(f"<title>{escape(title)}</title>")
    for index, obj in enumerate(objects, start=1):
        color = hex_color(obj.color)
        out.append(f'<path id="object-{index}" data-name={quoteattr(obj.name)} fill="{color}" '
                   f'fill-opacity="{fill_opacity:g}" fill-rule="evenodd" stroke="{color}" '
                   f'stroke-width="{stroke_width:g}" stroke-linejoin="round" vector-effect="non-scaling-stroke" '
                   f'd="{svg_path(obj.polygons)}"><title>{escape(obj.name)}</title></path>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
