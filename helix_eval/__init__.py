"""Alignment science harness: how well does a linear map from a client's embedding space carry
a provider's heads? Similarity (CKA, SVCCA), classification and OOD-detection retention, and a
choice of map methods, reported as JSON, markdown tables and plots (``helix-eval``)."""
