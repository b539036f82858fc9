"""``python -m helix_pki --dir DIR [--host H ...]``: create/reuse the demo PKI.

Used by the compose ``pki`` one-shot service and by people running the daemons
by hand. Output is one ``key=path`` line per file (or JSON with ``--json``) so
shell scripts can consume it without parsing prose.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ._pki import DEFAULT_HOSTNAMES, PKIError, ensure_demo_pki


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m helix_pki",
        description="Create (or reuse) the HELIX demo CA and the provider/client server certificates.",
    )
    p.add_argument(
        "--dir", required=True, type=Path, help="base directory (ca/, provider/, client/ are created under it)"
    )
    p.add_argument(
        "--host",
        action="append",
        dest="hosts",
        metavar="H",
        help=f"hostname or IP for both certificates (repeatable; default: {' '.join(DEFAULT_HOSTNAMES)})",
    )
    p.add_argument(
        "--provider-host", action="append", default=[], metavar="H", help="extra name for the provider certificate only"
    )
    p.add_argument(
        "--client-host",
        action="append",
        default=[],
        metavar="H",
        help="extra name for the client-agent certificate only",
    )
    p.add_argument("--json", action="store_true", help="print the paths as a JSON object")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns a process exit code (0 ok, 1 unusable existing PKI, 2 usage)."""
    args = _parser().parse_args(argv)
    hosts = tuple(args.hosts) if args.hosts else DEFAULT_HOSTNAMES
    try:
        pki = ensure_demo_pki(
            args.dir,
            hosts,
            provider_hostnames=args.provider_host,
            client_hostnames=args.client_host,
        )
    except PKIError as exc:
        print(f"helix_pki: error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"helix_pki: error: {exc}", file=sys.stderr)
        return 2
    paths = {
        "ca_cert": pki.ca.cert,
        "ca_key": pki.ca.key,
        "provider_cert": pki.provider.cert,
        "provider_key": pki.provider.key,
        "client_cert": pki.client.cert,
        "client_key": pki.client.key,
    }
    if args.json:
        print(json.dumps({k: str(v) for k, v in paths.items()}, indent=2))
    else:
        for k, v in paths.items():
            print(f"{k}={v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
