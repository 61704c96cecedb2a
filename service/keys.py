"""Keys derived from SECRET_KEY, one per purpose, so no key serves two jobs."""

from __future__ import annotations

import hmac
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)


@dataclass(frozen=True, repr=False)
class DerivedKeys:
    pin: bytes
    session: bytes
    mfa_token: bytes
    totp: bytes
    rate_limit: bytes
    recovery_code: bytes
    device: bytes
    sign_in_flow: bytes
    staff_session: bytes
    staff_setup: bytes
    staff_mfa_token: bytes
    confirmation_code: bytes
    report_link: bytes
    reset_link: bytes

    @classmethod
    def from_secret(cls, secret: bytes) -> DerivedKeys:
        return cls(
            pin=_derive(secret, b"support-pin/pin-hmac/v1"),
            session=_derive(secret, b"support-pin/session-hmac/v1"),
            mfa_token=_derive(secret, b"support-pin/mfa-token-hmac/v1"),
            totp=_derive(secret, b"support-pin/totp-encryption/v1"),
            rate_limit=_derive(secret, b"support-pin/rate-limit-hmac/v1"),
            recovery_code=_derive(secret, b"support-pin/recovery-code-hmac/v1"),
            device=_derive(secret, b"support-pin/device-cookie-hmac/v1"),
            sign_in_flow=_derive(secret, b"support-pin/sign-in-flow-hmac/v1"),
            staff_session=_derive(secret, b"support-pin/staff-session-hmac/v1"),
            staff_setup=_derive(secret, b"support-pin/staff-setup-hmac/v1"),
            staff_mfa_token=_derive(secret, b"support-pin/staff-mfa-token-hmac/v1"),
            confirmation_code=_derive(secret, b"support-pin/confirmation-code-hmac/v1"),
            report_link=_derive(secret, b"support-pin/report-link-hmac/v1"),
            reset_link=_derive(secret, b"support-pin/password-reset-link-hmac/v1"),
        )

    def __repr__(self) -> str:
        return "DerivedKeys(<redacted>)"


# An HMAC state per key with the key already absorbed, copied for each digest: the key's
# set-up is most of the cost of a short message's digest.
_KEYED: dict[bytes, hmac.HMAC] = {}
_LENGTH = struct.Struct(">I").pack


def keyed_digest(key: bytes, *parts: str) -> bytes:
    """HMAC-SHA256 over length-prefixed parts (no ambiguity between 'a:b' + 'c' and 'a' + 'b:c')."""
    keyed = _KEYED.get(key)
    if keyed is None:
        keyed = _KEYED.setdefault(key, hmac.new(key, digestmod="sha256"))
    mac = keyed.copy()
    for part in parts:
        data = part.encode()
        mac.update(_LENGTH(len(data)))
        mac.update(data)
    return mac.digest()
