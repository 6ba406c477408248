"""benchmarks.common: provenance, interleaved timing, the locked merge-save, plotting, flags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from benchmarks import common
from tosc_cache import provenance as runinfo

ROOT = Path(__file__).resolve().parents[1]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


def test_commit_is_head_dirty_only_with_changed_tracked_files_and_unknown_outside_git(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    (repo / "a.txt").write_text("1\n")
    git(repo, "add", "a.txt")
    git(repo, "commit", "-qm", "one")
    head = git(repo, "rev-parse", "HEAD")
    assert runinfo.commit(repo) == head
    (repo / "new.txt").write_text("untracked\n")  # untracked files do not make it dirty
    assert runinfo.commit(repo) == head
    (repo / "a.txt").write_text("2\n")
    assert runinfo.commit(repo) == head + "-dirty"
    plain = tmp_path / "plain"
    plain.mkdir()
    # outside any work tree (GIT_CEILING_DIRECTORIES stops the search above tmp_path)
    ceiling = {**os.environ, "GIT_CEILING_DIRECTORIES": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", "from tosc_cache.provenance import commit;"
                          f"from pathlib import Path; print(commit(Path({str(plain)!r})))"],
                         cwd=ROOT, env={**ceiling, "PYTHONPATH": str(ROOT)}, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "unknown"


def test_provenance_records_the_commit_the_run_started_from(tmp_path, monkeypatch):
    # a commit made while a long run trains is not the code that produced its numbers
    assert common.provenance([], "benchmarks.ablations")["commit"] == runinfo.STARTED_AT
    monkeypatch.setattr(runinfo, "commit", lambda root=runinfo.ROOT: "later")
    assert common.provenance([], "benchmarks.ablations")["commit"] == runinfo.STARTED_AT
    assert common.provenance([], "x", root=tmp_path)["commit"] == "later"


def test_provenance_has_its_five_fields():
    record = common.provenance(["--quick", "a b"], "benchmarks.ablations")
    assert set(record) == {"commit", "command", "versions", "machine", "date"}
    assert record["command"] == "python -m benchmarks.ablations --quick 'a b'"
    assert record["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert record["versions"]["numpy"] == np.__version__
    assert set(record["versions"]) <= {"python", *runinfo.PACKAGES}
    assert record["machine"] == common.machine() and f"{os.cpu_count()} CPUs" in record["machine"]
    assert record["date"].endswith("+00:00")
    assert common.provenance(["x"], "examples/kd_awgn.py")["command"] == (
        "python examples/kd_awgn.py x")


def test_command_of_a_module_run_with_dash_m_or_a_script(tmp_path):
    (tmp_path / "probe.py").write_text(
        "from tosc_cache.provenance import command\nprint(command())\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    shown = subprocess.run([sys.executable, "-m", "probe", "--quick", "a b"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "python -m probe --quick 'a b'"
    shown = subprocess.run([sys.executable, str(tmp_path / "probe.py"), "--x"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == f"python {tmp_path / 'probe.py'} --x"  # outside the repo


def test_versions_are_read_without_importing_the_packages():
    code = ("import sys; from tosc_cache.provenance import versions; v = versions(); "
            "print(sorted(m for m in ('torch', 'tensorflow', 'keras', 'transformers') "
            "if m in sys.modules)); print(sorted(v))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    imported, names = out.stdout.strip().splitlines()
    assert imported == "[]"
    assert "'python'" in names and "'numpy'" in names


def fake_clock(ticks: list[float]):
    it = iter(ticks)
    return lambda: next(it)


def test_time_interleaved_runs_every_candidate_once_per_round_best_median_spread():
    order = []
    # per measurement the clock is read twice: durations a: 3, 1, 2 and b: 10, 20, 40
    ticks = [0, 3, 0, 10, 0, 1, 0, 20, 0, 2, 0, 40]
    out = common.time_interleaved({"a": lambda: order.append("a"),
                                   "b": lambda: order.append("b")}, 3,
                                  clock=fake_clock(ticks))
    assert order == ["a", "b"] * 3
    assert out["a"] == {"best": 1, "median": 2, "spread": 3.0, "all": [3, 1, 2]}
    assert out["b"] == {"best": 10, "median": 20, "spread": 4.0, "all": [10, 20, 40]}


def test_time_interleaved_divides_by_calls_and_skips_warmup():
    calls = {"a": 0, "b": 0}

    def bump(name):
        def run():
            calls[name] += 1
        return run

    # warm-up round (a: 4 calls, b: 1), then one recorded round
    ticks = [0, 100, 0, 100, 0, 8, 0, 5]
    out = common.time_interleaved({"a": bump("a"), "b": bump("b")}, 1, calls={"a": 4},
                                  warmup=1, clock=fake_clock(ticks))
    assert calls == {"a": 8, "b": 2}
    assert out["a"]["all"] == [2.0] and out["b"]["all"] == [5.0]
    with pytest.raises(ValueError):
        common.interleaved({"a": lambda: 1.0}, 0)


def test_interleaved_keeps_the_durations_candidates_measure_themselves():
    values = iter([0.5, 0.25, 0.75])
    assert common.interleaved({"x": lambda: next(values)}, 3)["x"] == {
        "best": 0.25, "median": 0.5, "spread": 3.0, "all": [0.5, 0.25, 0.75]}


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from benchmarks import common
    path, me = Path(sys.argv[1]), sys.argv[2]
    for i in range(5):
        results = {"runs": [{"writer": me, "i": i}]}
        written = {(me, i)}
        def merge(on_disk, results=results, written=written):
            results["runs"] = common.merge_runs(results["runs"], on_disk.get("runs", []),
                                                written, lambda r: (r["writer"], r["i"]))
        common.save_merged(path, results, merge)
""")


