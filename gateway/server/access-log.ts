// Access logs without a log line per request on the fast path: upstream failures are always worth
// a line (up to a cap per second, so a dead upstream cannot flood the log), everything else is
// sampled. Paths are logged without their query (it may carry access_token), never headers.

import type { Logger } from '../log.js';
import type { Outcome } from '../metrics/edge-metrics.js';
import type { Grant, RequestHead } from '../pipeline/types.js';

const FAILURES = new Set<Outcome>(['upstream_unavailable', 'upstream_timeout', 'error']);

export class AccessLog {
  private seen = 0;
  private second = 0;
  private failuresThisSecond = 0;
  private suppressed = 0;

  constructor(
    private readonly log: Logger,
    /** One request in this many is logged (0: none). */
    private readonly sampleEvery = Number(process.env.WARD_ACCESS_LOG_SAMPLE ?? 1000),
    private readonly failuresPerSecond = 20,
  ) {}

  record(head: RequestHead, grant: Grant | undefined, outcome: Outcome, startedAt: number): void {
    if (FAILURES.has(outcome)) {
      const now = Math.floor(Date.now() / 1000);
      if (now !== this.second) {
        if (this.suppressed > 0) this.log.warn({ suppressed: this.suppressed }, 'upstream failures not logged (over the per-second cap)');
        this.second = now;
        this.failuresThisSecond = 0;
        this.suppressed = 0;
      }
      if (++this.failuresThisSecond > this.failuresPerSecond) {
        this.suppressed++;
        return;
      }
      this.log.warn(this.fields(head, grant, outcome, startedAt), 'upstream failure');
      return;
    }
    if (this.sampleEvery > 0 && ++this.seen >= this.sampleEvery) {
      this.seen = 0;
      this.log.info({ ...this.fields(head, grant, outcome, startedAt), sample_every: this.sampleEvery }, 'request');
    }
  }

  private fields(head: RequestHead, grant: Grant | undefined, outcome: Outcome, startedAt: number) {
    return {
      request_id: head.requestId,
      method: head.method,
      path: head.url,
      remote: head.remoteText,
      tenant: grant?.tenant || undefined,
      route: grant?.route.name,
      upstream: grant?.upstream,
      outcome,
      ms: startedAt > 0 ? Date.now() - startedAt : undefined,
    };
  }
}
