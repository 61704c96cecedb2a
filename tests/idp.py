"""A real OpenID Connect provider for the tests: tests/idp/server.js (npm `oidc-provider`)
run by Node.js on a free loopback port.

    with IdentityProvider.start(clients=[...]) as idp:
        tokens = await idp.access_token("alice", IDP_PASSWORD, client_id=..., ...)

Authorization code flow with PKCE (S256) only; access tokens are RFC 9068 JWTs (`at+jwt`)
for one audience; ID tokens are RS256. Sign-in is a plain HTML form (`login`, `password`)
at /interaction/<uid>; consent is automatic. Keys can be rotated while it runs (`rotate`)
and `sign` makes tokens with its keys (or others) for the negative cases.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import selectors
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from html import unescape
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, quote, urlencode, urljoin, urlsplit

import httpx
from joserfc import jwt
from joserfc.jwk import RSAKey, import_key

IDP_DIR = Path(__file__).resolve().parent / "idp"
IDP_PASSWORD = "idp-password-for-tests"
DEFAULT_AUDIENCE = "support-pin-api"
READY_TIMEOUT = 30.0


def _user(
    email: str, *, verified: bool = True, name: str, groups: list[str], amr: list[str]
) -> dict[str, Any]:
    return {
        "password": IDP_PASSWORD,
        "email": email,
        "email_verified": verified,
        "name": name,
        "groups": groups,
        "amr": amr,
    }


# The provider's accounts; the key is the login name and the `sub` of every token.
DEFAULT_USERS: dict[str, dict[str, Any]] = {
    "alice": _user("alice@example.com", name="Alice", groups=[], amr=["pwd"]),
    "bob": _user("bob@example.com", verified=False, name="Bob", groups=[], amr=["pwd"]),
    "carol": _user("carol@example.com", name="Carol", groups=[], amr=["pwd", "mfa"]),
    "agent1": _user(
        "agent1@corp.example", name="Agnes Agent", groups=["support-agents"], amr=["pwd", "mfa"]
    ),
    "lead1": _user(
        "lead1@corp.example", name="Leo Lead", groups=["support-leads"], amr=["pwd", "mfa"]
    ),
    "admin1": _user(
        "admin1@corp.example", name="Ada Admin", groups=["support-admins"], amr=["pwd", "mfa"]
    ),
    "outsider": _user(
        "outsider@corp.example", name="Otto Outsider", groups=["marketing"], amr=["pwd", "mfa"]
    ),
}


class IdpLoginError(RuntimeError):
    """The provider did not send the browser back to the client (wrong password, an error
    page...). The message quotes the page; `response` is the last answer."""

    def __init__(self, message: str, response: httpx.Response) -> None:
        super().__init__(message)
        self.response = response


def ensure_installed() -> None:
    """`npm ci` in tests/idp unless oidc-provider is installed already (needs the npm
    registry once; then it works offline)."""
    if (IDP_DIR / "node_modules" / "oidc-provider").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("the test IdP needs Node.js and npm (tests/idp); npm is not on PATH")
    result = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=IDP_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            "`npm ci` in tests/idp failed: the npm registry must be reachable once to install "
            "oidc-provider (or copy a tests/idp/node_modules in).\n"
            f"{result.stdout}{result.stderr}"
        )


def new_rsa_jwk(kid: str) -> dict[str, Any]:
    """A new private RSA signing key as a JWK, with kid, alg RS256 and use sig."""
    key = RSAKey.generate_key(2048, parameters={"kid": kid, "alg": "RS256", "use": "sig"})
    return dict(key.as_dict(private=True))


def pkce_pair() -> tuple[str, str]:
    """A PKCE code_verifier and its S256 code_challenge."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _resource_for(audience: str) -> str:
    # RFC 8707 resource indicators are absolute URIs; a bare audience gets a URN to stand for
    # it (the access token's `aud` is the audience either way).
    return audience if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", audience) else f"urn:{audience}"


