"""Mask → polygons → files → mask (sam_onnx.vector): exact at tolerance 0, IoU ≥ 0.99 at the default, and each
file follows the rules of the tools that read it.

Oracles are independent of the tracer: GeoJSON rules (RFC 7946) are checked on the numbers, validity by GEOS,
COCO polygons by pycocotools' own rasteriser (``COCO.annToMask``), YOLO lines by the Ultralytics label rules.
The SVG is rendered by Chromium in tests/browser/test_vector_svg.py.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import shapely
from shapely.geometry import Polygon, shape

from sam_onnx import vector
from sam_onnx.masks import label_components
from tools.vector_shapes import HW, SHAPES

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

NAMES = list(SHAPES)
DEFAULT_IOU = 0.99
"""Round-trip IoU every test shape keeps at the default tolerance (the issue's bound)."""


def _fill_enclosed(mask: np.ndarray) -> np.ndarray:
    """``mask`` with every 4-connected background region that does not reach the image border filled."""
    labels, _ = label_components(~np.pad(mask, 1), connectivity=4)
    return mask | (labels != labels[0, 0])[1:-1, 1:-1]


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """The mask as outer rings alone draw it: each edge-connected (4-connected) part with the background it
    encloses filled. Parts that touch only at a corner are separate polygons (GEOS), so the background they
    surround together (the gaps of a checkerboard) is not a hole of any of them."""
    labels, areas = label_components(mask, connectivity=4)
    out = np.zeros_like(mask)
    for label in range(1, len(areas)):
        out |= _fill_enclosed(labels == label)
    return out


def signed_area(ring) -> float:
    """Shoelace area of a closed ring of ``[x, y]`` (positive = counter-clockwise in the numbers)."""
    xy = np.asarray(ring, dtype=float)
    return 0.5 * float(np.sum(xy[:-1, 0] * xy[1:, 1] - xy[1:, 0] * xy[:-1, 1]))


# ---------------------------------------------------------------------------------------------- round trip
@pytest.mark.parametrize("name", NAMES)
def test_tolerance_zero_gives_back_the_exact_mask(name):
    mask = SHAPES[name]()
    polygons = vector.mask_polygons(mask, tolerance=0, min_area=0)
    assert polygons.is_valid
    np.testing.assert_array_equal(vector.rasterize(polygons, mask.shape), mask)
    assert polygons.area == mask.sum()  # pixel squares: the polygon area is the pixel count


@pytest.mark.parametrize("name", NAMES)
def test_default_tolerance_keeps_iou_and_drops_vertices(name):
    mask = SHAPES[name]()
    exact = vector.mask_polygons(mask, tolerance=0)
    simple = vector.mask_polygons(mask)
    assert simple.is_valid
    assert vector.iou(vector.rasterize(simple, mask.shape), mask) >= DEFAULT_IOU
    assert shapely.get_num_coordinates(simple) <= shapely.get_num_coordinates(exact)
    # every vertex is one of the exact outline's corners: whole numbers
    coords = shapely.get_coordinates(simple)
    np.testing.assert_array_equal(coords, np.round(coords))


def test_the_default_tolerance_simplifies_a_staircase():
    mask = SHAPES["ring_with_hole"]()
    assert shapely.get_num_coordinates(vector.mask_polygons(mask)) < 0.7 * shapely.get_num_coordinates(
        vector.mask_polygons(mask, tolerance=0))


@pytest.mark.parametrize("name,parts,holes", [
    ("ring_with_hole", 1, 1),
    ("nested_islands", 2, 2),
    ("several_parts", 4, 0),
    ("one_pixel_neck", 1, 0),          # both necks survive: one part
    ("diagonal_touch", 4, 1),          # corner-touching squares are parts of their own
    ("checkerboard_block", 19, 0),
    ("touching_border", 3, 1),
    ("full_image", 1, 0),
])
@pytest.mark.parametrize("tolerance", [vector.DEFAULT_TOLERANCE, 8.0, vector.MAX_TOLERANCE])
def test_parts_and_holes_are_all_kept(name, parts, holes, tolerance):
    """At every detail the slider offers, simplifying moves edges but never drops a part or fills a hole
    (Douglas-Peucker without topology preservation collapses small holes from about 8 px on)."""
    polygons = vector.mask_polygons(SHAPES[name](), tolerance=tolerance)
    assert polygons.is_valid
    assert len(polygons.geoms) == parts
    assert sum(len(p.interiors) for p in polygons.geoms) == holes


def test_polygons_of_a_window_land_at_its_offset():
    mask = SHAPES["several_parts"]()
    window = mask[10:200, 20:300]
    placed = vector.mask_polygons(window, tolerance=0, offset=(20, 10))
    np.testing.assert_array_equal(vector.rasterize(placed, HW), np.pad(window, ((10, 40), (20, 20))))


def test_specks_below_min_area_are_dropped_before_tracing_holes_stay():
    mask = np.zeros((60, 60), bool)
    mask[10:14, 10:14] = True                       # 16 px: kept at the default
    mask[30:33, 30] = True                          # 3 px: a speck
    mask[40:50, 40:50] = True
    mask[45, 45] = False                            # a 1-pixel hole: kept
    polygons = vector.mask_polygons(mask, tolerance=0)
    expected = mask.copy()
    expected[30:33, 30] = False
    np.testing.assert_array_equal(vector.rasterize(polygons, mask.shape), expected)
    assert vector.DEFAULT_MIN_AREA == 16
    kept = vector.mask_polygons(mask, tolerance=0, min_area=0)
    np.testing.assert_array_equal(vector.rasterize(kept, mask.shape), mask)
    assert vector.mask_polygons(mask, min_area=1000).is_empty


def test_an_empty_mask_has_no_polygons_and_writes_empty_files():
    empty = vector.mask_polygons(np.zeros(HW, bool))
    assert empty.is_empty
    obj = vector.VectorObject("nothing", empty)
    assert vector.geojson_feature_collection([obj], HW)["features"][0]["geometry"]["coordinates"] == []
    assert vector.yolo_seg_lines([empty], HW) == []
    assert vector.coco_polygons(empty) == []


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), vector.MAX_TOLERANCE + 1, "x", None])
def test_a_bad_tolerance_is_refused(bad):
    with pytest.raises(ValueError, match="tolerance"):
        vector.mask_polygons(np.ones((4, 4), bool), tolerance=bad)


