"""The editor: prompts per object, boxes from two clicks, undo/redo, objects."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sam_demo.editor import MAX_HISTORY, MAX_OBJECTS, Editor
from sam_demo.overlay import color_for
from sam_onnx import Box, InvalidPromptError, Point, Prompts

HW = (300, 500)


def test_start_has_one_empty_selected_object():
    ed = Editor.start(HW)
    assert [o.name for o in ed.objects] == ["Object 1"] and ed.selected.id == 1
    assert not ed.can_undo and not ed.can_redo


def test_points_go_to_the_selected_object():
    ed = Editor.start(HW).add_point(10, 20).add_point(30, 40, 0)
    assert ed.selected.prompts.points == (Point(10, 20, 1), Point(30, 40, 0))


def test_box_needs_two_clicks_in_any_corner_order():
    ed = Editor.start(HW).box_corner(400, 250)
    assert ed.pending_corner == (400, 250) and ed.selected.prompts.box is None
    ed = ed.box_corner(100, 50)
    assert ed.pending_corner is None and ed.selected.prompts.box == Box(100, 50, 400, 250)
    # A second box replaces the first (one box per object, as SAM takes it).
    ed = ed.box_corner(0, 0).box_corner(10, 10)
    assert ed.selected.prompts.box == Box(0, 0, 10, 10)


def test_degenerate_box_keeps_work_and_clears_the_corner():
    ed = Editor.start(HW).add_point(5, 5).box_corner(100, 50)
    with pytest.raises(InvalidPromptError, match="same row or column"):
        ed.box_corner(100, 80)
    assert ed.selected.prompts.points == (Point(5, 5),) and ed.pending_corner == (100, 50)


def test_bad_click_raises_and_the_old_value_stays_usable():
    ed = Editor.start(HW).add_point(10, 10)
    for args in [(500, 10), (-1, 3), (float("nan"), 2), (1, 2, 5)]:
        with pytest.raises(InvalidPromptError):
            ed.add_point(*args)
    assert ed.selected.prompts.points == (Point(10, 10),)


def test_undo_redo_single_prompts():
    ed = Editor.start(HW).add_point(1, 1).add_point(2, 2).add_point(3, 3, 0)
    ed = ed.undo()
    assert ed.selected.prompts.points == (Point(1, 1), Point(2, 2))
    ed = ed.undo().undo()
    assert ed.selected.prompts.is_empty and not ed.can_undo
    assert ed.undo() == ed  # nothing to undo: no-op
    ed = ed.redo().redo()
    assert ed.selected.prompts.points == (Point(1, 1), Point(2, 2))
    ed = ed.add_point(9, 9)  # a new edit drops the redo branch
    assert not ed.can_redo and ed.redo() == ed


def test_undo_first_cancels_a_half_drawn_box():
    ed = Editor.start(HW).add_point(1, 1).box_corner(50, 50)
    ed = ed.undo()
    assert ed.pending_corner is None and ed.selected.prompts.points == (Point(1, 1),)


def test_history_is_bounded():
    ed = Editor.start(HW)
    for i in range(MAX_HISTORY + 20):
        full = len(ed.selected.prompts.points) == 30
        ed = ed.clear_object() if full else ed.add_point(i % 400, 1)
    assert len(ed.undo_stack) == MAX_HISTORY


def test_objects_have_own_prompts_colours_and_selection():
    ed = Editor.start(HW).add_point(1, 1).add_object().add_point(50, 50)
    first, second = ed.objects
    assert first.prompts.points == (Point(1, 1),) and second.prompts.points == (Point(50, 50),)
    assert first.color_index != second.color_index and ed.selected_id == second.id
    ed = ed.select(first.id).add_point(2, 2)
    assert ed.objects[0].prompts.points == (Point(1, 1), Point(2, 2))


def test_rename_hide_delete_and_undo_of_structure():
    ed = Editor.start(HW).add_point(1, 1).add_object().add_point(5, 5)
    ed = ed.rename(1, "  the   cat ")
    assert ed.objects[0].name == "the cat"
    ed = ed.set_visible(1, False)
    assert not ed.is_visible(1)
    ed = ed.delete(2)
    assert [o.id for o in ed.objects] == [1] and ed.selected_id == 1
    ed = ed.undo()
    assert [o.id for o in ed.objects] == [1, 2] and not ed.is_visible(1)  # visibility is not history
    with pytest.raises(InvalidPromptError):
        ed.select(99)


def test_deleting_the_selected_object_then_clicking_creates_a_new_one():
    ed = Editor.start(HW).add_point(1, 1)
    ed = ed.delete(1)
    assert ed.objects == () and ed.selected is None
    ed = ed.add_point(7, 7)
    assert len(ed.objects) == 1 and ed.selected.prompts.points == (Point(7, 7),) and ed.selected.id == 2


def test_choose_candidate_and_new_prompts_reset_it():
    ed = Editor.start(HW).add_point(1, 1).choose_candidate(1, 2)
    assert ed.selected.candidate == 2
    ed = ed.add_point(3, 3)
    assert ed.selected.candidate is None
    with pytest.raises(InvalidPromptError):
        ed.choose_candidate(1, 3)


def test_clear_object_and_clear_all_are_undoable():
    ed = Editor.start(HW).add_point(1, 1).add_object().add_point(2, 2)
    cleared = ed.clear_object()
    assert cleared.selected.prompts.is_empty and cleared.undo().selected.prompts.points == (Point(2, 2),)
    reset = ed.clear_all()
    assert len(reset.objects) == 1 and reset.objects[0].prompts.is_empty
    assert len(reset.undo().objects) == 2


def test_add_objects_in_one_step_respects_the_cap():
    ed = Editor.start(HW)
    many = [Prompts((Point(i, i),)) for i in range(5)]
    ed2 = ed.add_objects(many)
    assert len(ed2.objects) == 6 and len(ed2.undo().objects) == 1
    with pytest.raises(InvalidPromptError, match=f"At most {MAX_OBJECTS}"):
        ed.add_objects([Prompts((Point(1, 1),))] * MAX_OBJECTS)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["pos", "neg", "box", "undo", "redo", "add", "clear"]),
                          st.integers(0, 499), st.integers(0, 299)), max_size=40))
def test_undo_all_then_redo_all_returns_to_the_same_annotation(ops):
    ed = Editor.start(HW)
    for op, x, y in ops:
        try:
            if op == "pos":
                ed = ed.add_point(x, y)
            elif op == "neg":
                ed = ed.add_point(x, y, 0)
            elif op == "box":
                ed = ed.box_corner(x, y)
            elif op == "undo":
                ed = ed.undo()
            elif op == "redo":
                ed = ed.redo()
            elif op == "add":
                ed = ed.add_object()
            else:
                ed = ed.clear_object()
        except InvalidPromptError:
            pass
    ed = ed.undo() if ed.pending_corner else ed
    final = ed.current
    steps = len(ed.undo_stack)
    for _ in range(steps):
        ed = ed.undo()
    assert not ed.can_undo
    for _ in range(steps):
        ed = ed.redo()
    assert ed.current == final


# ---------------------------------------------------------------------------- refinement
from sam_onnx import CropFrame  # noqa: E402

CROP = CropFrame(HW, (100, 50, 356, 306 - 6))


def _refined() -> Editor:
    return Editor.start(HW).add_point(200, 150).refine(1, CROP)


def test_refine_is_one_undoable_step_and_redo_brings_it_back():
    ed = _refined()
    assert ed.selected.crop == CROP and ed.selected.prompts.points == (Point(200, 150),)
    undone = ed.undo()
    assert undone.selected.crop is None and undone.selected.prompts == ed.selected.prompts
    assert undone.redo().selected.crop == CROP
    assert ed.refine(1, CROP) is ed  # refining again at the same crop adds no step


def test_later_prompts_inside_keep_the_crop_and_an_include_point_or_box_outside_drops_it():
    ed = _refined()
    assert ed.add_point(300, 200).selected.crop == CROP            # include inside
    assert ed.add_point(20, 20, 0).selected.crop == CROP           # exclude outside: left out of the decode
    assert ed.add_point(20, 20).selected.crop is None              # include outside: whole image again
    assert ed.box_corner(110, 60).box_corner(300, 280).selected.crop == CROP
    assert ed.box_corner(110, 60).box_corner(400, 280).selected.crop is None   # a new box beyond the crop
    # The box it had when refined may reach beyond the crop (the decode cuts it); later points keep the crop.
    boxed = Editor.start(HW).add_point(200, 150).box_corner(20, 20).box_corner(450, 290).refine(1, CROP)
    assert boxed.add_point(210, 160).selected.crop == CROP
    assert ed.add_point(20, 20).undo().selected.crop == CROP       # and undo restores it with the prompts
    assert ed.clear_object().selected.crop is None


def test_refine_refuses_an_object_without_prompts_a_foreign_crop_and_a_crop_missing_a_prompt():
    with pytest.raises(InvalidPromptError, match="no prompts"):
        Editor.start(HW).refine(1, CROP)
    with pytest.raises(InvalidPromptError, match="another image"):
        Editor.start(HW).add_point(200, 150).refine(1, CropFrame((600, 500), (0, 0, 10, 10)))
    with pytest.raises(InvalidPromptError, match="changed while it was refined"):
        Editor.start(HW).add_point(20, 20).refine(1, CROP)
    assert Editor.start(HW).add_point(200, 150).add_point(20, 20, 0).refine(1, CROP).selected.crop == CROP
    assert _refined().unrefine(1).selected.crop is None and _refined().unrefine(1).undo().selected.crop == CROP


def test_a_click_in_a_ready_zoomed_view_decodes_the_object_there_in_one_step():
    view = CropFrame(HW, (100, 50, 400, 300))
    ed = Editor.start(HW).add_point(200, 150, view_crop=view)
    assert ed.selected.crop == view and len(ed.undo_stack) == 1
    assert ed.undo().selected.prompts.is_empty
    # An object with an include point outside the view stays on the whole image; a refined one keeps its crop.
    assert Editor.start(HW).add_point(20, 20).add_point(200, 150, view_crop=view).selected.crop is None
    assert _refined().add_point(210, 160, view_crop=view).selected.crop == CROP
    assert Editor.start(HW).box_corner(110, 60).box_corner(390, 290, view_crop=view).selected.crop == view


# ---------------------------------------------------------------------------- an object's colour
def test_a_colour_change_is_one_undoable_step_and_kept_through_rename_hide_prompts_and_refine():
    ed = Editor.start(HW).add_point(200, 150).add_object().add_point(20, 20)
    steps = len(ed.undo_stack)
    recoloured = ed.set_color(1, "#12AB9f")
    assert recoloured.objects[0].rgb == (0x12, 0xAB, 0x9F) and len(recoloured.undo_stack) == steps + 1
    assert recoloured.objects[1] == ed.objects[1] and recoloured.selected_id == ed.selected_id
    assert recoloured.set_color(1, "#12ab9f") is recoloured  # the colour it has: no step
    kept = recoloured.rename(1, "cup").set_visible(1, False).select(1).add_point(210, 160).refine(1, CROP)
    assert kept.objects[0].rgb == (0x12, 0xAB, 0x9F) and kept.objects[0].crop == CROP
    assert recoloured.undo().objects[0].rgb == color_for(0)
    assert recoloured.undo().redo().objects[0].color == (18, 171, 159)
    # its own palette colour again is stored as "no colour of its own" (an editor equal to one never recoloured)
    assert recoloured.set_color(1, "#e69f00").objects == ed.objects


def test_a_new_object_does_not_take_a_colour_another_object_was_given():
    ed = Editor.start(HW).set_color(1, "#56b4e9")  # the palette's second colour, which object 2 would get
    assert [o.rgb for o in ed.add_object().objects] == [color_for(1), color_for(2)]
    assert [o.rgb for o in ed.add_objects([Prompts((Point(1, 1),))] * 2).objects] == [color_for(1), color_for(2),
                                                                                      color_for(3)]


@pytest.mark.parametrize("bad", ["#fff", "red", "rgb(1, 2, 3)", "#12345g", " #123456", "#1234567", "#123456\n",
                                 "123456", "", None, 0x123456, ["#123456"], True])
def test_a_colour_that_is_not_rrggbb_is_refused_and_changes_nothing(bad):
    ed = Editor.start(HW).add_point(1, 1)
    with pytest.raises(InvalidPromptError, match="#rrggbb"):
        ed.set_color(1, bad)
    assert ed.objects[0].color is None and len(ed.undo_stack) == 1
    with pytest.raises(InvalidPromptError, match="no object 9"):
        ed.set_color(9, "#123456")
