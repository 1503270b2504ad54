// The fast tier for the nodes day-2 commands use when CLUSTER is a name: the real CLI against the test dev
// server (TEMPORAL_ADDRESS), the real workflows with mock activities (no lab). After kha deploy (3+1), kha apply
// (two control-plane nodes added) and kha remove of the first control-plane node, kha certs checks exactly the
// control-plane nodes that are members, kha backup starts from the next one, the removed node is no node of
// the cluster any more, a refused removal changes nothing, a schedule made before the removal gets the nodes
// left, and one made after keeps them.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { mockCluster, mockClusterFile, startMockEnv, type MockHosts } from './helpers/mock-hosts';
import { failure } from './helpers/workflow';
import { certsWorkflowId, deployWorkflowId } from '../src/workflows/definitions';
import type { CertsResult } from '../src/workflows/certs-cluster';
import { cliEnv, kha } from './cli-run';
import type { ClusterSpec } from '../src/spec/types';

const QUEUE = 'cli-membership';
const NAME = 'mem';
let mock: Awaited<ReturnType<typeof startMockEnv>> | undefined;
let env: TestWorkflowEnvironment;
let hosts: MockHosts;
let cli: NodeJS.ProcessEnv;
const dir = mkdtempSync(join(tmpdir(), 'kha-membership-'));

/** The file kha deployed (3+1) and the one kha apply converges to: the same nodes plus cp-4 and cp-5. */
function files(): { deployed: string; grown: string } {
  for (const d of ['deployed', 'grown']) mkdirSync(join(dir, d), { recursive: true });
  const deployed = mockClusterFile(join(dir, 'deployed'), NAME, 3, 1);
  const grown = mockClusterFile(join(dir, 'grown'), NAME, 3, 1, (y) =>
    y.replace('    - { name: w-1,', '    - { name: cp-4, address: 198.19.0.20, role: control-plane }\n    - { name: cp-5, address: 198.19.0.21, role: control-plane }\n    - { name: w-1,'),
  );
  return { deployed, grown };
}

/** The nodes in the action of the cluster's schedule. */
async function scheduledNodes(action: string): Promise<string[]> {
  const input = (await env.client.schedule.getHandle(`kha-schedule-${action}-${NAME}`).describe()).action.args?.[0] as { cluster: ClusterSpec };
  return input.cluster.spec.nodes.map((n) => n.name);
}

/** The control-plane nodes kha certs NAME checked, from its table. */
async function certsNodes(): Promise<string[]> {
  const r = await kha(['certs', NAME], cli);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const rows = r.stdout.split('\n').filter((l) => /^cp-\d+\s+apiserver\s/.test(l));
  return rows.map((l) => l.split(/\s+/)[0]!);
}

