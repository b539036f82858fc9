"""The provider's file stores on a full disk and their file modes.

A full disk is simulated with a file-size limit (RLIMIT_FSIZE) in a child process: Python ignores
SIGXFSZ, so a write past the limit fails with EFBIG as a write to a full disk fails with ENOSPC, and
no root, mount or loop device is needed. The whole provider daemon cannot run under such a limit (its
HE library serialises through temporary files), so this is tested on the stores themselves."""

from __future__ import annotations

import json
import resource
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from provider_server.blobs import BlobStore
from provider_server.errors import StorageFull
from provider_server.private_files import write_private
from provider_server.session_files import SessionFiles

REPO_ROOT = Path(__file__).resolve().parents[3]
LIMIT = 64 * 1024

CHILD = """
import json, sys
from pathlib import Path
from provider_server.blobs import BlobStore
from provider_server.errors import StorageFull
from provider_server.session_files import SessionFiles

root = Path(sys.argv[1])
out = {}
small = BlobStore(root / "blobs").put(b"small enough", ".bin")
for name, write in (
    ("blob", lambda: BlobStore(root / "blobs").put(b"x" * (2 * int(sys.argv[2])), ".bin")),
    ("chunk", lambda: SessionFiles(root / "sessions").write("a_1", 0, [b"ok", b"y" * (2 * int(sys.argv[2]))])),
):
    try:
        write()
        out[name] = "stored"
    except StorageFull as exc:
        out[name] = [exc.status, exc.code, exc.detail]
out["small"] = small
print(json.dumps(out))
"""


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_a_full_disk_is_storage_full_and_leaves_no_partial_file(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path), str(LIMIT)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit_file_size,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for name in ("blob", "chunk"):
        status, code, detail = out[name]
        assert (status, code) == (507, "storage_full"), out
        assert "storage is full" in detail and "nothing was stored" in detail
    small = out["small"]
    # Only what fitted is there: the small blob and the chunk's first ciphertext; no temp file, no partial file.
    assert files(tmp_path) == sorted([f"blobs/{small[:2]}/{small}", "sessions/a_1/000000.ct"])


def test_other_os_errors_are_not_storage_full(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_private(tmp_path / "missing-dir" / "f", b"data")
    assert not issubclass(FileNotFoundError, StorageFull)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_blobs_and_chunks_are_private(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    blob_id = blobs.put_array(np.arange(6.0))
    SessionFiles(tmp_path / "sessions").write("a_1", 3, [b"ct"])
    assert mode(tmp_path / "blobs") == 0o700 and mode(blobs.path(blob_id).parent) == 0o700
    assert mode(blobs.path(blob_id)) == 0o600
    assert mode(tmp_path / "sessions") == 0o700 and mode(tmp_path / "sessions" / "a_1") == 0o700
    assert mode(tmp_path / "sessions" / "a_1" / "000003.ct") == 0o600
    assert np.array_equal(blobs.get_array(blob_id), np.arange(6.0))
