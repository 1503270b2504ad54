// deployCluster run again on a live cluster, and under failures that must not need (or must batch) an operator:
// rollback and compensation touch only what the run created, versions stay, a failed compensation waits for the
// operator, batches of decisions, network blips, failover to the next control-plane node, early approvals, and
// deploy/reset never side by side. Real dev server, lab hosts, the real CLI against the same server.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { labModel, startDeployEnv, type DeployEnv } from './helpers/deploy';
import { resultOrFail, scheduledActivities, nodeOf, waitForState } from './helpers/workflow';
import { cliEnv, kha, KHA_MAIN } from './cli-run';
import {
  approveWorkersSignal,
  approveWorkersUpdate,
  decisionUpdate,
  deployWorkflowId,
  resetWorkflowId,
  statusQuery,
  type DeploymentStatus,
  type DeployResult,
} from '../src/workflows/definitions';
import type { ClusterSpec } from '../src/spec/types';
import { closeIdleSessions } from '../src/activities/common';
import { recordKubeconfigChoice } from '../src/activities/kubeconfig-target';
import { decisionText } from '../src/cli/output';
import { writeHostFaults } from '../src/lab/faults';
import { renderPhase } from '../src/render';
import { subnet } from './helpers/subnet';

let d: DeployEnv;
const blackHoles: Array<{ address: string; dev: string }> = [];

const model = () => labModel(d.lab);

async function start(cluster: ClusterSpec, taskQueue: string, options: Record<string, unknown> = { heartbeatTimeoutSeconds: 15 }): Promise<WorkflowHandle> {
  // As `kha deploy --kubeconfig` does: the worker writes outside its state directory only where this was recorded.
  recordKubeconfigChoice(cluster.name, join(d.dir, `${cluster.name}.conf`));
  return d.env.client.workflow.start('deployCluster', {
    taskQueue,
    workflowId: deployWorkflowId(cluster.name),
    args: [{ cluster, options: { kubeconfigPath: join(d.dir, `${cluster.name}.conf`), ...options } }],
  });
}

function startReset(cluster: ClusterSpec, taskQueue: string): Promise<WorkflowHandle> {
  return d.env.client.workflow.start('resetCluster', { taskQueue, workflowId: resetWorkflowId(cluster.name), args: [{ cluster }] });
}

/** The CLI against the test's server and worker (task queue). */
function cli(taskQueue: string, args: string[]) {
  return kha(args, cliEnv({ TEMPORAL_ADDRESS: d.env.address, TEMPORAL_NAMESPACE: d.env.namespace ?? 'default', KHA_TASK_QUEUE: taskQueue, XDG_STATE_HOME: join(d.dir, 'state') }));
}

