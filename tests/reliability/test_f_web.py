"""Rows F1-F6 of docs/reliability.md: Gradio's own web-security guarantees, re-checked on this app
as it is launched (``app.launch_kwargs``), so that a settings change or a Gradio upgrade that loses one
fails here. ``pytest tests/reliability -k F1_``.
"""

from __future__ import annotations

import logging
import re
from importlib import metadata
from pathlib import Path

import httpx
import pytest

import app
from tests.reliability.conftest import assert_message

ROOT = Path(app.__file__).resolve().parent

#: Lowest versions without the advisories that matter to an upload-and-click app
#: (the advisories are named beside each floor). A pin below a floor fails F6.
ADVISORY_FLOORS = {
    "gradio": ((6, 25, 0), "#13756 per-request server growth; 6.20 SSRF-safe /file= proxy; 6.16 SVG/Audio SSRF"),
    "pillow": ((12, 3, 0), "12.2/12.3 decoder CVEs (FITS, PSD, PDF, EPS, JPEG2000, paste/crop)"),
    "onnxruntime": ((1, 20, 0), "no advisory known; floor = tested minimum"),
    "huggingface_hub": ((1, 16, 0), "no advisory known; floor = tested minimum"),
}


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def test_F1_file_route_serves_nothing_outside_the_upload_cache(raw):
    uploaded = raw.upload(b"\x89PNG\r\n\x1a\n", "probe.png")
    cache = uploaded.rsplit("/", 2)[0]
    assert raw.http.get(f"/gradio_api/file={uploaded}").status_code == 200  # an upload is served...
    for target in ["/etc/passwd", f"{cache}/../../etc/passwd", ".env", "app.py", str(ROOT / "app.py"), cache, "/tmp",
                   "%2e%2e/%2e%2e/etc/passwd", "//etc/passwd", "/proc/self/environ",
                   "http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:22/"]:
        response = raw.http.get(f"/gradio_api/file={target}", follow_redirects=False)
        assert response.status_code == 403, (target, response.status_code)  # ... nothing else, not even its existence
        assert "location" not in response.headers and "root:" not in response.text


@pytest.mark.parametrize("name, body", [
    ("evil.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'),
    ("evil.html", b"<html><script>alert(document.cookie)</script></html>"),
    ("evil.xhtml", b'<html xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></html>'),
])
def test_F2_uploaded_active_content_is_served_as_a_download(raw, name, body):
    path = raw.upload(body, name)
    response = raw.http.get(f"/gradio_api/file={path}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"].startswith("attachment")


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://127.0.0.1.evil.example"])
def test_F3_foreign_origins_get_no_cors_grant(raw, origin):
    for response in (raw.http.get("/config", headers={"Origin": origin}),
                     raw.http.options("/gradio_api/upload", headers={
                         "Origin": origin, "Access-Control-Request-Method": "POST"})):
        assert "access-control-allow-origin" not in response.headers, (origin, dict(response.headers))
    assert app.launch_kwargs("127.0.0.1", 1).get("strict_cors", True) is True


def test_F4_monitoring_dashboard_is_off(raw):
    assert app.launch_kwargs("127.0.0.1", 1)["enable_monitoring"] is False
    for path in ("/monitoring", "/monitoring/summary"):
        assert raw.http.get(path).status_code == 403


def test_F5_server_errors_show_no_traceback_or_path(work, served, monkeypatch, caplog):
    assert app.launch_kwargs("127.0.0.1", 1)["show_error"] is False

    def broken(*args, **kwargs):
        raise RuntimeError("cannot open /root/.cache/secret/model.onnx (line 42 of /work/main/sam_onnx/x.py)")

    with monkeypatch.context() as patch, caplog.at_level(logging.ERROR, logger="sam_app"):
        patch.setattr(served.service, "render", broken)
        message = assert_message(work.session.click(30, 100), r"^Something went wrong on the server; your work is")
    assert "secret" not in message and "RuntimeError" not in message
    assert "cannot open /root/.cache/secret/model.onnx" in caplog.text  # the details are in the server log
    work.assert_unchanged()


def test_F6_pinned_versions_are_above_the_advisory_floors():
    """Offline check of requirements.txt against known advisories; `pip-audit -r requirements.txt` is the
    networked check (README.md, "Limits and security"), not run here."""
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;#]+)", line.strip())
        if match:
            pins[match.group(1).lower().replace("-", "_")] = match.group(2)
    for package, (floor, why) in ADVISORY_FLOORS.items():
        assert package in pins, f"{package} is not pinned in requirements.txt"
        assert version_tuple(pins[package]) >= floor, f"{package} {pins[package]} < {floor}: {why}"
        installed = metadata.version(package)
        assert version_tuple(installed) >= floor, f"installed {package} {installed} < {floor}: {why}"


def test_F6_the_server_binds_to_localhost_unless_told_otherwise(monkeypatch):
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    assert app.parse_args([]).host == "127.0.0.1"
    assert httpx.URL(f"http://{app.parse_args([]).host}:1/").host == "127.0.0.1"
