// Local OAuth 2.0 authorization server (oidc-provider 9.13.x) for the
// reqwest-partner-auth interop tests. Plain HTTP on 127.0.0.1 only.
//
//   PORT=0 ACCESS_TOKEN_TTL=3 node tests/oidc/server.mjs
//   -> prints exactly one stdout line: "LISTENING http://127.0.0.1:<port>"
//      (diagnostics go to stderr), then serves until killed (SIGTERM/SIGINT).
//
// Env:
//   PORT              TCP port on 127.0.0.1; 0 or unset = pick a free port.
//   ACCESS_TOKEN_TTL  access token lifetime in seconds (default 3600); applies
//                     to client_credentials and authorization_code/refresh
//                     tokens alike, so expires_in == ACCESS_TOKEN_TTL.
//   REDIRECT_URI      optional extra redirect URI registered for pkce-public
//                     (not needed for loopback URIs, see below).
//
// Clients (hard-coded):
//   cc-basic / cc-basic-secret  client_credentials, client_secret_basic
//   cc-post  / cc-post-secret   client_credentials, client_secret_post
//   code-basic / code-basic-secret  authorization_code + refresh_token,
//                               client_secret_basic, PKCE S256, same loopback
//                               redirect URI rule as pkce-public (native).
//   code-post  / code-post-secret   the same with client_secret_post.
//   pkce-public (no secret)     authorization_code + refresh_token, auth method
//                               "none", PKCE S256 required. application_type
//                               "native", so ANY port is accepted on the
//                               registered loopback URI http://127.0.0.1/callback
//                               (RFC 8252 7.3): http://127.0.0.1:<any>/callback
//                               works. Host must be literally 127.0.0.1 and the
//                               path /callback.
//
// Resource / audience: the only resource server is https://api.partner.test
// (scopes "read:campaigns write:campaigns"). Its access tokens are JWTs
// (RS256, typ "at+jwt", aud = https://api.partner.test, with exp). It is the
// default resource, so requests without `resource` get it too. An Auth0-style
// `audience=<uri>` parameter is treated exactly like `resource=<uri>` on both
// /auth and /token. Any other resource/audience -> 400 invalid_target.
//
// Confidential clients must use their REGISTERED method (this server adds that
// check; oidc-provider alone would accept basic and post interchangeably):
// cc-basic via form body, or cc-post via Authorization: Basic -> 401
// invalid_client, same JSON as a wrong secret.
//
// Headless authorization-code login (verified with curl, cookie jar, no
// automatic redirect following). Cookies are plain (not Secure, HttpOnly,
// SameSite=Lax, unsigned); a cookie store that honours Path is enough:
//
//  1. GET /auth?response_type=code&client_id=pkce-public
//         &redirect_uri=http://127.0.0.1:<p>/callback&state=<s>
//         &code_challenge=<BASE64URL(SHA256(verifier))>&code_challenge_method=S256
//         [&scope=read:campaigns ...][&resource=|&audience=https://api.partner.test]
//     -> 303, Location: /interaction/<uid>                      (RELATIVE)
//        Set-Cookie: _interaction=<uid>; path=/interaction/<uid>
//        Set-Cookie: _interaction_resume=<uid>; path=/auth/<uid>
//     (no scope => scope defaults to "read:campaigns write:campaigns")
//  2. GET /interaction/<uid>       (must send cookie _interaction)
//     -> 303, Location: http://127.0.0.1:<port>/auth/<uid>       (absolute)
//        This server logs in account "test-user" and grants every requested
//        scope and the resource; no form, no body to post.
//  3. GET /auth/<uid>              (must send cookie _interaction_resume)
//     -> 303, Location: http://127.0.0.1:<p>/callback?code=<code>&state=<s>&iss=http%3A%2F%2F127.0.0.1%3A<port>
//        Set-Cookie: _session=<sid>; path=/  (and expires _interaction_resume)
//  4. POST /token  grant_type=authorization_code&client_id=pkce-public
//         &code=<code>&redirect_uri=<same as 1>&code_verifier=<verifier>
//     -> 200 {access_token (JWT), expires_in, refresh_token, scope,
//             token_type:"Bearer"} (+ id_token if scope had openid)
// Errors in the chain are JSON bodies, status 400:
//   step 2 without cookie: {"error":"invalid_request","error_description":"interaction session id cookie not found"}
//   step 3 without cookie: {"error":"invalid_request","error_description":"authorization request has expired",...}
//   step 3 replayed:       {"error":"invalid_request","error_description":"interaction session not found",...}
// At step 1, unknown client_id / unregistered redirect_uri give 400 JSON
// (invalid_client / invalid_redirect_uri); other request errors (no PKCE,
// code_challenge_method=plain, unknown audience) give 303 to
// redirect_uri?error=...&error_description=...&state=...&iss=...
// A second /auth (even with the _session cookie) runs the same 3 hops again:
// grants are never remembered between authorization requests.

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import Provider, { errors } from 'oidc-provider';

