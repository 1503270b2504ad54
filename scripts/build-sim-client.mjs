// Builds dist/bin/kha-sim-client (src/lab/sim/client/client.c, C, libc only) for the lab's simulated tools.
// Without a C compiler the lab still works: each tool call then starts a Node process of its own.
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
mkdirSync(`${root}dist/bin`, { recursive: true });
const cc = process.env.CC || 'cc';
const r = spawnSync(cc, ['-O2', '-Wall', '-Wextra', '-Werror', '-o', `${root}dist/bin/kha-sim-client`, `${root}src/lab/sim/client/client.c`], { stdio: 'inherit' });
if (r.error || r.status !== 0) {
  console.warn(`kha: the lab's sim client was not built (${r.error?.message ?? `${cc} exit ${r.status}`}); lab tools will run one Node process per call`);
}
