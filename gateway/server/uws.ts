// Loads uWebSockets.js's native binary directly. The npm package we depend on silently falls back
// to a slow pure-JS server when its binary fails to load; ward refuses that instead: an edge
// gateway that quietly runs 10× slower is an outage waiting for a busy day.

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as UWS from 'uWebSockets.js';

export type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, WebSocketBehavior, us_listen_socket } from 'uWebSockets.js';

const require = createRequire(import.meta.url);

export class NativeUwsUnavailable extends Error {
  readonly code = 'ERR_UWS_NOT_NATIVE';
}

function loadNative(): typeof UWS {
  const pkgDir = dirname(require.resolve('uWebSockets.js/package.json'));
  const binary = join(pkgDir, 'binaries', `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`);
  let mod: typeof UWS & { getParts?: unknown };
  try {
    mod = require(binary);
  } catch (err) {
    throw new NativeUwsUnavailable(
      `uWebSockets.js native binary ${binary} does not load on this machine (${(err as Error).message}); ` +
        'ward refuses to run on the slow JS fallback. Use Node.js 20 on linux-x64/arm64 or darwin.',
    );
  }
  // The JS fallback exports App without the native helpers; the native module always has getParts.
  if (typeof mod.getParts !== 'function' || !String(mod.App).includes('[native code]')) {
    throw new NativeUwsUnavailable(`${binary} is not the native uWebSockets.js server`);
  }
  return mod;
}

export const uws = loadNative();

/** Proof for tests and /metrics that the native server is in use. */
export const uwsNative = { binary: true, app: String(uws.App).includes('[native code]') } as const;
