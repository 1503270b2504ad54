// apt-get, apt-cache, apt-mark and dpkg-query over the simulated package repositories.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { dirEntries, err, exists, hp, out, parseArgs, has, readJson, readText, stateDir, writeFileAtomic, writeJson, writeOut, caller } from './env';
import {
  PACKAGES, PLAIN_DEBIAN, activeUnits, debianVersions, installed, kubeVersions, saveActiveUnits, saveInstalled,
  saveUnitFiles, unitFiles, type InstalledPkg,
} from './host';
import { toolWrapperScript } from './tools';
import { keyFileFingerprint, keyFingerprintForUrl } from './net';

interface AptRepo {
  url: string;
  kind: 'kubernetes' | 'docker' | 'other';
  minor?: string;
}
interface AptLists {
  repos: AptRepo[];
}

const listsFile = () => path.join(stateDir(), 'apt-lists.json');

function sourceEntries(): Array<{ url: string; signedBy?: string; file: string }> {
  const r: Array<{ url: string; signedBy?: string; file: string }> = [];
  const files = ['/etc/apt/sources.list', ...dirEntries(hp('/etc/apt/sources.list.d')).map((f) => `/etc/apt/sources.list.d/${f}`)];
  for (const f of files) {
    const text = readText(hp(f));
    if (text === undefined) continue;
    if (f.endsWith('.list')) {
      for (const line of text.split('\n')) {
        const m = /^\s*deb\s+(\[[^\]]*\]\s+)?(\S+)/.exec(line);
        if (!m) continue;
        const sb = m[1] ? /signed-by=(\S+?)[\s\]]/.exec(m[1]) : null;
        r.push({ url: m[2]!, signedBy: sb?.[1], file: f });
      }
    } else if (f.endsWith('.sources')) {
      for (const stanza of text.split(/\n\s*\n/)) {
        const uris = /^URIs:\s*(.+)$/im.exec(stanza);
        const sb = /^Signed-By:\s*(\S+)$/im.exec(stanza);
        if (uris) for (const u of uris[1]!.trim().split(/\s+/)) r.push({ url: u, signedBy: sb?.[1], file: f });
      }
    }
  }
  return r;
}

function classify(url: string): AptRepo {
  const m = /\/v(1\.\d+)\/deb\/?$/.exec(url) ?? /\/v(1\.\d+)\//.exec(url);
  if (m) return { url, kind: 'kubernetes', minor: m[1] };
  if (/docker/.test(url) && /linux/.test(url)) return { url, kind: 'docker' };
  return { url, kind: 'other' };
}

/** The key that signs a repository: the one its key URL serves (Release.key, or Docker's per-distribution gpg). */
function signerOf(repo: AptRepo): string {
  return keyFingerprintForUrl(repo.kind === 'docker' ? `${repo.url.replace(/\/$/, '')}/gpg` : `${repo.url.replace(/\/?$/, '/')}Release.key`);
}

/**
 * A keyring apt can use for the repository: binary OpenPGP (what gpg --dearmor writes), or armored only
 * in a .asc file, holding the key that signs it.
 */
function keyringUsable(p: string, repo: AptRepo): boolean {
  let b: Buffer;
  try {
    b = fs.readFileSync(hp(p));
  } catch {
    return false;
  }
  if (b.length === 0) return false;
  const armored = b.subarray(0, 10).toString('latin1').startsWith('-----BEGIN');
  if (!(armored ? p.endsWith('.asc') : (b[0]! & 0x80) !== 0)) return false;
  const fpr = keyFileFingerprint(b);
  return fpr === undefined || fpr === signerOf(repo);
}

function aptUpdate(): number {
  const repos: AptRepo[] = [];
  let n = 0;
  let bad = false;
  for (const s of sourceEntries()) {
    const repo = classify(s.url);
    if (repo.kind === 'other') continue;
    n++;
    if (s.signedBy && !keyringUsable(s.signedBy, repo)) {
      out(`Get:${n} ${s.url}  InRelease [1189 B]`);
      err(`W: GPG error: ${s.url}  InRelease: The following signatures couldn't be verified because the public key is not available: NO_PUBKEY ${signerOf(repo).slice(-16)}`);
      err(`E: The repository '${s.url}  InRelease' is not signed.`);
      err(`N: Updating from such a repository can't be done securely, and is therefore disabled by default.`);
      bad = true;
      continue;
    }
    out(`Get:${n} ${s.url}  InRelease [1189 B]`);
    repos.push(repo);
  }
  writeJson(listsFile(), { repos } satisfies AptLists);
  out('Reading package lists...');
  return bad ? 100 : 0;
}

