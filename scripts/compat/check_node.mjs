// JS client libraries against a running sso-token, used as their documentation shows.
//
// Run by scripts/compat.sh (from target/compat/node, where the pinned packages are installed).
// For each client authentication method (client_secret_post, client_secret_basic, and
// private_key_jwt with openid-client's PrivateKeyJwt when --jwt-client-key is given),
// openid-client discovers the server from /.well-known/oauth-authorization-server, builds the
// authorization URL with state and PKCE S256, and exchanges the code of the callback URL with
// authorizationCodeGrant; jose verifies the access token with createRemoteJWKSet on the
// metadata's jwks_uri only; openid-client introspects the token, reads user info with it
// (fetchUserInfo, which checks `sub`), revokes it, introspects it again and reads user info
// (fetchProtectedResource: the 401's challenge). simple-oauth2 then gets a token and revokes
// it, in strict JSON mode, with the credentials in the header and in the body. One line PASS or
// FAIL per step; exit status 1 on any FAIL.
//
// The authorize service is simulated: the parameters of the library's authorization URL are
// written into Redis with `sso-token issue-code`, and the callback carries that code and the
// state back.
//
//   node check_node.mjs --base-url URL --sso-token PATH --alg RS256|ES256|EdDSA
//       [--jwt-client-key PEM [--jwt-client-id ID]]
//   node check_node.mjs --write-jwks PEM --write-jwks OUT   (the registry's side: the public key
//       as a JWK Set)

import { execFileSync } from 'node:child_process'
import { createPublicKey } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

import * as client from 'openid-client'
import * as jose from 'jose'
import { AuthorizationCode } from 'simple-oauth2'

const SCOPE = 'user:basic user:contract'

const { values: args } = parseArgs({
  options: {
    'base-url': { type: 'string' },
    'sso-token': { type: 'string' },
    alg: { type: 'string' },
    'client-id': { type: 'string', default: 'demo-app' },
    'client-secret': { type: 'string', default: 'demo-secret' },
    'redirect-uri': { type: 'string', default: 'http://localhost:3000/sso/callback' },
    'jwt-client-key': { type: 'string' },
    'jwt-client-id': { type: 'string', default: 'jwt-client' },
    'write-jwks': { type: 'string', multiple: true },
  },
})
if (args['write-jwks']) {
  // The private_key_jwt client's public key, as the registry's jwks_file holds it.
  const [pem, out] = args['write-jwks']
  const jwk = await jose.exportJWK(createPublicKey(readFileSync(pem, 'ascii')))
  writeFileSync(out, JSON.stringify({ keys: [jwk] }))
  process.exit(0)
}
for (const required of ['base-url', 'sso-token', 'alg']) {
  if (!args[required]) {
    console.error(`check_node.mjs: --${required} is required`)
    process.exit(2)
  }
}

class StepFailed extends Error {}

let failures = 0

/** Runs `action`; prints PASS with its detail, or FAIL with the error and throws StepFailed. */
async function step(label, name, action) {
  let detail
  try {
    detail = await action()
  } catch (error) {
    failures += 1
    console.log(`FAIL  ${label}: ${name}: ${describe(error)}`)
    throw new StepFailed(name)
  }
  const suffix = typeof detail === 'string' && detail ? ` (${detail})` : ''
  console.log(`PASS  ${label}: ${name}${suffix}`)
  return detail
}

/** The error and what the library says caused it (a response body, a claim), on one line. */
function describe(error) {
  let cause = ''
  try {
    if (error?.cause !== undefined) cause = ` (cause: ${JSON.stringify(error.cause)})`
  } catch {
    cause = ` (cause: ${String(error.cause)})`
  }
  return `${error?.name}: ${error?.message}${cause}`
}

function expect(condition, message) {
  if (!condition) throw new Error(message)
}

/** The authorize service: writes the code for the request in `authorizationUrl` and answers
 * with the callback URL the browser would be redirected to. */
