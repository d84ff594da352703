// The progress line of a running scenario or bench, on stderr: rewritten in place on a terminal,
// one line per update (at most one a second) when piped to a file.

export class Progress {
  private lastPlain = 0;
  private open = false;

  constructor(private readonly out: NodeJS.WriteStream = process.stderr) {}

  /** Replaces the current line. */
  update(text: string): void {
    if (this.out.isTTY) {
      const width = this.out.columns || 120;
      this.out.write(`\r\x1b[K${text.slice(0, width - 1)}`);
      this.open = true;
    } else if (Date.now() - this.lastPlain >= 1000) {
      this.lastPlain = Date.now();
      this.out.write(`${text}\n`);
    }
  }

  /** Prints a line that stays (a finished step). */
  log(text: string): void {
    if (this.open) this.out.write('\r\x1b[K');
    this.open = false;
    this.out.write(`${text}\n`);
  }

  /** Counts down a timed step: `label 3/10 s` every second until `seconds` have passed or `until` settles. */
  async countdown<T>(label: string, seconds: number, until: Promise<T>): Promise<T> {
    const t0 = Date.now();
    const timer = setInterval(() => this.update(`${label} ${Math.min(seconds, Math.round((Date.now() - t0) / 1000))}/${seconds} s`), 1000);
    try {
      return await until;
    } finally {
      clearInterval(timer);
    }
  }
}
