"""The provider-held map (paper Algorithm 2), science side: fold the map into the provider's head.

Client-held map (the service today): the client maps its embedding, x_A = x_B M + b, and sends
Enc(x_A) (dimension d_A); the provider evaluates its head W, c on it. Provider-held map: the
provider folds the map into the head, W' = W M^T and c' = W b + c, and the client sends Enc(x_B)
(dimension d_B) and never holds M. Both compute the same affine function of x_B, so they must give
the same logits up to float rounding; this module measures that on real embeddings, so a later
service option can rely on it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from helix_alignment.ridge import AffineMap

from .retention import Head


def fold_head(head_w: np.ndarray, head_c: np.ndarray, m: AffineMap) -> tuple[np.ndarray, np.ndarray]:
    """(W', c') with x_B @ W'.T + c' == (x_B @ M + b) @ W.T + c: the map folded into the head."""
    w = np.atleast_2d(head_w)
    return w @ m.weight.T, w @ m.bias + np.atleast_1d(head_c)


def _predict(head: Head, logits: np.ndarray) -> np.ndarray:
    classes = head.model[-1].classes_
    if logits.shape[1] == 1:  # binary head: one logit, class 1 when positive
        return np.asarray(classes[(logits[:, 0] > 0).astype(int)])
    return np.asarray(classes[np.argmax(logits, axis=1)])


def folded_report(head: Head, m: AffineMap, x_b: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Accuracy and logits of the client-held vs the provider-held (folded) map on the same inputs."""
    w, c = head.linear()
    client_held = np.atleast_2d(m.apply(x_b) @ np.atleast_2d(w).T + c)
    fw, fc = fold_head(w, c, m)
    provider_held = np.asarray(x_b, dtype=np.float64) @ fw.T + fc
    labels = np.asarray(labels)
    scale = float(np.max(np.abs(client_held))) or 1.0
    return {
        "client_held_accuracy": float(np.mean(_predict(head, client_held) == labels)),
        "provider_held_accuracy": float(np.mean(_predict(head, provider_held) == labels)),
        "head_accuracy_on_mapped": head.accuracy(m.apply(x_b), labels),
        "max_abs_logit_difference": float(np.max(np.abs(client_held - provider_held))),
        "max_relative_logit_difference": float(np.max(np.abs(client_held - provider_held)) / scale),
        "prediction_agreement": float(np.mean(_predict(head, client_held) == _predict(head, provider_held))),
        "encrypted_input_dim": {"client_held": int(m.target_dim), "provider_held": int(m.source_dim)},
    }
