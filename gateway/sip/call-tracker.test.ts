import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CallTracker, TIMER_B_MS, type CallEnd } from './call-tracker.js';
import type { SipRequest, SipResponse } from './sip-message.js';

function req(method: string, callId: string, cseq: number, toTag?: string, fromTag = 'ft'): SipRequest {
  return { kind: 'request', method, callId, cseq, cseqMethod: method, toTag, fromTag, via: ['v'], from: 'f', to: 't', cseqRaw: `${cseq} ${method}` };
}
function res(status: number, callId: string, cseq: number, method = 'INVITE', toTag?: string): SipResponse {
  return { kind: 'response', status, callId, cseq, cseqMethod: method, toTag };
}
function tracker(): { t: CallTracker; ended: Array<[string, CallEnd]> } {
  const ended: Array<[string, CallEnd]> = [];
  const t = new CallTracker((call, why) => ended.push([call.callId, why]));
  return { t, ended };
}
const lease = { poolKey: 'p', id: '1' };

test('an initial INVITE is charged once; its retransmission and re-INVITEs are not', () => {
  const { t } = tracker();
  const inv = req('INVITE', 'c1', 1);
  assert.equal(t.fromClient(inv, 0), 'charge');
  t.started(inv, lease, 0);
  assert.equal(t.fromClient(inv, 1), 'forward');
  t.fromUpstream(res(200, 'c1', 1, 'INVITE', 'rt'), 2);
  assert.equal(t.fromClient(req('INVITE', 'c1', 2, 'rt'), 3), 'forward');
  assert.equal(t.size, 1);
});

test('a tagged INVITE for a dialog ward never saw is charged like a new call', () => {
  const { t } = tracker();
  assert.equal(t.fromClient(req('INVITE', 'x', 5, 'forged'), 0), 'charge');
  // ...but not one inside a call the upstream placed to this client.
  t.fromUpstream(req('INVITE', 'in1', 1), 0);
  assert.equal(t.fromClient(req('INVITE', 'in1', 1, 'mytag'), 1), 'forward');
});

test('BYE from the upstream ends the call', () => {
  const { t, ended } = tracker();
  t.started(req('INVITE', 'c', 1), lease, 0);
  t.fromUpstream(res(200, 'c', 1, 'INVITE', 'rt'), 0);
  t.fromUpstream(req('BYE', 'c', 7, 'ft'), 0);
  assert.deepEqual(ended, [['c', 'bye']]);
});

test('a client BYE ends the call only with the dialog tags, else on its 2xx', () => {
  const { t, ended } = tracker();
  t.started(req('INVITE', 'c', 1), lease, 0);
  t.fromUpstream(res(200, 'c', 1, 'INVITE', 'rt'), 0);
  t.fromClient(req('BYE', 'c', 2, 'wrong'), 0);
  assert.deepEqual(ended, []);
  t.fromUpstream(res(481, 'c', 2, 'BYE'), 0);
  assert.deepEqual(ended, []);
  t.fromClient(req('BYE', 'c', 3, 'rt'), 0);
  assert.deepEqual(ended, [['c', 'bye']]);

  const b = tracker();
  b.t.started(req('INVITE', 'd', 1), lease, 0);
  b.t.fromUpstream(res(200, 'd', 1, 'INVITE', 'rt'), 0);
  b.t.fromClient(req('BYE', 'd', 2, 'other-fork'), 0);
  b.t.fromUpstream(res(200, 'd', 2, 'BYE'), 0);
  assert.deepEqual(b.ended, [['d', 'bye']]);
});

test('a non-2xx final answer to the INVITE ends the call; provisional and re-INVITE answers do not', () => {
  const { t, ended } = tracker();
  t.started(req('INVITE', 'c', 1), lease, 0);
  t.fromUpstream(res(180, 'c', 1), 0);
  assert.deepEqual(ended, []);
  t.fromUpstream(res(486, 'c', 1), 0);
  assert.deepEqual(ended, [['c', 'rejected']]);

  const b = tracker();
  b.t.started(req('INVITE', 'e', 1), lease, 0);
  b.t.fromUpstream(res(200, 'e', 1, 'INVITE', 'rt'), 0);
  b.t.fromUpstream(res(488, 'e', 2), 0); // a refused re-INVITE: the call goes on
  b.t.fromUpstream(res(500, 'e', 1), 0); // a late error after the 2xx: still on
  assert.deepEqual(b.ended, []);
});

test('CANCEL frees the lease on the 487, or after Timer B; a 200 crossing it keeps the call', () => {
  const { t, ended } = tracker();
  t.started(req('INVITE', 'c', 1), lease, 0);
  t.fromClient(req('CANCEL', 'c', 1), 10);
  assert.deepEqual(ended, []);
  t.fromUpstream(res(487, 'c', 1), 20);
  assert.deepEqual(ended, [['c', 'cancel']]);

  const b = tracker();
  b.t.started(req('INVITE', 'd', 1), lease, 0);
  b.t.fromClient(req('CANCEL', 'd', 1), 10);
  b.t.sweep(10 + TIMER_B_MS - 1, 0);
  assert.deepEqual(b.ended, []);
  b.t.sweep(10 + TIMER_B_MS, 0);
  assert.deepEqual(b.ended, [['d', 'cancel']]);

  const c = tracker();
  c.t.started(req('INVITE', 'e', 1), lease, 0);
  c.t.fromClient(req('CANCEL', 'e', 1), 10);
  c.t.fromUpstream(res(200, 'e', 1, 'INVITE', 'rt'), 11);
  c.t.sweep(10 + TIMER_B_MS, 0);
  assert.deepEqual(c.ended, []);
});

test('max call duration and the session end free every lease', () => {
  const { t, ended } = tracker();
  t.started(req('INVITE', 'a', 1), lease, 0);
  t.started(req('INVITE', 'b', 1), lease, 500);
  t.sweep(999, 1000);
  assert.deepEqual(ended, []);
  t.sweep(1000, 1000);
  assert.deepEqual(ended, [['a', 'max_duration']]);
  t.endAll();
  assert.deepEqual(ended, [['a', 'max_duration'], ['b', 'session_end']]);
  t.endAll();
  assert.equal(ended.length, 2);
});

test('the ACK to ward\'s own 503 is absorbed once', () => {
  const { t } = tracker();
  const inv = req('INVITE', 'r', 4);
  t.refusedInvite(inv, 0);
  assert.equal(t.fromClient(req('ACK', 'r', 4), 1), 'absorb');
  assert.equal(t.fromClient(req('ACK', 'r', 4), 2), 'forward');
});
