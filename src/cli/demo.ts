// `npm run demo`: 6 lab hosts (3 control planes, 3 workers), the embedded Temporal server with its Web UI, and
// `kha deploy` of the lab's cluster file (name "demo") run in this process, up to the approval gate (or through
// with --auto-approve). A background worker stays so that `kha approve demo` and the Web UI work from another
// shell. Running it again reuses what is there; --down removes all of it.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { Lab } from '../lab/lab';
import { PROJECT_ROOT } from '../temporal/cli-path';
import { embeddedServerStatus, ensureBackgroundWorker, ensureEmbeddedServer, stateDir, stopEmbeddedServer } from '../server/embedded';
import { deployWorkflowId, resetWorkflowId, SA_CLUSTER, TASK_QUEUE } from '../workflows/definitions';
import { guarded, parseArgs } from './args';
import { CliError, workflowUrl } from './client';
import { sleep } from '../util/sleep';
import { run as deploy } from './deploy';
import { EXIT } from './follow';

export const DEMO_CLUSTER = 'demo';
const DEFAULT_DIR = '/var/lib/kha/demo';
/** Subnet 198.18.100.0/24 by default: away from the indexes the test suites use. */
const DEFAULT_SUBNET = 100;

const USAGE = `usage: npm run demo [-- --auto-approve | --down]

Starts 6 simulated hosts (3 control-plane, 3 worker) in $KHA_DEMO_DIR (default ${DEFAULT_DIR}), the
embedded Temporal server with its Web UI, and deploys the cluster "demo" onto them up to the approval gate.
  --auto-approve  approve the worker joins and run through to a verified cluster
  --down          remove the lab, the demo's deployments, and the server and worker the demo started
Needs root (network namespaces, mounts, sshd). Running it again reuses the lab, the server and the deployment.
Exit status as kha deploy: 0 deployed, 10 waiting for approval, 11 waiting for a decision, 1 failed.
`;

/** What the demo started, so that --down removes only that. */
interface DemoRecord {
  /** The embedded server was started by the demo. */
  startedServer: boolean;
  /** The state directory did not exist before the demo. */
  createdStateDir: boolean;
  stateDir: string;
  subnetIndex?: number;
}

export interface DemoPaths {
  dir: string;
  lab: string;
  clusterFile: string;
  kubeconfig: string;
  record: string;
}

export function demoPaths(env: NodeJS.ProcessEnv = process.env): DemoPaths {
  const dir = resolve(env.KHA_DEMO_DIR || DEFAULT_DIR);
  return { dir, lab: join(dir, 'lab'), clusterFile: join(dir, `${DEMO_CLUSTER}.yaml`), kubeconfig: join(dir, 'admin.conf'), record: join(dir, 'demo.json') };
}

function readRecord(file: string): DemoRecord | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as DemoRecord;
  } catch {
    return undefined;
  }
}

/** How the operator runs kha from a shell: `kha` when it is this checkout's, else the path of bin/kha. */
export function khaCommand(env: NodeJS.ProcessEnv = process.env): string {
  const bin = join(PROJECT_ROOT, 'bin', 'kha');
  const onPath = (env.PATH ?? '').split(':').some((d) => d && existsSync(join(d, 'kha')) && resolve(d, 'kha') === bin);
  const prefix = env.XDG_STATE_HOME ? `XDG_STATE_HOME=${env.XDG_STATE_HOME} ` : '';
  return `${prefix}${onPath ? 'kha' : bin}`;
}

function subnetFromEnv(env: NodeJS.ProcessEnv): number {
  const v = env.KHA_DEMO_SUBNET;
  if (!v) return DEFAULT_SUBNET;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 0 || n > 255) throw new CliError(`KHA_DEMO_SUBNET=${v}: expected a whole number from 0 to 255`, EXIT.usage);
  return n;
}

function requireRoot(): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new CliError(
      'the demo needs root: its 6 hosts are network namespaces with their own mounts and sshd. Run it as root, e.g. sudo npm run demo (and kha approve demo as root too: the embedded server is found under root\'s state directory)',
    );
  }
}

/** The demo always uses the embedded server, whatever TEMPORAL_* says (kha deploy reads process.env). */
function useEmbeddedServer(env: NodeJS.ProcessEnv): string[] {
  const dropped = Object.keys(env).filter((k) => (k.startsWith('TEMPORAL_') && k !== 'TEMPORAL_CLI_PATH') || k === 'KHA_TASK_QUEUE');
  for (const k of dropped) delete env[k];
  return dropped;
}

