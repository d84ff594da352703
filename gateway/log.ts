// pino JSON logs. Secrets never reach a log line: bearer tokens, access_token query parameters,
// cookies and keys are redacted by path, and request logs carry the path without its query.

import { pino, type Logger } from 'pino';

export const REDACT_PATHS = [
  'authorization',
  'token',
  'access_token',
  'cookie',
  '*.authorization',
  '*.token',
  '*.access_token',
  '*.cookie',
  '*.headers.authorization',
  '*.headers.cookie',
  '*.private_key',
  'headers.authorization',
  'headers.cookie',
];

export function createLogger(opts: { level?: string; name?: string } = {}): Logger {
  return pino({
    name: opts.name ?? 'ward',
    level: opts.level ?? process.env.WARD_LOG_LEVEL ?? 'info',
    base: { pid: process.pid },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  });
}

export type { Logger };
