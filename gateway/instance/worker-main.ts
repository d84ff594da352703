// Entry of a listener worker thread: runs an EdgeThread and answers the supervisor's messages.

import { parentPort, threadId, workerData } from 'node:worker_threads';
import { EdgeThread, type EdgeThreadInit } from './edge-thread.js';
import { createLogger } from '../log.js';
import type { ToWorker, FromWorker } from './messages.js';

const port = parentPort!;
const log = createLogger();
const init = workerData as EdgeThreadInit;

const post = (m: FromWorker) => port.postMessage(m);

const onBan = init.kernelBans ? (addr: Uint8Array, forMs: number) => post({ type: 'ban', addr: addr.slice(), forMs }) : undefined;

EdgeThread.start(init, log, undefined, { onReleaseCounts: (counts) => post({ type: 'release-counts', counts }), ...(onBan ? { onBan } : {}) }).then(
  (thread) => {
    // An uncaught error leaves this thread's state in doubt: close its sockets (Node aborts the
    // whole process when it stops a thread that still holds uWS sockets), tell the supervisor,
    // and end. The supervisor then drains the other threads and exits non-zero.
    process.on('uncaughtException', (err) => {
      log.fatal({ err }, 'uncaught error in a listener thread');
      post({ type: 'died', message: err.message });
      void thread
        .drain(0)
        .then(() => thread.close())
        .finally(() => port.close());
    });
    post({ type: 'ready', port: thread.port });
    // Fault injection for tests and game days: WARD_FAULT_CRASH_THREAD=N makes listener thread N
    // throw an uncaught error shortly after it started (what any bug in it would do), 300 ms after
    // or WARD_FAULT_CRASH_AFTER_MS (0: while the rest of ward is still starting).
    if (process.env.WARD_FAULT_CRASH_THREAD === String(threadId)) {
      setTimeout(() => {
        throw new Error('injected fault (WARD_FAULT_CRASH_THREAD)');
      }, Number(process.env.WARD_FAULT_CRASH_AFTER_MS ?? 300));
    }
    port.on('message', (m: ToWorker) => {
      switch (m.type) {
        case 'policy':
          thread.apply(m.policy, m.upstreamBuffers);
          break;
        case 'release-states':
          thread.setReleaseStates(m.states);
          break;
        case 'snapshot':
          post({ type: 'snapshot', id: m.id, snapshot: thread.snapshot() });
          break;
        case 'drain':
          void thread.drain(m.timeoutMs).then(() => post({ type: 'drained' }));
          break;
        case 'close':
          // With no socket left, the thread ends by itself; terminate() on a thread holding uWS
          // sockets would abort the whole process.
          void thread.close().finally(() => {
            post({ type: 'closed' });
            port.close();
          });
          break;
      }
    });
  },
  (err: Error) => {
    post({ type: 'failed', message: err.message });
  },
);
