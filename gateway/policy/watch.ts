// Tells the caller when a policy file may have changed; the caller reloads and decides.
// Directories are watched, not files: editors save by writing a temporary file and renaming
// it over the old one, which would leave a watch on the old file's inode deaf.

import { existsSync, watch, readFileSync, type FSWatcher } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { parse } from 'yaml';

const DEBOUNCE_MS = 150;
/** How often a policy directory that vanished is looked for again. */
const ROOT_POLL_MS = 500;

/** The files gateway.yaml names, read without validation: only to know which directories matter. */
function namedFiles(dir: string): string[] {
  try {
    const doc = parse(readFileSync(join(dir, 'gateway.yaml'), 'utf8')) as {
      auth?: { jwks_file?: unknown; dev_signing_key?: unknown };
      admin?: { console?: { tokens_file?: unknown } };
    } | null;
    return [doc?.auth?.jwks_file, doc?.auth?.dev_signing_key, doc?.admin?.console?.tokens_file]
      .filter((p): p is string => typeof p === 'string')
      .map((p) => resolve(dir, p));
  } catch {
    return []; // unreadable or broken: the reload will say why; the directory itself is still watched
  }
}

export function watchPolicy(dir: string, onChange: () => void): { close(): void } {
  const root = resolve(dir);
  const tenants = join(root, 'tenants');
  const watchers = new Map<string, FSWatcher>();
  /** Per watched directory, the entry names whose change matters. */
  let wanted = new Map<string, Set<string>>();
  let timer: NodeJS.Timeout | undefined;
  let rootPoll: NodeJS.Timeout | undefined;
  let closed = false;

  const matters = (where: string, name: string | null): boolean => {
    if (name === null) return true; // the platform did not say which entry: assume it mattered
    if (where === tenants && /\.ya?ml$/.test(name)) return true;
    return wanted.get(where)?.has(name) ?? false;
  };

  const poke = (): void => {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      if (closed) return;
      arm(false); // gateway.yaml may now name other files, or tenants/ may have appeared
      onChange();
    }, DEBOUNCE_MS);
  };

  /** The policy directory itself was removed (or renamed away): the last good policy keeps
   * serving (the reload that follows fails and says so) and the directory is looked for until it
   * is back, quietly, rather than reloading a missing policy over and over. */
  const awaitRoot = (): void => {
    if (closed || rootPoll !== undefined) return;
    rootPoll = setInterval(() => {
      if (closed || !existsSync(root)) return;
      clearInterval(rootPoll);
      rootPoll = undefined;
      poke();
    }, ROOT_POLL_MS);
    rootPoll.unref();
  };

  function arm(first: boolean): void {
    const next = new Map<string, Set<string>>([
      [root, new Set(['gateway.yaml', 'tenants'])],
      [tenants, new Set()],
    ]);
    for (const file of namedFiles(root)) {
      const names = next.get(dirname(file)) ?? new Set<string>();
      names.add(basename(file));
      next.set(dirname(file), names);
    }
    wanted = next;
    // Start afresh each time: a watcher on a directory that was deleted and re-created hears nothing.
    for (const w of watchers.values()) w.close();
    watchers.clear();
    for (const where of next.keys()) {
      try {
        const w = watch(where, (_event, name) => {
          if (matters(where, name === null ? null : String(name))) poke();
        });
        // The directory went away (tenants/ deleted): re-arm once things settle.
        w.on('error', () => {
          w.close();
          poke();
        });
        watchers.set(where, w);
      } catch (e) {
        // A directory that does not exist yet is picked up by a later arm(). The root must exist
        // at start; later, its removal must not take the gateway down.
        if (where !== root) continue;
        if (first) throw e;
        awaitRoot();
      }
    }
  }

  arm(true);
  return {
    close(): void {
      closed = true;
      clearTimeout(timer);
      clearInterval(rootPoll);
      for (const w of watchers.values()) w.close();
      watchers.clear();
    },
  };
}