function authorize(authorizationUrl) {
  const query = authorizationUrl.searchParams
  expect(query.get('response_type') === 'code', `response_type ${query.get('response_type')}`)
  const argv = [
    'issue-code',
    '--client', query.get('client_id'),
    '--redirect-uri', query.get('redirect_uri'),
    '--code-challenge', query.get('code_challenge'),
    '--code-challenge-method', query.get('code_challenge_method'),
    '--name', 'Zhang San', '--email', 'zhangs@example.com',
  ]
  for (const scope of query.get('scope').split(' ')) argv.push('--scope', scope)
  const code = execFileSync(args['sso-token'], argv, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  }).trim()
  expect(code, 'issue-code printed no code')
  const callback = new URL(query.get('redirect_uri'))
  callback.searchParams.set('code', code)
  callback.searchParams.set('state', query.get('state'))
  return callback
}

/** The token with another `sub` in its payload and the original signature. */
function forged(token) {
  const [header, payload, signature] = token.split('.')
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString())
  claims.sub = 'someone-else'
  return `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}`
}

/** The client id and openid-client's client authentication for `method`. For private_key_jwt
 * its assertions are RS256 with the library's defaults (`aud` the issuer, 60 s). */
async function authentication(method) {
  switch (method) {
    case 'client_secret_basic':
      return [args['client-id'], client.ClientSecretBasic(args['client-secret'])]
    case 'client_secret_post':
      return [args['client-id'], client.ClientSecretPost(args['client-secret'])]
    default: {
      const key = await jose.importPKCS8(readFileSync(args['jwt-client-key'], 'ascii'), 'RS256')
      return [args['jwt-client-id'], client.PrivateKeyJwt(key)]
    }
  }
}

async function flow(method) {
  const label = `node ${method}`
  const [clientId, auth] = await authentication(method)
  const config = await step(label, 'discovery (RFC 8414, issuer check)', () =>
    client.discovery(new URL(args['base-url']), clientId, undefined, auth, {
      algorithm: 'oauth2',
      execute: [client.allowInsecureRequests],
    }))
  const metadata = config.serverMetadata()

  let tokens
  await step(label, 'token exchange (authorizationCodeGrant)', async () => {
    expect(metadata.token_endpoint_auth_methods_supported?.includes(method),
      `${method} not in token_endpoint_auth_methods_supported`)
    const verifier = client.randomPKCECodeVerifier()
    const state = client.randomState()
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: args['redirect-uri'],
      scope: SCOPE,
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
    })
    tokens = await client.authorizationCodeGrant(config, authorize(url), {
      pkceCodeVerifier: verifier,
      expectedState: state,
    })
    expect(tokens.token_type === 'bearer', `token_type ${tokens.token_type}`)
    expect(tokens.expiresIn() > 0, `expiresIn ${tokens.expiresIn()}`)
    expect(tokens.scope?.split(' ').join(' ') === SCOPE, `scope '${tokens.scope}'`)
    return `${method}, PKCE S256, state checked, scope '${tokens.scope}'`
  })
  const accessToken = tokens.access_token

  const jwks = jose.createRemoteJWKSet(new URL(metadata.jwks_uri))
  const verifyOptions = {
    issuer: metadata.issuer,
    audience: clientId,
    algorithms: [args.alg],
  }
  let payload
  await step(label, 'signature and claims (jose, JWKS from the metadata only)', async () => {
    const result = await jose.jwtVerify(accessToken, jwks, {
      ...verifyOptions,
      requiredClaims: ['exp', 'iat', 'iss', 'aud', 'sub', 'jti'],
    })
    const { alg, kid } = result.protectedHeader
    expect(alg === args.alg, `header alg ${alg}`)
    payload = result.payload
    return `createRemoteJWKSet + jwtVerify, ${alg}, kid ${kid.slice(0, 12)}…`
  })
  await step(label, 'a forged payload is refused', async () => {
    try {
      await jose.jwtVerify(forged(accessToken), jwks, verifyOptions)
    } catch (error) {
      if (error instanceof jose.errors.JWSSignatureVerificationFailed) return error.code
      throw error
    }
    throw new Error('a token with a changed sub verified')
  })

  const introspect = (active) => async () => {
    const body = await client.tokenIntrospection(config, accessToken, {
      token_type_hint: 'access_token',
    })
    expect(body.active === active, `active ${body.active}, expected ${active}`)
    if (active) {
      expect(body.sub === payload.sub, `sub ${body.sub}`)
      expect(body.client_id === clientId, `client_id ${body.client_id}`)
      expect(body.scope === SCOPE, `scope ${body.scope}`)
    }
    return `active: ${active}`
  }
  await step(label, 'introspection (tokenIntrospection)', introspect(true))

  const userInfoUrl = new URL(metadata.userinfo_endpoint)
  await step(label, 'user info (fetchUserInfo, expected subject)', async () => {
    // The library refuses an answer whose `sub` is missing or not the subject given.
    const body = await client.fetchUserInfo(config, accessToken, payload.sub)
    expect(body.id === payload.sub, `id ${body.id}`)
    expect(body.email === 'zhangs@example.com', `email ${body.email}`)
    return `sub ${body.sub}`
  })
  await step(label, 'revocation (tokenRevocation)', () =>
    client.tokenRevocation(config, accessToken, { token_type_hint: 'access_token' }))
  await step(label, 'introspection after revocation', introspect(false))
  await step(label, 'user info after revocation', async () => {
    try {
      await client.fetchProtectedResource(config, accessToken, userInfoUrl, 'GET')
    } catch (error) {
      // The library turns the 401's WWW-Authenticate challenge into an error.
      const challenge = error instanceof client.WWWAuthenticateChallengeError
        ? error.cause?.[0]
        : undefined
      expect(challenge?.scheme === 'bearer' && challenge.parameters.error === 'invalid_token',
        `unexpected error: ${error.name}: ${error.message}`)
      return `${error.status}, error="invalid_token"`
    }
    throw new Error('a revoked token was accepted')
  })
}