# ---------------------------------------------------------------------------------------------- GeoJSON
def check_geojson_rules(collection: dict, hw: tuple[int, int]) -> None:
    """RFC 7946 polygon rules on the numbers: closed rings of ≥ 4 positions, exteriors counter-clockwise and holes
    clockwise (right-hand rule), each hole inside its exterior; plus OGC validity by GEOS and the image bounds."""
    h, w = hw
    assert collection["type"] == "FeatureCollection"
    for feature in collection["features"]:
        assert feature["type"] == "Feature" and set(feature) >= {"geometry", "properties"}
        geometry = feature["geometry"]
        assert geometry["type"] == "MultiPolygon"
        for rings in geometry["coordinates"]:
            for index, ring in enumerate(rings):
                assert len(ring) >= 4 and ring[0] == ring[-1], "closed ring of at least 4 positions"
                assert all(len(p) == 2 and 0 <= p[0] <= w and 0 <= p[1] <= h for p in ring)
                area = signed_area(ring)
                assert (area > 0) if index == 0 else (area < 0), "right-hand rule"
            exterior = Polygon(rings[0])
            for hole in rings[1:]:
                assert exterior.covers(Polygon(hole)), "hole inside its exterior ring"
        assert shape(geometry).is_valid


@pytest.mark.parametrize("tolerance", [0, vector.DEFAULT_TOLERANCE, 3])
def test_geojson_follows_the_rules_and_reads_back(tolerance):
    objects = [vector.VectorObject(name, vector.mask_polygons(make(), tolerance=tolerance), (230, 159, 0),
                                   {"object_id": i + 1, "score": 0.5})
               for i, (name, make) in enumerate(SHAPES.items())]
    collection = json.loads(json.dumps(vector.geojson_feature_collection(objects, HW, tolerance=tolerance)))
    check_geojson_rules(collection, HW)
    assert [f["properties"]["name"] for f in collection["features"]] == NAMES
    assert collection["features"][0]["properties"]["color"] == "#e69f00"
    for feature, (name, make) in zip(collection["features"], SHAPES.items()):
        back = vector.rasterize(shape(feature["geometry"]), HW)
        mask = make()
        if tolerance == 0:
            np.testing.assert_array_equal(back, mask)
        elif tolerance == vector.DEFAULT_TOLERANCE:
            assert vector.iou(back, mask) >= DEFAULT_IOU


