// A release's progress, and where it is kept. The state is small and changes rarely (a step, an
// action, a rollback), so every instance reads it from the store and writes it by compare-and-set
// on `version`: two instances deciding the same step at once cannot both win.

import { readFile, rename, writeFile } from 'node:fs/promises';

export type ReleaseStatus = 'running' | 'paused' | 'rolled_back' | 'aborted' | 'promoted';

export interface ReleaseState {
  /** Index into the release's steps; tenants of this step and of every earlier one are on the canary. */
  readonly step: number;
  readonly status: ReleaseStatus;
  /** Why it is paused, rolled back or promoted: `operator`, `insufficient_traffic`, `error_rate …`, `completed`. */
  readonly reason?: string;
  /** Epoch ms the current step began (steps advance every step_interval_s from here). */
  readonly stepStartedAt: number;
  readonly updatedAt: number;
  /** Who made the last change: an admin token's name, or `analysis`. */
  readonly by: string;
  /** Compare-and-set counter: 1 for the first stored state. */
  readonly version: number;
}

export interface ReleaseStateStore {
  load(name: string): Promise<ReleaseState | undefined>;
  /** Stores `next` only if the stored version is `expected` (0: none stored yet). */
  save(name: string, next: ReleaseState, expected: number): Promise<boolean>;
  close(): Promise<void>;
}

/** Per process: survives a policy reload, not a restart (use the file or Redis store for that). */
export class MemoryReleaseStateStore implements ReleaseStateStore {
  protected readonly states = new Map<string, ReleaseState>();

  async load(name: string): Promise<ReleaseState | undefined> {
    return this.states.get(name);
  }

  async save(name: string, next: ReleaseState, expected: number): Promise<boolean> {
    if ((this.states.get(name)?.version ?? 0) !== expected) return false;
    this.states.set(name, next);
    return true;
  }

  async close(): Promise<void> {}
}

/** One JSON file, replaced atomically on each change: single-node state that survives a restart. */
export class FileReleaseStateStore extends MemoryReleaseStateStore {
  private loaded = false;
  private writing: Promise<void> = Promise.resolve();

  constructor(readonly path: string) {
    super();
  }

  private async ensure(): Promise<void> {
    if (this.loaded) return;
    this.loaded = true;
    try {
      const all = JSON.parse(await readFile(this.path, 'utf8')) as Record<string, ReleaseState>;
      for (const [k, v] of Object.entries(all)) this.states.set(k, v);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }

  override async load(name: string): Promise<ReleaseState | undefined> {
    await this.ensure();
    return super.load(name);
  }

  override async save(name: string, next: ReleaseState, expected: number): Promise<boolean> {
    await this.ensure();
    if (!(await super.save(name, next, expected))) return false;
    const text = JSON.stringify(Object.fromEntries(this.states), null, 2);
    this.writing = this.writing.then(async () => {
      await writeFile(`${this.path}.tmp`, text);
      await rename(`${this.path}.tmp`, this.path);
    });
    await this.writing;
    return true;
  }

  override async close(): Promise<void> {
    await this.writing;
  }
}
