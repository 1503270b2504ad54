// One host's own state: packages (persistent), units, modules, sysctls, swap (runtime, gone after a reboot).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { dirEntries, exists, hp, labDir, readJson, readText, runDir, stateDir, writeFileAtomic, writeJson, err } from './env';
import { simClientPath } from './tools';
import { realTier, reconcileDaemons } from './real';

// ---------- packages ----------

export interface PackageInfo {
  tools: string[];
  unit?: string;
  /** More units the package ships (cri-dockerd: its socket unit). */
  units?: string[];
  deps?: string[];
  /** Which apt source offers it; 'file': none, it installs only from a downloaded .deb. */
  source: 'kubernetes' | 'docker' | 'debian' | 'file';
}

export const PACKAGES: Record<string, PackageInfo> = {
  kubeadm: { tools: ['kubeadm'], deps: ['cri-tools'], source: 'kubernetes' },
  kubelet: { tools: ['kubelet'], unit: 'kubelet', deps: ['kubernetes-cni'], source: 'kubernetes' },
  kubectl: { tools: ['kubectl'], source: 'kubernetes' },
  'cri-tools': { tools: ['crictl'], source: 'kubernetes' },
  'kubernetes-cni': { tools: [], source: 'kubernetes' },
  containerd: { tools: ['containerd', 'ctr'], unit: 'containerd', source: 'debian' },
  'containerd.io': { tools: ['containerd', 'ctr'], unit: 'containerd', source: 'docker' },
  'docker-ce': { tools: ['docker'], unit: 'docker', deps: ['containerd.io', 'docker-ce-cli'], source: 'docker' },
  'docker-ce-cli': { tools: ['docker'], source: 'docker' },
  'cri-dockerd': { tools: ['cri-dockerd'], unit: 'cri-docker', units: ['cri-docker.socket'], source: 'file' },
  ipvsadm: { tools: ['ipvsadm'], source: 'debian' },
  ipset: { tools: ['ipset'], source: 'debian' },
  conntrack: { tools: ['conntrack'], source: 'debian' },
  socat: { tools: ['socat'], source: 'debian' },
  'etcd-client': { tools: ['etcdctl'], source: 'debian' },
};

/** Debian packages that install (no simulated tool behind them) so scripts can ask for them. */
export const PLAIN_DEBIAN = ['apt-transport-https', 'ca-certificates', 'curl', 'gpg', 'gnupg', 'ufw', 'ebtables', 'ethtool', 'jq', 'lsb-release', 'iptables'];

const DEBIAN_VERSIONS: Record<string, string[]> = {
  containerd: ['1.6.20~ds1-1+deb12u1'],
  'containerd.io': ['1.7.28-1~debian.12~bookworm', '2.1.5-1~debian.12~bookworm'],
  'docker-ce': ['5:28.5.1-1~debian.12~bookworm'],
  'docker-ce-cli': ['5:28.5.1-1~debian.12~bookworm'],
  ipvsadm: ['1:1.31-1+b1'],
  ipset: ['7.17-1'],
  conntrack: ['1:1.4.7-1+b2'],
  socat: ['1.7.4.4-2'],
  'etcd-client': ['3.4.23-4+b6'],
};

/** Newest patch per minor that the simulated package repository offers by default. */
const NEWEST_PATCH: Record<number, number> = { 28: 15, 29: 15, 30: 14, 31: 14, 32: 10, 33: 6, 34: 2, 35: 2 };

interface AptVersionsFile {
  kubernetes?: Record<string, string[]>;
  packages?: Record<string, string[]>;
}

function aptOverrides(): AptVersionsFile {
  return readJson<AptVersionsFile>(path.join(labDir(), 'apt-versions.json'), {});
}

/** Versions the Kubernetes repo for a minor ("1.35") offers, oldest first; configurable per lab. */
export function kubeVersions(minor: string): string[] {
  const o = aptOverrides().kubernetes?.[minor];
  if (o) return o;
  const n = Number(minor.split('.')[1]);
  const newest = NEWEST_PATCH[n];
  if (newest === undefined) return [];
  return Array.from({ length: newest + 1 }, (_, i) => `${minor}.${i}-1.1`);
}

