// The rendered scripts, unchanged, on lab hosts (simulated Kubernetes tooling, real bash, real
// files): every phase of the seed topology in deployment order, twice. The second round must
// change no file; verify must pass; reset must remove what kubeadm reset leaves. Needs root.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab } from '../src/lab/lab';
import { loadClusterText } from '../src/spec/load';
import type { ClusterSpec } from '../src/spec/types';
import { deploymentStages, joinEnv, parseFacts, parseJoinCredentials, planFacts, renderPhase, resolveKubernetesVersion } from '../src/render';
import type { AnyPhaseName, RenderFacts } from '../src/render/types';

let lab: Lab;
let c: ClusterSpec;
let facts: RenderFacts;

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
  wrote: string[];
}

async function run(host: string, node: string, phase: AnyPhaseName, name: string, env: Record<string, string> = {}): Promise<Ran> {
  const s = renderPhase(c, node, phase, facts).scripts.find((x) => x.name === name);
  assert.ok(s, `${phase}/${name}`);
  // Secrets go in through stdin-fed exports here; the executor passes them over the SSH channel.
  const exports = Object.entries(env).map(([k, v]) => `export ${k}='${v}'\n`).join('');
  const r = await lab.exec(host, 'bash -s', { input: `${exports}${s.content}`, timeoutMs: 600_000 });
  const wrote = [...r.stderr.matchAll(/^kha: wrote (.*)$/gm)].map((m) => m[1]!);
  return { ...r, wrote };
}

async function ok(host: string, node: string, phase: AnyPhaseName, name: string, env: Record<string, string> = {}): Promise<Ran> {
  const r = await run(host, node, phase, name, env);
  assert.equal(r.code, 0, `${phase}/${name} on ${host} for ${node}: exit ${r.code}\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-2000)}`);
  return r;
}

/** One deployment in stage order; returns every file each step reported writing. */
async function deploy(): Promise<string[]> {
  const wrote: string[] = [];
  const first = c.spec.nodes[0]!.name;
  for (const stage of deploymentStages(c)) {
    if (stage.mode === 'gate') continue;
    const one = async (node: string) => {
      for (const st of stage.steps) {
        const host = st.runsOn === 'control-plane' ? first : node;
        let env: Record<string, string> = {};
        if (st.script === 'join') {
          const m = await ok(first, node, st.phase, 'mint-credentials');
          env = joinEnv(parseJoinCredentials(m.stdout));
        }
        if (st.script === 'mint-credentials') continue;
        const r = await ok(host, node, st.phase, st.script, env);
        wrote.push(...r.wrote.map((p) => `${node}:${p}`));
      }
    };
    if (stage.mode === 'parallel') await Promise.all(stage.nodes.map(one));
    else for (const n of stage.nodes) await one(n);
  }
  return wrote;
}

before(async () => {
  assert.equal(process.getuid?.(), 0, 'the lab needs root');
  lab = await Lab.up({ dir: join(mkdtempSync('/var/tmp/kha-render-lab-'), 'lab'), controlPlanes: 3, workers: 2, rebootDelayMs: 300 });
  const loaded = loadClusterText(lab.specYaml({ name: 'renderlab' }), 'lab.yaml');
  assert.ok(loaded.cluster, JSON.stringify(loaded.errors));
  c = loaded.cluster;
  facts = planFacts(c).facts;
});

after(async () => {
  await lab?.down();
});

test('preflight resolves the minor from the repository the lab serves', async () => {
  const first = c.spec.nodes[0]!.name;
  const r = await ok(first, first, 'preflight', 'preflight', { KHA_LIST_VERSIONS: '1' });
  const f = parseFacts(r.stdout);
  assert.equal(f.hostname, first);
  assert.deepEqual(f.criSockets, []);
  assert.ok(f.interfaces.some((i) => i.name === 'eth0'));
  assert.equal(f.availableVersions?.error, '');
  facts = resolveKubernetesVersion(c.spec.kubernetes.version, f.availableVersions!.versions);
  assert.match(facts.kubernetesVersion, /^v1\.35\.\d+$/);
});

test('every phase in order deploys the seed topology; verify reports it healthy', async () => {
  const wrote = await deploy();
  assert.ok(wrote.includes('k8scp-01:/etc/kubernetes/kha/kubeadm-init.yaml'));
  assert.ok(wrote.includes('k8scp-02:/etc/kubernetes/manifests/kube-vip.yaml'));
  const first = c.spec.nodes[0]!.name;
  const log = join(lab.sharedDir, 'calls', `${first}.log`);
  const before = readFileSync(log, 'utf8').split('\n').length;
  const v = await ok(first, first, 'verify', 'cluster');
  // One kubectl call for every node's Ready status (not one or two per node), whatever the node count.
  const verifyCalls = readFileSync(log, 'utf8').split('\n').slice(before - 1).filter((l) => / kubectl( |$)/.test(l));
  assert.equal(verifyCalls.length, 1, verifyCalls.join('\n'));
  const report = JSON.parse(/^KHA-VERIFY (.*)$/m.exec(v.stdout)![1]!) as { nodes: Array<{ ready: boolean }>; etcd: { members: number; healthy: boolean; learners: number }; vipAnswers: boolean; kubeProxyMode: string };
  assert.equal(report.nodes.length, 5);
  assert.ok(report.nodes.every((n) => n.ready));
  assert.deepEqual(report.etcd, { members: 3, healthy: true, learners: 0 });
  assert.equal(report.vipAnswers, true);
  assert.equal(report.kubeProxyMode, 'ipvs');
  // The first node's kube-vip was switched back to admin.conf.
  assert.match(await lab.readFile(first, '/etc/kubernetes/manifests/kube-vip.yaml'), /path: \/etc\/kubernetes\/admin\.conf/);
});

test('a second run of every phase changes no file', async () => {
  assert.deepEqual(await deploy(), []);
});

test('reset and remove-node take a worker and a control-plane node out and clean what kubeadm reset leaves', async () => {
  const first = c.spec.nodes[0]!.name;
  for (const node of ['k8swn-02', 'k8scp-03']) {
    await ok(node, node, 'reset', 'reset');
    await ok(first, node, 'reset', 'remove-node');
    const left = await lab.exec(node, 'ls -A /etc/cni/net.d; ls -d /var/lib/cni 2>/dev/null; ls /etc/kubernetes/manifests 2>/dev/null; true');
    assert.equal(left.stdout, '', `${node} leftovers`);
    // A second reset is harmless.
    await ok(node, node, 'reset', 'reset');
  }
  const nodes = await lab.exec(first, 'kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes -o name');
  assert.doesNotMatch(nodes.stdout, /k8swn-02|k8scp-03/);
  const members = await lab.exec(first, 'etcdctl member list -w simple 2>/dev/null || crictl exec "$(crictl ps --name etcd -q | head -n 1)" etcdctl member list -w simple');
  assert.doesNotMatch(members.stdout, /k8scp-03/);
  assert.match(members.stdout, /k8scp-02/);
});
