// SIP messages written by hand through ward to Kamailio: what ward does with malformed ones, and
// that a retransmitted INVITE takes no second lease.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { WebSocket } from 'ws';
import { startKamailio, type Kamailio } from './support/kamailio.js';
import { startWsWard, connect, eventually, type WsWard } from './support/ws-gateway.js';
import { SipPhone } from './support/sip-ua.js';

const T = { timeout: 30_000 };
let kam: Kamailio;
let ward: WsWard;
let ringer: SipPhone;

before(async () => {
  kam = await startKamailio();
  ward = await startWsWard({
    upstreams: { kam: { targets: [kam.url] } },
    routes: [{ name: 'sip', prefix: '/sip', websocket: true, sip: true, upstream: 'kam', call_pool: 'calls' }],
    tenants: { '*': { buckets: {}, concurrency: { calls: 3 } } },
  });
  ringer = await SipPhone.start({ user: 'rita', domain: 'ward.test', server: ward.url('/sip'), token: ward.token('rawco'), onInvite: 'ring' });
});

after(async () => {
  await ringer.stop();
  await ward.stop();
  await kam.stop();
});

const id = () => randomBytes(6).toString('hex');

function request(method: string, o: { callId: string; cseq: number; branch: string; fromTag: string; to?: string; extra?: string[] }): string {
  return [
    `${method} sip:${o.to ?? 'rita'}@ward.test SIP/2.0`,
    `Via: SIP/2.0/WS raw.invalid;branch=z9hG4bK${o.branch}`,
    'Max-Forwards: 70',
    `From: <sip:raw@ward.test>;tag=${o.fromTag}`,
    `To: <sip:${o.to ?? 'rita'}@ward.test>`,
    `Call-ID: ${o.callId}`,
    `CSeq: ${o.cseq} ${method}`,
    'Contact: <sip:raw@raw.invalid;transport=ws>',
    ...(o.extra ?? []),
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

/** Resolves with the next SIP message whose text matches `re`. */
function next(ws: WebSocket, re: RegExp): Promise<string> {
  return new Promise((resolve) => {
    const on = (d: Buffer) => {
      const s = d.toString();
      if (!re.test(s)) return;
      ws.off('message', on);
      resolve(s);
    };
    ws.on('message', on);
  });
}

const rawSession = async () => (await connect(ward.url('/sip'), ['sip'], { headers: { authorization: `Bearer ${ward.token('rawco')}` } })).ws;

test('a malformed client message is dropped and counted; the session goes on', T, async () => {
  const ws = await rawSession();
  const twoIds = id();
  ws.send('this is not SIP');
  // An INVITE with two Call-IDs could be read differently by another parser: never forwarded.
  ws.send(request('INVITE', { callId: twoIds, cseq: 1, branch: id(), fromTag: id(), extra: [`Call-ID: ${id()}`] }));
  ws.send('\r\n\r\n'); // a keep-alive is fine
  const callId = id();
  const answer = next(ws, new RegExp(`Call-ID: ${callId}`));
  ws.send(request('OPTIONS', { callId, cseq: 1, branch: id(), fromTag: id(), to: 'nobody' }));
  assert.match(await answer, /^SIP\/2\.0 404 /);
  assert.equal(await ward.metric('ward_sip_malformed_total', { tenant: 'rawco' }), 2);
  assert.equal(kam.saw('INVITE', twoIds), 0);
  assert.equal(await ward.metric('ward_concurrency_in_use', { tenant: 'rawco', pool: 'calls' }), 0);
  ws.close();
});

test('a retransmitted INVITE takes no second lease; its CANCEL frees the one it took', T, async () => {
  const ws = await rawSession();
  const o = { callId: id(), cseq: 1, branch: id(), fromTag: id() };
  const ringing = next(ws, /^SIP\/2\.0 180 /);
  ws.send(request('INVITE', o));
  ws.send(request('INVITE', o));
  await ringing;
  await eventually(() => kam.saw('INVITE', o.callId), (n) => n === 2); // both reached Kamailio...
  assert.equal(await ward.metric('ward_concurrency_in_use', { tenant: 'rawco', pool: 'calls' }), 1); // ...one lease
  const terminated = next(ws, /^SIP\/2\.0 487 /);
  ws.send(request('CANCEL', o));
  await terminated;
  await eventually(() => ward.metric('ward_concurrency_in_use', { tenant: 'rawco', pool: 'calls' }), (n) => n === 0);
  ws.send(request('ACK', o));
  ws.close();
});
