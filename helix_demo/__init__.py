"""The two-silo demo: a provider and a client agent as separate processes on loopback HTTPS."""
