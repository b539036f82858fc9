"""HELIX benchmark suite: our CKKS circuits against a straightforward TenSEAL baseline.

Run with ``python -m benchmarks [--quick] [--full]``. One run measures, on the same inputs:

1. the encrypted linear head (one query): our provider circuit vs TenSEAL ``CKKSVector.matmul``;
2. the HE part of secure alignment, Enc(X^T Y): our coefficient-packed circuit vs a naive
   sample-major TenSEAL computation (extrapolated from a measured slice, and labelled as such);
3. key material the client has to send: our public key vs a TenSEAL public context with Galois keys.

Results go to a JSON file (machine-readable) and a markdown report with a latency plot. The
package imports neither matplotlib nor TenSEAL's high-level API at import time.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

__all__ = ["SCHEMA_VERSION"]
