"""The test OpenID Connect provider (tests/idp.py, tests/idp/server.js) does what tests rely on."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.idp import IDP_PASSWORD, IdentityProvider, IdpLoginError, pkce_pair

CLIENT: dict[str, Any] = {
    "client_id": "support-pin-web",
    "client_secret": "harness-client-secret",
    "redirect_uris": ["http://127.0.0.1:9/callback"],
}
POST_CLIENT: dict[str, Any] = {
    "client_id": "support-pin-post",
    "client_secret": "harness-post-secret",
    "redirect_uris": ["http://127.0.0.1:9/post-callback"],
    "token_endpoint_auth_method": "client_secret_post",
}


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    with IdentityProvider.start(clients=[CLIENT, POST_CLIENT]) as provider:
        yield provider


def jwt_part(token: str, index: int) -> dict[str, Any]:
    segment = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return decoded


def authorize_url(idp: IdentityProvider, **extra: str) -> str:
    _, challenge = pkce_pair()
    query = {
        "response_type": "code",
        "client_id": CLIENT["client_id"],
        "redirect_uri": CLIENT["redirect_uris"][0],
        "scope": "openid email",
        "state": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return f"{idp.authorization_endpoint}?{urlencode(query)}"


async def test_discovery_names_the_issuer_and_its_keys(idp: IdentityProvider) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{idp.issuer}/.well-known/openid-configuration")
    assert response.status_code == 200
    document = response.json()
    assert document["issuer"] == idp.issuer
    assert document["jwks_uri"] == idp.jwks_uri
    assert document["code_challenge_methods_supported"] == ["S256"]


async def test_access_token_is_a_jwt_for_the_audience(idp: IdentityProvider) -> None:
    # No `resource` parameter: the provider's default resource (the API) applies.
    tokens = await idp.access_token(
        "alice",
        IDP_PASSWORD,
        client_id=CLIENT["client_id"],
        client_secret=CLIENT["client_secret"],
        redirect_uri=CLIENT["redirect_uris"][0],
    )
    header = jwt_part(tokens["access_token"], 0)
    assert header["alg"] == "RS256"
    assert header["typ"] == "at+jwt"
    assert header["kid"] == idp.jwks["keys"][0]["kid"]
    claims = jwt_part(tokens["access_token"], 1)
    assert claims["aud"] == idp.audience == "support-pin-api"
    assert claims["iss"] == idp.issuer
    assert claims["sub"] == "alice"
    assert claims["email"] == "alice@example.com"
    assert claims["email_verified"] is True
    assert claims["amr"] == ["pwd"]
    id_token = jwt_part(tokens["id_token"], 1)
    assert id_token["aud"] == CLIENT["client_id"]
    assert id_token["email"] == "alice@example.com"
    assert id_token["amr"] == ["pwd"]


async def test_groups_and_client_secret_post(idp: IdentityProvider) -> None:
    tokens = await idp.access_token(
        "agent1",
        IDP_PASSWORD,
        client_id=POST_CLIENT["client_id"],
        client_secret=POST_CLIENT["client_secret"],
        redirect_uri=POST_CLIENT["redirect_uris"][0],
        scope="openid profile groups",
    )
    id_token = jwt_part(tokens["id_token"], 1)
    assert id_token["name"] == "Agnes Agent"
    assert id_token["groups"] == ["support-agents"]
    assert id_token["amr"] == ["pwd", "mfa"]
    assert jwt_part(tokens["access_token"], 1)["scope"] == "openid profile groups"


async def test_rotate_publishes_the_new_key_first_and_keeps_the_old(
    idp: IdentityProvider,
) -> None:
    old_kid = idp.jwks["keys"][0]["kid"]
    new_key = await idp.rotate()
    async with httpx.AsyncClient() as client:
        published = (await client.get(idp.jwks_uri)).json()["keys"]
    kids = [key["kid"] for key in published]
    assert kids[0] == new_key["kid"]
    assert old_kid in kids
    assert all("d" not in key for key in published)  # public halves only
    tokens = await idp.access_token(
        "carol",
        IDP_PASSWORD,
        client_id=CLIENT["client_id"],
        client_secret=CLIENT["client_secret"],
        redirect_uri=CLIENT["redirect_uris"][0],
    )
    assert jwt_part(tokens["access_token"], 0)["kid"] == new_key["kid"]


async def test_wrong_password_shows_invalid_login(idp: IdentityProvider) -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(IdpLoginError, match="Invalid login") as caught:
            await idp.login(client, authorize_url(idp), "alice", "not the password")
    assert "Test IdP sign in" in caught.value.response.text


async def test_login_returns_the_callback_without_requesting_it(idp: IdentityProvider) -> None:
    async with httpx.AsyncClient() as client:
        url = await idp.login(client, authorize_url(idp, state="s1"), "bob", IDP_PASSWORD)
        # A second authorization in the same session needs no form.
        again = await idp.login(client, authorize_url(idp, state="s2"), "bob", "unused")
    for callback, state in ((url, "s1"), (again, "s2")):
        assert callback.startswith(CLIENT["redirect_uris"][0] + "?")
        params = parse_qs(urlsplit(callback).query)
        assert params["state"] == [state]
        assert params["iss"] == [idp.issuer]
        assert "code" in params


def test_sign_makes_tokens_with_chosen_headers(idp: IdentityProvider) -> None:
    token = idp.sign({"sub": "alice"}, header={"kid": None, "typ": "JWT"})
    assert jwt_part(token, 0) == {"alg": "RS256", "typ": "JWT"}
    assert jwt_part(token, 1) == {"sub": "alice"}
    assert jwt_part(idp.sign({}), 0)["kid"] == idp.jwks["keys"][0]["kid"]
