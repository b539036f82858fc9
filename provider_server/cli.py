"""`helix-provider`: run the provider server, or administer one over HTTPS."""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
from pathlib import Path

import httpx

from helix_web.private_files import write_private
from helix_web.secrets import cli_token


def _admin_client(args: argparse.Namespace) -> httpx.Client:
    """The admin token comes from HELIX_PROVIDER_ADMIN_TOKEN or a file (--token-file or
    HELIX_PROVIDER_ADMIN_TOKEN_FILE), never from the command line, where every local user can read it."""
    token = cli_token("HELIX_PROVIDER_ADMIN_TOKEN", args.token_file, "admin token")
    if not token:
        raise SystemExit("set HELIX_PROVIDER_ADMIN_TOKEN or --token-file (HELIX_PROVIDER_ADMIN_TOKEN_FILE)")
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(args.ca)) if args.ca else True
    return httpx.Client(base_url=args.url, headers={"Authorization": f"Bearer {token}"}, verify=verify, timeout=600)


def _print(resp: httpx.Response) -> None:
    if resp.status_code >= 400:
        print(resp.text, file=sys.stderr)
        raise SystemExit(1)
    if resp.content:
        print(json.dumps(resp.json(), indent=2))


def _create_tenant(client: httpx.Client, name: str, key_file: Path | None) -> None:
    """A tenant named `name` (created, or the existing one) and a new API key for it."""
    if key_file is not None and key_file.is_file() and key_file.read_text(encoding="utf-8").strip():
        print(f"{key_file} already holds an API key; nothing to do", file=sys.stderr)
        return
    resp = client.post("/v1/admin/tenants", json={"name": name})
    if resp.status_code == 409:  # the name is taken: add a key to that tenant
        listing = client.get("/v1/admin/tenants")
        tenant_id = next((t["tenant_id"] for t in listing.json() if t["name"] == name), None)
        if listing.status_code != 200 or tenant_id is None:
            print(resp.text, file=sys.stderr)
            raise SystemExit(1)
    elif resp.status_code == 201:
        tenant_id = resp.json()["tenant_id"]
    else:
        print(resp.text, file=sys.stderr)
        raise SystemExit(1)
    created = client.post(f"/v1/admin/tenants/{tenant_id}/api-keys")
    if created.status_code != 201:
        print(created.text, file=sys.stderr)
        raise SystemExit(1)
    if key_file is None:
        print(json.dumps(created.json(), indent=2))
        return
    key_file.parent.mkdir(parents=True, exist_ok=True)
    write_private(key_file, (created.json()["api_key"] + "\n").encode())
    print(f"tenant {tenant_id}: API key written to {key_file}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="helix-provider", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve", help="run the provider server (settings from HELIX_PROVIDER_* variables)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    for name, helptext in (
        ("create-head", "train a head on a dataset folder"),
        ("add-corpus", "add a public corpus"),
        ("list-heads", "list heads"),
        ("list-clients", "list registered clients and keys"),
        ("delete-head", "delete a head"),
        ("list-tenants", "list tenants"),
        ("create-tenant", "create a tenant and an API key for it (the key is shown once)"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--url", default=os.environ.get("HELIX_PROVIDER_URL", "https://127.0.0.1:8443"))
        p.add_argument("--ca", type=Path, default=os.environ.get("HELIX_PROVIDER_CA_CERT"))
        p.add_argument(
            "--token-file",
            default=os.environ.get("HELIX_PROVIDER_ADMIN_TOKEN_FILE"),
            help="file holding the admin token (or set HELIX_PROVIDER_ADMIN_TOKEN)",
        )
        if name == "create-head":
            p.add_argument("--name", required=True)
            p.add_argument("--dataset", required=True)
            p.add_argument("--split", default="train")
            p.add_argument("--max-examples", type=int)
            p.add_argument(
                "--map-holder",
                choices=("client", "provider", "either"),
                default="client",
                help="who may hold the alignment map: the client (default), the provider (the head answers "
                "only through maps folded into it), or either, as each alignment asks",
            )
        if name == "add-corpus":
            p.add_argument("--name", required=True)
            p.add_argument("--dataset", default="wikipedia")
            p.add_argument("--file", default="passages.jsonl")
            p.add_argument("--limit", type=int)
        if name == "delete-head":
            p.add_argument("head_id")
        if name == "create-tenant":
            p.add_argument("--name", required=True)
            p.add_argument(
                "--api-key-file",
                type=Path,
                help="write the API key to this file (0600) instead of printing it; if the file already holds "
                "a key, do nothing (so a deployment can run this on every start)",
            )
    args = parser.parse_args(argv)
    if args.cmd == "serve":
        from helix_web.serve import serve as run

        from .app import create_app
        from .settings import ProviderSettings

        overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
        settings = ProviderSettings(**overrides)
        run(
            create_app(settings),
            settings.host,
            settings.port,
            settings.tls_cert,
            settings.tls_key,
            log_format=settings.log_format,
        )
        return
    with _admin_client(args) as client:
        if args.cmd == "create-head":
            _print(
                client.post(
                    "/v1/admin/heads",
                    json={
                        "name": args.name,
                        "dataset": args.dataset,
                        "split": args.split,
                        "max_examples": args.max_examples,
                        "map_holder": args.map_holder,
                    },
                )
            )
        elif args.cmd == "add-corpus":
            _print(
                client.post(
                    "/v1/admin/corpora",
                    json={"name": args.name, "dataset": args.dataset, "file": args.file, "limit": args.limit},
                )
            )
        elif args.cmd == "list-heads":
            _print(client.get("/v1/admin/heads"))
        elif args.cmd == "list-clients":
            _print(client.get("/v1/admin/clients"))
        elif args.cmd == "delete-head":
            _print(client.delete(f"/v1/admin/heads/{args.head_id}"))
        elif args.cmd == "list-tenants":
            _print(client.get("/v1/admin/tenants"))
        elif args.cmd == "create-tenant":
            _create_tenant(client, args.name, args.api_key_file)


if __name__ == "__main__":
    main()
