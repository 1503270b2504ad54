// The seed topology (3+3) deployed on the lab's real tier: real kubeadm, kubelet, etcd, API servers and
// containerd (src/lab/real), no simulated latency. Reports the wall time and the share of it kha itself adds:
// time with no activity executing (workflow tasks, Temporal handing out activities) plus one SSH session set-up
// per activity along the busy spine (the activities that, one after another, cover the time something ran),
// against the rest: the real commands' own time on the hosts.
//   node dist/bench/real.js        (root; needs the real binaries of scripts/kube-build.sh in /var/cache/kha/kube)
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab } from '../src/lab/lab';
import { loadClusterOrThrow } from '../src/spec/load';
import { deployWorkflowId, type DeployResult } from '../src/workflows/definitions';
import { startTemporal } from '../test/helpers/temporal';
import { resultOrFail } from '../test/helpers/workflow';
import { recordKubeconfigChoice } from '../src/activities/kubeconfig-target';
import { activityTimings, workflowSpan, workflowTaskStats, type ActivityTiming } from './lib/history';
import { LAB_CLOCK_SKEW_MS, log, machine, machineLine, round1, round2, table, writeResult } from './lib/report';
import { sshCost } from './lib/ssh-cost';
import { sampleProcess, startWorkerProcess } from './lib/worker-process';
import { benchSubnet } from './lib/subnets';

const SUBNET = benchSubnet('real');

/** Length of the union of [start, end] intervals, and the activities that cover it one after another. */
export function busySpine(acts: ActivityTiming[]): { busyMs: number; spine: ActivityTiming[] } {
  const xs = acts.filter((a) => Number.isFinite(a.startedMs) && Number.isFinite(a.endedMs)).sort((a, b) => a.startedMs - b.startedMs);
  let busyMs = 0;
  const spine: ActivityTiming[] = [];
  let end = -Infinity;
  let i = 0;
  while (i < xs.length) {
    // The next busy stretch starts at the earliest activity not yet covered.
    if (xs[i]!.startedMs > end) {
      spine.push(xs[i]!);
      busyMs += xs[i]!.endedMs - xs[i]!.startedMs;
      end = xs[i]!.endedMs;
      i++;
      continue;
    }
    // Among those that start before the stretch ends, the one that reaches furthest extends it.
    let best: ActivityTiming | undefined;
    for (; i < xs.length && xs[i]!.startedMs <= end; i++) if (xs[i]!.endedMs > end && (!best || xs[i]!.endedMs > best.endedMs)) best = xs[i];
    if (best) {
      spine.push(best);
      busyMs += best.endedMs - end;
      end = best.endedMs;
    }
  }
  return { busyMs, spine };
}

async function main(): Promise<void> {
  const m = machine();
  log(machineLine(m));
  const dir = `/var/tmp/kha-bench-real-${SUBNET}`;
  await Lab.downDir(join(dir, 'lab'));
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const t0 = Date.now();
  const lab = await Lab.up({ dir: join(dir, 'lab'), controlPlanes: 3, workers: 3, subnetIndex: SUBNET, rebootDelayMs: 500, kube: 'real' });
  const labUpMs = Date.now() - t0;
  const env = await startTemporal();
  try {
    const version = lab.realKubeVersions().at(-1)!;
    const file = join(dir, 'real.yaml');
    writeFileSync(file, lab.specYaml({ name: 'benchreal', kubernetesVersion: version.split('.').slice(0, 2).join('.') }));
    const cluster = loadClusterOrThrow(file);
    cluster.spec.policy.approveBeforeWorkers = false;
    const sc = await sshCost(cluster, lab.nodes[0]!.name, 10);
    const sshSetupMs = Math.max(0, sc.newSession.medianMs - sc.openSession.medianMs);
    const queue = 'bench-real';
    const worker = startWorkerProcess(env.address, queue);
    await worker.ready;
    const sampler = sampleProcess(worker.child.pid!);
    const kubeconfig = join(dir, 'admin.conf');
    recordKubeconfigChoice(cluster.name, kubeconfig);
    log(`real tier ${version}: deploying 3+3`);
    const handle = await env.client.workflow.start('deployCluster', {
      taskQueue: queue,
      workflowId: deployWorkflowId(cluster.name),
      args: [{ cluster, options: { kubeconfigPath: kubeconfig, maxClockSkewMs: LAB_CLOCK_SKEW_MS } }],
    });
    const result = await resultOrFail<DeployResult>(handle);
    const proc = sampler.stop();
    await worker.kill('SIGKILL');
    if (result.nodesReady !== 6 || result.etcdMembers !== 3) throw new Error(`real tier: ${result.nodesReady} Ready nodes, ${result.etcdMembers} etcd members`);
    const events = (await handle.fetchHistory()).events ?? [];
    const span = workflowSpan(events);
    const wallMs = Math.round(span.endMs - span.startMs);
    const acts = activityTimings(events);
    const { busyMs, spine } = busySpine(acts);
    const idleMs = Math.round(wallMs - busyMs);
    const sshMs = Math.round(spine.length * sshSetupMs);
    const khaMs = idleMs + sshMs;
    const byPhase = new Map<string, number>();
    for (const a of spine) byPhase.set(a.phase, (byPhase.get(a.phase) ?? 0) + (a.endedMs - a.startedMs));
    const summary = {
      kubernetesVersion: result.kubernetesVersion,
      labUpMs,
      wallMs,
      activities: acts.length,
      spineActivities: spine.length,
      idleMs,
      sshSetupMs: round1(sshSetupMs),
      khaMs,
      khaShare: round2(khaMs / wallMs),
      hostCommandsMs: wallMs - khaMs,
      workerPeakRssMiB: round1(proc.peakRssKiB / 1024),
      workflowTasks: workflowTaskStats(events),
    };
    process.stdout.write(`\n${machineLine(m)}\nReal tier: the seed topology (3+3) on real kubeadm ${result.kubernetesVersion}\n`);
    process.stdout.write(
      table(
        ['hosts', 'lab up s', 'wall s', 'kha s', 'kha share', 'no activity running s', 'SSH set-up s', 'commands on hosts s', 'activities', 'spine', 'worker peak MiB'],
        [['3+3', round1(labUpMs / 1000), round1(wallMs / 1000), round1(khaMs / 1000), `${Math.round(summary.khaShare * 100)}%`, round1(idleMs / 1000), round1(sshMs / 1000), round1(summary.hostCommandsMs / 1000), acts.length, spine.length, summary.workerPeakRssMiB]],
      ),
    );
    process.stdout.write(`busy spine by phase (s): ${[...byPhase].map(([p, ms]) => `${p} ${round1(ms / 1000)}`).join(', ')}\n`);
    const out = writeResult('real', m, {
      what: 'seed topology on the real tier: wall time; kha share = time with no activity executing + SSH set-up per activity on the busy spine',
      summary,
      spineByPhaseMs: Object.fromEntries([...byPhase].map(([p, ms]) => [p, Math.round(ms)])),
    });
    process.stdout.write(`written to ${out}\n`);
  } finally {
    await env.teardown().catch(() => undefined);
    await lab.down();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main().catch((e: unknown) => {
    process.stderr.write(`bench real: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  });
}