def test_save_merged_under_concurrent_writers_keeps_every_run(tmp_path):
    path = tmp_path / "results.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"w{k}"], cwd=ROOT,
                                env=env) for k in range(4)]
    assert [w.wait(timeout=120) for w in writers] == [0] * 4
    results = json.loads(path.read_text())
    assert sorted((r["writer"], r["i"]) for r in results["runs"]) == sorted(
        (f"w{k}", i) for k in range(4) for i in range(5))
    assert results["provenance"]["command"].startswith("python -c")
    assert not list(tmp_path.glob("*.tmp"))


def test_save_merged_keeps_earlier_writers_provenance_once(tmp_path):
    path = tmp_path / "r.json"
    first = {**common.provenance([], "benchmarks.a"), "commit": "c1"}
    second = {**common.provenance([], "benchmarks.a"), "commit": "c2"}
    common.save_merged(path, {"x": 1}, record=first)
    common.save_merged(path, {"x": 2}, record=first)  # same commit and command: no history
    assert "earlier_provenance" not in json.loads(path.read_text())
    common.save_merged(path, {"x": 3}, record=second)
    common.save_merged(path, {"x": 4}, record=second)
    written = json.loads(path.read_text())
    assert written["provenance"] == second and written["earlier_provenance"] == [first]


def test_write_results_replaces_the_file_with_provenance_and_plain_numbers(tmp_path):
    path = tmp_path / "sub" / "r.json"
    common.write_results(path, {"a": np.float32(0.5), "b": np.arange(2)}, ["--x"], "benchmarks.b")
    written = json.loads(path.read_text())
    assert written["a"] == 0.5 and written["b"] == [0, 1]
    assert written["provenance"]["command"] == "python -m benchmarks.b --x"
    common.write_results(path, {"c": 1}, [], "benchmarks.b")
    assert set(json.loads(path.read_text())) == {"c", "provenance"}


def test_figure_writes_a_png_and_closes_it(tmp_path):
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    with common.figure(tmp_path / "f.png", ncols=2, figsize=(4, 2)) as (fig, axes):
        axes[0].plot([0, 1], [1, 0])
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    assert len(plt.get_fignums()) == before
    with pytest.raises(RuntimeError), common.figure(tmp_path / "g.png"):
        raise RuntimeError("drawing failed")
    assert not (tmp_path / "g.png").exists() and len(plt.get_fignums()) == before


def test_parser_adds_only_the_common_flags_asked_for():
    p = common.parser("Title.\n\nmore", quick="smoke", seeds=[0, 1], epochs=3, out="o")
    args = p.parse_args([])
    assert (args.quick, args.seeds, args.epochs, args.out) == (False, [0, 1], 3, "o")
    assert p.description == "Title."
    bare = common.parser(None).parse_args([])
    assert not vars(bare)


def test_latency_appends_every_run_with_its_provenance(tmp_path):
    from benchmarks import latency

    assert latency.student_name(36, True, [128]) == "sep-w36-h128"
    assert latency.student_name(32, False, [256]) == "conv-w32-h256"
    path = tmp_path / "latency_x.json"
    static = {"student": {"name": "x"}, "params": {"link": 1}}
    for k in range(2):
        latency.record(path, static, {"provenance": common.provenance([f"{k}"], "m"), "k": k})
    written = json.loads(path.read_text())
    assert [r["k"] for r in written["runs"]] == [0, 1]
    assert written["params"] == {"link": 1}
    assert written["provenance"] == written["runs"][-1]["provenance"]


def test_compression_frontier_status_follows_the_numbers():
    from benchmarks.compression_frontier_imagenet1000 import status

    def row(method, size, kl1, kl4):
        return {"method": method, "split": "heldout", "bytes_per_row": size,
                "fidelity": {"1": {"kl_mean": kl1}, "4": {"kl_mean": kl4}}}

    rows = [row("tcq", 56, 0.02, 0.001), row("tcq", 64, 0.009, 0.002),
            row("scalar", 64, 0.02, 0.002), row("scalar", 80, 0.009, 0.01)]
    out = status(rows)
    assert out["fewest_bytes_per_row"]["heldout"] == {"tcq": 64, "scalar": 80}
    assert out["meets_target_at_64_bytes"]["heldout"] == {"tcq": True, "scalar": False}
    assert status(rows, target=1e-3)["fewest_bytes_per_row"]["heldout"] == {
        "tcq": None, "scalar": None}


def test_every_results_file_carries_provenance():
    for path in sorted((ROOT / "benchmarks" / "results").glob("*.json")):
        record = json.loads(path.read_text()).get("provenance") or {}
        assert record.get("commit") and record.get("command"), path.name


def test_results_file_is_a_json_out_or_name_or_name_quick_in_a_folder(tmp_path):
    assert common.results_file(tmp_path / "x.json", "b", quick=True) == tmp_path / "x.json"
    assert common.results_file(tmp_path, "b") == tmp_path / "b.json"
    assert common.results_file(tmp_path, "b", quick=True) == tmp_path / "b_quick.json"
    assert common.results_file(common.RESULTS, "b", quick=True).parent == common.RESULTS


def test_a_benchmark_called_in_process_records_its_own_command():
    assert runinfo.command(["--quick"], "benchmarks.b") == "python -m benchmarks.b --quick"
    assert runinfo.command(["--quick"], "__main__") == runinfo.command(["--quick"])
