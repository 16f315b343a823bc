// node-oidc-provider as a token endpoint for a same-machine comparison: codes are made
// in-process before listening (an in-process Map store, no expiry sweeps), written to a file,
// and exchanged over HTTP by the load client.
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const alg = process.env.ALG || 'RS256';
const n = Number(process.env.CODES || 60000);
const port = Number(process.env.PORT || 3999);

const store = new Map();
class MapAdapter {
  constructor(name) { this.name = name; }
  key(id) { return `${this.name}:${id}`; }
  async upsert(id, payload) { store.set(this.key(id), payload); }
  async find(id) { return store.get(this.key(id)); }
  async findByUid() { return undefined; }
  async findByUserCode() { return undefined; }
  async consume(id) { const p = store.get(this.key(id)); if (p) p.consumed = Math.floor(Date.now() / 1000); }
  async destroy(id) { store.delete(this.key(id)); }
  async revokeByGrantId() {}
}

const keyOf = {
  RS256: () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey,
  ES256: () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
  EdDSA: () => generateKeyPairSync('ed25519').privateKey,
};
const jwk = { ...keyOf[alg]().export({ format: 'jwk' }), kid: 'k1', alg, use: 'sig' };

const resource = 'urn:sso:api';
const provider = new Provider('http://127.0.0.1:' + port, {
  adapter: MapAdapter,
  jwks: { keys: [jwk] },
  clients: [{
    client_id: 'bench', client_secret: 'bench-secret-0123456789',
    redirect_uris: ['https://app.example/cb'], grant_types: ['authorization_code'],
    response_types: ['code'], token_endpoint_auth_method: 'client_secret_post',
    id_token_signed_response_alg: alg,
  }],
  pkce: { required: () => false },
  scopes: ['user:basic'],
  findAccount: async (ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  features: {
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'user:basic', audience: resource, accessTokenTTL: 1800,
        accessTokenFormat: 'jwt', jwt: { sign: { alg } },
      }),
    },
  },
});

const client = await provider.Client.find('bench');
const codes = [];
for (let i = 0; i < n; i++) {
  const grant = new provider.Grant({ accountId: `user${i}`, clientId: 'bench' });
  grant.addResourceScope(resource, 'user:basic');
  const grantId = await grant.save();
  const code = new provider.AuthorizationCode({
    accountId: `user${i}`, client, grantId, redirectUri: 'https://app.example/cb',
    scope: 'user:basic', resource, authTime: Math.floor(Date.now() / 1000),
  });
  codes.push(await code.save());
}
writeFileSync(process.env.CODES_FILE, codes.join('\n'));
provider.listen(port, () => console.log(`listening on ${port}, ${alg}, ${n} codes`));
