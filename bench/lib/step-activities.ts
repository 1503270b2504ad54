// Activities of the per-step benchmark: one remote command through kha's own path (withNode opens an SSH
// session, runScript runs a script through the executor), and an empty activity for Temporal's share.
import { runScript, withNode } from '../../src/activities/common';
import type { ClusterSpec } from '../../src/spec/types';

const TRUE_SCRIPT = { name: 'true', runsOn: 'node' as const, content: 'true\n', secretEnv: [], sensitiveOutput: false };

export async function benchStep(call: { cluster: ClusterSpec; node: string }): Promise<number> {
  return withNode(call.cluster, call.node, async (s) => (await runScript(s, call.node, 'bench', TRUE_SCRIPT)).result.exitCode);
}

export async function benchNoop(call: { node: string }): Promise<string> {
  return call.node;
}
