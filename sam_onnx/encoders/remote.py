"""An encoder that runs elsewhere: a Ray Serve deployment reached over HTTP (the app side; no Ray needed).

The deployment (:mod:`sam_serve.ray_serve`) runs one of the local variants
(``--encoder``) on each replica; this client sends it the model-frame pixels
and gets the three embeddings back as float16 (8.4 MB instead of 16.8 MB),
widened to float32 here. The wire format, shared with the server, is
:mod:`sam_onnx.encoders.wire`.

Why HTTP and not a Ray ``DeploymentHandle`` (docs/ray-serve.md): a handle makes the
app process a Ray driver, and a driver is ended by Ray 60 s after it loses the
cluster (with every user's session); connecting to a dead address hangs for
minutes; and the app machine would have to be a Ray node. Over HTTP the app
needs no Ray at all, a lost cluster is an ordinary error, and the hop costs
about 30 ms more than a handle (~1 % of an encode; measured with a prototype, docs/ray-serve.md).

Faults: a request that fails with a 5xx or a dropped connection (a replica died
mid-request) is sent once more; Serve has already taken the dead replica out of
rotation, so the retry runs on another one. When the deployment cannot be
reached, :meth:`RemoteEncoder.encode` raises :class:`ClusterUnavailableError`
(a user-facing message), or encodes locally when a fallback is configured.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import InferenceError, InvalidImageError, ModelLoadError
from . import wire
from .base import PIXEL_SHAPE, ImageEncoder, check_embeddings

logger = logging.getLogger(__name__)

HTTPS_PORT = 443

CONNECT_TIMEOUT_S = 5.0
"""How long the start-up check waits for the deployment's ``/info``."""
DEFAULT_TIMEOUT_S = 120.0
"""How long one encode may take, queueing on a busy cluster included."""
LOCAL_AFTER_FAILURE_S = 30.0
"""With a fallback, how long uploads go straight to it after the cluster failed (then the cluster is tried again)."""


BACKENDS = ("local", "ray")
"""``--encoder-backend`` values: encode in this process, or on the Ray Serve deployment at ``--ray-address``."""


class ClusterUnavailableError(InferenceError):
    """The encoder deployment cannot be reached now; nothing of the user's session is lost."""


@dataclass
class RemoteStats:
    """Counters a benchmark or a test can read (updated under the encoder's lock)."""

    requests: int = 0
    retries: int = 0
    fallbacks: int = 0


def normalise_address(address: str) -> str:
    """``--ray-address`` as the deployment's base URL, e.g. ``"10.0.0.5:8000"`` -> ``"http://10.0.0.5:8000/sam-encoder"``.

    Raises:
        ModelLoadError: not an HTTP address of a Serve proxy (e.g. a ``ray://`` client address).
    """
    text = (address or "").strip()
    if not text:
        raise ModelLoadError("--ray-address is empty; give the Ray Serve HTTP address, e.g. http://HEAD:8000.")
    if "://" not in text:
        text = f"http://{text}"
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ModelLoadError(f"--ray-address {address!r} is not an HTTP address. It is the Ray Serve HTTP proxy "
                             f"that serves the encoder (http://HEAD:{wire.DEFAULT_HTTP_PORT}), not the cluster's ray:// "
                             "or GCS address.")
    try:
        port = parts.port or (HTTPS_PORT if parts.scheme == "https" else wire.DEFAULT_HTTP_PORT)
    except ValueError:
        raise ModelLoadError(f"--ray-address {address!r} has an invalid port.") from None
    path = parts.path.rstrip("/") or wire.ROUTE_PREFIX
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port}{path}"


def encoder_for_backend(backend: str, address: str | None, *,
                        fallback: Callable[[], ImageEncoder] | None = None) -> RemoteEncoder | None:
    """``--encoder-backend`` / ``--ray-address`` as an encoder: ``None`` for ``local``, a checked client for ``ray``.

    Raises:
        ModelLoadError: ``ray`` without an address, or nothing answers there (the message names it).
    """
    if backend not in BACKENDS:
        raise ModelLoadError(f"Unknown encoder backend {backend!r}; choose one of {', '.join(BACKENDS)}.")
    if backend == "local":
        return None
    if not address:
        raise ModelLoadError("--encoder-backend ray needs --ray-address (the Serve HTTP address, http://HEAD:8000).")
    return RemoteEncoder.connect(address, fallback=fallback)


