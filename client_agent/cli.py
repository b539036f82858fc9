"""`helix-client`: run the client agent daemon, or drive a running one over its REST API."""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import time
from pathlib import Path

import httpx

from helix_web.secrets import cli_token


def _agent(args: argparse.Namespace) -> httpx.Client:
    """The API token comes from HELIX_CLIENT_API_TOKEN or a file (--token-file or HELIX_CLIENT_API_TOKEN_FILE),
    never from the command line, where every local user can read it."""
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(args.ca)) if args.ca else True
    token = cli_token("HELIX_CLIENT_API_TOKEN", args.token_file, "API token")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=args.url, verify=verify, headers=headers, timeout=600)


def _json(resp: httpx.Response) -> object:
    if resp.status_code >= 400:
        print(resp.text, file=sys.stderr)
        raise SystemExit(1)
    return resp.json()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="helix-client", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve", help="run the agent daemon (settings from HELIX_CLIENT_* variables)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    for name in ("align", "classify", "maps", "jobs"):
        p = sub.add_parser(name)
        p.add_argument("--url", default=os.environ.get("HELIX_CLIENT_URL", "https://127.0.0.1:8444"))
        p.add_argument("--ca", type=Path, default=os.environ.get("HELIX_CLIENT_CA_CERT"))
        p.add_argument(
            "--token-file",
            default=os.environ.get("HELIX_CLIENT_API_TOKEN_FILE"),
            help="file holding the agent's API token (or set HELIX_CLIENT_API_TOKEN)",
        )
        if name == "align":
            p.add_argument("--head", required=True)
            p.add_argument("--corpus", required=True)
            p.add_argument("--ridge-lambda", type=float)
            p.add_argument("--no-head-texts", action="store_true")
        if name == "classify":
            p.add_argument("--head", required=True)
            p.add_argument("--map")
            p.add_argument("texts", nargs="+")
    args = parser.parse_args(argv)
    if args.cmd == "serve":
        from helix_web.serve import serve as run

        from .app import create_app
        from .settings import ClientSettings

        overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
        settings = ClientSettings(**overrides)
        run(
            create_app(settings),
            settings.host,
            settings.port,
            settings.tls_cert,
            settings.tls_key,
            log_format=settings.log_format,
        )
        return
    with _agent(args) as agent:
        if args.cmd == "align":
            job = _json(
                agent.post(
                    "/v1/alignments",
                    json={
                        "head_id": args.head,
                        "corpus_id": args.corpus,
                        "ridge_lambda": args.ridge_lambda,
                        "include_head_texts": not args.no_head_texts,
                    },
                )
            )
            last = None
            while job["state"] == "running":  # type: ignore[index]
                p = job["progress"]  # type: ignore[index]
                line = (
                    f"{p['phase']}: uploaded {p['uploaded_ciphertexts']}/{p['total_ciphertexts']}, "
                    f"computed {p['computed_columns']}/{p['total_columns']}"
                )
                if line != last:
                    print(line, file=sys.stderr)
                    last = line
                time.sleep(0.5)
                job = _json(agent.get(f"/v1/alignments/{job['job_id']}"))  # type: ignore[index]
            print(json.dumps(job, indent=2))
            if job["state"] != "done":  # type: ignore[index]
                raise SystemExit(1)
        elif args.cmd == "classify":
            print(
                json.dumps(
                    _json(
                        agent.post("/v1/classify", json={"texts": args.texts, "head_id": args.head, "map_id": args.map})
                    ),
                    indent=2,
                )
            )
        elif args.cmd == "maps":
            print(json.dumps(_json(agent.get("/v1/maps")), indent=2))
        elif args.cmd == "jobs":
            print(json.dumps(_json(agent.get("/v1/alignments")), indent=2))


if __name__ == "__main__":
    main()
