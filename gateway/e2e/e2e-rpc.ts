// Listener worker threads forward /v1/e2e directory requests to the supervisor's directory over a
// MessagePort of their own (one key log per instance, whatever the number of threads).

import type { MessagePort } from 'node:worker_threads';
import type { E2EAnswer } from '../../crypto/directory/directory.js';
import type { E2EHandler } from './e2e-edge.js';

type Call = { id: number; args: Parameters<E2EHandler> };
type Reply = { id: number; answer: E2EAnswer };

export function serveE2E(port: MessagePort, handle: E2EHandler): void {
  port.on('message', (m: Call) => {
    handle(...m.args).then(
      (answer) => port.postMessage({ id: m.id, answer } satisfies Reply),
      () => port.postMessage({ id: m.id, answer: { status: 503, body: { error: 'e2e_unavailable' } } } satisfies Reply),
    );
  });
  port.unref();
}

export function e2eClient(port: MessagePort): E2EHandler {
  const waiting = new Map<number, (a: E2EAnswer) => void>();
  let next = 0;
  port.on('message', (m: Reply) => {
    waiting.get(m.id)?.(m.answer);
    waiting.delete(m.id);
  });
  port.unref();
  return (...args) =>
    new Promise((resolve) => {
      const id = ++next;
      waiting.set(id, resolve);
      port.postMessage({ id, args } satisfies Call);
    });
}
