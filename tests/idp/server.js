// A real OpenID Connect provider for the tests, on the `oidc-provider` package.
//
//   node tests/idp/server.js CONFIG.json
//
// tests/idp.py writes CONFIG.json (port, issuer, private JWKs, clients, users, audience,
// admin_token), starts this script and waits for the one line `ready` on stdout. Nothing
// else is printed except errors, so a test's output stays readable. For development,
// tests/idp/dev-config.json (`docker compose --profile idp up`) has no `jwks`, so a signing
// key is generated at start, and `"host": "0.0.0.0"` (the default is 127.0.0.1).
//
// What it serves:
// - the provider's own endpoints (discovery, /auth, /token, /jwks, /me, logout);
// - /interaction/:uid, a plain HTML sign-in form (no JavaScript needed). Consent is never
//   asked: every grant is widened to what the client requested (see loadExistingGrant),
//   so a browser or an HTTP client only ever submits that one form;
// - POST /__test/reload, which swaps in a provider with a new key set so tests can rotate
//   signing keys while the server keeps listening.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { fstatSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';

// oidc-provider prints advisory notices through console.info/console.warn: "unsupported
// runtime" on Node 20, the in-memory adapter, default TTL functions... They are expected
// for a throw-away test server, so drop exactly those lines (they all carry this prefix).
// The filter is installed before the package is imported because one notice is printed at
// import time; hence the dynamic import below.
for (const name of ['info', 'warn']) {
  const original = console[name].bind(console);
  console[name] = (first, ...rest) => {
    if (typeof first === 'string' && /^(\x1b\[[\d;]*m)?oidc-provider (NOTICE|WARNING):/.test(first)) {
      return;
    }
    original(first, ...rest);
  };
}
const { default: Provider, errors } = await import('oidc-provider');

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const { users, audience } = config;
// RFC 8707 resource indicators must be absolute URIs; an audience such as
// "support-pin-api" is not, so tests/idp.py may pass a URI to stand for it. The access
// token's `aud` is always `audience`.
const resourceIndicator = config.resource ?? audience;

const OIDC_SCOPES = ['openid', 'email', 'profile', 'groups', 'offline_access'];
const RESOURCE_SCOPE = 'openid email profile groups';

// One set of cookie keys for the process: a rebuilt provider (key rotation) must still
// accept the session and interaction cookies the previous one signed.
const cookieKeys = [randomBytes(32).toString('base64url')];

const html = (text) => String(text)
  .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
  .replace(/"/g, '&quot;').replace(/'/g, '&#39;');

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>${html(title)}</title></head>
<body>
${body}
</body>
</html>
`;
}

function loginPage(uid, { login = '', error } = {}) {
  return page('Test IdP sign in', `<h1>Test IdP sign in</h1>
${error ? `<p role="alert">${html(error)}</p>` : ''}
<form method="post" action="/interaction/${html(uid)}">
  <label>Login <input name="login" autocomplete="username" value="${html(login)}" autofocus></label>
  <label>Password <input name="password" type="password" autocomplete="current-password"></label>
  <button type="submit">Sign in</button>
</form>`);
}

function accountClaims(sub) {
  const user = users[sub];
  return {
    sub,
    email: user.email,
    email_verified: user.email_verified,
    name: user.name,
    groups: user.groups,
  };
}

function configuration(jwks) {
  return {
    clients: config.clients,
    jwks,
    cookies: {
      keys: cookieKeys,
      // Prefixed names: the relying party under test runs on the same host (127.0.0.1,
      // another port) and browsers share cookies across ports.
      names: {
        session: 'test_idp_session',
        interaction: 'test_idp_interaction',
        resume: 'test_idp_resume',
      },
    },
    scopes: OIDC_SCOPES,
    claims: {
      // amr comes from the login result (the user record's amr): listing it under the
      // openid scope puts it in every ID token.
      openid: ['sub', 'amr'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    // Scope-requested claims go into the ID token itself, not only the userinfo response.
    conformIdTokenClaims: false,
    pkce: { required: () => true }, // oidc-provider only knows S256
    features: {
      devInteractions: { enabled: false }, // our own form at /interaction/:uid
      resourceIndicators: {
        enabled: true,
        // Requests without a `resource` parameter are for the API: the code, and then the
        // token endpoint (useGrantedResource), use it, so the access token is a JWT for
        // the audience instead of an opaque userinfo-only token.
        defaultResource: () => resourceIndicator,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, indicator) => {
          if (indicator !== resourceIndicator) throw new errors.InvalidTarget();
          return {
            scope: RESOURCE_SCOPE,
            audience,
            accessTokenFormat: 'jwt', // RFC 9068, header typ "at+jwt"
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    // What the API reads from the access token besides sub, scope and client_id.
    extraTokenClaims: (ctx, token) => {
      const user = users[token.accountId];
      if (!user || !token.resourceServer) return undefined;
      return { email: user.email, email_verified: user.email_verified, amr: user.amr };
    },
    findAccount: (ctx, sub) => (users[sub] ? {
      accountId: sub,
      claims: () => accountClaims(sub),
    } : undefined),
    // Automatic consent: the grant always covers what the client asks for (OIDC scopes,
    // requested claims, and the API's scopes), so the consent prompt never shows.
    loadExistingGrant: async (ctx) => {
      const { oidc } = ctx;
      const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
      const grant = (grantId && await oidc.provider.Grant.find(grantId))
        || new oidc.provider.Grant({ accountId: oidc.account.accountId, clientId: oidc.client.clientId });
      grant.addOIDCScope([...oidc.requestParamOIDCScopes].join(' '));
      if (oidc.requestParamClaims.size) grant.addOIDCClaims([...oidc.requestParamClaims]);
      for (const indicator of Object.keys(oidc.resourceServers)) {
        grant.addResourceScope(indicator, [...oidc.requestParamScopes].join(' '));
      }
      await grant.save();
      return grant;
    },
    renderError: (ctx, out) => {
      ctx.type = 'html';
      ctx.body = page('Test IdP error', `<h1>Test IdP error</h1>
<p>${html(out.error)}: ${html(out.error_description ?? '')}</p>`);
    },
    // Explicit lifetimes (in seconds) also keep the package from printing notices.
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 60,
      IdToken: 3600,
      Interaction: 600,
      Session: 86400,
      Grant: 86400,
      RefreshToken: 86400,
    },
  };
}

function buildProvider(jwks) {
  const provider = new Provider(config.issuer, configuration(jwks));
  provider.on('server_error', (ctx, error) => console.error('server_error', error));
  // The default in-memory adapter keeps its store in module scope: sessions, grants and
  // tokens survive a rebuild, as they would survive a key rotation at a real provider.
  return { provider, handle: provider.callback() };
}

// A config without `jwks` (tests/idp/dev-config.json: no private key is committed) gets a
// new RSA signing key at every start; tokens signed before a restart stop verifying.
function generatedJwks() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { keys: [{ ...jwk, kid: `dev-${randomBytes(4).toString('hex')}`, alg: 'RS256', use: 'sig' }] };
}

let current = buildProvider(config.jwks ?? generatedJwks());

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function send(res, status, body, type = 'text/html; charset=utf-8') {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

async function interaction(req, res, uid) {
  const { provider } = current;
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) {
    send(res, 400, page('Test IdP error', '<p>Interaction mismatch</p>'));
    return;
  }
  const { prompt } = details;
  if (prompt.name === 'consent') {
    // Only when a client sends prompt=consent: loadExistingGrant has already granted it all.
    await provider.interactionFinished(req, res, { consent: {} });
    return;
  }
  if (req.method === 'GET') {
    send(res, 200, loginPage(uid));
    return;
  }
  const form = await readForm(req);
  const login = form.get('login') ?? '';
  const user = Object.hasOwn(users, login) ? users[login] : undefined;
  if (!user || user.password !== form.get('password')) {
    send(res, 200, loginPage(uid, { login, error: 'Invalid login' }));
    return;
  }
  // amr from the user record ends up in the ID token (and, via extraTokenClaims, in the
  // access token) so tests can tell password-only from multi-factor users.
  await provider.interactionFinished(req, res, { login: { accountId: login, amr: user.amr } });
}

async function reload(req, res) {
  // No admin_token in the config (the development provider): reloading is off.
  if (!config.admin_token || req.headers.authorization !== `Bearer ${config.admin_token}`) {
    send(res, 401, 'unauthorized\n', 'text/plain');
    return;
  }
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const { jwks } = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  current = buildProvider(jwks); // requests from now on go to the new provider
  res.writeHead(204);
  res.end();
}

const server = createServer(async (req, res) => {
  try {
    const { pathname } = new URL(req.url, config.issuer);
    const match = /^\/interaction\/([^/]+)$/.exec(pathname);
    if (match && (req.method === 'GET' || req.method === 'POST')) {
      await interaction(req, res, match[1]);
    } else if (pathname === '/__test/reload' && req.method === 'POST') {
      await reload(req, res);
    } else {
      current.handle(req, res);
    }
  } catch (error) {
    if (error instanceof errors.SessionNotFound) {
      // An expired or foreign interaction: a client error, not worth a stack trace.
      send(res, 400, page('Test IdP error', `<p>${html(error.error_description ?? error.message)}</p>`));
      return;
    }
    console.error(error);
    if (!res.headersSent) send(res, 500, 'internal error\n', 'text/plain');
    else res.end();
  }
});

// Loopback unless the config says otherwise (`"host": "0.0.0.0"` in a container).
server.listen(config.port, config.host ?? '127.0.0.1', () => {
  process.stdout.write('ready\n');
});

// The Python side stops us with SIGTERM; exit at once (no connections worth draining).
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
// It also holds our stdin open without writing to it: end of input means it has gone (even
// killed outright), and a left-over provider would only hold its port. Only a pipe is
// watched: in a container or a terminal stdin is /dev/null or a TTY, and the server stays.
if (fstatSync(0).isFIFO()) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}
