"""Local certificate authority for the HELIX demo and test-suite.

Why this exists: the provider server and the client agent talk HTTPS to each
other (the client agent also serves its own REST API over HTTPS), and the demo
must run on machines with no internet access and no public DNS name, so no
public CA can issue the certificates. Instead a throw-away local CA is created
once, the daemons get server certificates signed by it, and clients pin trust
to that CA only (never to the system store, and never ``verify=False``).

Everything here is idempotent so that tests, ``helix-demo`` and the compose
``pki`` one-shot service can all call it unconditionally on every start.

Public API::

    ensure_ca(dir) -> CAPaths
    issue_server_cert(ca, out_dir, name, hostnames=DEFAULT_HOSTNAMES) -> ServerCertPaths
    ensure_demo_pki(base_dir, hostnames=DEFAULT_HOSTNAMES) -> DemoPKI

CLI: ``python -m helix_pki --dir DIR [--host H ...]``.
"""

from ._pki import (
    CA_VALIDITY,
    DEFAULT_HOSTNAMES,
    LEAF_VALIDITY,
    RENEW_BEFORE,
    CAPaths,
    DemoPKI,
    PKIError,
    ServerCertPaths,
    ensure_ca,
    ensure_demo_pki,
    issue_server_cert,
)

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
