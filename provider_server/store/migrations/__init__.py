"""Alembic's environment and revisions for the provider's database (run by `provider_server.store.migrate`)."""
