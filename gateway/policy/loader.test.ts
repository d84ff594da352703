import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadPolicy } from './loader.js';
import type { LoadResult, Policy, PolicyProblem } from './types.js';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const examples = join(repo, 'policies');
const fixtures = join(examples, 'fixtures');
const jwks = readFileSync(join(examples, 'keys/jwks.json'), 'utf8');

const temps: string[] = [];
after(() => temps.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A policy directory with the given files (jwks.json included unless overridden). */
function policyDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'ward-policy-'));
  temps.push(dir);
  for (const [name, text] of Object.entries({ 'jwks.json': jwks, ...files })) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

const MINIMAL = `auth: { jwks_file: jwks.json, issuer: "https://id.example", audience: ward, algorithms: [EdDSA] }
upstreams: { api: { targets: ["http://127.0.0.1:9001"] } }
routes: [{ name: api, prefix: /, upstream: api }]
`;

/** Name-keyed maps have a null prototype; compare their contents. */
const plain = (v: unknown): unknown => JSON.parse(JSON.stringify(v));

function ok(r: LoadResult): Policy {
  if (!r.ok) assert.fail(r.problems.map((p) => `${p.file}:${p.line}:${p.col}: ${p.message}`).join('\n'));
  return r.policy;
}

function problems(r: LoadResult, dir: string): string[] {
  assert.equal(r.ok, false, 'expected the policy to be refused');
  return (r as { problems: readonly PolicyProblem[] }).problems.map((p) => `${relative(dir, p.file)}:${p.line}:${p.col}: ${p.message}`);
}

test('the example policy loads with the contract example in it', async () => {
  const p = ok(await loadPolicy(examples));
  assert.deepEqual(p.listen, { host: '0.0.0.0', port: 8080 });
  assert.deepEqual({ host: p.admin.host, port: p.admin.port }, { host: '127.0.0.1', port: 9901 });
  assert.equal(p.store.kind, 'memory');
  assert.deepEqual(p.upstreams.api!.targets, ['http://127.0.0.1:9001']);
  assert.deepEqual(p.routes.map((r) => r.name), ['calls', 'signal', 'public', 'api']);
  assert.deepEqual(p.flood.per_ip, { rate: 50, per_s: 1, ban_s: 30 });
  assert.deepEqual(Object.keys(p.tenants).sort(), ['*', 'acme', 'globex']);
  assert.equal(p.auth.dev_signing_key?.kid, 'ward-dev-2026');
  assert.equal(p.auth.dev_signing_key?.alg, 'EdDSA');
  assert.equal(p.auth.jwks.keys[0]!.kid, 'ward-dev-2026');
  assert.equal(p.auth.jwks.keys[0]!.d, undefined, 'the JWKS holds the public half only');
  assert.equal(p.admin.console?.tokens.length, 2);
  assert.equal(p.dir, examples.replace(/\/$/, ''));
});

test('a named tenant keeps the default buckets and pools it does not replace', async () => {
  const p = ok(await loadPolicy(examples));
  const acme = p.tenants.acme!;
  assert.deepEqual(acme.buckets.api, { rate: 200, per_s: 1, burst: 400 });
  assert.deepEqual(acme.buckets.calls, { rate: 2, per_s: 1, burst: 2 }, 'default calls bucket kept');
  assert.equal(acme.concurrency.calls, 50);
  assert.equal(acme.concurrency.sessions, 10, 'default sessions pool kept');
  const globex = p.tenants.globex!; // from tenants/globex.yaml
  assert.deepEqual(globex.buckets.api, { rate: 50, per_s: 1, burst: 100 });
  assert.equal(globex.concurrency.sessions, 20);
  assert.deepEqual(plain(p.tenants['*']!.concurrency), { calls: 5, sessions: 10 });
});

test('tenant, bucket and pool lookups are safe for any name', async () => {
  const p = ok(await loadPolicy(examples));
  for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
    assert.equal(p.tenants[name], undefined, name);
    assert.equal(p.tenants.acme!.buckets[name], undefined, name);
    assert.equal(p.tenants.acme!.concurrency[name], undefined, name);
    assert.equal(p.upstreams[name], undefined, name);
  }
});

