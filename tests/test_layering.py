"""The wrapper stands alone: ``sam_onnx`` imports nothing from the demo, and works without Gradio.

Two layers: ``sam_onnx`` (the reusable wrapper that ``pyproject.toml`` ships)
and ``sam_demo`` + ``app.py`` (the demo, built on it). These tests check the
direction of that dependency statically (every import in the wrapper's source)
and by running the wrapper's CLI and its own tests in a Python where importing
Gradio or the demo fails, as on a machine with only ``pip install .``.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
WRAPPER = REPO / "sam_onnx"
DEMO_MODULES = ("app", "sam_demo", "gradio", "gradio_client", "fastapi", "uvicorn")
"""Top-level modules of the demo: the wrapper never needs them, and its tests run with them blocked."""
SERVING_MODULES = ("sam_serve", "ray", "starlette")
"""The serving programs and their frameworks: they build on the wrapper, never the other way round (issue 24)."""
WRAPPER_NEVER_IMPORTS = (*DEMO_MODULES, *SERVING_MODULES)

WRAPPER_RUN_TIMEOUT_S = 1200
"""Bound of the Gradio-free run of the wrapper's tests (a subprocess: 90 s idle, 253 s at load average 13)."""

BLOCKER = f"""
import importlib.abc, sys
BLOCKED = {DEMO_MODULES!r}

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is not installed (blocked by tests/test_layering.py)")
        return None

sys.meta_path.insert(0, Blocker())
"""


def _imports(path: Path) -> set[str]:
    """Full names of every module a file imports (including imports inside functions); ``from a import b``
    gives ``a`` and ``a.b`` (``b`` may be a module)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _imported_modules(path: Path) -> set[str]:
    """Top-level names of every module a file imports (including imports inside functions)."""
    return {name.split(".")[0] for name in _imports(path)}


def _source_of(module: str) -> Path | None:
    """The repository file of a module name (``tests.x`` -> ``tests/x.py``), or None outside the repository."""
    base = REPO.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _needs_demo(path: Path, seen: set[Path] | None = None) -> bool:
    """Whether a file imports the demo (or Gradio) directly or through the repository's own modules."""
    seen = set() if seen is None else seen
    if path in seen:
        return False
    seen.add(path)
    names = _imports(path)
    if {name.split(".")[0] for name in names} & set(DEMO_MODULES):
        return True
    local = (_source_of(name) for name in names if name.split(".")[0] in ("tests", "tools", "bench"))
    return any(source is not None and _needs_demo(source, seen) for source in local)


def _wrapper_test_files() -> list[str]:
    """Test modules of the wrapper alone: those importing nothing of the demo, directly or through helpers."""
    files = []
    for path in sorted((REPO / "tests").glob("test_*.py")):
        if path.name == Path(__file__).name or "bench" in _imported_modules(path) or _needs_demo(path):
            continue
        files.append(str(path.relative_to(REPO)))
    return files


def _run_blocked(code: str, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", BLOCKER + code], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_wrapper_source_imports_nothing_of_the_demo_or_the_serving_programs():
    never = set(WRAPPER_NEVER_IMPORTS)
    offenders = {str(p.relative_to(REPO)): sorted(_imported_modules(p) & never)
                 for p in sorted(WRAPPER.rglob("*.py")) if _imported_modules(p) & never}
    assert not offenders


def test_the_blocker_really_blocks():
    """The control: under the blocker, importing Gradio or the demo fails (so a pass below means something)."""
    for module in ("gradio", "sam_demo.service", "app"):
        run = _run_blocked(f"import {module}", timeout=60)
        assert run.returncode != 0 and "blocked by tests/test_layering.py" in run.stderr, module


def test_every_wrapper_module_and_the_cli_run_without_gradio(analytic_dir, tmp_path):
    image = tmp_path / "photo.png"
    from PIL import Image

    from tests.conftest import make_rgb

    Image.fromarray(make_rgb(120, 160)).save(image)
    modules = sorted(f"sam_onnx.{p.stem}" for p in WRAPPER.glob("*.py") if p.stem != "__main__")
    code = f"""
import importlib, runpy
for name in {modules!r}:
    importlib.import_module(name)
sys.argv = ["sam_onnx", {str(image)!r}, "--point", "80,60", "--model-dir", {str(analytic_dir)!r},
            "--out", {str(tmp_path / "mask.png")!r}]
runpy.run_module("sam_onnx", run_name="__main__")
"""
    run = _run_blocked(code, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "mask.png").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.timeout(WRAPPER_RUN_TIMEOUT_S + 60)  # a whole sub-run of ~20 test files: 253 s at load average 13
def test_the_wrapper_tests_pass_without_gradio():
    files = _wrapper_test_files()
    assert {"tests/test_predictor.py", "tests/test_cli.py", "tests/test_amg.py"} <= set(files)
    code = f"""
import pytest
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", *{files!r}]))
"""
    run = _run_blocked(code, timeout=WRAPPER_RUN_TIMEOUT_S)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]


def test_no_module_edits_sys_path():
    """``bench`` and ``tools`` are packages run with ``python -m``: nothing patches the import path to find a module."""
    edits = ("sys.path.insert", "sys.path.append")
    offenders = [str(p.relative_to(REPO)) for folder in ("bench", "tools", "sam_onnx", "sam_demo", "tests")
                 for p in sorted((REPO / folder).rglob("*.py"))
                 if p != Path(__file__) and any(edit in p.read_text() for edit in edits)]
    assert not offenders


def test_benchmarks_and_tools_import_nothing_from_the_tests():
    """``bench/`` and ``tools/`` are what users run; the tests build on them, never the other way round."""
    offenders = {str(p.relative_to(REPO)): sorted(n for n in _imports(p) if n.split(".")[0] == "tests")
                 for folder in ("bench", "tools") for p in sorted((REPO / folder).rglob("*.py"))
                 if any(n.split(".")[0] == "tests" for n in _imports(p))}
    assert not offenders


def test_test_helpers_that_need_no_demo_import_none():
    """Helpers the Gradio-free run of the wrapper's tests loads must not pull in the app (issue 24)."""
    assert not _needs_demo(REPO / "tests" / "replica_server.py")
    assert not _needs_demo(REPO / "tests" / "conftest.py")
    assert _needs_demo(REPO / "tests" / "app_support.py")  # the control: the app's helpers are seen as such
    assert "tests/test_remote_encoder.py" in _wrapper_test_files()


PREDICTOR_MAX_LINES = 260
"""``sam_onnx/predictor.py`` composes (encoder + decoder); loading lives in ``decoder.py`` and ``encoders/``."""


def test_the_predictor_only_composes():
    assert len((WRAPPER / "predictor.py").read_text().splitlines()) <= PREDICTOR_MAX_LINES


def test_an_fp32_encoder_loads_alone_in_one_session(monkeypatch):
    """A Ray replica or the app's fallback loads only the encoder: no decoder repair, session or check."""
    import onnxruntime as ort

    from sam_onnx import encoders

    made = []

    class Counted(ort.InferenceSession):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append([i.name for i in self.get_inputs()])

    monkeypatch.setattr(ort, "InferenceSession", Counted)
    encoder = encoders.from_pretrained(model_dir=REPO / "tests" / "fixtures" / "sam2_tiny", variant="fp32",
                                       threads=1)
    assert made == [["pixel_values"]]
    assert encoder.name == "fp32"