/** simple-oauth2 reads every answer as JSON, the revocation's included: its strict mode
 * refuses an answer that is not typed as JSON. The token comes from its `getToken` (PKCE S256),
 * is revoked with `revoke`, and openid-client then finds it inactive. */
async function simpleOauth2Flow(authorizationMethod) {
  const label = `node simple-oauth2 ${authorizationMethod}`
  const auth = client.ClientSecretBasic(args['client-secret'])
  const config = await client.discovery(new URL(args['base-url']), args['client-id'], undefined,
    auth, { algorithm: 'oauth2', execute: [client.allowInsecureRequests] })
  const metadata = config.serverMetadata()
  const at = (url) => ({ host: new URL(url).origin, path: new URL(url).pathname })
  const token = at(metadata.token_endpoint)
  const authorizeAt = at(metadata.authorization_endpoint)
  const oauth2 = new AuthorizationCode({
    client: { id: args['client-id'], secret: args['client-secret'] },
    auth: {
      tokenHost: token.host,
      tokenPath: token.path,
      revokePath: at(metadata.revocation_endpoint).path,
      authorizeHost: authorizeAt.host,
      authorizePath: authorizeAt.path,
    },
    options: { authorizationMethod },
    http: { json: 'strict' },
  })
  let accessToken
  await step(label, 'token exchange (getToken)', async () => {
    const verifier = client.randomPKCECodeVerifier()
    const url = new URL(oauth2.authorizeURL({
      redirect_uri: args['redirect-uri'],
      scope: SCOPE,
      state: client.randomState(),
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    }))
    const code = authorize(url).searchParams.get('code')
    accessToken = await oauth2.getToken({
      code,
      redirect_uri: args['redirect-uri'],
      code_verifier: verifier,
    })
    expect(accessToken.token.token_type === 'bearer', `token_type ${accessToken.token.token_type}`)
    return `${authorizationMethod}, PKCE S256`
  })
  await step(label, 'revocation (revoke, strict JSON)', () => accessToken.revoke('access_token'))
  await step(label, 'introspection after revocation (openid-client)', async () => {
    const body = await client.tokenIntrospection(config, accessToken.token.access_token)
    expect(body.active === false, `active ${body.active}`)
    return 'active: false'
  })
}

const flows = [
  () => flow('client_secret_post'),
  () => flow('client_secret_basic'),
  ...(args['jwt-client-key'] ? [() => flow('private_key_jwt')] : []),
  () => simpleOauth2Flow('header'),
  () => simpleOauth2Flow('body'),
]
for (const run of flows) {
  try {
    await run()
  } catch (error) {
    if (!(error instanceof StepFailed)) throw error
  }
}
process.exit(failures ? 1 : 0)
