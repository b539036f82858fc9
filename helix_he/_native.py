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


# -O2 with unrolling, not -O3: measured here, gcc 12's -O3 makes the NTT butterflies (128-bit
# high multiplies) about 3x slower (384 vs 131 us per N=8192 transform). setup.py uses the same flags.
_CFLAGS = ("-O2", "-funroll-loops")


def _candidates() -> list[Path]:
    """Libraries built at install time, unless the C source is newer (a stale build is skipped)."""
    found = []
    src_mtime = _SOURCE.stat().st_mtime if _SOURCE.exists() else 0.0
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        p = _HERE / f"_ntt_kernel{suffix}"
        if p.exists() and p.stat().st_mtime >= src_mtime:
            found.append(p)
    return found


def _compile_into_cache() -> Path | None:
    if not _SOURCE.exists():
        return None
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    digest = hashlib.sha256(_SOURCE.read_bytes() + " ".join(_CFLAGS).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("HELIX_NATIVE_CACHE", Path.home() / ".cache" / "helix"))
    target = cache / f"_ntt_{digest}_{sys.implementation.cache_tag}.so"
    if target.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        out = Path(tmp) / target.name
        cmd = [cc, *_CFLAGS, "-shared", "-fPIC", "-o", str(out), str(_SOURCE)]
        if subprocess.run(cmd, capture_output=True).returncode != 0:
            return None
        os.replace(out, target)  # atomic: concurrent builders never see a half-written library
    return target


_SYMBOLS = (
    "helix_ntt_forward",
    "helix_ntt_inverse",
    "helix_mulmod",
    "helix_shoup_table",
    "helix_mulmod_fixed",
    "helix_dot_rows",
    "helix_ntt_ln_forward",
    "helix_ntt_ln_inverse",
    "helix_lincomb",
    "helix_addmod",
    "helix_signed_residues",
    "helix_pack_bits",
    "helix_unpack_bits",
    "helix_submod",
)


def load_kernel() -> ctypes.CDLL | None:
    if os.environ.get("HELIX_DISABLE_NATIVE") == "1":
        return None

    def loadable(path: Path) -> ctypes.CDLL | None:
        try:
            lib = ctypes.CDLL(str(path))
            for name in _SYMBOLS:
                getattr(lib, name)
            return lib
        except (OSError, AttributeError):
            return None

    lib = next((lib for lib in map(loadable, _candidates()) if lib is not None), None)
    if lib is None:
        built = _compile_into_cache()
        lib = loadable(built) if built is not None else None
    if lib is None:
        return None
    u64p = ctypes.POINTER(ctypes.c_uint64)
    i64p = ctypes.POINTER(ctypes.c_int64)
    sz = ctypes.c_size_t
    for name in ("helix_ntt_forward", "helix_ntt_inverse"):
        fn = getattr(lib, name)
        fn.argtypes = [u64p, sz, sz, ctypes.c_uint64, u64p, u64p, u64p, u64p, i64p, i64p, u64p]
        fn.restype = None
    lib.helix_mulmod.argtypes = [u64p, u64p, sz, ctypes.c_uint64, u64p]
    lib.helix_shoup_table.argtypes = [u64p, sz, ctypes.c_uint64, u64p]
    lib.helix_mulmod_fixed.argtypes = [u64p, sz, sz, u64p, u64p, ctypes.c_uint64, u64p]
    lib.helix_dot_rows.argtypes = [u64p, u64p, sz, sz, ctypes.c_uint64, u64p]
    lib.helix_lincomb.argtypes = [i64p, sz, sz, u64p, sz, ctypes.c_uint64, u64p, u64p]
    lib.helix_addmod.argtypes = [u64p, u64p, sz, ctypes.c_uint64, u64p]
    lib.helix_submod.argtypes = [u64p, u64p, sz, ctypes.c_uint64, u64p]
    lib.helix_signed_residues.argtypes = [i64p, sz, ctypes.c_uint64, u64p]
    u8p = ctypes.POINTER(ctypes.c_uint8)
    lib.helix_pack_bits.argtypes = [u64p, sz, ctypes.c_uint, u8p]
    lib.helix_pack_bits.restype = None
    lib.helix_unpack_bits.argtypes = [u8p, sz, ctypes.c_uint, u64p]
    lib.helix_unpack_bits.restype = ctypes.c_uint64
    lib.helix_ntt_ln_forward.argtypes = [u64p, sz, sz, ctypes.c_uint64, u64p, u64p]
    lib.helix_ntt_ln_inverse.argtypes = [u64p, sz, sz, ctypes.c_uint64, u64p, u64p, ctypes.c_uint64, ctypes.c_uint64]
    for name in (
        "helix_mulmod",
        "helix_shoup_table",
        "helix_mulmod_fixed",
        "helix_dot_rows",
        "helix_ntt_ln_forward",
        "helix_ntt_ln_inverse",
        "helix_lincomb",
        "helix_addmod",
        "helix_submod",
        "helix_signed_residues",
    ):
        getattr(lib, name).restype = None
    return lib
