// A small declarative schema and the walker that checks a YAML node tree against it.
// Unknown keys, wrong types, ranges and defaults are handled here once, generically, so
// schema.ts only has to say what each key is. The walker keeps going after a problem
// (every problem is reported, not just the first) and returns a best-effort value.

import { isMap, isScalar, isSeq, type Node } from 'yaml';
import type { Loc, Problems, SourceFile } from './yaml-source.js';

export type Path = readonly (string | number)[];

/** What a refine step answers: the (possibly normalised) value, or why it is wrong. */
export type Refined = { readonly value: unknown } | { readonly error: string };

export interface Field {
  readonly schema: Schema;
  readonly required?: boolean;
  /** Used when the key is absent; a function sees the object's other (present) keys. */
  readonly default?: unknown;
  /** When absent, the value an empty map / list / section gives (its own defaults applied). */
  readonly fill?: boolean;
}

/** Reports a problem at the value of `key` in the object being finished (or at the object). */
export type Issue = (key: string | undefined, message: string) => void;

export type Schema =
  | { readonly kind: 'string'; readonly enum?: readonly string[]; readonly refine?: (v: string) => Refined }
  | {
      readonly kind: 'number';
      readonly int?: boolean;
      readonly min?: number;
      /** Strictly greater than. */
      readonly above?: number;
      readonly max?: number;
    }
  | { readonly kind: 'boolean' }
  | { readonly kind: 'list'; readonly of: Schema; readonly min?: number; readonly unique?: boolean }
  | { readonly kind: 'map'; readonly of: Schema }
  | {
      readonly kind: 'object';
      readonly fields: Readonly<Record<string, Field>>;
      /** Cross-field checks; runs only when every field of the object was valid. */
      readonly finish?: (obj: Record<string, unknown>, issue: Issue, path: Path, written: ReadonlySet<string>) => void;
    }
  /** `false` turns the section off (undefined); anything else is checked against `of`. */
  | { readonly kind: 'off'; readonly of: Schema };

/** Where each key and value was written, for the checks that run after the walk. */
export class Locations {
  private readonly values = new Map<string, Loc>();
  private readonly keys = new Map<string, Loc>();

  // First write wins: a tenant defined twice keeps its first definition's positions.
  setValue(path: Path, loc: Loc): void {
    const k = JSON.stringify(path);
    if (!this.values.has(k)) this.values.set(k, loc);
  }
  setKey(path: Path, loc: Loc): void {
    const k = JSON.stringify(path);
    if (!this.keys.has(k)) this.keys.set(k, loc);
  }
  value(path: Path): Loc | undefined {
    return this.values.get(JSON.stringify(path));
  }
  key(path: Path): Loc | undefined {
    return this.keys.get(JSON.stringify(path));
  }
}

export interface WalkCtx {
  readonly src: SourceFile;
  readonly problems: Problems;
  readonly locs: Locations;
}

/** `routes[2].upstream`, `tenants."*".buckets.api`. */
export function showPath(path: Path): string {
  let s = '';
  for (const p of path) {
    if (typeof p === 'number') s += `[${p}]`;
    else s += (s ? '.' : '') + (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(p) ? p : JSON.stringify(p));
  }
  return s;
}

function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** The candidate an operator most likely meant, if one is close enough. */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  const w = word.toLowerCase();
  let best: string | undefined;
  let bestScore = Infinity;
  for (const c of candidates) {
    const cl = c.toLowerCase();
    let score = levenshtein(w, cl);
    // `timeout` for `timeout_ms`: a prefix is as good as a one-letter typo.
    if (w.length >= 3 && (cl.startsWith(w) || w.startsWith(cl))) score = Math.min(score, 1);
    if (score < bestScore) [best, bestScore] = [c, score];
  }
  return bestScore <= (w.length >= 5 ? 2 : 1) ? best : undefined;
}

/** ` (did you mean "x"?)` or a list of what would have been accepted. */
export function hint(word: string, candidates: readonly string[], label = 'expected one of'): string {
  const near = closest(word, candidates);
  if (near !== undefined) return ` (did you mean ${JSON.stringify(near)}?)`;
  return candidates.length ? ` (${label}: ${candidates.join(', ')})` : '';
}

