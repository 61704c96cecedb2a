"""Sign-in through the company's OpenID provider and its access tokens, against a real
provider (npm's oidc-provider, tests/idp.py) on loopback.

Each test gets a provider of its own (a new issuer), so the accounts it links are its own."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc.jwk import RSAKey

from tests.conftest import INVALID, PASSWORD, Harness, HarnessFactory, assert_problem
from tests.idp import DEFAULT_USERS, IDP_PASSWORD, IdentityProvider, new_rsa_jwk

SERVICE_CLIENT: dict[str, Any] = {
    "client_id": "support-pin",
    "client_secret": "service-client-secret-" + "s" * 24,
    "redirect_uris": ["http://testserver/v1/auth/oidc/callback"],
}
# The company's own front end, which gets access tokens for the service's audience.
FRONT_END: dict[str, Any] = {
    "client_id": "company-web",
    "client_secret": "front-end-secret-" + "f" * 24,
    "redirect_uris": ["http://127.0.0.1:9/callback"],
}
HTML = {"accept": "text/html,application/xhtml+xml"}


def users_of_this_test() -> dict[str, dict[str, Any]]:
    """The default users with addresses no other test uses (the database is shared)."""
    tag = secrets.token_hex(4)
    return {
        name: {**user, "email": user["email"].replace("@", f"+{tag}@")}
        for name, user in DEFAULT_USERS.items()
    }


@pytest.fixture
def idp() -> Iterator[IdentityProvider]:
    with IdentityProvider.start(
        users=users_of_this_test(), clients=[SERVICE_CLIENT, FRONT_END]
    ) as provider:
        yield provider


def oidc_settings(idp: IdentityProvider, **more: Any) -> dict[str, Any]:
    return {
        "oidc_issuer": idp.issuer,
        "oidc_client_id": SERVICE_CLIENT["client_id"],
        "oidc_client_secret": SERVICE_CLIENT["client_secret"],
        "oidc_audience": idp.audience,
        "oidc_display_name": "Acme ID",
        **more,
    }


@pytest.fixture
async def oh(harness_factory: HarnessFactory, idp: IdentityProvider) -> Harness:
    return await harness_factory(**oidc_settings(idp))


@pytest.fixture
async def browser() -> AsyncIterator[httpx.AsyncClient]:
    """The person's browser at the provider (its own cookies)."""
    async with httpx.AsyncClient(timeout=10.0) as client:
        yield client


