"""The provider-held map (head folded with the map) computes the client-held map's logits."""

from __future__ import annotations

import numpy as np

from helix_alignment.ridge import fit_ridge
from helix_eval.folded import fold_head, folded_report
from helix_eval.retention import train_head


def test_folded_head_agrees_with_client_held_map_to_float_precision() -> None:
    rng = np.random.default_rng(0)
    x_b = rng.normal(size=(700, 24))
    y_a = x_b @ rng.normal(size=(24, 40)) + 0.3 * rng.normal(size=(700, 40))
    labels = np.argmax(y_a[:, :4], axis=1)
    head = train_head(y_a[:500], labels[:500], seed=0)
    m = fit_ridge(x_b[:500], y_a[:500], 1e-2)
    r = folded_report(head, m, x_b[500:], labels[500:])
    assert r["max_relative_logit_difference"] < 1e-12
    assert r["prediction_agreement"] == 1.0
    assert r["provider_held_accuracy"] == r["client_held_accuracy"] == r["head_accuracy_on_mapped"] > 0.5
    assert r["encrypted_input_dim"] == {"client_held": 40, "provider_held": 24}
    w, c = head.linear()
    fw, fc = fold_head(w, c, m)
    assert fw.shape == (4, 24) and fc.shape == (4,)
