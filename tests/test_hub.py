"""Model files: the huggingface_hub cache layout (pinned revision, external data, offline), local folders, faults.

Rows E1-E6 of docs/reliability.md at the wrapper level.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from sam_onnx import ModelLoadError, Point, Prompts, Sam2Predictor, hub
from sam_onnx.hub import resolve_hub_files, resolve_local_files, resolve_model_files
from sam_onnx.models import ModelSpec, OnnxFiles, RepoFile
from tests import analytic_models as am
from tests.conftest import make_rgb

REPO = "test-org/sam2.1-analytic-ONNX"
REVISION = "0123456789abcdef0123456789abcdef01234567"
FILES = ("onnx/vision_encoder.onnx", "onnx/vision_encoder.onnx_data",
         "onnx/prompt_encoder_mask_decoder.onnx", "onnx/prompt_encoder_mask_decoder.onnx_data")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def hub_files(tmp_path_factory):
    """Analytic models with external data under the hub's file names."""
    src = tmp_path_factory.mktemp("hub_src") / "onnx"
    am.save_models(src, external_data=True, encoder_name="vision_encoder.onnx",
                   decoder_name="prompt_encoder_mask_decoder.onnx")
    for name in FILES:
        assert (src.parent / name).is_file(), name
    return src.parent


@pytest.fixture(scope="module")
def spec(hub_files) -> ModelSpec:
    def entry(name):
        path = hub_files / name
        return RepoFile(name, path.stat().st_size, _sha(path)[:8])

    return ModelSpec("analytic", REPO, REVISION, OnnxFiles(entry(FILES[0]), (entry(FILES[1]),)),
                     OnnxFiles(entry(FILES[2]), (entry(FILES[3]),)))


def make_cache(root: Path, hub_files: Path, *, skip: tuple[str, ...] = ()) -> Path:
    """A real huggingface_hub cache: blobs named by SHA-256, snapshot symlinks, refs/main."""
    repo = root / f"models--{REPO.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    for name in FILES:
        if name in skip:
            continue
        blob = repo / "blobs" / _sha(hub_files / name)
        shutil.copyfile(hub_files / name, blob)
        link = repo / "snapshots" / REVISION / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return root


def test_cached_hub_files_with_external_data_load_and_segment(tmp_path, hub_files, spec):
    cache = make_cache(tmp_path, hub_files)
    files = resolve_hub_files(spec, cache_dir=cache, local_files_only=True)
    assert files.encoder_path.name == "vision_encoder.onnx" and files.encoder_path.is_symlink()
    assert REVISION[:12] in files.source
    predictor = Sam2Predictor.from_model_files(files, threads=1)
    result = predictor.decode(predictor.encode(make_rgb(120, 200)), Prompts((Point(100, 60),)))
    assert result.best_mask[60, 100]


def test_one_start_hashes_each_model_file_once_for_all_its_checks(tmp_path, hub_files, spec, monkeypatch):
    """The hub's file check and the encoder fingerprint (auto's decision key, the int8 copy's name) share hashes:
    the bytes hashed are the model files' bytes once (plus the fingerprints' few hex digests)."""
    from sam_onnx.encoders.fingerprint import model_fingerprint

    hashed = [0]
    real_sha256 = hashlib.sha256

    class Counting:
        def __init__(self, data=b""):
            self._digest = real_sha256(data)
            hashed[0] += len(data)

        def update(self, data):
            hashed[0] += len(data)
            self._digest.update(data)

        def hexdigest(self):
            return self._digest.hexdigest()

    cache = make_cache(tmp_path, hub_files)
    hub._sha256_of.cache_clear()
    monkeypatch.setattr(hashlib, "sha256", Counting)
    files = resolve_hub_files(spec, cache_dir=cache, local_files_only=True)
    for _ in range(2):  # e.g. auto's decision key, then the int8 copy's folder name
        model_fingerprint(files.encoder_path)
        model_fingerprint(files.decoder_path)
    model_bytes = sum((hub_files / name).stat().st_size for name in FILES)
    assert model_bytes <= hashed[0] <= model_bytes + 4096


