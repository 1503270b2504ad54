// kha upgrade on the lab's real tier: a 3+1 cluster deployed at the older of the two minors the tier builds, then
// `kha upgrade FILE` to the newer one with real kubeadm upgrade plan/apply/node, kubelet restarts and drains. The
// second control-plane node's `kubeadm upgrade node` fails once (a wrapper in front of the real kubeadm): the run
// waits for the operator; `kha retry` resumes at that step, and its worker is killed (SIGKILL) while the real
// `kubeadm upgrade node` runs; `kha upgrade FILE` again attaches with a new worker and finishes. The first node
// ran `kubeadm upgrade apply` once; every node ends at the one new version, a snapshot was taken first.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab } from '../src/lab/lab';
import { findRealBinaries, kubeBinDir } from '../src/lab/real/tier';
import { cliEnv, freePort, kha, KHA_MAIN } from './cli-run';
import { subnet } from './helpers/subnet';

const SUBNET = subnet(115);
const LONG = 1_800_000;
const CONTROL_PLANES = ['k8scp-01', 'k8scp-02', 'k8scp-03'];
const NODES = [...CONTROL_PLANES, 'k8swn-01'];
const minorOf = (v: string) => v.split('.').slice(0, 2).join('.');

/** In front of the real kubeadm: logs every call; `upgrade node` fails once while /etc/kha-test-fail exists. */
const WRAPPER = `#!/bin/sh
echo "$*" >> /var/log/kha-test-kubeadm.log
if [ "$1 $2" = "upgrade node" ] && [ -e /etc/kha-test-fail ]; then
  rm -f /etc/kha-test-fail
  echo "error: injected failure of kubeadm upgrade node" >&2
  exit 1
fi
exec /usr/bin/kubeadm "$@"
`;

