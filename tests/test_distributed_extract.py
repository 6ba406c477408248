"""Extraction across processes launched by torchrun (gloo, CPU), and resumption after kills.

The launches are real: ``python -m torch.distributed.run --nproc_per_node 2 -m
cache_tools extract ...`` in a subprocess. Kills are real SIGKILLs, injected from
the test side: ``extract_and_kill.py`` runs the same command with an ``on_batch``
callback that kills one process after its N-th stored batch. The tiny encoder teacher with a
basis compression covers everything rank 0 computes before the writer exists
and the other processes read back from the staging index (the head, the basis).
"""

import contextlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import tiny_teachers as tt

from cache_tools import extract as extract_module
from cache_tools.extract import ExtractionOptions, extract

os.environ["HF_HUB_OFFLINE"] = "1"  # everything loads from local directories
#: torchrun and real SIGKILLs: CI's second tier (`pytest -m "slow or distributed or benchmark"`)
pytestmark = pytest.mark.distributed

KILLER = Path(__file__).with_name("extract_and_kill.py")
ROWS, VIEWS, BATCH = 40, 2, 8  # 4 rows per batch: 10 batches, 5 per process
KWARGS = dict(limit=ROWS, views=VIEWS, batch_size=BATCH, topk=4, basis_rank=3, features="int8")
ARGS = ["--limit", ROWS, "--views", VIEWS, "--batch-size", BATCH, "--topk", 4, "--basis", 3,
        "--features", "int8", "-q"]
#: torchrun gives each process one thread; the one-process reference runs with one too
#: (a CPU kernel's bits may depend on its thread count).
THREADS = "1"


@contextlib.contextmanager
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(THREADS))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return tt.make_vit_encoder(tmp_path_factory.mktemp("models") / "encoder")


@pytest.fixture(scope="module")
def reference(encoder, tmp_path_factory):
    """The one-process cache every launch below must reproduce bit for bit."""
    with one_thread():
        return extract(ExtractionOptions(encoder, tmp_path_factory.mktemp("ref") / "one.h5",
                                         **KWARGS))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(model, out, processes=2, kill=None):
    """``torchrun --nproc_per_node N -m cache_tools extract`` with the shared arguments;
    ``kill=(RANK, BATCHES)`` SIGKILLs that process after its BATCHES-th batch."""
    where = ["-m", "cache_tools"] if kill is None else [str(KILLER), *map(str, kill)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
           "--master_port", str(free_port()), *where, "extract",
           "--model", str(model), "--out", str(out), *map(str, ARGS)]
    env = {**os.environ, "OMP_NUM_THREADS": THREADS}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def datasets(f: h5py.File) -> list[str]:
    names: list[str] = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    return sorted(names)


def plain(value):
    return value.tolist() if isinstance(value, (np.ndarray, np.generic)) else value


def assert_same_cache(a, b) -> None:
    """Every dataset (values, dtype, chunks, filters) and every root attribute but the
    environment's are equal."""
    skip = ("environment", "resumed_in")
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        assert datasets(fa) == datasets(fb)
        for name in datasets(fa):
            x, y = fa[name], fb[name]
            assert (x.dtype, x.shape, x.chunks, x.compression) == \
                (y.dtype, y.shape, y.chunks, y.compression), name
            np.testing.assert_array_equal(x[()], y[()], err_msg=name)
            assert x[()].tobytes() == y[()].tobytes(), name  # bits, NaN and -0.0 included
        attrs_a = {k: plain(v) for k, v in fa.attrs.items() if k not in skip}
        attrs_b = {k: plain(v) for k, v in fb.attrs.items() if k not in skip}
        assert attrs_a == attrs_b


def test_two_processes_equal_one_process(encoder, reference, tmp_path):
    out = tmp_path / "two.h5"
    result = launch(encoder, out)
    assert result.returncode == 0, result.stderr[-3000:]
    assert out.exists() and not (tmp_path / "two.h5.partial").exists()
    assert_same_cache(reference, out)
    with h5py.File(out, "r") as f:  # recorded by rank 0 for the launch
        assert json.loads(f.attrs["environment"])["world_size"] == 2


@pytest.mark.parametrize("victim", [0, 1])
def test_kill_one_process_and_relaunch_gives_the_same_cache(encoder, reference, tmp_path,
                                                           victim):
    out, stage = tmp_path / "killed.h5", tmp_path / "killed.h5.partial"
    killed = launch(encoder, out, kill=(victim, 2))  # after its 2nd batch
    assert killed.returncode != 0
    assert "SIGKILL" in killed.stderr, killed.stderr[-3000:]
    # batch i is rank i % 2's: the victim wrote exactly two, the other at most its five
    batches = sorted(int(p.name[5:14]) // (BATCH // VIEWS) for p in stage.glob("rows-*.npz"))
    assert [i for i in batches if i % 2 == victim] == [victim, victim + 2]
    assert len(batches) < ROWS // (BATCH // VIEWS) and not out.exists()
    result = launch(encoder, out)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not stage.exists()
    assert_same_cache(reference, out)
    with h5py.File(out, "r") as f:
        assert "resumed_in" not in f.attrs  # the relaunch ran in the same environment


def test_encoder_resume_after_kill_uses_the_stored_head(encoder, reference, tmp_path,
                                                       monkeypatch):
    out, stage = tmp_path / "enc.h5", tmp_path / "enc.h5.partial"
    cmd = [sys.executable, str(KILLER), "0", "3", "extract", "--model", str(encoder),
           "--out", str(out), *map(str, ARGS)]
    killed = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": THREADS}, timeout=300)
    assert killed.returncode == -9  # a real SIGKILL after three batches
    assert len(list(stage.glob("rows-*.npz"))) == 3 and not out.exists()
    with np.load(stage / "index.npz") as index:
        weight, bias = index["head/weight"], index["head/bias"]

    def refit(*args, **kwargs):
        raise AssertionError("the resumed extraction refitted the head")

    monkeypatch.setattr(extract_module, "fit_linear_head", refit)
    with one_thread():
        extract(ExtractionOptions(encoder, out, **KWARGS))
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["head/weight"][()], weight)
        np.testing.assert_array_equal(f["head/bias"][()], bias)
    assert_same_cache(reference, out)
    # a new extraction (nothing staged) does fit one
    with pytest.raises(AssertionError, match="refitted"):
        extract(ExtractionOptions(encoder, tmp_path / "fresh.h5", **KWARGS))
