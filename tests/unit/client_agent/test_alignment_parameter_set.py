"""Which parameter set the agent aligns under: the smallest alignment-capable ring that packs two samples."""

from __future__ import annotations

from client_agent.alignment import alignment_parameter_set
from helix_he.params import PARAMETER_SETS
from shared_protocol.messages import Limits, ParameterSetInfo, ServiceInfo


def info(names: list[str], default: str = "ckks-n8192-q200") -> ServiceInfo:
    sets = [
        ParameterSetInfo(
            name=p.name,
            poly_modulus_degree=p.poly_modulus_degree,
            coeff_mod_bit_sizes=list(p.coeff_mod_bit_sizes),
            scale_bits=p.scale_bits,
            security_bits=p.security_bits,
            query_scale_bits=p.query_scale_bits,
            reply_modulus_bits=p.reply_modulus_bits,
            supports_alignment=p.supports_alignment,
        )
        for p in (PARAMETER_SETS[n] for n in names)
    ]
    limits = Limits(max_request_bytes=1, max_ciphertext_bytes=1, max_queries_per_request=1, max_alignment_samples=1)
    return ServiceInfo(
        protocol_version="1.2",
        encoder_model_id="m",
        embedding_dim=384,
        parameter_sets=sets,
        default_parameter_set=default,
        limits=limits,
        inference_key_ttl_seconds=1,
        alignment_key_ttl_seconds=1,
    )


def test_the_smallest_ring_that_packs_two_samples_is_chosen() -> None:
    everything = list(PARAMETER_SETS)
    assert alignment_parameter_set(info(everything), 384) == "ckks-n4096-q109"  # 512 x 8 samples per ring
    assert alignment_parameter_set(info(everything), 2048) == "ckks-n4096-q109"  # exactly two
    assert alignment_parameter_set(info(everything), 3072) == "ckks-n8192-q200"  # 4096-wide: too big for N=4096
    assert alignment_parameter_set(info(everything), 6000) == "ckks-n16384-q200"


def test_inference_only_sets_are_never_chosen_and_the_default_is_the_fallback() -> None:
    only = info(["ckks-n4096-q47", "ckks-n8192-q200"])
    assert alignment_parameter_set(only, 384) == "ckks-n8192-q200"
    assert alignment_parameter_set(info(["ckks-n8192-q200"]), 10_000) == "ckks-n8192-q200"
