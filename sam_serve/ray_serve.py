"""The image encoder as an autoscaling Ray Serve deployment (the cluster side; needs ``requirements-serve.txt``).

Each replica loads the encoder once (a model folder or the pinned hub files,
the same ``--encoder`` variants as the local path, via
:func:`~sam_onnx.encoders.from_pretrained`, no decoder) and answers the HTTP protocol
of :mod:`sam_onnx.encoders.wire`: float32 pixels in, float16 embeddings out.
A replica runs one encode at a time (``max_ongoing_requests=1``): further
uploads wait in Serve's queue, where a replica's death cannot lose them, and the
autoscaler adds replicas while more than ``target_ongoing_requests`` wait per replica.

One command, one machine (a local Ray head in this process, on 127.0.0.1)::

    python -m sam_serve.ray_serve --model-dir DIR --encoder fp32

Several machines (README: Scaling out with Ray Serve)::

    ray start --head --port 6379                               # head machine
    python -m sam_serve.ray_serve --address auto --http-host 0.0.0.0 --max-replicas 8
    ray start --address HEAD:6379                              # each further machine

Ray and Starlette are imported only inside functions, so ``import sam_serve.ray_serve``
works without them (the app never imports this module). A request is answered by
:meth:`EncoderReplica.respond`, which knows no transport: Serve's ``__call__`` and
the tests' stdlib server (tests/replica_server.py) both call it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from sam_onnx.encoders import ENCODER_ENV, encoder_choices, wire
from sam_onnx.errors import ModelLoadError, SamOnnxError
from sam_onnx.hub import MODEL_DIR_ENV

logger = logging.getLogger(__name__)

APP_NAME = "sam-encoder"
"""Name of the Serve application (``serve status`` shows it)."""
DEPLOYMENT_NAME = "SamEncoder"
DEFAULT_REPLICA_CPUS = 2
"""CPUs Ray reserves per replica (and its encoder's threads, unless --replica-threads says otherwise)."""
LOOPBACK = "127.0.0.1"
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
"""Ray rewrites a loopback node address to the machine's routable one on Linux unless this is off
(``ray._private.services.resolve_ip_for_localhost``); with it, every Ray socket stays on 127.0.0.1."""
QUIET_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}
GCS_WAIT_ENV = {"RAY_gcs_server_port_wait_time_s": "3"}
"""Bounds ``ray.init(address=...)`` on a wrong address to ~40 s instead of ~13 minutes (20 retries)."""
PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Autoscaling:
    """Replica count policy (Serve's ``autoscaling_config``).

    The defaults suit a CPU encoder of ~2.5 s: add a replica as soon as more
    than one upload per replica is waiting (``target_ongoing_requests=1``,
    after ``upscale_delay_s``), give it back after two quiet minutes.
    """

    min_replicas: int = 1
    max_replicas: int = 4
    target_ongoing_requests: float = 1.0
    upscale_delay_s: float = 2.0
    downscale_delay_s: float = 120.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas or self.max_replicas < 1:
            raise ValueError(f"need 0 <= min_replicas <= max_replicas and max_replicas >= 1, got "
                             f"{self.min_replicas}..{self.max_replicas}")
        if self.target_ongoing_requests <= 0:
            raise ValueError("target_ongoing_requests must be positive")

    def to_config(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ReplicaConfig:
    """What every replica loads (the same choices as the local encoder).

    Attributes:
        model_dir: folder with the ONNX files on every node, or ``None`` for
            the pinned hub files (downloaded once per node).
        encoder: ``--encoder`` value (``fp32``, ``int8``, ``auto``, ...).
        threads: onnxruntime intra-op threads of the replica's encoder.
        local_files_only: never download (each node must have the files).
    """

    model_dir: str | None = None
    encoder: str = "fp32"
    threads: int = DEFAULT_REPLICA_CPUS
    local_files_only: bool = False


@dataclass(frozen=True)
class Reply:
    """One HTTP answer, free of any web framework: status, headers and body."""

    status: int
    headers: dict[str, str]
    body: bytes


def _text(status: int, text: str) -> Reply:
    return Reply(status, {"Content-Type": "text/plain; charset=utf-8"}, text.encode())


class EncoderReplica:
    """One replica: the encoder loaded once (alone, no decoder), answering ``GET /info`` and ``POST /encode``.

    Plain class (no Ray at import); :func:`build_app` makes it a Serve deployment.
    """

    def __init__(self, config: ReplicaConfig) -> None:
        from sam_onnx.encoders import from_pretrained

        started = time.perf_counter()
        self._encoder = from_pretrained(model_dir=config.model_dir, variant=config.encoder, threads=config.threads,
                                        local_files_only=config.local_files_only)
        self._info = {"protocol": wire.PROTOCOL, "encoder": self._encoder.name,
                      "description": f"{self._encoder.description}, {config.threads} thread(s) per replica",
                      "host": socket.gethostname(), "pid": os.getpid(),
                      "load_seconds": round(time.perf_counter() - started, 2)}
        logger.info("encoder replica ready: %s", self._info)

    def info(self) -> dict:
        return dict(self._info)

    def respond(self, method: str, path: str, body: bytes = b"") -> Reply:
        """Answer one request of the wire protocol (:mod:`sam_onnx.encoders.wire`); blocks for an encode.

        Args:
            method: ``"GET"`` or ``"POST"``.
            path: the request path (anything ending in ``/info`` or ``/encode``).
            body: the request body (the pixels for ``POST /encode``).

        Returns:
            200 with the JSON info or the float16 embeddings (and the encoder's own seconds in
            ``X-Encode-Seconds``); 400 for a body of the wrong length; 404 for anything else.
        """
        path = path.split("?", 1)[0].rstrip("/")
        if method == "GET" and path.endswith(wire.INFO_PATH):
            return Reply(200, {"Content-Type": "application/json"}, json.dumps(self.info()).encode())
        if method != "POST" or not path.endswith(wire.ENCODE_PATH):
            return _text(404, f"GET {wire.INFO_PATH} or POST {wire.ENCODE_PATH}")
        problem = wire.pixels_problem(body)
        if problem is not None:
            return _text(400, problem)
        started = time.perf_counter()
        blob = wire.pack_embeddings(self._encoder.encode(wire.unpack_pixels(body)))
        seconds = time.perf_counter() - started
        return Reply(200, {"Content-Type": wire.OCTET_STREAM, wire.ENCODE_SECONDS_HEADER: f"{seconds:.4f}"}, blob)

    async def __call__(self, request):
        from starlette.responses import Response

        body = await request.body() if request.method == "POST" else b""
        # An encode blocks for seconds: off the replica's event loop, so health checks still answer.
        reply = await asyncio.to_thread(self.respond, request.method, request.url.path, body)
        return Response(reply.body, status_code=reply.status, headers=reply.headers)


def build_app(config: ReplicaConfig, *, autoscaling: Autoscaling | None = None, num_replicas: int | None = None,
              replica_cpus: float = DEFAULT_REPLICA_CPUS, max_queued_requests: int = -1):
    """The Serve application: the deployment bound to ``config``.

    Args:
        num_replicas: a fixed replica count; ``None`` = autoscale with ``autoscaling``.
        replica_cpus: CPUs Ray reserves per replica (how many fit on a node).
        max_queued_requests: uploads that may wait per caller before Serve answers 503; -1 = no limit.
    """
    from ray import serve

    deployment = serve.deployment(EncoderReplica, name=DEPLOYMENT_NAME, ray_actor_options={"num_cpus": replica_cpus},
                                  max_ongoing_requests=1, max_queued_requests=max_queued_requests)
    if num_replicas is not None:
        deployment = deployment.options(num_replicas=num_replicas)
    else:
        deployment = deployment.options(autoscaling_config=(autoscaling or Autoscaling()).to_config())
    return deployment.bind(config)


def deploy(app, *, http_host: str = LOOPBACK, http_port: int = wire.DEFAULT_HTTP_PORT) -> str:
    """Start Serve's HTTP proxy (if needed) and run ``app`` on the connected cluster; returns the encoder's URL."""
    from ray import serve

    serve.start(http_options={"host": http_host, "port": http_port})
    serve.run(app, name=APP_NAME, route_prefix=wire.ROUTE_PREFIX, blocking=False)
    host = LOOPBACK if http_host in ("0.0.0.0", "::") else http_host
    return f"http://{host}:{http_port}{wire.ROUTE_PREFIX}"


SHIPPED_PACKAGES = ("sam_onnx", "sam_serve")
"""What the replicas import: the wrapper (the encoder engines) and this package (the replica class)."""


def repo_root() -> Path:
    """The folder that holds the ``sam_onnx`` and ``sam_serve`` packages (put on the replicas' import path)."""
    return Path(__file__).resolve().parent.parent


def probe(address: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Fail fast, naming the address, when nothing listens at a Ray cluster address ``HOST:PORT``.

    ``ray.init(address=...)`` itself retries for minutes on a dead address.

    Raises:
        ModelLoadError: the address is malformed or refuses/ignores a TCP connection.
    """
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return
    except ValueError:
        raise ModelLoadError(f"The Ray cluster address {address!r} is not HOST:PORT.") from None
    except OSError as exc:
        raise ModelLoadError(f"The Ray cluster at {address} is unreachable ({exc.strerror or exc}). Start it with "
                             "`ray start --head --port 6379` or check --address.") from None


def connect(address: str | None, *, num_cpus: int | None = None, object_store_mb: int = 512) -> None:
    """Join the cluster at ``address`` (``auto``: the one ``ray start`` made here), else start a local head."""
    for name, value in {**QUIET_ENV, **GCS_WAIT_ENV}.items():
        os.environ.setdefault(name, value)
    if address is None:
        os.environ.update(LOOPBACK_ENV)  # read by Ray at import: before the first `import ray`
        paths = [str(repo_root()), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))  # replicas import both packages
    import ray

    if address is None:
        # address="local": a new head even when `ray start` left a cluster (or its stale record) on this machine.
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
                 object_store_memory=object_store_mb * 2**20,
                 logging_level=logging.WARNING, log_to_driver=False)
        return
    if address != "auto":
        probe(address)
    # The cluster's nodes get these packages with the deployment (they need their requirements installed).
    ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False,
             runtime_env={"py_modules": [str(repo_root() / name) for name in SHIPPED_PACKAGES]})


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="python -m sam_serve.ray_serve",
        description="Deploy the SAM 2.1 image encoder as an autoscaling Ray Serve deployment.")
    parser.add_argument("--address", default=None,
                        help="Ray cluster to deploy on: HOST:PORT of its head, or 'auto' for the one `ray start` "
                             "made on this machine. Default: start a local head in this process (127.0.0.1 only) "
                             "and serve until Ctrl-C.")
    parser.add_argument("--model-dir", default=env(MODEL_DIR_ENV),
                        help=f"folder with the ONNX files on every node (env {MODEL_DIR_ENV}); default: the pinned "
                             "hub files, downloaded once per node")
    parser.add_argument("--encoder", type=str.lower, choices=encoder_choices(), default=env(ENCODER_ENV, "fp32"),
                        help="encoder variant each replica runs (as the app's --encoder; default fp32)")
    parser.add_argument("--local-files-only", action="store_true", help="never download model files")
    parser.add_argument("--replica-cpus", type=float, default=DEFAULT_REPLICA_CPUS,
                        help=f"CPUs reserved per replica (default {DEFAULT_REPLICA_CPUS})")
    parser.add_argument("--replica-threads", type=int, default=None,
                        help="encoder threads per replica (default: --replica-cpus)")
    parser.add_argument("--replicas", type=int, default=None, help="a fixed replica count instead of autoscaling")
    defaults = Autoscaling()
    parser.add_argument("--min-replicas", type=int, default=defaults.min_replicas)
    parser.add_argument("--max-replicas", type=int, default=defaults.max_replicas)
    parser.add_argument("--target-ongoing-requests", type=float, default=defaults.target_ongoing_requests,
                        help="uploads in flight per replica above which Serve adds one")
    parser.add_argument("--downscale-delay-s", type=float, default=defaults.downscale_delay_s)
    parser.add_argument("--max-queued", type=int, default=-1,
                        help="uploads that may wait per caller before Serve answers 503 (default: no limit)")
    parser.add_argument("--http-host", default=LOOPBACK,
                        help="address of Serve's HTTP proxy (0.0.0.0 to let app machines reach it); default 127.0.0.1")
    parser.add_argument("--http-port", type=int, default=wire.DEFAULT_HTTP_PORT)
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local head (default: all)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    threads = args.replica_threads or max(1, int(args.replica_cpus))
    try:
        scaling = Autoscaling(args.min_replicas, args.max_replicas, args.target_ongoing_requests,
                              downscale_delay_s=args.downscale_delay_s)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    config = ReplicaConfig(args.model_dir, args.encoder, threads, args.local_files_only)
    try:
        connect(args.address, num_cpus=args.num_cpus)
        started = time.perf_counter()
        url = deploy(build_app(config, autoscaling=scaling, num_replicas=args.replicas,
                               replica_cpus=args.replica_cpus, max_queued_requests=args.max_queued),
                     http_host=args.http_host, http_port=args.http_port)
    except SamOnnxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # Serve reports a replica that failed to start (bad model files...) this way
        print(f"error: the encoder deployment did not start: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"encoder_url": url, "ready_seconds": round(time.perf_counter() - started, 1),
                      "replica": asdict(config),
                      "scaling": {"replicas": args.replicas} if args.replicas else scaling.to_config()}), flush=True)
    print(f"Start the app with: python app.py --encoder-backend ray --ray-address {url}", flush=True)
    if args.address is not None:
        return 0  # Serve applications outlive the process that deployed them
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    import ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
