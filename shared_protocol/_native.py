"""Locate or build the tiny C NTT kernel (`_ntt.c`) and expose it through ctypes.

Why this way: the kernel has no Python C-API dependency, so it is built as a plain shared library
by setuptools at install time (`pip install .` / `-e .`) and, when running from a source tree
without an installed build, compiled once into a per-user cache with the system C compiler.
If neither works the caller falls back to the (exact but ~100x slower) numpy implementation.
"""
from __future__ import annotations

import ctypes
import hashlib
import importlib.machinery
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_SOURCE = _HERE / "_ntt.c"


def _candidates() -> list[Path]:
    found = []
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        p = _HERE / f"_ntt_kernel{suffix}"
        if p.exists():
            found.append(p)
    return found


def _compile_into_cache() -> Path | None:
    if not _SOURCE.exists():
        return None
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    digest = hashlib.sha256(_SOURCE.read_bytes()).hexdigest()[:16]
    cache = Path(os.environ.get("HELIX_NATIVE_CACHE", Path.home() / ".cache" / "helix"))
    target = cache / f"_ntt_{digest}_{sys.implementation.cache_tag}.so"
    if target.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        out = Path(tmp) / target.name
        cmd = [cc, "-O3", "-shared", "-fPIC", "-o", str(out), str(_SOURCE)]
        if subprocess.run(cmd, capture_output=True).returncode != 0:
            return None
        os.replace(out, target)  # atomic: concurrent builders never see a half-written library
    return target


def load_kernel() -> ctypes.CDLL | None:
    if os.environ.get("HELIX_DISABLE_NATIVE") == "1":
        return None
    paths = _candidates() or [p for p in [_compile_into_cache()] if p is not None]
    for path in paths:
        try:
            lib = ctypes.CDLL(str(path))
        except OSError:
            continue
        u64p = ctypes.POINTER(ctypes.c_uint64)
        i64p = ctypes.POINTER(ctypes.c_int64)
        for name in ("helix_ntt_forward", "helix_ntt_inverse"):
            fn = getattr(lib, name)
            fn.argtypes = [u64p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_uint64, u64p, u64p, u64p, u64p, i64p, i64p, u64p]
            fn.restype = None
        return lib
    return None