class IdentityProvider:
    """A running tests/idp/server.js. Use `start` (and `stop`, or `with`)."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        workdir: tempfile.TemporaryDirectory[str],
        config: dict[str, Any],
    ) -> None:
        self._process = process
        self._workdir = workdir
        self._config = config

    @classmethod
    def start(
        cls,
        users: Mapping[str, Mapping[str, Any]] | None = None,
        clients: Iterable[Mapping[str, Any]] = (),
        audience: str = DEFAULT_AUDIENCE,
    ) -> IdentityProvider:
        """Start the provider with these users (DEFAULT_USERS when None) and registered
        clients (oidc-provider client metadata: client_id, client_secret, redirect_uris,
        token_endpoint_auth_method...), and wait until it listens."""
        ensure_installed()
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("the test IdP needs Node.js; node is not on PATH")
        port = _free_port()
        issuer = f"http://127.0.0.1:{port}"
        config: dict[str, Any] = {
            "port": port,
            "issuer": issuer,
            "jwks": {"keys": [new_rsa_jwk(f"idp-{secrets.token_hex(4)}")]},
            "clients": [dict(client) for client in clients],
            "audience": audience,
            "resource": _resource_for(audience),
            "users": {name: dict(user) for name, user in (users or DEFAULT_USERS).items()},
            "admin_token": secrets.token_urlsafe(24),
        }
        workdir = tempfile.TemporaryDirectory(prefix="test-idp-")
        config_path = Path(workdir.name) / "config.json"
        config_path.write_text(json.dumps(config), encoding="utf-8")
        # stderr is inherited: the provider prints nothing but errors, and pytest shows them.
        process = subprocess.Popen(
            [node, str(IDP_DIR / "server.js"), str(config_path)],
            cwd=IDP_DIR,
            stdin=subprocess.PIPE,  # never written: node exits when it closes (we are gone)
            stdout=subprocess.PIPE,
        )
        provider = cls(process, workdir, config)
        try:
            provider._wait_ready()
        except BaseException:
            provider.stop()
            raise
        return provider

    def _wait_ready(self) -> None:
        assert self._process.stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT
        seen = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self._process.stdout, selectors.EVENT_READ)
            while b"ready\n" not in seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"the test IdP did not start in {READY_TIMEOUT}s")
                if selector.select(left):
                    chunk = os.read(self._process.stdout.fileno(), 4096)
                    if not chunk:
                        code = self._process.wait(5)
                        raise RuntimeError(f"the test IdP exited ({code}); see its stderr")
                    seen += chunk

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
        for pipe in (self._process.stdin, self._process.stdout):
            if pipe is not None:
                pipe.close()
        self._workdir.cleanup()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def issuer(self) -> str:
        issuer: str = self._config["issuer"]
        return issuer

    @property
    def audience(self) -> str:
        """The access tokens' `aud`."""
        audience: str = self._config["audience"]
        return audience

    @property
    def resource(self) -> str:
        """The RFC 8707 resource indicator that stands for the audience (the default, so a
        client need not send it)."""
        resource: str = self._config["resource"]
        return resource

    @property
    def jwks(self) -> dict[str, Any]:
        """The private key set currently served (its first key signs)."""
        jwks: dict[str, Any] = self._config["jwks"]
        return jwks

    @property
    def users(self) -> dict[str, dict[str, Any]]:
        users: dict[str, dict[str, Any]] = self._config["users"]
        return users

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/jwks"

    @property
    def authorization_endpoint(self) -> str:
        return f"{self.issuer}/auth"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/token"

    async def rotate(self) -> dict[str, Any]:
        """Put a new signing key first (the keys served so far stay, after it, so tokens
        they signed still verify) and return the new private JWK."""
        key = new_rsa_jwk(f"idp-{secrets.token_hex(4)}")
        jwks = {"keys": [key, *self.jwks["keys"]]}
        async with httpx.AsyncClient(timeout=10.0) as client:
            response = await client.post(
                f"{self.issuer}/__test/reload",
                json={"jwks": jwks},
                headers={"authorization": f"Bearer {self._config['admin_token']}"},
            )
        if response.status_code != 204:
            raise RuntimeError(f"IdP key reload failed: {response.status_code} {response.text}")
        self._config["jwks"] = jwks
        return key

    def sign(
        self,
        claims: Mapping[str, Any],
        *,
        header: Mapping[str, Any] | None = None,
        key: Mapping[str, Any] | None = None,
    ) -> str:
        """A JWT of these claims signed with `key` (a private JWK; default: the provider's
        current signing key). The header is {"alg": "RS256", "kid": key's kid, "typ":
        "at+jwt"} updated with `header`, where a None value removes that field."""
        jwk = dict(key if key is not None else self.jwks["keys"][0])
        fields: dict[str, Any] = {"alg": "RS256", "kid": jwk.get("kid"), "typ": "at+jwt"}
        fields.update(header or {})
        fields = {name: value for name, value in fields.items() if value is not None}
        return jwt.encode(
            fields,
            dict(claims),
            import_key(jwk),
            algorithms=[fields["alg"]],
            default_type=None,
        )

    def _is_ours(self, url: str) -> bool:
        return _origin(url) == _origin(self.issuer)

    async def _follow(self, client: httpx.AsyncClient, response: httpx.Response) -> httpx.Response:
        """Follow the provider's redirects; stop at a page or at a Location elsewhere."""
        while response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            if not self._is_ours(location):
                break
            response = await client.get(location, follow_redirects=False)
        return response

    async def login(
        self, client: httpx.AsyncClient, authorize_url: str, user: str, password: str
    ) -> str:
        """Sign `user` in as a browser would, with `client` (which keeps the cookies), and
        return the URL the provider finally redirects to (the client's redirect_uri with
        `code` and `state`, or with `error`) without requesting it. When the client has a
        session at the provider already, no form is shown."""
        response = await self._follow(
            client, await client.get(authorize_url, follow_redirects=False)
        )
        if not response.is_redirect:
            action = re.search(r'<form[^>]*\baction="([^"]*)"', response.text)
            if response.status_code != 200 or action is None or 'name="login"' not in response.text:
                raise IdpLoginError(f"no sign-in form: {response.status_code}", response)
            response = await client.post(
                urljoin(str(response.url), unescape(action.group(1))),
                data={"login": user, "password": password},
                follow_redirects=False,
            )
            response = await self._follow(client, response)
        if not response.is_redirect:
            text = re.sub(r"<[^>]+>", " ", response.text)
            raise IdpLoginError(
                f"sign-in failed ({response.status_code}): {' '.join(text.split())}", response
            )
        return urljoin(str(response.url), response.headers["location"])

    async def access_token(
        self,
        user: str,
        password: str,
        *,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        scope: str = "openid email profile",
    ) -> dict[str, Any]:
        """The whole code flow as this registered client (fresh cookies, own PKCE); the
        token endpoint's JSON: access_token (a JWT for the audience), id_token, ..."""
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(16)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "scope": scope,
                "state": state,
                "nonce": secrets.token_urlsafe(16),
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        async with httpx.AsyncClient(timeout=10.0) as client:
            callback = await self.login(
                client, f"{self.authorization_endpoint}?{query}", user, password
            )
            params = parse_qs(urlsplit(callback).query)
            if params.get("state") != [state] or "code" not in params:
                raise RuntimeError(f"unexpected redirect from the IdP: {callback}")
            form = {
                "grant_type": "authorization_code",
                "code": params["code"][0],
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            }
            if self._auth_method(client_id) == "client_secret_post":
                form |= {"client_id": client_id, "client_secret": client_secret}
                response = await client.post(self.token_endpoint, data=form)
            else:  # client_secret_basic: RFC 6749 2.3.1 form-encodes both parts first
                auth = httpx.BasicAuth(quote(client_id, safe=""), quote(client_secret, safe=""))
                response = await client.post(self.token_endpoint, data=form, auth=auth)
        if response.status_code != 200:
            raise RuntimeError(f"IdP token endpoint: {response.status_code} {response.text}")
        body: dict[str, Any] = response.json()
        return body

    def _auth_method(self, client_id: str) -> str:
        for client in self._config["clients"]:
            if client.get("client_id") == client_id:
                method: str = client.get("token_endpoint_auth_method", "client_secret_basic")
                return method
        return "client_secret_basic"
