// A lab of simulated hosts on this machine: network namespaces on a bridge in 198.18.0.0/15,
// each with its own hostname, copy-on-write root over / and a real sshd. See README.md.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import { stringify } from 'yaml';
import { API_VERSION, KIND, patterns } from '../spec/schema';
import { assertLabDir, claimSubnet, clearSubnet, downDir, liveSupervisor, markLabDir, pickSubnet, subnetHeldBy } from './cleanup';
import { controlRequest } from './control';
import { clearHostFaults, sharedPaths, writeClockOffset, writeHostFaults, type LabFault } from './faults';
import { HOST_INIT_SCRIPT } from './host-init';
import { bridgeName, labPaths, planHosts, readState, readStatus, subnetPrefix, writeJson, type LabHost, type LabPaths, type LabState, type LabStatusFile } from './layout';
import { createBridge, createHostNetworks } from './net';
import { hideMachineHostKeys, knownHostsText, LAB_PW_USER, LAB_USER, prepareHost, prepareKeys } from './prepare';
import { pidAlive, run } from './proc';
import { sleep } from '../util/sleep';
import { writeToolWrappers } from './tools';
import { ed25519KeyPair } from './sshkey';
import { findRealBinaries, readTier, type KubeTier } from './real/tier';
import { prepareRealTier, releaseKeyFingerprint, snapshotMachineDpkg } from './real/setup';
import { CALICO_MANIFEST_PATH, LAB_SERVICES_PORT, REPO_PATH } from './real/server';
import { ensureSimClient } from './sim/client-build';

export type { LabHost, LabRole } from './layout';
export type { LabFault } from './faults';
export { LAB_USER, LAB_PW_USER } from './prepare';
export { LabDirRefusedError } from './cleanup';

export interface LabUpOptions {
  dir: string;
  controlPlanes: number;
  workers: number;
  /** One more host, "bastion", that can reach every other host. */
  bastion?: boolean;
  /** Hosts get 198.18.<subnetIndex>.0/24; default: the lowest free index from 1. */
  subnetIndex?: number;
  /** How long a rebooting host stays down before sshd answers again (default 1500). */
  rebootDelayMs?: number;
  /** 'real': real kubeadm, kubelet, etcd, API servers, containerd and runc (src/lab/real); default 'sim'. */
  kube?: KubeTier;
}

export interface SpecOptions {
  /** metadata.name (default "lab"). */
  name?: string;
  kubernetesVersion?: string;
  /** SSH user: root (default), "kha" (passwordless sudo) or "khapw" (sudo asks a password). */
  user?: string;
  /** Reach the nodes through the bastion host (needs a lab started with bastion). */
  viaBastion?: boolean;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class LabNeedsRootError extends Error {
  constructor() {
    super('kha lab needs root (network namespaces, mounts and sshd); run it as root, e.g. `sudo kha lab up --nodes 3+3 --out lab.yaml`');
    this.name = 'LabNeedsRootError';
  }
}

const DEFAULT_DIR = '/var/lib/kha/lab';
const UP_TIMEOUT_MS = 120_000;
/** Hosts boot a few at a time (supervisor.ts), so a large lab on a busy machine gets longer: 2 s more per host. */
const upTimeoutMs = (hosts: number) => Math.max(UP_TIMEOUT_MS, 60_000 + 2_000 * hosts);
const HOST_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function defaultLabDir(): string {
  return process.env.KHA_LAB_DIR || DEFAULT_DIR;
}

function requireRoot(): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) throw new LabNeedsRootError();
}

/** Hosts run this machine's programs (the lower layer is /): the ones the lab relies on must exist. */
function requireHostPrograms(): void {
  const needed: [string, string][] = [['sshd', 'openssh-server'], ['ssh-keyscan', 'openssh-client'], ['sudo', 'sudo'], ['nsenter', 'util-linux'], ['ip', 'iproute2'], ['perl', 'perl-base']];
  const found = (prog: string) => ['/usr/sbin', '/usr/bin', '/sbin', '/bin'].some((d) => existsSync(join(d, prog)));
  const missing = needed.filter(([prog]) => !found(prog));
  if (missing.length) {
    throw new Error(`kha lab needs ${missing.map(([p]) => p).join(', ')} on this machine: apt-get install ${[...new Set(missing.map(([, pkg]) => pkg))].join(' ')}`);
  }
}

type HostRef = string | LabHost;

