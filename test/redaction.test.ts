// Secret-shaped output of a failing script (a 52-line PEM private key, a JWT) reaches neither heartbeats,
// nor the workflow history, nor what the CLI prints: redaction follows a PEM block across lines and
// recognises its body lines in a tail that starts inside the block.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { startDeployEnv, type DeployEnv } from './helpers/deploy';
import { deployWorkflowId } from '../src/workflows/definitions';
import { waitForState } from './helpers/workflow';
import { cliEnv, kha } from './cli-run';
import { subnet } from './helpers/subnet';

let d: DeployEnv;

const pem = generateKeyPairSync('rsa', { modulusLength: 4096 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const b64url = (b: Buffer) => b.toString('base64url');
const jwt = [
  b64url(Buffer.from('{"alg":"HS256","typ":"JWT"}')),
  b64url(Buffer.from('{"sub":"kha-redaction-test","iat":1700000000}')),
  b64url(randomBytes(32)),
].join('.');
/** What a careless tool might print on failure. */
const SECRET_OUTPUT = `loading credentials\n${pem}token: Bearer ${jwt}\ncannot continue`;

/** Every piece of the secrets that must never show up. */
const pieces = [...pem.trim().split('\n').filter((l) => !l.startsWith('-----')), jwt, ...jwt.split('.').slice(1)];

function leaks(where: string, text: string): void {
  const found = pieces.filter((p) => text.includes(p));
  assert.deepEqual(found, [], `${where} shows ${found.length} secret piece(s)`);
}

describe('redaction of secret-shaped output', () => {
  before(async () => {
    d = await startDeployEnv({ subnetIndex: subnet(72), controlPlanes: 1, workers: 1 });
  });
  after(async () => {
    await d?.close();
  });

  test('the PEM key has 52 lines and the JWT three parts', () => {
    assert.equal(pem.trim().split('\n').length, 52);
    assert.equal(jwt.split('.').length, 3);
  });

  test('heartbeats of a running script show none of it', async () => {
    const cluster = d.cluster('hb', (c) => void (c.spec.policy.approveBeforeWorkers = false));
    // host-prep's first modprobe prints the secrets, the second hangs: the activity keeps beating with the
    // last lines of output, which end inside what was printed.
    d.lab.setFaults('k8swn-01', [
      { command: 'modprobe', nth: 1, exitCode: 0, stderr: SECRET_OUTPUT },
      { command: 'modprobe', nth: 2, hang: true },
    ]);
    try {
      await d.withWorker('hb', async () => {
        const handle = await d.env.client.workflow.start('deployCluster', {
          taskQueue: 'hb',
          workflowId: deployWorkflowId(cluster.name),
          args: [{ cluster, options: { heartbeatTimeoutSeconds: 3 } }],
        });
        let details = '';
        const end = Date.now() + 120_000;
        while (Date.now() < end) {
          const desc = await handle.describe();
          const pending = desc.raw.pendingActivities ?? [];
          const hp = pending.find((p) => p.activityType?.name === 'hostPrep' && (p.heartbeatDetails?.payloads?.length ?? 0) > 0);
          details = hp ? JSON.stringify(hp.heartbeatDetails!.payloads!.map((p) => Buffer.from(p.data ?? []).toString('utf8'))) : '';
          if (/cannot continue/.test(details)) break;
          await new Promise((r) => setTimeout(r, 300));
        }
        assert.match(details, /cannot continue/, 'no heartbeat with the output arrived');
        leaks('the heartbeat details', details);
        assert.match(details, /<redacted pem>/);
        await handle.terminate('test done');
        leaks('the history', JSON.stringify((await handle.fetchHistory()).events));
      });
    } finally {
      d.lab.clearFaults();
    }
  });

  test('failure messages, the history and kha status show none of it', async () => {
    const cluster = d.cluster('fail', (c) => {
      c.spec.policy.approveBeforeWorkers = false;
      c.spec.policy.retry.maximumAttempts = 1;
      c.spec.policy.compensation.enabled = false;
    });
    d.lab.setFaults('k8swn-01', [{ command: 'modprobe', times: 1000, exitCode: 1, stderr: SECRET_OUTPUT }]);
    try {
      await d.withWorker('fail', async () => {
        const handle = await d.env.client.workflow.start('deployCluster', {
          taskQueue: 'fail',
          workflowId: deployWorkflowId(cluster.name),
          args: [{ cluster, options: { heartbeatTimeoutSeconds: 15 } }],
        });
        const s = await waitForState(handle, 'waiting-decision', 120_000);
        assert.equal(s.pendingDecision?.node, 'k8swn-01');
        assert.match(s.pendingDecision?.error ?? '', /host-prep.*exited with/);
        leaks('the pending decision', JSON.stringify(s));
        // The tail made it into the message, with the key's place marked.
        assert.match(s.pendingDecision?.error ?? '', /<redacted pem>/);
        leaks('the history', JSON.stringify((await handle.fetchHistory()).events));
        const env = cliEnv({
          TEMPORAL_ADDRESS: d.env.connection.options.address ?? '',
          TEMPORAL_NAMESPACE: d.env.namespace ?? 'default',
          KHA_TASK_QUEUE: 'fail',
        });
        for (const args of [['status', 'fail'], ['status', 'fail', '--json']]) {
          const r = await kha(args, env);
          assert.match(r.stdout + r.stderr, /k8swn-01/, `kha ${args.join(' ')} printed: ${r.stdout}${r.stderr}`);
          leaks(`kha ${args.join(' ')}`, r.stdout + r.stderr);
        }
        await handle.terminate('test done');
      });
    } finally {
      d.lab.clearFaults();
    }
  });
});