function describe(node: Node | null | undefined): string {
  if (node == null) return 'empty';
  if (isMap(node)) return 'a map';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) {
    const v = node.value;
    if (v === null || v === undefined) return 'empty';
    if (typeof v === 'string') return `a string (${JSON.stringify(v)})`;
    if (typeof v === 'number') return Number.isFinite(v) ? `a number (${v})` : String(v);
    if (typeof v === 'boolean') return String(v);
  }
  return 'something else';
}

function isEmpty(node: Node | null | undefined): boolean {
  return node == null || (isScalar(node) && node.value == null);
}

/** The value an absent section takes: its defaults, or an empty map / list. */
export function emptyValue(schema: Schema): unknown {
  if (schema.kind === 'off') return emptyValue(schema.of);
  if (schema.kind === 'list') return [];
  if (schema.kind === 'map') return Object.create(null);
  if (schema.kind === 'object') {
    const out: Record<string, unknown> = {};
    applyDefaults(schema.fields, out, new Set());
    return out;
  }
  return undefined;
}

function applyDefaults(fields: Readonly<Record<string, Field>>, out: Record<string, unknown>, seen: Set<string>): void {
  for (const [key, f] of Object.entries(fields)) {
    if (seen.has(key) || f.required) continue;
    if (f.fill) out[key] = emptyValue(f.schema);
    else if (typeof f.default === 'function') out[key] = (f.default as (o: Record<string, unknown>) => unknown)(out);
    else if (f.default !== undefined) out[key] = structuredClone(f.default);
  }
}

function rangeText(s: { int?: boolean; min?: number; above?: number; max?: number }): string {
  if (s.above !== undefined && s.max !== undefined) return `greater than ${s.above} and at most ${s.max}`;
  if (s.min !== undefined && s.max !== undefined) return `between ${s.min} and ${s.max}`;
  if (s.above !== undefined) return `greater than ${s.above}`;
  if (s.min !== undefined) return `at least ${s.min}`;
  return `at most ${s.max}`;
}

/**
 * Checks `raw` against `schema`, reporting every problem. `keyLoc` (where the key was
 * written) is used for values left empty, which YAML places at the end of the line.
 */
