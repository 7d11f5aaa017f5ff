"""Vendor the WebAssembly part of onnxruntime-web into ``sam_demo/static/ort/`` (needs npm and the network).

    python -m tools.vendor_ort                 # the pinned version below
    python -m tools.vendor_ort --check         # offline: the vendored files match their manifest

The page decodes prompts with onnxruntime-web, served by the app itself (no CDN at run time). Why the files
are committed rather than fetched by an install step: the README's two commands (``pip install -r
requirements.txt && python app.py``; ``pip install -r requirements-test.txt && pytest``) must keep working
with nothing but PyPI, and the tests must not touch the network; no PyPI package ships these files. Hugging
Face Spaces refuse files over 10 MB that are not in LFS/Xet: the WebAssembly binary is 14.8 MB, so it is
stored gzip-compressed (3.8 MB) and the app serves it as is with ``Content-Encoding: gzip`` (browsers
inflate it before compiling; a client that does not accept gzip gets it inflated by the server).

What this does:

1. ``npm pack onnxruntime-web@VERSION`` (npm checks the tarball against the registry's ``dist.integrity``);
2. checks the tarball's SHA-512 against :data:`INTEGRITY`, pinned here, so a re-run cannot silently
   vendor a different package;
3. copies only the files the WebAssembly CPU backend loads (:data:`FILES`): the ES module
   ``ort.wasm.min.mjs`` (no WebGPU/WebGL/WebNN code), the Emscripten glue ``ort-wasm-simd-threaded.mjs``
   (SIMD, threads when the page is cross-origin isolated) and its ``.wasm`` (as ``.wasm.gz``);
4. writes ``LICENSE`` (the package says MIT in ``package.json`` and in each file's header; the tarball has
   no licence file, so the text is onnxruntime's ``LICENSE``) and ``manifest.json``: version, tarball URL
   and integrity, and per file its SHA-256 (of the bytes the browser gets, i.e. before gzip) and size.

``tests/test_web_assets.py`` checks the vendored files against the manifest offline.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "onnxruntime-web"
VERSION = "1.31.1"
INTEGRITY = "sha512-5GeH+bWQ+HxM10z7erGlsWqryrwMbSvm/1tkIsKTT48g0fI19VXVVC435t4t7VsPdSQeS7NmuZPXrQ73k82URw=="
"""``dist.integrity`` of onnxruntime-web 1.31.1 on registry.npmjs.org (``npm view onnxruntime-web@1.31.1
dist.integrity``), checked against the downloaded tarball."""
TARBALL = f"https://registry.npmjs.org/{PACKAGE}/-/{PACKAGE}-{VERSION}.tgz"
FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
GZIPPED = frozenset({"ort-wasm-simd-threaded.wasm"})
"""Stored as ``<name>.gz``: larger than Spaces' 10 MB limit for files outside LFS."""
GZIP_LEVEL = 9
GZIP_MTIME = 0
"""A fixed header time, so re-vendoring the same version gives byte-identical files."""
DEST = REPO / "sam_demo" / "static" / "ort"
MANIFEST = "manifest.json"
LICENSE_TEXT = """MIT License

Copyright (c) 2018 - present Microsoft Corporation

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""
"""onnxruntime's LICENSE (github.com/microsoft/onnxruntime), the licence ``package.json`` names."""


def integrity_of(data: bytes) -> str:
    """npm's Subresource-Integrity string of a tarball: ``sha512-<base64 digest>``."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def stored_name(name: str) -> str:
    return f"{name}.gz" if name in GZIPPED else name


def read_served(folder: Path, name: str) -> bytes:
    """The bytes a browser ends up with for ``name`` (inflated when stored gzip-compressed)."""
    data = (folder / stored_name(name)).read_bytes()
    return gzip.decompress(data) if name in GZIPPED else data


def vendor(dest: Path = DEST) -> dict:
    """Download, check and copy the files; returns the manifest written."""
    with tempfile.TemporaryDirectory(prefix="vendor-ort-") as tmp:
        subprocess.run(["npm", "pack", f"{PACKAGE}@{VERSION}", "--silent"], cwd=tmp, check=True,
                       stdout=subprocess.DEVNULL)
        tarball = Path(tmp) / f"{PACKAGE}-{VERSION}.tgz"
        data = tarball.read_bytes()
        if integrity_of(data) != INTEGRITY:
            raise SystemExit(f"{tarball.name}: integrity {integrity_of(data)} is not the pinned {INTEGRITY}")
        with tarfile.open(tarball) as tar:
            contents = {name: tar.extractfile(f"package/dist/{name}").read() for name in FILES}
            package = json.loads(tar.extractfile("package/package.json").read())
    if package.get("version") != VERSION or package.get("license") != "MIT":
        raise SystemExit(f"unexpected package.json: version {package.get('version')}, licence {package.get('license')}")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    files = {}
    for name, content in contents.items():
        stored = gzip.compress(content, GZIP_LEVEL, mtime=GZIP_MTIME) if name in GZIPPED else content
        (dest / stored_name(name)).write_bytes(stored)
        files[name] = {"sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content),
                       "stored_as": stored_name(name), "stored_bytes": len(stored)}
    (dest / "LICENSE").write_text(LICENSE_TEXT)
    manifest = {"package": PACKAGE, "version": VERSION, "tarball": TARBALL, "integrity": INTEGRITY,
                "license": "MIT", "files": files}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def check(dest: Path = DEST) -> list[str]:
    """Problems of the vendored files against their manifest (empty when they match)."""
    manifest = json.loads((dest / MANIFEST).read_text())
    problems = []
    if (manifest["package"], manifest["version"], manifest["integrity"]) != (PACKAGE, VERSION, INTEGRITY):
        problems.append(f"manifest pins {manifest['package']}@{manifest['version']}, not {PACKAGE}@{VERSION}")
    if set(manifest["files"]) != set(FILES):
        problems.append(f"manifest lists {sorted(manifest['files'])}, expected {sorted(FILES)}")
    for name, entry in manifest["files"].items():
        try:
            data = read_served(dest, name)
        except (OSError, gzip.BadGzipFile) as exc:
            problems.append(f"{name}: {exc}")
            continue
        if hashlib.sha256(data).hexdigest() != entry["sha256"] or len(data) != entry["bytes"]:
            problems.append(f"{name}: content differs from the manifest")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check the vendored files (offline)")
    args = parser.parse_args(argv)
    if args.check:
        problems = check()
        print("\n".join(problems) or f"{PACKAGE} {VERSION}: every vendored file matches the manifest")
        return 1 if problems else 0
    manifest = vendor()
    for name, entry in manifest["files"].items():
        print(f"{entry['stored_as']:40s} {entry['stored_bytes']:>10,} bytes (serves {entry['bytes']:,})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
