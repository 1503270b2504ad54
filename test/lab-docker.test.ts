// Docker Engine + cri-dockerd as the container runtime, deployed end to end: real Temporal dev server,
// lab hosts over real sshd, the rendered scripts; the sim's apt knows docker-ce, containerd.io and
// cri-dockerd (a downloaded .deb, installed only when its SHA-256 matches the file).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startDeployEnv, type DeployEnv } from './helpers/deploy';
import { recordKubeconfigChoice } from '../src/activities/kubeconfig-target';
import { approveWorkersUpdate, deployWorkflowId, type DeployResult } from '../src/workflows/definitions';
import { resultOrFail, waitForState } from './helpers/workflow';
import { planFacts, renderPhase } from '../src/render';
import type { ClusterSpec } from '../src/spec/types';
import { subnet } from './helpers/subnet';

let d: DeployEnv;
let sha256 = '';

function dockerCluster(sum: string): ClusterSpec {
  return d.cluster('docker', (c) => {
    c.spec.containerRuntime.type = 'docker';
    c.spec.containerRuntime.criDockerd = { enabled: true, version: 'v0.3.21', sha256: sum };
    c.spec.networking.kubeProxyMode = 'iptables';
  });
}

describe('Docker Engine with cri-dockerd (3+1 lab)', () => {
  before(async () => {
    d = await startDeployEnv({ controlPlanes: 3, workers: 1, subnetIndex: subnet(82) });
    // What an operator does once: the checksum of the release file for the nodes' distribution.
    const r = await d.lab.exec('k8swn-01', `. /etc/os-release; curl -fsSL "https://github.com/Mirantis/cri-dockerd/releases/download/v0.3.21/cri-dockerd_0.3.21.3-0.$ID-\${VERSION_CODENAME}_$(dpkg --print-architecture).deb" | sha256sum`);
    assert.equal(r.code, 0, r.stderr);
    sha256 = r.stdout.split(' ')[0]!;
    assert.match(sha256, /^[0-9a-f]{64}$/);
  });
  after(async () => {
    await d?.close();
  });

  test('a cri-dockerd package whose checksum differs is not installed', async () => {
    const wrong = 'f'.repeat(64);
    const c = dockerCluster(wrong);
    const s = renderPhase(c, 'k8swn-01', 'container-runtime', planFacts(c).facts).scripts[0]!;
    const r = await d.lab.exec('k8swn-01', 'bash -s', { input: s.content, timeoutMs: 300_000 });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`kha: error: the cri-dockerd package from https://github\\.com/Mirantis/cri-dockerd/releases/download/v0\\.3\\.21/cri-dockerd_0\\.3\\.21\\.3-0\\.debian-bookworm_amd64\\.deb has SHA-256 ${sha256}, not ${wrong} \\(spec\\.containerRuntime\\.criDockerd\\.sha256\\); refusing to install it`));
    assert.equal((await d.lab.exec('k8swn-01', 'command -v cri-dockerd || echo absent; ls /tmp/*.deb 2>/dev/null | wc -l')).stdout, 'absent\n0\n');
  });

  test('deploys to the approval gate and through, with every node on docker-ce and cri-dockerd', async () => {
    const cluster = dockerCluster(sha256);
    recordKubeconfigChoice(cluster.name, join(d.dir, 'docker.conf'));
    await d.withWorker('docker', async () => {
      const handle = await d.env.client.workflow.start('deployCluster', {
        taskQueue: 'docker',
        workflowId: deployWorkflowId(cluster.name),
        args: [{ cluster, options: { heartbeatTimeoutSeconds: 15, kubeconfigPath: join(d.dir, 'docker.conf') } }],
      });
      await waitForState(handle, 'waiting-approval', 300_000);
      await handle.executeUpdate(approveWorkersUpdate, { args: ['test'] });
      const result = await resultOrFail<DeployResult>(handle);
      assert.equal(result.nodesReady, 4);
      assert.equal(result.etcdMembers, 3);
    });
    for (const h of d.lab.nodes) {
      const pkgs = await d.lab.exec(h, "dpkg-query -W -f='${Package} ${Version}\\n' docker-ce docker-ce-cli containerd.io cri-dockerd");
      assert.equal(pkgs.code, 0, pkgs.stderr);
      assert.deepEqual(pkgs.stdout.trim().split('\n').map((l) => l.split(' ')[0]), ['docker-ce', 'docker-ce-cli', 'containerd.io', 'cri-dockerd'], h.name);
      assert.match(pkgs.stdout, /^cri-dockerd 0\.3\.21\.3-0\.debian-bookworm$/m);
      const units = await d.lab.exec(h, 'systemctl is-active docker cri-docker.service cri-docker.socket; test -S /var/run/cri-dockerd.sock && echo socket');
      assert.equal(units.stdout, 'active\nactive\nactive\nsocket\n', h.name);
      assert.match(await d.lab.readFile(h, '/var/lib/kubelet/kubeadm-flags.env'), /--container-runtime-endpoint=unix:\/\/\/var\/run\/cri-dockerd\.sock /);
      assert.match(await d.lab.readFile(h, '/etc/docker/daemon.json'), /"native\.cgroupdriver=systemd"/);
      assert.match(await d.lab.readFile(h, '/etc/crictl.yaml'), /^runtime-endpoint: unix:\/\/\/var\/run\/cri-dockerd\.sock$/m);
    }
    assert.match(await d.lab.readFile('k8scp-01', '/etc/kubernetes/kha/kubeadm-init.yaml'), /criSocket: unix:\/\/\/var\/run\/cri-dockerd\.sock/);
  });
});
