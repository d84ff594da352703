// wrk (C, cheap per request) drives the throughput and bench runs. A generated Lua script sets the
// Authorization header (one repeated token, or a rotation over a token file) and prints wrk's own
// summary and latency percentiles as one JSON line, so nothing is scraped from its text output.
// wrk is closed-loop: its latency is measured per connection and hides queueing (coordinated omission);
// fixed-rate latency comes from load-gen.ts instead.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runToEnd, tempDir } from './processes.js';

export interface WrkOptions {
  readonly url: string;
  readonly connections: number;
  readonly durationS: number;
  readonly threads?: number;
  /** One bearer token sent on every request. */
  readonly token?: string;
  /** Bearer tokens sent in rotation (one per request). */
  readonly tokens?: readonly string[];
  /** Where in `tokens` the rotation starts (so successive runs can cover a long list once). */
  readonly tokenOffset?: number;
  readonly headers?: Readonly<Record<string, string>>;
  /** taskset CPU list for wrk itself. */
  readonly cpus?: string;
  readonly timeoutS?: number;
}

export interface WrkResult {
  readonly requests: number;
  readonly durationS: number;
  readonly rps: number;
  /** Responses that were not 2xx or 3xx. */
  readonly non2xx: number;
  readonly errors: { readonly connect: number; readonly read: number; readonly write: number; readonly timeout: number };
  readonly latency: { readonly mean_us: number; readonly p50_us: number; readonly p90_us: number; readonly p99_us: number; readonly p999_us: number; readonly max_us: number };
}

const DONE_MARK = 'WRK_JSON ';

function luaString(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

/** The Lua script for these options (exported for the smoke test). */
export function wrkScript(o: WrkOptions, tokenFile?: string): string {
  const lines: string[] = [];
  for (const [k, v] of Object.entries(o.headers ?? {})) lines.push(`wrk.headers[${luaString(k)}] = ${luaString(v)}`);
  if (o.token) lines.push(`wrk.headers["Authorization"] = ${luaString(`Bearer ${o.token}`)}`);
  if (tokenFile) {
    // Each thread starts at a different place in the rotation, so threads do not march in step.
    lines.push(
      'local tokens, i = {}, 0',
      'local counter = 0',
      'setup = function(thread) thread:set("offset", counter * 7919); counter = counter + 1 end',
      `init = function(args) for line in io.lines(${luaString(tokenFile)}) do tokens[#tokens + 1] = "Bearer " .. line end; i = ((offset or 0) + ${Math.floor(o.tokenOffset ?? 0)}) % #tokens end`,
      'request = function() i = i % #tokens + 1; wrk.headers["Authorization"] = tokens[i]; return wrk.format() end',
    );
  }
  lines.push(
    'done = function(summary, latency, requests)',
    '  local e = summary.errors',
    `  io.write(string.format('${DONE_MARK}{"requests":%d,"duration_us":%d,"non2xx":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,` +
      `"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}\\n',`,
    '    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,',
    '    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max))',
    'end',
  );
  return lines.join('\n') + '\n';
}

/** Reads the JSON line the script's done() prints. */
export function parseWrkOutput(stdout: string): WrkResult {
  const line = stdout.split('\n').find((l) => l.startsWith(DONE_MARK));
  if (!line) throw new Error(`wrk printed no summary:\n${stdout.slice(-500)}`);
  const j = JSON.parse(line.slice(DONE_MARK.length)) as Record<string, number>;
  const durationS = j.duration_us / 1e6;
  return {
    requests: j.requests,
    durationS,
    rps: durationS > 0 ? j.requests / durationS : 0,
    non2xx: j.non2xx,
    errors: { connect: j.connect, read: j.read, write: j.write, timeout: j.timeout },
    latency: { mean_us: Math.round(j.mean), p50_us: j.p50, p90_us: j.p90, p99_us: j.p99, p999_us: j.p999, max_us: j.max },
  };
}

export async function runWrk(o: WrkOptions): Promise<WrkResult> {
  const dir = tempDir('ward-wrk-');
  let tokenFile: string | undefined;
  if (o.tokens?.length) {
    tokenFile = join(dir, 'tokens.txt');
    writeFileSync(tokenFile, o.tokens.join('\n') + '\n');
  }
  const script = join(dir, 'script.lua');
  writeFileSync(script, wrkScript(o, tokenFile));
  const args = [
    `-t${o.threads ?? 1}`,
    `-c${o.connections}`,
    `-d${o.durationS}s`,
    `--timeout`,
    `${o.timeoutS ?? 5}s`,
    '-s',
    script,
    o.url,
  ];
  return parseWrkOutput(await runToEnd('wrk', args, o.cpus));
}
