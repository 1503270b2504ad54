// The worker trusts no workflow input: deployCluster started directly (not through the CLI) with a spec the
// loader would refuse fails with a non-retryable InvalidSpec before any SSH connection or file write.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { startDeployEnv, type DeployEnv } from './helpers/deploy';
import type { ClusterSpec } from '../src/spec/types';
import type { DeployOptions } from '../src/workflows/deploy-cluster';
import { deployWorkflowId } from '../src/workflows/definitions';
import { scheduledActivities } from './helpers/workflow';
import { subnet } from './helpers/subnet';

let d: DeployEnv;

describe('deployCluster started directly with hostile input', () => {
  before(async () => {
    d = await startDeployEnv({ subnetIndex: subnet(71), controlPlanes: 1, workers: 1 });
  });
  after(async () => {
    delete process.env.TEMPORAL_API_KEY;
    await d?.close();
  });

  const marker = () => join(d.dir, 'pwned');

  async function refused(name: string, tweak: (c: ClusterSpec) => void, options: DeployOptions = {}): Promise<string> {
    const knownHosts = join(d.dir, `known_hosts-${name}`);
    const cluster = d.cluster(name, (c) => {
      // accept-new records every host kha connects to: an empty file afterwards means no SSH connection.
      c.spec.ssh.knownHosts = { policy: 'accept-new', file: knownHosts };
      tweak(c);
    }, { asGiven: true });
    return d.withWorker(name, async () => {
      const handle = await d.env.client.workflow.start('deployCluster', {
        taskQueue: name,
        workflowId: deployWorkflowId(name),
        args: [{ cluster, options: { heartbeatTimeoutSeconds: 15, ...options } }],
        workflowExecutionTimeout: '2 minutes',
      });
      const err = await handle.result().then(
        () => assert.fail('the deployment ran'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof WorkflowFailedError, String(err));
      const cause = err.cause;
      assert.ok(cause instanceof ApplicationFailure, String(cause));
      assert.equal(cause.type, 'InvalidSpec');
      assert.equal(cause.nonRetryable, true);
      const acts = scheduledActivities((await handle.fetchHistory()).events ?? []).map((a) => a.type);
      assert.ok(acts.every((t) => t === 'checkKubeconfigTarget'), `activities ran: ${acts.join(', ')}`);
      assert.equal(existsSync(knownHosts), false, 'an SSH connection was made');
      assert.equal(existsSync(marker()), false, 'a command from the input ran');
      return cause.message;
    });
  }

  test('a line break in a node name', async () => {
    const msg = await refused('nl-name', (c) => {
      c.spec.nodes[0]!.name = `k8scp-01\ntouch ${marker()}`;
    });
    assert.match(msg, /spec\.nodes\[0\]\.name: must be a lower-case DNS label/);
  });

  test('$(...) in a value that reaches the join config', async () => {
    const msg = await refused('subst', (c) => {
      c.spec.nodes[1]!.name = `k8swn-01$(touch ${marker()})`;
    });
    assert.match(msg, /spec\.nodes\[1\]\.name: must be a lower-case DNS label/);
  });

  test('a kubeconfigPath outside the state directory that the CLI did not choose', async () => {
    const target = join(d.dir, 'elsewhere', 'admin.conf');
    const msg = await refused('kubeconfig', () => undefined, { kubeconfigPath: target });
    assert.match(msg, /kubeconfigPath .*elsewhere\/admin\.conf is outside the worker's state directory/);
    assert.equal(existsSync(target), false);
  });

  test("passwordEnv naming one of the worker's own secrets", async () => {
    process.env.TEMPORAL_API_KEY = 'worker-secret-value';
    const msg = await refused('secret-env', (c) => {
      c.spec.ssh.passwordEnv = 'TEMPORAL_API_KEY';
    });
    assert.match(msg, /spec\.ssh\.passwordEnv: must be an environment variable name that starts with KHA_/);
    assert.doesNotMatch(msg, /worker-secret-value/);
  });

  test('resetCluster checks its input the same way', async () => {
    const knownHosts = join(d.dir, 'known_hosts-reset');
    const cluster = d.cluster('reset', (c) => {
      c.spec.ssh.knownHosts = { policy: 'accept-new', file: knownHosts };
      c.spec.nodes[0]!.address = '127.0.0.1';
    }, { asGiven: true });
    await d.withWorker('reset', async () => {
      const handle = await d.env.client.workflow.start('resetCluster', { taskQueue: 'reset', workflowId: 'kha-reset-reset', args: [{ cluster }] });
      const err = await handle.result().then(
        () => assert.fail('the reset ran'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof WorkflowFailedError && err.cause instanceof ApplicationFailure, String(err));
      assert.equal(err.cause.type, 'InvalidSpec');
      assert.match(err.cause.message, /spec\.nodes\[0\]\.address: 127\.0\.0\.1 is a loopback address/);
      assert.deepEqual(scheduledActivities((await handle.fetchHistory()).events ?? []), []);
      assert.equal(existsSync(knownHosts), false, 'an SSH connection was made');
    });
  });

  test('a spec missing what the loader fills in', async () => {
    const msg = await refused('partial', (c) => {
      delete (c.spec as Partial<ClusterSpec['spec']>).policy;
    });
    assert.match(msg, /^deployCluster: the input is not a valid cluster spec, nothing was done: spec\.policy: differs from the loaded form/);
  });
});
