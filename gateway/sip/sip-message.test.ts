import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSip, tagOf, type SipRequest } from './sip-message.js';
import { refusalResponse } from './sip-reply.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const INVITE = [
  'INVITE sip:bob@example.com SIP/2.0',
  'Via: SIP/2.0/WS abc.invalid;branch=z9hG4bK776asdhds',
  'Via: SIP/2.0/WS proxy.example;branch=z9hG4bK1',
  'Max-Forwards: 70',
  'To: Bob <sip:bob@example.com>',
  'From: "Alice; the <first>" <sip:alice@example.com;transport=ws>;tag=1928301774',
  'Call-ID: a84b4c76e66710@pc33',
  'CSeq: 314159 INVITE',
  'Content-Type: application/sdp',
  'Content-Length: 4',
  '',
  'v=0\r\n',
].join('\r\n');

test('reads the start line, Call-ID, CSeq and tags of an INVITE', () => {
  const p = parseSip(enc(INVITE));
  assert.ok(p.ok);
  const m = p.msg as SipRequest;
  assert.equal(m.kind, 'request');
  assert.equal(m.method, 'INVITE');
  assert.equal(m.callId, 'a84b4c76e66710@pc33');
  assert.equal(m.cseq, 314159);
  assert.equal(m.cseqMethod, 'INVITE');
  assert.equal(m.toTag, undefined);
  assert.equal(m.fromTag, '1928301774');
  assert.deepEqual(m.via, ['SIP/2.0/WS abc.invalid;branch=z9hG4bK776asdhds', 'SIP/2.0/WS proxy.example;branch=z9hG4bK1']);
});

test('reads compact header names, folded lines and space before the colon', () => {
  const msg = 'BYE sip:a@b SIP/2.0\r\nv: SIP/2.0/WS x;branch=z9hG4bKa\r\nt: <sip:a@b>\r\n ;tag=xyz\r\nf: <sip:c@d>;tag=q\r\ni : call-1\r\nCSeq:2 BYE\r\n\r\n';
  const p = parseSip(enc(msg));
  assert.ok(p.ok);
  const m = p.msg as SipRequest;
  assert.equal(m.callId, 'call-1');
  assert.equal(m.toTag, 'xyz');
  assert.equal(m.cseq, 2);
});

test('reads a response status and the To tag', () => {
  const p = parseSip(enc('SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/WS x\r\nTo: <sip:b@x>;tag=9\r\nFrom: <sip:a@x>;tag=1\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n'));
  assert.ok(p.ok);
  assert.deepEqual(p.msg, { kind: 'response', status: 486, callId: 'c', cseq: 1, cseqMethod: 'INVITE', toTag: '9' });
});

test('CRLF-only frames are keep-alives', () => {
  const p = parseSip(enc('\r\n\r\n'));
  assert.ok(p.ok);
  assert.equal(p.msg.kind, 'keepalive');
});

test('malformed messages are reported, never thrown', () => {
  const cases: Array<[string, string]> = [
    ['hello', 'no_header_end'],
    ['GARBAGE\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nTo: <sip:a@b>\r\n\r\n', 'bad_start_line'],
    ['INVITE sip:a@b SIP/2.0\r\nVia: x\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCSeq: 1 INVITE\r\n\r\n', 'missing_call_id'],
    ['INVITE sip:a@b SIP/2.0\r\nVia: x\r\nFrom: a;tag=1\r\nTo: b\r\nCall-ID: x\r\nCall-ID: y\r\nCSeq: 1 INVITE\r\n\r\n', 'duplicate_call_id'],
    ['INVITE sip:a@b SIP/2.0\r\nVia: x\r\nFrom: a;tag=1\r\nTo: b\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n', 'cseq_method_mismatch'],
    ['INVITE sip:a@b SIP/2.0\r\nVia: x\r\nFrom: a;tag=1\r\nTo: b\r\nCall-ID: x\r\nCSeq: one INVITE\r\n\r\n', 'bad_cseq'],
    ['INVITE sip:a@b SIP/2.0\r\nVia: x\r\nFrom: a;tag=1\r\nTo: b\r\nCall-ID: x\r\nCSeq: 4294967296 INVITE\r\n\r\n', 'bad_cseq'],
    ['INVITE sip:a@b SIP/2.0\r\nFrom: a;tag=1\r\nTo: b\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n', 'missing_via'],
    ['INVITE sip:a@b SIP/2.0\r\nVia: x\r\nno colon here\r\n\r\n', 'bad_header'],
  ];
  for (const [text, error] of cases) assert.deepEqual(parseSip(enc(text)), { ok: false, error }, text);
  // Random bytes never throw.
  for (let i = 0; i < 200; i++) parseSip(Uint8Array.from({ length: 64 }, () => Math.floor(Math.random() * 256)));
});

test('tagOf ignores URI parameters and quoted display names', () => {
  assert.equal(tagOf('<sip:a@b;tag=uri>'), undefined);
  assert.equal(tagOf('"x;tag=no" <sip:a@b>;tag=yes'), 'yes');
  assert.equal(tagOf('sip:a@b;TAG=bare'), 'bare');
  assert.equal(tagOf('"a\\"b" <sip:a@b>;foo=1;tag=t2'), 't2');
});

test('the 503 answer copies Via, From, To, Call-ID and CSeq, and adds a To tag and Retry-After', () => {
  const p = parseSip(enc(INVITE));
  assert.ok(p.ok);
  const text = refusalResponse(p.msg as SipRequest, { status: 503, reason: 'Call Limit Reached', retryAfterS: 5, warning: 'call pool calls full' });
  const lines = text.split('\r\n');
  assert.equal(lines[0], 'SIP/2.0 503 Call Limit Reached');
  assert.equal(lines[1], 'Via: SIP/2.0/WS abc.invalid;branch=z9hG4bK776asdhds');
  assert.equal(lines[2], 'Via: SIP/2.0/WS proxy.example;branch=z9hG4bK1');
  assert.match(text, /\r\nTo: Bob <sip:bob@example.com>;tag=[0-9a-f]{16}\r\n/);
  assert.match(text, /\r\nCall-ID: a84b4c76e66710@pc33\r\n/);
  assert.match(text, /\r\nCSeq: 314159 INVITE\r\n/);
  assert.match(text, /\r\nRetry-After: 5\r\n/);
  assert.ok(text.endsWith('Content-Length: 0\r\n\r\n'));
  const back = parseSip(enc(text));
  assert.ok(back.ok && back.msg.kind === 'response' && back.msg.status === 503);
});
