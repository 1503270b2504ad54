// The lab's long-running process (`node supervisor.js <dir>`, started detached by Lab.up).
// It boots every host, restarts a host after a reboot (requested by a test, by the host's own
// `reboot` through <shared>/reboot-requests, or because its PID 1 died), cuts links for
// "unreachable" faults, and publishes host states in <dir>/status.json.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, createConnection, type Server } from 'node:net';
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { sharedPaths } from './faults';
import { labPaths, readState, writeJson, type HostRunState, type LabState, type LabStatusFile } from './layout';
import { NETNS_DIR, setLinkUp } from './net';
import { sleep } from '../util/sleep';
import type { ControlRequest, ControlResponse } from './control';
import { readTier, type TierRecord } from './real/tier';
import { realPaths } from './real/setup';
import { startLabServices } from './real/server';
import type { ImageCatalog } from './real/images';

interface HostRuntime {
  name: string;
  address: string;
  netns: string;
  veth: string;
  state: HostRunState;
  child?: ChildProcess;
  exited?: Promise<void>;
  initPid?: number;
  boots: number;
  unreachableUntil?: number;
  unreachableTimer?: NodeJS.Timeout;
  /** Serialises reboots and stops of this host. */
  busy: Promise<void>;
}

const READY_TIMEOUT_MS = 30_000;
/** Hosts booting at once (KHA_LAB_BOOT_CONCURRENCY overrides). */
const BOOT_CONCURRENCY = 8;

/** Resolves once something on address:22 sends an SSH banner. */
export async function waitSshBanner(address: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = createConnection({ host: address, port: 22 });
      let buf = '';
      const done = (v: boolean) => {
        s.destroy();
        resolve(v);
      };
      s.setTimeout(1000, () => done(false));
      s.on('data', (d) => {
        buf += d.toString('latin1');
        if (buf.startsWith('SSH-')) done(true);
      });
      s.on('error', () => done(false));
      s.on('close', () => done(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`sshd on ${address} did not answer within ${timeoutMs} ms`);
    await sleep(20);
  }
}

class Supervisor {
  private readonly p;
  private readonly hosts = new Map<string, HostRuntime>();
  private server?: Server;
  private stopping = false;
  private ready = false;
  private error?: string;
  private rebootPoll?: NodeJS.Timeout;
  private readonly tier?: TierRecord;
  private services?: { close(): void };

  constructor(private readonly state: LabState) {
    this.p = labPaths(state.dir);
    this.tier = state.kube === 'real' ? readTier(this.p.shared) : undefined;
    for (const h of state.hosts) {
      this.hosts.set(h.name, { name: h.name, address: h.address, netns: h.netns, veth: h.veth, state: 'stopped', boots: 0, busy: Promise.resolve() });
    }
  }

  async main(): Promise<void> {
    writeFileSync(this.p.supervisorPid, `${process.pid}\n`);
    mkdirSync(sharedPaths.rebootRequestsDir(this.p.shared), { recursive: true });
    await this.listen();
    if (this.tier) await this.startServices(this.tier);
    process.on('SIGTERM', () => void this.shutdown().then(() => process.exit(0)));
    process.on('SIGINT', () => void this.shutdown().then(() => process.exit(0)));
    this.publish();
    try {
      // A few hosts at a time: each boot (overlay, sshd, a Node sim server) is CPU-bound, and 103 at once on a
      // busy 2-core machine left every host's sshd past its 30 s deadline, though each alone boots in well under 1 s.
      const waiting = [...this.hosts.values()];
      const slots = Math.max(1, Number(process.env.KHA_LAB_BOOT_CONCURRENCY) || BOOT_CONCURRENCY);
      const next: Array<() => void> = [];
      let running = 0;
      const slot = async (): Promise<() => void> => {
        if (running >= slots) await new Promise<void>((r) => next.push(r));
        running++;
        return () => {
          running--;
          next.shift()?.();
        };
      };
      await Promise.all(
        waiting.map((h) => {
          const booted = slot().then(async (done) => {
            try {
              await this.boot(h);
            } finally {
              done();
            }
          });
          h.busy = booted.catch(() => undefined);
          return booted;
        }),
      );
      this.ready = true;
    } catch (e) {
      this.error = e instanceof Error ? e.message : String(e);
    }
    this.publish();
    this.rebootPoll = setInterval(() => this.scanRebootRequests(), 100);
  }

  /** The real tier's registry, package index and manifests on the bridge address (src/lab/real/server.ts). */
  private async startServices(tier: TierRecord): Promise<void> {
    const rp = realPaths(this.state.dir);
    this.services = (await startLabServices({
      address: this.state.gateway,
      tier,
      catalog: JSON.parse(readFileSync(rp.catalog, 'utf8')) as ImageCatalog,
      certPem: readFileSync(rp.cert, 'utf8'),
      keyPem: readFileSync(rp.key, 'utf8'),
      releaseKey: readFileSync(rp.releaseKey, 'utf8'),
      repoDir: rp.repo,
      log: (m) => this.log(m),
    }));
  }

