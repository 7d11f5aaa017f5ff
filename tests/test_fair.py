"""sam_demo.fair: turns on the CPU go round robin between owners, and a long job cut in pieces lets others in."""

from __future__ import annotations

import threading
import time

import pytest

from sam_demo import fair
from sam_demo.fair import FairGate


def _run(target, *args) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def test_a_free_gate_gives_the_turn_at_once_and_turns_nest():
    gate = FairGate("test")
    with gate.turn("a") as outer:
        assert outer.waited == 0.0
        with gate.turn("a") as inner:  # the same thread keeps its turn (no deadlock)
            inner.share()
        assert gate.waiting() == 0
    with gate.turn("b"):
        pass


@pytest.mark.parametrize("slots", [1, 3])
def test_at_most_slots_turns_at_a_time(slots):
    """One turn at a time by default; a gate of 3 slots (uploads to a Ray deployment) runs 3 and no more."""
    gate = FairGate("test", slots=slots)
    running, most = [0], [0]
    lock = threading.Lock()

    def work(who):
        for _ in range(5):
            with gate.turn(who):
                with lock:
                    running[0] += 1
                    most[0] = max(most[0], running[0])
                time.sleep(0.01)  # long enough for every thread to be waiting meanwhile
                with lock:
                    running[0] -= 1

    threads = [_run(work, f"user{k}") for k in range(2 * slots + 2)]
    for t in threads:
        t.join(10)
    assert most[0] == slots
    assert gate.waiting() == 0
    with gate.turn("after"):  # every slot came back
        pass


def test_a_long_job_in_pieces_lets_another_owner_in_after_one_piece(monkeypatch):
    """User A runs 200 pieces of 5 ms; user B asks for one turn meanwhile and waits about one piece, not A's job."""
    monkeypatch.setattr(fair, "SHARE_AFTER_S", 0.0)
    gate = FairGate("test")
    order: list[str] = []
    a_started = threading.Event()

    def job_a():
        with gate.turn("A") as turn:
            for _ in range(200):
                a_started.set()
                time.sleep(0.005)
                order.append("A")
                turn.share()

    thread = _run(job_a)
    a_started.wait(5)
    time.sleep(0.02)
    asked = time.perf_counter()
    with gate.turn("B") as turn:
        waited = time.perf_counter() - asked
        order.append("B")
    thread.join(10)
    assert turn.waited == pytest.approx(waited, abs=0.01)
    # B ran after at most a couple of A's pieces, far from the end of A's 200 pieces (1 s).
    assert waited < 0.2, waited
    assert order.index("B") < 60


def test_waiting_owners_are_served_round_robin():
    """Three owners each queue 3 requests while the gate is busy: they are served A B C A B C ..., not AAA BBB CCC."""
    gate = FairGate("test")
    served: list[str] = []
    release = threading.Event()
    started = threading.Event()

    def holder():
        with gate.turn("holder"):
            started.set()
            release.wait(5)

    def ask(who):
        with gate.turn(who):
            served.append(who)

    first = _run(holder)
    started.wait(5)
    threads = []
    for who in "AAABBBCCC":
        threads.append(_run(ask, who))
        deadline = time.monotonic() + 5
        while gate.waiting() < len(threads) and time.monotonic() < deadline:
            time.sleep(0.001)
    release.set()
    for t in (first, *threads):
        t.join(10)
    assert served == list("ABCABCABC")


def test_owner_defaults_to_the_event_then_the_thread():
    token = fair.current_owner.set("tab-1")
    try:
        assert fair.owner() == "tab-1"
    finally:
        fair.current_owner.reset(token)
    assert fair.owner() == ("thread", threading.get_ident())


def test_a_paused_turn_lets_others_in_and_is_taken_back():
    gate = FairGate("test")
    served: list[str] = []

    def other_user():
        with gate.turn("B"):
            served.append("B")

    with gate.turn("A") as turn:
        other = _run(other_user)
        deadline = time.monotonic() + 5
        while gate.waiting() == 0 and time.monotonic() < deadline:
            time.sleep(0.001)
        with turn.paused():
            other.join(5)
            assert served == ["B"]
        with gate.turn("A") as nested:  # the turn is this thread's again: nesting is a no-op
            nested.share()
    assert gate.waiting() == 0


