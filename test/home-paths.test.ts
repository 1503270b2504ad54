// ~/ in the cluster file's paths means the worker's home: a lab deployment whose file names its key and
// known_hosts file with ~/ (HOME pointing at a temporary directory) completes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDeployEnv, type DeployEnv } from './helpers/deploy';
import { loadClusterOrThrow } from '../src/spec/load';
import { deployWorkflowId, type DeployResult } from '../src/workflows/definitions';
import { resultOrFail } from './helpers/workflow';
import { kubeconfigTarget, recordKubeconfigChoice } from '../src/activities/kubeconfig-target';
import { subnet } from './helpers/subnet';

let d: DeployEnv;
const savedHome = process.env.HOME;

describe('~/ paths in the cluster file', () => {
  before(async () => {
    d = await startDeployEnv({ subnetIndex: subnet(70), controlPlanes: 1, workers: 1 });
  });
  after(async () => {
    process.env.HOME = savedHome;
    await d?.close();
  });

  test('privateKeyPath: ~/... and knownHosts.file: ~/... are read from the worker\'s HOME and the deployment completes', async () => {
    const home = join(d.dir, 'home');
    mkdirSync(join(home, '.ssh'), { recursive: true, mode: 0o700 });
    copyFileSync(d.lab.rootKeyPath, join(home, '.ssh', 'id_lab'));
    copyFileSync(d.lab.knownHostsPath, join(home, '.ssh', 'known_hosts'));
    const yaml = d.lab
      .specYaml({ name: 'home' })
      .replace(`privateKeyPath: ${d.lab.rootKeyPath}`, 'privateKeyPath: ~/.ssh/id_lab')
      .replace(`file: ${d.lab.knownHostsPath}`, 'file: ~/.ssh/known_hosts');
    assert.match(yaml, /privateKeyPath: ~\/\.ssh\/id_lab/);
    assert.match(yaml, /file: ~\/\.ssh\/known_hosts/);
    const file = join(d.dir, 'home.yaml');
    writeFileSync(file, yaml);
    const cluster = loadClusterOrThrow(file);
    cluster.spec.policy.approveBeforeWorkers = false;
    cluster.spec.policy.retry.initialIntervalSeconds = 0.2;
    cluster.spec.policy.retry.maximumIntervalSeconds = 1;
    process.env.HOME = home;
    // A kubeconfig path outside the state directory, chosen the way kha deploy --kubeconfig chooses it.
    const kubeconfig = join(d.dir, 'chosen', 'admin.conf');
    recordKubeconfigChoice(cluster.name, kubeconfig);
    await d.withWorker('home', async () => {
      const handle = await d.env.client.workflow.start('deployCluster', {
        taskQueue: 'home',
        workflowId: deployWorkflowId(cluster.name),
        args: [{ cluster, options: { heartbeatTimeoutSeconds: 15, kubeconfigPath: kubeconfig } }],
      });
      const result = await resultOrFail<DeployResult>(handle);
      assert.equal(result.nodesReady, 2);
      assert.equal(result.kubeconfigPath, kubeconfig);
      assert.equal(statSync(kubeconfig).mode & 0o777, 0o600);
      assert.match(readFileSync(kubeconfig, 'utf8'), /server: https:\/\/k8s-api\.lab\.internal:6443/);
      // The choice served this deployment only: a retry of its own copy may use it, another run may not.
      const runId = (await handle.describe()).runId;
      assert.equal(kubeconfigTarget(cluster.name, kubeconfig, runId), kubeconfig);
      assert.throws(() => kubeconfigTarget(cluster.name, kubeconfig, 'another-run'), /was not chosen with kha deploy --kubeconfig/);
      assert.throws(() => kubeconfigTarget(cluster.name, kubeconfig), /was not chosen with kha deploy --kubeconfig/);
    });
  });
});
