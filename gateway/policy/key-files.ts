// The files a policy names besides its YAML: the JWKS that verifies tenant tokens, the
// development signing key, and the ops console's token list. Each is read and checked here,
// and any problem is reported at the key that names the file.

import { readFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { importJWK, type JSONWebKeySet, type JWK } from 'jose';
import type { AdminToken } from './types.js';
import { tokensFileSchema } from './schema.js';
import { Locations, walk } from './walker.js';
import { SourceFile, type Loc, type Problems } from './yaml-source.js';

const REASONS: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EISDIR: 'it is a directory',
  ENOTDIR: 'a parent is not a directory',
};

/** Reads files relative to the policy directory and remembers every one read (for hash and watch). */
export class PolicyFiles {
  /** Absolute path → contents, in read order. */
  readonly read = new Map<string, string>();
  readonly abs: string;

  constructor(readonly given: string) {
    this.abs = resolve(given);
  }

  /** The path shown in problems: the directory as the operator typed it, plus `rel`. */
  show(rel: string): string {
    return isAbsolute(rel) ? rel : join(this.given, rel);
  }

  async text(rel: string): Promise<{ text: string } | { error: string }> {
    const file = resolve(this.abs, rel);
    try {
      const text = await readFile(file, 'utf8');
      this.read.set(file, text);
      return { text };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
      return { error: `cannot read ${rel} (${REASONS[code] ?? code})` };
    }
  }
}

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'];
const REQUIRED_MEMBERS: Record<string, readonly string[]> = { EC: ['crv', 'x', 'y'], OKP: ['crv', 'x'], RSA: ['n', 'e'] };
const CURVE_ALGS: Record<string, readonly string[]> = {
  'P-256': ['ES256'],
  'P-384': ['ES384'],
  'P-521': ['ES512'],
  Ed25519: ['EdDSA', 'Ed25519'],
  Ed448: ['EdDSA'],
};
const RSA_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];

/** The algorithms a key can verify: its own `alg`, or what its type and curve allow. */
function algsOf(key: JWK): readonly string[] {
  if (typeof key.alg === 'string') return [key.alg];
  if (key.kty === 'RSA') return RSA_ALGS;
  return CURVE_ALGS[String(key.crv)] ?? [];
}

/** Problems with one public or private JWK's shape; undefined when it is usable. */
async function checkKey(key: unknown, label: string, wantPrivate: boolean): Promise<string | undefined> {
  if (typeof key !== 'object' || key === null || Array.isArray(key)) return `${label} is not a JSON object`;
  const k = key as JWK;
  if (k.kty === 'oct') return `${label} is a shared-secret key (kty "oct"); only asymmetric keys are accepted`;
  const members = REQUIRED_MEMBERS[String(k.kty)];
  if (!members) return `${label} has kty ${JSON.stringify(k.kty)} (expected EC, OKP or RSA)`;
  const missing = members.find((m) => typeof (k as Record<string, unknown>)[m] !== 'string');
  if (missing) return `${label} (kty ${k.kty}) lacks "${missing}"`;
  const secret = PRIVATE_MEMBERS.find((m) => m in k);
  if (!wantPrivate && secret) return `${label} contains private key material ("${secret}"); a JWKS must hold public keys only`;
  if (wantPrivate && !('d' in k)) return `${label} is not a private key (no "d")`;
  const alg = algsOf(k)[0];
  if (!alg) return `${label} has an unknown curve ${JSON.stringify(k.crv)}`;
  try {
    await importJWK(k, alg);
  } catch (e) {
    return `${label} is not a valid ${alg} key (${(e as Error).message})`;
  }
  return undefined;
}

function parseJson(text: string, rel: string): { value: unknown } | { error: string } {
  try {
    return { value: JSON.parse(text) };
  } catch (e) {
    return { error: `${rel} is not valid JSON (${(e as Error).message})` };
  }
}

