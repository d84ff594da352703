// Where a device keeps what must outlive the process: its identity secret, prekey secrets, the peers'
// identity keys it has seen (key continuity) and recently answered hellos (replay refusal). Values are
// strings; some are secrets, so an app should back this with storage it trusts (the OS keychain,
// IndexedDB with a non-extractable wrapping key, an encrypted file). The default keeps it in memory:
// fine for tests and short-lived demos, lost on restart.

export interface DeviceStorage {
  get(key: string): Promise<string | undefined> | string | undefined;
  set(key: string, value: string): Promise<void> | void;
  delete(key: string): Promise<void> | void;
}

export class MemoryStorage implements DeviceStorage {
  readonly #map = new Map<string, string>();
  get(key: string): string | undefined {
    return this.#map.get(key);
  }
  set(key: string, value: string): void {
    this.#map.set(key, value);
  }
  delete(key: string): void {
    this.#map.delete(key);
  }
  /** Number of keys held (tests use it to check that used prekeys are gone). */
  get size(): number {
    return this.#map.size;
  }
  keys(): string[] {
    return [...this.#map.keys()];
  }
}
