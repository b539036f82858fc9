"""`helix-provider create-head --map-holder` sets the head's policy, and the catalogue shows it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def run_cli(provider: Any, admin_headers: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELIX_PROVIDER_")}
    env.update(
        HELIX_PROVIDER_URL=provider.url,
        HELIX_PROVIDER_CA_CERT=provider.ca,
        HELIX_PROVIDER_ADMIN_TOKEN=admin_headers["Authorization"].split(" ", 1)[1],
        PYTHONPATH=str(REPO),
    )
    return subprocess.run(
        [sys.executable, "-m", "provider_server.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_create_head_with_a_map_holder(provider: Any, admin_headers: dict[str, str]) -> None:
    made = run_cli(
        provider, admin_headers, "create-head", "--name", "cli-held", "--dataset", "sst2", "--max-examples", "60",
        "--map-holder", "provider",
    )  # fmt: skip
    try:
        assert made.returncode == 0, made.stderr
        assert json.loads(made.stdout)["head"]["map_holder"] == "provider"
        assert provider.http.get("/v1/heads/cli-held").json()["map_holder"] == "provider"
        bad = run_cli(provider, admin_headers, "create-head", "--name", "x", "--dataset", "sst2", "--map-holder", "me")
        assert bad.returncode != 0 and "invalid choice" in bad.stderr
    finally:
        deleted = run_cli(provider, admin_headers, "delete-head", "cli-held")
    assert deleted.returncode == 0, deleted.stderr
    assert provider.http.get("/v1/heads/cli-held").status_code == 404
