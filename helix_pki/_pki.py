"""Implementation of the HELIX demo PKI (see the package docstring for the why).

Design notes
------------
* Every write is atomic (temp file in the same directory + ``os.replace``) so that
  a crash, or two processes racing on first start, can never leave a half-written
  PEM behind that a server would then fail to load.
* Private keys are created with mode 0600 from the first byte (``mkstemp``), not
  chmod-ed after the fact, so there is no window in which they are world-readable.
* Leaf certificates are disposable: anything wrong with them (missing, corrupt,
  expiring, wrong SANs, key mismatch, signed by another CA) is repaired by
  re-issuing. The CA is *not* disposable — other parties may already trust it —
  so a CA that exists but is unusable raises :class:`PKIError` instead of being
  silently replaced.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CAPaths",
    "ServerCertPaths",
    "DemoPKI",
    "PKIError",
    "DEFAULT_HOSTNAMES",
    "CA_VALIDITY",
    "LEAF_VALIDITY",
    "RENEW_BEFORE",
    "ensure_ca",
    "issue_server_cert",
    "ensure_demo_pki",
]

#: Names every demo server certificate carries so that local tools (curl, the
#: test-suite, a browser on the host) can reach the servers over loopback.
DEFAULT_HOSTNAMES: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")

#: The CA outlives many demo runs; re-creating it would invalidate every
#: trust store the user has configured, so it is long-lived.
CA_VALIDITY = _dt.timedelta(days=3650)

#: Leaves are cheap to re-issue, so they stay within the 398-day ceiling that
#: browsers enforce; a user opening the client agent's REST API in a browser
#: (after importing the CA) then does not get a validity error.
LEAF_VALIDITY = _dt.timedelta(days=397)

#: A leaf that expires within this window is re-issued so a long-running demo
#: does not die mid-session because of an expiring certificate.
RENEW_BEFORE = _dt.timedelta(days=7)

#: Certificates are back-dated a little so that a container whose clock lags the
#: host's by a few seconds does not reject a freshly issued "not yet valid" cert.
_CLOCK_SKEW = _dt.timedelta(minutes=5)

_CA_CERT_NAME = "ca.pem"
_CA_KEY_NAME = "ca-key.pem"

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: An iPAddress general name decodes to a network when it carries a mask (name constraints); a
#: certificate's SAN read back may in principle hold one, which then simply fails to match.
_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class PKIError(RuntimeError):
    """Raised when existing PKI material is unusable and must not be overwritten."""


@dataclass(frozen=True)
class CAPaths:
    """Locations of the CA certificate (to distribute) and its private key (to keep)."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class ServerCertPaths:
    """Locations of a server's leaf certificate and its private key (mode 0600)."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class DemoPKI:
    """Everything the demo needs: the CA plus one server cert per HTTPS daemon."""

    ca: CAPaths
    provider: ServerCertPaths
    client: ServerCertPaths


# --------------------------------------------------------------------------- helpers


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` atomically with permissions ``mode``.

    ``mkstemp`` creates the file 0600, so a private key is never readable by
    others even transiently; the final mode is applied before the rename.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: universally supported by TLS stacks (OpenSSL, browsers, Go) and far
    # cheaper than RSA to generate, which keeps test fixtures fast.
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    # Unencrypted PKCS#8: uvicorn/ssl load it without a passphrase prompt;
    # protection comes from the 0600 file mode and the read-only volume.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey | None:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    return key if isinstance(key, ec.EllipticCurvePrivateKey) else None


def _load_cert(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


def _same_public_key(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bool:
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert.public_key().public_bytes(*fmt) == key.public_key().public_bytes(*fmt)


def _tighten_key_mode(path: Path) -> None:
    """Re-apply 0600 to a reused key (e.g. after a careless ``cp``)."""
    if path.stat().st_mode & 0o777 != 0o600:
        os.chmod(path, 0o600)


def _parse_hostnames(hostnames: Sequence[str]) -> tuple[frozenset[str], frozenset[_IPAddress]]:
    """Split names into DNS names and IP addresses.

    IPs must be encoded as ``iPAddress`` SANs: TLS clients (Python's ``ssl``
    included) never match an IP literal against a ``dNSName`` entry.
    """
    if isinstance(hostnames, str):  # a bare str is a Sequence[str] too: refuse it
        raise TypeError("hostnames must be a sequence of names, not a single string")
    dns: set[str] = set()
    ips: set[_IPAddress] = set()
    for raw in hostnames:
        name = raw.strip()
        if not name:
            raise ValueError("empty hostname")
        try:
            ips.add(ipaddress.ip_address(name.strip("[]")))
        except ValueError:
            if any(c.isspace() or c in "/:@" for c in name):
                raise ValueError(f"not a valid DNS name or IP address: {raw!r}") from None
            # DNS names are case-insensitive; normalising keeps the SAN
            # comparison (and therefore idempotency) stable.
            dns.add(name.lower().rstrip("."))
    if not dns and not ips:
        raise ValueError("at least one hostname is required")
    return frozenset(dns), frozenset(ips)


def _cert_sans(cert: x509.Certificate) -> tuple[frozenset[str], frozenset[_IPAddress | _IPNetwork]]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return frozenset(), frozenset()
    dns = frozenset(n.lower().rstrip(".") for n in ext.get_values_for_type(x509.DNSName))
    return dns, frozenset(ext.get_values_for_type(x509.IPAddress))


# --------------------------------------------------------------------------- CA


def ensure_ca(dir: Path) -> CAPaths:  # noqa: A002 - name fixed by the public API
    """Return the demo CA in ``dir``, creating it on first use.

    Idempotent so that every entry point (tests, ``helix-demo``, the compose
    ``pki`` one-shot) can simply call it: existing files are reused byte for
    byte, because re-creating the CA would invalidate every certificate and
    trust store built on it. Creates ``ca.pem`` (0644) and ``ca-key.pem`` (0600).

    Raises:
        PKIError: if ``ca.pem`` exists but is unreadable, is not a CA, has no
            matching key, or has expired. Such a CA is never overwritten
            automatically; delete the directory to start over.
    """
    dir = Path(dir)
    paths = CAPaths(cert=dir / _CA_CERT_NAME, key=dir / _CA_KEY_NAME)

    if paths.cert.exists():
        cert = _load_cert(paths.cert)
        if cert is None:
            raise PKIError(f"{paths.cert} is not a PEM certificate; delete {dir} to recreate the CA")
        key = _load_key(paths.key)
        if key is None or not _same_public_key(cert, key):
            raise PKIError(f"{paths.key} is missing or does not match {paths.cert}; delete {dir} to recreate the CA")
        try:
            bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            bc = None
        if bc is None or not bc.ca:
            raise PKIError(f"{paths.cert} is not a CA certificate")
        if cert.not_valid_after_utc <= _now():
            raise PKIError(
                f"CA {paths.cert} expired on {cert.not_valid_after_utc:%Y-%m-%d}; delete {dir} to recreate it"
            )
        _tighten_key_mode(paths.key)
        return paths

    # No certificate: (re)create. A stray key without a certificate (crash
    # between the two writes; the key is written first) is simply replaced.
    key = _new_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "HELIX demo"),
            x509.NameAttribute(NameOID.COMMON_NAME, "HELIX demo local CA"),
        ]
    )
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + CA_VALIDITY)
        # path_length=0: this CA only ever signs leaves, never sub-CAs.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        # SKI/AKI are required by strict verifiers (OpenSSL's X509_STRICT,
        # Python >= 3.13's default ssl context, cryptography's verifier).
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    _atomic_write(paths.key, _key_pem(key), 0o600)
    _atomic_write(paths.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return paths


# --------------------------------------------------------------------------- leaves


def _leaf_is_current(
    cert_path: Path,
    key_path: Path,
    ca_cert: x509.Certificate,
    want_dns: frozenset[str],
    want_ips: frozenset[_IPAddress],
    renew_before: _dt.timedelta,
) -> bool:
    """True if the existing leaf can be reused unchanged."""
    cert = _load_cert(cert_path)
    key = _load_key(key_path)
    if cert is None or key is None or not _same_public_key(cert, key):
        return False
    if cert.not_valid_after_utc - renew_before <= _now():
        return False
    if _cert_sans(cert) != (want_dns, want_ips):
        return False
    # A CA that was re-created (directory wiped) must not leave behind leaves
    # that clients trusting the *new* CA would reject.
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def issue_server_cert(
    ca: CAPaths,
    out_dir: Path,
    name: str,
    hostnames: Sequence[str] = DEFAULT_HOSTNAMES,
    *,
    validity: _dt.timedelta = LEAF_VALIDITY,
    renew_before: _dt.timedelta = RENEW_BEFORE,
) -> ServerCertPaths:
    """Return a TLS server certificate for ``hostnames``, issuing it if needed.

    Writes ``<out_dir>/<name>.pem`` (leaf only, 0644) and
    ``<out_dir>/<name>-key.pem`` (0600). Idempotent: an existing pair is reused
    untouched unless it is missing or unreadable, the key does not match, it
    expires within ``renew_before``, its SANs differ from ``hostnames``, or it
    was not signed by ``ca`` — then a fresh key and certificate are issued.

    IP literals in ``hostnames`` become ``iPAddress`` SANs and everything else
    ``dNSName`` SANs, because TLS clients only match IPs against the former.
    ``validity``/``renew_before`` are exposed mainly so tests can exercise
    renewal without manipulating clocks.
    """
    if not name or any(c in name for c in "/\\\0") or name.startswith("."):
        raise ValueError(f"invalid certificate name: {name!r}")
    want_dns, want_ips = _parse_hostnames(hostnames)
    out_dir = Path(out_dir)
    paths = ServerCertPaths(cert=out_dir / f"{name}.pem", key=out_dir / f"{name}-key.pem")

    ca_cert = _load_cert(ca.cert)
    ca_key = _load_key(ca.key)
    if ca_cert is None or ca_key is None or not _same_public_key(ca_cert, ca_key):
        raise PKIError(f"unusable CA at {ca.cert} / {ca.key}; call ensure_ca() first")

    if _leaf_is_current(paths.cert, paths.key, ca_cert, want_dns, want_ips, renew_before):
        _tighten_key_mode(paths.key)
        return paths

    key = _new_key()
    now = _now()
    san: list[x509.GeneralName] = [x509.DNSName(d) for d in sorted(want_dns)]
    san += [x509.IPAddress(ip) for ip in sorted(want_ips, key=lambda a: (a.version, int(a)))]
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "HELIX demo"),
                    x509.NameAttribute(NameOID.COMMON_NAME, name),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        # Never outlive the CA: a leaf valid past its issuer fails verification.
        .not_valid_after(min(now + validity, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,  # ECDHE-ECDSA handshakes sign with the leaf key
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        # Hostnames live in the SAN (CN matching is obsolete); critical=False is
        # correct because the subject is non-empty.
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    # Key first: if we crash in between, the old cert no longer matches the new
    # key and the next call re-issues, instead of serving a mismatched pair.
    _atomic_write(paths.key, _key_pem(key), 0o600)
    _atomic_write(paths.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return paths


def ensure_demo_pki(
    base_dir: Path,
    hostnames: Sequence[str] = DEFAULT_HOSTNAMES,
    *,
    provider_hostnames: Sequence[str] = (),
    client_hostnames: Sequence[str] = (),
) -> DemoPKI:
    """Create (or reuse) the CA and both daemons' server certificates.

    Layout: ``base_dir/ca/{ca,ca-key}.pem``, ``base_dir/provider/provider{,-key}.pem``
    and ``base_dir/client/client{,-key}.pem``. The client agent gets a server
    certificate too because it serves its own REST API over HTTPS.

    ``hostnames`` go into both certificates; ``provider_hostnames`` /
    ``client_hostnames`` are extra names for just one of them (e.g. the compose
    service names ``provider`` and ``client``), so neither certificate claims
    the other daemon's name.
    """
    base_dir = Path(base_dir)
    ca = ensure_ca(base_dir / "ca")
    provider = issue_server_cert(ca, base_dir / "provider", "provider", [*hostnames, *provider_hostnames])
    client = issue_server_cert(ca, base_dir / "client", "client", [*hostnames, *client_hostnames])
    return DemoPKI(ca=ca, provider=provider, client=client)