export function debianVersions(pkg: string): string[] {
  return aptOverrides().packages?.[pkg] ?? DEBIAN_VERSIONS[pkg] ?? (PLAIN_DEBIAN.includes(pkg) ? ['1.0-1'] : []);
}

export interface InstalledPkg {
  version: string;
  held: boolean;
}

export function installed(): Record<string, InstalledPkg> {
  return readJson<Record<string, InstalledPkg>>(path.join(stateDir(), 'packages.json'), {});
}
export function saveInstalled(p: Record<string, InstalledPkg>): void {
  writeJson(path.join(stateDir(), 'packages.json'), p);
}

/** The package that provides a simulated tool, or undefined for tools every host has. */
export function packageOfTool(tool: string): string[] {
  return Object.entries(PACKAGES)
    .filter(([, v]) => v.tools.includes(tool))
    .map(([k]) => k);
}

export function toolInstalled(tool: string): boolean {
  const pkgs = packageOfTool(tool);
  if (pkgs.length === 0) return true;
  const inst = installed();
  return pkgs.some((p) => inst[p]);
}

/** "1.35.2-1.1" -> "v1.35.2" */
export function kubeVersionOfPackage(pkg: string): string | undefined {
  const v = installed()[pkg]?.version;
  const m = v ? /^(\d+\.\d+\.\d+)/.exec(v) : null;
  return m ? `v${m[1]}` : undefined;
}

// ---------- runtime state and boot ----------

interface BootState {
  bootId: string;
}

function currentBootId(): string {
  // The lab gives each host boot its own id; outside the lab this is the machine's.
  // Unit tests pin it (KHA_SIM_BOOT_ID) so nothing outside them can look like a reboot.
  return (process.env.KHA_SIM_BOOT_ID ?? readText('/proc/sys/kernel/random/boot_id') ?? 'static').trim();
}

function rt(name: string): string {
  return path.join(runDir(), name);
}

/** Run once per boot: what systemd would do at start-up, from the host's persistent configuration. */
export function ensureBooted(): void {
  const bootId = currentBootId();
  const b = readJson<BootState | null>(rt('boot.json'), null);
  if (b && b.bootId === bootId) return;
  if (process.env.KHA_SIM_DEBUG) err(`kha-sim boot: had ${JSON.stringify(b)} now ${bootId} files ${dirEntries(runDir()).join(',')}`);
  fs.mkdirSync(runDir(), { recursive: true });
  for (const f of dirEntries(runDir())) if (f !== 'boot.json') fs.rmSync(rt(f), { recursive: true, force: true });
  // systemd-modules-load, then systemd-sysctl, as at boot.
  const mods = new Set<string>();
  for (const m of configuredModules()) mods.add(m);
  writeJson(rt('modules.json'), [...mods]);
  writeJson(rt('sysctl.json'), {});
  applySysctlFiles();
  writeJson(rt('swap.json'), { on: fstabSwapEntries().length > 0 && !swapUnitsMasked() });
  const active: Record<string, string> = {};
  const units = unitFiles();
  for (const [u, st] of Object.entries(units)) if (st.enabled && !st.masked && unitExists(u)) active[u] = 'active';
  writeJson(rt('units.json'), active);
  writeJson(rt('boot.json'), { bootId });
  reconcileDaemons(active);
}

// ---------- modules ----------

export const KNOWN_MODULES = new Set([
  'overlay', 'br_netfilter', 'ip_vs', 'ip_vs_rr', 'ip_vs_wrr', 'ip_vs_sh', 'ip_vs_lc', 'nf_conntrack', 'ip_set',
  'xt_set', 'ipip', 'vxlan', 'ip_tables', 'iptable_nat', 'iptable_filter', 'iptable_mangle', 'xt_mark',
  'xt_conntrack', 'nf_nat', 'veth', 'bridge', 'wireguard', 'nf_tables', 'xt_multiport', 'xt_addrtype',
  'xt_comment', 'nfnetlink', 'ipt_REJECT', 'ipt_set', 'xt_bpf', 'ipv6', 'ip6_tables', 'tun', 'dummy',
]);

