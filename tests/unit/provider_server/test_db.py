"""The provider's SQLite repository: databases created before later columns still open and work."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from provider_server.db import SCHEMA, Repository

FOLDS_COLUMN = ", validation_folds INTEGER NOT NULL DEFAULT 0"


def test_sessions_from_before_validation_folds_read_as_without_folds(tmp_path: Path) -> None:
    assert FOLDS_COLUMN in SCHEMA
    path = tmp_path / "provider.db"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA.replace(FOLDS_COLUMN, ""))  # the schema as it was before the column
    conn.execute("INSERT INTO sessions (session_id, head_id, corpus_id, key_id, parameter_set, state, num_samples, "
                 "feature_dim, samples_per_ciphertext, num_ciphertexts, received, computed_columns, output_columns, "
                 "created_at, expires_at, include_head_texts, client_model_id) VALUES ('a_old', 'h', 'c', 'k', 'p', "
                 "'done', 10, 4, 2, 5, '[]', 4, 4, '2026-01-01T00:00:00+00:00', '2026-01-02T00:00:00+00:00', 0, 'm')")
    conn.commit()
    conn.close()
    repo = Repository(path)
    try:
        old = repo.get_session("a_old")
        assert old is not None and old["validation_folds"] == 0 and old["state"] == "done"
        repo.update_session("a_old", validation_folds=5)
        again = repo.get_session("a_old")
        assert again is not None and again["validation_folds"] == 5
    finally:
        repo.close()
