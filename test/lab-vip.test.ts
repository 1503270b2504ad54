// VIP sanity in preflight, on lab hosts over real sshd with a real Temporal server: a VIP outside the
// control-plane interface's subnet, its network or broadcast address, or an address another machine
// answers ARP for stops the deployment in preflight, before any host is changed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { startDeployEnv, type DeployEnv } from './helpers/deploy';
import { deployWorkflowId, statusQuery } from '../src/workflows/definitions';
import { waitForState } from './helpers/workflow';
import { subnet } from './helpers/subnet';

let d: DeployEnv;
const CPS = ['k8scp-01', 'k8scp-02', 'k8scp-03'];

/** Starts a deployment of the lab with the given VIP; fn sees its handle; the deployment is ended after. */
async function deployWithVip(name: string, vip: string, fn: (h: WorkflowHandle) => Promise<void>): Promise<void> {
  const cluster = d.cluster(name, (c) => {
    c.spec.controlPlaneEndpoint.vip = vip;
  });
  await d.withWorker(name, async () => {
    const handle = await d.env.client.workflow.start('deployCluster', {
      taskQueue: name,
      workflowId: deployWorkflowId(cluster.name),
      args: [{ cluster, options: { heartbeatTimeoutSeconds: 15 } }],
    });
    try {
      await fn(handle);
    } finally {
      await handle.terminate('test done').catch(() => undefined);
    }
  });
}

/** The preflight error the deployment waits on, after checking that no node got past preflight. */
async function preflightRefusal(handle: WorkflowHandle): Promise<string> {
  const st = await waitForState(handle, 'waiting-decision', 120_000);
  assert.equal(st.pendingDecision?.phase, 'preflight', JSON.stringify(st.pendingDecision));
  assert.equal(st.phases.find((p) => p.phase === 'host-prep')?.state, 'pending');
  for (const h of d.lab.nodes) {
    const r = await d.lab.exec(h, 'test -e /etc/modules-load.d/k8s.conf && echo changed || echo untouched');
    assert.equal(r.stdout.trim(), 'untouched', `${h.name} was changed`);
  }
  return st.pendingDecision!.error;
}

describe('preflight refuses a VIP that cannot work (3+1 lab)', () => {
  before(async () => {
    d = await startDeployEnv({ controlPlanes: 3, workers: 1, subnetIndex: subnet(80) });
  });
  after(async () => {
    await d?.close();
  });

  test('kha validate refuses a VIP that is no host address anywhere (this network, multicast, broadcast, link-local)', () => {
    for (const [vip, what] of [['0.1.2.3', 'in 0.0.0.0/8 \\("this network"\\)'], ['224.0.0.18', 'a multicast address'], ['255.255.255.255', 'a reserved or broadcast address'], ['169.254.1.1', 'a link-local address']] as const) {
      const file = join(d.dir, `vip-${vip}.yaml`);
      writeFileSync(file, d.lab.specYaml({ name: 'vip' }).replace(`vip: ${d.lab.vip}`, `vip: ${vip}`));
      const r = spawnSync(process.execPath, [join(__dirname, '../src/cli/main.js'), 'validate', file], { encoding: 'utf8' });
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`^${file}:\\d+:\\d+: spec\\.controlPlaneEndpoint\\.vip: the VIP ${vip.replace(/\./g, '\\.')} is ${what}, not a host address other nodes can reach`, 'm'));
    }
  });

  test('a VIP outside the subnet of the control-plane interface is refused on every control-plane node', async () => {
    const prefix = d.lab.gateway.replace(/\.1$/, '');
    await deployWithVip('vip-outside', `198.18.${subnet(81)}.10`, async (handle) => {
      const error = await preflightRefusal(handle);
      for (const cp of CPS) {
        assert.ok(error.includes(`${cp}: the VIP 198.18.${subnet(81)}.10 is outside the subnet of eth0 (${prefix}.0/24)`), error);
      }
      assert.doesNotMatch(error, /k8swn-01/);
    });
  });

  test("the subnet's network and broadcast addresses are refused as the VIP", async () => {
    const prefix = d.lab.gateway.replace(/\.1$/, '');
    for (const [octet, what] of [['255', 'broadcast'], ['0', 'network']] as const) {
      await deployWithVip(`vip-${what}`, `${prefix}.${octet}`, async (handle) => {
        const error = await preflightRefusal(handle);
        assert.ok(error.includes(`k8scp-01: the VIP ${prefix}.${octet} is the ${what} address of ${prefix}.0/24 on eth0`), error);
      });
    }
  });

  test('an address equal to the VIP on another machine answers ARP and is refused; once it is gone preflight passes', async () => {
    const other = d.lab.host('k8swn-01');
    const mac = (await d.lab.exec(other, 'cat /sys/class/net/eth0/address')).stdout.trim();
    assert.match(mac, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    const add = await d.lab.exec(other, `ip addr add ${d.lab.vip}/32 dev eth0`);
    assert.equal(add.code, 0, add.stderr);
    try {
      await deployWithVip('vip-taken', d.lab.vip, async (handle) => {
        const error = await preflightRefusal(handle);
        for (const cp of CPS) assert.ok(error.includes(`${cp}: the VIP answers ARP from ${mac} but no cluster exists here`), error);
      });
    } finally {
      await d.lab.exec(other, `ip addr del ${d.lab.vip}/32 dev eth0`);
    }
    // The control planes' neighbour tables still hold the old answer: only a fresh one may count.
    const cached = await d.lab.exec('k8scp-01', `ip -4 neigh show to ${d.lab.vip} dev eth0`);
    assert.match(cached.stdout, new RegExp(`lladdr ${mac}`));
    await deployWithVip('vip-free', d.lab.vip, async (handle) => {
      const giveUp = Date.now() + 120_000; // a hang guard, not a timing assertion
      for (;;) {
        assert.ok(Date.now() < giveUp, 'preflight did not finish');
        const st = await handle.query(statusQuery);
        assert.notEqual(st.state, 'waiting-decision', JSON.stringify(st.pendingDecision));
        if (st.phases.find((p) => p.phase === 'preflight')?.state === 'done') break;
        await new Promise((r) => setTimeout(r, 300));
      }
    });
  });
});
