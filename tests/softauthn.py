"""A software authenticator for tests: what a browser and a platform authenticator would
answer to navigator.credentials.create() and .get(), shaped like WebAuthn Level 3's toJSON().

Credentials are EC P-256 (ES256) and discoverable; attestation is "none". Nothing is checked
on the authenticator's side beyond finding a credential for the relying party."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP = 0x01  # user present
UV = 0x04  # user verified
AT = 0x40  # attested credential data included
ES256 = -7


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def from_b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Credential:
    """A discoverable credential held by the authenticator."""

    credential_id: bytes
    rp_id: str
    user_handle: bytes
    private_key: ec.EllipticCurvePrivateKey
    sign_count: int = 0

    def cose_public_key(self) -> bytes:
        numbers = self.private_key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,  # kty: EC2
                3: ES256,  # alg
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )


def _client_data(kind: str, challenge: str, origin: str) -> bytes:
    return json.dumps(
        {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False},
        separators=(",", ":"),
    ).encode()


def _rp_id_hash(rp_id: str) -> bytes:
    return hashlib.sha256(rp_id.encode()).digest()


class SoftAuthenticator:
    """Holds credentials in memory; `create` makes one, `get` signs with one."""

    def __init__(self) -> None:
        self.credentials: list[Credential] = []

    def create(
        self,
        options: dict[str, Any],
        origin: str,
        *,
        user_verified: bool = True,
        credential_id: bytes | None = None,
    ) -> dict[str, Any]:
        """A registration credential for PublicKeyCredentialCreationOptions (as JSON); a
        credential id may be given (as a misbehaving client would reuse one)."""
        rp_id: str = options["rp"]["id"]
        credential = Credential(
            credential_id=credential_id or secrets.token_bytes(32),
            rp_id=rp_id,
            user_handle=from_b64url(options["user"]["id"]),
            private_key=ec.generate_private_key(ec.SECP256R1()),
        )
        client_data = _client_data("webauthn.create", options["challenge"], origin)
        auth_data = (
            _rp_id_hash(rp_id)
            + bytes([UP | (UV if user_verified else 0) | AT])
            + credential.sign_count.to_bytes(4, "big")
            + bytes(16)  # aaguid
            + len(credential.credential_id).to_bytes(2, "big")
            + credential.credential_id
            + credential.cose_public_key()
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        self.credentials.append(credential)
        return {
            "id": b64url(credential.credential_id),
            "rawId": b64url(credential.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def credential_for(self, rp_id: str) -> Credential:
        """The newest credential for the relying party (what a user would pick)."""
        for credential in reversed(self.credentials):
            if credential.rp_id == rp_id:
                return credential
        raise LookupError(f"no credential for {rp_id!r}")

    def get(
        self,
        options: dict[str, Any],
        origin: str,
        *,
        user_verified: bool = True,
        credential: Credential | None = None,
    ) -> dict[str, Any]:
        """An assertion for PublicKeyCredentialRequestOptions (as JSON), by a discoverable
        credential for options["rpId"] (or the one given)."""
        rp_id: str = options["rpId"]
        chosen = credential or self.credential_for(rp_id)
        chosen.sign_count += 1
        client_data = _client_data("webauthn.get", options["challenge"], origin)
        auth_data = (
            _rp_id_hash(rp_id)
            + bytes([UP | (UV if user_verified else 0)])
            + chosen.sign_count.to_bytes(4, "big")
        )
        signature = chosen.private_key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return {
            "id": b64url(chosen.credential_id),
            "rawId": b64url(chosen.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(chosen.user_handle),
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }
