// Bundles the workflows once at build time (dist/workflow-bundle.js), so a worker starts without running
// webpack (1.5-2 s each start, which a resumed deployment waits for).
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const { bundleWorkflowCode } = require('@temporalio/worker');

const { code } = await bundleWorkflowCode({
  workflowsPath: require.resolve('../dist/src/workflows/index.js'),
  logger: { trace() {}, debug() {}, info() {}, warn: console.warn, error: console.error, log() {} },
});
writeFileSync(new URL('../dist/workflow-bundle.js', import.meta.url), code);
