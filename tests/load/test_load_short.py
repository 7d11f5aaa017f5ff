"""The short load run that CI does on every push (docs/reliability.md, D. Load and resources), on the analytic models.

``python app.py`` is started on 127.0.0.1 as a separate process, 4 ``gradio_client`` users upload
and click 15 times each while a canary keeps clicking, and the server's RSS is sampled from
``/proc``. Latency targets belong to the full-size model (``python -m tools.load_harness``, see
README.md, "Limits and security"); here the run must have no errors and a bounded memory plateau.
"""

from __future__ import annotations

import pytest

from tools.load_harness import RSS_SLACK_MB, STARTUP_TIMEOUT_S, RunConfig, format_table, run_load, start_server

CACHE_MB = 256
RUN_BOUND_S = 150  # with server start-up, well inside the 3-minute budget


@pytest.mark.slow
@pytest.mark.timeout(STARTUP_TIMEOUT_S + RUN_BOUND_S + 60)  # a server process to start (<= 180 s), then the run
def test_short_load_run_has_no_errors_and_a_bounded_memory_plateau(analytic_dir, tmp_path):
    server = start_server(str(analytic_dir), CACHE_MB, tmp_path, ["--no-warmup"])
    try:
        config = RunConfig(users=4, clicks=15, duration_s=RUN_BOUND_S, cache_mb=CACHE_MB, click_p95_target_ms=5000)
        report = run_load(server, config, tmp_path)
    finally:
        server.stop()
    table = format_table(report)
    assert report["errors"] == 0, table
    assert report["checks"]["all_users_finished"], table
    operations = report["operations_ms"]
    assert operations["click"]["n"] == 4 * 15 and operations["encode"]["n"] == 5, table  # 4 users + the canary
    assert operations["canary_click"]["n"] >= 2, table  # the canary was served all along
    memory = report["memory"]
    assert memory["sampled"], table
    bound = memory["baseline_mb"] + CACHE_MB + RSS_SLACK_MB
    assert memory["plateau_mb"] <= bound and memory["peak_mb"] <= bound, table
    assert memory["threads_end"] <= memory["threads_start"] + 16, table  # no thread per request left behind
