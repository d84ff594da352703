// The console's static files (gateway/admin/console/: HTML, JS, CSS, no CDN) are read at run time
// from the source folder, found relative to this module: tsc does not copy them, and reading them
// in place keeps one copy whatever the outDir (dist/, dist-x/) and needs no build step. The page
// is served as one document with its CSS and JS inlined, because every /admin/ request, the
// page's own assets included, must carry the bearer token, which a <script src> cannot send.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface ConsoleAssets {
  readonly html: string;
  readonly js: string;
  readonly css: string;
  readonly login: string;
}

let cached: ConsoleAssets | undefined;

/** The folder holding index.html: beside this module if copied there, else gateway/admin/console/ up the tree. */
export function consoleDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  if (existsSync(join(dir, 'console', 'index.html'))) return join(dir, 'console');
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'gateway', 'admin', 'console');
    if (existsSync(join(candidate, 'index.html'))) return candidate;
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  throw new Error('admin console: gateway/admin/console/index.html not found above ' + fileURLToPath(import.meta.url));
}

export function consoleAssets(): ConsoleAssets {
  if (cached !== undefined) return cached;
  const dir = consoleDir();
  const read = (f: string): string => readFileSync(join(dir, f), 'utf8');
  cached = { html: read('index.html'), js: read('console.js'), css: read('console.css'), login: read('login.html') };
  return cached;
}

/** Closing tags inside inlined code would end the element early. */
function inlineSafe(code: string, tag: 'script' | 'style'): string {
  return code.replace(new RegExp(`</${tag}`, 'gi'), `<\\/${tag}`);
}

/** The console page with its CSS and JS inlined. */
export function consolePage(): string {
  const a = consoleAssets();
  return a.html.replace('/*CONSOLE_CSS*/', () => inlineSafe(a.css, 'style')).replace('/*CONSOLE_JS*/', () => inlineSafe(a.js, 'script'));
}

/** The page answered with 401 to a browser: asks for the token, then loads the console with it. */
export function loginPage(): string {
  const a = consoleAssets();
  return a.login.replace('/*CONSOLE_CSS*/', () => inlineSafe(a.css, 'style'));
}