test('every default of the contract is applied', async () => {
  const p = ok(await loadPolicy(join(fixtures, 'valid-minimal')));
  assert.deepEqual(p.listen, { host: '0.0.0.0', port: 8080 });
  assert.deepEqual(p.admin, { host: '127.0.0.1', port: 9901 });
  assert.deepEqual(p.store, { kind: 'memory', prefix: 'ward:', outage_share: 0.5 });
  assert.equal(p.auth.tenant_claim, 'tenant');
  assert.equal(p.auth.clock_tolerance_s, 30);
  assert.deepEqual(p.upstreams.api, { name: 'api', targets: ['http://127.0.0.1:9001'], timeout_ms: 30000, pipeline: false, balance: 'least_request' });
  assert.deepEqual(p.routes[0], {
    name: 'api', prefix: '/', upstream: 'api', websocket: false, public: false, enforce: true,
    max_message_bytes: 65536, idle_timeout_s: 60, sip: false, max_call_s: 7200,
  });
  assert.deepEqual(p.flood, {
    ipv6_prefix: 64, max_body_bytes: 1048576, max_header_bytes: 16384, deny: [], allow: [], enforce: true,
    refusal_pace: { rate: 500, per_s: 1, burst: 100, max_waiting: 512 },
  });
  assert.deepEqual(plain(p.tenants), { '*': { buckets: {}, concurrency: {} } });
  assert.deepEqual(p.e2e, { cors_origins: [] });
  assert.deepEqual(plain(p.releases), {});
});

test('health, hash, bucket and release defaults fill what a section leaves out', async () => {
  const p = ok(await loadPolicy(join(fixtures, 'valid-full')));
  const api = p.upstreams.api!;
  assert.deepEqual(api.hash, { key: 'header:x-call-id', balance_factor: 125 });
  assert.deepEqual(api.health, {
    active: { path: '/ready', interval_ms: 500, timeout_ms: 250, rise: 2, fall: 3 },
    passive: { consecutive_failures: 3, base_ejection_ms: 30000, max_ejection_ms: 300000 },
    max_ejection_percent: 50, panic_threshold_percent: 50, slow_start_ms: 10000,
  });
  assert.equal(api.pipeline, false, 'pipelining is off unless asked for');
  assert.equal(p.upstreams.api_v2!.pipeline, true);
  const sigws = p.upstreams.sigws!;
  assert.deepEqual(sigws.hash, { key: 'tenant', balance_factor: 125 }, 'balance: hash without a hash block');
  assert.equal(sigws.health?.active, undefined, 'active: false turns active checks off');
  assert.equal('active' in sigws.health!, false);
  assert.deepEqual(sigws.health?.passive, { consecutive_failures: 5, base_ejection_ms: 30000, max_ejection_ms: 300000 });
  assert.deepEqual(p.tenants['*']!.buckets.msgs, { rate: 100, per_s: 10, burst: 100 }, 'burst defaults to rate');
  assert.deepEqual(p.routes[0]!.methods, ['POST'], 'methods are upper-cased');
  assert.equal(p.routes[0]!.enforce, false);
  assert.deepEqual(p.flood.per_ip, { rate: 100, per_s: 1, ban_s: 60 });
  assert.deepEqual(p.flood.deny, ['203.0.113.0/24', '2001:db8::/32', '198.51.100.7/32'], 'a bare address is one host');
  assert.deepEqual(p.store, { kind: 'redis', url: 'redis://127.0.0.1:6379', prefix: 'test:', outage_share: 0.25 });
  const rel = p.releases['api-v2']!;
  assert.equal(rel.name, 'api-v2');
  assert.equal(rel.step_interval_s, 300);
  assert.deepEqual(rel.analysis, { max_error_rate: 0.02, window_s: 60, min_requests: 100 });
  assert.deepEqual(rel.steps[0], { groups: ['beta'] });
  const sip = p.routes.find((r) => r.name === 'sip')!;
  assert.deepEqual([sip.websocket, sip.sip, sip.call_pool, sip.max_call_s], [true, true, 'calls', 3600]);
  assert.deepEqual(p.tenants.globex!.buckets.e2e, { rate: 5, per_s: 1, burst: 5 });
  assert.equal(p.tenants.acme!.buckets.e2e, undefined);
});

test('the policy is deep-frozen', async () => {
  const p = ok(await loadPolicy(examples));
  assert.ok(Object.isFrozen(p));
  assert.ok(Object.isFrozen(p.routes) && Object.isFrozen(p.routes[0]));
  assert.ok(Object.isFrozen(p.tenants.acme!.buckets.calls));
  assert.ok(Object.isFrozen(p.auth.jwks.keys[0]));
  assert.throws(() => {
    (p.flood.deny as string[]).push('0.0.0.0/0');
  }, TypeError);
  assert.throws(() => {
    (p.tenants['*']!.buckets.api as { rate: number }).rate = 1e9;
  }, TypeError);
});

