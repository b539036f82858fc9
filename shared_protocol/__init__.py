"""HELIX wire protocol: message models, pinned CKKS parameter sets, packings and (de)serialization.

Imported by both `provider_server` and `client_agent`; imports neither.
"""

PROTOCOL_VERSION = "1.2"

__all__ = ["PROTOCOL_VERSION"]