interface Offer {
  version: string;
  url: string;
}

/** What the configured (and updated) sources offer for a package, newest last. */
function offers(pkg: string): Offer[] {
  const info = PACKAGES[pkg];
  const lists = readJson<AptLists>(listsFile(), { repos: [] });
  if (info?.source === 'kubernetes') {
    const r: Offer[] = [];
    for (const repo of lists.repos.filter((x) => x.kind === 'kubernetes')) {
      for (const v of kubeVersions(repo.minor!)) r.push({ version: pkg === 'cri-tools' || pkg === 'kubernetes-cni' ? depVersion(pkg, repo.minor!) : v, url: repo.url });
    }
    return dedupe(r);
  }
  if (info?.source === 'docker') {
    const repo = lists.repos.find((x) => x.kind === 'docker');
    return repo ? debianVersions(pkg).map((v) => ({ version: v, url: repo.url })) : [];
  }
  if (info || PLAIN_DEBIAN.includes(pkg)) return debianVersions(pkg).map((v) => ({ version: v, url: 'debian bookworm/main' }));
  return [];
}

function depVersion(pkg: string, minor: string): string {
  return pkg === 'cri-tools' ? `${minor}.0-1.1` : '1.7.1-1.1';
}

function dedupe(o: Offer[]): Offer[] {
  const seen = new Set<string>();
  return o.filter((x) => (seen.has(x.version) ? false : (seen.add(x.version), true)));
}

function cmpVersion(a: string, b: string): number {
  const pa = a.split(/[^0-9]+/).filter(Boolean).map(Number);
  const pb = b.split(/[^0-9]+/).filter(Boolean).map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d) return d;
  }
  return 0;
}

function aptInstall(p: ReturnType<typeof parseArgs>, names: string[]): number {
  const yes = has(p, 'y', 'yes', 'assume-yes') || process.env.KHA_SIM_APT_ASSUME_YES === '1';
  const allowHeld = has(p, 'allow-change-held-packages');
  const allowDown = has(p, 'allow-downgrades');
  const inst = installed();
  const plan: Array<{ pkg: string; version: string }> = [];
  const want = (spec: string) => {
    if (spec.includes('/')) return wantFile(spec);
    const [pkg, ver] = spec.split('=') as [string, string | undefined];
    const o = offers(pkg);
    if (o.length === 0) {
      err(`E: Unable to locate package ${pkg}`);
      return false;
    }
    let version = o.slice().sort((a, b) => cmpVersion(a.version, b.version)).pop()!.version;
    if (ver !== undefined) {
      if (!o.some((x) => x.version === ver)) {
        err(`E: Version '${ver}' for '${pkg}' was not found`);
        return false;
      }
      version = ver;
    } else if (inst[pkg]) version = inst[pkg]!.version; // already installed: apt keeps it
    plan.push({ pkg, version });
    for (const d of PACKAGES[pkg]?.deps ?? []) if (!inst[d] && !plan.some((x) => x.pkg === d) && !names.some((n) => n.split('=')[0] === d)) want(d);
    return true;
  };
  // A downloaded .deb: the sim's carry their package name and version (see curl).
  const wantFile = (file: string) => {
    const text = readText(hp(file));
    const pkg = text === undefined ? undefined : /^Package: (\S+)$/m.exec(text)?.[1];
    const version = text === undefined ? undefined : /^Version: (\S+)$/m.exec(text)?.[1];
    if (!text?.startsWith('!<arch>\n') || !pkg || !version) {
      err(`E: Unsupported file ${file} given on commandline`);
      return false;
    }
    plan.push({ pkg, version });
    return true;
  };
  for (const n of names) if (!want(n)) return 100;
  const changes = plan.filter((x) => inst[x.pkg]?.version !== x.version);
  out('Reading package lists...\nBuilding dependency tree...\nReading state information...');
  for (const x of plan.filter((y) => inst[y.pkg]?.version === y.version)) out(`${x.pkg} is already the newest version (${x.version}).`);
  if (changes.length === 0) {
    out('0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.');
    return 0;
  }
  if (changes.some((x) => inst[x.pkg]?.held) && !allowHeld) {
    out(`The following held packages will be changed:\n  ${changes.filter((x) => inst[x.pkg]?.held).map((x) => x.pkg).join(' ')}`);
    err('E: Held packages were changed and -y was used without --allow-change-held-packages.');
    return 100;
  }
  if (changes.some((x) => inst[x.pkg] && cmpVersion(x.version, inst[x.pkg]!.version) < 0) && !allowDown) {
    err('E: Packages were downgraded and -y was used without --allow-downgrades.');
    return 100;
  }
  if (!yes) {
    out('Do you want to continue? [Y/n] Abort.');
    return 1;
  }
  for (const x of changes) {
    inst[x.pkg] = { version: x.version, held: inst[x.pkg]?.held ?? false } satisfies InstalledPkg;
    out(`Setting up ${x.pkg} (${x.version}) ...`);
    afterInstall(x.pkg);
  }
  saveInstalled(inst);
  return 0;
}

