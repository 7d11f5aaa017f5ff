"""tools/check_model.py on the reduced fixture (which has the Concat quirk): every layout repeatable."""

from __future__ import annotations

from pathlib import Path

from tools import check_model

FIXTURE = Path(__file__).parent / "fixtures" / "sam2_tiny"


def test_check_model_on_the_quirky_fixture(capsys):
    assert check_model.main(["--model-dir", str(FIXTURE)]) == 0
    out = capsys.readouterr().out
    assert "prompt Concat nodes repaired: 1" in out
    assert "all layouts deterministic and repeatable" in out
    assert out.count(" True") >= 3 * len(check_model.LAYOUTS)
