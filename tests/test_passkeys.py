"""Passkeys (WebAuthn) end to end: a software authenticator (tests/softauthn.py) adds them and
signs in with them, on real PostgreSQL and Redis."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import cbor2
import httpx

from tests.conftest import PASSWORD, Harness, HarnessFactory, assert_problem
from tests.softauthn import SoftAuthenticator, b64url, from_b64url

# With no WEBAUTHN_* settings the relying party is the host the request was made to.
ORIGIN = "http://testserver"
RP_ID = "testserver"
EVIL = "http://evil.example"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def registration_options(h: Harness, user: dict[str, str]) -> dict[str, Any]:
    response = await h.client.post("/v1/me/passkeys/options", headers=user)
    assert response.status_code == 200, response.text
    options: dict[str, Any] = response.json()
    return options


async def register(
    h: Harness, user: dict[str, str], credential: dict[str, Any], name: str = "My phone"
) -> httpx.Response:
    return await h.client.post(
        "/v1/me/passkeys", headers=user, json={"name": name, "credential": credential}
    )


async def add_passkey(
    h: Harness, user: dict[str, str], authn: SoftAuthenticator, name: str = "My phone"
) -> dict[str, Any]:
    options = await registration_options(h, user)
    added = await register(h, user, authn.create(options, ORIGIN), name)
    assert added.status_code == 201, added.text
    body: dict[str, Any] = added.json()
    return body


async def sign_in_options(h: Harness) -> dict[str, Any]:
    response = await h.client.post("/v1/auth/passkey/options")
    assert response.status_code == 200, response.text
    options: dict[str, Any] = response.json()
    return options


async def assert_with(h: Harness, credential: dict[str, Any]) -> httpx.Response:
    return await h.client.post("/v1/auth/passkey", json={"credential": credential})


async def passkey_session(h: Harness, authn: SoftAuthenticator) -> dict[str, str]:
    signed_in = await assert_with(h, authn.get(await sign_in_options(h), ORIGIN))
    assert signed_in.status_code == 200, signed_in.text
    return bearer(signed_in.json()["access_token"])


async def passkeys_of(h: Harness, user: dict[str, str]) -> list[dict[str, Any]]:
    listed = await h.client.get("/v1/me/passkeys", headers=user)
    assert listed.status_code == 200, listed.text
    passkeys: list[dict[str, Any]] = listed.json()["passkeys"]
    return passkeys


async def account_id(h: Harness, user: dict[str, str]) -> uuid.UUID:
    me = await h.client.get("/v1/me", headers=user)
    assert me.status_code == 200, me.text
    return uuid.UUID(me.json()["id"])


# -- adding and signing in ------------------------------------------------------------------


async def test_add_a_passkey_list_it_and_sign_in_with_it(h: Harness) -> None:
    email, user = await h.user()
    authn = SoftAuthenticator()
    added = await add_passkey(h, user, authn, "Laptop")
    assert {"id", "name", "created_at"} <= added.keys()
    assert added["name"] == "Laptop"
    assert added["last_used_at"] is None
    assert [p["id"] for p in await passkeys_of(h, user)] == [added["id"]]

    signed_in = await assert_with(h, authn.get(await sign_in_options(h), ORIGIN))
    assert signed_in.status_code == 200, signed_in.text
    token = signed_in.json()
    assert token["token_type"].lower() == "bearer"
    me = await h.client.get("/v1/me", headers=bearer(token["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["email"] == email
    [listed] = await passkeys_of(h, user)
    assert listed["last_used_at"] is not None


async def test_the_options_ask_for_a_discoverable_credential_and_user_verification(
    h: Harness,
) -> None:
    _, user = await h.user()
    options = await registration_options(h, user)
    assert options["rp"]["id"] == RP_ID
    assert from_b64url(options["user"]["id"]) == (await account_id(h, user)).bytes
    selection = options["authenticatorSelection"]
    assert selection["residentKey"] == "required"
    assert selection["requireResidentKey"] is True
    assert selection["userVerification"] == "required"
    assert options["timeout"] == 300_000
    assert not options.get("excludeCredentials")
    # A passkey added is excluded next time (the authenticator does not make a second one).
    authn = SoftAuthenticator()
    await add_passkey(h, user, authn)
    again = await registration_options(h, user)
    assert [c["id"] for c in again["excludeCredentials"]] == [
        b64url(authn.credentials[0].credential_id)
    ]

    request = await sign_in_options(h)
    assert request["rpId"] == RP_ID
    assert request["userVerification"] == "required"
    assert not request.get("allowCredentials")  # discoverable: no account is named


async def test_a_passkey_sign_in_satisfies_require_mfa(harness_factory: HarnessFactory) -> None:
    # OIDC_REQUIRE_MFA needs no provider: it applies to the service's own sessions too.
    strict = await harness_factory(oidc_require_mfa=True)
    _, password_only = await strict.user()
    refused = await strict.client.post("/v1/me/support-pin", headers=password_only)
    assert_problem(refused, 403, "mfa_required_by_policy")
    authn = SoftAuthenticator()
    await add_passkey(strict, password_only, authn)
    with_passkey = await passkey_session(strict, authn)
    issued = await strict.client.post("/v1/me/support-pin", headers=with_passkey)
    assert issued.status_code == 201, issued.text


async def test_routes_need_a_session(h: Harness) -> None:
    assert_problem(await h.client.post("/v1/me/passkeys/options"), 401, "unauthenticated")
    assert_problem(await h.client.get("/v1/me/passkeys"), 401, "unauthenticated")
    assert_problem(await h.client.delete(f"/v1/me/passkeys/{uuid.uuid4()}"), 401, "unauthenticated")


# -- challenges -----------------------------------------------------------------------------


async def test_a_sign_in_challenge_is_single_use(h: Harness) -> None:
    _, user = await h.user()
    authn = SoftAuthenticator()
    await add_passkey(h, user, authn)
    assertion = authn.get(await sign_in_options(h), ORIGIN)
    assert (await assert_with(h, assertion)).status_code == 200
    assert_problem(await assert_with(h, assertion), 401, "invalid_credentials")
    # A fresh signature over the used challenge (a higher sign count) does no better.
    used = {"rpId": RP_ID, "challenge": b64url(challenge_of(assertion))}
    assert_problem(await assert_with(h, authn.get(used, ORIGIN)), 401, "invalid_credentials")


def challenge_of(assertion: dict[str, Any]) -> bytes:
    """The challenge an assertion signed."""
    client_data = json.loads(from_b64url(assertion["response"]["clientDataJSON"]))
    return from_b64url(client_data["challenge"])


async def test_a_registration_challenge_is_single_use(h: Harness) -> None:
    _, user = await h.user()
    options = await registration_options(h, user)
    authn = SoftAuthenticator()
    first = await register(h, user, authn.create(options, ORIGIN))
    assert first.status_code == 201, first.text
    second = await register(h, user, authn.create(options, ORIGIN))
    assert_problem(second, 400, "passkey_refused")
    assert len(await passkeys_of(h, user)) == 1


async def test_a_challenge_the_service_did_not_issue_is_refused(h: Harness) -> None:
    _, user = await h.user()
    authn = SoftAuthenticator()
    # Registration: a made-up challenge, with or without one pending for the account.
    made_up = {**await registration_options(h, user), "challenge": b64url(b"x" * 64)}
    assert_problem(await register(h, user, authn.create(made_up, ORIGIN)), 400, "passkey_refused")
    assert_problem(await register(h, user, authn.create(made_up, ORIGIN)), 400, "passkey_refused")
    # Another account's challenge is no good either: it is bound to that account.
    _, other = await h.user()
    theirs = await registration_options(h, other)
    await registration_options(h, user)
    assert_problem(await register(h, user, authn.create(theirs, ORIGIN)), 400, "passkey_refused")
    assert await passkeys_of(h, user) == []

    await add_passkey(h, user, authn)
    forged = {"rpId": RP_ID, "challenge": b64url(b"y" * 64)}
    assert_problem(await assert_with(h, authn.get(forged, ORIGIN)), 401, "invalid_credentials")


async def test_challenges_expire_after_five_minutes(h: Harness) -> None:
    """Not waited for: the Redis keys holding the challenges carry the expiry."""
    _, user = await h.user()
    await registration_options(h, user)
    redis = h.services.redis
    registering = redis.keys.passkey_registration(await account_id(h, user))
    assert 290 <= await redis.client.ttl(registering) <= 300
    challenge = from_b64url((await sign_in_options(h))["challenge"])
    signing_in = redis.keys.passkey_sign_in(hashlib.sha256(challenge).hexdigest())
    assert 290 <= await redis.client.ttl(signing_in) <= 300
    # An expired challenge is a missing key: the sign-in is refused.
    authn = SoftAuthenticator()
    await add_passkey(h, user, authn)
    options = await sign_in_options(h)
    expired = redis.keys.passkey_sign_in(
        hashlib.sha256(from_b64url(options["challenge"])).hexdigest()
    )
    await redis.client.delete(expired)
    assert_problem(await assert_with(h, authn.get(options, ORIGIN)), 401, "invalid_credentials")


# -- what the authenticator and the browser vouch for ---------------------------------------


async def test_user_verification_is_required(h: Harness) -> None:
    _, user = await h.user()
    authn = SoftAuthenticator()
    unverified = authn.create(await registration_options(h, user), ORIGIN, user_verified=False)
    assert_problem(await register(h, user, unverified), 400, "passkey_refused")
    await add_passkey(h, user, authn)
    assertion = authn.get(await sign_in_options(h), ORIGIN, user_verified=False)
    assert_problem(await assert_with(h, assertion), 401, "invalid_credentials")


async def test_another_origin_or_relying_party_is_refused(h: Harness) -> None:
    _, user = await h.user()
    authn = SoftAuthenticator()
    phished = authn.create(await registration_options(h, user), EVIL)
    assert_problem(await register(h, user, phished), 400, "passkey_refused")
    elsewhere = await registration_options(h, user)
    elsewhere["rp"]["id"] = "evil.example"
    assert_problem(await register(h, user, authn.create(elsewhere, ORIGIN)), 400, "passkey_refused")
    assert await passkeys_of(h, user) == []

    await add_passkey(h, user, authn)
    assertion = authn.get(await sign_in_options(h), EVIL)
    assert_problem(await assert_with(h, assertion), 401, "invalid_credentials")
    # Signed for another relying party (the id hash in authenticatorData differs).
    options = {**await sign_in_options(h), "rpId": "evil.example"}
    authn.credentials[-1].rp_id = "evil.example"
    assert_problem(await assert_with(h, authn.get(options, ORIGIN)), 401, "invalid_credentials")


async def test_the_user_handle_must_be_the_passkeys_account(h: Harness) -> None:
    _, user = await h.user()
    _, other = await h.user()
    authn = SoftAuthenticator()
    await add_passkey(h, user, authn)
    authn.credentials[-1].user_handle = (await account_id(h, other)).bytes
    assertion = authn.get(await sign_in_options(h), ORIGIN)
    assert_problem(await assert_with(h, assertion), 401, "invalid_credentials")


async def test_the_sign_count_goes_up_and_a_cloned_authenticator_is_refused(
    h: Harness, pg: asyncpg.Connection
) -> None:
    _, user = await h.user()
    authn = SoftAuthenticator()
    added = await add_passkey(h, user, authn)

    async def stored_count() -> int:
        count: int = await pg.fetchval(
            "SELECT sign_count FROM passkeys WHERE id = $1", uuid.UUID(added["id"])
        )
        return count

    assert await stored_count() == 0
    await passkey_session(h, authn)
    await passkey_session(h, authn)
    assert await stored_count() == 2
    # A copy of the key that signs with a count the service has seen already.
    authn.credentials[-1].sign_count = 1
    assertion = authn.get(await sign_in_options(h), ORIGIN)
    assert_problem(await assert_with(h, assertion), 401, "invalid_credentials")
    assert await stored_count() == 2


# -- removing -------------------------------------------------------------------------------


async def test_a_removed_passkey_no_longer_signs_in(h: Harness) -> None:
    _, user = await h.user()
    authn = SoftAuthenticator()
    added = await add_passkey(h, user, authn)
    removed = await h.client.delete(f"/v1/me/passkeys/{added['id']}", headers=user)
    assert removed.status_code == 204, removed.text
    assert await passkeys_of(h, user) == []
    assertion = authn.get(await sign_in_options(h), ORIGIN)
    assert_problem(await assert_with(h, assertion), 401, "invalid_credentials")
    again = await h.client.delete(f"/v1/me/passkeys/{added['id']}", headers=user)
    assert_problem(again, 404, "not_found")


async def test_another_account_cannot_remove_my_passkey(h: Harness) -> None:
    _, user = await h.user()
    _, other = await h.user()
    authn = SoftAuthenticator()
    added = await add_passkey(h, user, authn)
    refused = await h.client.delete(f"/v1/me/passkeys/{added['id']}", headers=other)
    assert_problem(refused, 404, "not_found")
    assert await passkeys_of(h, other) == []
    assert [p["id"] for p in await passkeys_of(h, user)] == [added["id"]]
    await passkey_session(h, authn)


async def test_deleting_the_account_removes_its_passkeys(
    h: Harness, pg: asyncpg.Connection
) -> None:
    _, user = await h.user()
    authn = SoftAuthenticator()
    await add_passkey(h, user, authn)
    owner = await account_id(h, user)
    deleted = await h.client.request("DELETE", "/v1/me", headers=user, json={"password": PASSWORD})
    assert deleted.status_code == 204, deleted.text
    assertion = authn.get(await sign_in_options(h), ORIGIN)
    assert_problem(await assert_with(h, assertion), 401, "invalid_credentials")
    assert await pg.fetchval("SELECT count(*) FROM passkeys WHERE account_id = $1", owner) == 0


async def test_the_events_list_shows_passkeys_added_and_removed(h: Harness) -> None:
    _, user = await h.user()
    added = await add_passkey(h, user, SoftAuthenticator())
    await h.client.delete(f"/v1/me/passkeys/{added['id']}", headers=user)
    types = [event["type"] for event in await h.events(user)]
    assert types[:2] == ["passkey_removed", "passkey_added"]


# -- malformed input is refused, never a 500 ------------------------------------------------


async def test_a_credential_id_already_registered_is_refused(h: Harness) -> None:
    _, user = await h.user()
    _, other = await h.user()
    authn = SoftAuthenticator()
    await add_passkey(h, user, authn)
    taken = authn.credentials[-1].credential_id
    for account in (user, other):
        copy = SoftAuthenticator().create(
            await registration_options(h, account), ORIGIN, credential_id=taken
        )
        assert_problem(await register(h, account, copy), 400, "passkey_refused")
    assert await passkeys_of(h, other) == []


def with_public_key(credential: dict[str, Any], cose_key: Any) -> dict[str, Any]:
    """The registration credential with another COSE key in its authenticator data."""
    attestation = cbor2.loads(from_b64url(credential["response"]["attestationObject"]))
    auth_data: bytes = attestation["authData"]
    id_length = int.from_bytes(auth_data[53:55], "big")
    attestation["authData"] = auth_data[: 55 + id_length] + cbor2.dumps(cose_key)
    response = {**credential["response"], "attestationObject": b64url(cbor2.dumps(attestation))}
    return {**credential, "response": response}


Mutation = Callable[[dict[str, Any]], dict[str, Any]]


def in_response(**fields: Any) -> Mutation:
    return lambda credential: {**credential, "response": {**credential["response"], **fields}}


async def test_malformed_registrations_are_400(h: Harness) -> None:
    _, user = await h.user()
    authn = SoftAuthenticator()
    mutations: list[Mutation] = [
        lambda _: {},
        lambda good: {**good, "rawId": "!!!", "id": "!!!"},
        lambda good: {**good, "rawId": "a", "id": "a"},
        lambda good: {**good, "type": "password"},
        in_response(attestationObject=b64url(b"\xff\x00")),
        in_response(attestationObject=b64url(cbor2.dumps([1]))),
        in_response(clientDataJSON=b64url(b"[1]")),
        lambda good: with_public_key(good, 7),  # not a map
        lambda good: with_public_key(good, {1: 99, 3: -7}),  # an unknown key type
        lambda good: with_public_key(good, {1: 2, 3: -7, -1: 99, -2: b"x", -3: b"y"}),  # curve
        lambda good: with_public_key(good, {1: 2, 3: -7, -1: 1, -2: b"x", -3: b"y"}),  # point
    ]
    for mutate in mutations:
        credential = mutate(authn.create(await registration_options(h, user), ORIGIN))
        assert_problem(await register(h, user, credential), 400, "passkey_refused")
    assert await passkeys_of(h, user) == []


async def test_malformed_assertions_are_401(h: Harness) -> None:
    _, user = await h.user()
    authn = SoftAuthenticator()
    await add_passkey(h, user, authn)
    mutations: list[Mutation] = [
        lambda _: {},
        lambda good: {**good, "rawId": "!!!"},
        lambda good: {**good, "rawId": "a", "id": "a"},
        lambda good: {**good, "type": "password"},
        lambda good: {**good, "authenticatorAttachment": "elsewhere"},
        in_response(clientDataJSON=b64url(b"not json")),
        in_response(clientDataJSON=b64url(b"\xff")),
        in_response(clientDataJSON=b64url(b"[1]")),
        in_response(clientDataJSON=b64url(b'{"challenge": 7}')),
        in_response(clientDataJSON=b64url(b'{"challenge": "a"}')),
        in_response(signature=b64url(b"\x00")),
        in_response(signature="!"),
        in_response(authenticatorData=b64url(b"\x00")),
        in_response(userHandle=7),
        in_response(userHandle=b64url(b"someone else")),
    ]
    for mutate in mutations:
        credential = mutate(authn.get(await sign_in_options(h), ORIGIN))
        assert_problem(await assert_with(h, credential), 401, "invalid_credentials")
    # None of them was taken for a use of the passkey.
    await passkey_session(h, authn)
