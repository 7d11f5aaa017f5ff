"""The model table: which files make up each SAM 2.1 size, where they live, and what they must weigh. Pure data.

Every size is onnx-community's export of the SAM 2.1 checkpoint with the same file layout and I/O
(docs/model-io.md): ``onnx/vision_encoder.onnx`` + ``.onnx_data`` (fp32), ``onnx/vision_encoder_fp16.onnx`` +
``.onnx_data`` (optional) and ``onnx/prompt_encoder_mask_decoder.onnx`` + ``.onnx_data``. The decoder graphs of
all sizes have the same size in bytes but different weights (their hashes differ): each size has its own.

We have not seen these files (huggingface.co cannot be reached where this project is developed). Each revision,
size and SHA-256 below is copied from third-party code that pins it, named in ``ModelSpec.sources``; a value
nobody publishes is ``None`` and is not checked (never guessed). ``sam_onnx.hub`` checks each file against its
size and SHA-256 before onnxruntime opens it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

from .errors import ModelLoadError


@dataclass(frozen=True)
class RepoFile:
    """One file of a hub repository, with what it must be.

    Attributes:
        path: path inside the repository, e.g. ``"onnx/vision_encoder.onnx"``.
        size: exact size in bytes, or ``None`` if nobody publishes it.
        sha256_prefix: leading hex digits of the file's SHA-256 (all 64 where public code pins the whole hash),
            or ``None`` if nobody publishes it.
    """

    path: str
    size: int | None = None
    sha256_prefix: str | None = None


@dataclass(frozen=True)
class OnnxFiles:
    """An ONNX graph file and the external-data files it needs (``.onnx_data``)."""

    graph: RepoFile
    data: tuple[RepoFile, ...] = ()

    @property
    def all(self) -> tuple[RepoFile, ...]:
        return (self.graph, *self.data)


@dataclass(frozen=True)
class ModelSpec:
    """A SAM 2.1 ONNX model on the Hugging Face hub.

    Attributes:
        name: the full name, e.g. ``"sam2.1-hiera-small"`` (logs, the UI, exports).
        repo_id: the hub repository.
        revision: the pinned commit, or ``None`` when nobody publishes one (then the hub's ``main`` is used and
            the log says the revision is not pinned).
        encoder_files, decoder_files: the fp32 encoder's and the decoder's files (graph and external data).
        encoder_fp16_files: the published half-precision encoder's files, if they are known.
        size: the ``--model`` value (``"tiny"``, ``"small"``, ``"base-plus"``, ``"large"``).
        sources: where the pinned values come from (third-party code, by the search index's file id).
    """

    name: str
    repo_id: str
    revision: str | None
    encoder_files: OnnxFiles
    decoder_files: OnnxFiles
    encoder_fp16_files: OnnxFiles | None = None
    size: str = ""
    sources: str = ""

    @property
    def download_bytes(self) -> int | None:
        """Bytes of the default (fp32) encoder and decoder files, ``None`` when a size is unknown."""
        sizes = [f.size for f in (*self.encoder_files.all, *self.decoder_files.all)]
        return None if None in sizes else sum(sizes)  # type: ignore[arg-type]

    @property
    def revision_text(self) -> str:
        """The revision for messages: 12 hex digits, or ``"main (not pinned)"``."""
        return self.revision[:12] if self.revision else "main (not pinned)"


_ENC, _ENC16, _DEC = "vision_encoder", "vision_encoder_fp16", "prompt_encoder_mask_decoder"
"""The stems of a size's three ONNX files in its repository's ``onnx/`` folder."""
_PART_ENDINGS: Final = {"graph": ".onnx", "data": ".onnx_data"}
"""The two files of one ONNX model, by part: the graph and its external data."""

_PINS: Final[tuple[tuple[str, str, str, int, str], ...]] = (
    # size,       file,   part,          bytes, SHA-256
    ("tiny",      _ENC,   "graph",     354_238, "4f30aacd3aaefbca81a0b7fe4c1fc96345570ea0a6f80ced599493d1b3be2e8c"),
    ("tiny",      _ENC,   "data",  134_084_864, "e83df9866a5afe68ea7f0f721f18f65137fc3acbf0da1c74e946d363e09c69cc"),
    ("tiny",      _DEC,   "graph",     213_114, "874414704c5d686db7d206a35f6e15d26563d50c8c4468fccc6739bd7e491dcf"),
    ("tiny",      _DEC,   "data",   20_958_208, "e9874d900dd4134ed60eab1e97910327c2419e0b2954485d8fd6e7f1a1470f47"),
    ("tiny",      _ENC16, "graph",     314_925, "7773e79d589dada8e1e630cc7eb18b17b2c5b4faeb1eaab5ebf9df618ecbd50a"),
    ("tiny",      _ENC16, "data",   67_005_504, "a4dd3759e9b6a476d991fb3493787992e78777e51462695e1bede71ae258103e"),
    ("small",     _ENC,   "graph",     467_440, "aacf1f7137bb6fffcf6bf166abcfabe28f57a76059254f3fb611c4a64a208119"),
    ("small",     _ENC,   "data",  162_476_288, "260fd1f0a34e72a3dc79a739e563b4facc0ba75504818b433a1f808e66637456"),
    ("small",     _DEC,   "graph",     213_114, "079c59b261f723ff5c6a125e69b0170a957b21c58738c28d2b0394ecd0587d7f"),
    ("small",     _DEC,   "data",   20_958_208, "f9e59a584ab8ced21fa812c211bc01084204db1c9e92a5ef4fb3a49972b4e864"),
    ("small",     _ENC16, "graph",     422_501, "f236074c31a7ba9d1e00362e8c29cb95bf9dcdd61e208048493902878d9dc4db"),
    ("small",     _ENC16, "data",   81_182_784, "557e013522bace72a6b8441f66747f1c4b2a237d1e3c86f84dba86b6d814ec1f"),
    ("base-plus", _DEC,   "graph",     213_114, "f39eeec20243ed1c8f2cd013812e77813d937ddbc800fa4bc703761adc7e63cd"),
    ("base-plus", _DEC,   "data",   20_958_208, "445cd3f72a218815db10e336f4f1c46a6eb2713a0160a85af5365134607f32a7"),
    ("base-plus", _ENC16, "graph",     643_078, "cb9324a431bfb78c70e4ead1ffb80766e236b50decd55c236c8eada4f0afde96"),
    ("base-plus", _ENC16, "data",  152_780_640, "78be422d399181ce3af00130409ebe32eb5b95825e7fe290440fbfaac70b99b4"),
    ("large",     _ENC,   "graph",   1_350_487, "ad3a8161c6bd6d8beea811300c60e20d626035feaa3c19622ace27b22e25bec8"),
    ("large",     _ENC,   "data",  888_587_456, "88c501a65b6aaeac99b65a275f3f559727404283930d107d499fda8714ba7e5a"),
    ("large",     _DEC,   "graph",     213_114, "a21b3b09f6e5f5838d630d92a150914ca58f8f58b603b8f53fc32b03da982203"),
    ("large",     _DEC,   "data",   20_958_208, "bfdcd4f7ee04298a82fe1aaf1bd7b8edf544d36901e1a886f01892fb915bd63c"),
)
"""Every file somebody pins, one row each: (size, file stem, part, bytes, SHA-256). A file with no row is not pinned
(size and hash ``None``, not checked), and an fp16 encoder none of whose parts has a row is not published as far as we
know (``ModelSpec.encoder_fp16_files`` is ``None``)."""

_REVISIONS: Final[dict[str, str | None]] = {
    "tiny": "814a066640debee5a91e70aa401fb8e17e030503",
    "small": "a7df49d8de14b9d2e4504d1687b0d568f905fd8d",
    "base-plus": None,
    "large": "3c23431f721e69cae82dbfd0c28fd692cc714021",
}
"""Every size's pinned hub commit, smallest size first (``None``: nobody publishes one)."""

_SOURCES: Final[dict[str, str]] = {
    "tiny": "revision, fp32 encoder and decoder: a C# model catalog pinning this revision [id 70078997999]; fp16 "
            "encoder: a fetch script pinning hashes and sizes of main [id 66830082899], whose decoder hashes equal "
            "this revision's",
    "small": "revision, fp32 encoder and decoder: a Rust model spec pinning this revision [id 70469329868]; fp16 "
             "encoder (and the decoder again): the fetch script [id 66830082899]",
    "base-plus": "fp16 encoder and decoder: the fetch script pinning hashes and sizes of main [id 66830082899]; no "
                 "public code found pins a revision or the fp32 encoder's size or hash",
    "large": "revision, fp32 encoder and decoder: a Rust model catalog pinning this revision from the hub's LFS "
             "metadata [id 70069448269]; no fp16 file is pinned by anyone found",
}
"""Where each size's pins come from (third-party code, by the search index's file id)."""


def _onnx_files(size: str, stem: str) -> OnnxFiles:
    """``onnx/<stem>.onnx`` and its ``.onnx_data`` for ``size``, each with its row of :data:`_PINS` (``None``
    size and hash without one)."""
    pins = {part: (nbytes, sha) for s, st, part, nbytes, sha in _PINS if (s, st) == (size, stem)}
    graph, data = (RepoFile(f"onnx/{stem}{ending}", *pins.get(part, (None, None)))
                   for part, ending in _PART_ENDINGS.items())
    return OnnxFiles(graph, (data,))


def _spec(size: str) -> ModelSpec:
    """The model of ``size`` (a key of :data:`_REVISIONS`) from the tables above: its fp32 encoder and decoder always
    (unpinned parts have ``None`` size and hash), its fp16 encoder only where some part of it is pinned."""
    fp16_pinned = any((s, st) == (size, _ENC16) for s, st, *_ in _PINS)
    return ModelSpec(
        name=f"sam2.1-hiera-{size}", size=size, repo_id=f"onnx-community/sam2.1-hiera-{size}-ONNX",
        revision=_REVISIONS[size], sources=_SOURCES[size],
        encoder_files=_onnx_files(size, _ENC), decoder_files=_onnx_files(size, _DEC),
        encoder_fp16_files=_onnx_files(size, _ENC16) if fp16_pinned else None)


MODELS: dict[str, ModelSpec] = {size: _spec(size) for size in _REVISIONS}
"""Every size by its ``--model`` name, smallest first."""
SAM21_HIERA_TINY, SAM21_HIERA_SMALL, SAM21_HIERA_BASE_PLUS, SAM21_HIERA_LARGE = MODELS.values()
DEFAULT_MODEL = SAM21_HIERA_SMALL
MODEL_ENV = "SAM_ONNX_MODEL"
"""Environment variable with the default ``--model`` value (``small`` when unset)."""


def model_choices() -> tuple[str, ...]:
    """Every value ``--model`` accepts, smallest model first."""
    return tuple(MODELS)


def requested_model(value: str | None = None) -> ModelSpec:
    """The model named ``value``, else ``$SAM_ONNX_MODEL``, else small; also accepts the full name
    (``"sam2.1-hiera-tiny"``) and ``base_plus``.

    Raises:
        ModelLoadError: not a known size (the message lists the valid ones).
    """
    name = (value or os.environ.get(MODEL_ENV) or DEFAULT_MODEL.size).strip().lower().replace("_", "-")
    for spec in MODELS.values():
        if name in (spec.size, spec.name):
            return spec
    where = "" if value else f" (from {MODEL_ENV})"
    raise ModelLoadError(f"Unknown model {name!r}{where}; choose one of {', '.join(model_choices())}.")