const RESOURCE = 'https://api.partner.test';
const RESOURCE_SCOPE = 'read:campaigns write:campaigns';
const ACCOUNT_ID = 'test-user';

function envInt(name, dflt) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) {
    throw new Error(`${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
  }
  return n;
}

const PORT = envInt('PORT', 0);
const ACCESS_TOKEN_TTL = envInt('ACCESS_TOKEN_TTL', 3600);
if (ACCESS_TOKEN_TTL === 0) throw new Error('ACCESS_TOKEN_TTL must be > 0');

// Everything oidc-provider prints (warnings) goes to stderr; stdout carries
// only the LISTENING line.
console.log = console.error;
console.info = console.error;
const stdoutWrite = (line) => process.stdout.write(`${line}\n`);

const server = http.createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(PORT, '127.0.0.1', resolve);
});
const { port } = server.address();
const ISSUER = `http://127.0.0.1:${port}`;

const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'interop-rs256', use: 'sig', alg: 'RS256' };

const pkceRedirectUris = ['http://127.0.0.1/callback'];
if (process.env.REDIRECT_URI) pkceRedirectUris.push(process.env.REDIRECT_URI);

async function getResourceServerInfo(_ctx, resourceIndicator) {
  if (resourceIndicator !== RESOURCE) {
    throw new errors.InvalidTarget(`unknown resource/audience ${resourceIndicator}`);
  }
  return {
    scope: RESOURCE_SCOPE,
    audience: RESOURCE,
    accessTokenFormat: 'jwt',
    accessTokenTTL: ACCESS_TOKEN_TTL,
    jwt: { sign: { alg: 'RS256' } },
  };
}

const CLIENTS = [
  {
    client_id: 'cc-basic',
    client_secret: 'cc-basic-secret',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  },
  {
    client_id: 'cc-post',
    client_secret: 'cc-post-secret',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_post',
  },
  // Confidential clients of the code flow (login and refresh), one per auth method.
  ...[['code-basic', 'client_secret_basic'], ['code-post', 'client_secret_post']].map(([id, method]) => ({
    client_id: id,
    client_secret: `${id}-secret`,
    application_type: 'native', // loopback redirect URIs match on any port
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: pkceRedirectUris,
    token_endpoint_auth_method: method,
  })),
  {
    client_id: 'pkce-public',
    application_type: 'native', // loopback redirect URIs match on any port
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: pkceRedirectUris,
    token_endpoint_auth_method: 'none',
  },
];

// Static (OIDC) scopes; read:campaigns / write:campaigns are resource scopes
// of https://api.partner.test (see getResourceServerInfo).
const OIDC_SCOPES = ['openid', 'offline_access'];

const configuration = {
  clients: CLIENTS,
  jwks: { keys: [signingKey] },
  scopes: OIDC_SCOPES,
  claims: { openid: ['sub'] },
  // Auth0-style audience parameter accepted at /auth (also rewritten to
  // `resource` at /token by the middleware below).
  extraParams: ['audience'],
  async findAccount(_ctx, sub) {
    return { accountId: sub, async claims() { return { sub }; } };
  },
  cookies: {
    // Plain http on loopback: never Secure (oidc-provider only adds Secure
    // when the request is https). No keys => unsigned cookies, no .sig pairs.
    long: { httpOnly: true, sameSite: 'lax' },
    short: { httpOnly: true, sameSite: 'lax' },
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      async defaultResource(ctx, _client, oneOf) {
        if (oneOf) return oneOf; // token endpoint: pick from granted list
        const aud = ctx.oidc.params?.audience;
        return aud || RESOURCE;
      },
      // always issue the access token for the granted resource (a JWT), even
      // when `openid` was requested
      useGrantedResource: async () => true,
      getResourceServerInfo,
    },
  },
  pkce: { required: () => true }, // S256 is the only method oidc-provider 9 supports
  rotateRefreshToken: true,
  async issueRefreshToken(_ctx, client) {
    return client.grantTypeAllowed('refresh_token');
  },
  expiresWithSession: async () => false,
  ttl: {
    AccessToken: ACCESS_TOKEN_TTL,
    ClientCredentials: ACCESS_TOKEN_TTL,
    AuthorizationCode: 60,
    RefreshToken: 24 * 60 * 60,
    IdToken: 3600,
    Interaction: 10 * 60,
    Session: 24 * 60 * 60,
    Grant: 24 * 60 * 60,
  },
  interactions: {
    url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
  },
  // Only the grant created by this interaction counts (never one remembered in
  // the session), so every /auth request goes through /interaction/<uid>,
  // i.e. the login sequence is always the same 3 hops.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId;
    return grantId ? ctx.oidc.provider.Grant.find(grantId) : undefined;
  },
  renderError(ctx, out) {
    ctx.type = 'json';
    ctx.body = out;
  },
};

const provider = new Provider(ISSUER, configuration);

provider.on('server_error', (_ctx, err) => console.error('server_error', err));

