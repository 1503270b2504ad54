// Builds dist/bin/kha-sim-client (src/lab/sim/client, Go, standard library only) for the lab's simulated
// tools. Without Go the lab still works: each tool call then starts a Node process of its own.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const go = [process.env.GO, '/usr/local/go/bin/go', 'go'].find((g) => g && (g === 'go' || existsSync(g)));
mkdirSync(`${root}dist/bin`, { recursive: true });
const r = spawnSync(go, ['build', '-trimpath', '-o', `${root}dist/bin/kha-sim-client`, '.'], {
  cwd: `${root}src/lab/sim/client`,
  stdio: 'inherit',
  env: { ...process.env, CGO_ENABLED: '0', GOTOOLCHAIN: 'local', GOFLAGS: '-mod=mod' },
});
if (r.error || r.status !== 0) {
  console.warn(`kha: the lab's sim client was not built (${r.error?.message ?? `go exit ${r.status}`}); lab tools will run one Node process per call`);
}