/** What the packages' maintainer scripts leave on a real host: binaries, unit enabled and started, config. */
function afterInstall(pkg: string): void {
  const info = PACKAGES[pkg];
  if (!info) return;
  for (const t of info.tools) writeFileAtomic(hp(`/usr/bin/${t}`), toolWrapperScript(t), 0o755);
  for (const unit of [info.unit, ...(info.units ?? [])]) {
    if (!unit) continue;
    const files = unitFiles();
    if (!files[unit]?.masked) {
      files[unit] = { ...files[unit], enabled: true };
      saveUnitFiles(files);
      const a = activeUnits();
      a[unit] = 'active';
      saveActiveUnits(a);
    }
  }
  if (pkg === 'containerd.io' && !exists(hp('/etc/containerd/config.toml'))) {
    // Docker's package ships a config that disables the CRI plugin: kubeadm needs it rewritten.
    writeFileAtomic(hp('/etc/containerd/config.toml'), 'disabled_plugins = ["cri"]\n');
  }
  if (pkg === 'kubelet') {
    writeFileAtomic(hp('/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf'), '[Service]\nEnvironment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"\nEnvironment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"\n');
    fs.mkdirSync(hp('/etc/kubernetes/manifests'), { recursive: true });
  }
  if (pkg === 'kubernetes-cni') fs.mkdirSync(hp('/opt/cni/bin'), { recursive: true });
}

function aptRemove(p: ReturnType<typeof parseArgs>, names: string[]): number {
  const inst = installed();
  const gone = names.filter((n) => inst[n]);
  if (gone.some((n) => inst[n]!.held) && !has(p, 'allow-change-held-packages')) {
    err('E: Held packages were changed and -y was used without --allow-change-held-packages.');
    return 100;
  }
  for (const n of gone) {
    delete inst[n];
    for (const t of PACKAGES[n]?.tools ?? []) fs.rmSync(hp(`/usr/bin/${t}`), { force: true });
    out(`Removing ${n} ...`);
  }
  saveInstalled(inst);
  return 0;
}

export function aptGet(args: string[]): number {
  const p = parseArgs(args, new Set(['o', 'option', 't', 'target-release']));
  const [verb, ...names] = p.pos;
  switch (verb) {
    case 'update':
      return aptUpdate();
    case 'install':
      return aptInstall(p, names);
    case 'remove':
    case 'purge':
    case 'autoremove':
      return aptRemove(p, names);
    case 'upgrade':
    case 'dist-upgrade':
    case 'clean':
    case 'autoclean':
      return 0;
    default:
      err(`E: Invalid operation ${verb ?? ''}`);
      return 100;
  }
}