test('hash and files identify exactly what was read', async () => {
  const dir = policyDir({ 'gateway.yaml': MINIMAL, 'tenants/a.yaml': 'tenants: { a: {} }\n' });
  const p1 = ok(await loadPolicy(dir));
  assert.deepEqual(p1.files, [join(dir, 'gateway.yaml'), join(dir, 'jwks.json'), join(dir, 'tenants/a.yaml')]);
  assert.match(p1.hash, /^[0-9a-f]{64}$/);
  assert.equal(ok(await loadPolicy(dir)).hash, p1.hash, 'same files, same hash');
  writeFileSync(join(dir, 'tenants/a.yaml'), 'tenants: { a: {}, b: {} }\n');
  assert.notEqual(ok(await loadPolicy(dir)).hash, p1.hash);
});

test('problems name files as the operator typed the directory', async () => {
  const dir = policyDir({ 'gateway.yaml': MINIMAL.replace('upstream: api }', 'upstream: nope }') });
  const given = relative(process.cwd(), dir) + '/';
  const r = await loadPolicy(given);
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.equal(r.problems[0]!.file, join(given, 'gateway.yaml'));
  assert.equal(r.problems[0]!.message, 'unknown upstream "nope" (defined: api)');
});

test('a missing directory or gateway.yaml is one problem at 1:1', async () => {
  const dir = policyDir({});
  assert.deepEqual(problems(await loadPolicy(dir), dir), ['gateway.yaml:1:1: cannot read gateway.yaml (no such file)']);
  const gone = join(dir, 'nope');
  assert.deepEqual(problems(await loadPolicy(gone), gone), ['gateway.yaml:1:1: cannot read gateway.yaml (no such file)']);
});

test('an empty gateway.yaml lists the required keys', async () => {
  const dir = policyDir({ 'gateway.yaml': '# nothing yet\n' });
  assert.deepEqual(problems(await loadPolicy(dir), dir), [
    'gateway.yaml:1:1: the file is missing the required key "auth"',
    'gateway.yaml:1:1: the file is missing the required key "routes"',
    'gateway.yaml:1:1: the file is missing the required key "upstreams"',
  ]);
});

test('a repeated key and an undefined alias are reported where they are written', async () => {
  const dir = policyDir({ 'gateway.yaml': `${MINIMAL}flood: { max_body_bytes: 10, max_body_bytes: 20 }\ne2e: *nothing\n` });
  assert.deepEqual(problems(await loadPolicy(dir), dir), [
    'gateway.yaml:4:30: YAML syntax error: Map keys must be unique',
  ]);
  const dir2 = policyDir({ 'gateway.yaml': `${MINIMAL}e2e: *nothing\n` });
  assert.deepEqual(problems(await loadPolicy(dir2), dir2), ['gateway.yaml:4:6: e2e refers to an alias that is not defined']);
});

test('a JWKS must hold public asymmetric keys usable with the algorithms', async () => {
  const priv = readFileSync(join(examples, 'keys/dev-private.jwk'), 'utf8');
  const cases: Array<[string, string]> = [
    ['{"keys": [', 'auth.jwks_file: jwks.json is not valid JSON'],
    ['{"kty": "OKP"}', 'auth.jwks_file: jwks.json is not a JWKS (expected {"keys": [...]})'],
    ['{"keys": []}', 'auth.jwks_file: jwks.json holds no keys'],
    [`{"keys": [${priv}]}`, 'auth.jwks_file: jwks.json keys[0] contains private key material ("d"); a JWKS must hold public keys only'],
    ['{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}', 'auth.jwks_file: jwks.json keys[0] is a shared-secret key (kty "oct"); only asymmetric keys are accepted'],
    ['{"keys": [{"kty": "EC", "crv": "P-256", "x": "AAAA"}]}', 'auth.jwks_file: jwks.json keys[0] (kty EC) lacks "y"'],
    ['{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}]}', 'auth.jwks_file: jwks.json keys[0] is not a valid EdDSA key'],
  ];
  for (const [text, message] of cases) {
    const dir = policyDir({ 'gateway.yaml': MINIMAL, 'jwks.json': text });
    const lines = problems(await loadPolicy(dir), dir);
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.ok(lines[0]!.startsWith(`gateway.yaml:1:20: ${message}`), lines[0]);
  }
});

