"""The model table: which files make up a model, where they live, and what they must weigh. Pure data."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RepoFile:
    """One file of a hub repository, with what it must be.

    Attributes:
        path: path inside the repository, e.g. ``"onnx/vision_encoder.onnx"``.
        size: exact size in bytes, or ``None`` if unknown.
        sha256_prefix: leading hex digits of the file's SHA-256 (8 for the pinned model), or ``None``.
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
    """A SAM 2.1 ONNX model on the Hugging Face hub, pinned to one commit."""

    name: str
    repo_id: str
    revision: str
    encoder: OnnxFiles
    decoder: OnnxFiles
    encoder_fp16: OnnxFiles | None = None

    @property
    def download_bytes(self) -> int:
        """Bytes of the default (fp32) encoder and decoder files."""
        return sum(f.size or 0 for f in (*self.encoder.all, *self.decoder.all))


# Exact sizes and the first 8 hex digits of each file's SHA-256, as third-party code pins them for this revision
# (we have not seen the files; docs/model-io.md, "Files"). sam_onnx.hub checks both before loading.
SAM21_HIERA_SMALL = ModelSpec(
    name="sam2.1-hiera-small",
    repo_id="onnx-community/sam2.1-hiera-small-ONNX",
    revision="a7df49d8de14b9d2e4504d1687b0d568f905fd8d",
    encoder=OnnxFiles(RepoFile("onnx/vision_encoder.onnx", 467_440, "aacf1f71"),
                      (RepoFile("onnx/vision_encoder.onnx_data", 162_476_288, "260fd1f0"),)),
    decoder=OnnxFiles(RepoFile("onnx/prompt_encoder_mask_decoder.onnx", 213_114, "079c59b2"),
                      (RepoFile("onnx/prompt_encoder_mask_decoder.onnx_data", 20_958_208, "f9e59a58"),)),
    encoder_fp16=OnnxFiles(RepoFile("onnx/vision_encoder_fp16.onnx", 422_501, "f236074c"),
                           (RepoFile("onnx/vision_encoder_fp16.onnx_data", 81_182_784, "557e0135"),)),
)

MODELS = {SAM21_HIERA_SMALL.name: SAM21_HIERA_SMALL}
DEFAULT_MODEL = SAM21_HIERA_SMALL
