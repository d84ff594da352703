// SIP over WebSocket through ward: SIP.js user agents in Node register with and call each other
// through ward to a real Kamailio. ward holds one lease of the tenant's call pool per call the
// client places, answers INVITEs over the pool with its own 503, and frees every lease as calls end.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startKamailio, type Kamailio } from './support/kamailio.js';
import { startWsWard, eventually, type WsWard } from './support/ws-gateway.js';
import { SipPhone } from './support/sip-ua.js';

const T = { timeout: 30_000 };
let kam: Kamailio;
let ward: WsWard;
const phones: SipPhone[] = [];

before(async () => {
  kam = await startKamailio();
  ward = await startWsWard({
    upstreams: { kam: { targets: [kam.url] } },
    routes: [
      { name: 'sip', prefix: '/sip', websocket: true, sip: true, upstream: 'kam', concurrency: 'sessions', call_pool: 'calls' },
      { name: 'sip-short', prefix: '/short', websocket: true, sip: true, upstream: 'kam', call_pool: 'calls', max_call_s: 1 },
    ],
    tenants: { '*': { buckets: {}, concurrency: { sessions: 20, calls: 2 } } },
  });
});

after(async () => {
  for (const p of phones) await p.stop();
  await ward.stop();
  await kam.stop();
});

async function phone(tenant: string, user: string, opts: { onInvite?: 'answer' | 'ring' | number; path?: string; tokenInHeader?: boolean } = {}): Promise<SipPhone> {
  const p = await SipPhone.start({
    user,
    domain: 'ward.test',
    server: ward.url(opts.path ?? '/sip'),
    token: ward.token(tenant),
    tokenInHeader: opts.tokenInHeader,
    onInvite: opts.onInvite,
  });
  phones.push(p);
  return p;
}

const callsInUse = (tenant: string) => ward.metric('ward_concurrency_in_use', { tenant, pool: 'calls' });
const zero = (n: number) => n === 0;

test('two SIP.js phones register and call each other through ward; hanging up frees the lease', T, async () => {
  const alice = await phone('acme', 'alice', { tokenInHeader: true });
  const bob = await phone('acme', 'bob');
  const call = await alice.call('bob');
  assert.equal(call.status, 200);
  assert.equal(kam.saw('INVITE', call.callId), 1);
  assert.equal(await callsInUse('acme'), 1);
  assert.equal(await ward.metric('ward_sip_calls_in_progress', { tenant: 'acme' }), 1);
  await SipPhone.hangUp(call.session);
  await eventually(() => callsInUse('acme'), zero);

  // The callee hangs up this time: the BYE comes from the upstream side.
  const again = await alice.call('bob');
  assert.equal(again.status, 200);
  assert.equal(await callsInUse('acme'), 1);
  await eventually(() => bob.incoming.length, (n) => n === 2);
  await SipPhone.hangUp(bob.incoming[1]!);
  await eventually(() => callsInUse('acme'), zero);
});

test('with a call pool of 2, the 3rd INVITE gets ward\'s 503 and never reaches Kamailio', T, async () => {
  const alice = await phone('globex', 'gina');
  const carol = await phone('globex', 'carl');
  await phone('globex', 'dave');
  const first = await alice.call('dave');
  const second = await carol.call('dave'); // another session of the same tenant: one pool
  assert.deepEqual([first.status, second.status], [200, 200]);
  const third = await alice.call('dave');
  assert.equal(third.status, 503);
  assert.equal(third.reason, 'Call Limit Reached');
  assert.equal(third.retryAfter, '5');
  await new Promise((r) => setTimeout(r, 300)); // anything forwarded would have reached Kamailio by now
  assert.equal(kam.saw('INVITE', third.callId), 0, 'the refused INVITE was not forwarded');
  assert.equal(kam.saw('ACK', third.callId), 0, 'nor the ACK for ward\'s 503');
  assert.equal(await ward.metric('ward_sip_calls_refused_total', { tenant: 'globex' }), 1);
  assert.equal(await callsInUse('globex'), 2);

  await SipPhone.hangUp(first.session);
  await eventually(() => callsInUse('globex'), (n) => n === 1);
  const fourth = await alice.call('dave');
  assert.equal(fourth.status, 200);
  await SipPhone.hangUp(fourth.session);
  await SipPhone.hangUp(second.session);
  await eventually(() => callsInUse('globex'), zero);
});

test('a session dropped mid-call frees its calls', T, async () => {
  const erin = await phone('initech', 'erin');
  await phone('initech', 'frank');
  const a = await erin.call('frank');
  const b = await erin.call('frank');
  assert.deepEqual([a.status, b.status], [200, 200]);
  assert.equal(await callsInUse('initech'), 2);
  erin.transport.drop();
  await eventually(() => callsInUse('initech'), zero);
  await eventually(() => ward.metric('ward_sip_calls_in_progress', { tenant: 'initech' }), zero);
});

test('a declined call frees the lease (non-2xx final answer)', T, async () => {
  const gus = await phone('umbrella', 'gus');
  await phone('umbrella', 'hal', { onInvite: 486 });
  const c = await gus.call('hal');
  assert.equal(c.status, 486);
  await eventually(() => callsInUse('umbrella'), zero);
});

test('CANCEL frees the lease once the INVITE is answered 487', T, async () => {
  const ivy = await phone('hooli', 'ivy');
  const jim = await phone('hooli', 'jim', { onInvite: 'ring' });
  const r = ivy.ring('jim');
  await eventually(() => jim.incoming.length, (n) => n === 1);
  assert.equal(await callsInUse('hooli'), 1);
  await r.inviter.cancel();
  assert.equal(await r.answered, 487);
  await eventually(() => callsInUse('hooli'), zero);
  assert.equal(kam.saw('CANCEL', r.callId), 1);
});

test('max_call_s frees the lease of a call that outlives it', T, async () => {
  const kim = await phone('stark', 'kim', { path: '/short' });
  await phone('stark', 'lou', { path: '/short' });
  const c = await kim.call('lou');
  assert.equal(c.status, 200);
  assert.equal(await callsInUse('stark'), 1);
  await eventually(() => callsInUse('stark'), zero, 4000);
  await SipPhone.hangUp(c.session);
});
