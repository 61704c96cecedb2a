"""service/keys.py: the keyed digests every lookup key, PIN and session digest is made of."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from service.keys import DerivedKeys, keyed_digest


def reference(key: bytes, *parts: str) -> bytes:
    message = b"".join(len(p.encode()).to_bytes(4, "big") + p.encode() for p in parts)
    return hmac.new(key, message, hashlib.sha256).digest()


@pytest.mark.parametrize(
    "parts", [(), ("",), ("account-by-email", "a@example.com"), ("ünï", "cödé", "3")]
)
def test_a_digest_is_hmac_sha256_over_the_length_prefixed_parts(parts: tuple[str, ...]) -> None:
    keys = DerivedKeys.from_secret(b"s" * 32)
    for key in (keys.pin, keys.session, keys.pin):  # the second use of a key: its kept state
        assert keyed_digest(key, *parts) == reference(key, *parts)


def test_keys_and_part_boundaries_give_different_digests() -> None:
    keys = DerivedKeys.from_secret(b"s" * 32)
    assert keyed_digest(keys.pin, "a", "b") != keyed_digest(keys.session, "a", "b")
    assert keyed_digest(keys.pin, "a:b", "c") != keyed_digest(keys.pin, "a", "b:c")
    # Two services with different secrets never share a digest.
    other = DerivedKeys.from_secret(b"t" * 32)
    assert keyed_digest(keys.pin, "a") != keyed_digest(other.pin, "a")