def test_hf_hub_offline_env_uses_the_cache_only(tmp_path, hub_files, spec):
    """HF_HUB_OFFLINE=1 in a fresh process: cached files load, missing ones give the offline message."""
    cache = make_cache(tmp_path / "full", hub_files)
    empty = tmp_path / "empty"
    empty.mkdir()
    script = textwrap.dedent(f"""
        import sys
        from sam_onnx import ModelLoadError, Sam2Predictor
        from sam_onnx.models import ModelSpec, OnnxFiles, RepoFile
        spec = {spec!r}
        try:
            Sam2Predictor.from_pretrained(spec, cache_dir=sys.argv[1], threads=1)
        except ModelLoadError as exc:
            print("ERROR", exc)
        else:
            print("LOADED")
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}
    env.pop("SAM_ONNX_MODEL_DIR", None)
    run = [sys.executable, "-c", script]
    ok = subprocess.run(run + [str(cache)], capture_output=True, text=True, env=env, timeout=120)
    assert ok.stdout.strip() == "LOADED", ok.stderr
    missing = subprocess.run(run + [str(empty)], capture_output=True, text=True, env=env, timeout=120)
    out = missing.stdout
    assert "ERROR" in out and "onnx/vision_encoder.onnx" in out and "HF_HUB_OFFLINE" in out
    assert "--model-dir" in out and "Traceback" not in out


def test_unreachable_hub_fails_fast_with_a_clear_message(tmp_path, spec):
    """E2: downloads allowed but the hub cannot be reached (a closed local port stands in for no network).

    huggingface_hub alone retries a refused connection for ~25 s; the README promises an exit at once.
    """
    script = textwrap.dedent(f"""
        import logging, sys, time
        logging.basicConfig(level=logging.INFO, format="LOG %(message)s")
        from sam_onnx import ModelLoadError
        from sam_onnx.hub import resolve_hub_files, route_hub_logs_to_root
        from sam_onnx.models import ModelSpec, OnnxFiles, RepoFile
        route_hub_logs_to_root()
        started = time.perf_counter()
        try:
            resolve_hub_files({spec!r}, cache_dir=sys.argv[1])
        except ModelLoadError as exc:
            print("ERROR", exc)
        print("SECONDS", time.perf_counter() - started)
    """)
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9"}
    env.pop("HF_HUB_OFFLINE", None)
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=120)
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("ERROR"), proc.stdout + proc.stderr
    assert "vision_encoder.onnx" in lines[0] and "could not be reached" in lines[0] and "--model-dir" in lines[0]
    assert float(lines[-1].split()[1]) < 5.0  # one refused request, no retries
    assert "Traceback" not in proc.stdout + proc.stderr and "Retrying" not in proc.stderr


@pytest.mark.parametrize("victim,damage", [
    ("onnx/vision_encoder.onnx_data", "truncate"),
    ("onnx/prompt_encoder_mask_decoder.onnx", "truncate"),
    ("onnx/prompt_encoder_mask_decoder.onnx_data", "flip"),
])
def test_damaged_cached_file_is_caught_before_onnxruntime(tmp_path, hub_files, spec, victim, damage):
    """E3/E5: a partial or corrupted blob in the cache is named, with what to do."""
    cache = make_cache(tmp_path, hub_files)
    blob = (cache / f"models--{REPO.replace('/', '--')}" / "snapshots" / REVISION / victim).resolve()
    data = bytearray(blob.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError) as info:
        resolve_hub_files(spec, cache_dir=cache, local_files_only=True)
    message = str(info.value)
    assert victim.split("/")[-1] in message and "Delete it" in message
    assert ("bytes instead of" in message) if damage == "truncate" else ("SHA-256" in message)


def test_missing_sidecar_in_cache_is_reported(tmp_path, hub_files, spec):
    cache = make_cache(tmp_path, hub_files, skip=("onnx/vision_encoder.onnx_data",))
    with pytest.raises(ModelLoadError, match="vision_encoder.onnx_data .* not in the Hugging Face cache"):
        resolve_hub_files(spec, cache_dir=cache, local_files_only=True)


def test_disk_full_during_download_names_the_disk(tmp_path, spec, monkeypatch):
    """E8 for the model cache: the download fails with ENOSPC."""
    import huggingface_hub

    def full_disk(*args, **kwargs):
        if kwargs.get("local_files_only"):
            from huggingface_hub.errors import LocalEntryNotFoundError

            raise LocalEntryNotFoundError("not cached")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", full_disk)
    monkeypatch.setattr("sam_onnx.hub._offline", lambda: False)
    monkeypatch.setattr("sam_onnx.hub.hub_problem", lambda: None)  # as if the hub answered
    with pytest.raises(ModelLoadError, match="No space left on device.*Free disk space"):
        resolve_hub_files(spec, cache_dir=tmp_path)


def test_download_line_gives_readable_sizes_once(tmp_path, spec, monkeypatch, caplog):
    """One line for the whole download with a real size (the 467 kB graph was announced as "(0 MB)")."""
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def nothing_cached(*args, **kwargs):
        raise LocalEntryNotFoundError("not cached") if kwargs.get("local_files_only") else OSError(errno.EIO, "stop")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", nothing_cached)
    monkeypatch.setattr("sam_onnx.hub._offline", lambda: False)
    monkeypatch.setattr("sam_onnx.hub.hub_problem", lambda: None)
    with caplog.at_level("INFO", logger="sam_onnx.hub"), pytest.raises(ModelLoadError):
        resolve_hub_files(spec, cache_dir=tmp_path)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("downloading")]
    assert len(lines) == 1 and "(0 MB)" not in lines[0]
    assert hub.size_text(467_000) == "456 kB" and hub.size_text(162 * 1024 * 1024) == "162 MB"


# ---------------------------------------------------------------- local folders
@pytest.mark.parametrize("layout", ["plain", "hub_names", "hub_onnx_subfolder"])
def test_local_folder_layouts(tmp_path, layout):
    if layout == "plain":
        am.save_models(tmp_path)
    elif layout == "hub_names":
        am.save_models(tmp_path, external_data=True, encoder_name="vision_encoder.onnx",
                       decoder_name="prompt_encoder_mask_decoder.onnx")
    else:
        am.save_models(tmp_path / "onnx", external_data=True, encoder_name="vision_encoder.onnx",
                       decoder_name="prompt_encoder_mask_decoder.onnx")
    files = resolve_local_files(tmp_path)
    predictor = Sam2Predictor.from_model_files(files, threads=1)
    assert predictor.info.source == f"local folder {tmp_path}"
    assert predictor.decode(predictor.encode(make_rgb(64, 64)), Prompts((Point(30, 30),))).best_mask[30, 30]


def test_model_dir_env_wins_over_the_hub(tmp_path, monkeypatch):
    am.save_models(tmp_path)
    monkeypatch.setenv("SAM_ONNX_MODEL_DIR", str(tmp_path))
    assert resolve_model_files().encoder_path == tmp_path / "encoder.onnx"


def test_missing_local_files_are_listed(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_local_files(tmp_path / "nope")
    (tmp_path / "encoder.onnx").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="No decoder .* decoder.onnx, prompt_encoder_mask_decoder.onnx"):
        resolve_local_files(tmp_path)
    with pytest.raises(ModelLoadError, match="No encoder .* encoder_fp16.onnx"):
        resolve_local_files(tmp_path, fp16_encoder=True)


# ---------------------------------------------------------------- wrong or damaged files (E4, E5)
def _load(folder: Path):
    return Sam2Predictor.from_files(folder / "encoder.onnx", folder / "decoder.onnx", threads=1)


@pytest.mark.parametrize("kind,expected", [
    ("missing_input", "missing input 'input_boxes'"),
    ("renamed_output", "missing output 'pred_masks'"),
    ("wrong_dtype", "input 'input_labels' has type tensor\\(float\\)"),
])
def test_decoder_with_the_wrong_interface(tmp_path, kind, expected):
    am.save_model(am.build_encoder(), tmp_path / "encoder.onnx")
    am.save_model(am.build_broken_decoder(kind), tmp_path / "decoder.onnx")
    with pytest.raises(ModelLoadError, match=expected):
        _load(tmp_path)


def test_encoder_and_decoder_swapped(tmp_path):
    am.save_model(am.build_decoder(), tmp_path / "encoder.onnx")
    am.save_model(am.build_encoder(), tmp_path / "decoder.onnx")
    with pytest.raises(ModelLoadError, match="does not look like the SAM 2.1 file.*swapped"):
        _load(tmp_path)


@pytest.mark.parametrize("which", ["encoder.onnx", "decoder.onnx"])
@pytest.mark.parametrize("content,reason", [
    (b"<html><body>502 Bad Gateway</body></html>", "not a valid ONNX file|damaged"),
    (b"", "empty|damaged|not a valid"),
])
def test_garbage_model_files(tmp_path, which, content, reason):
    am.save_models(tmp_path)
    (tmp_path / which).write_bytes(content)
    with pytest.raises(ModelLoadError, match=reason) as info:
        _load(tmp_path)
    assert which in str(info.value)


@pytest.mark.parametrize("which", ["encoder.onnx", "decoder.onnx"])
@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_external_data_missing_or_truncated(tmp_path, which, damage):
    am.save_models(tmp_path, external_data=True)
    sidecar = tmp_path / f"{which}_data"
    if damage == "missing":
        sidecar.unlink()
    else:
        sidecar.write_bytes(sidecar.read_bytes()[:16])
    with pytest.raises(ModelLoadError) as info:
        _load(tmp_path)
    message = str(info.value)
    assert which in message and ".onnx_data" in message or "damaged" in message


def test_unavailable_provider_is_an_error_not_a_silent_fallback(analytic_dir):
    with pytest.raises(ModelLoadError, match="CUDAExecutionProvider is not available.*available: "):
        Sam2Predictor.from_files(analytic_dir / "encoder.onnx", analytic_dir / "decoder.onnx",
                                 providers=["CUDAExecutionProvider", "CPUExecutionProvider"])


def test_providers_in_use_are_reported(predictor, caplog):
    assert predictor.info.providers == ("CPUExecutionProvider",)
    assert predictor.info.repaired_concats == 0  # the analytic decoder has no prompt Concat


def test_spec_table_is_pinned():
    from sam_onnx.models import SAM21_HIERA_SMALL

    assert SAM21_HIERA_SMALL.repo_id == "onnx-community/sam2.1-hiera-small-ONNX"
    assert len(SAM21_HIERA_SMALL.revision) == 40 and int(SAM21_HIERA_SMALL.revision, 16) >= 0
    small = SAM21_HIERA_SMALL
    assert all(f.size and f.sha256_prefix for f in (*small.encoder_files.all, *small.decoder_files.all))
    assert np.isclose(SAM21_HIERA_SMALL.download_bytes / 1e6, 184.1, atol=0.1)


def _fp16_io(model):
    """The same encoder with float16 input and outputs, like onnx-community's vision_encoder_fp16.onnx."""
    import onnx
    from onnx import TensorProto, helper

    fp16 = onnx.ModelProto()
    fp16.CopyFrom(model)
    graph = fp16.graph
    (inp,) = graph.input
    original = inp.name
    for node in graph.node:
        node.input[:] = [f"{original}_f32" if n == original else n for n in node.input]
    graph.node.insert(0, helper.make_node("Cast", [original], [f"{original}_f32"], to=TensorProto.FLOAT))
    inp.type.tensor_type.elem_type = TensorProto.FLOAT16
    for out in graph.output:
        for node in graph.node:
            node.output[:] = [f"{out.name}_f32" if n == out.name else n for n in node.output]
        graph.node.append(helper.make_node("Cast", [f"{out.name}_f32"], [out.name], to=TensorProto.FLOAT16))
        out.type.tensor_type.elem_type = TensorProto.FLOAT16
    onnx.checker.check_model(fp16)
    return fp16


def test_fp16_encoder_from_a_local_folder(tmp_path):
    am.save_models(tmp_path)
    am.save_model(_fp16_io(am.build_encoder()), tmp_path / "encoder_fp16.onnx")
    fp32 = Sam2Predictor.from_pretrained(model_dir=tmp_path, threads=1)
    fp16 = Sam2Predictor.from_pretrained(model_dir=tmp_path, fp16_encoder=True, threads=1)
    assert (fp32.info.encoder_dtype, fp16.info.encoder_dtype) == ("float32", "float16")
    assert fp16.info.encoder_path.endswith("encoder_fp16.onnx")
    rgb = make_rgb(120, 200)
    e32, e16 = fp32.encode(rgb), fp16.encode(rgb)
    assert all(f.dtype == np.float32 for f in e16.features)
    np.testing.assert_allclose(e16.features[2], e32.features[2], atol=2e-3)
    prompts = Prompts((Point(100, 60),))
    np.testing.assert_array_equal(fp16.decode(e16, prompts).best_mask[40:80, 80:120],
                                  fp32.decode(e32, prompts).best_mask[40:80, 80:120])