  private publish(): void {
    const s: LabStatusFile = { supervisorPid: process.pid, ready: this.ready, error: this.error, hosts: {} };
    for (const h of this.hosts.values()) s.hosts[h.name] = { state: h.state, unreachableUntil: h.unreachableUntil, initPid: h.initPid, boots: h.boots };
    writeJson(this.p.status, s);
  }

  private log(msg: string): void {
    process.stderr.write(`${new Date().toISOString()} ${msg}\n`);
  }

  /** Starts the host's PID 1 (see host-init.ts) and waits for its sshd. */
  private async boot(h: HostRuntime): Promise<void> {
    h.state = 'starting';
    this.publish();
    const started = Date.now();
    const hp = this.p.host(h.name);
    rmSync(hp.initPid, { force: true });
    const log = openSync(hp.log, 'a');
    const child = spawn(
      'nsenter',
      [`--net=${NETNS_DIR}/${h.netns}`, 'unshare', '--mount', '--uts', '--ipc', '--pid', '--fork', '--kill-child', '--propagation', 'private', 'sh', this.p.initScript],
      {
        stdio: ['ignore', log, log],
        env: {
          PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
          KHA_HOST: h.name,
          KHA_HOSTDIR: hp.dir,
          KHA_LABDIR: this.state.dir,
          KHA_SHARED: this.p.shared,
          // The sim tools run from this checkout: hosts must see it even where their /tmp or /run hides it.
          KHA_PROJECT: resolve(__dirname, '..', '..', '..'),
          ...(this.tier ? { KHA_CGROUP: `${this.tier.cgroupPrefix}-${h.name}`, KHA_DPKG_LOWER: this.p.dpkgLower } : {}),
          // The host's resident sim server (sim/server.ts); KHA_LAB_SIM_SERVER=0 leaves every tool call a
          // process of its own, as a baseline for the benchmarks.
          ...(process.env.KHA_LAB_SIM_SERVER === '0' ? {} : { KHA_SIM_NODE: process.execPath, KHA_SIM_SERVER: resolve(__dirname, 'sim', 'server.js') }),
        },
      },
    );
    closeSync(log);
    h.child = child;
    h.exited = new Promise((resolve) => child.on('exit', () => resolve()));
    child.on('exit', (code, signal) => this.onExit(h, child, code, signal));
    const died = h.exited.then(() => {
      throw new Error(`${h.name}: PID 1 exited during boot (code ${child.exitCode}): ${tail(hp.log)}`);
    });
    await Promise.race([waitSshBanner(h.address, READY_TIMEOUT_MS), died]);
    died.catch(() => undefined);
    h.initPid = Number(readFileSync(hp.initPid, 'utf8').trim());
    await this.waitSimServer(h.initPid);
    h.boots++;
    h.state = 'up';
    this.log(`${h.name} up in ${Date.now() - started} ms (pid ${h.initPid}, boot ${h.boots})`);
    this.publish();
  }

  /**
   * A host is up once its simulated tools answer too: the sim server's socket exists. Without it the tools
   * still work (each call as a Node process of its own), so a slow start is logged, not fatal.
   */
  private async waitSimServer(initPid: number): Promise<void> {
    if (process.env.KHA_LAB_SIM_SERVER === '0') return;
    const sock = `/proc/${initPid}/root/run/kha-sim-server.sock`;
    const deadline = Date.now() + 30_000;
    while (!existsSync(sock)) {
      if (Date.now() > deadline) {
        this.log(`pid ${initPid}: the sim server did not start within 30 s; tools run as processes of their own`);
        return;
      }
      await sleep(50);
    }
  }

  /** PID 1 of a host ended without us asking: the host crashed or rebooted itself; bring it back. */
  private onExit(h: HostRuntime, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (h.child !== child) return;
    h.child = undefined;
    h.initPid = undefined;
    // A failed first boot is reported by boot(); a reboot in progress restarts the host itself.
    if (this.stopping || h.boots === 0 || h.state === 'rebooting' || h.state === 'stopped') return;
    this.log(`${h.name}: PID 1 ended (code ${code}, signal ${signal}); restarting it`);
    void this.reboot(h.name, false).catch((e: unknown) => this.log(`${h.name}: restart failed: ${String(e)}`));
  }

