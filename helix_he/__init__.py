"""HELIX's homomorphic-encryption core, imported by both silos and importing neither (nor the wire).

Rooms, bottom up:

* `params`: the pinned CKKS parameter sets; `budget`: every scale and noise bit in one place;
* `modmath` (+ the C kernel `_ntt.c` loaded by `_native`): exact arithmetic modulo the primes, NTT;
* `context`: a SEAL context per parameter set, exact plaintexts, validated SEAL (de)serialization;
* `rlwe`: the compact query and reply ciphertexts and the randomness both parties draw;
* `packing`: where each value sits in a polynomial (`LinearHeadLayout`, `CrossCovarianceLayout`);
* `keys`: the client's key pair (`ClientKeys`) and what the provider builds from its public half
  (`load_public_key`, `load_galois_keys`, `Rerandomizer`); `seeded_keys`: the uniform halves of
  those keys, expanded from the provider's challenge seed, and the provider's check of them;
* one module per circuit, both halves side by side: `linear_head` (client `encrypt_queries` /
  `decrypt_logits`, server `EncryptedLinearHead` / `encrypted_linear_head`) and `cross_covariance`
  (client `encrypt_alignment_data` / `decrypt_cross_covariance`, server `encrypted_cross_covariance`).

The client only generates keys, encrypts and decrypts; the provider only evaluates.
"""