/** Reads `auth.jwks_file`: a JWKS of public asymmetric keys, at least one usable with `algorithms`. */
export async function readJwks(
  files: PolicyFiles, rel: string, algorithms: readonly string[], at: Loc, problems: Problems,
): Promise<JSONWebKeySet | undefined> {
  const fail = (message: string): undefined => void problems.add(at, `auth.jwks_file: ${message}`);
  const read = await files.text(rel);
  if ('error' in read) return fail(read.error);
  const parsed = parseJson(read.text, rel);
  if ('error' in parsed) return fail(parsed.error);
  const jwks = parsed.value as { keys?: unknown };
  if (typeof jwks !== 'object' || jwks === null || !Array.isArray(jwks.keys)) {
    return fail(`${rel} is not a JWKS (expected {"keys": [...]})`);
  }
  if (jwks.keys.length === 0) return fail(`${rel} holds no keys`);
  let bad = false;
  for (const [i, key] of jwks.keys.entries()) {
    const err = await checkKey(key, `${rel} keys[${i}]`, false);
    if (err) {
      fail(err);
      bad = true;
    }
  }
  if (bad) return undefined;
  const keys = jwks.keys as JWK[];
  if (algorithms.length && !keys.some((k) => algsOf(k).some((a) => algorithms.includes(a)))) {
    return fail(`no key in ${rel} can verify ${algorithms.join(' or ')}`);
  }
  return { keys };
}

function samePublicKey(a: JWK, b: JWK): boolean {
  return a.kty === b.kty && a.crv === b.crv && a.x === b.x && a.y === b.y && a.n === b.n && a.e === b.e;
}

/** Reads `auth.dev_signing_key`: a private JWK whose public half is in the JWKS. */
export async function readDevKey(
  files: PolicyFiles, rel: string, jwks: JSONWebKeySet | undefined, algorithms: readonly string[], at: Loc, problems: Problems,
): Promise<JWK | undefined> {
  const fail = (message: string): undefined => void problems.add(at, `auth.dev_signing_key: ${message}`);
  const read = await files.text(rel);
  if ('error' in read) return fail(read.error);
  const parsed = parseJson(read.text, rel);
  if ('error' in parsed) return fail(parsed.error);
  const err = await checkKey(parsed.value, rel, true);
  if (err) return fail(err);
  const key = parsed.value as JWK;
  if (typeof key.alg !== 'string') return fail(`${rel} has no "alg" (ward token needs to know how to sign)`);
  if (!algorithms.includes(key.alg)) return fail(`${rel} signs with ${key.alg}, which auth.algorithms does not accept`);
  if (jwks && !jwks.keys.some((k) => samePublicKey(k, key))) {
    return fail(`the public half of ${rel} is not in the JWKS, so tokens it signs would be refused`);
  }
  return key;
}

/** Reads `admin.console.tokens_file`: `[{name, role: viewer|operator, sha256}]`. */
export async function readAdminTokens(
  files: PolicyFiles, rel: string, at: Loc, problems: Problems,
): Promise<AdminToken[] | undefined> {
  const read = await files.text(rel);
  if ('error' in read) return void problems.add(at, `admin.console.tokens_file: ${read.error}`);
  const src = new SourceFile(files.show(rel), read.text, problems);
  if (!src.parsed) return undefined;
  const before = problems.count;
  const locs = new Locations();
  const tokens = walk(src.doc.contents, tokensFileSchema, [], { src, problems, locs }) as AdminToken[];
  const names = new Map<string, number>();
  const hashes = new Map<string, number>();
  tokens.forEach((t, i) => {
    if (!t) return;
    const n = names.get(t.name);
    if (n !== undefined) problems.add(locs.value([i, 'name'])!, `token name "${t.name}" is already used by [${n}]`);
    else names.set(t.name, i);
    const h = hashes.get(t.sha256);
    if (h !== undefined) problems.add(locs.value([i, 'sha256'])!, `this sha256 is already listed at [${h}]`);
    else hashes.set(t.sha256, i);
  });
  return problems.count === before ? tokens : undefined;
}
