"""docs/results.md is what ``benchmarks.results_page`` generates from benchmarks/results/*.json:
committed page current, every number read from the files, provenance in every section, no
results file left off. Fast; the generator imports neither Keras, TensorFlow nor torch."""

from __future__ import annotations

import difflib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import results_page as rp


def short_diff(a: str, b: str, limit: int = 40) -> str:
    lines = list(difflib.unified_diff(a.splitlines(), b.splitlines(), "committed", "generated",
                                      lineterm=""))
    more = f"\n... {len(lines) - limit} more diff lines" if len(lines) > limit else ""
    return "\n".join(lines[:limit]) + more


def sections(page: str) -> dict[str, str]:
    """The page's ``##`` sections by title."""
    parts = page.split("\n## ")[1:]
    return {p.split("\n", 1)[0]: p for p in parts}


@pytest.fixture(scope="module")
def page() -> str:
    return rp.generate()


def test_committed_page_is_current(page):
    committed = rp.PAGE.read_text() if rp.PAGE.exists() else ""
    assert committed == page, (
        f"docs/results.md differs from what the results files give; regenerate it with "
        f"`{rp.COMMAND}` and commit it:\n{short_diff(committed, page)}")


def test_page_is_a_function_of_the_numbers(tmp_path):
    """One number changed in one file changes the page at exactly that number."""
    results = tmp_path / "results"
    shutil.copytree(rp.RESULTS, results)
    before = rp.generate(results)
    path = results / "xla_training.json"
    data = json.loads(path.read_text())
    old = data["channels"]["awgn"]["xla"]["first_epoch_s"]
    data["channels"]["awgn"]["xla"]["first_epoch_s"] = new = 31.37
    path.write_text(json.dumps(data))
    after = rp.generate(results)
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True)
               if a != b]
    assert len(changed) == 1, changed
    cells = [(x, y) for x, y in zip(*(c.split(" | ") for c in changed[0]), strict=True)
             if x != y]
    assert cells == [(rp.fmt(old), rp.fmt(new))], changed


def test_every_section_has_its_provenance(page):
    by_title = sections(page)
    assert set(by_title) >= {s.title for s in rp.SECTIONS}
    for s in rp.SECTIONS:
        text = by_title[s.title]
        assert "Provenance:" in text, s.title
        for name in s.files:
            data = json.loads((rp.RESULTS / f"{name}.json").read_text())
            p = data.get("provenance") or {}
            assert p.get("command") and f"`{p['command']}`" in text, (s.title, name)
            assert p.get("commit") and f"`{p['commit'][:7]}`" in text, (s.title, name)
            for key in ("machine", "date"):
                assert (p[key] if p.get(key) else f"{key} not recorded") in text, (name, key)
            for e in data.get("earlier_provenance") or []:
                assert f"`{e['command']}`" in text, (name, e)
            if (p.get("line") or {}).get("keras_backend"):
                assert f"Keras' {p['line']['keras_backend']} backend" in text, name


def test_anchors_are_the_headings_slugs(page):
    assert len(set(rp.ANCHORS)) == len(rp.ANCHORS)
    for s, anchor in zip(rp.SECTIONS, rp.ANCHORS, strict=True):
        assert anchor == rp.slug(s.title) and re.fullmatch(r"[a-z0-9-]+", anchor), s.title
        assert f"\n## {s.title}\n" in page and f"](#{anchor})" in page
    assert rp.slug("Main job on torch seed 0") == "main-job-on-torch-seed-0"
    assert rp.slug("Alpha 0.25, and: more") == "alpha-025-and-more"


def test_a_results_file_without_a_section_is_an_error(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(rp.RESULTS, results)
    (results / "new_benchmark.json").write_text(json.dumps({"provenance": {}}))
    with pytest.raises(ValueError, match="new_benchmark"):
        rp.generate(results)
    assert all(reason.strip() for reason in rp.SKIPPED.values())
    on_page = {n for s in rp.SECTIONS for n in s.files} | {Path(k).stem for k in rp.SKIPPED}
    assert set(rp.results_files(rp.RESULTS)) <= on_page


def test_check_exits_1_with_a_diff(tmp_path, capsys):
    stale = tmp_path / "results.md"
    stale.write_text(rp.generate().replace("# Results", "# Stale", 1))
    assert rp.main(["--check", "--out", str(stale)]) == 1
    out = capsys.readouterr()
    assert "out of date" in out.err and len(out.err.strip().splitlines()) == 1
    assert "-# Stale" in out.out and "+# Results" in out.out
    assert rp.main(["--out", str(stale)]) == 0
    assert rp.main(["--check", "--out", str(stale)]) == 0


def test_generator_imports_no_keras():
    code = ("import sys, benchmarks.results_page as rp; rp.generate(); "
            "print(sorted(m for m in ('keras', 'tensorflow', 'torch') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=rp.ROOT, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "[]"
