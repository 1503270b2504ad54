// The real tier's Kubernetes apt repository: .deb packages of the built binaries (kubeadm, kubelet, kubectl at
// pkgs.k8s.io-style versions X.Y.Z-1.1, cri-tools, kubernetes-cni), and per minor a flat repository
// (`<base>/v1.35/deb/` with Packages, Release, InRelease) signed with the lab's own key. Hosts install from it
// with the real apt, dpkg and apt-mark through the packages phase as kha renders it.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { kubeBinDir, type TierRecord } from './tier';

/** Changes whenever what a package holds changes (the cache key of every built .deb includes it). */
const RECIPE_VERSION = 1;
const KUBERNETES_CNI_VERSION = '1.7.1';
const MAINTAINER = 'kha lab <lab@kha.invalid>';

// Our own unit text with the contract kubeadm relies on: the kubelet restarts forever, the drop-in adds the
// files kubeadm writes (bootstrap and node kubeconfig, config.yaml, kubeadm-flags.env, /etc/default/kubelet).
const KUBELET_SERVICE = `[Unit]
Description=kubelet, the node agent of Kubernetes (kha lab package)
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
RestartSec=10
StartLimitInterval=0

[Install]
WantedBy=multi-user.target
`;

const KUBEADM_DROP_IN = `# kha lab package: how kubeadm runs the kubelet. kubeadm init/join write the files named here.
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
`;

// Enabled on first install (a vendor preset of "enabled"); deb-systemd-helper remembers an admin's disable.
const KUBELET_POSTINST = `#!/bin/sh
set -e
if [ "$1" = configure ] && command -v deb-systemd-helper >/dev/null; then
  if deb-systemd-helper --quiet was-enabled kubelet.service; then
    deb-systemd-helper enable kubelet.service >/dev/null || true
  else
    deb-systemd-helper update-state kubelet.service >/dev/null || true
  fi
fi
`;

const KUBELET_POSTRM = `#!/bin/sh
set -e
if [ "$1" = purge ] && command -v deb-systemd-helper >/dev/null; then
  deb-systemd-helper purge kubelet.service >/dev/null || true
fi
`;

interface DebRecipe {
  name: string;
  version: string;
  depends?: string;
  description: string;
  /** Path in the package -> this machine's file (a binary), copied with mode 0755. */
  binaries: Record<string, string>;
  /** Path in the package -> text, mode 0644. */
  files?: Record<string, string>;
  dirs?: string[];
  scripts?: Partial<Record<'postinst' | 'postrm', string>>;
}

export interface BuiltDeb {
  name: string;
  version: string;
  /** The control fields of the package (what Packages repeats). */
  control: string;
  path: string;
  size: number;
  sha256: string;
}