async def token_of(idp: IdentityProvider, user: str) -> str:
    answer = await idp.access_token(
        user,
        IDP_PASSWORD,
        client_id=FRONT_END["client_id"],
        client_secret=FRONT_END["client_secret"],
        redirect_uri=FRONT_END["redirect_uris"][0],
    )
    token: str = answer["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def start_sign_in(h: Harness, next_path: str = "/account") -> str:
    """The provider's authorization URL our login route redirects to."""
    response = await h.client.get("/v1/auth/oidc/login", params={"next": next_path})
    assert response.status_code == 302, response.text
    location: str = response.headers["location"]
    return location


async def sign_in_through_provider(
    h: Harness, idp: IdentityProvider, browser: httpx.AsyncClient, user: str
) -> tuple[str, str]:
    """The whole browser flow: the session token and where the page goes next."""
    callback = await idp.login(browser, await start_sign_in(h), user, IDP_PASSWORD)
    landed = await h.client.get(callback, headers=HTML)
    assert landed.status_code == 302, landed.text
    fragment = urlsplit(landed.headers["location"]).fragment
    assert fragment.startswith("sso="), landed.headers["location"]
    answer = await h.client.post("/v1/auth/oidc/token", json={"code": fragment[4:]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    return body["access_token"], body["next"]


def claims_for(idp: IdentityProvider, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": idp.issuer,
        "sub": "alice",
        "aud": idp.audience,
        "iat": now,
        "exp": now + 600,
        "email": idp.users["alice"]["email"],
        "email_verified": True,
    }
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- the browser flow ---------------------------------------------------------------------


async def test_sign_in_methods_name_the_provider(h: Harness, oh: Harness) -> None:
    off = await h.client.get("/v1/auth/methods")
    assert off.json() == {"password": True, "oidc": None}
    on = (await oh.client.get("/v1/auth/methods")).json()
    assert on["password"] is True
    assert on["oidc"]["display_name"] == "Acme ID"
    assert on["oidc"]["login_url"].startswith("/v1/auth/oidc/login")


async def test_login_redirects_with_pkce_state_and_nonce(
    oh: Harness, idp: IdentityProvider
) -> None:
    location = await start_sign_in(oh)
    assert location.startswith(idp.authorization_endpoint + "?")
    query = {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}
    assert query["response_type"] == "code"
    assert query["client_id"] == SERVICE_CLIENT["client_id"]
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43  # base64url of a SHA-256
    assert len(query["state"]) >= 20
    assert len(query["nonce"]) >= 20
    assert query["redirect_uri"] == SERVICE_CLIENT["redirect_uris"][0]
    assert set(query["scope"].split()) == {"openid", "email", "profile"}


async def test_login_without_a_provider_is_404(h: Harness) -> None:
    assert_problem(await h.client.get("/v1/auth/oidc/login"), 404, "oidc_not_configured")
    assert_problem(
        await h.client.get("/v1/auth/oidc/callback?state=x&code=y"), 404, "oidc_not_configured"
    )


@pytest.mark.parametrize(
    "next_path", ["//evil.example/", "https://evil.example/", "/\\evil.example", "account"]
)
async def test_next_must_be_a_path_of_this_service(oh: Harness, next_path: str) -> None:
    response = await oh.client.get("/v1/auth/oidc/login", params={"next": next_path})
    assert_problem(response, 422, "validation_error")


async def test_browser_flow_signs_in_and_a_pin_is_issued(
    oh: Harness, idp: IdentityProvider, browser: httpx.AsyncClient
) -> None:
    token, next_path = await sign_in_through_provider(oh, idp, browser, "alice")
    assert next_path == "/account"
    assert token.startswith("sps_")  # a session of ours, never the provider's token
    me = (await oh.client.get("/v1/me", headers=bearer(token))).json()
    assert me["email"] == idp.users["alice"]["email"]
    assert me["sign_in_methods"] == ["oidc"]
    pin = await oh.issue_pin(bearer(token))
    _, agent = await oh.agent()
    assert (await oh.verify(agent, me["email"], pin))["account_id"] == me["id"]
    # Signing in again finds the same account.
    again, _ = await sign_in_through_provider(oh, idp, browser, "alice")
    assert (await oh.client.get("/v1/me", headers=bearer(again))).json()["id"] == me["id"]


async def test_the_one_time_code_works_once(
    oh: Harness, idp: IdentityProvider, browser: httpx.AsyncClient
) -> None:
    callback = await idp.login(browser, await start_sign_in(oh), "alice", IDP_PASSWORD)
    landed = await oh.client.get(callback, headers=HTML)
    code = urlsplit(landed.headers["location"]).fragment.removeprefix("sso=")
    assert (await oh.client.post("/v1/auth/oidc/token", json={"code": code})).status_code == 200
    again = await oh.client.post("/v1/auth/oidc/token", json={"code": code})
    assert assert_problem(again, 400, "oidc_failed")["reason"] == "code"
    # The session token never travels in a URL: only the code does, in the fragment.
    assert "sps_" not in landed.headers["location"]


async def test_a_replayed_state_is_refused(
    oh: Harness, idp: IdentityProvider, browser: httpx.AsyncClient
) -> None:
    callback = await idp.login(browser, await start_sign_in(oh), "alice", IDP_PASSWORD)
    assert (await oh.client.get(callback, headers=HTML)).status_code == 302
    replayed = await oh.client.get(callback)
    assert assert_problem(replayed, 400, "oidc_failed")["reason"] == "state"
    in_a_browser = await oh.client.get(callback, headers=HTML)
    assert in_a_browser.status_code == 302
    assert in_a_browser.headers["location"] == "/#sso_error=state"


async def test_a_forged_state_is_refused(
    oh: Harness, idp: IdentityProvider, browser: httpx.AsyncClient
) -> None:
    callback = await idp.login(browser, await start_sign_in(oh), "alice", IDP_PASSWORD)
    real_state = parse_qs(urlsplit(callback).query)["state"][0]
    forged = callback.replace(real_state, secrets.token_urlsafe(32))
    assert assert_problem(await oh.client.get(forged), 400, "oidc_failed")["reason"] == "state"
    # The real state from another browser (no flow cookie) is refused too...
    async with oh.new_client() as other_browser:
        stolen = await other_browser.get(callback)
    assert assert_problem(stolen, 400, "oidc_failed")["reason"] == "state"
    # ...and is still good in the browser that started the flow.
    assert (await oh.client.get(callback, headers=HTML)).status_code == 302


async def test_an_error_from_the_provider_ends_the_flow(oh: Harness) -> None:
    location = await start_sign_in(oh)
    state = parse_qs(urlsplit(location).query)["state"][0]
    refused = await oh.client.get(
        "/v1/auth/oidc/callback",
        params={"error": "access_denied", "state": state},
        headers=HTML,
    )
    assert refused.headers["location"] == "/#sso_error=provider_error"
    # The flow is over: its state does not work a second time.
    again = await oh.client.get("/v1/auth/oidc/callback", params={"code": "x", "state": state})
    assert assert_problem(again, 400, "oidc_failed")["reason"] == "state"


async def test_a_wrong_code_is_refused(oh: Harness) -> None:
    location = await start_sign_in(oh)
    state = parse_qs(urlsplit(location).query)["state"][0]
    refused = await oh.client.get(
        "/v1/auth/oidc/callback", params={"code": "made-up", "state": state}
    )
    assert assert_problem(refused, 400, "oidc_failed")["reason"] == "token"


# -- linking ------------------------------------------------------------------------------


async def test_a_verified_address_links_the_existing_account(
    oh: Harness, idp: IdentityProvider, browser: httpx.AsyncClient
) -> None:
    email = await oh.signup(idp.users["alice"]["email"])
    password_token = await oh.sign_in(email)
    mine = (await oh.client.get("/v1/me", headers=bearer(password_token))).json()
    pin = await oh.issue_pin(bearer(password_token))

    token, _ = await sign_in_through_provider(oh, idp, browser, "alice")
    me = (await oh.client.get("/v1/me", headers=bearer(token))).json()
    assert me["id"] == mine["id"]
    assert me["sign_in_methods"] == ["password", "oidc"]
    # The account keeps its PIN and events.
    assert (await oh.client.get("/v1/me/support-pin", headers=bearer(token))).json()["active"]
    events = await oh.events(bearer(token))
    assert [event["type"] for event in events] == ["issued"]
    _, agent = await oh.agent()
    assert (await oh.verify(agent, email, pin))["valid"] is True


async def test_an_unverified_address_makes_a_new_account_without_it(
    oh: Harness, idp: IdentityProvider, browser: httpx.AsyncClient
) -> None:
    email = await oh.signup(idp.users["bob"]["email"])  # bob's provider address: unverified
    password_token = await oh.sign_in(email)
    mine = (await oh.client.get("/v1/me", headers=bearer(password_token))).json()

    token, _ = await sign_in_through_provider(oh, idp, browser, "bob")
    me = (await oh.client.get("/v1/me", headers=bearer(token))).json()
    assert me["id"] != mine["id"]
    assert me["email"] is None
    assert me["sign_in_methods"] == ["oidc"]
    # Agents cannot reach it by the address the provider did not vouch for: only by subject.
    pin = await oh.issue_pin(bearer(token))
    _, agent = await oh.agent()
    by_email = await oh.verify(agent, email, pin)
    assert by_email == INVALID
    by_subject = await oh.client.post(
        "/v1/agent/verifications", headers=agent, json={"subject": "bob", "pin": pin}
    )
    assert by_subject.json()["account_id"] == me["id"]


async def test_an_unverified_address_is_not_stored_even_when_free(
    oh: Harness, idp: IdentityProvider, browser: httpx.AsyncClient
) -> None:
    token, _ = await sign_in_through_provider(oh, idp, browser, "bob")
    me = (await oh.client.get("/v1/me", headers=bearer(token))).json()
    assert me["email"] is None
    # The address is still free for whoever owns it.
    assert await oh.signup(idp.users["bob"]["email"])


async def test_a_provider_account_has_no_password(
    oh: Harness, idp: IdentityProvider, browser: httpx.AsyncClient
) -> None:
    await sign_in_through_provider(oh, idp, browser, "alice")
    refused = await oh.client.post(
        "/v1/auth/token", data={"username": idp.users["alice"]["email"], "password": PASSWORD}
    )
    assert_problem(refused, 401, "invalid_credentials")


# -- the provider's access tokens ---------------------------------------------------------


async def test_an_access_token_issues_a_pin_and_reads_events(
    oh: Harness, idp: IdentityProvider
) -> None:
    token = await token_of(idp, "alice")
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["typ"] == "at+jwt"
    response = await oh.client.post("/v1/me/support-pin", headers=bearer(token))
    assert response.status_code == 201, response.text
    pin = response.json()["pin"]
    me = (await oh.client.get("/v1/me", headers=bearer(token))).json()
    assert me["email"] == idp.users["alice"]["email"]
    assert me["sign_in_methods"] == ["oidc"]
    _, agent = await oh.agent()
    assert (await oh.verify(agent, me["email"], pin))["valid"] is True
    events = await oh.events(bearer(token))
    assert [event["type"] for event in events] == ["verified", "issued"]


async def test_a_token_and_a_browser_sign_in_share_the_account(
    oh: Harness, idp: IdentityProvider, browser: httpx.AsyncClient
) -> None:
    token = await token_of(idp, "alice")
    by_token = (await oh.client.get("/v1/me", headers=bearer(token))).json()
    session, _ = await sign_in_through_provider(oh, idp, browser, "alice")
    by_session = (await oh.client.get("/v1/me", headers=bearer(session))).json()
    assert by_token["id"] == by_session["id"]


def _hs256_with_public_key(idp: IdentityProvider) -> str:
    public = RSAKey.import_key(idp.jwks["keys"][0]).as_pem(private=False)
    header = {"alg": "HS256", "kid": idp.jwks["keys"][0]["kid"], "typ": "at+jwt"}
    signing_input = (
        f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims_for(idp)).encode())}"
    )
    signature = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def _unsigned(idp: IdentityProvider) -> str:
    header = {"alg": "none", "kid": idp.jwks["keys"][0]["kid"], "typ": "at+jwt"}
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims_for(idp)).encode())}."


