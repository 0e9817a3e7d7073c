/**
 * A generated program that runs out of time is killed with everything it started, even the
 * processes it moved into a process group of their own (the scenario's processes are in one,
 * apart from the supervisor's): otherwise they would live on, hold the output pipe open and
 * keep the run from ever ending.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runGenerated } from '../../native/build.js';

test('a program past its time is killed with the processes it put in another process group', { skip: process.platform !== 'linux' ? 'Linux only' : !existsSync('/usr/bin/perl') ? 'no perl to make the process group' : false }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'isolab-timeout-'));
  try {
    const script = join(dir, 'prog');
    const pidFile = join(dir, 'pid');
    // The background job moves itself into a process group of its own (setpgid(0, 0), as the
    // generated program's scenario processes do), staying in the session.
    writeFileSync(script, `#!/bin/sh\nperl -e 'setpgrp(0, 0); sleep 1000' &\necho $! > ${pidFile}\nwait\n`);
    chmodSync(script, 0o755);
    const started = Date.now();
    const r = await runGenerated(script, 1500);
    assert.ok(r.timedOut, 'the run timed out');
    assert.ok(Date.now() - started < 20_000, 'and ended soon after its time');
    const pid = Number(readFileSync(pidFile, 'utf8'));
    assert.ok(pid > 0);
    // SIGKILL is delivered at once, but the dead process may linger as a zombie a moment before init reaps it.
    let alive = true;
    for (let i = 0; i < 50 && alive; i++) {
      alive = existsSync(`/proc/${pid}`) && !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
      if (alive) await new Promise((res) => setTimeout(res, 100));
    }
    assert.ok(!alive, `the background job (pid ${pid}, its own process group) was killed`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
