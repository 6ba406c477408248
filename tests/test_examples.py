"""The examples run end to end on real Fashion-MNIST."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from script_modules import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_link_demo_trains_above_chance():
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "link_demo.py"),
         "--train-images", "8192", "--test-images", "500", "--epochs", "1",
         "--snr-eval", "20"],
        capture_output=True, text=True, check=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    ).stdout
    rows = re.findall(r"^(awgn|rayleigh.*?|ofdm.*?)\s+([0-9.]+)\s*$", out, flags=re.M)
    assert [r[0].split()[0] for r in rows] == ["awgn", "rayleigh", "ofdm"], out
    for _, accuracy in rows:
        assert float(accuracy) > 0.5, out  # chance is 0.1


def test_link_demo_missing_data_exits_2(tmp_path, capsys):
    demo = load_script(ROOT / "examples" / "link_demo.py")
    assert demo.main(["--data-dir", str(tmp_path)]) == 2
    assert "dataset-fashion-mnist" in capsys.readouterr().err
