// The real etcdctl on this machine against a lab cluster's members, with a control plane's health-check client
// certificate copied out once (a reset deletes it on the hosts while the members are still being watched).
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab } from '../../src/lab/lab';

export interface EtcdMemberRow {
  /** Hex, as `member list -w simple` prints it. */
  id: string;
  status: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

export interface EtcdResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class EtcdCtl {
  private constructor(
    private readonly bin: string,
    private readonly pki: string,
    /** Client URLs asked when no endpoint is named: every control plane's. */
    readonly endpoints: string[],
  ) {}

  /** Copies ca.crt and the health-check client pair from `from` into `dir` (0600). */
  static async fromLab(lab: Lab, etcdDir: string, dir: string, from: string): Promise<EtcdCtl> {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (const f of ['ca.crt', 'healthcheck-client.crt', 'healthcheck-client.key']) {
      writeFileSync(join(dir, f), await lab.readFile(from, `/etc/kubernetes/pki/etcd/${f}`), { mode: 0o600 });
    }
    const endpoints = lab.hosts.filter((h) => h.role === 'control-plane').map((h) => `https://${h.address}:2379`);
    return new EtcdCtl(join(etcdDir, 'etcdctl'), dir, endpoints);
  }

  run(args: string[], endpoints: string[] = this.endpoints): Promise<EtcdResult> {
    const p = this.pki;
    const argv = ['--endpoints', endpoints.join(','), '--cacert', join(p, 'ca.crt'), '--cert', join(p, 'healthcheck-client.crt'), '--key', join(p, 'healthcheck-client.key'), '--dial-timeout=2s', '--command-timeout=5s', ...args];
    return new Promise((resolve) => {
      execFile(this.bin, argv, { encoding: 'utf8' }, (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      });
    });
  }

  /** `member list` (linearizable: only a member with quorum answers), or the failure's text. */
  async members(endpoints: string[] = this.endpoints): Promise<EtcdMemberRow[] | string> {
    // One endpoint at a time, in order: a removed member still running must not answer for the cluster.
    const errors: string[] = [];
    for (const e of endpoints) {
      const r = await this.run(['member', 'list', '-w', 'simple'], [e]);
      if (r.code === 0) return parseMemberList(r.stdout);
      errors.push(`${e}: ${(r.stderr || r.stdout).trim().split('\n')[0] || `etcdctl exit ${r.code}`}`);
    }
    return errors.join('; ');
  }

  /** Whether the member at `endpoint` answers a quorum read. */
  async healthy(endpoint: string): Promise<boolean> {
    const r = await this.run(['endpoint', 'health'], [endpoint]);
    return r.code === 0 && / is healthy: /.test(r.stdout + r.stderr);
  }
}

/** Rows of `etcdctl member list -w simple`: ID, status, name, peer URLs, client URLs, is-learner. */
export function parseMemberList(out: string): EtcdMemberRow[] {
  return out
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      const f = l.split(', ');
      if (f.length < 6) throw new Error(`unexpected member list line: ${l}`);
      const urls = (s: string) => s.split(',').filter(Boolean);
      return { id: f[0]!, status: f[1]!, name: f[2]!, peerURLs: urls(f[3]!), clientURLs: urls(f[4]!), isLearner: f[5] === 'true' };
    });
}

/** One look at the cluster while something changes it. */
export type EtcdSample =
  | { at: number; kind: 'ok'; members: string[] }
  | { at: number; kind: 'unhealthy'; members: string[]; unhealthy: string[]; learners: string[] }
  | { at: number; kind: 'unreachable'; error: string };

/**
 * Lists the members, then asks each one listed for a quorum read. A member that fails it is counted only if
 * a second list still names it (one removed between the two calls is gone, not unhealthy).
 */
export async function sampleEtcd(etcd: EtcdCtl): Promise<EtcdSample> {
  const at = Date.now();
  const list = await etcd.members();
  if (typeof list === 'string') return { at, kind: 'unreachable', error: list };
  const bad: string[] = [];
  for (const m of list) {
    const url = m.clientURLs[0];
    if (!url || !(await etcd.healthy(url))) bad.push(m.name || m.id);
  }
  const names = list.map((m) => m.name || m.id).sort();
  const learners = list.filter((m) => m.isLearner).map((m) => m.name || m.id);
  if (bad.length === 0 && learners.length === 0) return { at, kind: 'ok', members: names };
  const again = await etcd.members();
  if (typeof again === 'string') return { at, kind: 'unreachable', error: again };
  const still = new Set(again.map((m) => m.name || m.id));
  const unhealthy = bad.filter((b) => still.has(b));
  const stillLearners = again.filter((m) => m.isLearner).map((m) => m.name || m.id);
  if (unhealthy.length === 0 && stillLearners.length === 0) return { at, kind: 'ok', members: [...still].sort() };
  return { at, kind: 'unhealthy', members: [...still].sort(), unhealthy, learners: stillLearners };
}

/**
 * What is wrong with a teardown seen through `samples`: a listed member that was not healthy (or a learner), a
 * step that removed more than one member or not in `order`, or etcd unreachable while more than the last member
 * was left. `order` is the member sets expected one after another, ending with the last member alone. The last
 * member may answer unhealthy once it is alone: that is its own reset stopping it. A sampler slowed by a loaded
 * machine can miss a set: with `sequential` (the workflow's history shows each member's node reset before the
 * next one's began) sets seen in order with some missing are no problem.
 */
export function teardownProblems(samples: EtcdSample[], order: string[][], opts: { sequential?: boolean } = {}): string[] {
  const problems: string[] = [];
  const seen: string[][] = [];
  const lastAlone = [...order.at(-1)!].sort().join(',');
  for (const s of samples) {
    const t = new Date(s.at).toISOString();
    if (s.kind === 'unhealthy' && !(s.members.join(',') === lastAlone && s.learners.length === 0)) {
      problems.push(`${t}: members [${s.members.join(',')}] listed, not healthy: [${s.unhealthy.join(',')}]${s.learners.length ? `, learners: [${s.learners.join(',')}]` : ''}`);
    }
    if (s.kind === 'unreachable') {
      const last = seen.at(-1);
      if (!last || last.length > 1) problems.push(`${t}: no member answered while [${(last ?? []).join(',')}] were members: ${s.error.split('\n')[0]}`);
      continue;
    }
    const key = s.members.join(',');
    if (seen.at(-1)?.join(',') !== key) seen.push(s.members);
  }
  const want = order.map((m) => [...m].sort().join(','));
  const got = seen.map((m) => m.join(','));
  const inOrder = got[0] === want[0] && got.at(-1) === want.at(-1) && got.every((g, i) => i === 0 || want.indexOf(g) > want.indexOf(got[i - 1]!));
  if (got.join(' → ') !== want.join(' → ') && !(opts.sequential && inOrder)) problems.push(`member sets seen [${got.join('] → [')}], expected [${want.join('] → [')}]`);
  return problems;
}

/** The member sets seen, each with the seconds since the first sample when it was first seen. */
export function describeSamples(samples: EtcdSample[]): string {
  const t0 = samples[0]?.at ?? 0;
  const out: string[] = [];
  let last = '';
  for (const s of samples) {
    const key = s.kind === 'unreachable' ? 'unreachable' : `[${s.members.join(',')}]${s.kind === 'unhealthy' ? ` unhealthy [${s.unhealthy.join(',')}]` : ''}`;
    if (key !== last) out.push(`+${((s.at - t0) / 1000).toFixed(1)}s ${key}`);
    last = key;
  }
  return out.join(' → ');
}
