"""HE work in separate processes: typed jobs (`jobs`), what a worker process runs (`process`) and
the pool that runs them (`pool`). Nothing is imported here: a spawned worker imports only what its
jobs need, not the web stack."""
