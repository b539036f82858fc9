"""Checks for docker-compose.yml and the two Dockerfiles, without a Docker engine.

The machines that run this suite have no Docker engine, so the compose file is
validated against the official Compose Specification JSON schema, and the
things a schema cannot know (files exist, volumes are declared, ports and paths
agree with the images and with helix_pki's layout) are asserted directly.
Where a real ``docker compose`` is present it gets the last word.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import re
import shlex
import shutil
import ssl
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from cryptography import x509

from helix_pki import ensure_demo_pki
from helix_pki.__main__ import main as pki_main

REPO_ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DEFAULT_SCHEMA = REPO_ROOT.parent / "shared" / "schemas" / "compose-spec.json"

EXPECTED_PORTS = {"provider": 8443, "client": 8444}
IMAGES = {"provider": ("Dockerfile.provider", "helix-provider"), "client": ("Dockerfile.client", "helix-client")}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    path = Path(os.environ.get("HELIX_COMPOSE_SCHEMA") or DEFAULT_SCHEMA)
    if not path.is_file():
        pytest.skip(f"compose JSON schema not found at {path} (set HELIX_COMPOSE_SCHEMA to its location)")
    schema = json.loads(path.read_text())
    # The official file says "$schema": "https://json-schema.org/draft-07/schema"
    # (no trailing '#'), which jsonschema does not recognise; it is draft-07.
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    cls.check_schema(schema)
    return cls(schema)


def _errors(validator: jsonschema.protocols.Validator, doc: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: str(v) for k, v in env.items()}


def _volume_mounts(service: dict[str, Any]) -> list[dict[str, Any]]:
    """Normalise short ("src:dst[:mode]") and long volume syntax to dicts."""
    mounts = []
    for v in service.get("volumes") or []:
        if isinstance(v, str):
            parts = v.split(":")
            if len(parts) == 1:
                mounts.append({"type": "volume", "source": None, "target": parts[0], "read_only": False})
                continue
            src, dst, *mode = parts
            kind = "bind" if src.startswith(("/", ".", "~", "$")) else "volume"
            ro = bool(mode) and "ro" in mode[0].split(",")
            mounts.append({"type": kind, "source": src, "target": dst, "read_only": ro})
        else:
            mounts.append({"read_only": False, **v})
    return mounts


def _port_targets(service: dict[str, Any]) -> set[int]:
    targets = set()
    for p in service.get("ports") or []:
        if isinstance(p, dict):
            targets.add(int(p["target"]))
        else:
            # [[ip:]host:]container[/proto]; IPv6 host IPs are bracketed.
            container = str(p).rsplit("/", 1)[0].rsplit(":", 1)[-1]
            targets.add(int(container))
    return targets


def _dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        instr, _, args = buf.partition(" ")
        out.append((instr.upper(), args.strip()))
        buf = ""
    return out


def _dockerfile_env(instrs: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instr, args in instrs:
        if instr == "ENV":
            for tok in shlex.split(args):
                key, _, val = tok.partition("=")
                env[key] = val
    return env


def _exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(x, str) for x in value), args
    return value


# --------------------------------------------------------------------------- schema


def test_compose_file_is_valid_against_the_compose_spec(compose, validator) -> None:
    errors = _errors(validator, compose)
    assert not errors, "docker-compose.yml violates the Compose Specification:\n" + "\n".join(errors)


@pytest.mark.parametrize(
    ("mutation", "where"),
    [
        (lambda d: d["services"]["provider"].__setitem__("ports", {"8443": 8443}), "ports"),
        (
            lambda d: d["services"]["provider"]["depends_on"]["pki"].__setitem__("condition", "service_done"),
            "depends_on",
        ),
        (lambda d: d["services"]["client"].__setitem__("not_a_compose_key", True), "client"),
    ],
    ids=["ports-as-object", "bad-depends-condition", "unknown-service-key"],
)
def test_broken_copies_fail_validation(compose, validator, mutation, where: str) -> None:
    """Proves the validator really checks: the same document, broken on purpose, is rejected."""
    broken = copy.deepcopy(compose)
    mutation(broken)
    errors = _errors(validator, broken)
    assert errors, "a deliberately broken compose document passed validation"
    assert any(where in e for e in errors), f"rejected, but not for the intended reason: {errors}"


# --------------------------------------------------------------------------- semantics


DEFAULT_SERVICES = {"pki", "provider", "tenant", "client"}
SCALE_REPLICAS = ("provider-1", "provider-2", "provider-3")
SCALE_SERVICES = {"postgres", *SCALE_REPLICAS, "balancer", "scale-tenant", "scale-client"}


def test_expected_services_exist(compose) -> None:
    """`docker compose up` runs the single-provider services; the `scale` profile adds the replicas."""
    services = _services(compose)
    assert {n for n, s in services.items() if not s.get("profiles")} == DEFAULT_SERVICES
    assert {n for n, s in services.items() if s.get("profiles")} == SCALE_SERVICES
    assert all(services[n]["profiles"] == ["scale"] for n in SCALE_SERVICES)


def test_every_build_dockerfile_exists(compose) -> None:
    for name, svc in _services(compose).items():
        build = svc.get("build")
        if build is None:
            continue
        if isinstance(build, str):
            build = {"context": build}
        context = (COMPOSE_FILE.parent / build.get("context", ".")).resolve()
        assert context.is_dir(), f"{name}: build context {context} does not exist"
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"


def test_services_sharing_an_image_tag_build_it_identically(compose) -> None:
    by_image: dict[str, list[Any]] = {}
    for svc in _services(compose).values():
        if "image" in svc and "build" in svc:
            by_image.setdefault(svc["image"], []).append(svc["build"])
    for image, builds in by_image.items():
        assert all(b == builds[0] for b in builds), f"{image} is built from different recipes: {builds}"


def test_every_named_volume_is_declared(compose) -> None:
    declared = set((compose.get("volumes") or {}).keys())
    used = set()
    for name, svc in _services(compose).items():
        for m in _volume_mounts(svc):
            if m["type"] == "volume" and m.get("source"):
                used.add(m["source"])
                assert m["source"] in declared, f"service {name} uses undeclared volume {m['source']!r}"
    assert used == declared, f"declared but unused volumes: {declared - used}"


def test_ports_map_the_right_container_ports(compose) -> None:
    services = _services(compose)
    for name, port in EXPECTED_PORTS.items():
        assert _port_targets(services[name]) == {port}, name
    assert not services["pki"].get("ports"), "the one-shot pki job must not publish ports"


def test_dependency_conditions(compose) -> None:
    services = _services(compose)
    assert services["provider"]["depends_on"]["pki"]["condition"] == "service_completed_successfully"
    assert services["client"]["depends_on"]["provider"]["condition"] == "service_healthy"
    assert services["tenant"]["depends_on"]["provider"]["condition"] == "service_healthy"
    assert services["client"]["depends_on"]["tenant"]["condition"] == "service_completed_successfully"


def test_the_agent_authenticates_with_the_key_the_tenant_job_writes(compose, monkeypatch) -> None:
    """The tenant job runs `helix-provider create-tenant --api-key-file F` (a real subcommand) into a volume
    that only it and the agent mount (the agent read-only), and the agent reads its key from that file."""
    from provider_server.cli import main

    services = _services(compose)
    job, client = services["tenant"], services["client"]
    command = job["command"]
    assert job["entrypoint"] == ["helix-provider"] and command[0] == "create-tenant"
    key_file = command[command.index("--api-key-file") + 1]
    assert _env(client)["HELIX_CLIENT_PROVIDER_API_KEY_FILE"] == key_file
    secrets_volume = {m["target"]: m for m in _volume_mounts(job)}[str(Path(key_file).parent)]
    agent_mount = {m["target"]: m for m in _volume_mounts(client)}[str(Path(key_file).parent)]
    assert agent_mount["source"] == secrets_volume["source"] and agent_mount["read_only"] is True
    provider_sources = {m["source"] for m in _volume_mounts(services["provider"])}
    assert secrets_volume["source"] not in provider_sources
    monkeypatch.delenv("HELIX_PROVIDER_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("HELIX_PROVIDER_ADMIN_TOKEN_FILE", raising=False)
    with pytest.raises(SystemExit) as usage:  # the arguments parse (only the missing token stops it)
        main([*command, "--url", "https://127.0.0.1:1"])
    assert "HELIX_PROVIDER_ADMIN_TOKEN" in str(usage.value)


def test_provider_admin_token_is_required_from_the_host(compose) -> None:
    token = _env(_services(compose)["provider"])["HELIX_PROVIDER_ADMIN_TOKEN"]
    assert re.fullmatch(r"\$\{HELIX_ADMIN_TOKEN:\?[^}]+\}", token), token


def test_mounts_are_read_only_where_they_must_be(compose) -> None:
    services = _services(compose)
    pki_mounts = {m["target"]: m for m in _volume_mounts(services["pki"])}
    assert pki_mounts["/pki"]["source"] == "pki" and not pki_mounts["/pki"]["read_only"]
    for name in ("provider", "client"):
        mounts = {m["target"]: m for m in _volume_mounts(services[name])}
        assert mounts["/pki"]["source"] == "pki" and mounts["/pki"]["read_only"] is True, name
        assert mounts["/data"]["type"] == "volume" and not mounts["/data"]["read_only"], name
        ds = mounts["/datasets"]
        assert ds["type"] == "bind" and ds["read_only"] is True, name
        assert ds["source"] == "${HELIX_DATASETS:-../shared/datasets}", name
    provider_data = {m["target"]: m["source"] for m in _volume_mounts(services["provider"])}["/data"]
    client_data = {m["target"]: m["source"] for m in _volume_mounts(services["client"])}["/data"]
    assert provider_data != client_data, "provider and client must not share a data volume"


def test_client_talks_to_the_provider_over_https_trusting_the_ca(compose) -> None:
    env = _env(_services(compose)["client"])
    assert env["HELIX_CLIENT_PROVIDER_URL"] == f"https://provider:{EXPECTED_PORTS['provider']}"
    assert env["HELIX_CLIENT_PROVIDER_CA_CERT"] == "/pki/ca/ca.pem"


def test_pki_command_runs_and_matches_the_paths_the_daemons_use(compose, tmp_path: Path, capsys) -> None:
    """Run the pki service's actual command (with /pki redirected) and check every
    cert/key/CA path configured for the daemons is a file it produced."""
    services = _services(compose)
    pki = services["pki"]
    assert pki["entrypoint"] == ["python", "-m", "helix_pki"]
    args = [str(tmp_path) if a == "/pki" else a for a in pki["command"]]
    assert pki_main(args) == 0
    capsys.readouterr()

    def host_path(container_path: str) -> Path:
        assert container_path.startswith("/pki/"), container_path
        return tmp_path / container_path.removeprefix("/pki/")

    for name, (dockerfile, _) in IMAGES.items():
        prefix = f"HELIX_{name.upper()}_"
        env = {**_dockerfile_env(_dockerfile_instructions(REPO_ROOT / dockerfile)), **_env(services[name])}
        for var in (f"{prefix}TLS_CERT", f"{prefix}TLS_KEY"):
            assert host_path(env[var]).is_file(), f"{name}: {var}={env[var]} is not produced by the pki job"
        cert = x509.load_pem_x509_certificate(host_path(env[f"{prefix}TLS_CERT"]).read_bytes())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert name in sans.get_values_for_type(x509.DNSName), f"{name} cert lacks its compose service name"
    assert host_path(_env(services["client"])["HELIX_CLIENT_PROVIDER_CA_CERT"]).is_file()


# --------------------------------------------------------------------------- Dockerfiles


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_dockerfile_contract(name: str) -> None:
    dockerfile, command = IMAGES[name]
    instrs = _dockerfile_instructions(REPO_ROOT / dockerfile)
    kinds = [i for i, _ in instrs]

    assert instrs[0] == ("FROM", "python:3.11-slim")

    runs = [(idx, args) for idx, (i, args) in enumerate(instrs) if i == "RUN"]
    torch_idx = next(idx for idx, a in runs if "pip install" in a and "torch==" in a)
    torch_args = next(a for idx, a in runs if idx == torch_idx)
    assert "--index-url" in torch_args
    all_args = " ".join(a for i, a in instrs if i == "ARG")
    assert "TORCH_VERSION=2.13.0" in all_args and "download.pytorch.org/whl/cpu" in all_args, all_args
    app_idx = next(idx for idx, a in runs if re.search(r"pip install \.(\s|$)", a))
    assert torch_idx < app_idx, "CPU torch must be installed before the project"

    users = [a for i, a in instrs if i == "USER"]
    assert users and users[-1] not in {"root", "0"}, "image must run as non-root"
    assert kinds.index("USER") > app_idx

    assert _exec_form(dict(instrs)["ENTRYPOINT"]) + _exec_form(dict(instrs)["CMD"]) == [command, "serve"]
    assert dict(instrs)["EXPOSE"] == str(EXPECTED_PORTS[name])

    env = _dockerfile_env(instrs)
    prefix = f"HELIX_{name.upper()}_"
    assert env[f"{prefix}DATA_DIR"] == "/data"
    assert env[f"{prefix}DATASETS_DIR"] == "/datasets"
    assert env[f"{prefix}PORT"] == str(EXPECTED_PORTS[name])
    assert env[f"{prefix}TLS_CERT"].startswith("/pki/") and env[f"{prefix}TLS_KEY"].startswith("/pki/")
    assert "HEALTHCHECK" in kinds


def test_console_scripts_used_as_entrypoints_are_declared() -> None:
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for _, command in IMAGES.values():
        assert command in scripts, f"pyproject.toml has no [project.scripts] entry {command!r}"


def test_helix_pki_is_packaged() -> None:
    """The compose pki job runs `python -m helix_pki` from the installed wheel."""
    include = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"][
        "include"
    ]
    assert any(re.fullmatch(pat.replace("*", ".*"), "helix_pki") for pat in include), include


class _Healthz(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        code = self.status if self.path == "/healthz" else 404
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def https_healthz(tmp_path: Path) -> Iterator[tuple[int, type[_Healthz]]]:
    """A real HTTPS server on 127.0.0.1 serving /healthz with a helix_pki cert."""
    pki = ensure_demo_pki(tmp_path)
    handler = type("Handler", (_Healthz,), {"status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(pki.provider.cert), str(pki.provider.key))
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()  # the socket is already listening, so no readiness wait is needed
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_healthcheck_command_works_against_a_real_https_server(name: str, https_healthz) -> None:
    port, handler = https_healthz
    instrs = _dockerfile_instructions(REPO_ROOT / IMAGES[name][0])
    hc = dict(instrs)["HEALTHCHECK"]
    cmd = _exec_form(hc[hc.index("CMD") + 3 :].strip())
    assert cmd[:2] == ["python", "-c"]
    env = {**os.environ, f"HELIX_{name.upper()}_PORT": str(port)}
    argv = [sys.executable, *cmd[1:]]

    ok = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr

    handler.status = 503
    bad = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0


# --------------------------------------------------------------------------- real docker


def _docker_compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        res = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0


def test_docker_compose_config() -> None:
    if not _docker_compose_available():
        pytest.skip("`docker compose version` is not available (no docker CLI or no compose plugin)")
    env = {**os.environ, "HELIX_ADMIN_TOKEN": "test-token-not-secret"}
    res = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr

    env.pop("HELIX_ADMIN_TOKEN")
    res = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode != 0 and "HELIX_ADMIN_TOKEN" in res.stderr


# --------------------------------------------------------------------------- profile `scale`


def _depends(service: dict[str, Any]) -> dict[str, str]:
    return {name: spec["condition"] for name, spec in (service.get("depends_on") or {}).items()}


def test_scale_replicas_share_one_database_and_one_data_volume(compose) -> None:
    """Replicas differ only in their id: same image, database, data volume, certificate and token."""
    services = _services(compose)
    envs = [_env(services[n]) for n in SCALE_REPLICAS]
    assert [e.pop("HELIX_PROVIDER_REPLICA_ID") for e in envs] == list(SCALE_REPLICAS), "replica ids must differ"
    assert all(e == envs[0] for e in envs)
    url = envs[0]["HELIX_PROVIDER_DATABASE_URL"]
    assert "postgresql+psycopg://" in url and "@postgres:5432/" in url and "HELIX_SCALE_DATABASE_URL" in url
    assert envs[0]["HELIX_PROVIDER_DATA_DIR"] == "/data"
    for name in SCALE_REPLICAS:
        svc = services[name]
        assert svc["image"] == "helix-provider:local" and "build" not in svc
        mounts = {m["target"]: m for m in _volume_mounts(svc)}
        assert mounts["/data"]["source"] == "provider-shared" and not mounts["/data"]["read_only"]
        assert mounts["/pki"]["read_only"] is True
        assert _depends(svc) == {"pki": "service_completed_successfully", "postgres": "service_healthy"}
    default_data = {m["target"]: m["source"] for m in _volume_mounts(services["provider"])}["/data"]
    assert default_data != "provider-shared", "the single provider must not share the replicas' data"
    assert services["postgres"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]


def test_the_balancer_fronts_every_replica_with_the_generated_configuration(compose) -> None:
    """deploy/haproxy.cfg is what `python -m provider_server.balancer` prints for the compose replicas,
    names each replica service, and is the file the balancer mounts."""
    from provider_server.balancer import main as render

    services = _services(compose)
    balancer = services["balancer"]
    assert _depends(balancer) == {n: "service_healthy" for n in SCALE_REPLICAS}
    mounts = {m["target"]: m for m in _volume_mounts(balancer)}
    config_mount = mounts["/usr/local/etc/haproxy/haproxy.cfg"]
    assert config_mount["type"] == "bind" and config_mount["read_only"] is True
    config = (COMPOSE_FILE.parent / config_mount["source"]).resolve()
    argv = ["--certificate", "/tmp/provider-with-key.pem", "--ca-file", "/pki/ca/ca.pem", "--verify-host", "provider"]
    argv += [a for n in SCALE_REPLICAS for a in ("--replica", f"{n}={n}:8443")] + ["--dns-resolver", "127.0.0.11:53"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        render(argv)
    assert config.read_text() == out.getvalue(), "deploy/haproxy.cfg differs from the generator's output"
    command = " ".join(balancer["command"])
    assert "/tmp/provider-with-key.pem" in command and "/usr/local/etc/haproxy/haproxy.cfg" in command
    assert mounts["/pki"]["read_only"] is True and balancer["user"] == "10001:10001"
    assert _port_targets(balancer) == {8443}


def test_the_generated_balancer_configuration_is_valid_haproxy(tmp_path: Path) -> None:
    """`haproxy -c` accepts deploy/haproxy.cfg (its certificate paths pointed at a real PKI)."""
    binary = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").is_file() else None)
    if binary is None:
        pytest.skip("haproxy is not installed (`make install` installs it)")
    pki = ensure_demo_pki(tmp_path / "pki")
    pem = tmp_path / "provider-with-key.pem"
    pem.write_bytes(pki.provider.cert.read_bytes() + pki.provider.key.read_bytes())
    text = (REPO_ROOT / "deploy" / "haproxy.cfg").read_text()
    text = text.replace("/tmp/provider-with-key.pem", str(pem)).replace("/pki/ca/ca.pem", str(pki.ca.cert))
    (tmp_path / "haproxy.cfg").write_text(text)
    res = subprocess.run([binary, "-c", "-f", str(tmp_path / "haproxy.cfg")], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    broken = text.replace("balance roundrobin", "balance no-such-algorithm")
    (tmp_path / "broken.cfg").write_text(broken)
    assert subprocess.run([binary, "-c", "-f", str(tmp_path / "broken.cfg")], capture_output=True).returncode != 0


def test_the_scale_agent_talks_to_the_balancer_with_its_own_key(compose, tmp_path: Path, capsys) -> None:
    """The scale profile's agent reaches the replicas only through the balancer, trusting the CA, with the
    key its own tenant job writes; the pki job issues the names the balancer and replicas are reached by."""
    services = _services(compose)
    client, job = _env(services["scale-client"]), services["scale-tenant"]
    assert client["HELIX_CLIENT_PROVIDER_URL"] == "https://balancer:8443"
    assert client["HELIX_CLIENT_PROVIDER_CA_CERT"] == "/pki/ca/ca.pem"
    assert _env(job)["HELIX_PROVIDER_URL"] == "https://balancer:8443"
    key_file = job["command"][job["command"].index("--api-key-file") + 1]
    assert client["HELIX_CLIENT_PROVIDER_API_KEY_FILE"] == key_file
    secrets = {m["target"]: m["source"] for m in _volume_mounts(job)}[str(Path(key_file).parent)]
    assert secrets != {m["target"]: m["source"] for m in _volume_mounts(services["tenant"])}["/secrets"]
    assert _depends(services["scale-client"]) == {
        "balancer": "service_started",
        "scale-tenant": "service_completed_successfully",
    }
    args = [str(tmp_path) if a == "/pki" else a for a in services["pki"]["command"]]
    assert pki_main(args) == 0
    capsys.readouterr()
    cert = x509.load_pem_x509_certificate((tmp_path / "provider" / "provider.pem").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = set(sans.get_values_for_type(x509.DNSName))
    assert {"provider", "balancer", *SCALE_REPLICAS} <= names
