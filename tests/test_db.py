"""The provider's SQLite repository: databases created before later columns still open and work."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from provider_server.db import Repository

OLD_SESSIONS = """
CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY, head_id TEXT NOT NULL, corpus_id TEXT NOT NULL, key_id TEXT NOT NULL,
    parameter_set TEXT NOT NULL, state TEXT NOT NULL, num_samples INTEGER NOT NULL,
    feature_dim INTEGER NOT NULL, samples_per_ciphertext INTEGER NOT NULL,
    num_ciphertexts INTEGER NOT NULL, received TEXT NOT NULL, computed_columns INTEGER NOT NULL,
    output_columns INTEGER NOT NULL, error TEXT, created_at TEXT NOT NULL, expires_at TEXT NOT NULL,
    include_head_texts INTEGER NOT NULL, client_model_id TEXT NOT NULL, data_scale_bits INTEGER,
    result_blob TEXT
);
INSERT INTO sessions VALUES ('a_old', 'h', 'c', 'k', 'p', 'done', 10, 4, 2, 5, '[]', 4, 4, NULL,
    '2026-01-01T00:00:00+00:00', '2026-01-02T00:00:00+00:00', 0, 'm', 20, NULL);
"""


def test_sessions_from_before_validation_folds_read_as_without_folds(tmp_path: Path) -> None:
    path = tmp_path / "provider.db"
    conn = sqlite3.connect(path)
    conn.executescript(OLD_SESSIONS)
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
