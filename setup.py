"""Builds the optional native NTT kernel (plain C, loaded through ctypes, no Python C-API).

Everything else is declared in pyproject.toml. `optional=True`: without a C compiler the install
still succeeds, and helix_he falls back to compiling at first use or to numpy."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "helix_he._ntt_kernel",
            sources=["helix_he/_ntt.c"],
            extra_compile_args=["-O2", "-funroll-loops"],
            optional=True,
        )
    ]
)
