"""The model table (sam_onnx.models): four sizes, pinned where public code pins them, None where nobody does."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import replace

import pytest

from sam_onnx import ModelLoadError, Sam2Predictor
from sam_onnx.hub import resolve_hub_files
from sam_onnx.models import (
    DEFAULT_MODEL,
    MODEL_ENV,
    MODELS,
    OnnxFiles,
    RepoFile,
    model_choices,
    requested_model,
)
from tests.conftest import make_rgb
from tests.test_hub import FILES, REPO, hub_files, make_cache, spec  # noqa: F401 - fixtures

SHA256 = re.compile(r"[0-9a-f]{64}")
PINNED_TABLE_SHA256 = "c7ab52d4a20af7cf1e0a2dcc161d0636be59e594d7035b096db20fdc2934456a"
"""SHA-256 of :func:`pinned_values` as the table stood on main at 3c13641 (four hand-written ``ModelSpec(...)``
calls), before it became rows: change it only with a new published pin, and say where it comes from."""


def pinned_values() -> list:
    """Every size's name, repository, revision, sources and each file's path, size and hash (encoder, decoder,
    fp16 encoder or None), in table order, as plain JSON-able lists."""
    def files(onnx_files):
        return None if onnx_files is None else [[f.path, f.size, f.sha256_prefix] for f in onnx_files.all]
    return [[spec.size, spec.name, spec.repo_id, spec.revision, spec.sources, files(spec.encoder_files),
             files(spec.decoder_files), files(spec.encoder_fp16_files)] for spec in MODELS.values()]


def test_every_pin_is_unchanged():
    """Every revision, size, hash, path and source is what it was before the table was restructured."""
    digest = hashlib.sha256(json.dumps(pinned_values()).encode()).hexdigest()
    assert digest == PINNED_TABLE_SHA256, json.dumps(pinned_values(), indent=1)


def test_four_sizes_small_is_the_default():
    assert model_choices() == ("tiny", "small", "base-plus", "large")
    assert DEFAULT_MODEL is MODELS["small"]
    for size, spec in MODELS.items():
        assert spec.size == size and spec.name == f"sam2.1-hiera-{size}"
        assert spec.repo_id == f"onnx-community/sam2.1-hiera-{size}-ONNX"
        assert spec.sources


def test_every_published_value_is_a_whole_pin_and_the_rest_is_none():
    """Revisions are full commits or None; hashes are whole SHA-256s (public code pins whole hashes) or None;
    a file's size and hash are known together."""
    for spec in MODELS.values():
        assert spec.revision is None or re.fullmatch(r"[0-9a-f]{40}", spec.revision)
        fp16 = spec.encoder_fp16_files.all if spec.encoder_fp16_files else ()
        files = (*spec.encoder_files.all, *spec.decoder_files.all, *fp16)
        for f in files:
            assert (f.size is None) == (f.sha256_prefix is None), (spec.size, f.path)
            assert f.size is None or (f.size > 0 and SHA256.fullmatch(f.sha256_prefix)), (spec.size, f.path)
            assert f.path.startswith("onnx/")


def test_what_nobody_publishes_stays_unknown():
    base_plus, large = MODELS["base-plus"], MODELS["large"]
    assert base_plus.revision is None and base_plus.revision_text == "main (not pinned)"
    assert all(f.size is None for f in base_plus.encoder_files.all) and base_plus.download_bytes is None
    assert large.encoder_fp16_files is None
    assert all(MODELS[s].revision for s in ("tiny", "small", "large"))


@pytest.mark.parametrize("size, mb", [("tiny", 155.6), ("small", 184.1), ("large", 911.1)])
def test_download_sizes(size, mb):
    assert MODELS[size].download_bytes / 1e6 == pytest.approx(mb, abs=0.05)


def test_small_keeps_its_earlier_pins():
    """The whole hashes start with the 8-digit prefixes the table pinned before (other sources, same files)."""
    small = MODELS["small"]
    prefixes = ["aacf1f71", "260fd1f0", "079c59b2", "f9e59a58"]
    assert [f.sha256_prefix[:8] for f in (*small.encoder_files.all, *small.decoder_files.all)] == prefixes
    assert small.revision.startswith("a7df49d8")


def test_each_size_has_its_own_decoder_weights():
    """Same graph size for all, different weights: a decoder file of one size must not pass for another's."""
    decoders = [spec.decoder_files for spec in MODELS.values()]
    assert {d.graph.size for d in decoders} == {213_114} and {d.data[0].size for d in decoders} == {20_958_208}
    assert len({d.data[0].sha256_prefix for d in decoders}) == len(decoders)


def test_requested_model_by_name_env_and_default(monkeypatch):
    monkeypatch.delenv(MODEL_ENV, raising=False)
    assert requested_model() is DEFAULT_MODEL
    assert requested_model("tiny") is MODELS["tiny"]
    assert requested_model(" Base_Plus ") is MODELS["base-plus"]
    assert requested_model("sam2.1-hiera-large") is MODELS["large"]
    monkeypatch.setenv(MODEL_ENV, "large")
    assert requested_model() is MODELS["large"] and requested_model("tiny") is MODELS["tiny"]


def test_an_unknown_model_lists_the_valid_ones(monkeypatch):
    with pytest.raises(ModelLoadError, match="'huge'; choose one of tiny, small, base-plus, large"):
        requested_model("huge")
    monkeypatch.setenv(MODEL_ENV, "medium")
    with pytest.raises(ModelLoadError, match=f"'medium' \\(from {MODEL_ENV}\\)"):
        requested_model()


def test_an_unpinned_revision_uses_main_and_says_so(tmp_path, hub_files, spec, caplog):
    """base-plus has no published revision: the cache's main is used, with a warning; files whose size and hash
    nobody publishes are loaded unchecked, with a warning naming them."""
    cache = make_cache(tmp_path, hub_files)
    unpinned_encoder = OnnxFiles(RepoFile(FILES[0]), (RepoFile(FILES[1]),))
    unpinned = replace(spec, name="sam2.1-analytic-unpinned", revision=None, encoder_files=unpinned_encoder)
    with caplog.at_level(logging.WARNING, logger="sam_onnx.hub"):
        files = resolve_hub_files(unpinned, cache_dir=cache, local_files_only=True)
    assert files.source == f"{REPO}@main"
    assert "not pinned to a revision" in caplog.text and FILES[0] in caplog.text and FILES[1] in caplog.text
    assert FILES[2] not in caplog.text  # the decoder is pinned: checked, not named
    predictor = Sam2Predictor.from_model_files(files, threads=1)
    assert predictor.decode(predictor.encode(make_rgb(60, 80)), _one_point()).best_mask.any()


def test_no_fp16_files_is_a_clear_error(tmp_path, hub_files, spec):
    with pytest.raises(ModelLoadError, match="no known fp16 encoder files"):
        resolve_hub_files(replace(spec, encoder_fp16_files=None), fp16_encoder=True, cache_dir=tmp_path,
                          local_files_only=True)


def _one_point():
    from sam_onnx import Point, Prompts

    return Prompts((Point(40, 30),))