describe('kha upgrade on real Kubernetes components (lab real tier, 3+1, one minor)', () => {
  const dir = join(tmpdir(), `kha-real-upgrade-${SUBNET}`);
  const state = join(dir, 'state');
  const kubeconfig = join(dir, 'admin.conf');
  const tier = findRealBinaries();
  let lab: Lab;
  let env: NodeJS.ProcessEnv;
  const timings: Record<string, number> = {};

  const file = (tag: string, version: string) => {
    const f = join(dir, `up-${tag}.yaml`);
    writeFileSync(f, lab.specYaml({ name: 'up', kubernetesVersion: version }));
    return f;
  };
  const calls = async (h: string) => (await lab.exec(h, 'cat /var/log/kha-test-kubeadm.log 2>/dev/null || true')).stdout.split('\n').filter(Boolean);

  before(async () => {
    await Lab.downDir(join(dir, 'lab'));
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    lab = await Lab.up({ dir: join(dir, 'lab'), controlPlanes: 3, workers: 1, subnetIndex: SUBNET, rebootDelayMs: 500, kube: 'real' });
    env = cliEnv({ XDG_STATE_HOME: state, KHA_SERVER_PORT: String(await freePort()), KHA_UI_PORT: String(await freePort()) });
  });
  after(async () => {
    await kha(['server', '--stop'], env).catch(() => undefined);
    await lab?.down();
    rmSync(dir, { recursive: true, force: true });
    process.stderr.write(`real-upgrade timings (ms): ${JSON.stringify(timings)}\n`);
  });

  it('upgrades every node one minor; a failed kubeadm upgrade node and a killed worker resume at that step', async () => {
    const versions = lab.realKubeVersions();
    const [older, newer] = [versions[0]!, versions.at(-1)!];
    assert.equal(Number(minorOf(newer).split('.')[1]) - Number(minorOf(older).split('.')[1]), 1, `the tier builds two consecutive minors: ${versions.join(', ')}`);
    let t0 = Date.now();
    const dep = await kha(['deploy', file('old', minorOf(older)), '--auto-approve', '--kubeconfig', kubeconfig], env, LONG);
    assert.equal(dep.code, 0, dep.stdout + dep.stderr);
    timings.deploy = Date.now() - t0;
    for (const h of ['k8scp-01', 'k8scp-02']) await lab.exec(h, `cat > /usr/local/sbin/kubeadm <<'EOF'\n${WRAPPER}EOF\nchmod 755 /usr/local/sbin/kubeadm`);
    await lab.exec('k8scp-02', 'touch /etc/kha-test-fail');
    const target = file('new', minorOf(newer));

    // Refused before any change: a downgrade.
    const down = await kha(['upgrade', file('down', `${minorOf(older)}.0`)], env, LONG);
    assert.equal(down.code, 1, down.stdout + down.stderr);
    assert.match(down.stdout + down.stderr, new RegExp(`the cluster runs v${older.replace(/\./g, '\\.')} and ${minorOf(older).replace('.', '\\.')}\\.0 is older: kubeadm does not downgrade`));

    // The first run stops at cp-2's injected failure and waits for a decision.
    t0 = Date.now();
    const first = await kha(['upgrade', target], env, LONG);
    assert.equal(first.code, 11, first.stdout + first.stderr);
    assert.match(first.stdout + first.stderr, /k8scp-02/);
    assert.match(first.stdout + first.stderr, /injected failure of kubeadm upgrade node/);
    const snaps = readdirSync(join(state, 'kha', 'up', 'backups'));
    assert.equal(snaps.length, 1, `one snapshot before the upgrade: ${snaps.join(', ')}`);
    assert.deepEqual((await calls('k8scp-01')).filter((c) => c.startsWith('upgrade apply')).length, 1);

    // kha retry resumes at cp-2; its in-process worker is killed while the real kubeadm upgrade node runs.
    const retry = spawn(process.execPath, [KHA_MAIN, 'retry', 'up'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let retryOut = '';
    retry.stdout.on('data', (d: Buffer) => (retryOut += d.toString()));
    retry.stderr.on('data', (d: Buffer) => (retryOut += d.toString()));
    const end = Date.now() + 600_000;
    while ((await calls('k8scp-02')).filter((c) => c.startsWith('upgrade node')).length < 2) {
      assert.ok(Date.now() < end && retry.exitCode === null, `the retried kubeadm upgrade node never started: ${retryOut}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    retry.kill('SIGKILL');
    await new Promise((r) => retry.once('close', r));

    // kha upgrade FILE again: attaches to the running upgrade with a new worker, which waits at the approval.
    const again = await kha(['upgrade', target], env, LONG);
    assert.equal(again.code, 10, again.stdout + again.stderr);
    assert.match(again.stdout, /already running: attaching to upgrade kha-upgrade-up/);
    assert.match(again.stdout, /the control plane is upgraded; the workers wait for approval/);
    const approved = await kha(['approve', 'up'], env, LONG);
    assert.equal(approved.code, 0, approved.stdout + approved.stderr);
    assert.match(approved.stdout, new RegExp(`✔ up upgraded from v${older.replace(/\./g, '\\.')} to v${newer.replace(/\./g, '\\.')}: kubeadm, kubelet and kubectl ${newer.replace(/\./g, '\\.')}-1\\.1 held on every node`));
    timings.upgrade = Date.now() - t0;

    // The first node applied once; the second ran upgrade node until one attempt finished.
    assert.equal((await calls('k8scp-01')).filter((c) => c.startsWith('upgrade apply')).length, 1);
    assert.ok((await calls('k8scp-02')).filter((c) => c.startsWith('upgrade node')).length >= 2);

    // Every Node reports the new kubelet, every host has the three packages at the new version, held.
    const kubectlBin = join(kubeBinDir(tier, newer), 'kubectl');
    const r = spawnSync(kubectlBin, ['--kubeconfig', kubeconfig, '--server', `https://${lab.vip}:6443`, '--request-timeout=10s', 'get', 'nodes', '-o', 'jsonpath={range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Ready")].status} {.status.nodeInfo.kubeletVersion} {.spec.unschedulable}{"\\n"}{end}'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n').map((l) => l.trimEnd()).sort(), NODES.map((n) => `${n} True v${newer}`));
    const v = spawnSync(kubectlBin, ['--kubeconfig', kubeconfig, '--server', `https://${lab.vip}:6443`, 'version', '-o', 'json'], { encoding: 'utf8' });
    assert.equal((JSON.parse(v.stdout) as { serverVersion: { gitVersion: string } }).serverVersion.gitVersion, `v${newer}`);
    const pk = `${newer}-1.1`;
    for (const h of NODES) {
      const p = await lab.exec(h, "dpkg-query -W -f='${Package} ${Version}\\n' kubeadm kubelet kubectl");
      assert.deepEqual(p.stdout.trim().split('\n').sort(), [`kubeadm ${pk}`, `kubectl ${pk}`, `kubelet ${pk}`], h);
      const held = await lab.exec(h, 'apt-mark showhold');
      for (const x of ['kubeadm', 'kubectl', 'kubelet']) assert.ok(held.stdout.split('\n').includes(x), `${h}: ${x} not held: ${held.stdout}`);
      const src = await lab.exec(h, 'cat /etc/apt/sources.list.d/kubernetes.list');
      assert.ok(src.stdout.includes(`/v${minorOf(newer)}/deb/`), `${h}: ${src.stdout}`);
    }
    for (const h of CONTROL_PLANES) {
      const m = await lab.exec(h, 'grep -h "image:" /etc/kubernetes/manifests/kube-apiserver.yaml /etc/kubernetes/manifests/kube-controller-manager.yaml /etc/kubernetes/manifests/kube-scheduler.yaml');
      for (const line of m.stdout.trim().split('\n')) assert.match(line, new RegExp(`:v${newer.replace(/\./g, '\\.')}$`), `${h}: ${m.stdout}`);
    }
    // Once more: nothing to do.
    const noop = await kha(['upgrade', target], env, LONG);
    assert.equal(noop.code, 0, noop.stdout + noop.stderr);
    assert.match(noop.stdout, new RegExp(`✔ up: nothing to do: it runs v${newer.replace(/\./g, '\\.')} on every node`));
  });
});
