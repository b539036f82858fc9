"""Tests for helix_pki: real certificates, real verification, a real TLS handshake.

Nothing is mocked: the point of the package is that Python's ``ssl`` (what
uvicorn and httpx use) accepts the certificates when trusting only the demo CA
and rejects them otherwise.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import queue
import socket
import ssl
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from helix_pki import (
    CAPaths,
    DemoPKI,
    PKIError,
    ServerCertPaths,
    ensure_ca,
    ensure_demo_pki,
    issue_server_cert,
)

REPO_ROOT = Path(__file__).resolve().parents[3]


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _snapshot(*paths: Path) -> dict[Path, tuple[bytes, int, int]]:
    """Bytes, mtime (ns) and inode: an atomic rewrite changes the inode even if the bytes matched."""
    out = {}
    for p in paths:
        st = p.stat()
        out[p] = (p.read_bytes(), st.st_mtime_ns, st.st_ino)
    return out


def _sans(cert: x509.Certificate) -> tuple[set[str], set[ipaddress._BaseAddress]]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(ext.get_values_for_type(x509.DNSName)), set(ext.get_values_for_type(x509.IPAddress))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoPKI:
    return ensure_demo_pki(tmp_path_factory.mktemp("pki"), provider_hostnames=["provider"])


# --------------------------------------------------------------------------- CA


def test_ca_certificate_properties(tmp_path: Path) -> None:
    ca = ensure_ca(tmp_path / "ca")
    assert ca == CAPaths(cert=tmp_path / "ca" / "ca.pem", key=tmp_path / "ca" / "ca-key.pem")
    cert = _load(ca.cert)

    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)  # self-signed, signature valid

    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca is True

    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign

    pub = cert.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey) and isinstance(pub.curve, ec.SECP256R1)

    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=3649) <= lifetime <= dt.timedelta(days=3651)

    assert _mode(ca.key) == 0o600
    assert _mode(ca.cert) == 0o644


def test_ca_is_reused_not_rewritten(tmp_path: Path) -> None:
    first = ensure_ca(tmp_path)
    before = _snapshot(first.cert, first.key)
    second = ensure_ca(tmp_path)
    assert second == first
    assert _snapshot(second.cert, second.key) == before


def test_ca_with_missing_key_is_refused_not_replaced(tmp_path: Path) -> None:
    ca = ensure_ca(tmp_path)
    original = ca.cert.read_bytes()
    ca.key.unlink()
    with pytest.raises(PKIError, match="does not match|missing"):
        ensure_ca(tmp_path)
    assert ca.cert.read_bytes() == original  # a trusted anchor is never silently swapped


def test_ca_corrupt_cert_is_refused(tmp_path: Path) -> None:
    ca = ensure_ca(tmp_path)
    ca.cert.write_text("not a certificate")
    with pytest.raises(PKIError, match="not a PEM certificate"):
        ensure_ca(tmp_path)


def test_reused_key_permissions_are_tightened(tmp_path: Path) -> None:
    ca = ensure_ca(tmp_path / "ca")
    leaf = issue_server_cert(ca, tmp_path / "srv", "srv")
    os.chmod(ca.key, 0o644)
    os.chmod(leaf.key, 0o640)
    ensure_ca(tmp_path / "ca")
    issue_server_cert(ca, tmp_path / "srv", "srv")
    assert _mode(ca.key) == 0o600
    assert _mode(leaf.key) == 0o600


# --------------------------------------------------------------------------- leaves


def test_demo_layout_and_permissions(demo: DemoPKI) -> None:
    base = demo.ca.cert.parent.parent
    assert demo.ca == CAPaths(base / "ca" / "ca.pem", base / "ca" / "ca-key.pem")
    assert demo.provider == ServerCertPaths(base / "provider" / "provider.pem", base / "provider" / "provider-key.pem")
    assert demo.client == ServerCertPaths(base / "client" / "client.pem", base / "client" / "client-key.pem")
    for key in (demo.ca.key, demo.provider.key, demo.client.key):
        assert _mode(key) == 0o600, key
    for cert in (demo.ca.cert, demo.provider.cert, demo.client.cert):
        assert _mode(cert) == 0o644, cert


@pytest.mark.parametrize("which", ["provider", "client"])
def test_leaf_chains_to_ca_and_is_a_server_cert(demo: DemoPKI, which: str) -> None:
    ca = _load(demo.ca.cert)
    leaf = _load(getattr(demo, which).cert)

    leaf.verify_directly_issued_by(ca)

    bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca is False
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert leaf.not_valid_after_utc <= ca.not_valid_after_utc

    # Full RFC 5280 / CABF-style path validation, as a strict TLS client would do it.
    store = Store([ca])
    for name in (x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))):
        verifier = PolicyBuilder().store(store).build_server_verifier(name)
        chain = verifier.verify(leaf, [])
        assert chain[-1] == ca

    # Trusting some other CA must fail.
    other = _load(ensure_ca(demo.ca.cert.parent.parent / f"other-{which}").cert)
    verifier = PolicyBuilder().store(Store([other])).build_server_verifier(x509.DNSName("localhost"))
    with pytest.raises(VerificationError):
        verifier.verify(leaf, [])


def test_sans_are_correctly_typed(demo: DemoPKI) -> None:
    dns, ips = _sans(_load(demo.provider.cert))
    assert dns == {"localhost", "provider"}
    assert ips == {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}

    # Per-daemon extra names stay on their own certificate.
    client_dns, client_ips = _sans(_load(demo.client.cert))
    assert client_dns == {"localhost"}
    assert client_ips == ips


def test_demo_pki_is_idempotent(tmp_path: Path) -> None:
    first = ensure_demo_pki(tmp_path)
    files = [first.ca.cert, first.ca.key, first.provider.cert, first.provider.key, first.client.cert, first.client.key]
    before = _snapshot(*files)
    second = ensure_demo_pki(tmp_path)
    assert second == first
    assert _snapshot(*files) == before


def test_reissued_when_sans_change(tmp_path: Path) -> None:
    ca = ensure_ca(tmp_path / "ca")
    leaf = issue_server_cert(ca, tmp_path / "srv", "srv", ["localhost"])
    old = leaf.cert.read_bytes()
    # Same set, different order/case: not a change.
    issue_server_cert(ca, tmp_path / "srv", "srv", ["LOCALHOST"])
    assert leaf.cert.read_bytes() == old

    issue_server_cert(ca, tmp_path / "srv", "srv", ["localhost", "10.0.0.7"])
    dns, ips = _sans(_load(leaf.cert))
    assert dns == {"localhost"} and ips == {ipaddress.ip_address("10.0.0.7")}


def test_reissued_when_expiring_within_renewal_window(tmp_path: Path) -> None:
    ca = ensure_ca(tmp_path / "ca")
    leaf = issue_server_cert(ca, tmp_path / "srv", "srv", validity=dt.timedelta(days=3))
    short = _load(leaf.cert)
    assert short.not_valid_after_utc - dt.datetime.now(dt.UTC) < dt.timedelta(days=7)

    issue_server_cert(ca, tmp_path / "srv", "srv")  # default 7-day renewal window
    renewed = _load(leaf.cert)
    assert renewed.serial_number != short.serial_number
    assert renewed.not_valid_after_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=300)


def test_reissued_when_missing_or_key_mismatch(tmp_path: Path) -> None:
    ca = ensure_ca(tmp_path / "ca")
    leaf = issue_server_cert(ca, tmp_path / "srv", "srv")
    serial = _load(leaf.cert).serial_number

    leaf.key.unlink()
    issue_server_cert(ca, tmp_path / "srv", "srv")
    assert leaf.key.exists() and _load(leaf.cert).serial_number != serial
    serial = _load(leaf.cert).serial_number

    other = issue_server_cert(ca, tmp_path / "other", "other")
    leaf.key.write_bytes(other.key.read_bytes())  # mismatched pair
    issue_server_cert(ca, tmp_path / "srv", "srv")
    assert _load(leaf.cert).serial_number != serial
    assert _mode(leaf.key) == 0o600


def test_reissued_when_ca_changes(tmp_path: Path) -> None:
    ca1 = ensure_ca(tmp_path / "ca1")
    leaf = issue_server_cert(ca1, tmp_path / "srv", "srv")
    ca2 = ensure_ca(tmp_path / "ca2")
    issue_server_cert(ca2, tmp_path / "srv", "srv")
    _load(leaf.cert).verify_directly_issued_by(_load(ca2.cert))


def test_bad_inputs_rejected(tmp_path: Path) -> None:
    ca = ensure_ca(tmp_path / "ca")
    with pytest.raises(TypeError):
        issue_server_cert(ca, tmp_path, "srv", "localhost")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        issue_server_cert(ca, tmp_path, "srv", [])
    with pytest.raises(ValueError):
        issue_server_cert(ca, tmp_path, "../evil")
    with pytest.raises(PKIError):
        issue_server_cert(CAPaths(tmp_path / "nope.pem", tmp_path / "nope-key.pem"), tmp_path, "srv")


# --------------------------------------------------------------------------- real TLS


class _TLSServer:
    """One-thread TLS server on 127.0.0.1:<random>; reports each handshake's outcome.

    Synchronisation is by events and a queue, never by sleeping: the listening
    socket is bound before ``ready`` is set, and each accepted connection puts
    either "ok" or the server-side exception on ``results``.
    """

    def __init__(self, cert: ServerCertPaths) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(cert.cert), str(cert.key))
        self.sock = socket.create_server(("127.0.0.1", 0))
        # The accept timeout only bounds how long shutdown takes to notice `stop`.
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.results: queue.Queue[object] = queue.Queue()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.ready.set()
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            conn.settimeout(10)
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"helix-ok\n")
                    self.results.put("ok")
            except (ssl.SSLError, OSError) as exc:
                self.results.put(exc)
            finally:
                conn.close()

    def __enter__(self) -> _TLSServer:
        self.thread.start()
        assert self.ready.wait(10), "TLS server thread did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)
        self.sock.close()


@pytest.fixture
def tls_server(demo: DemoPKI) -> Iterator[_TLSServer]:
    with _TLSServer(demo.provider) as srv:
        yield srv


def _connect(port: int, ctx: ssl.SSLContext, server_hostname: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
            peer = tls.getpeercert()
            assert peer, "verified connection must expose the peer certificate"
            return tls.recv(64)


@pytest.mark.parametrize("server_hostname", ["localhost", "provider", "127.0.0.1"])
def test_tls_handshake_succeeds_when_trusting_only_the_ca(
    demo: DemoPKI, tls_server: _TLSServer, server_hostname: str
) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verify_mode=CERT_REQUIRED, check_hostname=True
    ctx.load_verify_locations(cafile=str(demo.ca.cert))  # and nothing else: no system store
    # Strict RFC 5280 checks are the default from Python 3.13 on; pass them now.
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    assert _connect(tls_server.port, ctx, server_hostname) == b"helix-ok\n"
    assert tls_server.results.get(timeout=10) == "ok"


def test_tls_handshake_fails_with_default_trust_store(tls_server: _TLSServer) -> None:
    ctx = ssl.create_default_context()  # system CAs only; the demo CA is not among them
    with pytest.raises(ssl.SSLCertVerificationError):
        _connect(tls_server.port, ctx, "localhost")
    assert isinstance(tls_server.results.get(timeout=10), (ssl.SSLError, OSError))


def test_tls_handshake_fails_for_name_not_in_san(demo: DemoPKI, tls_server: _TLSServer) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(demo.ca.cert))
    with pytest.raises(ssl.SSLCertVerificationError, match="(?i)hostname|match"):
        _connect(tls_server.port, ctx, "client")  # the client's name is not on the provider's cert
    assert isinstance(tls_server.results.get(timeout=10), (ssl.SSLError, OSError))


# --------------------------------------------------------------------------- CLI


def test_cli_creates_and_prints_paths(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "helix_pki",
        "--dir",
        str(tmp_path),
        "--host",
        "localhost",
        "--provider-host",
        "provider",
        "--json",
    ]
    out = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True)
    paths = json.loads(out.stdout)
    assert paths["ca_cert"] == str(tmp_path / "ca" / "ca.pem")
    assert paths["provider_key"] == str(tmp_path / "provider" / "provider-key.pem")
    for p in paths.values():
        assert Path(p).is_file()
    dns, ips = _sans(_load(Path(paths["provider_cert"])))
    assert dns == {"localhost", "provider"} and ips == set()

    # Plain output: key=path lines; a second run reuses everything.
    before = Path(paths["provider_cert"]).read_bytes()
    out2 = subprocess.run(cmd[:-1], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True)
    lines = dict(line.split("=", 1) for line in out2.stdout.splitlines())
    assert lines == paths
    assert Path(paths["provider_cert"]).read_bytes() == before


def test_cli_reports_unusable_ca(tmp_path: Path) -> None:
    (tmp_path / "ca").mkdir()
    (tmp_path / "ca" / "ca.pem").write_text("garbage")
    out = subprocess.run(
        [sys.executable, "-m", "helix_pki", "--dir", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1
    assert "helix_pki: error" in out.stderr
