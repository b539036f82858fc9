"""Run store_worker.py in several processes at once and collect what each printed last."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

WORKER = Path(__file__).with_name("store_worker.py")
REPO_ROOT = Path(__file__).resolve().parents[4]


def run_together(count: int, *args: str, timeout_s: float = 120.0) -> list[str]:
    """Start `count` workers, wait until every one is ready, release them at once, and return each
    one's last line of output (a worker that fails fails the caller with its stderr)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(count)
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline().strip()
            assert line == "ready", f"a worker did not start: {line!r} {p.communicate(timeout=timeout_s)[1][-3000:]}"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        results = []
        for p in procs:
            out, err = p.communicate(timeout=timeout_s)
            assert p.returncode == 0, f"a worker failed ({p.returncode}): {err[-3000:]}"
            results.append(out.strip().splitlines()[-1])
        return results
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
