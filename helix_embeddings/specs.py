"""Parsing of embedder spec strings (``backend:name[?opt=val&opt2=val]``).

Why a separate module: the registry, the CLI and config files all need to turn
a human-typed string into (backend, name, options) the same way, and backends
need shared helpers to read typed option values with useful error messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

#: Short names accepted in place of a full spec. An alias may still carry
#: options: ``"wordllama?dim=128"`` == ``"wordllama:l2_supercat?dim=128"``.
ALIASES: dict[str, str] = {
    "minilm": "sentence-transformers:all-MiniLM-L6-v2",
    "mpnet": "sentence-transformers:all-mpnet-base-v2",
    "e5": "e5:multilingual-e5-small",
    "wordllama": "wordllama:l2_supercat",
    "spacy": "spacy:en_core_web_md",
    "glove": "glove:6B-50d",
    "smollm2": "causal-lm:smollm2-135m-instruct-q4_1",
    "gemma3": "causal-lm:gemma-3-270m-q4_k_m",
}


@dataclass(frozen=True)
class EmbedderSpec:
    """A parsed spec. ``options`` is sorted so equal specs compare (and hash) equal."""

    backend: str
    name: str
    options: tuple[tuple[str, str], ...] = field(default=())

    @property
    def option_dict(self) -> dict[str, str]:
        """Options as a plain dict, for backends to consume."""
        return dict(self.options)

    def __str__(self) -> str:
        base = f"{self.backend}:{self.name}"
        return f"{base}?{urlencode(self.options)}" if self.options else base


def parse_spec(spec: str) -> EmbedderSpec:
    """Parse ``backend:name[?opt=val&...]`` (or an alias) into an :class:`EmbedderSpec`.

    The backend is everything before the first ``:``; the name is the rest, so
    absolute paths (``sentence-transformers:/models/x``) work. The query string
    starts at the first ``?``, so names themselves cannot contain ``?``.
    Backend names are case-insensitive; model names are not (paths are not).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"embedder spec must be a non-empty string, got {spec!r}")
    head, _, query = spec.strip().partition("?")
    if head.lower() in ALIASES:
        head = ALIASES[head.lower()]
    backend, sep, name = head.partition(":")
    if not sep or not backend or not name:
        raise ValueError(
            f"malformed embedder spec {spec!r}: expected 'backend:name[?opt=val]' "
            f"or one of the aliases {sorted(ALIASES)}"
        )
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise ValueError(f"malformed options {query!r} in embedder spec {spec!r}") from exc
    options: dict[str, str] = {}
    for key, value in pairs:
        if key in options:
            raise ValueError(f"option {key!r} given twice in embedder spec {spec!r}")
        options[key] = value
    return EmbedderSpec(backend=backend.lower(), name=name, options=tuple(sorted(options.items())))


def reject_unknown_options(backend: str, options: Mapping[str, str], allowed: set[str]) -> None:
    """Raise ValueError for options a backend does not understand.

    Why: a typo such as ``?dims=128`` must not silently fall back to defaults
    and produce vectors of an unexpected size.
    """
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for backend {backend!r}; allowed: {sorted(allowed)}")


def bool_option(options: Mapping[str, str], key: str, default: bool) -> bool:
    """Read a boolean option (true/false/1/0/yes/no)."""
    if key not in options:
        return default
    value = options[key].strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"option {key}={options[key]!r} is not a boolean")


def int_option(options: Mapping[str, str], key: str, default: int) -> int:
    """Read a positive integer option."""
    if key not in options:
        return default
    try:
        value = int(options[key])
    except ValueError as exc:
        raise ValueError(f"option {key}={options[key]!r} is not an integer") from exc
    if value <= 0:
        raise ValueError(f"option {key}={value} must be positive")
    return value


def float_option(options: Mapping[str, str], key: str, default: float) -> float:
    """Read a non-negative float option (seconds, fractions)."""
    if key not in options:
        return default
    try:
        value = float(options[key])
    except ValueError as exc:
        raise ValueError(f"option {key}={options[key]!r} is not a number") from exc
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"option {key}={value} must be a finite number >= 0")
    return value


def optional_int_option(options: Mapping[str, str], key: str) -> int | None:
    """Read a positive integer option that has no default (absent -> None)."""
    return int_option(options, key, 1) if key in options else None
