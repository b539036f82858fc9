"""Ciphertext (de)serialization and validation against the pinned parameter sets."""

from __future__ import annotations

import numpy as np
import pytest

from helix_he.context import CiphertextError, check_seal_header, he_context
from helix_he.keys import ClientKeys
from helix_he.linear_head import encrypt_queries
from helix_he.packing import LinearHeadLayout
from helix_he.params import PARAMETER_SETS, get_parameter_set

PSET = "ckks-n8192-q200"


@pytest.fixture(scope="module")
def keys() -> ClientKeys:
    return ClientKeys.generate(PSET)


def test_parameter_sets_are_pinned_and_lookup_errors_name_the_set() -> None:
    p = get_parameter_set(PSET)
    assert (p.poly_modulus_degree, p.coeff_mod_bit_sizes, p.scale_bits) == (8192, (60, 40, 40, 60), 40)
    # The HomomorphicEncryption.org bounds for 128-bit security with a uniform ternary secret.
    bound = {2048: 54, 4096: 109, 8192: 218, 16384: 438}
    assert all(s.total_bits <= bound[s.poly_modulus_degree] for s in PARAMETER_SETS.values())
    with pytest.raises(KeyError, match="unknown CKKS parameter set 'n4096'"):
        get_parameter_set("n4096")


def test_the_inference_only_set_pins_a_budget_that_fits_its_prime() -> None:
    p = get_parameter_set("ckks-n4096-q47")
    q = he_context(p.name).output_level.primes[0]
    assert not p.supports_alignment and p.reply_modulus_bits == 29
    assert len(he_context(p.name).levels) == 1  # one prime: no rescale, no key switching
    # |logit| < 2^7 - 2^-6 at the product scale stays below q/2, and the switched reply keeps >= 2^20 of precision.
    assert (2**7 - 2**-6) * 2**p.product_scale_bits < q // 2
    assert 2.0**p.product_scale_bits * 2**p.reply_modulus_bits / q >= 2**20


def test_seal_ciphertext_round_trips_through_bytes(keys: ClientKeys) -> None:
    he = keys.he
    blob = seal_blob(keys)
    ct = he.ciphertext_from_bytes(blob, level=he.input_level, max_bytes=1 << 20)
    assert ct.size() == 2 and tuple(ct.parms_id()) == he.input_level.parms_id
    assert 100_000 < len(blob) < 135_000  # seeded symmetric encryption at two primes


def test_malformed_ciphertexts_are_rejected_with_reasons(keys: ClientKeys) -> None:
    he = keys.he
    blob = seal_blob(keys)
    with pytest.raises(CiphertextError, match="truncated"):
        he.ciphertext_from_bytes(blob[:-10], level=he.input_level, max_bytes=1 << 20)
    with pytest.raises(CiphertextError, match="exceeds the limit"):
        he.ciphertext_from_bytes(blob, level=he.input_level, max_bytes=1000)
    with pytest.raises(CiphertextError, match="SEAL header"):
        he.ciphertext_from_bytes(b"\x00" * 64, level=he.input_level, max_bytes=1 << 20)
    corrupt = bytearray(blob)
    corrupt[40:80] = b"\xff" * 40  # breaks the compressed body
    with pytest.raises(CiphertextError, match="not valid"):
        he.ciphertext_from_bytes(bytes(corrupt), level=he.input_level, max_bytes=1 << 20)
    with pytest.raises(CiphertextError, match="level"):
        he.ciphertext_from_bytes(blob, level=he.output_level, max_bytes=1 << 20)


def test_ciphertext_of_another_parameter_set_is_rejected() -> None:
    other = ClientKeys.generate("ckks-n16384-q200")
    blob = seal_blob(other)
    he = he_context(PSET)
    with pytest.raises(CiphertextError, match="not valid for parameter set ckks-n8192-q200"):
        he.ciphertext_from_bytes(blob, level=he.input_level, max_bytes=1 << 21)


def test_header_check_rejects_zlib_and_foreign_versions() -> None:
    import struct

    def header(major: int, compr: int, size: int = 16) -> bytes:
        return struct.pack("<HBBBBHQ", 0xA15E, 16, major, 3, compr, 0, size)

    with pytest.raises(CiphertextError, match="version"):
        check_seal_header(header(3, 0), 1 << 20)
    with pytest.raises(CiphertextError, match="compression"):
        check_seal_header(header(4, 1), 1 << 20)
    assert check_seal_header(header(4, 0), 1 << 20) == 0


def seal_blob(keys: ClientKeys) -> bytes:
    """A seeded SEAL ciphertext at the input level, the form alignment data travels in."""
    import tenseal.sealapi as seal

    from helix_he.context import save_to_bytes

    he = keys.he
    coeffs = np.zeros(he.n, dtype=np.int64)
    coeffs[:16] = 1 << 30
    pt = he.plaintext_from_coeffs(coeffs, he.input_level, 2.0**30)
    return save_to_bytes(seal.Encryptor(he.context, keys.secret_key).encrypt_symmetric(pt))


def _public_key(keys: ClientKeys):  # type: ignore[no-untyped-def]
    """The public key exactly as the provider receives and loads it."""
    import tenseal.sealapi as seal

    from helix_he.context import load_from_bytes

    pk = seal.PublicKey()
    load_from_bytes(pk, keys.he.context, keys.public_key_bytes())
    return pk


def test_secret_key_persists_with_owner_only_permissions(tmp_path, keys: ClientKeys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "k.sk"
    keys.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    again = ClientKeys.load(PSET, path)
    he = keys.he
    lay = LinearHeadLayout(he.n, 8, 2)
    blob = encrypt_queries(keys, np.full((1, 8), 0.5), lay)[0]
    from helix_he.keys import Rerandomizer
    from helix_he.linear_head import EncryptedLinearHead, encrypted_linear_head

    pk = _public_key(again)
    head = EncryptedLinearHead(he, np.eye(8)[:, :2], np.zeros(2))
    reply = encrypted_linear_head(head, [blob], Rerandomizer(he, pk), max_ciphertext_bytes=1 << 20, query_scale_bits=26)
    assert np.allclose(again.decrypt_reply(reply[0][0], lay.output_positions(0)), [0.5, 0.5], atol=1e-5)
