// The operator commands end to end against 3+3 lab hosts and the embedded Temporal server (XDG_STATE_HOME in a
// temporary directory): deploy to the approval gate, status, approve from another process, deploy of a finished
// cluster, reset; then `npm run demo` (its compiled entry) with a test-only directory: gate, re-run, approve,
// --down leaving nothing behind.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab } from '../src/lab/lab';
import { cliEnv, freePort, jsonLines, kha, runIn } from './cli-run';
import { subnet } from './helpers/subnet';

const DEMO_MAIN = join(__dirname, '..', 'src', 'cli', 'demo.js');
const BIN_KHA = join(__dirname, '..', '..', 'bin', 'kha');
const WORKERS = ['k8swn-01', 'k8swn-02', 'k8swn-03'];
const CONTROL_PLANES = ['k8scp-01', 'k8scp-02', 'k8scp-03'];
const LONG = 300_000;
const timings: Record<string, number> = {};

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

async function kubeletConf(lab: Lab, host: string): Promise<boolean> {
  const r = await lab.exec(host, 'test -e /etc/kubernetes/kubelet.conf && echo yes || echo no');
  return r.stdout.trim() === 'yes';
}

/** Pids of processes whose command line mentions the path. */
function processesMentioning(path: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0').join(' ').includes(path)) out.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** The process runs (a zombie waiting to be reaped does not count). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** True once the process is gone, false if it still runs after ms. */
async function gone(pid: number, ms = 10_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (alive(pid)) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
  return true;
}

describe('kha deploy, status, approve, reset against 3+3 lab hosts', () => {
  const dir = join(tmpdir(), `kha-cli-lab-${subnet(61)}`);
  const file = join(dir, 'demo.yaml');
  const kubeconfig = join(dir, 'admin.conf');
  let lab: Lab;
  let env: NodeJS.ProcessEnv;
  let uiPort = 0;

  before(async () => {
    await Lab.downDir(join(dir, 'lab'));
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    lab = await Lab.up({ dir: join(dir, 'lab'), controlPlanes: 3, workers: 3, subnetIndex: subnet(61), rebootDelayMs: 500 });
    writeFileSync(file, lab.specYaml({ name: 'demo' }));
    uiPort = await freePort();
    env = cliEnv({ XDG_STATE_HOME: join(dir, 'state'), KHA_SERVER_PORT: String(await freePort()), KHA_UI_PORT: String(uiPort) });
  });

  after(async () => {
    await kha(['server', '--stop'], env).catch(() => undefined);
    await lab?.down();
    rmSync(dir, { recursive: true, force: true });
    process.stderr.write(`cli-lab timings (ms): ${JSON.stringify(timings)}\n`);
  });

  it('deploy stops at the approval gate with exit 10, prints the approve command, and no worker has joined', async () => {
    const r = await kha(['deploy', file, '--kubeconfig', kubeconfig], env, LONG);
    timings.deployToGate = r.ms;
    assert.equal(r.code, 10, r.stdout + r.stderr);
    assert.match(r.stdout, /^started the embedded Temporal server at 127\.0\.0\.1:\d+ /m);
    assert.match(r.stdout, new RegExp(`^Web UI: http://127\\.0\\.0\\.1:${uiPort}/namespaces/default/workflows/kha-deploy-demo/[0-9a-f-]{36}$`, 'm'));
    assert.match(r.stdout, /^kubeadm-init k8scp-01: done \(.*cluster initialized\)$/m);
    assert.match(r.stdout, /^control-plane-join k8scp-03: done /m);
    assert.match(r.stdout, /^⏸ demo waits for approval before joining the workers\. Check the control plane, then run: kha approve demo$/m);
    assert.doesNotMatch(r.stdout, /^worker-join k8swn-\d+: running/m);
    for (const w of WORKERS) assert.equal(await kubeletConf(lab, w), false, `${w} joined before approval`);
    for (const c of CONTROL_PLANES) assert.equal(await kubeletConf(lab, c), true, `${c} is not in the cluster`);
    assert.equal(existsSync(kubeconfig), false);
  });

  it('status with no worker left says so and shows the gate from what the server knows', async () => {
    const r = await kha(['status', 'demo'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^no worker (is running|answered the status query)/m);
    assert.match(r.stdout, /^kha-deploy-demo: RUNNING \(started /m);
    assert.match(r.stdout, /^search attributes: KhaCluster=demo KhaPhase=approval KhaState=waiting-approval$/m);
    assert.match(r.stdout, /^pending activities: none$/m);
  });

  it('approve from another process is accepted, runs the workers and verification: exit 0, kubeconfig 0600', async () => {
    const r = await kha(['approve', 'demo'], env, LONG);
    timings.approveToDone = r.ms;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^approve: approved: joining 3 worker node\(s\)$/m);
    for (const w of WORKERS) assert.match(r.stdout, new RegExp(`^worker-join ${w}: done \\(joined\\)$`, 'm'));
    assert.match(r.stdout, new RegExp(`^✔ demo deployed: Kubernetes v1\\.35\\.\\d+, 6 nodes Ready, 3 etcd members; admin kubeconfig: ${escape(kubeconfig)}$`, 'm'));
    assert.equal(statSync(kubeconfig).mode & 0o777, 0o600);
    assert.match(readFileSync(kubeconfig, 'utf8'), /server: https:\/\/k8s-api\.lab\.internal:6443/);
    for (const w of WORKERS) assert.equal(await kubeletConf(lab, w), true, `${w} did not join`);
    const again = await kha(['approve', 'demo'], env);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /the deployment of demo is not running \(completed at /);
  });

  it('status of the finished deployment and deploy again say it has finished', async () => {
    const s = await kha(['status', 'demo'], env);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /^kha-deploy-demo: COMPLETED \(started .*, closed /m);
    assert.match(s.stdout, /^result: \{"cluster":"demo",.*"nodesReady":6,"etcdMembers":3/m);
    const r = await kha(['deploy', file], env);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^deployment of demo already finished \(completed \S+\): \{"cluster":"demo".*"nodesReady":6/m);
    assert.match(r.stdout, new RegExp(`^to run it again \\(finished steps are skipped on the hosts\\): kha deploy ${escape(file)} --again$`, 'm'));
    assert.doesNotMatch(r.stdout, /^started deployment/m);
  });

  it('reset --yes tears down workers first and the first control plane last; no kubelet.conf remains', async () => {
    const r = await kha(['reset', file, '--yes', '--json'], env, LONG);
    timings.reset = r.ms;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const ev = jsonLines(r.stdout);
    const last = (phase: string, node: string) => {
      const e = ev.filter((x) => x.type === 'node' && x.phase === phase && x.node === node).pop();
      assert.ok(e, `no event for ${node} in ${phase}`);
      assert.equal(e.state, 'done', JSON.stringify(e));
      return { start: Date.parse(String(e.startedAt)), end: Date.parse(String(e.endedAt)) };
    };
    const workers = WORKERS.map((w) => last('reset-workers', w));
    const cps = CONTROL_PLANES.map((c) => last('reset-control-plane', c));
    const workersEnd = Math.max(...workers.map((w) => w.end));
    for (const c of cps) assert.ok(c.start >= workersEnd, 'a control plane was reset before every worker was');
    // One control plane at a time, k8scp-01 (the first) last.
    const [cp1, cp2, cp3] = cps as [{ start: number; end: number }, { start: number; end: number }, { start: number; end: number }];
    assert.ok(cp1.start >= cp2.end && cp1.start >= cp3.end, JSON.stringify(cps));
    assert.ok(cp2.start >= cp3.end || cp3.start >= cp2.end, 'two control planes were reset at once');
    timings.resetNodes = Math.round([...workers, ...cps].reduce((a, n) => a + (n.end - n.start), 0));
    const result = ev.find((e) => e.type === 'result')!;
    assert.deepEqual((result.result as { reset: string[] }).reset.slice(-1), ['k8scp-01']);
    for (const h of [...WORKERS, ...CONTROL_PLANES]) assert.equal(await kubeletConf(lab, h), false, `${h} still has /etc/kubernetes/kubelet.conf`);
  });
});

describe('npm run demo (compiled entry) with a test-only directory', () => {
  const base = join(tmpdir(), `kha-demo-test-${subnet(62)}`);
  const demoDir = join(base, 'demo');
  const state = join(base, 'state');
  let env: NodeJS.ProcessEnv;
  let uiPort = 0;
  const demo = (args: string[], ms = LONG) => runIn([process.execPath, DEMO_MAIN, ...args], env, ms);

  before(async () => {
    // A run killed half-way is cleaned by the next one.
    await Lab.downDir(join(demoDir, 'lab'));
    rmSync(base, { recursive: true, force: true });
    mkdirSync(base, { recursive: true });
    uiPort = await freePort();
    env = cliEnv({ KHA_DEMO_DIR: demoDir, XDG_STATE_HOME: state, KHA_DEMO_SUBNET: String(subnet(62)), KHA_SERVER_PORT: String(await freePort()), KHA_UI_PORT: String(uiPort) });
  });

  after(async () => {
    if (existsSync(demoDir)) await demo(['--down']).catch(() => undefined);
    await Lab.downDir(join(demoDir, 'lab')).catch(() => undefined);
    rmSync(base, { recursive: true, force: true });
    process.stderr.write(`demo timings (ms): ${JSON.stringify(timings)}\n`);
  });

  let serverPid = 0;
  let workerPid = 0;

  it('stops at the approval gate (exit 10), prints the approve command and the Web UI link, leaves a worker', async () => {
    const r = await demo([]);
    timings.demoToGate = r.ms;
    assert.equal(r.code, 10, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`^demo: started 6 lab hosts in \\d+ ms in .*/demo/lab on 198\\.18\\.${subnet(62)}\\.0/24: k8scp-01 198\\.18\\.${subnet(62)}\\.11, `, 'm'));
    assert.match(r.stdout, new RegExp(`^demo: cluster file ${escape(join(demoDir, 'demo.yaml'))}$`, 'm'));
    assert.match(r.stdout, /^⏸ demo waits for approval before joining the workers/m);
    assert.match(r.stdout, new RegExp(`^    XDG_STATE_HOME=${escape(state)} ${escape(BIN_KHA)} approve demo$`, 'm'));
    const url = new RegExp(`^Web UI: (http://127\\.0\\.0\\.1:${uiPort}/namespaces/default/workflows/kha-deploy-demo/[0-9a-f-]{36})$`, 'm').exec(r.stdout)?.[1];
    assert.ok(url, r.stdout);
    const page = await fetch(url);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<html/);
    const st = JSON.parse((await kha(['server', '--status', '--json'], env)).stdout) as { running: boolean; server: { pid: number }; worker?: { pid: number; running: boolean } };
    assert.equal(st.running, true);
    assert.equal(st.worker?.running, true, 'the demo leaves a background worker');
    serverPid = st.server.pid;
    workerPid = st.worker!.pid;
  });

  it('kha status demo (another process) shows the table with the gate, answered by the background worker', async () => {
    const r = await kha(['status', 'demo'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^cluster demo · Kubernetes v1\.35\.\d+ · waiting-approval · phase approval · /m);
    assert.match(r.stdout, /^ {2}✔ kubeadm init +done +1\/1 /m);
    assert.match(r.stdout, /^ {2}▶ Approval before workers +running/m);
    assert.match(r.stdout, /^ {6}· k8swn-01, k8swn-02, k8swn-03$/m);
    assert.match(r.stdout, /^waiting for: approval: check the control plane, then run: kha approve demo$/m);
  });

  it('running it again reuses the lab, the server, the worker and the deployment', async () => {
    const r = await demo([]);
    assert.equal(r.code, 10, r.stdout + r.stderr);
    assert.match(r.stdout, /^demo: reusing the 6 lab hosts in /m);
    assert.match(r.stdout, /^using the embedded Temporal server at /m);
    assert.match(r.stdout, /^already running: attaching to deployment kha-deploy-demo /m);
    assert.match(r.stdout, new RegExp(`^demo: background worker running \\(pid ${workerPid},`, 'm'));
    const st = JSON.parse((await kha(['server', '--status', '--json'], env)).stdout) as { server: { pid: number } };
    assert.equal(st.server.pid, serverPid);
  });

  it('the printed approve command, run from another process, completes the deployment (exit 0)', async () => {
    const r = await runIn([BIN_KHA, 'approve', 'demo'], env, LONG);
    timings.demoApproveToDone = r.ms;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`^✔ demo deployed: Kubernetes v1\\.35\\.\\d+, 6 nodes Ready, 3 etcd members; admin kubeconfig: ${escape(join(demoDir, 'admin.conf'))}$`, 'm'));
    assert.equal(statSync(join(demoDir, 'admin.conf')).mode & 0o777, 0o600);
    const again = await demo([]);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.match(again.stdout, /^deployment of demo already finished /m);
    assert.match(again.stdout, /^The cluster is deployed; its admin kubeconfig is /m);
  });

  it('--down leaves no namespace, bridge, process, state or directory', async () => {
    const supervisor = Number(readFileSync(join(demoDir, 'lab', 'supervisor.pid'), 'utf8'));
    assert.ok(alive(supervisor));
    const r = await demo(['--down']);
    timings.demoDown = r.ms;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^demo: deleted 1 workflow run\(s\) of cluster demo$/m);
    assert.match(r.stdout, new RegExp(`^demo: stopped worker \\(pid ${workerPid}\\) and server \\(pid ${serverPid}\\)$`, 'm'));
    const netns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    assert.doesNotMatch(netns, new RegExp(`^kha${subnet(62)}-`, 'm'));
    const links = execFileSync('ip', ['-br', 'link'], { encoding: 'utf8' });
    assert.doesNotMatch(links, new RegExp(`^(khabr${subnet(62)}|khv${subnet(62)}-)`, 'm'));
    assert.equal(existsSync(`/run/kha-lab/subnet-${subnet(62)}`), false);
    for (const [what, pid] of Object.entries({ server: serverPid, worker: workerPid, supervisor })) {
      assert.ok(await gone(pid), `${what} (pid ${pid}) still runs: ${alive(pid) ? readFileSync(`/proc/${pid}/cmdline`, 'utf8') : ''}`);
    }
    assert.deepEqual(processesMentioning(demoDir), []);
    assert.deepEqual(processesMentioning(state), []);
    assert.equal(existsSync(join(state, 'kha')), false, 'the state directory the demo created is gone');
    assert.equal(existsSync(demoDir), false);
    const st = await kha(['server', '--status'], env);
    assert.equal(st.code, 1);
  });

  it('--auto-approve runs through to a verified cluster on fresh hosts; --down removes it again', async () => {
    const r = await demo(['--auto-approve']);
    timings.demoAutoApprove = r.ms;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^demo: started 6 lab hosts in /m);
    assert.match(r.stdout, /^started deployment kha-deploy-demo: /m);
    assert.match(r.stdout, /^auto-approved: approved: joining 3 worker node\(s\)$/m);
    assert.match(r.stdout, /^✔ demo deployed: Kubernetes v1\.35\.\d+, 6 nodes Ready, 3 etcd members; admin kubeconfig: /m);
    assert.match(r.stdout, new RegExp(`^The cluster is deployed; its admin kubeconfig is ${escape(join(demoDir, 'admin.conf'))}$`, 'm'));
    assert.equal(statSync(join(demoDir, 'admin.conf')).mode & 0o777, 0o600);
    const d = await demo(['--down']);
    assert.equal(d.code, 0, d.stdout + d.stderr);
    assert.doesNotMatch(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }), new RegExp(`^kha${subnet(62)}-`, 'm'));
    assert.deepEqual(processesMentioning(demoDir), []);
    assert.equal(existsSync(demoDir), false);
    assert.equal(existsSync(join(state, 'kha')), false);
  });
});
