// The lab's "real" tier: which real Kubernetes binaries exist (built by scripts/kube-build.sh into a
// versioned cache) and the lab-wide record, <shared>/tier.json, that tells the simulated tools which parts
// are real. Used by the lab on this machine and by the sim inside hosts.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export type KubeTier = 'sim' | 'real';

export const KUBE_TOOLS = ['kubeadm', 'kubelet', 'kubectl', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler'] as const;

/** What the sim reads from <shared>/tier.json. Absent file: the simulator tier. */
export interface TierRecord {
  kube: KubeTier;
  /** The binary cache (visible inside hosts: the lower layer is this machine's /). */
  cache: string;
  /** Built Kubernetes patches, e.g. ["1.34.4", "1.35.4"]. */
  kubeVersions: string[];
  etcdDir: string;
  crictl: string;
  standinsDir: string;
  /** Per host, the kubelet's cgroup root is <cgroupPrefix>-<host>. */
  cgroupPrefix: string;
}

export function kubeCacheDir(): string {
  return process.env.KHA_KUBE_CACHE || '/var/cache/kha/kube';
}

const complete = (d: string) => existsSync(join(d, '.complete'));

function builtDirs(parent: string): string[] {
  if (!existsSync(parent)) return [];
  return readdirSync(parent)
    .map((v) => join(parent, v))
    .filter(complete);
}

const semverKey = (v: string) => v.replace(/^v/, '').split('.').map((x) => x.padStart(4, '0')).join('.');

/** The cache's contents, or an error that says how to fill it. */
export function findRealBinaries(cache = kubeCacheDir()): Omit<TierRecord, 'kube' | 'cgroupPrefix'> {
  const kubeVersions = builtDirs(join(cache, 'kubernetes'))
    .map((d) => d.slice(d.lastIndexOf('/') + 2))
    .sort((a, b) => semverKey(a).localeCompare(semverKey(b)));
  const etcd = builtDirs(join(cache, 'etcd')).sort().at(-1);
  const crictl = builtDirs(join(cache, 'crictl')).sort().at(-1);
  const standins = builtDirs(join(cache, 'standins'));
  const missing = [
    kubeVersions.length ? null : 'Kubernetes',
    etcd ? null : 'etcd',
    crictl ? null : 'crictl',
    standins.length ? null : 'the lab stand-ins',
  ].filter(Boolean);
  if (missing.length) {
    throw new Error(`the real tier needs ${missing.join(', ')} built in ${cache}: run \`bash scripts/kube-build.sh\` (about 17 minutes per Kubernetes version, once)`);
  }
  // The newest stand-in build is the one of the current sources (kube-build.sh keys them by source hash).
  const newest = standins.sort((a, b) => mtime(b) - mtime(a))[0]!;
  return { cache, kubeVersions, etcdDir: etcd!, crictl: join(crictl!, 'crictl'), standinsDir: newest };
}

function mtime(dir: string): number {
  return statSync(join(dir, '.complete')).mtimeMs;
}

export function kubeBinDir(t: Pick<TierRecord, 'cache'>, version: string): string {
  return join(t.cache, 'kubernetes', `v${version.replace(/^v/, '')}`);
}

export function readTier(sharedDir: string): TierRecord | undefined {
  try {
    return JSON.parse(readFileSync(join(sharedDir, 'tier.json'), 'utf8')) as TierRecord;
  } catch {
    return undefined;
  }
}
