// Reading a running ward from the outside: /metrics samples, and waiting for a condition.

import { setTimeout as sleep } from 'node:timers/promises';
import { request } from './http.js';

/** Sum of the samples of `name` whose labels include `labels`, in Prometheus text. */
export function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** The admin port's /metrics text. */
export async function scrape(ward: { admin: string }): Promise<string> {
  return (await request(ward.admin + '/metrics')).body;
}

/** Polls `cond` until it holds; throws naming `what` after `ms`. */
export async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}
