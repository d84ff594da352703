// Route matching, compiled once per policy version. Routes are tried in file order (first match
// wins). A prefix matches on path-segment boundaries: `/v1/calls` matches `/v1/calls` and
// `/v1/calls/7`, not `/v1/callsign`; a prefix ending in `/` matches everything below it.

import type { RouteSpec } from '../../policy/types.js';

interface CompiledRoute {
  readonly spec: RouteSpec;
  readonly prefix: string;
  readonly boundary: boolean;
  readonly methods: ReadonlySet<string> | null;
}

export class RouteTable {
  private readonly routes: readonly CompiledRoute[];

  constructor(routes: readonly RouteSpec[]) {
    this.routes = routes.map((spec) => ({
      spec,
      prefix: spec.prefix,
      boundary: !spec.prefix.endsWith('/'),
      methods: spec.methods ? new Set(spec.methods) : null,
    }));
  }

  /** The first matching route, or undefined. The caller checks websocket against the upgrade. */
  match(method: string, path: string): RouteSpec | undefined {
    const routes = this.routes;
    for (let i = 0; i < routes.length; i++) {
      const r = routes[i]!;
      if (!path.startsWith(r.prefix)) continue;
      if (r.boundary && path.length > r.prefix.length && path.charCodeAt(r.prefix.length) !== 47 /* / */) continue;
      if (r.methods !== null && !r.methods.has(method)) continue;
      return r.spec;
    }
    return undefined;
  }

  get size(): number {
    return this.routes.length;
  }
}

/** Whether a request path holds a dot segment (`.` or `..`), also spelled with percent-escapes
 * (`%2e`), behind an escaped or backslash separator (`..%2f`, `..\`) or before path parameters (`..;`). Routes match the raw path,
 * but many upstreams resolve such segments, so `/v1/status/../calls` would reach `/v1/calls`
 * through a public `/v1/status` route: such paths are refused instead (no legitimate client needs
 * them). Paths without `.`, `%` or `\` (nearly all) cost one scan. */
export function hasDotSegment(path: string): boolean {
  if (!UNUSUAL_PATH_CHAR.test(path)) return false;
  const plain = path.replace(ESCAPED_DOT_OR_SEPARATOR, (e) => (e[2] === 'e' || e[2] === 'E' ? '.' : '/'));
  return DOT_SEGMENT.test(plain);
}
const UNUSUAL_PATH_CHAR = /[.%\\]/;
const ESCAPED_DOT_OR_SEPARATOR = /%(?:2[eEfF]|5[cC])/g;
// `;` ends a segment too: servlet containers read `..;x` as `..` once they strip path parameters.
const DOT_SEGMENT = /(?:^|[/\\])\.{1,2}(?:[/\\;]|$)/;