HANDOVER_S = 5.0
"""Longest wait for a released turn to reach the next owner (microseconds when it works): a leaked slot makes the
test fail at this bound instead of hanging."""


def _takes_a_turn(gate: FairGate, who: str) -> threading.Event:
    """A thread that asks ``gate`` for a turn for ``who``; the returned event is set once it has the turn."""
    got = threading.Event()

    def ask():
        with gate.turn(who):
            got.set()

    _run(ask)
    return got


def _wait_for_waiting(gate: FairGate, count: int) -> None:
    deadline = time.monotonic() + HANDOVER_S
    while gate.waiting() < count and time.monotonic() < deadline:
        time.sleep(0.001)
    assert gate.waiting() == count


@pytest.mark.parametrize("slots", [1, 2])
def test_a_turn_whose_work_raises_releases_its_slot_and_the_next_owner_starts_at_once(slots):
    """A decoder call that fails inside a turn (onnxruntime error, a bad value) must not keep the turn: every
    owner waiting gets it at once, and the gate has all its slots afterwards."""
    gate = FairGate("test", slots=slots)
    release = threading.Event()
    holding = [threading.Event() for _ in range(slots)]
    failed: list[str] = []

    def hold_then_fail(who: str, held: threading.Event) -> None:
        try:
            with gate.turn(who):
                held.set()
                release.wait(HANDOVER_S)
                raise RuntimeError("the work inside the turn failed")
        except RuntimeError:
            failed.append(who)

    holders = [_run(hold_then_fail, f"holder{k}", held) for k, held in enumerate(holding)]
    assert all(held.wait(HANDOVER_S) for held in holding)  # every slot taken
    waiters = [_takes_a_turn(gate, f"waiter{k}") for k in range(slots + 1)]
    _wait_for_waiting(gate, slots + 1)
    assert not any(got.is_set() for got in waiters)
    release.set()  # every holder raises inside its turn
    assert all(got.wait(HANDOVER_S) for got in waiters), "a slot of a failed turn was never handed over"
    for holder in holders:  # a holder's slot is free before its except clause has run: wait for the clause
        holder.join(HANDOVER_S)
    assert len(failed) == slots
    assert all(got.wait(HANDOVER_S) for got in [_takes_a_turn(gate, f"after{k}") for k in range(slots)])
    assert gate.waiting() == 0


def test_a_failure_while_a_turn_is_paused_or_shared_gives_the_turn_back(monkeypatch):
    """The turn is released however the block ends: a failure inside ``paused()`` or after a ``share()``."""
    monkeypatch.setattr(fair, "SHARE_AFTER_S", 0.0)
    gate = FairGate("test")
    with pytest.raises(RuntimeError), gate.turn("A") as turn:
        other = _takes_a_turn(gate, "B")
        _wait_for_waiting(gate, 1)
        turn.share()  # B takes its turn in between
        assert other.wait(HANDOVER_S)
        with turn.paused():
            raise RuntimeError("failed while paused")
    assert _takes_a_turn(gate, "C").wait(HANDOVER_S), "the turn of a block that failed while paused was never released"


def test_the_lowest_turn_goes_after_every_waiting_owner_and_only_to_a_free_gate():
    """Background work (the auto check's decoder calls) asks while users wait: every user goes first."""
    gate = FairGate("test")
    served: list[str] = []
    release = threading.Event()
    started = threading.Event()

    def holder():
        with gate.turn("holder"):
            started.set()
            release.wait(HANDOVER_S)

    def background():
        with gate.lowest_turn():
            served.append("background")

    def ask(who):
        with gate.turn(who):
            served.append(who)

    first = _run(holder)
    started.wait(HANDOVER_S)
    threads = [_run(background)]
    _wait_for_waiting(gate, 1)
    for who in ("A", "B"):  # they arrive after the background work asked
        threads.append(_run(ask, who))
        _wait_for_waiting(gate, len(threads))
    release.set()
    for t in (first, *threads):
        t.join(HANDOVER_S)
    assert served == ["A", "B", "background"]
    assert gate.waiting() == 0
    with gate.lowest_turn():  # a free gate gives it at once
        assert gate.waiting() == 0


