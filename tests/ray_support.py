"""One local Ray cluster per test session, for the tests of `helix_shards` on Ray.

Started on first use by the `ray_cluster` fixture (tests that do not ask for it never pay Ray's start-up,
a few seconds) and shut down at the end of the session. Its workers are processes Ray starts, so they
must import this checkout's packages: PYTHONPATH names the repository before the cluster starts. The
cluster listens on loopback only (Ray otherwise binds the machine's own address), and daemons started
afterwards inherit both variables, so they join it as drivers at `ray_cluster.address`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class RayCluster:
    address: str  # host:port of the cluster's GCS, for HELIX_*_RAY_ADDRESS
    num_cpus: int


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    paths = [str(REPO_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    # Read when `ray` is first imported: a node address of 127.0.0.1 instead of the machine's own.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray  # a test dependency (the `test` extra)

    context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield RayCluster(address=context.address_info["gcs_address"], num_cpus=2)
    finally:
        ray.shutdown()