function configuredModules(): string[] {
  const outL: string[] = [];
  for (const dir of ['/etc/modules-load.d', '/usr/lib/modules-load.d']) {
    for (const f of dirEntries(hp(dir)).filter((x) => x.endsWith('.conf')).sort()) {
      for (const line of (readText(hp(path.join(dir, f))) ?? '').split('\n')) {
        const l = line.trim();
        if (l && !l.startsWith('#') && !l.startsWith(';') && KNOWN_MODULES.has(l)) outL.push(l);
      }
    }
  }
  for (const line of (readText(hp('/etc/modules')) ?? '').split('\n')) {
    const l = line.trim();
    if (l && !l.startsWith('#') && KNOWN_MODULES.has(l)) outL.push(l);
  }
  return outL;
}

export function loadedModules(): string[] {
  return readJson<string[]>(rt('modules.json'), []);
}
export function loadModule(name: string): void {
  const m = new Set(loadedModules());
  m.add(name);
  if (name.startsWith('ip_vs')) m.add('ip_vs').add('nf_conntrack');
  writeJson(rt('modules.json'), [...m]);
}
export function unloadModule(name: string): void {
  writeJson(rt('modules.json'), loadedModules().filter((x) => x !== name));
}

// ---------- sysctl ----------

/** Keys that exist and their value when nothing set them. */
export function sysctlDefaults(): Record<string, string> {
  const d: Record<string, string> = {
    'net.ipv4.ip_forward': '0',
    'net.ipv6.conf.all.forwarding': '0',
    'net.ipv6.conf.default.forwarding': '0',
    'net.ipv6.conf.all.disable_ipv6': '0',
    'net.ipv6.conf.default.disable_ipv6': '0',
    'net.ipv4.conf.all.rp_filter': '2',
    'vm.swappiness': '60',
    'vm.overcommit_memory': '0',
    'kernel.panic': '0',
    'kernel.panic_on_oops': '0',
    'fs.inotify.max_user_watches': '8192',
    'fs.inotify.max_user_instances': '128',
    'net.core.somaxconn': '4096',
  };
  if (loadedModules().includes('br_netfilter')) {
    d['net.bridge.bridge-nf-call-iptables'] = '1';
    d['net.bridge.bridge-nf-call-ip6tables'] = '1';
    d['net.bridge.bridge-nf-call-arptables'] = '1';
  }
  if (loadedModules().includes('nf_conntrack')) d['net.netfilter.nf_conntrack_max'] = '262144';
  return d;
}

export function sysctlValues(): Record<string, string> {
  const set = readJson<Record<string, string>>(rt('sysctl.json'), {});
  const d = sysctlDefaults();
  const r: Record<string, string> = { ...d };
  for (const [k, v] of Object.entries(set)) if (k in d) r[k] = v;
  return r;
}