test('the development key must be private, readable and have its public half in the JWKS', async () => {
  const other = JSON.stringify({
    kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA',
    x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo', d: 'nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A',
  });
  const withKey = MINIMAL.replace('algorithms: [EdDSA] }', 'algorithms: [EdDSA], dev_signing_key: dev.jwk }');
  const cases: Array<[Record<string, string>, string]> = [
    [{}, 'auth.dev_signing_key: cannot read dev.jwk (no such file)'],
    [{ 'dev.jwk': jwks }, 'auth.dev_signing_key: dev.jwk has kty undefined (expected EC, OKP or RSA)'],
    [{ 'dev.jwk': JSON.stringify(JSON.parse(jwks).keys[0]) }, 'auth.dev_signing_key: dev.jwk is not a private key (no "d")'],
    [{ 'dev.jwk': other }, 'auth.dev_signing_key: the public half of dev.jwk is not in the JWKS, so tokens it signs would be refused'],
  ];
  for (const [files, message] of cases) {
    const dir = policyDir({ 'gateway.yaml': withKey, ...files });
    assert.deepEqual(problems(await loadPolicy(dir), dir), [`gateway.yaml:1:115: ${message}`]);
  }
});

test('an unreadable tokens file is reported at tokens_file', async () => {
  const dir = policyDir({ 'gateway.yaml': `${MINIMAL}admin: { console: { tokens_file: tokens.yaml } }\n` });
  assert.deepEqual(problems(await loadPolicy(dir), dir), ['gateway.yaml:4:34: admin.console.tokens_file: cannot read tokens.yaml (no such file)']);
});

test('store and route combinations that cannot work are refused', async () => {
  const dir = policyDir({
    'gateway.yaml': `${MINIMAL}store: { kind: redis-cluster, url: "redis://127.0.0.1:6379" }
listen: { port: 9901 }
`,
  });
  assert.deepEqual(problems(await loadPolicy(dir), dir), [
    'gateway.yaml:4:16: store.kind redis-cluster needs store.nodes',
    'gateway.yaml:4:36: store.url is only used with kind: redis',
    'gateway.yaml:5:17: admin.port 9901 is also listen.port: the two need different ports',
  ]);
});

test('infinite and not-a-number values are named as such', async () => {
  const dir = policyDir({ 'gateway.yaml': `${MINIMAL}flood: { per_ip: { rate: .inf, per_s: .nan }, max_body_bytes: 1e400 }\n` });
  assert.deepEqual(problems(await loadPolicy(dir), dir), [
    'gateway.yaml:4:26: flood.per_ip.rate must be a finite number, not Infinity',
    'gateway.yaml:4:39: flood.per_ip.per_s must be a finite number, not NaN',
    'gateway.yaml:4:63: flood.max_body_bytes must be an integer, not Infinity',
  ]);
});

test('port 0 (any free port) is accepted for both listeners', async () => {
  const dir = policyDir({ 'gateway.yaml': `${MINIMAL}listen: { port: 0 }\nadmin: { port: 0 }\n` });
  const p = ok(await loadPolicy(dir));
  assert.equal(p.listen.port, 0);
  assert.equal(p.admin.port, 0);
});

test('an unquoted * tenant gets a plain explanation instead of alias errors', async () => {
  const dir = policyDir({ 'gateway.yaml': `${MINIMAL}tenants:\n  *: { buckets: {} }\n` });
  assert.deepEqual(problems(await loadPolicy(dir), dir), [
    'gateway.yaml:5:3: YAML syntax error: a bare * starts an alias; quote the default tenant as "*"',
  ]);
});

test('tenant files: .yaml and .yml are read, hidden files are not, each needs a tenants key', async () => {
  const dir = policyDir({
    'gateway.yaml': MINIMAL,
    'tenants/a.yml': 'tenants: { "*": { concurrency: { calls: 1 } } }\n',
    'tenants/b.yaml': 'tenants: { beta: { concurrency: { calls: 7 } } }\n',
    'tenants/.c.yaml': 'this is: [an editor backup\n',
    'tenants/notes.txt': 'not yaml at all: [',
  });
  const p = ok(await loadPolicy(dir));
  assert.deepEqual(plain(p.tenants), {
    '*': { buckets: {}, concurrency: { calls: 1 } },
    beta: { buckets: {}, concurrency: { calls: 7 } },
  });
  writeFileSync(join(dir, 'tenants/d.yaml'), 'tenant:\n  delta: {}\n');
  assert.deepEqual(problems(await loadPolicy(dir), dir), [
    'tenants/d.yaml:1:1: the file is missing the required key "tenants"',
    'tenants/d.yaml:1:1: unknown key "tenant" (did you mean "tenants"?)',
  ]);
});

test('"__proto__" is refused as a name', async () => {
  const dir = policyDir({ 'gateway.yaml': `${MINIMAL}tenants: { __proto__: {} }\n` });
  assert.deepEqual(problems(await loadPolicy(dir), dir), ['gateway.yaml:4:12: tenants cannot use "__proto__" as a name']);
});
