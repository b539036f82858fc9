"""A process using the Store, for the tests that need several (python store_worker.py URL JOB).

It says "ready" on stdout and waits for a line on stdin before it starts, so the test can release
every worker at once (a barrier across processes, no sleeps). Jobs:
- `open`: open the Store (which migrates it) and close it;
- `admit N LIMIT`: open the Store, then try N admissions of one query against LIMIT; prints how many
  were admitted.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from provider_server.store import Charge, open_store


def main(argv: list[str]) -> None:
    url, job = argv[0], argv[1]
    store = open_store(url) if job == "admit" else None
    print("ready", flush=True)
    sys.stdin.readline()
    if store is None:
        open_store(url).close()
        print("opened", flush=True)
        return
    n, limit = int(argv[2]), int(argv[3])
    now = datetime(2026, 3, 1, tzinfo=UTC)
    admitted = sum(
        store.admit("t_1", [Charge("queries:sst2", "2026-03-01", 1, limit=limit)], None, now) is None for _ in range(n)
    )
    store.close()
    print(admitted, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
