import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Headless Chromium (Debian's `chromium` package, which `.ci/run` installs) for looking at
 * the status page as a browser does: its script runs, and what it renders is read back as
 * the final DOM or a screenshot. Every run is bounded in time and uses a fresh profile.
 */

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

/** The browser binary; throws naming the package to install when there is none. */
export function chromiumBinary(): string {
  const found = CANDIDATES.find((p) => existsSync(p));
  if (!found) throw new Error('no headless Chromium found (looked for /usr/bin/chromium): .ci/run must apt-get install chromium');
  return found;
}

/**
 * Loads `url`, lets its scripts run for `settleMs` of virtual time, then returns the DOM
 * (`--dump-dom`) and, when `screenshot` is a path, writes a PNG of the window there.
 */
export async function renderPage(url: string, options: { settleMs?: number; screenshot?: string; width?: number; height?: number } = {}): Promise<string> {
  const profile = await mkdtemp(join(tmpdir(), 'dfos-chromium-'));
  const common = [
    '--headless',
    '--no-sandbox', // CI runs as root, where Chromium's sandbox cannot start
    '--disable-gpu',
    '--disable-dev-shm-usage',
    '--no-first-run',
    '--hide-scrollbars',
    `--user-data-dir=${profile}`,
    `--window-size=${options.width ?? 1280},${options.height ?? 900}`,
    `--virtual-time-budget=${options.settleMs ?? 3000}`,
  ];
  try {
    const dom = await run([...common, '--dump-dom', url]);
    if (options.screenshot) await run([...common, `--screenshot=${options.screenshot}`, url]);
    return dom;
  } finally {
    await rm(profile, { recursive: true, force: true });
  }
}

function run(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(chromiumBinary(), args, { timeout: 60_000, maxBuffer: 32 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`chromium ${args.at(-1)}: ${err.message}\n${stderr.slice(-2000)}`));
      else resolve(stdout);
    });
  });
}
