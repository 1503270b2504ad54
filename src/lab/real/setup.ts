// What `kha lab up --kube real` prepares on this machine before any host boots: the tier record the sim
// reads, the lab CA and the services' certificate, the package repository's signing key, the images, and
// each host's trust in the lab CA.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
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

function makeReleaseKey(p: RealPaths): void {
  const home = mkdtempSync(join(tmpdir(), 'kha-lab-gpg-'));
  try {
    const env = { ...process.env, GNUPGHOME: home };
    must('gpg', ['--batch', '--passphrase', '', '--quick-gen-key', 'kha lab repository <lab@kha.invalid>', 'ed25519', 'sign', '30d'], env);
    writeFileSync(p.releaseKey, must('gpg', ['--batch', '--armor', '--export'], env));
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

/** Prepares the tier on this machine; returns the record to write as <shared>/tier.json. */
export function prepareRealTier(labDir: string, subnetIndex: number, gateway: string): { tier: TierRecord; catalog: ImageCatalog } {
  const found = findRealBinaries();
  const p = realPaths(labDir);
  mkdirSync(p.dir, { recursive: true, mode: 0o700 });
  makeCertificates(p, gateway);
  makeReleaseKey(p);
  const tier: TierRecord = { kube: 'real', ...found, cgroupPrefix: `kha${subnetIndex}`, gateway };
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
