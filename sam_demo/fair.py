"""Fair sharing of the CPU between users: the work of every event runs in short turns, round robin.

The machine this demo targets has 2 cores, and one onnxruntime call already uses
both; two heavy jobs at once only halve each other's speed. So the engine does
not rely on queues alone: every piece of heavy work (a decoder call for one or
two objects, drawing a group of objects, a full-resolution mask for ``/segment``)
runs in a *turn* of a process-wide :class:`FairGate`, one turn at a time, and the
turns rotate between the *owners* that are waiting (an owner is a browser tab,
Gradio's session hash, set per event in :data:`current_owner` by the Gradio
layer). A user holding 256 objects, a long prompts file, segment everything or a
``/segment`` call of 256 objects therefore waits for their own pieces, while
another user's click waits for about one piece of theirs before it runs: a turn
is handed over at the first piece boundary after it has run
:data:`SHARE_AFTER_S`, so the click waits for the piece running then (a decoder
call is 20-50 ms on 2 cores) plus, when pieces are shorter, the others that fit
in those 30 ms.

Encoder runs (seconds each, not divisible) take turns on a separate gate, so an
upload never holds anyone's click. That gate has one slot with a local encoder
(two uploads never run at once) and ``--ray-uploads`` slots when a Ray Serve
deployment encodes.

Turns are re-entrant within a thread: code that already holds a turn and calls a
function that asks for one keeps its turn.

Background work (``--encoder auto``'s check after a start on fp32) comes last:
a :meth:`FairGate.lowest_turn` is given only when no owner waits, and
:func:`beside` runs work next to a gate without a turn at all, once the gates
are idle, and tells afterwards whether any turn started meanwhile.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterator

current_owner: contextvars.ContextVar[Hashable | None] = contextvars.ContextVar("sam_demo_owner", default=None)
"""Who the running event belongs to (a browser tab's session hash); ``None`` outside events."""

CANCEL_POLL_S = 0.05
"""How often a waiting turn with a ``cancel`` checks it."""
SHARE_AFTER_S = 0.03
"""A turn held longer than this is handed over at the next :meth:`Turn.share` if another owner waits."""
BACKGROUND = ("background",)
HELD_LOG_LENGTH = 4096
"""Turns remembered for :meth:`FairGate.others_share` (at ~50 ms a piece, a busy minute of one owner)."""
"""The owner of :meth:`FairGate.lowest_turn` turns."""


def owner() -> Hashable:
    """The current owner, or one per thread outside events (a script, a test, a benchmark)."""
    found = current_owner.get()
    return found if found is not None else ("thread", threading.get_ident())


class Turn:
    """A held turn of a :class:`FairGate` (see :meth:`FairGate.turn`)."""

    def __init__(self, gate: FairGate, who: Hashable, waited: float) -> None:
        self._gate = gate
        self._owner = who
        self.started = time.perf_counter()
        self.waited = waited
        """Seconds spent waiting for this turn so far (first acquisition and every hand-over)."""
        gate._holding_starts(self)

    def share(self) -> None:
        """Between two pieces of work: hand the turn over if another owner waits and this turn ran long enough."""
        if time.perf_counter() - self.started < SHARE_AFTER_S or not self._gate.others_waiting(self._owner):
            return
        self._gate._holding_ends(self)
        self._gate._release()
        self.waited += self._gate._acquire(self._owner)
        self.started = time.perf_counter()
        self._gate._holding_starts(self)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Give the turn up for the ``with`` block (e.g. while waiting for another gate), then take it back."""
        self._gate._holding_ends(self)
        self._gate._release()
        self._gate._local.turn = None
        try:
            yield
        finally:
            self.waited += self._gate._acquire(self._owner)
            self._gate._local.turn = self
            self.started = time.perf_counter()
            self._gate._holding_starts(self)


class _NoTurn(Turn):
    """What a nested :meth:`FairGate.turn` returns: the outer turn shares and counts."""

    def __init__(self, outer: Turn) -> None:
        self._outer = outer

    def share(self) -> None:
        self._outer.share()

    def paused(self):  # type: ignore[override]
        return self._outer.paused()

    @property
    def waited(self) -> float:  # type: ignore[override]
        return self._outer.waited


class FairGate:
    """``slots`` turns at a time (default one); waiting owners are served round robin, each owner's requests in order.

    An owner that releases its turn and asks again goes behind every owner
    already waiting, so a long job cut into pieces alternates with the short
    jobs of others instead of running to its end first.
    """

    def __init__(self, name: str, slots: int = 1) -> None:
        if slots < 1:
            raise ValueError(f"a gate needs at least one slot, not {slots}")
        self.name = name
        self.slots = slots
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._running = 0
        self._waiting: OrderedDict[Hashable, deque[threading.Event]] = OrderedDict()
        self._lowest: deque[threading.Event] = deque()
        self._beside: set[Beside] = set()
        self._local = threading.local()
        self._holding: dict[int, tuple[Hashable, float]] = {}
        """Turns held now: ``id(turn)`` → (owner, since when, ``time.perf_counter``)."""
        self._held: deque[tuple[Hashable, float, float]] = deque(maxlen=HELD_LOG_LENGTH)
        """The last turns held: (owner, start, end), for :meth:`others_share`."""

    def turn(self, who: Hashable | None = None,
             cancel: Callable[[], bool] | None = None) -> contextlib.AbstractContextManager[Turn]:
        """Wait for a turn for ``who`` (default: :func:`owner`), hold it for the ``with`` block.

        With ``cancel`` (polled every :data:`CANCEL_POLL_S` while it waits), the request is withdrawn when
        ``cancel()`` returns True and the ``with`` block gets ``None``: an upload whose page left gives its
        place to the next one before it ever runs.
        """
        return self._turn(owner() if who is None else who, lowest=False, cancel=cancel)

    def lowest_turn(self, cancel: Callable[[], bool] | None = None) -> contextlib.AbstractContextManager[Turn | None]:
        """A turn after everyone's: given only while no owner waits (a short piece of background work).

        Owners asking meanwhile wait for this turn to end, like for any other turn, and then go first.
        With ``cancel``, polled every :data:`CANCEL_POLL_S` while it waits, the request is withdrawn when
        ``cancel()`` returns True and the ``with`` block gets ``None`` (do nothing then).
        """
        return self._turn(BACKGROUND, lowest=True, cancel=cancel)

    @contextlib.contextmanager
    def _turn(self, who: Hashable, lowest: bool, cancel: Callable[[], bool] | None = None) -> Iterator[Turn | None]:
        outer: Turn | None = getattr(self._local, "turn", None)
        if outer is not None:
            yield _NoTurn(outer)
            return
        waited = self._acquire(who, lowest=lowest, cancel=cancel)
        if waited is None:
            yield None
            return
        held = Turn(self, who, waited)
        self._local.turn = held
        try:
            yield held
        finally:
            self._local.turn = None
            self._holding_ends(held)
            self._release()

    @contextlib.contextmanager
    def released(self) -> Iterator[None]:
        """Give up this thread's turn of this gate, if it holds one, for the ``with`` block (e.g. while it waits
        for and uses another gate), then take it back; without a held turn, nothing happens."""
        held: Turn | None = getattr(self._local, "turn", None)
        if held is None:
            yield
            return
        with held.paused():
            yield

    def others_waiting(self, who: Hashable) -> bool:
        with self._lock:
            return any(key != who for key in self._waiting)

    def others_share(self, who: Hashable, window_s: float) -> tuple[float, int]:
        """How busy other owners kept this gate in the last ``window_s`` seconds (turns held now included):
        the share of its slots' time they held turns (0-1), and how many owners that was. Background work
        (:meth:`lowest_turn`) is left out: it gives way to any owner."""
        now = time.perf_counter()
        since = now - window_s
        with self._lock:
            spans = [*self._held, *((owner, start, now) for owner, start in self._holding.values())]
        busy, owners = 0.0, set()
        for owner, start, end in spans:
            if owner in (who, BACKGROUND) or end <= since:
                continue
            busy += end - max(start, since)
            owners.add(owner)
        return min(1.0, busy / (window_s * self.slots)), len(owners)

    def _holding_starts(self, turn: Turn) -> None:
        with self._lock:
            self._holding[id(turn)] = (turn._owner, turn.started)

    def _holding_ends(self, turn: Turn) -> None:
        with self._lock:
            entry = self._holding.pop(id(turn), None)
            if entry is not None:
                self._held.append((*entry, time.perf_counter()))

    def waiting(self) -> int:
        """Requests waiting for a turn (for tests and logs)."""
        with self._lock:
            return sum(len(q) for q in self._waiting.values()) + len(self._lowest)

    def _acquire(self, who: Hashable, lowest: bool = False, cancel: Callable[[], bool] | None = None) -> float | None:
        """Wait for the turn (``lowest``: behind every owner); returns the seconds waited, or ``None`` when the
        request was withdrawn because ``cancel()`` returned True."""
        with self._lock:
            for work in self._beside:  # whatever runs beside the gate now shares the CPU with this turn
                work.disturbed = True
            if self._running < self.slots and not self._waiting:
                self._running += 1
                return 0.0
            ticket = threading.Event()
            if lowest:
                self._lowest.append(ticket)
            else:
                self._waiting.setdefault(who, deque()).append(ticket)
        started = time.perf_counter()
        if cancel is not None:
            while not ticket.wait(CANCEL_POLL_S):
                if cancel():
                    with self._lock:
                        if not ticket.is_set():  # not handed the slot meanwhile: withdraw
                            self._withdraw(who, ticket, lowest)
                            return None
        ticket.wait()  # set by _release, which hands its slot over (the count of running turns stays)
        return time.perf_counter() - started

    def _withdraw(self, who: Hashable, ticket: threading.Event, lowest: bool) -> None:
        """Take a waiting request out of line (the lock is held)."""
        if lowest:
            self._lowest.remove(ticket)
            return
        queue = self._waiting[who]
        queue.remove(ticket)
        if not queue:
            del self._waiting[who]

    def _release(self) -> None:
        with self._lock:
            while self._waiting:
                who, queue = next(iter(self._waiting.items()))
                ticket = queue.popleft()
                del self._waiting[who]
                if queue:  # the owner's next request waits behind everyone else
                    self._waiting[who] = queue
                ticket.set()
                return
            if self._lowest:
                self._lowest.popleft().set()
                return
            self._running -= 1
            if not self._running:
                self._idle.notify_all()

    def _wait_idle(self, work: Beside) -> float:
        """Wait until no turn runs or waits, then count ``work`` as running beside the gate; seconds waited."""
        started = time.perf_counter()
        with self._lock:
            while self._running or self._waiting or self._lowest:
                self._idle.wait()
            self._beside.add(work)
        return time.perf_counter() - started

    def _end_beside(self, work: Beside) -> None:
        with self._lock:
            self._beside.discard(work)


class Beside:
    """Work running next to some gates without a turn (see :func:`beside`).

    Attributes:
        disturbed: a turn of one of the gates started while the work ran (so it shared the CPU).
        waited: seconds spent waiting for the gates to be idle.
    """

    def __init__(self) -> None:
        self.disturbed = False
        self.waited = 0.0


@contextlib.contextmanager
def beside(*gates: FairGate) -> Iterator[Beside]:
    """Wait until every gate is idle, then run the ``with`` block next to them without taking a turn.

    Nobody waits for this work: a turn asked for meanwhile starts at once, and ``disturbed`` says so
    afterwards. For background work that must not delay anyone, long or not divisible (an encoder run of
    the ``auto`` check); run it at a low OS priority so that the turns that start beside it get the CPU.
    """
    work = Beside()
    entered: list[FairGate] = []
    try:
        while True:  # idle all at once: wait for each in turn, then make sure the earlier ones stayed idle
            for gate in gates:
                work.waited += gate._wait_idle(work)
                entered.append(gate)
            if not work.disturbed:
                break
            for gate in entered:
                gate._end_beside(work)
            entered.clear()
            work.disturbed = False
        yield work
    finally:
        for gate in entered:
            gate._end_beside(work)
