"""Per-tab access tokens for an image's data served over plain HTTP routes (:mod:`sam_demo.routes`).

The page draws the picture itself, so it fetches the display copy, the full-resolution copy, mask
layers (and, with WP-O, embeddings) from routes outside Gradio's queue. Those routes must never serve
an image's data to a browser tab that did not open that image: each (tab, image key) pair gets an
unguessable token (:func:`secrets.token_urlsafe`, 128 bits) that only that tab's scene carries, and a
route answers only for the image its token names.

The registry holds nothing but ``token -> (tab, image key, expiry)``: no pixels, paths or prompts.
It is bounded twice: entries expire :data:`DEFAULT_TTL_S` after their last use (the app's state
lives as long), and at most :data:`DEFAULT_CAPACITY` entries are kept (least recently used first
out). A token that expired or was pushed out resolves to ``None``; the page then asks the server for
a fresh scene, which issues a new token (the tab still holds its image in its own state).
Thread-safe: Gradio runs handlers and routes on many threads.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_TTL_S = 3600.0
"""Seconds a token lives after its last use: as long as a tab's state (``app.STATE_TTL_S``)."""
DEFAULT_CAPACITY = 10_000
"""Tokens kept at most (about 200 bytes each): 10 times Gradio's ``state_session_capacity``."""
TOKEN_BYTES = 16
"""Random bytes per token (128 bits, URL-safe base64: 22 characters)."""


@dataclass(frozen=True)
class _Grant:
    tab: str
    image_key: str
    expires: float


class Grants:
    """A bounded, thread-safe registry of tokens, one per (browser tab, image key).

    Args:
        ttl_s: seconds a token lives after it was last issued or resolved.
        capacity: tokens kept at most; the least recently used goes first.
        clock: monotonic seconds (tests pass a fake one).
    """

    def __init__(self, ttl_s: float = DEFAULT_TTL_S, capacity: int = DEFAULT_CAPACITY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if ttl_s <= 0 or capacity < 1:
            raise ValueError(f"ttl_s and capacity must be positive, got {ttl_s}, {capacity}")
        self._ttl = float(ttl_s)
        self._capacity = int(capacity)
        self._clock = clock
        self._by_token: OrderedDict[str, _Grant] = OrderedDict()
        self._by_pair: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def issue(self, tab: str, image_key: str) -> str:
        """The token of ``(tab, image_key)``: the one already issued while it lives, else a new one."""
        if not tab or not image_key:
            raise ValueError("a grant needs a tab and an image key")
        now = self._clock()
        with self._lock:
            self._expire(now)
            token = self._by_pair.get((tab, image_key))
            if token is None:
                token = secrets.token_urlsafe(TOKEN_BYTES)
                self._by_pair[(tab, image_key)] = token
            self._by_token[token] = _Grant(tab, image_key, now + self._ttl)
            self._by_token.move_to_end(token)
            while len(self._by_token) > self._capacity:
                self._drop(next(iter(self._by_token)))
            return token

    def resolve(self, token: str) -> str | None:
        """The image key ``token`` grants access to, or ``None`` (unknown, expired or pushed out).

        A successful look-up extends the token's life by the TTL.
        """
        if not isinstance(token, str):
            return None
        now = self._clock()
        with self._lock:
            grant = self._by_token.get(token)
            if grant is None:
                return None
            if grant.expires <= now:
                self._drop(token)
                return None
            self._by_token[token] = _Grant(grant.tab, grant.image_key, now + self._ttl)
            self._by_token.move_to_end(token)
            return grant.image_key

    def __len__(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self._by_token)

    def _drop(self, token: str) -> None:
        grant = self._by_token.pop(token)
        self._by_pair.pop((grant.tab, grant.image_key), None)

    def _expire(self, now: float) -> None:
        """Drop expired tokens from the least recently used end (entries are kept in order of last use)."""
        while self._by_token:
            token, grant = next(iter(self._by_token.items()))
            if grant.expires > now:
                return
            self._drop(token)
