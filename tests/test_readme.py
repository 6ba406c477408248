"""The README's promises: short, a command to run early, and a quick tour that runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_is_short_and_its_first_command_is_early_and_quick():
    lines = README.splitlines()
    assert len(lines) <= 200
    first = next(i for i, line in enumerate(lines) if line.startswith("```bash"))
    assert first < 60
    assert "examples/kd_awgn.py --quick" in lines[first + 2]


def test_readme_links_point_at_files_and_results_anchors_that_exist():
    from benchmarks import results_page

    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target
    for anchor in re.findall(r"docs/results\.md#([a-z0-9-]+)", README):
        assert anchor in results_page.ANCHORS, anchor


@pytest.mark.slow
@pytest.mark.torch  # the same public API on both lines; once is enough for CI's time
def test_quick_tour_runs_on_a_short_schedule(tmp_path):
    """The tour's code as written, with 30 steps and 1,000 test images instead of its full
    two epochs and test split (each substitution must find its target)."""
    code = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    for old, new in [
        ("trainer.fit(data, epochs=2)", "trainer.fit(data, epochs=1, steps_per_epoch=30)"),
        ('x_test, y_test = load_fashion_mnist("test")',
         'x_test, y_test = load_fashion_mnist("test"); x_test, y_test = x_test[:1000], '
         "y_test[:1000]"),
    ]:
        assert old in code, old
        code = code.replace(old, new)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    accuracies = [float(a) for a in re.findall(r"[0-9.]+", done.stdout.strip().splitlines()[-1])]
    assert len(accuracies) == 2 and all(0.0 <= a <= 1.0 for a in accuracies)
    assert (tmp_path / "student.keras").exists()