def test_geojson_rule_checker_catches_a_clockwise_exterior():
    """The check above can fail: a reversed exterior ring breaks the right-hand rule."""
    obj = vector.VectorObject("ring", vector.mask_polygons(SHAPES["ring_with_hole"]()))
    collection = vector.geojson_feature_collection([obj], HW)
    rings = collection["features"][0]["geometry"]["coordinates"][0]
    rings[0] = rings[0][::-1]
    with pytest.raises(AssertionError, match="right-hand rule"):
        check_geojson_rules(collection, HW)


# ---------------------------------------------------------------------------------------------- YOLO
def parse_yolo_seg(text: str, classes: int) -> list[tuple[int, np.ndarray]]:
    """Ultralytics' segment label rules (``ultralytics/data/utils.py`` ``verify_image_label``): one object per line,
    ``class x1 y1 x2 y2 …``, class a whole number in range, coordinates normalised to [0, 1], at least 3 points."""
    out = []
    for line in text.splitlines():
        values = line.split()
        cls = int(values[0])
        assert str(cls) == values[0] and 0 <= cls < classes
        xy = np.array(values[1:], dtype=float)
        assert xy.size % 2 == 0 and xy.size >= 6, "at least 3 points"
        assert ((xy >= 0) & (xy <= 1)).all(), "normalised"
        out.append((cls, xy.reshape(-1, 2)))
    return out


@pytest.mark.parametrize("tolerance", [0, vector.DEFAULT_TOLERANCE])
def test_yolo_lines_parse_and_fill_each_part(tolerance):
    masks = [make() for make in SHAPES.values()]
    polygons = [vector.mask_polygons(m, tolerance=tolerance) for m in masks]
    parsed = parse_yolo_seg("\n".join(vector.yolo_seg_lines(polygons, HW)), len(masks))
    h, w = HW
    for index, mask in enumerate(masks):
        rings = [xy * (w, h) for cls, xy in parsed if cls == index]
        assert len(rings) == len(polygons[index].geoms), "one line per part"
        back = np.logical_or.reduce([vector.rasterize(Polygon(r), HW) for r in rings])
        if tolerance == 0:  # YOLO polygons have no holes: exactly the mask with its holes filled
            np.testing.assert_array_equal(back, fill_holes(mask))
        else:
            assert vector.iou(back, fill_holes(mask)) >= DEFAULT_IOU


# ---------------------------------------------------------------------------------------------- COCO
coco_mask = pytest.importorskip("pycocotools.mask", reason="pycocotools is in requirements-test.txt")


def _ann_to_mask(annotation: dict, hw: tuple[int, int]) -> np.ndarray:
    from pycocotools.coco import COCO

    dataset = {"images": [{"id": 1, "width": hw[1], "height": hw[0]}], "categories": [{"id": 1, "name": "o"}],
               "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, **annotation}]}
    api = COCO()
    api.dataset = dataset
    api.createIndex()
    return api.annToMask(api.anns[1]).astype(bool)


@pytest.mark.parametrize("name", NAMES)
def test_coco_polygons_rasterised_by_pycocotools(name):
    """pycocotools fills the polygons as the mask with its holes filled: exactly at tolerance 0, IoU ≥ 0.99 at the
    default. (COCO polygons cannot hold holes; the RLE beside them is exact.)"""
    mask = SHAPES[name]()
    exact = _ann_to_mask({"segmentation": vector.coco_polygons(vector.mask_polygons(mask, tolerance=0))}, HW)
    np.testing.assert_array_equal(exact, fill_holes(mask))
    default = _ann_to_mask({"segmentation": vector.coco_polygons(vector.mask_polygons(mask))}, HW)
    assert vector.iou(default, fill_holes(mask)) >= DEFAULT_IOU
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    np.testing.assert_array_equal(_ann_to_mask({"segmentation": rle}, HW), mask)


# ---------------------------------------------------------------------------------------------- SVG
def test_svg_has_one_even_odd_path_per_object():
    objects = [vector.VectorObject(f'{name} <&"', vector.mask_polygons(make())) for name, make in SHAPES.items()]
    root = ET.fromstring(vector.svg_document(objects, HW, title="t"))
    paths = root.findall("{http://www.w3.org/2000/svg}path")
    assert root.get("viewBox") == f"0 0 {HW[1]} {HW[0]}"
    assert len(paths) == len(objects)
    assert all(p.get("fill-rule") == "evenodd" for p in paths)
    assert paths[0].get("data-name") == 'ring_with_hole <&"'
    rings = paths[0].get("d").count("M")
    assert rings == 2  # the ring's outline and its hole
