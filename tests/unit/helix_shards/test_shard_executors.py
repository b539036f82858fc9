"""`helix_shards`: the tree reduction, the local executor, and the Ray executor giving the same
results on the session's local Ray cluster (`tests/ray_support.py`)."""

from __future__ import annotations

import ast
import functools
import operator
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helix_shards import LocalExecutor, ShardTask, make_executor, tree_reduce
from helix_shards.ray_executor import RayExecutor

ROOT = Path(__file__).resolve().parents[3]


def _offset() -> int:
    return 100


def _times_plus(offset: int, item: int) -> int:
    return item * item + offset


def _pid_setup() -> int:
    return os.getpid()


def _worker_pid(pid: int, item: int) -> tuple[int, int]:
    return pid, item


def _matrix(seed: int, item: int) -> np.ndarray:
    return np.random.default_rng(seed + item).standard_normal((3, 4))


def _seed() -> int:
    return 7


@pytest.mark.parametrize("count", [1, 2, 3, 7, 8, 33])
def test_tree_reduce_adds_everything_whatever_the_order(count: int) -> None:
    rng = np.random.default_rng(count)
    parts = [rng.standard_normal((2, 3)) for _ in range(count)]
    expected = np.sum(parts, axis=0)
    for _ in range(5):
        order = rng.permutation(count)
        np.testing.assert_allclose(tree_reduce(operator.add, [parts[i] for i in order]), expected, atol=1e-12)


def test_tree_reduce_pairs_in_rounds() -> None:
    """The shape of the tree: ((a b) (c d)) e, as strings show it."""
    assert tree_reduce(lambda a, b: f"({a} {b})", list("abcde")) == "(((a b) (c d)) e)"
    with pytest.raises(ValueError, match="nothing to reduce"):
        tree_reduce(operator.add, [])


def test_local_executor_sets_up_once_and_runs_lazily() -> None:
    calls: list[str] = []

    def setup() -> int:
        calls.append("setup")
        return 1

    def run(state: int, item: int) -> int:
        calls.append(f"run {item}")
        return state + item

    results = LocalExecutor().map(ShardTask(setup, run), [10, 20, 30])
    assert calls == []
    assert next(results) == 11
    assert calls == ["setup", "run 10"]  # the next item waits for its caller
    assert list(results) == [21, 31]
    assert LocalExecutor().map_reduce(ShardTask(setup, run), [1, 2, 3], operator.add) == 9


def test_make_executor_knows_its_kinds() -> None:
    assert isinstance(make_executor("local"), LocalExecutor)
    assert isinstance(make_executor("ray", address="127.0.0.1:1"), RayExecutor)  # connects on first use only
    with pytest.raises(ValueError, match="unknown executor 'dask'"):
        make_executor("dask")


def test_ray_is_imported_only_when_selected() -> None:
    code = (
        "import sys, helix_shards, client_agent.state, provider_server.state\n"
        "helix_shards.make_executor('ray')\n"
        "assert 'ray' not in sys.modules, 'ray imported without being used'\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_helix_shards_imports_nothing_of_helix() -> None:
    """A shared room: both silos use it, so it knows neither (nor anything else first-party)."""
    first_party = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    for path in (ROOT / "helix_shards").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not (names & first_party) - {"helix_shards"}, f"{path.name} imports {names & first_party}"


# ----------------------------------------------------------------------------------------- on Ray


def test_ray_map_equals_local_map_in_order(ray_cluster: object) -> None:
    task = ShardTask(_offset, _times_plus)
    items = list(range(23))
    ray_exec = RayExecutor(workers=2, window=3)
    assert list(ray_exec.map(task, items)) == list(LocalExecutor().map(task, items))
    assert list(ray_exec.map(task, [])) == []


def test_ray_sets_up_once_per_worker_not_per_item(ray_cluster: object) -> None:
    results = list(RayExecutor(workers=2).map(ShardTask(_pid_setup, _worker_pid), range(12)))
    assert [item for _, item in results] == list(range(12))
    pids = {pid for pid, _ in results}
    assert 1 <= len(pids) <= 2 and os.getpid() not in pids


def test_ray_tree_reduction_equals_local(ray_cluster: object) -> None:
    task = ShardTask(_seed, _matrix)
    local = LocalExecutor().map_reduce(task, range(9), operator.add)
    on_ray = RayExecutor(workers=2).map_reduce(task, range(9), operator.add)
    np.testing.assert_allclose(on_ray, local, atol=1e-12)
    np.testing.assert_allclose(local, np.sum([_matrix(7, i) for i in range(9)], axis=0), atol=1e-12)


def test_ray_executor_leaves_a_cluster_it_did_not_start(ray_cluster: object) -> None:
    import ray

    executor = RayExecutor(workers=1)
    assert executor.map_reduce(ShardTask(_offset, _times_plus), [1, 2], functools.partial(operator.add)) == 205
    executor.close()
    assert ray.is_initialized()