def _tampered_signature(idp: IdentityProvider) -> str:
    header, payload, signature = idp.sign(claims_for(idp)).split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[len(raw) // 2] ^= 0x01
    return f"{header}.{payload}.{b64(bytes(raw))}"


def _tampered_claims(idp: IdentityProvider) -> str:
    header, _, signature = idp.sign(claims_for(idp)).split(".")
    changed = b64(json.dumps(claims_for(idp, sub="mallory")).encode())
    return f"{header}.{changed}.{signature}"


REFUSED_TOKENS: dict[str, Callable[[IdentityProvider], str]] = {
    "alg none": _unsigned,
    "HS256 signed with the provider's public key": _hs256_with_public_key,
    "wrong iss": lambda idp: idp.sign(claims_for(idp, iss="https://evil.example")),
    "wrong aud": lambda idp: idp.sign(claims_for(idp, aud="another-api")),
    "no aud": lambda idp: idp.sign(claims_for(idp, aud=None)),
    "expired": lambda idp: idp.sign(claims_for(idp, exp=int(time.time()) - 61)),
    "nbf in the future": lambda idp: idp.sign(claims_for(idp, nbf=int(time.time()) + 120)),
    "no kid": lambda idp: idp.sign(claims_for(idp), header={"kid": None}),
    "a kid the provider never had": lambda idp: idp.sign(
        claims_for(idp), key=new_rsa_jwk("never-published")
    ),
    "tampered signature": _tampered_signature,
    "claims changed after signing": _tampered_claims,
    "an ID token's type": lambda idp: idp.sign(claims_for(idp), header={"typ": "id_token+jwt"}),
    "not a JWT": lambda idp: "not-a-jwt",
}


@pytest.mark.parametrize("kind", list(REFUSED_TOKENS))
async def test_refused_tokens_are_401_invalid_token(
    oh: Harness, idp: IdentityProvider, kind: str
) -> None:
    # The provider's own key signs a good token: the only fault is the one named.
    assert (await oh.client.get("/v1/me", headers=bearer(idp.sign(claims_for(idp))))).is_success
    token = REFUSED_TOKENS[kind](idp)
    for method, path in (("GET", "/v1/me"), ("POST", "/v1/me/support-pin")):
        response = await oh.client.request(method, path, headers=bearer(token))
        assert_problem(response, 401, "invalid_token")
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_a_token_from_a_second_provider_is_refused(oh: Harness) -> None:
    with IdentityProvider.start(users=users_of_this_test(), clients=[FRONT_END]) as other:
        token = await token_of(other, "alice")
    response = await oh.client.get("/v1/me", headers=bearer(token))
    assert_problem(response, 401, "invalid_token")


async def test_the_expiry_leeway_is_sixty_seconds(oh: Harness, idp: IdentityProvider) -> None:
    just_expired = idp.sign(claims_for(idp, exp=int(time.time()) - 30))
    assert (await oh.client.get("/v1/me", headers=bearer(just_expired))).status_code == 200


async def test_a_rotated_key_is_accepted_at_once(oh: Harness, idp: IdentityProvider) -> None:
    assert (await oh.client.get("/v1/me", headers=bearer(await token_of(idp, "alice")))).is_success
    await idp.rotate()
    fresh = await token_of(idp, "alice")  # signed with the new key
    response = await oh.client.get("/v1/me", headers=bearer(fresh))
    assert response.status_code == 200, response.text


async def test_unknown_kids_fetch_the_jwks_at_most_once_a_minute(
    oh: Harness, idp: IdentityProvider
) -> None:
    assert oh.services.oidc is not None
    keys = oh.services.oidc.keys
    assert (await oh.client.get("/v1/me", headers=bearer(idp.sign(claims_for(idp))))).is_success
    before = keys.fetches
    for _ in range(50):
        made_up = idp.sign(claims_for(idp), key=new_rsa_jwk(secrets.token_hex(8)))
        assert_problem(await oh.client.get("/v1/me", headers=bearer(made_up)), 401, "invalid_token")
    assert keys.fetches - before <= 1
    # A rotation inside that minute: the new kid waits for the next refetch window, and the
    # old key keeps working meanwhile.
    assert (await oh.client.get("/v1/me", headers=bearer(idp.sign(claims_for(idp))))).is_success


async def test_a_token_without_a_verified_flag_keeps_its_address(
    oh: Harness, idp: IdentityProvider
) -> None:
    address = f"carol+{secrets.token_hex(4)}@example.com"
    token = idp.sign(claims_for(idp, sub="no-flag", email=address, email_verified=None))
    me = (await oh.client.get("/v1/me", headers=bearer(token))).json()
    assert me["email"] == address
    said_false = idp.sign(
        claims_for(idp, sub="said-false", email=f"x{address}", email_verified=False)
    )
    assert (await oh.client.get("/v1/me", headers=bearer(said_false))).json()["email"] is None


# -- policies -----------------------------------------------------------------------------


async def test_require_mfa_issues_pins_only_after_a_second_factor(
    harness_factory: HarnessFactory, idp: IdentityProvider, browser: httpx.AsyncClient
) -> None:
    strict = await harness_factory(**oidc_settings(idp, oidc_require_mfa=True))
    one_factor = await token_of(idp, "alice")  # amr ["pwd"]
    refused = await strict.client.post("/v1/me/support-pin", headers=bearer(one_factor))
    assert_problem(refused, 403, "mfa_required_by_policy")
    two_factors = await token_of(idp, "carol")  # amr ["pwd", "mfa"]
    assert (
        await strict.client.post("/v1/me/support-pin", headers=bearer(two_factors))
    ).status_code == 201
    # A browser sign-in carries the ID token's amr into the session.
    session, _ = await sign_in_through_provider(strict, idp, browser, "carol")
    assert (
        await strict.client.post("/v1/me/support-pin", headers=bearer(session))
    ).status_code == 201
    # A password-only session is refused too.
    _, password_only = await strict.user()
    refused = await strict.client.post("/v1/me/support-pin", headers=password_only)
    assert_problem(refused, 403, "mfa_required_by_policy")


async def test_password_sign_in_can_be_turned_off(
    harness_factory: HarnessFactory, idp: IdentityProvider
) -> None:
    providers_only = await harness_factory(**oidc_settings(idp, password_signin=False))
    signup = await providers_only.client.post(
        "/v1/accounts", json={"email": f"x{secrets.token_hex(4)}@example.com", "password": PASSWORD}
    )
    assert_problem(signup, 403, "password_signin_disabled")
    grant = await providers_only.client.post(
        "/v1/auth/token", data={"username": "someone@example.com", "password": PASSWORD}
    )
    assert_problem(grant, 403, "password_signin_disabled")
    methods = (await providers_only.client.get("/v1/auth/methods")).json()
    assert methods["password"] is False
    assert methods["oidc"]["display_name"] == "Acme ID"


# -- verification by subject --------------------------------------------------------------


async def test_agents_verify_by_subject_alike_for_unknown_subjects(
    oh: Harness, idp: IdentityProvider
) -> None:
    token = await token_of(idp, "alice")
    pin = (await oh.client.post("/v1/me/support-pin", headers=bearer(token))).json()["pin"]
    _, agent = await oh.agent()

    async def by_subject(subject: str, guess: str) -> dict[str, Any]:
        response = await oh.client.post(
            "/v1/agent/verifications", headers=agent, json={"subject": subject, "pin": guess}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert body.pop("subject") == subject
        assert body.pop("email") is None
        return body

    wrong = pin[:-1] + str((int(pin[-1]) + 1) % 10)
    assert await by_subject("alice", wrong) == INVALID
    assert await by_subject("nobody-" + secrets.token_hex(4), wrong) == INVALID
    valid = await by_subject("alice", pin)
    assert valid["valid"] is True
    assert await by_subject("alice", pin) == INVALID  # used once


async def test_verification_needs_exactly_one_of_email_and_subject(h: Harness) -> None:
    _, agent = await h.agent()
    for body in ({"pin": "123456"}, {"email": "a@example.com", "subject": "a", "pin": "123456"}):
        response = await h.client.post("/v1/agent/verifications", headers=agent, json=body)
        assert_problem(response, 422, "validation_error")


async def test_without_a_provider_a_subject_matches_nothing(h: Harness) -> None:
    _, agent = await h.agent()
    response = await h.client.post(
        "/v1/agent/verifications", headers=agent, json={"subject": "alice", "pin": "123456"}
    )
    assert {key: response.json()[key] for key in INVALID} == INVALID


async def test_session_tokens_still_work_with_a_provider(oh: Harness) -> None:
    _, headers = await oh.user()
    assert (await oh.client.get("/v1/me", headers=headers)).status_code == 200
    assert (await oh.client.post("/v1/me/support-pin", headers=headers)).status_code == 201


async def test_an_unreachable_provider_is_503_not_401(harness_factory: HarnessFactory) -> None:
    with IdentityProvider.start(users=users_of_this_test(), clients=[FRONT_END]) as gone:
        token = await token_of(gone, "alice")
        issuer = gone.issuer
    h = await harness_factory(
        oidc_issuer=issuer,
        oidc_client_id="x",
        oidc_client_secret="y",
        oidc_audience="support-pin-api",
    )
    response = await h.client.get("/v1/me", headers=bearer(token))
    assert_problem(response, 503, "unavailable")
