// ward's side of every scenario, kept apart so the harness runs against the references alone until
// the gateway's CLI exists: a policy directory written into a temp dir (gateway.yaml, a fresh Ed25519
// key pair as jwks.json + dev-private.jwk), tokens minted with the same key, and `ward serve` started.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { stringify } from 'yaml';
import { freePort, startChild, tempDir, type Child } from './processes.js';

export const ISSUER = 'https://id.loadtest.example';
export const AUDIENCE = 'ward';

export interface SigningKeys {
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
  readonly privateJwk: JWK;
}

export async function makeKeys(): Promise<SigningKeys> {
  const { publicKey, privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
  const kid = 'loadtest-1';
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'EdDSA', use: 'sig' };
  const privateJwk = { ...(await exportJWK(privateKey)), kid, alg: 'EdDSA' };
  return { kid, privateKey, publicJwk, privateJwk };
}

/** A token ward accepts for tenant `tenant` (valid 6 h), signed like `ward token` would. */
export function mintToken(keys: SigningKeys, tenant: string, sub = 'loadtest'): Promise<string> {
  return new SignJWT({ tenant })
    .setProtectedHeader({ alg: 'EdDSA', kid: keys.kid, typ: 'JWT' })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime('6h')
    .sign(keys.privateKey);
}

/** What a scenario decides; ports, auth and keys are filled in here. */
export interface PolicyBody {
  readonly upstreams: Record<string, unknown>;
  readonly routes: readonly unknown[];
  readonly tenants: Record<string, unknown>;
  readonly flood?: Record<string, unknown>;
  readonly store?: Record<string, unknown>;
}

export interface WardPolicy {
  readonly dir: string;
  readonly port: number;
  readonly adminPort: number;
  readonly keys: SigningKeys;
}

export async function writeWardPolicy(body: PolicyBody, keys?: SigningKeys): Promise<WardPolicy> {
  const k = keys ?? (await makeKeys());
  const dir = tempDir('ward-loadtest-policy-');
  mkdirSync(join(dir, 'keys'));
  writeFileSync(join(dir, 'keys', 'jwks.json'), JSON.stringify({ keys: [k.publicJwk] }, null, 2));
  writeFileSync(join(dir, 'keys', 'dev-private.jwk'), JSON.stringify(k.privateJwk, null, 2));
  const port = await freePort();
  const adminPort = await freePort();
  const doc = {
    listen: { host: '127.0.0.1', port },
    admin: { host: '127.0.0.1', port: adminPort },
    store: body.store ?? { kind: 'memory' },
    auth: {
      jwks_file: 'keys/jwks.json',
      issuer: ISSUER,
      audience: AUDIENCE,
      algorithms: ['EdDSA'],
      tenant_claim: 'tenant',
      dev_signing_key: 'keys/dev-private.jwk',
    },
    upstreams: body.upstreams,
    routes: body.routes,
    ...(body.flood ? { flood: body.flood } : {}),
    tenants: body.tenants,
  };
  writeFileSync(join(dir, 'gateway.yaml'), stringify(doc));
  return { dir, port, adminPort, keys: k };
}

/** <outDir>/gateway/cli.js beside this compiled file's <outDir>/loadtest/. */
export function wardCliPath(): string {
  return fileURLToPath(new URL('../gateway/cli.js', import.meta.url));
}

export function wardAvailable(): boolean {
  return existsSync(wardCliPath());
}

export interface WardStartOptions {
  readonly workers?: number;
  /** taskset CPU list. */
  readonly cpus?: string;
  /** Extra node flags, e.g. --cpu-prof. */
  readonly nodeFlags?: readonly string[];
  /** `--kernel-bans` (see kernelBansUnusable). */
  readonly kernelBans?: boolean;
}

/** Why `ward serve --kernel-bans` cannot run here (no nft, or no CAP_NET_ADMIN), or undefined when it can. */
export function kernelBansUnusable(): string | undefined {
  const r = spawnSync('nft', ['list', 'tables'], { encoding: 'utf8' });
  if (r.status === 0) return undefined;
  return r.error ? 'nft is not installed (apt-get install nftables)' : `nft cannot change the firewall here: ${(r.stderr ?? '').trim().split('\n')[0]}`;
}

/** Starts `ward serve` on the policy and waits for its "listening" log line. */
export function startWard(policy: WardPolicy, o: WardStartOptions = {}): Promise<Child> {
  const args = [...(o.nodeFlags ?? []), wardCliPath(), 'serve', '--policies', policy.dir];
  if (o.workers !== undefined) args.push('--workers', String(o.workers));
  if (o.kernelBans) args.push('--kernel-bans');
  return startChild({
    name: 'ward',
    cmd: process.execPath,
    args,
    cpus: o.cpus,
    env: { ...process.env, NODE_ENV: 'production' },
    readyLine: (l) => l.includes('"msg":"listening"'),
    timeoutMs: 20000,
  });
}