  /** Kills every process of the host, new boot id and runtime state, sshd back after the delay. */
  reboot(name: string, kill = true, onDown?: () => void): Promise<void> {
    const h = this.mustHost(name);
    const next = h.busy.then(async () => {
      if (this.stopping) throw new Error('the lab is shutting down');
      h.state = 'rebooting';
      this.publish();
      await this.kill(h, kill);
      this.publish();
      onDown?.();
      writeFileSync(this.p.host(h.name).bootId, randomUUID() + '\n');
      this.log(`${h.name} rebooting, back in ${this.state.rebootDelayMs} ms`);
      await sleep(this.state.rebootDelayMs);
      if (!this.stopping) await this.boot(h);
    });
    h.busy = next.catch(() => undefined);
    return next;
  }

  private async kill(h: HostRuntime, kill: boolean): Promise<void> {
    const child = h.child;
    const initPid = h.initPid ?? readPid(this.p.host(h.name).initPid);
    // PID 1 of the namespace: the kernel kills the rest. Before PID 1 is known (still booting),
    // kill unshare, whose --kill-child takes PID 1 along.
    const target = initPid ?? child?.pid;
    if (kill && target) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (child && h.exited) await h.exited;
    h.child = undefined;
    h.initPid = undefined;
  }

  async unreachable(name: string, ms: number): Promise<void> {
    const h = this.mustHost(name);
    clearTimeout(h.unreachableTimer);
    await setLinkUp(h.veth, false);
    h.unreachableUntil = Date.now() + ms;
    this.publish();
    h.unreachableTimer = setTimeout(() => {
      h.unreachableUntil = undefined;
      void setLinkUp(h.veth, true).then(
        () => this.publish(),
        (e: unknown) => this.log(`${h.name}: cannot bring link back: ${String(e)}`),
      );
    }, ms);
  }

  private scanRebootRequests(): void {
    const dir = sharedPaths.rebootRequestsDir(this.p.shared);
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      return;
    }
    for (const f of entries) {
      if (f.endsWith('.tmp')) continue;
      const name = f.replace(/\.json$/, '');
      rmSync(`${dir}/${f}`, { force: true });
      if (!this.hosts.has(name)) continue;
      this.log(`${name} asked to reboot`);
      void this.reboot(name).catch((e: unknown) => this.log(`${name}: reboot failed: ${String(e)}`));
    }
  }

  async shutdown(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.rebootPoll);
    await Promise.all(
      [...this.hosts.values()].map(async (h) => {
        clearTimeout(h.unreachableTimer);
        await this.kill(h, true);
        h.state = 'stopped';
      }),
    );
    this.publish();
    this.server?.close();
    this.services?.close();
    rmSync(this.p.control, { force: true });
  }

  private mustHost(name: string): HostRuntime {
    const h = this.hosts.get(name);
    if (!h) throw new Error(`no lab host named ${name}`);
    return h;
  }

  private listen(): Promise<void> {
    rmSync(this.p.control, { force: true });
    this.server = createServer((sock) => {
      let buf = '';
      sock.setEncoding('utf8');
      sock.on('error', () => undefined);
      sock.on('data', (d: string) => {
        buf += d;
        const nl = buf.indexOf('\n');
        if (nl < 0) return;
        const reply = (r: ControlResponse) => sock.end(JSON.stringify(r) + '\n');
        let req: ControlRequest;
        try {
          req = JSON.parse(buf.slice(0, nl)) as ControlRequest;
        } catch {
          return reply({ ok: false, error: 'bad request' });
        }
        this.handle(req).then(
          () => reply({ ok: true }),
          (e: unknown) => reply({ ok: false, error: e instanceof Error ? e.message : String(e) }),
        );
      });
    });
    return new Promise((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.p.control, () => resolve());
    });
  }

  private async handle(req: ControlRequest): Promise<void> {
    switch (req.op) {
      case 'ping':
        return;
      case 'reboot': {
        // Answer once the host is down; it comes back on its own.
        return new Promise<void>((resolve, reject) => {
          this.reboot(req.host, true, resolve).catch(reject);
        });
      }
      case 'unreachable':
        return this.unreachable(req.host, req.ms);
      case 'shutdown':
        await this.shutdown();
        setTimeout(() => process.exit(0), 10);
        return;
    }
  }
}

function tail(path: string): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-5).join(' | ');
  } catch {
    return '';
  }
}

function readPid(path: string): number | undefined {
  try {
    const n = Number(readFileSync(path, 'utf8').trim());
    return n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

if (require.main === module) {
  const dir = process.argv[2];
  const state = dir ? readState(dir) : undefined;
  if (!state) {
    process.stderr.write(`usage: supervisor <lab dir with lab.json>\n`);
    process.exit(2);
  }
  new Supervisor(state).main().catch((e: unknown) => {
    process.stderr.write(`supervisor: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  });
}