async function up(o: { autoApprove: boolean }, env: NodeJS.ProcessEnv): Promise<number> {
  const p = demoPaths(env);
  const out = (s: string) => process.stdout.write(`${s}\n`);
  mkdirSync(p.dir, { recursive: true, mode: 0o700 });
  const prev = readRecord(p.record);
  const sd = stateDir(env);
  const createdStateDir = prev?.createdStateDir ?? !existsSync(sd);

  // The lab: reused while its supervisor runs, else started afresh.
  let lab: Lab | undefined;
  if (existsSync(join(p.lab, 'lab.json'))) {
    const old = await Lab.attach(p.lab);
    if (old.isRunning()) lab = old;
  }
  const fresh = !lab;
  const t0 = Date.now();
  if (!lab) lab = await Lab.up({ dir: p.lab, controlPlanes: 3, workers: 3, subnetIndex: prev?.subnetIndex ?? subnetFromEnv(env) });
  out(
    `demo: ${fresh ? `started ${lab.hosts.length} lab hosts in ${Date.now() - t0} ms` : `reusing the ${lab.hosts.length} lab hosts`} in ${lab.dir} on ${lab.gateway.replace(/\.1$/, '.0/24')}: ${lab.hosts.map((h) => `${h.name} ${h.address}`).join(', ')}`,
  );
  writeFileSync(p.clusterFile, lab.specYaml({ name: DEMO_CLUSTER }));
  out(`demo: cluster file ${p.clusterFile}`);

  const server = await ensureEmbeddedServer({ env });
  const record: DemoRecord = { startedServer: (prev?.startedServer ?? false) || server.started, createdStateDir, stateDir: sd, subnetIndex: lab.subnetIndex };
  writeFileSync(p.record, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });

  // New hosts know nothing of an earlier deployment: the workflow must start over, not attach or report done.
  if (fresh) await terminateRunning(server.address, server.namespace, 'the demo lab was recreated');
  const args = [p.clusterFile, '--kubeconfig', p.kubeconfig];
  if (o.autoApprove) args.push('--auto-approve');
  if (fresh) args.push('--again');
  const code = await deploy(args);

  const kha = khaCommand(env);
  // The link names the run: the UI resolves a link without one less reliably.
  const runId = await withClient(server.address, server.namespace, (c) => c.workflow.getHandle(deployWorkflowId(DEMO_CLUSTER)).describe()).then(
    (d) => d.runId,
    () => undefined,
  );
  const url = workflowUrl({ uiUrl: server.uiUrl, namespace: server.namespace }, deployWorkflowId(DEMO_CLUSTER), runId);
  out('');
  if (code === EXIT.waitingApproval || code === EXIT.waitingDecision) {
    // This process (and its worker) ends now: a background worker keeps the deployment answering.
    const w = await ensureBackgroundWorker(server, env);
    // Status queries and the Web UI's current details need it polling before the operator looks.
    await waitForPoller(server.address, server.namespace, w.pid, w.logFile);
    out(`demo: background worker ${w.started ? 'started' : 'running'} (pid ${w.pid}, log ${w.logFile})`);
  }
  out(`Web UI: ${url}`);
  if (code === EXIT.waitingApproval) {
    out(`The control plane is up; the workers wait for approval. Approve them with:\n\n    ${kha} approve ${DEMO_CLUSTER}\n`);
    out(`or run the demo through: npm run demo -- --auto-approve`);
  } else if (code === EXIT.waitingDecision) {
    out(`The deployment waits for a decision; see ${kha} status ${DEMO_CLUSTER}, then ${kha} retry|skip|abort ${DEMO_CLUSTER}`);
  } else if (code === EXIT.ok) {
    out(`The cluster is deployed; its admin kubeconfig is ${p.kubeconfig}`);
  }
  out(`Status: ${kha} status ${DEMO_CLUSTER}    Remove everything: npm run demo -- --down`);
  return code;
}

