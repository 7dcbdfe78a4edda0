// Shared by docker/smoke.mjs and docker/stack-test.mjs: the tests' `ws` package, podman, and
// checks that print what they proved.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';

const require = createRequire(new URL('../tests/integration/package.json', import.meta.url));
export const WebSocket = require('ws');

export const podman = (...args) => execFileSync('podman', args, { encoding: 'utf8' }).trim();

export function check(ok, what) {
  if (!ok) throw new Error(`FAILED: ${what}`);
  console.log(`    ok: ${what}`);
}

// Polls `fn` until it returns something truthy (errors count as "not yet").
export async function until(fn, what, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch {}
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}