// Registered token endpoint auth method per confidential client. oidc-provider
// itself accepts client_secret_basic and client_secret_post interchangeably;
// this server is strict so the interop tests prove the client uses the right
// one (mismatch -> 401 invalid_client, same body as a wrong secret).
const STRICT_AUTH_METHOD = new Map(
  CLIENTS
    .filter((c) => c.client_secret)
    .map((c) => [c.client_id, c.token_endpoint_auth_method]),
);

function basicClientId(header) {
  const m = /^basic\s+(\S+)$/i.exec(header || '');
  if (!m) return undefined;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  if (i === -1) return undefined;
  try {
    return decodeURIComponent(decoded.slice(0, i).replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

// POST /token, /token/introspection, /token/revocation:
//  - enforce the registered auth method (see above);
//  - treat Auth0-style `audience` as RFC 8707 `resource`: oidc-provider strips
//    unknown token-endpoint parameters, so rewrite the form body before it is
//    parsed (oidc-provider then reads req.body and logs a one-time
//    "already parsed request body" warning on stderr; harmless).
provider.use(async (ctx, next) => {
  if (ctx.method === 'POST' && ctx.path.startsWith('/token') && ctx.is('application/x-www-form-urlencoded')) {
    const chunks = [];
    for await (const chunk of ctx.req) chunks.push(chunk);
    const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));

    const viaBasic = basicClientId(ctx.get('authorization'));
    const clientId = viaBasic ?? form.get('client_id');
    const expected = STRICT_AUTH_METHOD.get(clientId);
    const used = viaBasic !== undefined ? 'client_secret_basic' : (form.has('client_secret') ? 'client_secret_post' : 'none');
    if (expected && used !== expected) {
      console.error(`rejecting ${clientId}: used ${used}, registered ${expected}`);
      ctx.status = 401;
      ctx.set('Cache-Control', 'no-store');
      if (viaBasic !== undefined) ctx.set('WWW-Authenticate', `Basic realm="${ISSUER}", error="invalid_client", error_description="client authentication failed"`);
      ctx.body = { error: 'invalid_client', error_description: 'client authentication failed' };
      return;
    }

    if (ctx.path === '/token' && form.has('audience')) {
      if (!form.has('resource')) {
        for (const aud of form.getAll('audience')) form.append('resource', aud);
      }
      form.delete('audience');
    }
    ctx.req.body = form.toString();
  }
  await next();
});

// GET /auth without `scope`: oidc-provider would answer access_denied ("no
// scope was granted"), so default the scope to the resource server's scopes.
provider.use(async (ctx, next) => {
  if (ctx.method === 'GET' && ctx.path === '/auth' && ctx.query.scope === undefined) {
    ctx.query = { ...ctx.query, scope: RESOURCE_SCOPE };
  }
  await next();
});

// Headless interaction: GET /interaction/:uid logs in "test-user" and grants
// everything requested, then 303s to the authorization resume endpoint.
provider.use(async (ctx, next) => {
  const match = /^\/interaction\/([^/]+)\/?$/.exec(ctx.path);
  if (!match || ctx.method !== 'GET') {
    await next();
    return;
  }

  let details;
  try {
    details = await provider.interactionDetails(ctx.req, ctx.res);
  } catch (err) {
    ctx.status = 400;
    ctx.type = 'json';
    ctx.body = { error: 'invalid_request', error_description: err.error_description || err.message };
    return;
  }
  if (details.uid !== match[1]) {
    ctx.status = 400;
    ctx.type = 'json';
    ctx.body = { error: 'invalid_request', error_description: 'interaction cookie/uid mismatch' };
    return;
  }

  const { params, prompt } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: ACCOUNT_ID, clientId: params.client_id });

  const requested = new Set(String(params.scope || '').split(' ').filter(Boolean));
  const oidcScopes = [...requested].filter((s) => OIDC_SCOPES.includes(s));
  if (oidcScopes.length) grant.addOIDCScope(oidcScopes.join(' '));
  if (prompt.details?.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);

  let resources = params.resource ?? params.audience ?? RESOURCE;
  if (!Array.isArray(resources)) resources = [resources];
  for (const resource of resources) {
    grant.addResourceScope(resource, RESOURCE_SCOPE);
  }
  for (const [resource, scopes] of Object.entries(prompt.details?.missingResourceScopes || {})) {
    grant.addResourceScope(resource, scopes.join(' '));
  }

  const grantId = await grant.save();
  const returnTo = await provider.interactionResult(ctx.req, ctx.res, {
    login: { accountId: ACCOUNT_ID },
    consent: { grantId },
  }, { mergeWithLastSubmission: false });

  ctx.redirect(returnTo);
  ctx.status = 303;
});

server.on('request', provider.callback());

// In-memory state only: exit at once (do not wait for keep-alive sockets).
const shutdown = () => {
  server.closeAllConnections();
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

stdoutWrite(`LISTENING ${ISSUER}`);