def test_beside_waits_for_idle_gates_and_says_whether_a_turn_started_meanwhile():
    """The auto check's encoder runs wait for idle gates, delay nobody, and learn when a user's turn overlapped."""
    encoder, compute = FairGate("encoder"), FairGate("compute")
    with fair.beside(encoder, compute) as quiet:
        pass
    assert not quiet.disturbed
    entered = threading.Event()

    def run_beside(out: list):
        with fair.beside(encoder, compute) as work:
            entered.set()
            time.sleep(0.2)
        out.append(work)

    seen: list = []
    with compute.turn("user"):  # a busy gate: the background work waits
        thread = _run(run_beside, seen)
        assert not entered.wait(0.1)
    assert entered.wait(HANDOVER_S)
    asked = time.perf_counter()
    with encoder.turn("uploader"):  # nobody waits for work beside the gate
        waited = time.perf_counter() - asked
    thread.join(HANDOVER_S)
    assert waited < 0.1 and seen[0].disturbed and seen[0].waited >= 0.1


def _wait_until(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_a_cancelled_lowest_request_withdraws_and_never_takes_the_slot():
    """A zoomed view waiting to be encoded is withdrawn by a new zoom: it leaves the queue, and the slot goes
    back to the gate, not to the withdrawn request."""
    gate = FairGate("test")
    cancelled = threading.Event()
    outcome = []

    def background():
        with gate.lowest_turn(cancel=cancelled.is_set) as turn:
            outcome.append(turn)

    with gate.turn("busy"):
        thread = _run(background)
        _wait_until(lambda: gate.waiting() == 1)
        cancelled.set()
        thread.join(10)
        assert outcome == [None] and gate.waiting() == 0
    with gate.turn("next") as turn:
        assert turn.waited == 0.0
    with gate.lowest_turn(cancel=lambda: True) as turn:  # a free gate gives it at once, whatever cancel says
        assert turn is not None


def test_a_cancelled_owner_request_leaves_the_line_and_the_next_owner_is_served():
    """An upload whose page left, waiting for its turn, is withdrawn: it never runs, the other requests keep
    their order, and its owner's next request keeps the owner's place in the round (A was first: A, then B)."""
    gate = FairGate("test")
    left = threading.Event()
    served: list[str] = []

    def ask(who, cancel=None):
        with gate.turn(who, cancel=cancel) as turn:
            served.append(who if turn is not None else f"{who} withdrawn")

    with gate.turn("busy"):
        threads = [_run(ask, "A", left.is_set)]
        _wait_until(lambda: gate.waiting() == 1)
        threads.append(_run(ask, "B"))
        _wait_until(lambda: gate.waiting() == 2)
        threads.append(_run(ask, "A"))
        _wait_until(lambda: gate.waiting() == 3)
        left.set()
        _wait_until(lambda: served == ["A withdrawn"])
        assert gate.waiting() == 2
    for t in threads:
        t.join(10)
    assert served == ["A withdrawn", "A", "B"]


def test_others_share_counts_other_owners_turns_held_and_holding_not_ones_own():
    """Issue 22: the estimate accounts for other users' current work; this is what it reads."""
    gate = FairGate("test")
    held: list[float] = []

    def hold(who, seconds):
        with gate.turn(who):
            started = time.perf_counter()
            time.sleep(seconds)
            held.append(time.perf_counter() - started)

    window = 5.0
    _run(hold, "B", 0.3).join(10)
    share, owners = gate.others_share("A", window)
    assert owners == 1 and held[0] - 0.01 <= share * window <= held[0] + 0.05, (share, held)
    assert gate.others_share("B", window) == (0.0, 0), "an owner's own turns are not others' load"
    with gate.turn("A"):  # held now: counted before it ends
        time.sleep(0.1)
        share_b, owners_b = gate.others_share("B", window)
    assert owners_b == 1 and share_b * window >= 0.09
    with gate.lowest_turn():
        time.sleep(0.05)
    assert gate.others_share("B", window)[1] == 1, "background work is not a user's load"
