"""Passkeys (WebAuthn, py_webauthn): phishing-resistant sign-in for customers.

A passkey is a discoverable credential with user verification, so a passkey sign-in is a
complete sign-in with two factors (something held, and a PIN or biometric on the device): no
second step, and it satisfies OIDC_REQUIRE_MFA. Challenges are single use and live 5
minutes: the one of a passkey being added is bound to the account, the one of a sign-in is
found by its own value (it is what the authenticator signs)."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    decode_credential_public_key,
    decoded_public_key_to_cryptography,
    parse_authentication_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from service.audit import AuditLog
from service.errors import InvalidCredentials, NotFound, ServiceError
from service.models import AuditEvent, EventType
from service.persistence import passkeys as sql
from service.persistence.db import Database
from service.redis_store import RedisStore
from service.sessions import SessionStore

CHALLENGE_SECONDS = 300


class PasskeyRefused(ServiceError):
    status = 400
    code = "passkey_refused"
    title = "Passkey refused"
    detail = "The passkey could not be checked; try adding it again."


@dataclass(frozen=True)
class RelyingParty:
    """Who the passkeys are for: the id (the site's domain) and the page origin."""

    id: str
    origin: str
    name: str


@dataclass(frozen=True)
class Passkey:
    id: UUID
    name: str
    created_at: datetime
    last_used_at: datetime | None

    @classmethod
    def of(cls, row: asyncpg.Record) -> Passkey:
        return cls(row["id"], row["name"], row["created_at"], row["last_used_at"])


class Passkeys:
    def __init__(
        self, db: Database, redis: RedisStore, audit: AuditLog, sessions: SessionStore
    ) -> None:
        self._db = db
        self._redis = redis
        self._audit = audit
        self._sessions = sessions

    # -- adding and managing -------------------------------------------------------------

    async def registration_options(
        self, rp: RelyingParty, account_id: UUID, user_name: str
    ) -> dict[str, Any]:
        async with self._db.connection() as conn:
            existing = await sql.credential_ids(conn, account_id)
        options = generate_registration_options(
            rp_id=rp.id,
            rp_name=rp.name,
            user_id=account_id.bytes,
            user_name=user_name,
            user_display_name=user_name,
            timeout=CHALLENGE_SECONDS * 1000,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            exclude_credentials=[PublicKeyCredentialDescriptor(id=cid) for cid in existing],
        )
        async with self._redis.guard():
            await self._redis.client.set(
                self._redis.keys.passkey_registration(account_id),
                options.challenge,
                ex=CHALLENGE_SECONDS,
            )
        parsed: dict[str, Any] = json.loads(options_to_json(options))
        return parsed

    async def add(
        self, rp: RelyingParty, account_id: UUID, name: str, credential: dict[str, Any]
    ) -> Passkey:
        async with self._redis.guard():
            challenge = await self._redis.client.getdel(
                self._redis.keys.passkey_registration(account_id)
            )
        if not isinstance(challenge, bytes):
            raise PasskeyRefused("Start again: the passkey request has expired or was used.")
        try:
            verified = verify_registration_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=rp.id,
                expected_origin=rp.origin,
                require_user_verification=True,
            )
            # A key it could never check a signature with (an unknown curve, a point off it).
            decoded_public_key_to_cryptography(
                decode_credential_public_key(verified.credential_public_key)
            )
        except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
            # Any WebAuthnException: a key of an unknown type or curve, bad CBOR, … as well.
            raise PasskeyRefused() from exc
        try:
            async with self._db.transaction() as conn:
                row = await sql.add(
                    conn,
                    account_id,
                    verified.credential_id,
                    verified.credential_public_key,
                    verified.sign_count,
                    name,
                )
                await self._audit.insert(
                    conn, AuditEvent(EventType.PASSKEY_ADDED, account_id, reason=name[:64])
                )
        except asyncpg.UniqueViolationError as exc:  # a credential id added before
            raise PasskeyRefused() from exc
        return Passkey.of(row)

    async def list(self, account_id: UUID) -> list[Passkey]:
        async with self._db.connection() as conn:
            return [Passkey.of(row) for row in await sql.of_account(conn, account_id)]

    async def remove(self, account_id: UUID, passkey_id: UUID) -> None:
        async with self._db.transaction() as conn:
            name = await sql.remove(conn, account_id, passkey_id)
            if name is None:
                raise NotFound("No such passkey.")
            await self._audit.insert(
                conn, AuditEvent(EventType.PASSKEY_REMOVED, account_id, reason=name[:64])
            )

    # -- signing in ---------------------------------------------------------------------

    async def sign_in_options(self, rp: RelyingParty) -> dict[str, Any]:
        """Options for a discoverable credential: no email asked, no account named."""
        options = generate_authentication_options(
            rp_id=rp.id,
            timeout=CHALLENGE_SECONDS * 1000,
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        async with self._redis.guard():
            await self._redis.client.set(
                self._challenge_key(options.challenge), b"1", ex=CHALLENGE_SECONDS
            )
        parsed: dict[str, Any] = json.loads(options_to_json(options))
        return parsed

    def _challenge_key(self, challenge: bytes) -> str:
        return self._redis.keys.passkey_sign_in(hashlib.sha256(challenge).hexdigest())

    async def sign_in(self, rp: RelyingParty, credential: dict[str, Any]) -> str:
        """A session (a sign-in with two factors) for a right assertion; `InvalidCredentials`
        for anything else, with no hint which part was wrong."""
        try:
            parsed = parse_authentication_credential_json(json.dumps(credential))
            client_data = json.loads(parsed.response.client_data_json)
            challenge = base64.urlsafe_b64decode(client_data["challenge"] + "==")
        except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
            raise InvalidCredentials("The passkey was not accepted.") from exc
        async with self._redis.guard():
            fresh = await self._redis.client.getdel(self._challenge_key(challenge))
        async with self._db.connection() as conn:
            row = await sql.by_credential_id(conn, parsed.raw_id)
        if not fresh or row is None:
            raise InvalidCredentials("The passkey was not accepted.")
        if parsed.response.user_handle and parsed.response.user_handle != row["account_id"].bytes:
            raise InvalidCredentials("The passkey was not accepted.")
        try:
            verified = verify_authentication_response(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=rp.id,
                expected_origin=rp.origin,
                credential_public_key=row["public_key"],
                credential_current_sign_count=row["sign_count"],
                require_user_verification=True,
            )
        except (WebAuthnException, ValueError) as exc:
            raise InvalidCredentials("The passkey was not accepted.") from exc
        async with self._db.connection() as conn:
            if not await sql.used(conn, row["id"], verified.new_sign_count):
                raise InvalidCredentials("The passkey was not accepted.")
        account_id: UUID = row["account_id"]
        return await self._sessions.create(account_id, mfa=True)
