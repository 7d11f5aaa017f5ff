"""Finding the model files: the Hugging Face hub cache (pinned revision) or a local folder.

The only importer of huggingface_hub, and only inside functions: importing
sam_onnx never touches the network or the disk.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelLoadError
from .models import DEFAULT_MODEL, ModelSpec, OnnxFiles, RepoFile

logger = logging.getLogger(__name__)

MODEL_DIR_ENV = "SAM_ONNX_MODEL_DIR"
"""Environment variable naming a local model folder (same as ``--model-dir``)."""

# Names accepted in a local folder, in order of preference.
LOCAL_ENCODER_NAMES = ("encoder.onnx", "vision_encoder.onnx", "onnx/vision_encoder.onnx")
LOCAL_ENCODER_FP16_NAMES = ("encoder_fp16.onnx", "vision_encoder_fp16.onnx", "onnx/vision_encoder_fp16.onnx")
LOCAL_DECODER_NAMES = ("decoder.onnx", "prompt_encoder_mask_decoder.onnx", "onnx/prompt_encoder_mask_decoder.onnx")

_HASH_CHUNK = 8 * 1024 * 1024
_MB = 1024 * 1024
HUB_PROBE_TIMEOUT_S = 5.0
"""Seconds one request may take to tell whether the hub can be reached, before any download
(huggingface_hub itself retries a failed connection for about 25 s)."""


@dataclass(frozen=True)
class ModelFiles:
    """Paths of an encoder and a decoder graph (their ``.onnx_data`` files sit beside them).

    Attributes:
        encoder_path: path of the encoder ``.onnx`` file.
        decoder_path: path of the decoder ``.onnx`` file.
        source: where they came from, for logs and the UI.
        model: the model table's name of the size they are (``"sam2.1-hiera-small"``); for a local folder,
            the size the caller said it holds (default small).
    """

    encoder_path: Path
    decoder_path: Path
    source: str
    model: str = ""


def _first_existing(folder: Path, names: Sequence[str]) -> Path | None:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


def resolve_local_files(model_dir: str | os.PathLike, *, fp16_encoder: bool = False,
                        spec: ModelSpec = DEFAULT_MODEL) -> ModelFiles:
    """Find an encoder and a decoder in a local folder, for the model ``spec`` (what the folder holds).

    Accepted names: ``encoder.onnx`` + ``decoder.onnx``, or the hub's names
    (``vision_encoder.onnx``, ``prompt_encoder_mask_decoder.onnx``) directly in
    the folder or under ``onnx/``; with ``fp16_encoder``, ``encoder_fp16.onnx``
    or ``vision_encoder_fp16.onnx``. External data is read from beside each file.
    A folder holding several sizes has one subfolder per size, named as ``--model``
    names it (``tiny/``, ``small/``, ``base-plus/``, ``large/``): ``spec``'s is used when it exists.

    Raises:
        ModelLoadError: the folder or a file is missing.
    """
    folder = Path(model_dir).expanduser()
    if not folder.is_dir():
        raise ModelLoadError(f"The model folder {folder} does not exist. Check --model-dir / {MODEL_DIR_ENV}.")
    if spec.size and (folder / spec.size).is_dir():
        folder = folder / spec.size
    encoder_names = LOCAL_ENCODER_FP16_NAMES if fp16_encoder else LOCAL_ENCODER_NAMES
    encoder = _first_existing(folder, encoder_names)
    decoder = _first_existing(folder, LOCAL_DECODER_NAMES)
    for found, names, what in ((encoder, encoder_names, "encoder"), (decoder, LOCAL_DECODER_NAMES, "decoder")):
        if found is None:
            raise ModelLoadError(
                f"No {what} in the model folder {folder}: looked for {', '.join(names)}. "
                "Put the ONNX files there, or leave --model-dir unset to download the model.")
    return ModelFiles(encoder, decoder, f"local folder {folder}", spec.name)


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, memoised per (path, size, mtime): one process hashes each file once,
    however many checks (the hub's file check, the encoder fingerprints) ask."""
    stat = Path(path).stat()
    return _sha256_of(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_problem(path: Path, expected: RepoFile) -> str | None:
    """Why ``path`` is not the pinned file, or ``None`` when it is.

    Checks exactly two things: the exact size, and that the file's SHA-256 starts with the pinned hex digits
    (all 64 for every file the model table pins). That catches partial, damaged and substituted files; the
    pinned values come from third-party code, not from files we have seen (docs/model-io.md, "Files"). A
    value the table leaves ``None`` (nobody publishes it) is not checked.
    """
    size = path.stat().st_size
    if expected.size is not None and size != expected.size:
        return f"it has {size:,} bytes instead of {expected.size:,} (partial or damaged download)"
    if expected.sha256_prefix and not sha256_of(path).startswith(expected.sha256_prefix):
        return f"its SHA-256 does not start with {expected.sha256_prefix} (damaged file)"
    return None


def _download(spec: ModelSpec, entry: RepoFile, *, cache_dir: str | None, local_files_only: bool,
              force: bool = False) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
    )

    where = f"{entry.path} of {spec.repo_id} at revision {spec.revision_text}"
    try:
        return Path(hf_hub_download(spec.repo_id, entry.path, revision=spec.revision, cache_dir=cache_dir,
                                    local_files_only=local_files_only, force_download=force))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as exc:
        why = ("downloads are off (HF_HUB_OFFLINE=1 or local_files_only)" if local_files_only or _offline()
               else "the Hugging Face hub could not be reached")
        raise ModelLoadError(
            f"Model file {where} is not in the Hugging Face cache and {why}. Run once with network access "
            f"so it is downloaded, or point --model-dir / {MODEL_DIR_ENV} at a folder with the ONNX files.") from exc
    except EntryNotFoundError as exc:
        raise ModelLoadError(f"Model file {where} does not exist on the hub; check the model table.") from exc
    except HfHubHTTPError as exc:
        raise ModelLoadError(f"Downloading {where} failed: {str(exc).splitlines()[0][:200]}") from exc
    except OSError as exc:  # disk full, permissions
        raise ModelLoadError(f"Could not store {where} in the Hugging Face cache: {exc.strerror or exc}. "
                             "Free disk space or set HF_HOME to a writable folder.") from exc


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def size_text(size: int | None) -> str:
    """A file size for people: "467 kB", "162 MB" ("size unknown" for None)."""
    if size is None:
        return "size unknown"
    if size < _MB:
        return f"{max(1, round(size / 1024))} kB"
    return f"{size / _MB:.0f} MB"


def hub_problem(timeout_s: float = HUB_PROBE_TIMEOUT_S) -> str | None:
    """Why the Hugging Face hub cannot be reached right now, or ``None`` when it answers.

    One request to the hub's address (``HF_ENDPOINT``), no retries: any HTTP
    answer means reachable. Proxies from the environment apply, as for the
    downloads themselves.
    """
    import urllib.error
    import urllib.request

    from huggingface_hub import constants

    request = urllib.request.Request(constants.ENDPOINT, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):  # noqa: S310 - the configured hub address
            return None
    except urllib.error.HTTPError:
        return None  # it answered
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{constants.ENDPOINT} did not answer ({reason})"


def _verified(spec: ModelSpec, entry: RepoFile, path: Path, *, cache_dir: str | None,
              local_files_only: bool) -> Path:
    """``path`` after the size and hash check; a bad cached file is downloaded again once when allowed."""
    problem = file_problem(path, entry)
    if problem and not (local_files_only or _offline()):
        logger.warning("cached %s is unusable (%s); downloading it again", entry.path, problem)
        path = _download(spec, entry, cache_dir=cache_dir, local_files_only=False, force=True)
        problem = file_problem(path, entry)
    if problem:
        raise ModelLoadError(
            f"Model file {path} is unusable: {problem}. Delete it (or the whole folder "
            f"models--{spec.repo_id.replace('/', '--')} in the Hugging Face cache) and run again with network "
            "access.")
    return path


