"""Benchmarks: scripts that print numbers (run as ``python -m bench.<script>`` from the repository root)."""
