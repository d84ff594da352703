// Entry of a listener worker thread: runs an EdgeThread and answers the supervisor's messages.

import { parentPort, workerData } from 'node:worker_threads';
import { EdgeThread, type EdgeThreadInit } from './edge-thread.js';
import { createLogger } from '../log.js';
import type { ToWorker, FromWorker } from './messages.js';

const port = parentPort!;
const log = createLogger();
const init = workerData as EdgeThreadInit;

const post = (m: FromWorker) => port.postMessage(m);

EdgeThread.start(init, log, undefined, { onReleaseCounts: (counts) => post({ type: 'release-counts', counts }) }).then(
  (thread) => {
    post({ type: 'ready', port: thread.port });
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
          // Closing the listen socket lets the thread end by itself; terminate() on a thread
          // holding uWS sockets would abort the whole process.
          void thread.drain(m.timeoutMs).then(() => {
            post({ type: 'drained' });
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
