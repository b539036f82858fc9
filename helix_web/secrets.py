"""Secrets read from files, so a token never has to sit in a command line (visible to every local user in
`ps`) or in a process environment dump."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import SecretStr


def read_secret_file(path: Path, what: str) -> str:
    """The first line of `path`, stripped; a clear error if the file is missing or empty."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read the {what} file {path}: {exc.strerror}") from None
    lines = text.splitlines()
    value = lines[0].strip() if lines else ""
    if not value:
        raise ValueError(f"the {what} file {path} is empty")
    return value


def secret_setting(value: SecretStr | None, file: Path | None, names: tuple[str, str], what: str) -> SecretStr | None:
    """A secret setting given either directly or as a file (`names`: the two variables, for the error
    when both are set)."""
    if file is None:
        return value
    if value is not None:
        raise ValueError(f"set {names[0]} or {names[1]}, not both")
    return SecretStr(read_secret_file(file, what))


def cli_token(env_var: str, token_file: str | None, what: str) -> str | None:
    """A command-line tool's token: from `token_file` if given, else from the environment variable; a
    bad file ends the tool with a message naming it."""
    if token_file is None:
        return os.environ.get(env_var) or None
    try:
        return read_secret_file(Path(token_file), what)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
