// One parsed YAML file of a policy directory, with the means to turn any node back into
// FILE:LINE:COL. Every problem the loader reports goes through a SourceFile, so positions
// are always 1-based and always name the file as the operator typed it.

import { Document, LineCounter, isAlias, parseDocument, type Node } from 'yaml';
import type { PolicyProblem } from './types.js';

export interface Loc {
  readonly file: string;
  readonly line: number;
  readonly col: number;
}

/** Collects problems from every stage of a load; reported sorted by file, line, column. */
export class Problems {
  readonly list: PolicyProblem[] = [];

  add(loc: Loc, message: string): void {
    this.list.push({ file: loc.file, line: loc.line, col: loc.col, message });
  }

  get count(): number {
    return this.list.length;
  }

  sorted(): PolicyProblem[] {
    return [...this.list].sort(
      (a, b) =>
        (a.file < b.file ? -1 : a.file > b.file ? 1 : 0) || a.line - b.line || a.col - b.col ||
        (a.message < b.message ? -1 : a.message > b.message ? 1 : 0),
    );
  }
}

export class SourceFile {
  readonly doc: Document.Parsed;
  /** Whether the file parsed without YAML errors (only then is it worth validating). */
  readonly parsed: boolean;
  private readonly lines: LineCounter;

  /**
   * @param file path shown in problems (the directory as given + the file's relative path)
   * @param text the file's contents
   */
  constructor(readonly file: string, readonly text: string, problems: Problems) {
    this.lines = new LineCounter();
    // uniqueKeys (the default) makes a repeated key a YAML error at the second occurrence.
    this.doc = parseDocument(text, { lineCounter: this.lines, prettyErrors: false });
    // `*: {...}` (the default tenant, unquoted) is read by YAML as an alias and gives a cascade of
    // cryptic errors on that line; say what is wrong instead.
    const bareStar = new Map<number, number>();
    text.split('\n').forEach((l, i) => {
      const m = /^(\s*(?:-\s+)?)\*\s*:/.exec(l);
      if (m) bareStar.set(i + 1, m[1]!.length + 1);
    });
    for (const err of this.doc.errors) {
      const at = this.at(err.pos[0]);
      if (!bareStar.has(at.line)) problems.add(at, `YAML syntax error: ${err.message}`);
    }
    const errorLines = new Set(this.doc.errors.map((e) => this.at(e.pos[0]).line));
    for (const [line, col] of bareStar) {
      if (errorLines.has(line)) problems.add({ file, line, col }, 'YAML syntax error: a bare * starts an alias; quote the default tenant as "*"');
    }
    this.parsed = this.doc.errors.length === 0;
  }

  /** Location of a character offset. */
  at(offset: number): Loc {
    const { line, col } = this.lines.linePos(offset);
    return { file: this.file, line, col };
  }

  /** Location of a node (its first character); the start of the file when there is none. */
  loc(node: Node | null | undefined): Loc {
    return this.at(node?.range?.[0] ?? 0);
  }

  /** Follows an alias (`*name`) to the node it names; undefined for an alias to nothing. */
  resolve(node: unknown): Node | null | undefined {
    if (isAlias(node)) return node.resolve(this.doc) as Node | undefined;
    return node as Node | null | undefined;
  }
}
