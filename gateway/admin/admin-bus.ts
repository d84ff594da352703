// How an admin action done on one instance reaches the others, and where the audit log lives.
// Memory (one instance): everything stays in this process; worker threads see target actions
// through the shared target tables anyway. Redis: an action is published at once (pub/sub) and
// the drain/maint overrides are also kept in a hash that every instance re-reads every second,
// so an instance that missed a message or started later still converges within 2 s.

import { randomUUID } from 'node:crypto';
import { Cluster, type Redis } from 'ioredis';

export type TargetAction = 'drain' | 'undrain' | 'maint';
export const TARGET_ACTIONS: readonly TargetAction[] = ['drain', 'undrain', 'maint'];

export interface AuditEntry {
  /** Epoch ms. */
  readonly at: number;
  /** The admin token's name. */
  readonly who: string;
  readonly role: 'viewer' | 'operator';
  readonly action: string;
  /** `upstream api target http://…` or `release api-v2`. */
  readonly subject: string;
  readonly before: unknown;
  readonly after: unknown;
  readonly result: 'ok' | 'error';
  readonly error?: string;
  /** The instance that did it. */
  readonly instance: string;
}

export type AdminMessage =
  | { readonly kind: 'target'; readonly from: string; readonly upstream: string; readonly target: string; readonly action: TargetAction }
  | { readonly kind: 'release'; readonly from: string; readonly release: string; readonly action: string };

/** `upstream \n url` → the override in force. */
export type TargetOverrides = Record<string, 'drain' | 'maint'>;

export function overrideKey(upstream: string, target: string): string {
  return `${upstream}\n${target}`;
}

export interface AdminBus {
  readonly instanceId: string;
  /** Announces an action done here; every other instance's subscribers get it. */
  publish(msg: AdminMessage): Promise<void>;
  subscribe(handler: (msg: AdminMessage) => void): () => void;
  /** Records the drain/maint state an operator chose for a target (undefined: none). */
  setOverride(upstream: string, target: string, action: 'drain' | 'maint' | undefined): Promise<void>;
  overrides(): Promise<TargetOverrides>;
  appendAudit(entry: AuditEntry): Promise<void>;
  /** Newest first. */
  audit(limit: number): Promise<AuditEntry[]>;
  close(): Promise<void>;
}

const AUDIT_KEEP = 500;

export class LocalAdminBus implements AdminBus {
  readonly instanceId = randomUUID();
  private handlers: Array<(msg: AdminMessage) => void> = [];
  private readonly over = new Map<string, 'drain' | 'maint'>();
  private readonly entries: AuditEntry[] = [];

  async publish(msg: AdminMessage): Promise<void> {
    for (const h of this.handlers) if (msg.from !== this.instanceId) h(msg);
  }

  subscribe(handler: (msg: AdminMessage) => void): () => void {
    this.handlers.push(handler);
    return () => {
      this.handlers = this.handlers.filter((h) => h !== handler);
    };
  }

  async setOverride(upstream: string, target: string, action: 'drain' | 'maint' | undefined): Promise<void> {
    if (action === undefined) this.over.delete(overrideKey(upstream, target));
    else this.over.set(overrideKey(upstream, target), action);
  }

  async overrides(): Promise<TargetOverrides> {
    return Object.fromEntries(this.over);
  }

  async appendAudit(entry: AuditEntry): Promise<void> {
    this.entries.push(entry);
    if (this.entries.length > AUDIT_KEEP) this.entries.shift();
  }

  async audit(limit: number): Promise<AuditEntry[]> {
    return this.entries.slice(-limit).reverse();
  }

  async close(): Promise<void> {
    this.handlers = [];
  }
}

export class RedisAdminBus implements AdminBus {
  readonly instanceId = randomUUID();
  private readonly sub: Redis | Cluster;
  private handlers: Array<(msg: AdminMessage) => void> = [];
  private readonly channel: string;
  private readonly overKey: string;
  private readonly auditKey: string;
  private subscribed: Promise<unknown> | undefined;
  private onSubscribed: (() => void) | undefined;

  /** `client` is not closed by close(); a subscriber connection is duplicated from it and is. */
  constructor(
    private readonly client: Redis | Cluster,
    prefix = 'ward:',
  ) {
    this.channel = `${prefix}admin:events`;
    this.overKey = `${prefix}admin:targets`;
    this.auditKey = `${prefix}admin:audit`;
    // ioredis' own re-subscribe after a reconnect leaves its promise unhandled (a rejection when the
    // connection drops again or is closed): this connection subscribes on every 'ready' itself.
    const opts = { autoResubscribe: false, enableOfflineQueue: false };
    this.sub = client instanceof Cluster ? client.duplicate(undefined, opts) : client.duplicate(opts);
    this.sub.on('ready', () => this.listen());
    this.sub.on('error', () => undefined); // reconnects by itself; the overrides poll covers the gap
    this.sub.on('message', (channel: string, text: string) => {
      if (channel !== this.channel) return;
      let msg: AdminMessage;
      try {
        msg = JSON.parse(text) as AdminMessage;
      } catch {
        return;
      }
      if (msg.from === this.instanceId) return;
      for (const h of this.handlers) h(msg);
    });
  }

  /** Resolves once this instance listens (a message published before that is only seen by the poll). */
  ready(): Promise<unknown> {
    this.subscribed ??= new Promise<void>((resolve) => {
      this.onSubscribed = resolve;
      if (this.sub.status === 'ready') this.listen();
    });
    return this.subscribed;
  }

  private listen(): void {
    this.sub.subscribe(this.channel).then(
      () => this.onSubscribed?.(),
      () => undefined, // dropped again: the next 'ready' retries, the overrides poll covers the gap
    );
  }

  async publish(msg: AdminMessage): Promise<void> {
    await this.client.publish(this.channel, JSON.stringify(msg));
  }

  subscribe(handler: (msg: AdminMessage) => void): () => void {
    this.handlers.push(handler);
    void this.ready().catch(() => undefined);
    return () => {
      this.handlers = this.handlers.filter((h) => h !== handler);
    };
  }

  async setOverride(upstream: string, target: string, action: 'drain' | 'maint' | undefined): Promise<void> {
    if (action === undefined) await this.client.hdel(this.overKey, overrideKey(upstream, target));
    else await this.client.hset(this.overKey, overrideKey(upstream, target), action);
  }

  async overrides(): Promise<TargetOverrides> {
    return (await this.client.hgetall(this.overKey)) as TargetOverrides;
  }

  async appendAudit(entry: AuditEntry): Promise<void> {
    await this.client.lpush(this.auditKey, JSON.stringify(entry));
    await this.client.ltrim(this.auditKey, 0, AUDIT_KEEP - 1);
  }

  async audit(limit: number): Promise<AuditEntry[]> {
    const items = await this.client.lrange(this.auditKey, 0, limit - 1);
    return items.map((s) => JSON.parse(s) as AuditEntry);
  }

  async close(): Promise<void> {
    this.handlers = [];
    this.sub.disconnect();
  }
}
