// kubeadm: init, join, reset, token, init phase upload-certs, version, config images, certs certificate-key.
import * as fs from 'node:fs';
import * as os from 'node:os';
import YAML from 'yaml';
import { FAIL_AFTER_ETCD_MEMBER_ENV } from './faults';
import { ToolExit, dirEntries, err, exists, flag, has, hostname, hp, now, out, parseArgs, readText, rmrf, type ParsedArgs, caller } from './env';
import { CONTAINERD_ENDPOINT, activeUnits, criRunning, installed, kubeVersionOfPackage, netTables, runtimeRunning, saveActiveUnits, saveNetTables, swapOn, sysctlValues, unitFiles, writeHostFile } from './host';
import { apiAvailable, liveTokens, minorOf, nodeReady, readModel, updateModel, type SimCluster, type SimModel, type SimNode } from './model';
import { caHashOfPem, makeCa, newCertKey, newMemberId, newToken, TOKEN_RE } from './pki';

const H24 = 24 * 3600_000;
const H2 = 2 * 3600_000;
const MANIFESTS = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler'];

function die(phase: string, msg: string): never {
  err(`error execution phase ${phase}: ${msg}\nTo see the stack trace of this error execute with --v=5 or higher`);
  throw new ToolExit(1);
}

export function kubeadmVersion(): string {
  return kubeVersionOfPackage('kubeadm') ?? 'v1.35.2';
}

/** Go duration ("24h0m0s", "2h", "90m", "0") in ms. */
export function parseDuration(s: string): number {
  if (s === '0' || s === '0s') return 0;
  let ms = 0;
  const re = /(\d+(?:\.\d+)?)(h|ms|m|s)/g;
  let m: RegExpExecArray | null;
  let matched = '';
  while ((m = re.exec(s))) {
    matched += m[0];
    const v = Number(m[1]);
    ms += m[2] === 'h' ? v * 3600_000 : m[2] === 'm' ? v * 60_000 : m[2] === 's' ? v * 1000 : v;
  }
  if (matched !== s) throw new Error(`time: invalid duration "${s}"`);
  return ms;
}

// ---------- configuration files ----------

interface KubeadmDocs {
  init?: Record<string, any>;
  cluster?: Record<string, any>;
  join?: Record<string, any>;
  proxy?: Record<string, any>;
  kubelet?: Record<string, any>;
}

function loadConfig(file: string | undefined): KubeadmDocs {
  if (!file) return {};
  const text = readText(hp(file));
  if (text === undefined) die('preflight', `unable to read config from "${file}" : open ${file}: no such file or directory`);
  const docs: KubeadmDocs = {};
  const kv = minorOf(kubeadmVersion());
  for (const d of YAML.parseAllDocuments(text)) {
    const o = d.toJSON() as Record<string, any> | null;
    if (!o || typeof o !== 'object') continue;
    const api = String(o.apiVersion ?? '');
    const kind = String(o.kind ?? '');
    if (api.startsWith('kubeadm.k8s.io/')) {
      const ver = api.split('/')[1];
      const known = ver === 'v1beta3' || (ver === 'v1beta4' && kv >= 31);
      if (!known) {
        err(`no kind "${kind}" is registered for version "${api}" in scheme "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme/scheme.go:31"`);
        throw new ToolExit(1);
      }
      checkExtraArgs(o, ver!, kind);
      if (kind === 'InitConfiguration') docs.init = o;
      else if (kind === 'ClusterConfiguration') docs.cluster = o;
      else if (kind === 'JoinConfiguration') docs.join = o;
    } else if (kind === 'KubeProxyConfiguration') docs.proxy = o;
    else if (kind === 'KubeletConfiguration') docs.kubelet = o;
  }
  return docs;
}

/** v1beta4 made extraArgs a list of {name, value}; v1beta3 has a map. Strict decoding rejects the other shape. */
function checkExtraArgs(o: unknown, ver: string, kind: string, at = ''): void {
  if (!o || typeof o !== 'object') return;
  for (const [k, v] of Object.entries(o as Record<string, unknown>)) {
    if (/ExtraArgs$|^extraArgs$/.test(k)) {
      const isList = Array.isArray(v);
      if (ver === 'v1beta4' && v && !isList) {
        err(`error unmarshaling JSON: while decoding JSON: json: cannot unmarshal object into Go struct field ${kind}${at}.${k} of type []v1beta4.Arg`);
        throw new ToolExit(1);
      }
      if (ver === 'v1beta3' && isList) {
        err(`error unmarshaling JSON: while decoding JSON: json: cannot unmarshal array into Go struct field ${kind}${at}.${k} of type map[string]string`);
        throw new ToolExit(1);
      }
    } else checkExtraArgs(v, ver, kind, `${at}.${k}`);
  }
}

function extraArg(args: unknown, name: string): string | undefined {
  if (Array.isArray(args)) return (args as Array<{ name: string; value: string }>).find((a) => a.name === name)?.value;
  if (args && typeof args === 'object') return (args as Record<string, string>)[name];
  return undefined;
}

function hostAddress(): string {
  if (process.env.KHA_SIM_ADDRESS) return process.env.KHA_SIM_ADDRESS;
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return '127.0.0.1';
}

// ---------- preflight ----------

interface Check {
  name: string;
  error?: string;
  warning?: string;
}

function ignored(p: ParsedArgs, cfgIgnore: unknown): Set<string> {
  const s = new Set<string>();
  for (const v of p.flags.get('ignore-preflight-errors') ?? []) for (const x of v.split(',')) s.add(x.trim().toLowerCase());
  if (Array.isArray(cfgIgnore)) for (const x of cfgIgnore) s.add(String(x).toLowerCase());
  return s;
}