export class Lab {
  readonly dir: string;
  readonly hosts: LabHost[];
  readonly subnetIndex: number;
  readonly bridge: string;
  /** This machine's address on the lab bridge. */
  readonly gateway: string;
  /** A free lab address for the control-plane endpoint. */
  readonly vip: string;
  readonly rootKeyPath: string;
  readonly userKeyPath: string;
  readonly pwUserKeyPath: string;
  /** File holding the password of user khapw (for sudo and SSH password login). */
  readonly pwUserPasswordPath: string;
  readonly knownHostsPath: string;
  /** <dir>/shared, mounted read-write at /kha-lab in every host. */
  readonly sharedDir: string;
  readonly kube: KubeTier;
  /** Milliseconds spent in each phase of up() (empty for attach()). */
  upTimings: Record<string, number> = {};
  private readonly p: LabPaths;

  private constructor(state: LabState) {
    this.p = labPaths(state.dir);
    this.dir = state.dir;
    this.hosts = state.hosts.map(({ name, address, role }) => ({ name, address, role }));
    this.subnetIndex = state.subnetIndex;
    this.bridge = state.bridge;
    this.gateway = state.gateway;
    this.vip = state.vip;
    this.rootKeyPath = this.p.rootKey;
    this.userKeyPath = this.p.userKey;
    this.pwUserKeyPath = this.p.pwUserKey;
    this.pwUserPasswordPath = this.p.pwUserPassword;
    this.knownHostsPath = this.p.knownHosts;
    this.sharedDir = this.p.shared;
    this.kube = state.kube ?? 'sim';
  }

  /** Starts a lab in opts.dir, first clearing whatever an earlier run there left. Resolves when every sshd answers. */
  static async up(opts: LabUpOptions): Promise<Lab> {
    requireRoot();
    requireHostPrograms();
    // An installed package ships the client's C source only: the first lab builds it.
    const client = ensureSimClient();
    if (client.built) process.stderr.write(`kha lab: built the sim client ${client.path}\n`);
    else if (client.error) process.stderr.write(`kha lab: no sim client (${client.error}); each simulated tool call starts a Node process\n`);
    const dir = resolve(opts.dir);
    if (!patterns.path.test(dir)) throw new Error(`lab directory ${dir} must be an absolute path of letters, digits and ._+/- only`);
    const timings: Record<string, number> = {};
    let mark = performance.now();
    const phase = (name: string) => {
      const now = performance.now();
      timings[name] = Math.round(now - mark);
      mark = now;
    };
    planHosts(0, opts.controlPlanes, opts.workers, opts.bastion ?? false); // reject bad counts before touching anything
    if (opts.kube === 'real') findRealBinaries(); // says how to build them, before touching anything
    assertLabDir(dir, 'start a lab in it');
    await downDir(dir);
    markLabDir(dir); // before the subnet claim: a crash after it leaves a directory down may clear
    phase('clear');
    const index = await Lab.takeSubnet(dir, opts.subnetIndex);
    phase('subnet');
    const p = labPaths(dir);
    const prefix = subnetPrefix(index);
    const state: LabState = {
      version: 1,
      dir,
      subnetIndex: index,
      bridge: bridgeName(index),
      gateway: `${prefix}.1`,
      vip: `${prefix}.10`,
      rebootDelayMs: opts.rebootDelayMs ?? 1500,
      ...(opts.kube === 'real' ? { kube: 'real' as const } : {}),
      hosts: planHosts(index, opts.controlPlanes, opts.workers, opts.bastion ?? false),
    };
    try {
      mkdirSync(p.hosts, { recursive: true });
      writeJson(p.state, state); // first, so that any clean-up knows what to remove
      // Host layers live in RAM: creating thousands of small files on this machine's disk is slow
      // and erratic, and a tmpfs goes away in one umount.
      await run('mount', ['-t', 'tmpfs', '-o', 'mode=700', 'kha-lab-hosts', p.hosts]);
      writeFileSync(p.initScript, HOST_INIT_SCRIPT, { mode: 0o755 });
      for (const d of [sharedPaths.faultsDir(p.shared), sharedPaths.rebootRequestsDir(p.shared)]) mkdirSync(d, { recursive: true });
      writeClockOffset(p.shared, 0);
      if (state.kube === 'real') {
        const { tier } = prepareRealTier(dir, index, state.gateway);
        writeFileSync(join(p.shared, 'tier.json'), JSON.stringify(tier));
        snapshotMachineDpkg(p.dpkgLower);
        phase('realTier');
      }
      const [users] = await Promise.all([prepareKeys(p), createHostNetworks(state)]);
      phase('keysAndNetwork');
      for (const h of state.hosts) prepareHost(p, state, h.name, users);
      phase('hostLayers');
      await hideMachineHostKeys(p, state.hosts.map((h) => h.name));
      writeFileSync(p.knownHosts, knownHostsText(p, state));
      phase('hostKeys');
      await Lab.startSupervisor(p, state.hosts.length);
      phase('bootUntilSshAnswers');
    } catch (e) {
      await downDir(dir, { keepLog: true }).catch(() => undefined);
      throw e;
    }
    const lab = new Lab(state);
    lab.upTimings = timings;
    return lab;
  }