def resolve_hub_files(spec: ModelSpec = DEFAULT_MODEL, *, fp16_encoder: bool = False,
                      cache_dir: str | os.PathLike | None = None, local_files_only: bool = False) -> ModelFiles:
    """Get the pinned ONNX files from the Hugging Face cache, downloading them if needed.

    Downloads show huggingface_hub's progress bars; ``HF_HUB_OFFLINE=1`` (or
    ``local_files_only``) means the cache only. When a file is missing and the
    hub cannot be reached, this fails within :data:`HUB_PROBE_TIMEOUT_S`
    instead of retrying. Every file, cached or fresh, is checked against the
    sizes and SHA-256 prefixes in the model table; a bad cached file is
    downloaded again once when downloads are allowed.

    Raises:
        ModelLoadError: with the file, the reason and what to do.
    """
    encoder_files: OnnxFiles | None = spec.encoder_fp16_files if fp16_encoder else spec.encoder_files
    if encoder_files is None:
        raise ModelLoadError(f"{spec.name} has no known fp16 encoder files (nobody publishes them); "
                             "use --encoder fp32 or auto.")
    cache = None if cache_dir is None else str(cache_dir)
    entries = (*encoder_files.all, *spec.decoder_files.all)
    found: dict[str, Path] = {}
    for entry in entries:  # the cache first: no HTTP at all
        try:
            found[entry.path] = _download(spec, entry, cache_dir=cache, local_files_only=True)
        except ModelLoadError:
            if local_files_only or _offline():
                raise
    missing = [entry for entry in entries if entry.path not in found]
    if missing:
        problem = hub_problem()
        if problem is not None:
            names = ", ".join(entry.path for entry in missing)
            raise ModelLoadError(
                f"Model file{'s' if len(missing) > 1 else ''} {names} of {spec.repo_id} at revision "
                f"{spec.revision_text} {'are' if len(missing) > 1 else 'is'} not in the Hugging Face cache and the "
                f"Hugging Face hub could not be reached: {problem}. Run once with network access so the model is "
                f"downloaded, or point --model-dir / {MODEL_DIR_ENV} at a folder with the ONNX files.")
        sizes = [entry.size for entry in missing]
        total = None if None in sizes else sum(sizes)  # type: ignore[arg-type]
        logger.info("downloading %d file%s (%s) from %s", len(missing), "s" if len(missing) > 1 else "",
                    size_text(total), spec.repo_id)
    if spec.revision is None:
        logger.warning("%s is not pinned to a revision (no public code pins one): using the hub's main", spec.name)
    unchecked = [entry.path for entry in entries if entry.size is None or entry.sha256_prefix is None]
    if unchecked:
        logger.warning("nobody publishes the size or SHA-256 of %s of %s: %s not checked", ", ".join(unchecked),
                       spec.name, "it is" if len(unchecked) == 1 else "they are")
    paths = {}
    for entry in entries:
        path = found.get(entry.path) or _download(spec, entry, cache_dir=cache, local_files_only=False)
        paths[entry.path] = _verified(spec, entry, path, cache_dir=cache, local_files_only=local_files_only)
    return ModelFiles(paths[encoder_files.graph.path], paths[spec.decoder_files.graph.path],
                      f"{spec.repo_id}@{spec.revision[:12] if spec.revision else 'main'}", spec.name)


def route_hub_logs_to_root() -> None:
    """Let huggingface_hub's messages go through the application's logging only (they were printed twice:
    once by its own handler, once by the root logger's)."""
    hub_logger = logging.getLogger("huggingface_hub")
    try:
        from huggingface_hub.utils import logging as hub_logging

        hub_logging.get_logger()  # huggingface_hub adds its handler on first use; let it, then take it away
    except ImportError:
        return
    for handler in list(hub_logger.handlers):
        hub_logger.removeHandler(handler)
    hub_logger.propagate = True


def resolve_model_files(model_dir: str | os.PathLike | None = None, *, spec: ModelSpec = DEFAULT_MODEL,
                        fp16_encoder: bool = False, cache_dir: str | os.PathLike | None = None,
                        local_files_only: bool = False) -> ModelFiles:
    """A local folder if one is given (argument or ``SAM_ONNX_MODEL_DIR``; its ``spec.size`` subfolder when it
    has one), else the pinned hub files of ``spec``."""
    model_dir = model_dir or os.environ.get(MODEL_DIR_ENV) or None
    if model_dir:
        return resolve_local_files(model_dir, fp16_encoder=fp16_encoder, spec=spec)
    return resolve_hub_files(spec, fp16_encoder=fp16_encoder, cache_dir=cache_dir, local_files_only=local_files_only)