export function normKey(k: string): string {
  return k.replace(/\//g, '.');
}

/** Set a key; returns false when the key does not exist (its module not loaded). */
export function sysctlSet(key: string, value: string): boolean {
  const k = normKey(key);
  if (!(k in sysctlDefaults())) return false;
  const set = readJson<Record<string, string>>(rt('sysctl.json'), {});
  set[k] = value.trim();
  writeJson(rt('sysctl.json'), set);
  // Real tier: net.* keys belong to the host's own network namespace, so the kernel gets them too
  // (kubeadm and the kubelet read /proc/sys themselves).
  if (realTier() && k.startsWith('net.')) {
    try {
      fs.writeFileSync(`/proc/sys/${k.replace(/\./g, '/')}`, `${value.trim()}\n`);
    } catch {
      /* a key the kernel does not have in this netns (a module not loaded on the machine) */
    }
  }
  return true;
}

export function sysctlConfigFiles(): string[] {
  const files = new Map<string, string>();
  for (const dir of ['/usr/lib/sysctl.d', '/run/sysctl.d', '/etc/sysctl.d']) {
    for (const f of dirEntries(hp(dir)).filter((x) => x.endsWith('.conf'))) files.set(f, path.join(dir, f));
  }
  const ordered = [...files.keys()].sort().map((k) => files.get(k)!);
  if (exists(hp('/etc/sysctl.conf'))) ordered.push('/etc/sysctl.conf');
  return ordered;
}

export function parseSysctlFile(text: string): Array<[string, string]> {
  const r: Array<[string, string]> = [];
  for (const line of text.split('\n')) {
    const l = line.trim();
    if (!l || l.startsWith('#') || l.startsWith(';')) continue;
    const eq = l.indexOf('=');
    if (eq < 0) continue;
    r.push([normKey(l.slice(0, eq).trim().replace(/^-/, '')), l.slice(eq + 1).trim()]);
  }
  return r;
}

/** Apply every sysctl.d file in order; returns the lines `sysctl --system` prints. */
export function applySysctlFiles(): { lines: string[]; errors: string[] } {
  const lines: string[] = [];
  const errors: string[] = [];
  for (const f of sysctlConfigFiles()) {
    lines.push(`* Applying ${f} ...`);
    for (const [k, v] of parseSysctlFile(readText(hp(f)) ?? '')) {
      if (sysctlSet(k, v)) lines.push(`${k} = ${v}`);
      else errors.push(`sysctl: cannot stat /proc/sys/${k.replace(/\./g, '/')}: No such file or directory`);
    }
  }
  return { lines, errors };
}

// ---------- swap ----------

export function fstabSwapEntries(): string[] {
  return (readText(hp('/etc/fstab')) ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .filter((l) => l.split(/\s+/)[2] === 'swap')
    .map((l) => l.split(/\s+/)[0]!);
}

export function swapUnitName(dev: string): string {
  return dev.replace(/^\//, '').replace(/-/g, '\\x2d').replace(/\//g, '-') + '.swap';
}

function swapUnitsMasked(): boolean {
  const u = unitFiles();
  return u['swap.target']?.masked === true || fstabSwapEntries().every((d) => u[swapUnitName(d)]?.masked === true);
}

export function swapOn(): boolean {
  return readJson<{ on: boolean }>(rt('swap.json'), { on: false }).on;
}
export function setSwap(on: boolean): void {
  writeJson(rt('swap.json'), { on });
}

// ---------- units ----------

export interface UnitFileState {
  enabled?: boolean;
  masked?: boolean;
}

const WANTS_DIR = '/etc/systemd/system/multi-user.target.wants';

export function unitFiles(): Record<string, UnitFileState> {
  const u = readJson<Record<string, UnitFileState>>(path.join(stateDir(), 'units.json'), {});
  // Real tier: a package's maintainer script enables its unit as on a host with systemd (deb-systemd-helper's
  // wants link); the sim's own record, once systemctl wrote one, decides.
  if (realTier()) for (const f of dirEntries(hp(WANTS_DIR))) if (f.endsWith('.service')) u[normUnit(f)] ??= { enabled: true };
  return u;
}
export function saveUnitFiles(u: Record<string, UnitFileState>): void {
  writeJson(path.join(stateDir(), 'units.json'), u);
}
export function activeUnits(): Record<string, string> {
  return readJson<Record<string, string>>(rt('units.json'), {});
}
export function saveActiveUnits(u: Record<string, string>, restart: string[] = []): void {
  writeJson(rt('units.json'), u);
  reconcileDaemons(u, restart);
}

const UNIT_DIRS = ['/etc/systemd/system', '/run/systemd/system', '/lib/systemd/system', '/usr/lib/systemd/system'];

/** Units the simulated host has: those of installed packages, plus the base system's. */
export function unitExists(unit: string): boolean {
  if (['ufw', 'systemd-networkd', 'ssh', 'sshd', 'systemd-resolved', 'cron', 'swap.target', 'apparmor', 'firewalld'].includes(unit)) return unit !== 'firewalld';
  if (unit.endsWith('.swap')) return fstabSwapEntries().some((d) => swapUnitName(d) === unit);
  // Real tier: the real dpkg installs packages, so a unit exists when its file does (containerd's, the kubelet's).
  if (realTier()) return UNIT_DIRS.some((d) => exists(hp(path.join(d, unit.includes('.') ? unit : `${unit}.service`))));
  const inst = installed();
  return Object.entries(PACKAGES).some(([p, i]) => (i.unit === unit || i.units?.includes(unit)) && inst[p]);
}

export function normUnit(u: string): string {
  return u.replace(/\.service$/, '');
}

export function isActive(unit: string): boolean {
  return activeUnits()[normUnit(unit)] === 'active';
}

export function runtimeRunning(): boolean {
  return isActive('containerd') && (installed()['containerd'] !== undefined || installed()['containerd.io'] !== undefined);
}

export const CONTAINERD_ENDPOINT = 'unix:///var/run/containerd/containerd.sock';
export const CRI_DOCKERD_ENDPOINT = 'unix:///var/run/cri-dockerd.sock';

/** Docker Engine with cri-dockerd in front of it: what answers on cri-dockerd's socket. */
export function criDockerdRunning(): boolean {
  const inst = installed();
  return isActive('docker') && isActive('cri-docker') && inst['docker-ce'] !== undefined && inst['cri-dockerd'] !== undefined;
}

/** Whether a CRI answers on the endpoint (containerd's unless it names cri-dockerd's socket). */
export function criRunning(endpoint: string = CONTAINERD_ENDPOINT): boolean {
  return /cri-dockerd\.sock$/.test(endpoint) ? criDockerdRunning() : runtimeRunning();
}

/** The runtime endpoint crictl uses: /etc/crictl.yaml's, else containerd's. */
export function crictlEndpoint(): string {
  return /^runtime-endpoint:\s*(\S+)/m.exec(readText(hp('/etc/crictl.yaml')) ?? '')?.[1] ?? CONTAINERD_ENDPOINT;
}

// ---------- misc runtime tables left behind by kube-proxy and Calico ----------

export interface NetTables {
  ipvs: string[]; // virtual services "TCP 10.96.0.1:443 rr"
  iptablesChains: Record<string, string[]>; // table -> chains
  ipsets: string[];
  links: string[];
}

export function netTables(): NetTables {
  return readJson<NetTables>(rt('net.json'), { ipvs: [], iptablesChains: {}, ipsets: [], links: [] });
}
export function saveNetTables(t: NetTables): void {
  writeJson(rt('net.json'), t);
}

export function writeHostFile(p: string, content: string, mode = 0o644): void {
  writeFileAtomic(hp(p), content, mode);
}

// ---------- sockets of running daemons ----------

const CONTAINERD_SOCKET = '/run/containerd/containerd.sock';
const CRI_DOCKERD_SOCKET = '/run/cri-dockerd.sock';

/** Real unix socket files while containerd (or cri-dockerd) is active, as scripts wait for them with `test -S`. */
export function syncRuntimeSocket(): void {
  if (realTier()) return; // the real containerd makes its own
  syncSocket(CONTAINERD_SOCKET, runtimeRunning());
  syncSocket(CRI_DOCKERD_SOCKET, criDockerdRunning());
}

function syncSocket(file: string, want: boolean): void {
  const p = hp(file);
  let isSock = false;
  try {
    isSock = fs.statSync(p).isSocket();
  } catch {
    /* absent */
  }
  if (want && !isSock) {
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.rmSync(p, { force: true });
    // A child binds the socket and exits without unlinking it; nobody needs to answer on it.
    const client = simClientPath();
    if (fs.existsSync(client)) spawnSync(client, ['--make-socket', p], { stdio: 'ignore', timeout: 10_000 });
    else {
      const code = `const s=require('net').createServer();s.listen(${JSON.stringify(p)},()=>process.kill(process.pid,'SIGKILL'))`;
      spawnSync(process.execPath, ['-e', code], { stdio: 'ignore', timeout: 10_000 });
    }
  } else if (!want && isSock) fs.rmSync(p, { force: true });
}