  private static async takeSubnet(dir: string, wanted: number | undefined): Promise<number> {
    if (wanted !== undefined) {
      subnetPrefix(wanted);
      const other = subnetHeldBy(wanted, dir);
      if (other) throw new Error(`lab subnet ${subnetPrefix(wanted)}.0/24 is used by the running lab in ${other}; choose another subnetIndex or run \`kha lab down --dir ${other}\``);
      await clearSubnet(wanted); // leftovers of a crashed run on this subnet
      if (!(await createBridge(wanted))) throw new Error(`bridge ${bridgeName(wanted)} exists already`);
      claimSubnet(wanted, dir);
      return wanted;
    }
    for (let attempt = 0; attempt < 20; attempt++) {
      const i = pickSubnet();
      if (await createBridge(i)) {
        claimSubnet(i, dir);
        return i;
      }
    }
    throw new Error('could not claim a free lab subnet');
  }

  private static async startSupervisor(p: LabPaths, hosts: number): Promise<void> {
    const log = openSync(p.supervisorLog, 'a');
    const child = spawn(process.execPath, [join(__dirname, 'supervisor.js'), p.dir], { detached: true, stdio: ['ignore', log, log] });
    closeSync(log);
    child.unref();
    const timeoutMs = upTimeoutMs(hosts);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const st = readStatus(p.dir);
      if (st?.ready && st.supervisorPid === child.pid) return;
      if (st?.error) throw new Error(`lab did not start: ${st.error}\n${logTail(p.supervisorLog)}`);
      if (child.exitCode !== null || (child.pid !== undefined && !pidAlive(child.pid))) {
        throw new Error(`lab supervisor exited during start\n${logTail(p.supervisorLog)}`);
      }
      if (Date.now() > deadline) throw new Error(`lab did not start within ${timeoutMs} ms\n${logTail(p.supervisorLog)}`);
      await sleep(25);
    }
  }

  /** A Lab object for a lab already running in dir. */
  static async attach(dir: string): Promise<Lab> {
    const abs = resolve(dir);
    const state = readState(abs);
    if (!state) throw new Error(`no lab in ${abs} (no lab.json); start one with \`kha lab up --dir ${abs}\``);
    return new Lab(state);
  }

  /** Removes everything the lab in dir created; also clears a crashed run. */
  static async downDir(dir: string): Promise<void> {
    requireRoot();
    await downDir(resolve(dir));
  }

  async down(): Promise<void> {
    await Lab.downDir(this.dir);
  }

  /** True while the lab's supervisor process runs. */
  isRunning(): boolean {
    return liveSupervisor(this.dir) !== undefined;
  }

  host(ref: HostRef): LabHost {
    const name = typeof ref === 'string' ? ref : ref.name;
    const h = this.hosts.find((x) => x.name === name || x.address === name);
    if (!h) throw new Error(`no lab host ${name} (hosts: ${this.hosts.map((x) => x.name).join(', ')})`);
    return h;
  }

  get nodes(): LabHost[] {
    return this.hosts.filter((h) => h.role !== 'bastion');
  }

  get bastion(): LabHost | undefined {
    return this.hosts.find((h) => h.role === 'bastion');
  }

  status(): LabStatusFile {
    const st = readStatus(this.dir);
    if (!st) throw new Error(`lab in ${this.dir} has no status (not started?)`);
    return st;
  }

  /** PID (as this machine sees it) of the host's first process, which is its sshd. */
  initPid(ref: HostRef): number {
    const h = this.host(ref);
    const s = this.status().hosts[h.name];
    if (!s || s.state !== 'up' || !s.initPid || !pidAlive(s.initPid)) throw new Error(`lab host ${h.name} is not up (${s?.state ?? 'unknown'})`);
    return s.initPid;
  }

  /** The host's root directory as seen from this machine (changes on every boot). */
  rootDir(ref: HostRef): string {
    return `/proc/${this.initPid(ref)}/root`;
  }

  /** Runs a shell command inside the host (its namespaces and root, as root; not over SSH). */
  exec(ref: HostRef, cmd: string, opts: { input?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
    const pid = this.initPid(ref);
    return new Promise((resolvePromise, reject) => {
      const child = spawn('nsenter', ['-t', String(pid), '-m', '-u', '-i', '-n', '-p', '-r', '-w', '--', '/bin/sh', '-c', cmd], {
        env: { PATH: HOST_PATH, HOME: '/root', LANG: 'C.UTF-8' },
        timeout: opts.timeoutMs ?? 60_000,
        killSignal: 'SIGKILL',
      });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.on('error', reject);
      child.on('close', (code, signal) => resolvePromise({ code: code ?? (signal ? 128 + 9 : 1), stdout, stderr }));
      child.stdin.on('error', () => undefined);
      child.stdin.end(opts.input ?? '');
    });
  }

  readFile(ref: HostRef, path: string): Promise<string> {
    return readFile(join(this.rootDir(ref), path), 'utf8');
  }

  writeFile(ref: HostRef, path: string, content: string): void {
    writeFileSync(join(this.rootDir(ref), path), content);
  }

  async bootId(ref: HostRef): Promise<string> {
    return (await this.readFile(ref, '/proc/sys/kernel/random/boot_id')).trim();
  }

  /** Unexpected reboot: resolves once the host's processes are gone; it answers again after rebootDelayMs. */
  async reboot(ref: HostRef): Promise<void> {
    await this.control({ op: 'reboot', host: this.host(ref).name });
  }

  /** Waits until the host is up (its sshd answers). */
  async waitUp(ref: HostRef, timeoutMs = 30_000): Promise<void> {
    const h = this.host(ref);
    const deadline = Date.now() + timeoutMs;
    while (this.status().hosts[h.name]?.state !== 'up') {
      if (Date.now() > deadline) throw new Error(`lab host ${h.name} not up within ${timeoutMs} ms`);
      await sleep(20);
    }
  }

  /** Cuts the host's link for ms milliseconds: packets to and from it are dropped, nothing is refused. */
  async setUnreachable(ref: HostRef, ms: number): Promise<void> {
    await this.control({ op: 'unreachable', host: this.host(ref).name, ms });
  }

  setFaults(ref: HostRef, faults: LabFault[]): void {
    writeHostFaults(this.sharedDir, this.host(ref).name, { faults });
  }

  clearFaults(ref?: HostRef): void {
    for (const h of ref ? [this.host(ref)] : this.hosts) clearHostFaults(this.sharedDir, h.name);
  }

  /** Extra delay for every simulated command on the host. */
  setLatency(ref: HostRef, ms: number): void {
    writeHostFaults(this.sharedDir, this.host(ref).name, { latencyMs: ms });
  }

  /** Lab clock = real time + seconds (token and certificate-key expiry in the simulated tools). */
  setClockOffset(seconds: number): void {
    writeClockOffset(this.sharedDir, seconds);
  }

  /** The host's SSH host key: "ssh-ed25519 <base64>" and its SHA256 fingerprint as OpenSSH prints it. */
  async hostKey(ref: HostRef): Promise<{ publicKey: string; fingerprint: string }> {
    const [type, b64] = (await this.readFile(ref, '/etc/ssh/ssh_host_ed25519_key.pub')).trim().split(/\s+/);
    const fingerprint = 'SHA256:' + createHash('sha256').update(Buffer.from(b64!, 'base64')).digest('base64').replace(/=+$/, '');
    return { publicKey: `${type} ${b64}`, fingerprint };
  }

  /**
   * Gives the host a new SSH host key (as if it were reinstalled) and makes sshd load it; the lab's
   * known_hosts keeps the old key, so clients that check it see a changed key.
   */
  async rotateHostKey(ref: HostRef): Promise<{ publicKey: string; fingerprint: string }> {
    const h = this.host(ref);
    const pid = this.initPid(h);
    const k = ed25519KeyPair(`root@${h.name}`);
    const root = this.rootDir(h);
    writeFileSync(join(root, 'etc/ssh/ssh_host_ed25519_key'), k.privateKey, { mode: 0o600 });
    writeFileSync(join(root, 'etc/ssh/ssh_host_ed25519_key.pub'), k.publicKey + '\n');
    process.kill(pid, 'SIGHUP'); // sshd re-executes itself and reads its keys again
    const key = await this.hostKey(h);
    const deadline = Date.now() + 10_000;
    while (!(await offersHostKey(h.address, key.publicKey))) {
      if (Date.now() > deadline) throw new Error(`sshd on ${h.name} did not pick up its new host key`);
      await sleep(50);
    }
    return key;
  }

  /** (Re)writes the simulated tools' wrappers in a running host, e.g. after the sim module changed. */
  installTools(ref: HostRef): string[] {
    return writeToolWrappers(this.rootDir(ref));
  }

  /**
   * A cluster file (kha.dev/v1alpha1) for the lab's nodes: SSH with the lab's key, host keys
   * from the lab's known_hosts, VIP = a free lab address on eth0.
   */
  specYaml(opts: SpecOptions = {}): string {
    const user = opts.user ?? 'root';
    const key = user === 'root' ? this.rootKeyPath : user === LAB_USER ? this.userKeyPath : user === LAB_PW_USER ? this.pwUserKeyPath : this.rootKeyPath;
    const bastion = opts.viaBastion ? this.bastion : undefined;
    if (opts.viaBastion && !bastion) throw new Error('this lab has no bastion (start it with bastion: true)');
    const doc = {
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: { name: opts.name ?? 'lab' },
      spec: {
        kubernetes: {
          version: opts.kubernetesVersion ?? '1.35',
          // This machine mounts cgroup v1 (real hosts use v2): the real kubelet and kubeadm must be told.
          ...(this.kube === 'real' ? { allowCgroupV1: true, ignorePreflightErrors: ['SystemVerification'] } : {}),
        },
        ssh: {
          user,
          port: 22,
          privateKeyPath: key,
          knownHosts: { policy: 'known-hosts-file', file: this.knownHostsPath },
          ...(bastion ? { bastion: { address: bastion.address, port: 22, user: 'root', privateKeyPath: this.rootKeyPath } } : {}),
        },
        nodes: this.nodes.map((h) => ({ name: h.name, address: h.address, role: h.role })),
        controlPlaneEndpoint: { name: 'k8s-api.lab.internal', vip: this.vip, port: 6443, interface: 'eth0' },
        ...(this.kube === 'real' ? this.realTierSpec() : {}),
      },
    };
    return `# kha lab in ${this.dir} (subnet ${subnetPrefix(this.subnetIndex)}.0/24)\n` + stringify(doc);
  }

  /** The lab's services stand in for the package repository, the registries and Calico's manifest. */
  private realTierSpec(): Record<string, unknown> {
    const base = `https://${this.gateway}:${LAB_SERVICES_PORT}`;
    const mirror = (registry: string) => ({ registry, endpoints: [base] });
    return {
      // The lab signs its repository with a key of its own, so its files pin that key.
      packages: { repository: `${base}${REPO_PATH}`, keyFingerprint: releaseKeyFingerprint(this.dir) },
      containerRuntime: { registryMirrors: ['registry.k8s.io', 'ghcr.io', 'docker.io'].map(mirror) },
      // This machine's kernel has no IPVS (and loads no modules): kube-proxy runs its nftables mode.
      networking: { kubeProxyMode: 'nftables', calico: { installMethod: 'manifest', manifestUrl: `${base}${CALICO_MANIFEST_PATH}` } },
    };
  }

  /** Kubernetes versions the real tier can install (empty on the simulator). */
  realKubeVersions(): string[] {
    return readTier(this.sharedDir)?.kubeVersions ?? [];
  }

  private async control(req: Parameters<typeof controlRequest>[1]): Promise<void> {
    const r = await controlRequest(this.dir, req);
    if (!r.ok) throw new Error(r.error);
  }
}

function logTail(path: string, lines = 30): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return existsSync(path) ? '' : '(no supervisor log)';
  }
}

/** True when the sshd at address offers exactly this host key (asked with ssh-keyscan). */
async function offersHostKey(address: string, publicKey: string): Promise<boolean> {
  const r = await run('ssh-keyscan', ['-T', '2', '-t', 'ed25519', address], { allowFail: true });
  return r.stdout.split('\n').some((l) => l.split(/\s+/).slice(1, 3).join(' ') === publicKey);
}