describe('day-2 commands by cluster name use the nodes kha recorded after deploy, apply and remove', () => {
  before(async () => {
    mock = await startMockEnv(QUEUE);
    ({ env, hosts } = mock);
    cli = cliEnv({ TEMPORAL_ADDRESS: env.address, TEMPORAL_NAMESPACE: env.namespace ?? 'default', KHA_TASK_QUEUE: QUEUE, XDG_STATE_HOME: join(dir, 'state') });
  });
  after(async () => {
    await mock?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('deploy, apply two control-plane nodes, remove the first: certs, backup, remove and schedule follow', async () => {
    const f = files();
    const dep = await kha(['deploy', f.deployed, '--auto-approve'], cli);
    assert.equal(dep.code, 0, dep.stdout + dep.stderr);
    assert.deepEqual(await certsNodes(), ['cp-1', 'cp-2', 'cp-3']);

    for (const n of ['cp-1', 'cp-2', 'cp-3', 'w-1']) hosts.members.add(n);
    const ap = await kha(['apply', f.grown, '--auto-approve'], cli);
    assert.equal(ap.code, 0, ap.stdout + ap.stderr);
    assert.match(ap.stdout, /^✔ mem applied: joined cp-4, cp-5;/m);
    // The nodes kha apply joined are checked too (the deployment's file does not have them).
    assert.deepEqual(await certsNodes(), ['cp-1', 'cp-2', 'cp-3', 'cp-4', 'cp-5']);
    const certs = await kha(['certs', NAME], cli);
    assert.match(certs.stdout, /^mem: the nodes kha recorded after kha apply \(kha-apply-mem, completed \S+\): control-plane cp-1, cp-2, cp-3, cp-4, cp-5; workers w-1$/m);

    // A schedule made before the removal: kha remove gives it the nodes left.
    const sc = await kha(['schedule', 'certs-check', NAME, '--every', '1d'], cli);
    assert.equal(sc.code, 0, sc.stdout + sc.stderr);
    assert.deepEqual(await scheduledNodes('certs-check'), ['cp-1', 'cp-2', 'cp-3', 'cp-4', 'cp-5', 'w-1']);
    const rm = await kha(['remove', NAME, 'cp-1', '--yes'], cli);
    assert.equal(rm.code, 0, rm.stdout + rm.stderr);
    assert.match(rm.stdout, /^✔ cp-1 removed from mem: etcd member a1 removed \(leadership moved to cp-2\), Node deleted, host reset$/m);
    assert.match(rm.stdout, /^updated schedule kha-schedule-certs-check-mem: its runs use the nodes kha recorded now \(cp-2, cp-3, cp-4, cp-5, w-1\)$/m);
    assert.deepEqual(await scheduledNodes('certs-check'), ['cp-2', 'cp-3', 'cp-4', 'cp-5', 'w-1']);
    const sd = await env.client.schedule.getHandle(`kha-schedule-certs-check-${NAME}`).describe();
    assert.equal(sd.spec.intervals?.[0]?.every, 86_400_000);
    assert.match(sd.action.staticSummary ?? '', /^scheduled certs mem every 1d: Kubernetes 1\.35, 4 control-plane \+ 1 worker node/);
    // Four control-plane nodes left: an even count kha validate refuses in a file, but what runs now.
    assert.deepEqual(await certsNodes(), ['cp-2', 'cp-3', 'cp-4', 'cp-5']);
    const b = await kha(['backup', NAME], cli);
    assert.equal(b.code, 0, b.stdout + b.stderr);
    assert.match(b.stdout, /^mem: the nodes kha recorded after the removal of cp-1 \(kha-remove-mem, completed \S+\): control-plane cp-2, cp-3, cp-4, cp-5; workers w-1$/m);
    assert.match(b.stdout, /^✔ mem backed up from cp-2: /m);
    const again = await kha(['remove', NAME, 'cp-1', '--yes'], cli);
    assert.equal(again.code, 2, again.stdout + again.stderr);
    assert.match(again.stderr, /cp-1 is not a node of mem \(nodes: cp-2, cp-3, cp-4, cp-5, w-1\); nothing was done/);

    // A refused removal is no record: the completed one behind it still is (found in the server's list).
    hosts.etcd.unhealthy.add('cp-4');
    hosts.etcd.unhealthy.add('cp-5');
    const refused = await kha(['remove', NAME, 'cp-2', '--yes'], cli);
    assert.equal(refused.code, 1, refused.stdout + refused.stderr);
    assert.match(refused.stderr, /removal of cp-2 from mem refused: etcd has no quorum: 2 of 4 members healthy/);
    hosts.etcd.unhealthy.clear();
    assert.deepEqual(await certsNodes(), ['cp-2', 'cp-3', 'cp-4', 'cp-5']);

    // A schedule made now keeps these nodes in its action.
    const s = await kha(['schedule', 'backup', NAME, '--every', '1d'], cli);
    assert.equal(s.code, 0, s.stdout + s.stderr);
    assert.deepEqual(await scheduledNodes('backup'), ['cp-2', 'cp-3', 'cp-4', 'cp-5', 'w-1']);
  });

  test('kha deploy --again with a file makes that file the record again', async () => {
    const f = files();
    const dep = await kha(['deploy', f.grown, '--auto-approve', '--again'], cli);
    assert.equal(dep.code, 0, dep.stdout + dep.stderr);
    assert.deepEqual(await certsNodes(), ['cp-1', 'cp-2', 'cp-3', 'cp-4', 'cp-5']);
  });

  test('an even number of control-plane nodes, as a removal leaves, is taken by a day-2 workflow but refused by deployCluster', async () => {
    const c = mockCluster('even', 3, 0);
    c.spec.nodes.push({ ...c.spec.nodes[2]!, name: 'cp-4', address: '198.19.0.30' });
    const dep = await env.client.workflow.start('deployCluster', { taskQueue: QUEUE, workflowId: deployWorkflowId('even'), args: [{ cluster: c }] });
    const f = await failure(dep);
    assert.equal(f.type, 'InvalidSpec');
    assert.match(f.message, /spec\.nodes: 4 control-plane nodes: use an odd number/);
    const certs = await env.client.workflow.start('certsCluster', { taskQueue: QUEUE, workflowId: certsWorkflowId('even'), args: [{ cluster: c }] });
    const r = (await certs.result()) as CertsResult;
    assert.deepEqual(r.nodes.map((n) => n.node), ['cp-1', 'cp-2', 'cp-3', 'cp-4']);
  });
});
