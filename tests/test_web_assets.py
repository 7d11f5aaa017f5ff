"""The vendored onnxruntime-web (sam_demo/static/ort): pinned, intact, licensed, and small enough for a Space.

Offline: the files are checked against the manifest that ``tools/vendor_ort.py`` wrote after checking the npm
tarball's integrity hash; the tool itself needs npm and the network and is not run here.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from tools import vendor_ort

REPO = Path(__file__).resolve().parents[1]
SPACES_MAX_PLAIN_FILE = 10 * 1000 * 1000
"""Hugging Face Spaces refuse files over 10 MB that are not stored with LFS/Xet."""


def test_the_vendored_files_match_their_manifest():
    assert vendor_ort.check() == []


def test_the_manifest_pins_one_version_with_its_npm_integrity():
    manifest = json.loads((vendor_ort.DEST / vendor_ort.MANIFEST).read_text())
    assert manifest["version"] == vendor_ort.VERSION
    assert manifest["integrity"] == vendor_ort.INTEGRITY and manifest["integrity"].startswith("sha512-")
    assert manifest["tarball"].endswith(f"/onnxruntime-web-{vendor_ort.VERSION}.tgz")
    assert manifest["license"] == "MIT" and "MIT License" in (vendor_ort.DEST / "LICENSE").read_text()
    # each file names its version in its header comment (the ES module) or is the WebAssembly binary
    assert f"ONNX Runtime Web v{vendor_ort.VERSION}" in (vendor_ort.DEST / "ort.wasm.min.mjs").read_text()[:200]
    assert vendor_ort.read_served(vendor_ort.DEST, "ort-wasm-simd-threaded.wasm")[:4] == b"\0asm"


def test_a_damaged_file_is_detected(tmp_path):
    copy = tmp_path / "ort"
    copy.mkdir()
    for path in vendor_ort.DEST.iterdir():
        copy.joinpath(path.name).write_bytes(path.read_bytes())
    data = bytearray(gzip.decompress((copy / "ort-wasm-simd-threaded.wasm.gz").read_bytes()))
    data[1000] ^= 1
    (copy / "ort-wasm-simd-threaded.wasm.gz").write_bytes(gzip.compress(bytes(data)))
    assert vendor_ort.check(copy) == ["ort-wasm-simd-threaded.wasm: content differs from the manifest"]


def test_integrity_is_npm_sri_of_the_bytes():
    empty = "z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg=="
    assert vendor_ort.integrity_of(b"") == f"sha512-{empty}"  # base64 SHA-512 of nothing


def test_every_static_file_fits_a_space_without_lfs():
    """What the page loads is served from sam_demo/static; a Space must accept each of those files."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "sam_demo/static"], cwd=REPO, capture_output=True,
                                check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    names = [n for n in listed.decode().split("\0") if n]
    sizes = {n: (REPO / n).stat().st_size for n in names if (REPO / n).is_file()}
    assert sizes, "git ls-files listed nothing"
    too_large = {n: s for n, s in sizes.items() if s > SPACES_MAX_PLAIN_FILE}
    assert not too_large, f"files over 10 MB need LFS on a Space: {too_large}"
    stored = vendor_ort.DEST / "ort-wasm-simd-threaded.wasm.gz"
    assert stored.stat().st_size < SPACES_MAX_PLAIN_FILE < vendor_ort.read_served(
        vendor_ort.DEST, "ort-wasm-simd-threaded.wasm").__len__()  # why it is stored compressed


def test_manifest_hashes_are_sha256_of_the_served_bytes():
    manifest = json.loads((vendor_ort.DEST / vendor_ort.MANIFEST).read_text())
    for name, entry in manifest["files"].items():
        served = vendor_ort.read_served(vendor_ort.DEST, name)
        assert hashlib.sha256(served).hexdigest() == entry["sha256"], name
