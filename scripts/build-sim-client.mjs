// Builds dist/bin/kha-sim-client (src/lab/sim/client/client.c, C, libc only) for the lab's simulated tools,
// with the same code the first `kha lab up` of an installed package uses (runs after tsc).
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const { ensureSimClient } = require('../dist/src/lab/sim/client-build.js');

const r = ensureSimClient({ force: true });
if (r.error) console.warn(`kha: the lab's sim client was not built (${r.error}); lab tools will run one Node process per call`);
