// What `kha lab up --kube real` prepares on this machine before any host boots: the tier record the sim
// reads, the lab CA and the services' certificate, the package repository's signing key, the images, and
// each host's trust in the lab CA.
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { buildDebs, writeRepository } from './apt-repo';
import { buildImages, type ImageCatalog } from './images';
import { findRealBinaries, type TierRecord } from './tier';

export interface RealPaths {
  dir: string;
  caCert: string;
  caKey: string;
  cert: string;
  key: string;
  releaseKey: string;
  catalog: string;
  /** The Kubernetes apt repository the services serve (src/lab/real/apt-repo.ts). */
  repo: string;
}

export function realPaths(labDir: string): RealPaths {
  const dir = join(labDir, 'real');
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    cert: join(dir, 'services.crt'),
    key: join(dir, 'services.key'),
    releaseKey: join(dir, 'Release.key'),
    catalog: join(dir, 'catalog.json'),
    repo: join(dir, 'repo'),
  };
}

function must(cmd: string, args: string[], env?: NodeJS.ProcessEnv): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: env ?? process.env });
  if (r.status !== 0) throw new Error(`${cmd} ${args.slice(0, 3).join(' ')}: ${r.stderr || r.error?.message}`);
  return r.stdout;
}

function makeCertificates(p: RealPaths, address: string): void {
  must('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '30', '-subj', '/CN=kha lab CA', '-keyout', p.caKey, '-out', p.caCert]);
  const csr = join(p.dir, 'services.csr');
  must('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${address}`, '-keyout', p.key, '-out', csr]);
  const ext = join(p.dir, 'services.ext');
  writeFileSync(ext, `subjectAltName=IP:${address}\nextendedKeyUsage=serverAuth\n`);
  must('openssl', ['x509', '-req', '-in', csr, '-CA', p.caCert, '-CAkey', p.caKey, '-CAcreateserial', '-days', '30', '-extfile', ext, '-out', p.cert]);
}

/** A signing key of this lab: its public half as Release.key; the secret half signs the repository, then goes. */
function makeReleaseKey(p: RealPaths, sign: (gnupgHome: string) => void): void {
  const home = mkdtempSync(join(tmpdir(), 'kha-lab-gpg-'));
  try {
    const env = { ...process.env, GNUPGHOME: home };
    must('gpg', ['--batch', '--passphrase', '', '--quick-gen-key', 'kha lab repository <lab@kha.invalid>', 'ed25519', 'sign', '30d'], env);
    writeFileSync(p.releaseKey, must('gpg', ['--batch', '--armor', '--export'], env));
    sign(home);
  } finally {
    spawnSync('gpgconf', ['--homedir', home, '--kill', 'gpg-agent']);
    rmSync(home, { recursive: true, force: true });
  }
}

/** Prepares the tier on this machine; returns the record to write as <shared>/tier.json. */
export function prepareRealTier(labDir: string, subnetIndex: number, gateway: string): { tier: TierRecord; catalog: ImageCatalog } {
  const found = findRealBinaries();
  const p = realPaths(labDir);
  mkdirSync(p.dir, { recursive: true, mode: 0o700 });
  makeCertificates(p, gateway);
  const tier: TierRecord = { kube: 'real', ...found, cgroupPrefix: `kha${subnetIndex}`, gateway };
  const debs = buildDebs(tier);
  makeReleaseKey(p, (home) => writeRepository(p.repo, debs, home));
  matchConntrackMax();
  const catalog = buildImages(tier);
  writeFileSync(p.catalog, JSON.stringify(catalog));
  return { tier, catalog };
}

/**
 * runc as containerd finds it first on PATH. This machine withholds CAP_SYS_RESOURCE from every process, so none
 * may lower its OOM score: the negative oomScoreAdj of pod sandboxes (-998) and Guaranteed pods (-997) would make
 * runc fail ("can't get final child's PID from pipe"); the wrapper makes them 0 and runs Debian's runc.
 */
export const RUNC_WRAPPER = `#!/bin/sh
# kha lab real tier: see src/lab/real/setup.ts (RUNC_WRAPPER).
prev=""
for a in "$@"; do
  case "$prev" in
    --bundle|-b) [ -f "$a/config.json" ] && sed -i 's/"oomScoreAdj":-[0-9]*/"oomScoreAdj":0/' "$a/config.json" ;;
  esac
  prev="$a"
done
exec /usr/sbin/runc "$@"
`;

/** What a real-tier host has beyond a simulated one: trust in the lab CA, the runc wrapper. */
export function prepareRealHost(upper: string, labDir: string): void {
  trustLabCa(upper, labDir);
  mkdirSync(join(upper, 'usr/local/sbin'), { recursive: true });
  writeFileSync(join(upper, 'usr/local/sbin/runc'), RUNC_WRAPPER, { mode: 0o755 });
  hideMachinePackaging(upper);
}

/** The packages the lab repository offers: a fresh host has none of them, whatever this machine has. */
export const LAB_REPO_PACKAGES = ['kubeadm', 'kubelet', 'kubectl', 'cri-tools', 'kubernetes-cni'];

const listDir = (d: string) => {
  try {
    return readdirSync(d);
  } catch {
    return [];
  }
};

/**
 * The real apt of a host reads this machine's configuration from the lower layer. Hidden there: its sources and
 * downloaded lists (a host has no internet; `apt-get update` reads only what kha writes) and the units it
 * enabled (the sim's systemctl counts a wants link as enabled; a fresh host enables what it installs). Its dpkg
 * database is not the machine's at all: see snapshotMachineDpkg.
 */
function hideMachinePackaging(upper: string): void {
  const hide: string[] = [];
  if (existsSync('/etc/apt/sources.list')) hide.push('/etc/apt/sources.list');
  for (const f of listDir('/etc/apt/sources.list.d')) hide.push(`/etc/apt/sources.list.d/${f}`);
  for (const f of listDir('/var/lib/apt/lists')) if (f.includes('_')) hide.push(`/var/lib/apt/lists/${f}`);
  for (const f of listDir('/etc/systemd/system/multi-user.target.wants')) hide.push(`/etc/systemd/system/multi-user.target.wants/${f}`);
  for (const p of hide) upperDirs(upper, dirname(p));
  if (!hide.length) return;
  const r = spawnSync('sh', ['-c', 'for p; do mknod "$p" c 0 0; done', 'sh', ...hide.map((p) => join(upper, p))], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`lab: cannot hide this machine's apt configuration from the hosts: ${r.stderr || r.error?.message}`);
}

/**
 * Copies this machine's /var/lib/dpkg to dest, once per lab: every host mounts its own overlay over the copy
 * (host-init.ts), so an apt run on this machine during a test cannot change what a host's dpkg reads (it did:
 * "dpkg was interrupted" from the machine's journal in /var/lib/dpkg/updates). Left out of the copy: the
 * records of the lab repository's packages (this machine may have a cloud SDK's kubectl, epoch 1, which apt
 * would see as newer than the lab's). A copy taken while the machine's dpkg is mid-run is retried.
 */
export function snapshotMachineDpkg(dest: string, src = '/var/lib/dpkg'): void {
  for (let attempt = 1; ; attempt++) {
    rmSync(dest, { recursive: true, force: true });
    mkdirSync(dirname(dest), { recursive: true });
    const r = spawnSync('cp', ['-a', '--', src, dest], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`lab: cannot copy ${src} for the hosts: ${r.stderr || r.error?.message}`);
    const journal = listDir(join(dest, 'updates')).filter((f) => /^\d+$/.test(f));
    if (!journal.length) break;
    if (attempt === 10) {
      rmSync(dest, { recursive: true, force: true });
      throw new Error(`lab: this machine's dpkg stays mid-run (${src}/updates holds ${journal.join(', ')}); let it finish and run lab up again`);
    }
    spawnSync('sleep', ['0.5']);
  }
  const ours = new Set(LAB_REPO_PACKAGES);
  for (const f of listDir(join(dest, 'info'))) if (ours.has(f.replace(/(:[a-z0-9]+)?\.[^.]+$/, ''))) rmSync(join(dest, 'info', f));
  const status = join(dest, 'status');
  const stanzas = existsSync(status) ? readFileSync(status, 'utf8').split(/\n{2,}/).filter((st) => st.trim()) : [];
  const kept = stanzas.filter((st) => !ours.has(/^Package: (\S+)$/m.exec(st)?.[1] ?? ''));
  if (kept.length !== stanzas.length) writeFileSync(status, kept.map((st) => `${st.trimEnd()}\n\n`).join(''));
}

/** Creates dir and its parents in the upper layer with this machine's owners and modes (overlay shows the upper's). */
function upperDirs(upper: string, dir: string): void {
  const parts = dir.split('/').filter(Boolean);
  for (let i = 1; i <= parts.length; i++) {
    const d = '/' + parts.slice(0, i).join('/');
    const u = join(upper, d);
    if (existsSync(u)) continue;
    const st = statSync(d);
    mkdirSync(u, { mode: st.mode & 0o7777 });
    chmodSync(u, st.mode & 0o7777);
    chownSync(u, st.uid, st.gid);
  }
}

/**
 * kube-proxy sets nf_conntrack_max to max(32768 per CPU, 131072) unless it already has exactly that value, and
 * only the machine's first network namespace may change it: a lab host's kube-proxy would fail. The lab sets it
 * on this machine (a table size, nothing else changes).
 */
function matchConntrackMax(): void {
  const f = '/proc/sys/net/netfilter/nf_conntrack_max';
  const want = Math.max(32768 * cpus().length, 131072);
  try {
    if (Number(readFileSync(f, 'utf8').trim()) !== want) writeFileSync(f, `${want}\n`);
  } catch {
    // no conntrack module on this machine: kube-proxy loads it and finds the default
  }
}

/** Every host trusts the lab CA (containerd, curl and apt read the system bundle). */
function trustLabCa(upper: string, labDir: string): void {
  const ca = readFileSync(realPaths(labDir).caCert, 'utf8');
  const bundle = '/etc/ssl/certs/ca-certificates.crt';
  const put = (path: string, text: string) => {
    mkdirSync(dirname(join(upper, path)), { recursive: true });
    writeFileSync(join(upper, path), text, { mode: 0o644 });
  };
  put('/usr/local/share/ca-certificates/kha-lab-ca.crt', ca);
  let base = '';
  try {
    if (statSync(bundle).isFile()) base = readFileSync(bundle, 'utf8');
  } catch {
    // no bundle on this machine: the lab CA alone
  }
  put(bundle, base + (base.endsWith('\n') || !base ? '' : '\n') + ca);
}

/** The fingerprint of the lab repository's signing key, which the lab's cluster files pin. */
export function releaseKeyFingerprint(labDir: string): string {
  const home = mkdtempSync(join(tmpdir(), 'kha-lab-gpg-'));
  try {
    const colons = must('gpg', ['--batch', '--homedir', home, '--show-keys', '--with-colons', realPaths(labDir).releaseKey]);
    const fpr = /^pub:.*\nfpr:(?:[^:]*:){8}([0-9A-F]{40}):/m.exec(colons)?.[1];
    if (!fpr) throw new Error(`no key fingerprint in ${realPaths(labDir).releaseKey}`);
    return fpr;
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}