/** The CLI on a pseudo-terminal (util-linux script): `answer` is typed once `prompt` shows. */
function onTerminal(taskQueue: string, args: string[], prompt: string, answer: string): Promise<{ code: number | null; out: string }> {
  const env = cliEnv({ TEMPORAL_ADDRESS: d.env.address, TEMPORAL_NAMESPACE: d.env.namespace ?? 'default', KHA_TASK_QUEUE: taskQueue, XDG_STATE_HOME: join(d.dir, 'state') });
  const cmd = [process.execPath, KHA_MAIN, ...args].map((a) => `'${a}'`).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qefc', cmd, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let typed = false;
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    const onData = (b: Buffer) => {
      out += b.toString();
      if (!typed && out.includes(prompt)) {
        typed = true;
        child.stdin.write(answer);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

function row(s: DeploymentStatus, phase: string, node: string) {
  return s.phases.find((p) => p.phase === phase)!.nodes.find((n) => n.node === node)!;
}

async function installedKubeadm(host: string): Promise<string> {
  return (await d.lab.exec(host, "dpkg-query -W -f='${Version}' kubeadm")).stdout.trim();
}

async function rejectsWorkflow(handle: WorkflowHandle, re: RegExp): Promise<void> {
  await assert.rejects(handle.result(), (e: unknown) => {
    assert.ok(e instanceof WorkflowFailedError, String(e));
    assert.match(String((e.cause as Error).message), re);
    return true;
  });
}

const noApproval = (c: ClusterSpec) => {
  c.spec.policy.approveBeforeWorkers = false;
};
const joinTimesOut = { command: 'kubeadm', argsMatch: '^join', times: 0, exitCode: 1, stderr: 'error execution phase kubelet-start: timed out waiting for the condition' };

describe('deployCluster again and under failures', () => {
  before(async () => {
    d = await startDeployEnv({ subnetIndex: subnet(75) });
  });
  after(async () => {
    for (const b of blackHoles) execFileSync('ip', ['neigh', 'del', b.address, 'dev', b.dev]);
    await d?.close();
  });

  test('a re-run keeps the running version, rolls back only its new worker (CLI lists it, wants --yes), refuses another version', async () => {
    const first = d.cluster('rerun', (c) => {
      noApproval(c);
      c.spec.kubernetes.version = '1.35.1';
      c.spec.nodes = c.spec.nodes.filter((n) => n.name !== 'k8swn-03');
    });
    await d.withWorker('rerun', async () => {
      const handle = await start(first, 'rerun');
      const result = await resultOrFail<DeployResult>(handle);
      assert.equal(result.nodesReady, 5);
      // Attempts are Temporal's retries of a step: nothing retried, so no step shows more than one.
      const s = await handle.query(statusQuery);
      const retried = s.phases.flatMap((p) => p.nodes.filter((n) => n.attempts > 1).map((n) => `${p.phase}/${n.node}: ${n.attempts}`));
      assert.deepEqual(retried, []);
    });
    assert.equal(await installedKubeadm('k8scp-01'), '1.35.1-1.1');

    // Again, now asking for the minor (newest patch 1.35.2) and with a third worker whose join keeps failing.
    const again = d.cluster('rerun', (c) => {
      noApproval(c);
      c.spec.policy.compensation.enabled = false;
      c.spec.policy.retry.maximumAttempts = 1;
    });
    d.lab.setFaults('k8swn-03', [joinTimesOut]);
    await d.withWorker('rerun', async () => {
      const handle = await start(again, 'rerun');
      const waiting = await waitForState(handle, 'waiting-decision');
      assert.equal(waiting.pendingDecision?.node, 'k8swn-03');
      assert.equal(waiting.kubernetesVersion, 'v1.35.1', 'the version the cluster runs is kept');
      assert.deepEqual([...(waiting.membersBefore ?? [])].sort(), ['k8scp-01', 'k8scp-02', 'k8scp-03', 'k8swn-01', 'k8swn-02']);
      assert.deepEqual(waiting.rollbackNodes, ['k8swn-03']);
      for (const h of ['k8scp-01', 'k8swn-01', 'k8swn-03']) assert.equal(await installedKubeadm(h), '1.35.1-1.1', h);

      // The CLI lists what the rollback resets and, without a terminal, refuses without --yes.
      const refused = await cli('rerun', ['abort', 'rerun', '--rollback']);
      assert.equal(refused.code, 2, refused.stdout + refused.stderr);
      assert.match(refused.stdout, /^rollback resets 1 node\(s\): k8swn-03 .*members before this run, kept as they are: k8scp-01, k8scp-02, k8scp-03, k8swn-01, k8swn-02$/m);
      assert.match(refused.stderr, /refusing to roll back rerun without confirmation: .*add --yes/);
      assert.equal((await handle.query(statusQuery)).state, 'waiting-decision', 'nothing was sent');
      // On a terminal it asks for the cluster's name; a wrong answer sends nothing.
      const asked = await onTerminal('rerun', ['abort', 'rerun', '--rollback'], 'Type the cluster name', 'rerun2\n');
      assert.equal(asked.code, 1, asked.out);
      assert.match(asked.out, /rollback resets 1 node\(s\): k8swn-03 /);
      assert.match(asked.out, /not confirmed \(expected "rerun"\); nothing was sent/);
      assert.equal((await handle.query(statusQuery)).state, 'waiting-decision', 'nothing was sent');
      const yes = await cli('rerun', ['abort', 'rerun', '--rollback', '--yes', '--detach']);
      assert.equal(yes.code, 0, yes.stdout + yes.stderr);
      await rejectsWorkflow(handle, /aborted by the operator; rolled back 1 node\(s\)/);
      const resets = scheduledActivities((await handle.fetchHistory()).events ?? []).filter((a) => a.type === 'resetNode').map((a) => nodeOf(a.input));
      assert.deepEqual(resets, ['k8swn-03']);
    });
    // The control plane stands: etcd kept its members, the nodes their files.
    assert.deepEqual(model().cluster!.etcd.map((e) => [e.name, e.running]).sort(), [
      ['k8scp-01', true],
      ['k8scp-02', true],
      ['k8scp-03', true],
    ]);
    for (const h of ['k8scp-01', 'k8scp-02', 'k8scp-03']) {
      assert.equal((await d.lab.exec(h, 'ls /etc/kubernetes/admin.conf /etc/kubernetes/manifests/etcd.yaml | wc -l')).stdout.trim(), '2', h);
    }
    d.lab.clearFaults();

    // A file asking for another patch than the cluster runs is refused before anything is installed.
    const other = d.cluster('rerun', (c) => {
      noApproval(c);
      c.spec.kubernetes.version = '1.35.2';
    });
    await d.withWorker('rerun', async () => {
      const handle = await start(other, 'rerun');
      const waiting = await waitForState(handle, 'waiting-decision');
      assert.equal(waiting.pendingDecision?.phase, 'preflight');
      assert.match(waiting.pendingDecision?.error ?? '', /runs Kubernetes 1\.35\.1 and the file asks for 1\.35\.2.*use kha upgrade/);
      await handle.executeUpdate(decisionUpdate, { args: [{ action: 'abort-leave' }] });
      await rejectsWorkflow(handle, /nodes left as they are/);
      const acts = scheduledActivities((await handle.fetchHistory()).events ?? []);
      // Nothing but preflight reached a host (the kubeconfig check runs on the worker's own machine).
      assert.deepEqual([...new Set(acts.map((a) => a.type).filter((t) => t !== 'checkKubeconfigTarget'))], ['preflightNode']);
    });
    assert.equal(await installedKubeadm('k8swn-01'), '1.35.1-1.1');
    // The host's packages script refuses as well: a member keeps its version whatever it is handed.
    const pkgs = renderPhase(other, 'k8swn-01', 'packages', { kubernetesVersion: 'v1.35.2', packageVersion: '1.35.2-1.1' }).scripts[0]!;
    const run = await d.lab.exec('k8swn-01', 'bash -s', { input: pkgs.content });
    assert.notEqual(run.code, 0, run.stdout);
    assert.match(run.stderr, /belongs to a cluster and runs kubelet 1\.35\.1-1\.1; installing 1\.35\.2-1\.1 would change it outside kubeadm upgrade: use kha upgrade/);
    assert.equal(await installedKubeadm('k8swn-01'), '1.35.1-1.1');
  });

  test('a join step that fails after the node joined (labels) is retried, on the next control-plane node, never reset', async () => {
    // Same cluster: k8swn-03 joins now; its labels fail once on every control-plane node.
    const c = d.cluster('rerun', (x) => {
      noApproval(x);
      x.spec.nodes.find((n) => n.name === 'k8swn-03')!.labels = { 'kha.dev/test': 'yes' };
    });
    const labelFails = { command: 'kubectl', argsMatch: 'label node k8swn-03', times: 1, exitCode: 1, stderr: 'error: the server was unable to return a response in the time allotted' };
    for (const h of ['k8scp-01', 'k8scp-02', 'k8scp-03']) d.lab.setFaults(h, [labelFails]);
    await d.withWorker('rerun', async () => {
      const handle = await start(c, 'rerun');
      const waiting = await waitForState(handle, 'waiting-decision');
      assert.equal(waiting.pendingDecision?.node, 'k8swn-03');
      assert.match(waiting.pendingDecision?.error ?? '', /^JoinedStepFailed: k8swn-03 joined, then: .*unable to return a response/);
      const r = row(waiting, 'worker-join', 'k8swn-03');
      assert.equal(r.compensations, 0);
      assert.equal(r.attempts, 3, JSON.stringify(r));
      assert.equal(await handle.executeUpdate(decisionUpdate, { args: [{ action: 'retry' }] }), 'retry k8swn-03');
      const result = await resultOrFail<DeployResult>(handle);
      assert.equal(result.nodesReady, 6);
      const acts = scheduledActivities((await handle.fetchHistory()).events ?? []);
      assert.deepEqual(acts.filter((a) => a.type === 'resetNode' || a.type === 'rebootNode'), []);
      // Each attempt went to the next control-plane node (each one's label call failed once); the operator's
      // retry started at the first again, where it worked.
      const runs = (h: string) => (JSON.parse(readFileSync(join(d.lab.sharedDir, 'faults', `${h}.counts.json`), 'utf8')) as { runs: number[] }).runs[0];
      assert.deepEqual(['k8scp-01', 'k8scp-02', 'k8scp-03'].map(runs), [2, 1, 1]);
    });
    assert.equal(model().cluster!.nodes.find((n) => n.name === 'k8swn-03')?.labels?.['kha.dev/test'], 'yes');
    d.lab.clearFaults();
  });

  test('a reset that fails in compensation waits for the operator while the others join; retry --all answers the batch', async () => {
    await d.freshLab();
    const cluster = d.cluster('batch', noApproval);
    const refusal = {
      command: 'kubeadm',
      argsMatch: '^join',
      untilReboot: true,
      exitCode: 1,
      stderr: 'error execution phase preflight: [preflight] Some fatal errors occurred:\n\t[ERROR Port-10250]: Port 10250 is in use',
    };
    const resetFails = { command: 'kubeadm', argsMatch: '^reset', times: 0, exitCode: 1, stderr: 'error: unable to reset: device or resource busy' };
    for (const h of ['k8swn-01', 'k8swn-02']) d.lab.setFaults(h, [refusal, resetFails]);
    await d.withWorker('batch', async () => {
      const handle = await start(cluster, 'batch');
      let s = await waitForState(handle, 'waiting-decision', 300_000);
      for (let i = 0; i < 600 && !(s.state === 'waiting-decision' && row(s, 'worker-join', 'k8swn-02').state === 'waiting' && row(s, 'worker-join', 'k8swn-01').state === 'waiting' && row(s, 'worker-join', 'k8swn-03').state === 'done'); i++) {
        await new Promise((res) => setTimeout(res, 300));
        s = await handle.query(statusQuery);
      }
      for (const n of ['k8swn-01', 'k8swn-02']) {
        const r = row(s, 'worker-join', n);
        assert.equal(r.state, 'waiting', JSON.stringify(r));
        assert.equal(r.compensations, 1);
        assert.match(r.lastError ?? '', /^compensation failed: .*unable to reset.*; the step had failed with: JoinPreflightFailed: /);
      }
      assert.equal(row(s, 'worker-join', 'k8swn-03').state, 'done', 'the other worker joined meanwhile');
      // One line for the batch, one command for all.
      const text = decisionText(s);
      assert.match(text[0]!, /^✖ k8swn-0[12], k8swn-0[12] \(2 nodes\) failed in phase worker-join after 1 attempt and 1 compensation: compensation failed/);
      assert.ok(text.includes('  fix the hosts, then retry all 2: kha retry batch --all'), text.join('\n'));
      const named = await cli('batch', ['retry', 'batch']);
      assert.equal(named.code, 1);
      assert.match(named.stderr, /rejected: decisions are pending for k8swn-0[12], k8swn-0[12]: name the node/);
      d.lab.clearFaults();
      const all = await cli('batch', ['retry', 'batch', '--all', '--detach']);
      assert.equal(all.code, 0, all.stdout + all.stderr);
      assert.match(all.stdout, /^retry: retry 2 nodes: k8swn-0[12], k8swn-0[12]$/m);
      const result = await resultOrFail<DeployResult>(handle);
      assert.equal(result.nodesReady, 6);
      assert.deepEqual(result.skippedNodes, []);
    });
  });

  test('an early approval is ignored; a link down 90 s in host prep and a black-holed first control-plane node need no operator', async () => {
    await d.freshLab();
    // A connect timeout longer than the heartbeat timeout (20 s): only beats while connecting keep the activity.
    const cluster = d.cluster('net', (c) => {
      c.spec.ssh.connectTimeoutSeconds = 25;
    });
    // Host prep on k8swn-01 takes long enough to cut its link while it runs.
    writeHostFaults(d.lab.sharedDir, 'k8swn-01', { latencyByCommand: { modprobe: 1500 } });
    await d.withWorker('net', async () => {
      // The default heartbeat timeout (20 s): connecting to a dead host takes 15 s of it.
      const handle = await start(cluster, 'net', {});
      await handle.signal(approveWorkersSignal, 'too early');
      for (let i = 0; ; i++) {
        const s = await handle.query(statusQuery);
        if (row(s, 'host-prep', 'k8swn-01').state === 'running') break;
        assert.ok(i < 1000, 'host prep never ran on k8swn-01');
        await new Promise((res) => setTimeout(res, 200));
      }
      await d.lab.setUnreachable('k8swn-01', 90_000);
      let gate = await waitForState(handle, 'waiting-approval', 600_000);
      // Each node runs its own pipeline: the gate may wait before k8swn-01 is through its host prep.
      while (row(gate, 'host-prep', 'k8swn-01').state !== 'done' && gate.state === 'waiting-approval') {
        await new Promise((res) => setTimeout(res, 500));
        gate = await handle.query(statusQuery);
      }
      assert.match((gate.notices ?? []).join('\n'), /approval by too early ignored at .*: it came before the gate \(deployment running/);
      assert.equal(gate.pendingDecision, undefined);
      const acts = scheduledActivities((await handle.fetchHistory()).events ?? []);
      assert.ok(acts.filter((a) => a.type === 'hostPrep' && nodeOf(a.input) === 'k8swn-01').length >= 2, 'host prep ran again within the time budget');

      // Now the first control-plane node goes dark; the worker joins mint their credentials on the next one.
      // A fixed neighbour entry makes it a black hole (connects time out) instead of "host unreachable" at once.
      const cp1 = d.lab.host('k8scp-01').address;
      const mac = (await d.lab.exec('k8scp-01', 'cat /sys/class/net/eth0/address')).stdout.trim();
      const dev = /\bdev (\S+)/.exec(execFileSync('ip', ['route', 'get', cp1]).toString())![1]!;
      execFileSync('ip', ['neigh', 'replace', cp1, 'lladdr', mac, 'dev', dev, 'nud', 'permanent']);
      blackHoles.push({ address: cp1, dev });
      await d.lab.setUnreachable('k8scp-01', 75_000);
      closeIdleSessions();
      assert.match(await handle.executeUpdate(approveWorkersUpdate, { args: ['test'] }), /approved/);
      const result = await resultOrFail<DeployResult>(handle);
      assert.equal(result.nodesReady, 6);
      const events = (await handle.fetchHistory()).events ?? [];
      const joins = new Map<string, string>();
      for (const e of events) {
        const a = e.activityTaskScheduledEventAttributes;
        if (a?.activityType?.name === 'joinWorker') joins.set(String(e.eventId), nodeOf(Buffer.from(a.input?.payloads?.[0]?.data ?? []).toString('utf8')));
      }
      assert.equal(joins.size, 3, 'one joinWorker per worker, none run again');
      const started = events.filter((e) => e.activityTaskStartedEventAttributes && joins.has(String(e.activityTaskStartedEventAttributes.scheduledEventId)));
      assert.deepEqual(started.map((e) => e.activityTaskStartedEventAttributes!.attempt), [1, 1, 1], 'no join timed out and was retried');
    });
  });

  test('the first init after a manual kubeadm reset runs again; deploy and reset never run side by side', async () => {
    await d.freshLab();
    const single = d.cluster('once', (c) => {
      c.spec.nodes = c.spec.nodes.filter((n) => n.name === 'k8scp-01');
    });
    await d.withWorker('once', async () => {
      assert.equal((await resultOrFail<DeployResult>(await start(single, 'once'))).nodesReady, 1);
      // The operator resets the node by hand; kha's record of the successful init is still on disk.
      const r = await d.lab.exec('k8scp-01', 'kubeadm reset -f >/dev/null 2>&1; cat /var/lib/kha/once/kubeadm-init.rc; ls /etc/kubernetes/admin.conf 2>&1 || true');
      assert.match(r.stdout, /^0\n.*No such file/);
      const handle = await start(single, 'once');
      assert.equal((await resultOrFail<DeployResult>(handle)).nodesReady, 1);
      const init = row(await handle.query(statusQuery), 'kubeadm-init', 'k8scp-01');
      assert.equal(init.note, 'cluster initialized', JSON.stringify(init));
      assert.equal(model().cluster!.etcd.filter((e) => e.running).length, 1);

      // A deployment that runs (stuck in host prep) makes a reset refuse, before touching a node.
      d.lab.setFaults('k8scp-01', [{ command: 'modprobe', hang: true, times: 0 }]);
      const dep = await start(single, 'once');
      for (let i = 0; (await dep.query(statusQuery)).currentPhase !== 'host-prep'; i++) {
        assert.ok(i < 1000);
        await new Promise((res) => setTimeout(res, 200));
      }
      const reset = await startReset(single, 'once');
      await rejectsWorkflow(reset, /the deployment of once is running .*a reset does not start beside it/);
      assert.deepEqual(scheduledActivities((await reset.fetchHistory()).events ?? []), []);
      await dep.executeUpdate(decisionUpdate, { args: [{ action: 'abort-leave' }] });
      await rejectsWorkflow(dep, /nodes left as they are/);

      // A reset that runs (stuck) makes a deployment refuse; the CLI says so before starting one.
      d.lab.setFaults('k8scp-01', [{ command: 'kubeadm', argsMatch: '^reset', hang: true, times: 0 }]);
      const running = await startReset(single, 'once');
      for (let i = 0; !scheduledActivities((await running.fetchHistory()).events ?? []).some((x) => x.type === 'resetNode'); i++) {
        assert.ok(i < 1000, 'the reset never started');
        await new Promise((res) => setTimeout(res, 200));
      }
      const refused = await start(single, 'once');
      await rejectsWorkflow(refused, /a reset of once is running .*a deployment does not start beside it/);
      assert.deepEqual(scheduledActivities((await refused.fetchHistory()).events ?? []), []);
      const cliDeploy = await cli('once', ['deploy', join(d.dir, 'once.yaml'), '--detach']);
      assert.equal(cliDeploy.code, 1, cliDeploy.stdout + cliDeploy.stderr);
      assert.match(cliDeploy.stderr, /a reset of once is running/);
      await running.terminate('test done');

      // Started at the same moment: at most one of them runs.
      d.lab.setFaults('k8scp-01', [
        { command: 'modprobe', hang: true, times: 0 },
        { command: 'kubeadm', argsMatch: '^reset', hang: true, times: 0 },
      ]);
      const [a, b] = await Promise.all([start(single, 'once'), startReset(single, 'once')]);
      const outcomes = await Promise.all(
        [a, b].map(async (h) => {
          for (let i = 0; i < 300; i++) {
            const desc = await h.describe();
            if (desc.status.name !== 'RUNNING') return 'refused';
            const acts = scheduledActivities((await h.fetchHistory()).events ?? []);
            if (acts.length) return 'runs';
            await new Promise((res) => setTimeout(res, 200));
          }
          return 'undecided';
        }),
      );
      assert.ok(!outcomes.includes('undecided'), outcomes.join());
      assert.ok(outcomes.filter((o) => o === 'runs').length <= 1, outcomes.join());
      for (const h of [a, b]) if ((await h.describe()).status.name === 'RUNNING') await h.terminate('test done');
      d.lab.clearFaults();
    });
  });
});
