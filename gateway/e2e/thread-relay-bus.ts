// RelayBus between the listener threads of one instance (memory store): a BroadcastChannel per
// relay channel. BroadcastChannel cannot say how many threads listen, so each thread announces its
// subscriptions on a control channel and keeps a count of the others' (for "not_connected").

import { BroadcastChannel } from 'node:worker_threads';
import type { RelayBus } from '../../crypto/directory/relay.js';

type Control = { op: 'sub' | 'unsub'; channel: string; thread: string } | { op: 'hello'; thread: string };

export class ThreadRelayBus implements RelayBus {
  private readonly thread = Math.random().toString(36).slice(2);
  private readonly control = new BroadcastChannel('ward:e2e:control');
  private readonly mine = new Map<string, BroadcastChannel>();
  /** channel → threads (other than this one) subscribed to it. */
  private readonly others = new Map<string, Set<string>>();
  private readonly senders = new Map<string, BroadcastChannel>();

  constructor() {
    this.control.onmessage = (e) => this.onControl((e as { data: Control }).data);
    this.control.postMessage({ op: 'hello', thread: this.thread } satisfies Control);
    (this.control as unknown as { unref(): void }).unref();
  }

  async publish(channel: string, message: string): Promise<number> {
    let ch = this.senders.get(channel);
    if (ch === undefined) {
      ch = new BroadcastChannel(channel);
      (ch as unknown as { unref(): void }).unref();
      this.senders.set(channel, ch);
    }
    ch.postMessage(message);
    return (this.others.get(channel)?.size ?? 0) + (this.mine.has(channel) ? 1 : 0);
  }

  async subscribe(channel: string, onMessage: (message: string) => void): Promise<void> {
    const ch = new BroadcastChannel(channel);
    (ch as unknown as { unref(): void }).unref();
    ch.onmessage = (e) => onMessage((e as { data: string }).data);
    this.mine.set(channel, ch);
    this.control.postMessage({ op: 'sub', channel, thread: this.thread } satisfies Control);
  }

  async unsubscribe(channel: string): Promise<void> {
    this.mine.get(channel)?.close();
    this.mine.delete(channel);
    this.control.postMessage({ op: 'unsub', channel, thread: this.thread } satisfies Control);
  }

  async close(): Promise<void> {
    for (const ch of [...this.mine.values(), ...this.senders.values()]) ch.close();
    this.control.close();
  }

  private onControl(m: Control): void {
    if (m.thread === this.thread) return;
    if (m.op === 'hello') {
      // A thread (re)started: tell it what this one listens to.
      for (const channel of this.mine.keys()) this.control.postMessage({ op: 'sub', channel, thread: this.thread } satisfies Control);
      return;
    }
    let set = this.others.get(m.channel);
    if (m.op === 'sub') {
      if (!set) this.others.set(m.channel, (set = new Set()));
      set.add(m.thread);
    } else if (set) {
      set.delete(m.thread);
      if (set.size === 0) this.others.delete(m.channel);
    }
  }
}