function runChecks(checks: Check[], ignore: Set<string>): void {
  out('[preflight] Running pre-flight checks');
  const errs: string[] = [];
  for (const c of checks) {
    const ign = ignore.has('all') || ignore.has(c.name.toLowerCase());
    if (c.warning) err(`\t[WARNING ${c.name}]: ${c.warning}`);
    if (c.error && ign) err(`\t[WARNING ${c.name}]: ${c.error}`);
    else if (c.error) errs.push(`\t[ERROR ${c.name}]: ${c.error}`);
  }
  if (errs.length) {
    err(`[preflight] Some fatal errors occurred:\n${errs.join('\n')}\n[preflight] If you know what you are doing, you can make a check non-fatal with \`--ignore-preflight-errors=...\``);
    die('preflight', 'preflight checks failed');
  }
}

function dirNotEmpty(p: string): boolean {
  return dirEntries(hp(p)).length > 0;
}

function kubeletRunningWithConfig(): boolean {
  return activeUnits()['kubelet'] === 'active' && exists(hp('/var/lib/kubelet/config.yaml'));
}

function crioCheck(criSocket: string): Check {
  if (criSocket !== CONTAINERD_ENDPOINT) {
    const sock = criSocket.replace(/^unix:\/\//, '');
    return criRunning(criSocket)
      ? { name: 'CRI' }
      : { name: 'CRI', error: `container runtime is not running: rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: dial unix ${sock}: connect: no such file or directory"` };
  }
  const cfg = readText(hp('/etc/containerd/config.toml')) ?? '';
  if (!runtimeRunning()) {
    return { name: 'CRI', error: 'container runtime is not running: rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: dial unix /var/run/containerd/containerd.sock: connect: no such file or directory"' };
  }
  if (/disabled_plugins\s*=\s*\[[^\]]*"cri"/.test(cfg)) {
    return { name: 'CRI', error: 'container runtime is not running: validate service connection: validate CRI v1 runtime API for endpoint "unix:///var/run/containerd/containerd.sock": rpc error: code = Unimplemented desc = unknown service runtime.v1.RuntimeService' };
  }
  return { name: 'CRI' };
}

/** The CRI endpoint kubeadm uses: nodeRegistration.criSocket, --cri-socket, else containerd's. */
function criSocketOf(cfg: KubeadmDocs, p: ParsedArgs): string {
  return String(cfg.init?.nodeRegistration?.criSocket ?? cfg.join?.nodeRegistration?.criSocket ?? flag(p, 'cri-socket') ?? CONTAINERD_ENDPOINT);
}

function commonChecks(k8sMinor: number, criSocket: string): Check[] {
  const c: Check[] = [crioCheck(criSocket)];
  if (swapOn()) c.push({ name: 'Swap', warning: 'swap is supported for cgroup v2 only. The kubelet must be properly configured to use swap. Please refer to https://kubernetes.io/docs/concepts/architecture/nodes/#swap-memory, or disable swap on the node' });
  if (k8sMinor < 32 && !installed()['conntrack']) c.push({ name: 'FileExisting-conntrack', error: 'conntrack not found in system path' });
  if (!installed()['kubelet']) c.push({ name: 'KubeletVersion', error: `couldn't get kubelet version: cannot execute 'kubelet --version': exec: "kubelet": executable file not found in $PATH` });
  const units = unitFiles();
  if (!units['kubelet']?.enabled) c.push({ name: 'Service-Kubelet', warning: "kubelet service is not enabled, please run 'systemctl enable kubelet.service'" });
  if (kubeletRunningWithConfig()) c.push({ name: 'Port-10250', error: 'Port 10250 is in use' });
  return c;
}

function ipv4Checks(k8sMinor: number): Check[] {
  const v = sysctlValues();
  const c: Check[] = [];
  // kubeadm checked bridge-nf-call-iptables until 1.29; 1.30 dropped that check.
  if (k8sMinor < 30) {
    const b = v['net.bridge.bridge-nf-call-iptables'];
    const p = '/proc/sys/net/bridge/bridge-nf-call-iptables';
    if (b === undefined) c.push({ name: 'FileContent--proc-sys-net-bridge-bridge-nf-call-iptables', error: `${p} does not exist` });
    else if (b !== '1') c.push({ name: 'FileContent--proc-sys-net-bridge-bridge-nf-call-iptables', error: `${p} contents are not set to 1` });
  }
  if (v['net.ipv4.ip_forward'] !== '1') c.push({ name: 'FileContent--proc-sys-net-ipv4-ip_forward', error: '/proc/sys/net/ipv4/ip_forward contents are not set to 1' });
  return c;
}

function controlPlaneChecks(): Check[] {
  const c: Check[] = [];
  const apiUp = exists(hp('/etc/kubernetes/manifests/kube-apiserver.yaml')) && activeUnits()['kubelet'] === 'active';
  if (apiUp) for (const p of [6443, 10259, 10257]) c.push({ name: `Port-${p}`, error: `Port ${p} is in use` });
  for (const m of MANIFESTS) {
    const f = `/etc/kubernetes/manifests/${m}.yaml`;
    if (exists(hp(f))) c.push({ name: `FileAvailable-${f.replace(/\//g, '-')}`, error: `${f} already exists` });
  }
  if (apiUp) for (const p of [2379, 2380]) c.push({ name: `Port-${p}`, error: `Port ${p} is in use` });
  if (dirNotEmpty('/var/lib/etcd')) c.push({ name: 'DirAvailable--var-lib-etcd', error: '/var/lib/etcd is not empty' });
  return c;
}

// ---------- files a control-plane or worker node gets ----------

function kubeconfig(server: string, caPem: string, user: string): string {
  const ca = Buffer.from(caPem).toString('base64');
  const fakeCert = Buffer.from(`sim client certificate for ${user}`).toString('base64');
  return `apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: ${ca}\n    server: https://${server}\n  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n    user: ${user}\n  name: ${user}@kubernetes\ncurrent-context: ${user}@kubernetes\nkind: Config\npreferences: {}\nusers:\n- name: ${user}\n  user:\n    client-certificate-data: ${fakeCert}\n    client-key-data: ${fakeCert}\n`;
}

/** The static pod manifests kubeadm writes, as far as scripts read them (the API server's advertise address). */
function staticPod(name: string, c: SimCluster, address: string): string {
  const apiServer = name === 'kube-apiserver';
  const annotation = apiServer ? `    kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint: ${address}:6443\n` : '';
  const command = apiServer ? `    command:\n    - kube-apiserver\n    - --advertise-address=${address}\n` : '';
  return `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${name}\n  namespace: kube-system\n  labels:\n    component: ${name}\n    tier: control-plane\n${annotation ? `  annotations:\n${annotation}` : ''}spec:\n  hostNetwork: true\n  containers:\n  - name: ${name}\n${command}    image: ${c.imageRepository}/${name}:${name === 'etcd' ? '3.6.5-0' : c.kubernetesVersion}\n`;
}

function writeNodeFiles(c: SimCluster, caKeyPem: string | undefined, controlPlane: boolean, address: string, kubeletCfg: Record<string, any> | undefined, first: boolean, criSocket: string): void {
  writeHostFile('/etc/kubernetes/pki/ca.crt', c.caCertPem);
  writeHostFile('/etc/kubernetes/kubelet.conf', kubeconfig(c.controlPlaneEndpoint, c.caCertPem, `system:node:${nodeName()}`), 0o600);
  const cgroupDriver = kubeletCfg?.cgroupDriver ?? 'systemd';
  writeHostFile('/var/lib/kubelet/config.yaml', `apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: ${cgroupDriver}\nfailSwapOn: ${kubeletCfg?.failSwapOn ?? true}\n`);
  writeHostFile('/var/lib/kubelet/kubeadm-flags.env', `KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=${criSocket} --node-ip=${address}"\n`);
  writeHostFile('/var/lib/kubelet/pki/kubelet-client-current.pem', '# sim kubelet client certificate\n', 0o600);
  if (controlPlane) {
    if (caKeyPem) writeHostFile('/etc/kubernetes/pki/ca.key', caKeyPem, 0o600);
    for (const f of ['sa.key', 'sa.pub', 'front-proxy-ca.crt', 'front-proxy-ca.key', 'etcd/ca.crt', 'etcd/ca.key', 'apiserver.crt', 'apiserver.key', 'etcd/server.crt', 'etcd/server.key', 'etcd/peer.crt', 'etcd/peer.key', 'etcd/healthcheck-client.crt', 'etcd/healthcheck-client.key', 'apiserver-etcd-client.crt', 'apiserver-etcd-client.key']) {
      writeHostFile(`/etc/kubernetes/pki/${f}`, `# sim ${f}\n`, f.endsWith('.key') ? 0o600 : 0o644);
    }
    writeHostFile('/etc/kubernetes/admin.conf', kubeconfig(c.controlPlaneEndpoint, c.caCertPem, 'kubernetes-admin'), 0o600);
    if (first && minorOf(c.kubernetesVersion) >= 29) writeHostFile('/etc/kubernetes/super-admin.conf', kubeconfig(c.controlPlaneEndpoint, c.caCertPem, 'kubernetes-super-admin'), 0o600);
    for (const f of ['controller-manager.conf', 'scheduler.conf']) writeHostFile(`/etc/kubernetes/${f}`, kubeconfig(`${address}:6443`, c.caCertPem, `system:${f.split('.')[0]}`), 0o600);
    for (const m of MANIFESTS) writeHostFile(`/etc/kubernetes/manifests/${m}.yaml`, staticPod(m, c, address), 0o600);
    writeHostFile('/var/lib/etcd/member/snap/db', 'sim etcd data\n', 0o600);
  }
  const a = activeUnits();
  a['kubelet'] = 'active';
  saveActiveUnits(a);
  // kube-proxy programs the node's tables; they outlive `kubeadm reset`.
  const t = netTables();
  t.iptablesChains = { filter: ['KUBE-FIREWALL', 'KUBE-FORWARD', 'KUBE-SERVICES'], nat: ['KUBE-SERVICES', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ'] };
  if (c.proxyMode === 'ipvs') {
    t.ipvs = ['TCP  10.96.0.1:443 rr', 'TCP  10.96.0.10:53 rr', 'UDP  10.96.0.10:53 rr'];
    t.ipsets = ['KUBE-CLUSTER-IP', 'KUBE-LOOP-BACK', 'KUBE-NODE-PORT-TCP'];
    t.links = [...new Set([...t.links, 'kube-ipvs0'])];
  }
  saveNetTables(t);
}

function nodeName(cfgName?: unknown, p?: ParsedArgs): string {
  return (p && flag(p, 'node-name')) ?? (typeof cfgName === 'string' && cfgName ? cfgName : hostname());
}

/** Host part of "host:port" as this host resolves it: /etc/hosts names map to their address. */
function resolveEndpoint(endpoint: string): { host: string; ip?: string } {
  const host = endpoint.replace(/:\d+$/, '');
  if (/^\d+\.\d+\.\d+\.\d+$/.test(host)) return { host, ip: host };
  for (const line of (readText(hp('/etc/hosts')) ?? '').split('\n')) {
    const parts = line.replace(/#.*/, '').trim().split(/\s+/);
    if (parts.length > 1 && parts.slice(1).includes(host)) return { host, ip: parts[0] };
  }
  return { host };
}

/** Whether the API answers at "host:port" from this host. Returns the dial error otherwise. */
export function dialApi(c: SimCluster | undefined, endpoint: string): string | undefined {
  const { host, ip } = resolveEndpoint(endpoint);
  const port = /:(\d+)$/.exec(endpoint)?.[1] ?? '6443';
  if (!ip) return `dial tcp: lookup ${host} on 127.0.0.53:53: no such host`;
  const refused = `dial tcp ${ip}:${port}: connect: connection refused`;
  if (!c) return refused;
  const cpNode = c.nodes.find((n) => n.controlPlane && n.address === ip);
  const viaVip = c.vip === ip && c.vipHolders.length > 0;
  if (!cpNode && !viaVip) return c.vip === ip ? `dial tcp ${ip}:${port}: connect: no route to host` : refused;
  if (cpNode && (cpNode.kubeletDown || !c.etcd.some((m) => m.name === cpNode.name && m.running))) return refused;
  if (!apiAvailable(c)) return 'etcdserver: request timed out';
  return undefined;
}

// ---------- kube-vip detection ----------

/** Registers this host as a VIP holder when its kube-vip static pod is in place (called by every tool run). */
export function noteKubeVip(m: SimModel): void {
  const c = m.cluster;
  if (!c) return;
  const text = readText(hp('/etc/kubernetes/manifests/kube-vip.yaml'));
  const me = hostname();
  if (!text || !c.nodes.some((n) => n.name === me && n.controlPlane)) return;
  const vip = vipOfManifest(text);
  if (vip) c.vip = vip;
  if (!c.vipHolders.includes(me)) c.vipHolders.push(me);
}

function vipOfManifest(text: string): string | undefined {
  const m = /name:\s*["']?(?:address|vip_address)["']?\s*\n\s*value:\s*["']?(\d+\.\d+\.\d+\.\d+)/.exec(text);
  return m?.[1];
}

// ---------- commands ----------

function init(p: ParsedArgs): number {
  const cfg = loadConfig(flag(p, 'config'));
  const kv = kubeadmVersion();
  const version = String(cfg.cluster?.kubernetesVersion ?? flag(p, 'kubernetes-version') ?? kv);
  const fullVersion = version.startsWith('v') ? version : `v${version}`;
  const address = String(cfg.init?.localAPIEndpoint?.advertiseAddress ?? flag(p, 'apiserver-advertise-address') ?? hostAddress());
  const endpoint = String(cfg.cluster?.controlPlaneEndpoint ?? flag(p, 'control-plane-endpoint') ?? `${address}:6443`);
  const name = nodeName(cfg.init?.nodeRegistration?.name, p);
  out(`[init] Using Kubernetes version: ${fullVersion}`);
  const kubeletMinor = minorOf(kubeVersionOfPackage('kubelet') ?? fullVersion);
  const checks: Check[] = [...controlPlaneChecks(), ...commonChecks(minorOf(fullVersion), criSocketOf(cfg, p)), ...ipv4Checks(minorOf(fullVersion))];
  if (minorOf(fullVersion) > minorOf(kv)) checks.unshift({ name: 'KubernetesVersion', warning: `Kubernetes version is greater than kubeadm version. Please consider to upgrade kubeadm. Kubernetes version: ${fullVersion.slice(1)}. Kubeadm version: 1.${minorOf(kv)}.x` });
  if (kubeletMinor > minorOf(fullVersion)) checks.push({ name: 'KubeletVersion', error: `the kubelet version is higher than the control plane version. This is not a supported version skew and may lead to a malfunctional cluster. Kubelet version: "${kubeVersionOfPackage('kubelet')!.slice(1)}" Control plane version: "${fullVersion.slice(1)}"` });
  runChecks(checks, ignored(p, cfg.init?.nodeRegistration?.ignorePreflightErrors));
  const existing = readModel().cluster;
  if (existing && existing.etcd.some((x) => x.running)) {
    err(`kha-sim: the lab already has a cluster (endpoint ${existing.controlPlaneEndpoint}); one cluster per lab`);
    return 1;
  }
  if (swapOn() && cfg.kubelet?.failSwapOn !== false) kubeletUnhealthy('wait-control-plane');
  // From 1.29 admin.conf has no rights until init finishes; a kube-vip that uses it cannot hold the VIP yet.
  const vipText = readText(hp('/etc/kubernetes/manifests/kube-vip.yaml'));
  const { ip: endpointIp } = resolveEndpoint(endpoint);
  if (!endpointIp) die('upload-config/kubeadm', `error uploading the kubeadm ClusterConfiguration: Get "https://${endpoint}/api/v1/namespaces/kube-system/configmaps/kubeadm-config?timeout=10s": dial tcp: lookup ${endpoint.replace(/:\d+$/, '')} on 127.0.0.53:53: no such host`);
  const vipWorks = endpointIp === address || (vipText !== undefined && vipOfManifest(vipText) === endpointIp && (minorOf(fullVersion) < 29 || vipText.includes('/etc/kubernetes/super-admin.conf')));
  if (!vipWorks) {
    die('upload-config/kubeadm', `could not bootstrap the admin user in file admin.conf: unable to create ClusterRoleBinding: Post "https://${endpoint}/apis/rbac.authorization.k8s.io/v1/clusterrolebindings?timeout=10s": dial tcp ${endpointIp}:${endpoint.split(':')[1] ?? 6443}: connect: no route to host`);
  }
  const t = now();
  const ca = makeCa(t);
  const bt = Array.isArray(cfg.init?.bootstrapTokens) ? cfg.init!.bootstrapTokens : [];
  const tokens = bt.length
    ? bt.map((b: any) => {
        const mm = TOKEN_RE.exec(String(b.token ?? ''));
        const nt = mm ? { id: mm[1]!, secret: mm[2]! } : newToken();
        return { ...nt, expires: b.ttl !== undefined ? (parseDuration(String(b.ttl)) ? t + parseDuration(String(b.ttl)) : 0) : t + H24 };
      })
    : [{ ...newToken(), expires: t + H24 }];
  const certKey = has(p, 'upload-certs') ? String(cfg.init?.certificateKey ?? flag(p, 'certificate-key') ?? newCertKey()) : undefined;
  const proxyMode = String(cfg.proxy?.mode ?? 'iptables') || 'iptables';
  const cluster: SimCluster = {
    kubernetesVersion: fullVersion,
    controlPlaneEndpoint: endpoint,
    clusterName: String(cfg.cluster?.clusterName ?? 'kubernetes'),
    podSubnet: String(cfg.cluster?.networking?.podSubnet ?? flag(p, 'pod-network-cidr') ?? ''),
    serviceSubnet: String(cfg.cluster?.networking?.serviceSubnet ?? '10.96.0.0/12'),
    dnsDomain: String(cfg.cluster?.networking?.dnsDomain ?? 'cluster.local'),
    imageRepository: String(cfg.cluster?.imageRepository ?? 'registry.k8s.io'),
    proxyMode,
    strictARP: cfg.proxy?.ipvs?.strictARP === true,
    caCertPem: ca.certPem,
    caHash: ca.hash,
    createdAt: t,
    tokens,
    certKey: certKey ? { key: certKey, expires: t + H2 } : undefined,
    etcd: [{ id: newMemberId(), name, peerURL: `https://${address}:2380`, clientURL: `https://${address}:2379`, isLearner: false, running: true }],
    nodes: [newNode(name, address, true, fullVersion, cfg.init?.nodeRegistration)],
    resources: {},
    vipHolders: [],
    vip: vipText ? vipOfManifest(vipText) : undefined,
  };
  (cluster as SimCluster & { caKeyPem?: string }).caKeyPem = ca.keyPem;
  writeNodeFiles(cluster, ca.keyPem, true, address, cfg.kubelet, true, criSocketOf(cfg, p));
  updateModel((m) => {
    m.cluster = cluster;
    noteKubeVip(m);
  });
  out(`[certs] Using certificateDir folder "/etc/kubernetes/pki"\n[certs] Generating "ca" certificate and key\n[kubeconfig] Writing "admin.conf" kubeconfig file`);
  if (minorOf(fullVersion) >= 29) out('[kubeconfig] Writing "super-admin.conf" kubeconfig file');
  out(`[kubelet-start] Starting the kubelet\n[control-plane] Using manifest folder "/etc/kubernetes/manifests"\n[etcd] Creating static Pod manifest for local etcd in "/etc/kubernetes/manifests"`);
  if (certKey) {
    out('[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace');
    if (!has(p, 'skip-certificate-key-print')) out(`[upload-certs] Using certificate key:\n${certKey}`);
  }
  out(`[mark-control-plane] Marking the node ${name} as control-plane by adding the labels: [node-role.kubernetes.io/control-plane node.kubernetes.io/exclude-from-external-load-balancers]`);
  out(`[bootstrap-token] Using token: ${has(p, 'skip-token-print') ? '<value withheld>' : `${tokens[0]!.id}.${tokens[0]!.secret}`}`);
  out('[addons] Applied essential addon: CoreDNS\n[addons] Applied essential addon: kube-proxy\n\nYour Kubernetes control-plane has initialized successfully!');
  if (!has(p, 'skip-token-print')) out(`\n  kubeadm join ${endpoint} --token ${tokens[0]!.id}.${tokens[0]!.secret} \\\n\t--discovery-token-ca-cert-hash ${ca.hash}`);
  return 0;
}

function newNode(name: string, address: string, cp: boolean, version: string, reg: Record<string, any> | undefined): SimNode {
  const labels: Record<string, string> = { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64' };
  if (cp) {
    labels['node-role.kubernetes.io/control-plane'] = '';
    labels['node.kubernetes.io/exclude-from-external-load-balancers'] = '';
  }
  const taints = Array.isArray(reg?.taints) ? reg!.taints.map((x: any) => ({ key: String(x.key), value: x.value, effect: String(x.effect) })) : cp ? [{ key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' }] : [];
  return { name, address, controlPlane: cp, kubeletVersion: version, labels, taints, createdAt: now(), kubeletDown: false };
}

function kubeletUnhealthy(phase: string): never {
  err('[kubelet-check] The kubelet is not healthy after 4m0s\n\nUnfortunately, an error has occurred, likely caused by:\n\t- The kubelet is not running\n\t- The kubelet is unhealthy due to a misconfiguration of the node in some way (required cgroups disabled)\n\nIf you are on a systemd-powered system, you can try to troubleshoot the error with the following commands:\n\t- \'systemctl status kubelet\'\n\t- \'journalctl -xeu kubelet\'');
  die(phase, 'The HTTP call equal to \'curl -sSL http://127.0.0.1:10248/healthz\' returned error: Get "http://127.0.0.1:10248/healthz": dial tcp 127.0.0.1:10248: connect: connection refused');
}

function join(p: ParsedArgs): number {
  const cfg = loadConfig(flag(p, 'config'));
  const j = cfg.join ?? {};
  const bt = j.discovery?.bootstrapToken ?? {};
  const endpoint = String(bt.apiServerEndpoint ?? p.pos[1] ?? '');
  const token = String(bt.token ?? j.discovery?.tlsBootstrapToken ?? flag(p, 'token', 'discovery-token') ?? '');
  const hashes: string[] = (Array.isArray(bt.caCertHashes) ? bt.caCertHashes.map(String) : []).concat(p.flags.get('discovery-token-ca-cert-hash') ?? []);
  const unsafeSkip = bt.unsafeSkipCAVerification === true || has(p, 'discovery-token-unsafe-skip-ca-verification');
  const cp = j.controlPlane !== undefined || has(p, 'control-plane');
  const certKey = String(j.controlPlane?.certificateKey ?? flag(p, 'certificate-key') ?? '');
  const name = nodeName(j.nodeRegistration?.name, p);
  const address = String(j.controlPlane?.localAPIEndpoint?.advertiseAddress ?? flag(p, 'apiserver-advertise-address') ?? extraArg(j.nodeRegistration?.kubeletExtraArgs, 'node-ip') ?? hostAddress());
  if (!endpoint) {
    err('discovery: Invalid value: "": bootstrapToken or file must be set');
    return 1;
  }
  if (!TOKEN_RE.test(token)) {
    err(`discovery.bootstrapToken.token: Invalid value: "": the bootstrap token is invalid`);
    return 1;
  }
  if (hashes.length === 0 && !unsafeSkip) {
    err('discovery.bootstrapToken.caCertHashes: Invalid value: "": using token-based discovery without caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm config file or pass --discovery-token-unsafe-skip-ca-verification flag to continue');
    return 1;
  }
  const m0 = readModel();
  const k8sMinor = minorOf(m0.cluster?.kubernetesVersion ?? kubeadmVersion());
  const checks: Check[] = [];
  for (const f of ['/etc/kubernetes/kubelet.conf', '/etc/kubernetes/bootstrap-kubelet.conf']) if (exists(hp(f))) checks.push({ name: `FileAvailable-${f.replace(/\//g, '-')}`, error: `${f} already exists` });
  checks.push(...commonChecks(k8sMinor, criSocketOf(cfg, p)));
  if (!cp && exists(hp('/etc/kubernetes/pki/ca.crt'))) checks.push({ name: 'FileAvailable--etc-kubernetes-pki-ca.crt', error: '/etc/kubernetes/pki/ca.crt already exists' });
  if (dirNotEmpty('/etc/kubernetes/manifests')) checks.push({ name: 'DirAvailable--etc-kubernetes-manifests', error: '/etc/kubernetes/manifests is not empty' });
  checks.push(...ipv4Checks(k8sMinor));
  if (cp) checks.push(...controlPlaneChecks());
  runChecks(checks, ignored(p, j.nodeRegistration?.ignorePreflightErrors));

  // Discovery: fetch cluster-info through the endpoint and validate it with the token and the CA hash.
  const c = m0.cluster;
  const dialErr = dialApi(c, endpoint);
  if (dialErr) die('preflight', `couldn't validate the identity of the API Server: failed to request the cluster-info ConfigMap: Get "https://${endpoint}/api/v1/namespaces/kube-public/configmaps/cluster-info?timeout=10s": ${dialErr}`);
  const [id, secret] = token.split('.') as [string, string];
  const tok = liveTokens(c!).find((x) => x.id === id);
  if (!tok) die('preflight', `couldn't validate the identity of the API Server: could not find a JWS signature in the cluster-info ConfigMap for token ID "${id}"`);
  if (tok.secret !== secret) die('preflight', `couldn't validate the identity of the API Server: failed to verify JWS signature of received cluster info object, can't trust this API Server`);
  if (!unsafeSkip && !hashes.some((h) => h.toLowerCase() === c!.caHash)) {
    die('preflight', `couldn't validate the identity of the API Server: cluster CA found in cluster-info ConfigMap is invalid: none of the public keys "${c!.caHash}" are pinned`);
  }
  if (cp) {
    if (!certKey) {
      die('preflight', `\nOne or more conditions for hosting a new control plane instance is not satisfied.\n\n[failure loading certificate for CA: couldn't load the certificate file /etc/kubernetes/pki/ca.crt: open /etc/kubernetes/pki/ca.crt: no such file or directory]\n\nPlease ensure that:\n* The cluster has a stable controlPlaneEndpoint address.\n* The certificates that must be shared among control plane instances are provided.\n`);
    }
    out('[download-certs] Downloading the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace');
    const ck = c!.certKey;
    if (!ck || (ck.expires && ck.expires <= now())) {
      die('control-plane-prepare/download-certs', 'error downloading certs: error downloading the secret: Secret "kubeadm-certs" was not found in the "kube-system" Namespace. This Secret might have expired. Please, run `kubeadm init phase upload-certs --upload-certs` on a control plane to generate a new one');
    }
    if (ck.key !== certKey) die('control-plane-prepare/download-certs', 'error downloading certs: error decoding certs: cipher: message authentication failed');
    out('[check-etcd] Checking that the etcd cluster is healthy');
    const stale = c!.etcd.find((x) => !x.running);
    if (stale) die('check-etcd', `etcd cluster is not healthy: failed to dial endpoint ${stale.clientURL} with maintenance client: context deadline exceeded`);
  }
  const existing = c!.nodes.find((n) => n.name === name);
  if (existing && nodeReady(c!, existing)) {
    die('kubelet-start', `a Node with name "${name}" and status "Ready" already exists in the cluster. You must delete the existing Node or change the name of this new joining Node`);
  }
  if (swapOn() && cfg.kubelet?.failSwapOn !== false) kubeletUnhealthy('kubelet-start');
  const r = updateModel((m) => {
    const cl = m.cluster!;
    if (cp) {
      if (cl.etcd.some((x) => x.isLearner)) return 'etcdserver: too many learner members in cluster';
      cl.etcd = cl.etcd.filter((x) => x.name !== name);
      const halfWay = process.env[FAIL_AFTER_ETCD_MEMBER_ENV] === '1';
      cl.etcd.push({ id: newMemberId(), name, peerURL: `https://${address}:2380`, clientURL: `https://${address}:2379`, isLearner: false, running: !halfWay });
      // A member that never starts: etcd lists it, and it blocks the next join (check-etcd) until removed.
      if (halfWay) return 'timeout waiting for etcd cluster to be available';
    }
    cl.nodes = cl.nodes.filter((n) => n.name !== name);
    cl.nodes.push(newNode(name, address, cp, cl.kubernetesVersion, j.nodeRegistration));
    return undefined;
  });
  if (r) die('control-plane-join/etcd', `error creating local etcd static pod manifest file: ${r}`);
  const cl = readModel().cluster!;
  writeNodeFiles(cl, cp ? (cl as SimCluster & { caKeyPem?: string }).caKeyPem : undefined, cp, address, cfg.kubelet, false, criSocketOf(cfg, p));
  if (cp) updateModel((m) => noteKubeVip(m));
  out('[kubelet-start] Starting the kubelet\n[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap\n');
  out(cp ? 'This node has joined the cluster and a new control plane instance was created:' : 'This node has joined the cluster:');
  out("\n* Certificate signing request was sent to apiserver and approval was received.\n\nRun 'kubectl get nodes' on the control-plane to see this node join the cluster.");
  return 0;
}

function reset(p: ParsedArgs): number {
  if (!has(p, 'f', 'force')) {
    out('[reset] Are you sure you want to proceed? [y/N]: ');
    let answer = '';
    try {
      answer = caller().stdinIsTTY ? '' : caller().readStdin();
    } catch {
      /* no input */
    }
    if (!/^y/i.test(answer.trim())) {
      err('error: aborted reset operation');
      return 1;
    }
  }
  const skip = new Set((p.flags.get('skip-phases') ?? []).flatMap((x) => x.split(',')));
  const name = hostname();
  out('[preflight] Running pre-flight checks');
  const wasCp = exists(hp('/etc/kubernetes/manifests/etcd.yaml'));
  let warn = '';
  updateModel((m) => {
    const c = m.cluster;
    if (!c) return;
    const member = c.etcd.find((x) => x.name === name);
    if (member && wasCp) {
      if (skip.has('remove-etcd-member') || !apiAvailable(c)) {
        member.running = false;
        if (!skip.has('remove-etcd-member')) warn = `[reset] Failed to remove etcd member: etcdserver: request timed out\nPlease manually remove this etcd member using etcdctl`;
      } else c.etcd = c.etcd.filter((x) => x !== member);
    }
    const node = c.nodes.find((n) => n.name === name);
    if (node) node.kubeletDown = true;
    c.vipHolders = c.vipHolders.filter((h) => h !== name);
  });
  if (warn) err(warn);
  if (wasCp && !skip.has('remove-etcd-member')) out('[reset] Deleted contents of the etcd data directory: /var/lib/etcd');
  const a = activeUnits();
  delete a['kubelet'];
  saveActiveUnits(a);
  out('[reset] Stopping the kubelet service\n[reset] Unmounting mounted directories in "/var/lib/kubelet"');
  for (const d of ['/etc/kubernetes/manifests', '/var/lib/kubelet', '/etc/kubernetes/pki', '/var/lib/etcd']) for (const e of dirEntries(hp(d))) rmrf(hp(`${d}/${e}`));
  const files = ['admin.conf', 'super-admin.conf', 'kubelet.conf', 'bootstrap-kubelet.conf', 'controller-manager.conf', 'scheduler.conf'].map((f) => `/etc/kubernetes/${f}`);
  for (const f of files) fs.rmSync(hp(f), { force: true });
  out('[reset] Deleting contents of directories: [/etc/kubernetes/manifests /var/lib/kubelet /etc/kubernetes/pki]');
  out(`[reset] Deleting files: [${files.join(' ')}]`);
  out('\nThe reset process does not clean CNI configuration. To do so, you must remove /etc/cni/net.d\n\nThe reset process does not reset or clean up iptables rules or IPVS tables.\nIf you wish to reset iptables, you must do so manually by using the "iptables" command.\n\nIf your cluster was setup to utilize IPVS, run ipvsadm --clear (or similar)\nto reset your system\'s IPVS tables.\n\nThe reset process does not clean your kubeconfig files and you must remove them manually.\nPlease, check the contents of the $HOME/.kube/config file.');
  return 0;
}

function needAdmin(p: ParsedArgs): SimCluster {
  const kc = flag(p, 'kubeconfig') ?? '/etc/kubernetes/admin.conf';
  if (!exists(hp(kc))) {
    err(`failed to load admin kubeconfig: open ${kc}: no such file or directory\nTo see the stack trace of this error execute with --v=5 or higher`);
    throw new ToolExit(1);
  }
  const c = readModel().cluster;
  const server = /server:\s*https:\/\/(\S+)/.exec(readText(hp(kc)) ?? '')?.[1] ?? '';
  const e = dialApi(c, server);
  if (e) {
    err(`failed to create or update bootstrap token with name bootstrap-token: unable to create Secret: Post "https://${server}/api/v1/namespaces/kube-system/secrets?timeout=10s": ${e}`);
    throw new ToolExit(1);
  }
  return c!;
}

function token(p: ParsedArgs): number {
  const verb = p.pos[1] ?? 'list';
  if (verb === 'generate') {
    const t = newToken();
    out(`${t.id}.${t.secret}`);
    return 0;
  }
  const c = needAdmin(p);
  if (verb === 'create') {
    let ttl = H24;
    try {
      if (flag(p, 'ttl') !== undefined) ttl = parseDuration(flag(p, 'ttl')!);
    } catch (e) {
      err(String((e as Error).message));
      return 1;
    }
    const given = p.pos[2];
    const mm = given ? TOKEN_RE.exec(given) : null;
    if (given && !mm) {
      err(`token "${given}" was not of form "\\\\A([a-z0-9]{6})\\\\.([a-z0-9]{16})\\\\z"`);
      return 1;
    }
    const t = mm ? { id: mm[1]!, secret: mm[2]! } : newToken();
    updateModel((m) => {
      m.cluster!.tokens = m.cluster!.tokens.filter((x) => x.id !== t.id);
      m.cluster!.tokens.push({ ...t, expires: ttl ? now() + ttl : 0, description: flag(p, 'description') });
    });
    if (has(p, 'print-join-command')) {
      const key = flag(p, 'certificate-key');
      out(`kubeadm join ${c.controlPlaneEndpoint} --token ${t.id}.${t.secret} --discovery-token-ca-cert-hash ${c.caHash} ${key ? `--control-plane --certificate-key ${key}` : ''}`);
    } else out(`${t.id}.${t.secret}`);
    return 0;
  }
  if (verb === 'list') {
    const ts = liveTokens(c);
    if (ts.length) out('TOKEN                     TTL         EXPIRES                USAGES                   DESCRIPTION');
    for (const t of ts) {
      const left = t.expires ? `${Math.max(0, Math.floor((t.expires - now()) / 3600_000))}h` : '<forever>';
      out(`${t.id}.${t.secret}   ${left.padEnd(10)}  ${t.expires ? new Date(t.expires).toISOString().replace(/\.\d+Z$/, 'Z') : '<never>'}   authentication,signing   ${t.description ?? '<none>'}`);
    }
    return 0;
  }
  if (verb === 'delete') {
    for (const x of p.pos.slice(2)) {
      const id = x.split('.')[0]!;
      const found = updateModel((m) => {
        const before = m.cluster!.tokens.length;
        m.cluster!.tokens = m.cluster!.tokens.filter((t) => t.id !== id);
        return before !== m.cluster!.tokens.length;
      });
      if (!found) {
        err(`bootstrap token "${id}" not found`);
        return 1;
      }
      out(`bootstrap token "${id}" deleted`);
    }
    return 0;
  }
  err(`unknown command "${verb}" for "kubeadm token"`);
  return 1;
}

function uploadCerts(p: ParsedArgs): number {
  if (!has(p, 'upload-certs')) {
    out('[upload-certs] Skipping phase. Please see --upload-certs');
    return 0;
  }
  needAdmin(p);
  if (!exists(hp('/etc/kubernetes/pki/ca.key'))) {
    err('error execution phase upload-certs: error uploading certs: failed to load certificate authority: couldn\'t load the private key file /etc/kubernetes/pki/ca.key: open /etc/kubernetes/pki/ca.key: no such file or directory');
    return 1;
  }
  const key = flag(p, 'certificate-key') ?? newCertKey();
  if (!/^[a-f0-9]{64}$/.test(key)) {
    err('error execution phase upload-certs: error uploading certs: error decoding certificate key: encoding/hex: invalid byte');
    return 1;
  }
  updateModel((m) => {
    m.cluster!.certKey = { key, expires: now() + H2 };
  });
  out('[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace');
  if (!has(p, 'skip-certificate-key-print')) out(`[upload-certs] Using certificate key:\n${key}`);
  return 0;
}

function images(p: ParsedArgs): number {
  const cfg = loadConfig(flag(p, 'config'));
  const v = String(cfg.cluster?.kubernetesVersion ?? flag(p, 'kubernetes-version') ?? kubeadmVersion());
  const repo = String(cfg.cluster?.imageRepository ?? flag(p, 'image-repository') ?? 'registry.k8s.io');
  const list = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kube-proxy'].map((x) => `${repo}/${x}:${v.startsWith('v') ? v : 'v' + v}`);
  list.push(`${repo}/coredns/coredns:v1.12.1`, `${repo}/pause:3.10.1`, `${repo}/etcd:3.6.5-0`);
  if (p.pos[2] === 'list') {
    for (const i of list) out(i);
    return 0;
  }
  if (p.pos[2] === 'pull') {
    if (!runtimeRunning()) {
      err(`failed to create new CRI runtime service: validate service connection: validate CRI v1 runtime API for endpoint "unix:///var/run/containerd/containerd.sock": rpc error: code = Unavailable desc = connection error`);
      return 1;
    }
    for (const i of list) out(`[config/images] Pulled ${i}`);
    return 0;
  }
  err(`unknown command "${p.pos[2] ?? ''}" for "kubeadm config images"`);
  return 1;
}

export function kubeadm(args: string[]): number {
  const p = parseArgs(args, new Set(['config', 'token', 'discovery-token', 'discovery-token-ca-cert-hash', 'certificate-key', 'ttl', 'description', 'node-name', 'apiserver-advertise-address', 'control-plane-endpoint', 'kubernetes-version', 'ignore-preflight-errors', 'skip-phases', 'kubeconfig', 'o', 'output', 'v', 'cri-socket', 'pod-network-cidr', 'image-repository', 'cert-dir', 'apiserver-bind-port']));
  if (caller().uid !== 0 && ['init', 'join', 'reset'].includes(p.pos[0] ?? '')) {
    runChecks([{ name: 'IsPrivilegedUser', error: 'user is not running as root' }], new Set());
  }
  switch (p.pos[0]) {
    case 'version': {
      const v = kubeadmVersion();
      const o = flag(p, 'o', 'output');
      if (o === 'short') out(v);
      else if (o === 'json') out(JSON.stringify({ clientVersion: { major: '1', minor: String(minorOf(v)), gitVersion: v, platform: 'linux/amd64' } }, null, 2));
      else out(`kubeadm version: &version.Info{Major:"1", Minor:"${minorOf(v)}", GitVersion:"${v}", GitTreeState:"clean", GoVersion:"go1.24.9", Compiler:"gc", Platform:"linux/amd64"}`);
      return 0;
    }
    case 'init':
      if (p.pos[1] === 'phase') {
        if (p.pos[2] === 'upload-certs') return uploadCerts(p);
        err(`kha-sim: kubeadm init phase ${p.pos[2] ?? ''} is not simulated`);
        return 1;
      }
      return init(p);
    case 'join':
      return join(p);
    case 'reset':
      return reset(p);
    case 'token':
      return token(p);
    case 'config':
      if (p.pos[1] === 'images') return images(p);
      err(`kha-sim: kubeadm config ${p.pos[1] ?? ''} is not simulated`);
      return 1;
    case 'certs':
      if (p.pos[1] === 'certificate-key') {
        out(newCertKey());
        return 0;
      }
      err(`kha-sim: kubeadm certs ${p.pos[1] ?? ''} is not simulated`);
      return 1;
    default:
      err(`unknown command "${p.pos[0] ?? ''}" for "kubeadm"`);
      return 1;
  }
}

export { caHashOfPem };