export function aptCache(args: string[]): number {
  const p = parseArgs(args, new Set());
  const [verb, ...names] = p.pos;
  const inst = installed();
  if (verb === 'madison') {
    for (const n of names) {
      const o = offers(n).sort((a, b) => cmpVersion(b.version, a.version));
      if (o.length === 0) err(`N: Unable to locate package ${n}`);
      for (const x of o) out(`${n.padStart(10)} | ${x.version.padEnd(12)} | ${x.url} Packages`);
    }
    return 0;
  }
  if (verb === 'policy') {
    for (const n of names) {
      const o = offers(n).sort((a, b) => cmpVersion(b.version, a.version));
      if (o.length === 0 && !inst[n]) {
        err(`N: Unable to locate package ${n}`);
        continue;
      }
      out(`${n}:\n  Installed: ${inst[n]?.version ?? '(none)'}\n  Candidate: ${inst[n]?.held ? inst[n]!.version : o[0]?.version ?? '(none)'}\n  Version table:`);
      for (const x of o) out(`${inst[n]?.version === x.version ? ' ***' : '    '} ${x.version} 500\n        500 ${x.url}  Packages`);
    }
    return 0;
  }
  if (verb === 'show') {
    let rc = 0;
    for (const n of names) {
      const o = offers(n);
      if (o.length === 0) {
        err(`E: No packages found`);
        rc = 100;
      }
      for (const x of o) out(`Package: ${n}\nVersion: ${x.version}\n`);
    }
    return rc;
  }
  if (verb === 'search' || verb === 'pkgnames') {
    for (const n of [...Object.keys(PACKAGES), ...PLAIN_DEBIAN]) if (!names[0] || n.includes(names[0])) out(n);
    return 0;
  }
  err(`E: Invalid operation ${verb ?? ''}`);
  return 100;
}

export function aptMark(args: string[]): number {
  const p = parseArgs(args, new Set());
  const [verb, ...names] = p.pos;
  const inst = installed();
  switch (verb) {
    case 'hold':
    case 'unhold': {
      for (const n of names) {
        if (!inst[n]) {
          if (offers(n).length === 0) {
            err(`E: Unable to locate package ${n}`);
            return 100;
          }
          // apt-mark can hold a package that is not installed yet; keep the mark for when it is.
          out(`${n} set on hold.`);
          continue;
        }
        const hold = verb === 'hold';
        if (inst[n]!.held === hold) out(hold ? `${n} was already set on hold.` : `${n} was already not on hold.`);
        else out(hold ? `${n} set on hold.` : `Canceled hold on ${n}.`);
        inst[n]!.held = hold;
      }
      saveInstalled(inst);
      return 0;
    }
    case 'showhold':
      for (const [n, i] of Object.entries(inst)) if (i.held) out(n);
      return 0;
    default:
      err(`E: Invalid operation ${verb ?? ''}`);
      return 100;
  }
}

export function dpkgQuery(args: string[]): number {
  const inst = installed();
  const p = parseArgs(args, new Set(['f', 'showformat']));
  const names = p.pos;
  const simKnown = (n: string) => n in PACKAGES || n in inst;
  if (names.length && !names.every(simKnown)) {
    const real = ['/usr/bin/dpkg-query'].find((x) => fs.existsSync(x));
    if (real && names.every((n) => !simKnown(n))) {
      const r = spawnSync(real, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      if (r.stdout?.length) writeOut(r.stdout);
      if (r.stderr?.length) caller().write(2, r.stderr);
      return r.status ?? 1;
    }
  }
  const fmt = p.flags.get('f')?.[0] ?? p.flags.get('showformat')?.[0] ?? '${Package}\t${Version}\n';
  let rc = 0;
  for (const n of names) {
    const i = inst[n];
    if (!i) {
      err(`dpkg-query: no packages found matching ${n}`);
      rc = 1;
      continue;
    }
    if (has(p, 's', 'status')) {
      out(`Package: ${n}\nStatus: ${i.held ? 'hold' : 'install'} ok installed\nVersion: ${i.version}`);
      continue;
    }
    writeOut(
      fmt
        .replace(/\$\{Package\}/g, n)
        .replace(/\$\{Version\}/g, i.version)
        .replace(/\$\{Status\}/g, `${i.held ? 'hold' : 'install'} ok installed`)
        .replace(/\$\{db:Status-Abbrev\}/g, i.held ? 'hi ' : 'ii ')
        .replace(/\\n/g, '\n')
        .replace(/\\t/g, '\t'),
    );
  }
  return rc;
}
