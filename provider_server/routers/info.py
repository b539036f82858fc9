"""Service information: what the provider accepts, so clients configure themselves from it."""

from __future__ import annotations

from fastapi import APIRouter

from helix_he.params import get_parameter_set
from helix_web.readiness import require_ready
from shared_protocol import PROTOCOL_VERSION
from shared_protocol.messages import ErrorResponse, Limits, ParameterSetInfo, ServiceInfo

from ..deps import State, Tenant

router = APIRouter(tags=["info"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process answers (nothing else is checked, so a busy provider is not restarted)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"model": ErrorResponse, "description": "not ready, with the reason"}})
def readyz(state: State) -> dict[str, str]:
    """Readiness: 200 once the provider can serve (workers warmed, database usable, data directory
    writable), else 503 `not_ready` naming what is missing; agents and load balancers ask this."""
    return require_ready(state.readiness())


@router.get("/v1/info", response_model=ServiceInfo)
def info(state: State, _tenant: Tenant) -> ServiceInfo:
    s = state.settings
    emb = state.embedder()
    sets = [get_parameter_set(n) for n in s.parameter_sets]
    return ServiceInfo(
        protocol_version=PROTOCOL_VERSION,
        encoder_model_id=emb.model_id,
        embedding_dim=emb.dim,
        parameter_sets=[
            ParameterSetInfo(
                name=p.name,
                poly_modulus_degree=p.poly_modulus_degree,
                coeff_mod_bit_sizes=list(p.coeff_mod_bit_sizes),
                scale_bits=p.scale_bits,
                security_bits=p.security_bits,
            )
            for p in sets
        ],
        default_parameter_set=s.default_parameter_set,
        limits=Limits(
            max_request_bytes=s.max_request_bytes,
            max_ciphertext_bytes=s.max_ciphertext_bytes,
            max_queries_per_request=s.max_queries_per_request,
            max_alignment_samples=s.max_alignment_samples,
            alignment_validation_folds=s.offered_validation_folds,
        ),
        inference_key_ttl_seconds=s.inference_key_ttl_seconds,
        alignment_key_ttl_seconds=s.alignment_key_ttl_seconds,
    )
