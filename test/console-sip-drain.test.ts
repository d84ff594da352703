// A SIP call through `ward serve` keeps running while an operator drains its target: two Kamailio
// targets, SIP.js phones over WebSocket (the project's SIP user agent; JsSIP is not a dependency),
// sessions placed by hash of the tenant so both phones share one registrar. The drain takes no
// session down; the call stays up and ends normally with a BYE through the drained target, and a
// new session goes to the other target.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { SessionState } from 'sip.js';
import { policyDir, basePolicy, startWard, type PolicyFiles, type WardProcess } from './support/ward-process.js';
import { request, bearer } from './support/http.js';
import { signJwt, standardClaims } from './support/jwt.js';
import { startKamailio, type Kamailio } from './support/kamailio.js';
import { SipPhone } from './support/sip-ua.js';
import { consoleTokens, OPERATOR_TOKEN, sleep, until, upstreamView } from './support/targets.js';

let kams: Kamailio[] = [];
let p: PolicyFiles;
let w: WardProcess;
const phones: SipPhone[] = [];

before(async () => {
  kams = await Promise.all([startKamailio(), startKamailio()]);
  p = policyDir();
  p.write(
    basePolicy('http://127.0.0.1:1', {
      admin: consoleTokens(p),
      // balance_factor 1000: bounded loads never move these few sessions, so only the drain does.
      upstreams: { kam: { targets: kams.map((k) => k.url), timeout_ms: 5000, balance: 'hash', hash: { key: 'tenant', balance_factor: 1000 } } },
      routes: [{ name: 'sip', prefix: '/sip', websocket: true, sip: true, upstream: 'kam', concurrency: 'sessions', call_pool: 'calls' }],
      tenants: { '*': { buckets: {}, concurrency: { sessions: 20, calls: 5 } } },
    }),
  );
  w = await startWard(p.dir, { workers: 2 });
});

after(async () => {
  for (const ph of phones) await ph.stop();
  await w?.stop();
  await Promise.all(kams.map((k) => k.stop()));
  p?.remove();
});

async function phone(user: string): Promise<SipPhone> {
  const ph = await SipPhone.start({ user, domain: 'ward.test', server: `ws://127.0.0.1:${w.port}/sip`, token: signJwt(p.key, standardClaims('acme', { sub: user })) });
  phones.push(ph);
  return ph;
}

const inFlight = async (): Promise<Record<string, number>> =>
  Object.fromEntries((await upstreamView(w.admin, OPERATOR_TOKEN, 'kam')).targets.map((t) => [t.url, t.in_flight]));

test('a call keeps running while the console drains its target, and ends normally', { timeout: 30_000 }, async () => {
  const alice = await phone('alice');
  const bob = await phone('bob');
  const call = await alice.call('bob');
  assert.equal(call.status, 200);
  const loads = await inFlight();
  const home = kams.find((k) => loads[k.url] === 2);
  assert.ok(home !== undefined, `both sessions on one target: ${JSON.stringify(loads)}`);
  const other = kams.find((k) => k !== home)!;
  assert.equal(home.saw('INVITE', call.callId), 1);

  const r = await request(w.admin + '/admin/api/upstreams/kam/targets/drain', {
    method: 'POST',
    headers: { ...bearer(OPERATOR_TOKEN), 'x-ward-admin': '1', 'content-type': 'application/json' },
    body: JSON.stringify({ target: home.url }),
  });
  assert.equal(r.status, 200, r.body);
  const view = (await upstreamView(w.admin, OPERATOR_TOKEN, 'kam')).targets.find((t) => t.url === home.url)!;
  assert.deepEqual([view.state, view.in_flight], ['draining', 2], 'draining, with two live sessions remaining');

  // A new session of the same tenant goes to the other target.
  await phone('carol');
  assert.equal((await inFlight())[other.url], 1);

  // The call is still up a while later, on its original target...
  await sleep(1500);
  assert.equal(call.session.state, SessionState.Established);
  assert.equal(bob.incoming[0]!.state, SessionState.Established);
  // ...and ends normally: the BYE goes through the drained target to its registrar.
  await SipPhone.hangUp(call.session);
  await until('bob to see the hang-up', () => bob.incoming[0]!.state === SessionState.Terminated, 5000);
  assert.equal(home.saw('BYE', call.callId), 1);
  assert.equal(other.saw('INVITE'), 0);
  const calls = /ward_concurrency_in_use\{tenant="acme",pool="calls"\} (\d+)/.exec((await request(w.admin + '/metrics')).body);
  assert.equal(calls?.[1], '0', 'the call lease is back');
});
