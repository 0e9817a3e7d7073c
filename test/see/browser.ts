/**
 * Chromium for the browser tests and the see benchmark: Debian's `chromium` package, installed
 * with apt-get when it is missing (as the README's test command promises), driven by
 * playwright-core. Launched headless with the flags this machine needs: no sandbox (root), no
 * GPU, and no background networking (the network is closed; Chromium's own connections would
 * otherwise be refused at every start).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser'];

/** The Chromium executable, installing Debian's package first when none is there. Throws with what to do when it cannot. */
export function chromiumPath(): string {
  const found = CANDIDATES.find((p) => existsSync(p));
  if (found) return found;
  try {
    execFileSync('apt-get', ['update'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'chromium'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  } catch (e) {
    throw new Error(`Chromium is missing and apt-get install chromium failed (${e instanceof Error ? e.message : String(e)}): install Debian's chromium package`);
  }
  const now = CANDIDATES.find((p) => existsSync(p));
  if (!now) throw new Error('apt-get install chromium ran but no chromium executable appeared in /usr/bin');
  return now;
}

/** A headless Chromium. */
export function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath(),
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
