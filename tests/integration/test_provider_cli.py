"""`helix-provider create-tenant` against a real provider: the key it writes (0600) authenticates, and a
second run with the key already in place changes nothing."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from helix_it_helpers import https_client

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


def test_create_tenant_writes_a_working_key_once(provider: Any, admin_headers: dict[str, str], tmp_path: Path) -> None:
    key_file = tmp_path / "secrets" / "api-key"
    first = run_cli(provider, admin_headers, "create-tenant", "--name", "cli-tenant", "--api-key-file", str(key_file))
    assert first.returncode == 0, first.stderr
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    with https_client(provider.url, provider.ca, headers={"Authorization": f"Bearer {key}"}) as http:
        assert http.get("/v1/usage").status_code == 200
    second = run_cli(provider, admin_headers, "create-tenant", "--name", "cli-tenant", "--api-key-file", str(key_file))
    assert second.returncode == 0 and "nothing to do" in second.stderr
    assert key_file.read_text().strip() == key
    listing = run_cli(provider, admin_headers, "list-tenants")
    assert listing.returncode == 0 and listing.stdout.count('"name": "cli-tenant"') == 1