def _reason(exc: BaseException) -> str:
    """A short, user-readable cause of a connection failure."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "no answer in time"
    if isinstance(exc, (ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError)):
        return "connection dropped"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    return f"{type(exc).__name__}: {exc}"


def _retryable(exc: BaseException) -> bool:
    """A replica died or the proxy dropped the request: worth one more try on another replica."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code >= 500
    if isinstance(exc, urllib.error.URLError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    return isinstance(exc, (ConnectionResetError, http.client.RemoteDisconnected, http.client.IncompleteRead,
                            BrokenPipeError))


class RemoteEncoder:
    """:class:`~sam_onnx.encoders.ImageEncoder` on a Ray Serve deployment of :mod:`sam_serve.ray_serve`.

    Thread-safe: every call opens its own connection, so concurrent uploads
    reach different replicas. Use :meth:`connect`, which checks the deployment first.

    Args:
        url: the deployment's base URL (see :func:`normalise_address`).
        name: ``"ray:<variant>"``, the variant the replicas run.
        description: one line for logs and the UI.
        timeout_s: the longest one encode may take, queueing included.
        fallback: builds a local encoder to use while the cluster cannot be
            reached (called once, on the first failure); ``None`` = report the failure.
    """

    def __init__(self, url: str, *, name: str, description: str, timeout_s: float = DEFAULT_TIMEOUT_S,
                 fallback: Callable[[], ImageEncoder] | None = None) -> None:
        self.url = url
        self.name = name
        self.description = description
        self.timeout_s = timeout_s
        self.stats = RemoteStats()
        self._fallback_factory = fallback
        self._fallback: ImageEncoder | None = None
        self._local_until = 0.0
        self._lock = threading.Lock()

    @classmethod
    def connect(cls, address: str, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                connect_timeout_s: float = CONNECT_TIMEOUT_S,
                fallback: Callable[[], ImageEncoder] | None = None) -> RemoteEncoder:
        """Check that the deployment answers at ``address`` and speaks this protocol.

        Raises:
            ModelLoadError: unreachable, or not a SAM encoder deployment; the
                message names the address and what to do.
        """
        url = normalise_address(address)
        try:
            with urllib.request.urlopen(f"{url}{wire.INFO_PATH}", timeout=connect_timeout_s) as response:
                info = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise ModelLoadError(
                f"{url} answers, but there is no SAM encoder deployment there ({_reason(exc)}). Deploy it with "
                "`python -m sam_serve.ray_serve` (README: Scaling out with Ray Serve) or check --ray-address.") from None
        except (OSError, http.client.HTTPException) as exc:
            raise ModelLoadError(
                f"The Ray Serve encoder at {url} is unreachable ({_reason(exc)}). Start it with "
                "`python -m sam_serve.ray_serve` (README: Scaling out with Ray Serve), or check --ray-address "
                "and that the Serve HTTP proxy listens on an address this machine can reach.") from None
        except ValueError:
            raise ModelLoadError(f"{url}/info did not answer JSON: is --ray-address the Serve HTTP address of "
                                 "the SAM encoder deployment?") from None
        if not isinstance(info, dict) or info.get("protocol") != wire.PROTOCOL:
            raise ModelLoadError(f"The encoder deployment at {url} speaks protocol {info.get('protocol')!r}, this "
                                 f"app speaks {wire.PROTOCOL}: deploy the same version of sam_onnx on both sides.")
        return cls(url, name=f"ray:{info.get('encoder', '?')}",
                   description=f"Ray Serve deployment at {url}: {info.get('description', '')}",
                   timeout_s=timeout_s, fallback=fallback)

    # ------------------------------------------------------------------ the seam
    def encode(self, pixel_values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(1, 3, 1024, 1024)`` float32 pixels -> the three float32 embeddings (float16-exact values).

        Raises:
            InvalidImageError: wrong shape (checked before anything is sent).
            ClusterUnavailableError: the deployment cannot be reached and no
                fallback is configured (the message is for the user).
            InferenceError: the deployment answered something malformed.
        """
        if tuple(pixel_values.shape) != PIXEL_SHAPE:
            raise InvalidImageError(f"expected pixel values of shape {PIXEL_SHAPE}, got {pixel_values.shape}")
        if self._fallback_factory is not None and time.monotonic() < self._local_until:
            return self._encode_locally(pixel_values, "the cluster failed moments ago")
        try:
            blob = self._post_with_retry(wire.pack_pixels(pixel_values))
        except urllib.error.HTTPError as exc:
            if exc.code >= 500:
                return self._unavailable(pixel_values, exc)
            detail = exc.read()[:300].decode(errors="replace")
            raise InferenceError(f"The encoder deployment at {self.url} refused the request ({_reason(exc)}: "
                                 f"{detail}); deploy the same version of sam_onnx on both sides.") from None
        except (OSError, http.client.HTTPException) as exc:
            return self._unavailable(pixel_values, exc)
        return check_embeddings(wire.unpack_embeddings(blob, sender=self.url), label=f"{self.name} image encoder")

    def _unavailable(self, pixel_values: np.ndarray,
                     exc: BaseException) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """After the retry: encode locally when a fallback is configured, else a message for the user."""
        reason = _reason(exc)
        logger.warning("encoder deployment at %s failed: %s", self.url, reason)
        if self._fallback_factory is not None:
            self._local_until = time.monotonic() + LOCAL_AFTER_FAILURE_S
            return self._encode_locally(pixel_values, reason)
        raise ClusterUnavailableError(
            f"The encoder cluster at {self.url} is not answering ({reason}). Your image, points and masks are "
            "kept; try the upload again in a moment.") from None

    # ------------------------------------------------------------------ internals
    def _post_with_retry(self, body: bytes) -> bytes:
        with self._lock:
            self.stats.requests += 1
        try:
            return self._post(body)
        except (OSError, http.client.HTTPException) as exc:
            if not _retryable(exc):
                raise
            with self._lock:
                self.stats.retries += 1
            logger.warning("encode at %s failed (%s); retrying once on another replica", self.url, _reason(exc))
            return self._post(body)

    def _post(self, body: bytes) -> bytes:
        request = urllib.request.Request(f"{self.url}{wire.ENCODE_PATH}", data=body, method="POST",
                                         headers={"Content-Type": wire.OCTET_STREAM})
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            return response.read()

    def _encode_locally(self, pixel_values: np.ndarray, reason: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with self._lock:
            self.stats.fallbacks += 1
            if self._fallback is None:
                logger.warning("encoder cluster at %s unavailable (%s): loading the local fallback encoder",
                               self.url, reason)
                self._fallback = self._fallback_factory()  # type: ignore[misc]
            fallback = self._fallback
        return fallback.encode(pixel_values)

    def __repr__(self) -> str:
        return f"RemoteEncoder({self.url!r}, {self.name!r})"
