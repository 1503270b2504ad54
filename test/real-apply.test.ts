// kha apply on the lab's real tier (real kubeadm, kubelet, etcd, API server, containerd): a 1+1 cluster deployed
// with kha deploy, then kha apply of a file with one more worker: the discovery reads the real cluster (version,
// Nodes, etcd member by hex ID, the kube-vip Lease holder), the run waits for kha approve, the worker joins, and
// the two nodes that ran before keep their boot, their files, their kubelet process and their dpkg log.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { Lab } from '../src/lab/lab';
import { findRealBinaries, kubeBinDir } from '../src/lab/real/tier';
import { cliEnv, freePort, kha } from './cli-run';
import { subnet } from './helpers/subnet';

const SUBNET = subnet(111);
const LONG = 1_500_000;
const MEMBERS = ['k8scp-01', 'k8swn-01'];

describe('kha apply on real Kubernetes components (lab real tier, 1+1 grown to 1+2)', () => {
  const dir = join(tmpdir(), `kha-real-apply-${SUBNET}`);
  const state = join(dir, 'state');
  const kubeconfig = join(dir, 'admin.conf');
  const tier = findRealBinaries();
  let lab: Lab;
  let env: NodeJS.ProcessEnv;
  let kubectlBin = '';

  const fileWith = (tag: string, nodes: string[], version: string) => {
    const doc = YAML.parse(lab.specYaml({ name: 'grow', kubernetesVersion: version })) as { spec: { nodes: Array<{ name: string }> } };
    doc.spec.nodes = doc.spec.nodes.filter((n) => nodes.includes(n.name));
    const f = join(dir, `grow-${tag}.yaml`);
    writeFileSync(f, YAML.stringify(doc));
    return f;
  };
  /** Boot id, Kubernetes/runtime/kernel file hashes, the kubelet's pid and the dpkg log's size of a host. */
  const snapshot = async (h: string) => {
    const r = await lab.exec(h, 'cat /proc/sys/kernel/random/boot_id; find /etc/kubernetes /etc/containerd /etc/modules-load.d /etc/sysctl.d -type f -exec sha256sum {} + 2>/dev/null | sort; pgrep -x kubelet; wc -c < /var/log/dpkg.log');
    return r.stdout;
  };

  before(async () => {
    await Lab.downDir(join(dir, 'lab'));
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    lab = await Lab.up({ dir: join(dir, 'lab'), controlPlanes: 1, workers: 2, subnetIndex: SUBNET, rebootDelayMs: 500, kube: 'real' });
    env = cliEnv({ XDG_STATE_HOME: state, KHA_SERVER_PORT: String(await freePort()), KHA_UI_PORT: String(await freePort()) });
  });
  after(async () => {
    await kha(['server', '--stop'], env).catch(() => undefined);
    await lab?.down();
    rmSync(dir, { recursive: true, force: true });
  });

  it('deploys 1+1, then kha apply adds k8swn-02 after kha approve; the members are untouched', async () => {
    const version = lab.realKubeVersions().at(-1)!;
    kubectlBin = join(kubeBinDir(tier, version), 'kubectl');
    const minor = version.split('.').slice(0, 2).join('.');
    const dep = await kha(['deploy', fileWith('1-1', MEMBERS, minor), '--auto-approve', '--kubeconfig', kubeconfig], env, LONG);
    assert.equal(dep.code, 0, dep.stdout + dep.stderr);
    const before = new Map(await Promise.all(MEMBERS.map(async (h) => [h, await snapshot(h)] as const)));

    const asked = await kha(['apply', fileWith('1-2', [...MEMBERS, 'k8swn-02'], minor)], env, LONG);
    assert.equal(asked.code, 10, asked.stdout + asked.stderr);
    assert.match(asked.stdout, new RegExp(`^note: apply: grow runs Kubernetes v${version.replace(/\./g, '\\.')} on 2 node\\(s\\): 1 control-plane, 1 worker; etcd 1 member\\(s\\), 1 healthy; VIP ${lab.vip.replace(/\./g, '\\.')} held by k8scp-01$`, 'm'));
    assert.match(asked.stdout, /^note: apply: \+ k8swn-02 \(worker, [0-9.]+\): joins once the control plane is complete, in parallel$/m);
    assert.match(asked.stdout, /^⏸ grow waits for approval of the changes above before it joins the new nodes\./m);

    const approved = await kha(['approve', 'grow'], env, LONG);
    assert.equal(approved.code, 0, approved.stdout + approved.stderr);
    assert.match(approved.stdout, new RegExp(`^✔ grow applied: joined k8swn-02; Kubernetes v${version.replace(/\./g, '\\.')}, 3 nodes Ready, 1 etcd members$`, 'm'));

    // The real API server lists the new worker Ready at the same kubelet version.
    const r = spawnSync(kubectlBin, ['--kubeconfig', kubeconfig, '--server', `https://${lab.vip}:6443`, '--request-timeout=10s', 'get', 'nodes', '-o', 'jsonpath={range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Ready")].status} {.status.nodeInfo.kubeletVersion}{"\\n"}{end}'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n').sort(), ['k8scp-01', 'k8swn-01', 'k8swn-02'].map((n) => `${n} True v${version}`));
    for (const h of MEMBERS) assert.equal(await snapshot(h), before.get(h), `${h}: boot, files, kubelet or dpkg log changed`);
  });
});