export function walk(raw: unknown, schema: Schema, path: Path, ctx: WalkCtx, keyLoc?: Loc): unknown {
  const { src, problems } = ctx;
  const node = src.resolve(raw);
  const here = isEmpty(raw as Node | null) && keyLoc ? keyLoc : src.loc(raw as Node | null);
  ctx.locs.setValue(path, here);
  const name = path.length ? showPath(path) : 'the file';
  const fail = (want: string): undefined => {
    problems.add(here, `${name} must be ${want}, not ${describe(node)}`);
    return undefined;
  };
  if (node === undefined && raw !== undefined) {
    problems.add(here, `${name} refers to an alias that is not defined`);
    return undefined;
  }

  switch (schema.kind) {
    case 'off':
      if (isScalar(node) && node.value === false) return undefined;
      return walk(raw, schema.of, path, ctx, keyLoc);

    case 'string': {
      if (!isScalar(node) || typeof node.value !== 'string') return fail('a string');
      const v = node.value;
      if (v === '') return fail('a non-empty string');
      if (schema.enum && !schema.enum.includes(v)) {
        const near = closest(v, schema.enum);
        const tail = near !== undefined ? `; did you mean ${JSON.stringify(near)}?` : '';
        problems.add(here, `${name} must be one of ${schema.enum.join(', ')} (got ${JSON.stringify(v)}${tail})`);
        return undefined;
      }
      if (!schema.refine) return v;
      const r = schema.refine(v);
      if ('error' in r) {
        problems.add(here, `${name}: ${r.error}`);
        return undefined;
      }
      return r.value;
    }

    case 'number': {
      const v = isScalar(node) ? node.value : undefined;
      const want = schema.int ? 'an integer' : typeof v === 'number' && !Number.isFinite(v) ? 'a finite number' : 'a number';
      if (typeof v !== 'number' || !Number.isFinite(v)) return fail(want);
      if (schema.int && !Number.isInteger(v)) return fail(want);
      const low = (schema.min !== undefined && v < schema.min) || (schema.above !== undefined && v <= schema.above);
      if (low || (schema.max !== undefined && v > schema.max)) {
        problems.add(here, `${name} must be ${rangeText(schema)} (got ${v})`);
        return undefined;
      }
      return v;
    }

    case 'boolean':
      if (!isScalar(node) || typeof node.value !== 'boolean') return fail('true or false');
      return node.value;

    case 'list': {
      if (isEmpty(node)) return [];
      if (!isSeq(node)) return fail('a list');
      const out: unknown[] = [];
      const firstAt = new Map<string, number>();
      node.items.forEach((item, i) => {
        const v = walk(item, schema.of, [...path, i], ctx);
        out.push(v);
        if (!schema.unique || v === undefined) return;
        const k = JSON.stringify(v);
        const first = firstAt.get(k);
        if (first === undefined) firstAt.set(k, i);
        else problems.add(src.loc(item as Node), `${name}[${i}] repeats ${name}[${first}] (${JSON.stringify(v)})`);
      });
      if (schema.min !== undefined && out.length < schema.min) {
        problems.add(here, `${name} must list at least ${schema.min} ${schema.min === 1 ? 'entry' : 'entries'}`);
      }
      return out;
    }

    case 'map': {
      if (isEmpty(node)) return Object.create(null);
      if (!isMap(node)) return fail('a map');
      // Keys here are names the operator chose (tenants, buckets, ...): a null prototype makes
      // `tenants[claim]` safe for any claim, "constructor" and "toString" included.
      const out: Record<string, unknown> = Object.create(null);
      for (const pair of node.items) {
        const k = src.resolve(pair.key);
        if (!isScalar(k) || k.value == null || typeof k.value === 'object') {
          problems.add(src.loc(pair.key as Node), `${name} has a key that is not a name`);
          continue;
        }
        const key = String(k.value);
        const kl = src.loc(pair.key as Node);
        if (key === '__proto__') {
          problems.add(kl, `${name} cannot use "__proto__" as a name`);
          continue;
        }
        ctx.locs.setKey([...path, key], kl);
        out[key] = walk(pair.value, schema.of, [...path, key], ctx, kl);
      }
      return out;
    }

    case 'object': {
      // An empty section (`health:`) is an empty map: every default applies.
      if (!isEmpty(node) && !isMap(node)) return fail('a map');
      const before = problems.count;
      const out: Record<string, unknown> = {};
      const seen = new Set<string>();
      const known = Object.keys(schema.fields);
      for (const pair of isMap(node) ? node.items : []) {
        const k = src.resolve(pair.key);
        const kl = src.loc(pair.key as Node);
        const key = isScalar(k) && k.value != null ? String(k.value) : undefined;
        const field = key === undefined ? undefined : schema.fields[key];
        if (key === undefined || !field || !Object.hasOwn(schema.fields, key)) {
          const shown = key === undefined ? 'that is not a name' : JSON.stringify(key);
          const where = path.length ? ` in ${name}` : '';
          problems.add(kl, `unknown key ${shown}${where}${key === undefined ? '' : hint(key, known)}`);
          continue;
        }
        seen.add(key);
        ctx.locs.setKey([...path, key], kl);
        out[key] = walk(pair.value, field.schema, [...path, key], ctx, kl);
      }
      for (const [key, f] of Object.entries(schema.fields)) {
        // Point at the section's own key (`auth:`) when it has one, else at the map itself.
        if (f.required && !seen.has(key)) problems.add(keyLoc ?? here, `${name} is missing the required key "${key}"`);
      }
      applyDefaults(schema.fields, out, seen);
      if (schema.finish && problems.count === before) {
        const issue: Issue = (key, message) => {
          const at = key === undefined ? here : ctx.locs.value([...path, key]) ?? here;
          problems.add(at, message);
        };
        schema.finish(out, issue, path, seen);
      }
      return out;
    }
  }
}