function debArch(): string {
  const r = spawnSync('dpkg', ['--print-architecture'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : 'amd64';
}

function recipes(t: TierRecord): Map<string, DebRecipe[]> {
  const crictlVersion = /\/v(\d+\.\d+\.\d+)\/crictl$/.exec(t.crictl)?.[1] ?? '1.34.0';
  const shared: DebRecipe[] = [
    {
      name: 'cri-tools',
      version: `${crictlVersion}-1.1`,
      description: 'crictl, the command line of the Container Runtime Interface',
      binaries: { '/usr/bin/crictl': t.crictl },
    },
    {
      name: 'kubernetes-cni',
      version: `${KUBERNETES_CNI_VERSION}-1.1`,
      description: 'the directory of CNI plugins (the lab\'s network add-on installs its own)',
      binaries: {},
      dirs: ['/opt/cni/bin', '/etc/cni/net.d'],
    },
  ];
  const byMinor = new Map<string, DebRecipe[]>();
  for (const v of t.kubeVersions) {
    const minor = v.split('.').slice(0, 2).join('.');
    const bin = (tool: string) => join(kubeBinDir(t, v), tool);
    const list = byMinor.get(minor) ?? [...shared];
    list.push(
      {
        name: 'kubelet',
        version: `${v}-1.1`,
        depends: 'kubernetes-cni (>= 1.1.1), iptables, iproute2, mount',
        description: 'the Kubernetes node agent',
        binaries: { '/usr/bin/kubelet': bin('kubelet') },
        files: { '/lib/systemd/system/kubelet.service': KUBELET_SERVICE },
        dirs: ['/etc/kubernetes/manifests'],
        scripts: { postinst: KUBELET_POSTINST, postrm: KUBELET_POSTRM },
      },
      {
        name: 'kubeadm',
        version: `${v}-1.1`,
        depends: 'kubelet (>= 1.30.0), kubectl (>= 1.30.0), cri-tools (>= 1.30.0)',
        description: 'bootstraps Kubernetes clusters',
        binaries: { '/usr/bin/kubeadm': bin('kubeadm') },
        files: { '/lib/systemd/system/kubelet.service.d/10-kubeadm.conf': KUBEADM_DROP_IN },
      },
      {
        name: 'kubectl',
        version: `${v}-1.1`,
        description: 'the Kubernetes command line',
        binaries: { '/usr/bin/kubectl': bin('kubectl') },
      },
    );
    byMinor.set(minor, list);
  }
  return byMinor;
}

function controlText(r: DebRecipe, arch: string, installedKb: number): string {
  return [
    `Package: ${r.name}`,
    `Version: ${r.version}`,
    `Architecture: ${arch}`,
    `Maintainer: ${MAINTAINER}`,
    `Installed-Size: ${installedKb}`,
    ...(r.depends ? [`Depends: ${r.depends}`] : []),
    'Section: admin',
    'Priority: optional',
    'Homepage: https://kubernetes.io',
    `Description: ${r.description}`,
    ' Built by the kha lab from the binaries in its cache, for its real tier.',
    '',
  ].join('\n');
}

function must(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.slice(0, 4).join(' ')}: ${r.stderr || r.error?.message}`);
}

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** Builds one package into the cache unless a build of the same recipe and binaries is there. */
function buildDeb(cacheDir: string, r: DebRecipe, arch: string): BuiltDeb {
  const key = createHash('sha256')
    .update(JSON.stringify({ RECIPE_VERSION, r, arch, bins: Object.values(r.binaries).map((b) => [b, statSync(b).size, statSync(b).mtimeMs]) }))
    .digest('hex')
    .slice(0, 16);
  const base = join(cacheDir, `${r.name}_${r.version}_${arch}.${key}`);
  const meta = `${base}.json`;
  if (existsSync(meta) && existsSync(`${base}.deb`)) return JSON.parse(readFileSync(meta, 'utf8')) as BuiltDeb;
  // Per-process names: two labs starting at once may build the same package; the renames make either win whole.
  const root = `${base}.${process.pid}.tree`;
  const tmp = `${base}.${process.pid}.tmp`;
  rmSync(root, { recursive: true, force: true });
  try {
    let bytes = 0;
    const mk = (p: string) => mkdirSync(join(root, p), { recursive: true, mode: 0o755 });
    mk('DEBIAN');
    for (const d of r.dirs ?? []) mk(d);
    for (const [to, from] of Object.entries(r.binaries)) {
      mk(to.slice(0, to.lastIndexOf('/')));
      writeFileSync(join(root, to), readFileSync(from), { mode: 0o755 });
      bytes += statSync(from).size;
    }
    for (const [to, text] of Object.entries(r.files ?? {})) {
      mk(to.slice(0, to.lastIndexOf('/')));
      writeFileSync(join(root, to), text, { mode: 0o644 });
      bytes += text.length;
    }
    for (const [name, text] of Object.entries(r.scripts ?? {})) writeFileSync(join(root, 'DEBIAN', name), text, { mode: 0o755 });
    const control = controlText(r, arch, Math.ceil(bytes / 1024));
    writeFileSync(join(root, 'DEBIAN/control'), control);
    // zstd at level 1: a third of the size of an uncompressed kubelet package for ~0.1 s more than none.
    must('dpkg-deb', ['--root-owner-group', '-Zzstd', '-z1', '--build', root, tmp]);
    const built: BuiltDeb = { name: r.name, version: r.version, control, path: `${base}.deb`, size: statSync(tmp).size, sha256: sha256File(tmp) };
    renameSync(tmp, `${base}.deb`);
    writeFileSync(tmp, JSON.stringify(built));
    renameSync(tmp, meta);
    return built;
  } finally {
    rmSync(root, { recursive: true, force: true });
    rmSync(tmp, { force: true });
  }
}

/** The packages of every built version, per minor ("1.35"), built into <cache>/debs once. */
export function buildDebs(t: TierRecord): Map<string, BuiltDeb[]> {
  const cacheDir = join(t.cache, 'debs');
  mkdirSync(cacheDir, { recursive: true });
  const arch = debArch();
  const out = new Map<string, BuiltDeb[]>();
  for (const [minor, list] of recipes(t)) out.set(minor, list.map((r) => buildDeb(cacheDir, r, arch)));
  return out;
}

export const debFileName = (d: Pick<BuiltDeb, 'name' | 'version'>, arch: string) => `${d.name}_${d.version}_${arch}.deb`;
const archOf = (d: BuiltDeb) => /^Architecture: (\S+)$/m.exec(d.control)?.[1] ?? 'amd64';

/** The Packages index of one minor's repository: each package's control fields, where it is, its hashes. */
export function packagesText(debs: BuiltDeb[]): string {
  return debs
    .map((d) => {
      const arch = archOf(d);
      const fields = d.control.trimEnd().split('\n');
      const at = fields.findIndex((l) => l.startsWith('Description:'));
      return [...fields.slice(0, at), `Filename: ${debFileName(d, arch)}`, `Size: ${d.size}`, `SHA256: ${d.sha256}`, ...fields.slice(at), ''].join('\n');
    })
    .join('\n');
}

export function releaseText(minor: string, packages: string, arch: string, date = new Date()): string {
  const sum = createHash('sha256').update(packages).digest('hex');
  return [
    'Origin: kha lab',
    `Label: kha lab Kubernetes v${minor}`,
    `Architectures: ${arch}`,
    `Date: ${date.toUTCString().replace('GMT', 'UTC')}`,
    'SHA256:',
    ` ${sum} ${Buffer.byteLength(packages)} Packages`,
    '',
  ].join('\n');
}

/**
 * Writes <repoDir>/v<minor>/deb/ for every minor: Packages, Release, InRelease and Release.gpg signed by the
 * key in gnupgHome, and links to the cached .deb files.
 */
export function writeRepository(repoDir: string, debs: Map<string, BuiltDeb[]>, gnupgHome: string): void {
  rmSync(repoDir, { recursive: true, force: true });
  for (const [minor, list] of debs) {
    const d = join(repoDir, `v${minor}`, 'deb');
    mkdirSync(d, { recursive: true });
    const packages = packagesText(list);
    writeFileSync(join(d, 'Packages'), packages);
    const arch = archOf(list[0]!);
    writeFileSync(join(d, 'Release'), releaseText(minor, packages, arch));
    signRelease(d, gnupgHome);
    for (const deb of list) symlinkSync(deb.path, join(d, debFileName(deb, archOf(deb))));
  }
}

/** InRelease (clear-signed) and Release.gpg (detached) of <dir>/Release with the default key of gnupgHome. */
export function signRelease(dir: string, gnupgHome: string): void {
  const gpg = ['--homedir', gnupgHome, '--batch', '--yes', '--pinentry-mode', 'loopback', '--passphrase', '', '--digest-algo', 'SHA256'];
  must('gpg', [...gpg, '--clearsign', '-o', join(dir, 'InRelease'), join(dir, 'Release')]);
  must('gpg', [...gpg, '--armor', '--detach-sign', '-o', join(dir, 'Release.gpg'), join(dir, 'Release')]);
}

/** A file of one minor's repository, or undefined (names only: no path walks out of the directory). */
export function repositoryFile(repoDir: string, minor: string, name: string): { path: string; size: number } | undefined {
  if (!/^[A-Za-z0-9][A-Za-z0-9._+~-]*$/.test(name) || !/^\d+\.\d+$/.test(minor)) return undefined;
  const path = join(repoDir, `v${minor}`, 'deb', name);
  try {
    const st = statSync(path);
    return st.isFile() ? { path, size: st.size } : undefined;
  } catch {
    return undefined;
  }
}