/** Waits until the worker with this pid polls the task queue (its identity is pid@host). */
async function waitForPoller(address: string, namespace: string, pid: number, logFile: string, timeoutMs = 90_000): Promise<void> {
  const connection = await Connection.connect({ address, connectTimeout: 5000 });
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await connection.workflowService.describeTaskQueue({ namespace, taskQueue: { name: TASK_QUEUE, kind: 1 /* NORMAL */ }, taskQueueType: 1 /* workflow */ });
      if ((r.pollers ?? []).some((p) => p.identity?.startsWith(`${pid}@`))) return;
      if (Date.now() > deadline) throw new CliError(`the background worker (pid ${pid}) does not poll task queue ${TASK_QUEUE} after ${timeoutMs / 1000} s; see ${logFile}`);
      await sleep(300);
    }
  } finally {
    await connection.close();
  }
}

async function withClient<T>(address: string, namespace: string, fn: (c: Client) => Promise<T>): Promise<T> {
  const connection = await Connection.connect({ address, connectTimeout: 5000 });
  try {
    return await fn(new Client({ connection, namespace }));
  } finally {
    await connection.close();
  }
}

async function terminateRunning(address: string, namespace: string, reason: string): Promise<void> {
  await withClient(address, namespace, async (c) => {
    for (const id of [deployWorkflowId(DEMO_CLUSTER), resetWorkflowId(DEMO_CLUSTER)]) {
      const h = c.workflow.getHandle(id);
      const d = await h.describe().catch(() => undefined);
      if (d?.status.name === 'RUNNING') await h.terminate(reason);
    }
  });
}

async function down(env: NodeJS.ProcessEnv): Promise<number> {
  const p = demoPaths(env);
  const out = (s: string) => process.stdout.write(`${s}\n`);
  const rec = readRecord(p.record);
  const st = await embeddedServerStatus(env);
  if (st.running && st.record) {
    const { address, namespace } = st.record;
    await terminateRunning(address, namespace, 'npm run demo -- --down');
    // The demo's runs leave the shared server's history (its other deployments stay).
    const deleted = await withClient(address, namespace, async (c) => {
      let n = 0;
      for await (const w of c.workflow.list({ query: `${SA_CLUSTER.name} = "${DEMO_CLUSTER}"` })) {
        await c.workflowService.deleteWorkflowExecution({ namespace, workflowExecution: { workflowId: w.workflowId, runId: w.runId } });
        n++;
      }
      return n;
    });
    out(`demo: deleted ${deleted} workflow run(s) of cluster ${DEMO_CLUSTER}`);
  }
  if (rec?.startedServer) {
    const stopped = await stopEmbeddedServer(env);
    out(`demo: ${stopped.length ? `stopped ${stopped.join(' and ')}` : 'the embedded server was not running'}`);
  } else if (st.running) {
    out(`demo: the embedded server was running before the demo: left running (kha server --stop stops it)`);
  }
  await Lab.downDir(p.lab);
  out(`demo: lab in ${p.lab} removed`);
  if (rec?.createdStateDir && !rec.startedServer) {
    out(`demo: state directory ${rec.stateDir} kept: the server that uses it was not started by the demo`);
  } else if (rec?.createdStateDir) {
    rmSync(rec.stateDir, { recursive: true, force: true });
    out(`demo: state directory ${rec.stateDir} removed`);
  }
  rmSync(p.dir, { recursive: true, force: true });
  out(`demo: ${p.dir} removed`);
  return EXIT.ok;
}

export async function run(argv: string[]): Promise<number> {
  return guarded('demo', async () => {
    if (argv.includes('-h') || argv.includes('--help')) {
      process.stdout.write(USAGE);
      return EXIT.ok;
    }
    const a = parseArgs(argv, ['--auto-approve', '--down'], [], USAGE);
    if (a.positionals.length) throw new CliError(`unexpected argument "${a.positionals[0]}"\n${USAGE}`, EXIT.usage);
    if (a.flags.has('--down') && a.flags.has('--auto-approve')) throw new CliError(`--down and --auto-approve exclude each other\n${USAGE}`, EXIT.usage);
    requireRoot();
    const env = process.env;
    const dropped = useEmbeddedServer(env);
    if (dropped.length) process.stdout.write(`demo: ignoring ${dropped.join(', ')}: the demo uses the embedded server (unset them for kha approve demo)\n`);
    return a.flags.has('--down') ? down(env) : up({ autoApprove: a.flags.has('--auto-approve') }, env);
  });
}

if (require.main === module) {
  run(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`kha demo: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
