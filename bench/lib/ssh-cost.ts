// SSH through kha's executor without Temporal: what a new session per step costs, and a command on an open one.
import type { ClusterSpec } from '../../src/spec/types';
import { findNode, nodeSsh } from '../../src/spec/types';
import { SshSession } from '../../src/ssh/executor';
import { stats, type Stats } from './report';

/**
 * SSH alone (no Temporal), one host, sequential: a new session per command (connect, run `true` through the
 * executor, close - what each activity does), and commands on one open session (what a session reused across
 * steps would cost).
 */
export async function sshCost(cluster: ClusterSpec, node: string, n: number): Promise<{ newSession: Stats; openSession: Stats }> {
  const target = nodeSsh(cluster, findNode(cluster, node));
  const run = async (s: SshSession) => {
    const r = await s.runScript('true\n');
    if (r.exitCode !== 0) throw new Error(`true exited ${r.exitCode} on ${node}`);
  };
  const fresh: number[] = [];
  for (let i = 0; i <= n; i++) {
    const t = performance.now();
    const s = await SshSession.connect(target);
    await run(s);
    s.close();
    if (i > 0) fresh.push(performance.now() - t);
  }
  const open: number[] = [];
  const s = await SshSession.connect(target);
  try {
    for (let i = 0; i <= n; i++) {
      const t = performance.now();
      await run(s);
      if (i > 0) open.push(performance.now() - t);
    }
  } finally {
    s.close();
  }
  return { newSession: stats(fresh), openSession: stats(open) };
}

