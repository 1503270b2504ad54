// Rules that span several fields, run after the schema accepted the file. Each problem names the
// field to change and what to do. normalise() fills values that follow from others.
import type { ClusterFileParsed } from './schema';
import { canonicalCidr, cidrContains, cidrsOverlap, isIpv4, parseCidr, unusableAddress, type Cidr } from './net';
import { didYouMean } from './zod-messages';
import { sourceFindings } from './sources';

export const MIN_MINOR = 28;

export interface Finding {
  severity: 'error' | 'warning';
  path: PropertyKey[];
  message: string;
  anchor: 'value' | 'key';
}

type Spec = ClusterFileParsed['spec'];

class Findings {
  readonly list: Finding[] = [];
  error(path: PropertyKey[], message: string, anchor: 'value' | 'key' = 'value'): void {
    this.list.push({ severity: 'error', path, message, anchor });
  }
  warn(path: PropertyKey[], message: string, anchor: 'value' | 'key' = 'value'): void {
    this.list.push({ severity: 'warning', path, message, anchor });
  }
}

const S = 'spec';

function nodeRef(spec: Spec, i: number): string {
  return `spec.nodes[${i}] (${spec.nodes[i]!.name})`;
}

function names(list: string[], max = 3): string {
  return list.length <= max ? list.join(', ') : `${list.slice(0, max).join(', ')} and ${list.length - max} more`;
}

function checkVersion(spec: Spec, f: Findings): void {
  const v = spec.kubernetes.version.replace(/^v/, '');
  const minor = Number(v.split('.')[1]);
  const path = [S, 'kubernetes', 'version'];
  if (spec.kubernetes.allowCgroupV1 && minor < 31) {
    f.error([S, 'kubernetes', 'allowCgroupV1'], `the kubelet's failCgroupV1 setting exists from 1.31; Kubernetes ${v} runs on cgroup v1 without it: remove allowCgroupV1`);
  }
  if (spec.kubernetes.allowCgroupV1 && !spec.kubernetes.ignorePreflightErrors.includes('SystemVerification')) {
    f.warn([S, 'kubernetes', 'allowCgroupV1'], 'kubeadm still reports cgroup v1 as a SystemVerification error: add SystemVerification to kubernetes.ignorePreflightErrors');
  }
  if (minor >= MIN_MINOR) return;
  if (minor < 24) {
    f.error(
      path,
      `Kubernetes ${v} is not supported: use 1.${MIN_MINOR} or newer. There are no official packages for it ` +
        '(pkgs.k8s.io starts at 1.24 and the old apt.kubernetes.io repository is gone), and the dockershim ' +
        'that Docker-based clusters relied on was removed in 1.24',
    );
  } else {
    f.error(
      path,
      `Kubernetes ${v} is not supported: use 1.${MIN_MINOR} or newer. 1.${minor} is past its upstream end of ` +
        'life and gets no fixes; kha deploys and tests 1.28 and newer only',
    );
  }
}

function checkNodes(spec: Spec, f: Findings, running: boolean): void {
  const nodes = spec.nodes;
  if (nodes.length === 0) {
    f.error([S, 'nodes'], 'no nodes: list the control-plane nodes (3 for high availability) and the workers', 'key');
    return;
  }
  const byName = new Map<string, number>();
  const byAddr = new Map<string, { i: number; what: string }>();
  nodes.forEach((n, i) => {
    const first = byName.get(n.name);
    if (first !== undefined) {
      f.error([S, 'nodes', i, 'name'], `duplicate node name "${n.name}": spec.nodes[${first}] already has it; node names must be unique`);
    } else byName.set(n.name, i);
  });
  // Addresses and advertise addresses share one namespace: two nodes on one IP cannot both be reached.
  nodes.forEach((n, i) => {
    const own = new Set<string>();
    for (const [field, addr] of [['address', n.address], ['advertiseAddress', n.advertiseAddress]] as const) {
      if (!addr || own.has(addr)) continue;
      own.add(addr);
      const first = byAddr.get(addr);
      if (first !== undefined) {
        f.error(
          [S, 'nodes', i, field],
          `duplicate address ${addr}: ${nodeRef(spec, first.i)} already uses it as its ${first.what}; every node needs its own address`,
        );
      } else byAddr.set(addr, { i, what: field === 'address' ? 'address' : 'advertise address' });
    }
  });

  nodes.forEach((n, i) => {
    for (const [field, addr] of [['address', n.address], ['advertiseAddress', n.advertiseAddress]] as const) {
      const why = addr && unusableAddress(addr);
      if (why) f.error([S, 'nodes', i, field], `${addr} ${why}; give the node's own address`);
    }
  });

  const cp = nodes.filter((n) => n.role === 'control-plane').length;
  if (cp === 0) {
    f.error([S, 'nodes'], 'no control-plane node: give 3 nodes (or 1 for a test cluster) role: control-plane', 'key');
  } else if (cp % 2 === 0) {
    const odd = `${cp} control-plane nodes: use an odd number (3 or 5); etcd needs a majority, so ${cp} nodes survive no more failures than ${cp - 1}`;
    // A running cluster has an even count between a removal and its replacement: what it is, not a choice.
    if (running) f.warn([S, 'nodes'], odd, 'key');
    else f.error([S, 'nodes'], odd, 'key');
  } else if (cp === 1) {
    f.warn([S, 'nodes'], 'only one control-plane node: the cluster is not highly available; use 3 control-plane nodes for HA', 'key');
  }
  if (!nodes.some((n) => n.role === 'worker')) {
    f.warn([S, 'nodes'], 'no worker nodes: workloads only run where the control-plane taint is removed', 'key');
  }
}

function checkEndpoint(spec: Spec, f: Findings): void {
  const ep = spec.controlPlaneEndpoint;
  const vipPath = [S, 'controlPlaneEndpoint', 'vip'];
  const [a, b] = ep.vip.split('.').map(Number) as [number, number];
  // No interface's subnet has these as a host address; the subnet itself is checked in preflight. (Loopback
  // is left to preflight: test files use 127.0.0.0/8 for clusters that are never reached.)
  const notHost = a === 0 ? 'in 0.0.0.0/8 ("this network")' : a === 169 && b === 254 ? 'a link-local address' : a >= 224 ? (a < 240 ? 'a multicast address' : 'a reserved or broadcast address') : undefined;
  if (notHost) f.error(vipPath, `the VIP ${ep.vip} is ${notHost}, not a host address other nodes can reach; choose a free address in the control-plane nodes' subnet`);
  spec.nodes.forEach((n, i) => {
    if (n.address === ep.vip) {
      f.error(vipPath, `the VIP ${ep.vip} is the address of node ${n.name} (spec.nodes[${i}].address): choose a free address in the nodes' network`);
    } else if (n.advertiseAddress === ep.vip) {
      f.error(vipPath, `the VIP ${ep.vip} is the advertise address of node ${n.name} (spec.nodes[${i}].advertiseAddress): choose a free address`);
    }
  });
  const vipWhy = unusableAddress(ep.vip);
  if (vipWhy) f.error(vipPath, `${ep.vip} ${vipWhy}; the VIP must be a free address in the nodes' network`);
  if (ep.name && (ep.name === 'localhost' || ep.name.endsWith('.localhost'))) {
    f.error([S, 'controlPlaneEndpoint', 'name'], `"${ep.name}" always means this machine (loopback) on every node and the worker: use a name for the VIP, such as k8s-api.example.internal`);
  }
  if (ep.name) {
    const i = spec.nodes.findIndex((n) => n.name === ep.name);
    if (i >= 0) {
      f.error([S, 'controlPlaneEndpoint', 'name'], `"${ep.name}" is also the name of spec.nodes[${i}]: the endpoint name must not be a node's host name`);
    }
  }
  if (ep.kubeVip.mode === 'bgp') {
    f.error(
      [S, 'controlPlaneEndpoint', 'kubeVip', 'mode'],
      'bgp mode is not supported yet: kha has no settings for BGP peers and AS numbers; use mode: arp',
    );
  }
}

function cidrAt(spec: Spec, key: 'podSubnet' | 'serviceSubnet', f: Findings): Cidr | undefined {
  const c = parseCidr(spec.networking[key]);
  if (c.hostBitsSet) {
    f.error([S, 'networking', key], `${c.text} is not a network address: its host bits are set; did you mean ${canonicalCidr(c)}?`);
    return undefined;
  }
  return c;
}

function checkNetworks(spec: Spec, f: Findings): void {
  const pod = cidrAt(spec, 'podSubnet', f);
  const svc = cidrAt(spec, 'serviceSubnet', f);
  const label = { podSubnet: 'pod', serviceSubnet: 'service' } as const;
  for (const [key, c] of [['podSubnet', pod], ['serviceSubnet', svc]] as const) {
    if (!c) continue;
    const path = [S, 'networking', key];
    const inside = [
      ...new Set(
        spec.nodes.flatMap((n) =>
          [n.address, n.advertiseAddress].filter((a): a is string => !!a && cidrContains(c, a)).map((a) => `${n.name} ${a}`),
        ),
      ),
    ];
    if (inside.length) {
      const what = inside.length === 1 ? 'the address of node' : `${inside.length} node addresses:`;
      f.error(path, `${c.text} contains ${what} ${names(inside)}; the ${label[key]} subnet must not overlap the nodes' network`);
    }
    if (cidrContains(c, spec.controlPlaneEndpoint.vip)) {
      f.error(path, `${c.text} contains the VIP ${spec.controlPlaneEndpoint.vip}; the ${label[key]} subnet must not overlap the nodes' network`);
    }
    const bastion = spec.ssh.bastion?.address;
    if (bastion && isIpv4(bastion) && cidrContains(c, bastion)) {
      f.error(path, `${c.text} contains the bastion address ${bastion}; the ${label[key]} subnet must not overlap the hosts' network`);
    }
  }
  if (pod && svc && cidrsOverlap(pod, svc)) {
    f.error([S, 'networking', 'serviceSubnet'], `${svc.text} overlaps the pod subnet ${pod.text}: pod and service subnets must be disjoint`);
  }
  if (svc && svc.prefix < 12) {
    f.error([S, 'networking', 'serviceSubnet'], `${svc.text} is too large: kube-apiserver accepts at most a /12 for services`);
  }
  if (pod) {
    // kube-controller-manager hands each node a /24 out of the pod subnet.
    if (pod.prefix > 24) {
      f.error([S, 'networking', 'podSubnet'], `${pod.text} is too small: each node gets a /24 of the pod subnet, so use /24 or larger (such as /16)`);
    } else if (2 ** (24 - pod.prefix) < spec.nodes.length) {
      f.error([S, 'networking', 'podSubnet'], `${pod.text} has room for ${2 ** (24 - pod.prefix)} node /24 ranges but there are ${spec.nodes.length} nodes; use a larger pod subnet`);
    }
  }
}

function checkProxy(spec: Spec, f: Findings): void {
  const net = spec.networking;
  const minor = Number(spec.kubernetes.version.replace(/^v/, '').split('.')[1]);
  const modePath = [S, 'networking', 'kubeProxyMode'];
  if (net.kubeProxyMode === 'ipvs') {
    if (spec.controlPlaneEndpoint.kubeVip.mode === 'arp' && net.ipvsStrictARP === false) {
      f.warn(
        [S, 'networking', 'ipvsStrictARP'],
        'set to true: with kube-proxy in IPVS mode and kube-vip in ARP mode, strictARP keeps nodes from answering ARP for addresses on kube-ipvs0',
      );
    }
    if (minor >= 35) f.warn(modePath, `kube-proxy's IPVS mode is deprecated since Kubernetes 1.35; consider nftables`);
  } else if (net.ipvsStrictARP !== undefined) {
    f.warn([S, 'networking', 'ipvsStrictARP'], `has no effect: kubeProxyMode is ${net.kubeProxyMode}, not ipvs`);
  }
  if (net.kubeProxyMode === 'nftables' && minor < 31) {
    f.error(modePath, `nftables mode needs Kubernetes 1.31 or newer (before 1.31 it is alpha behind a feature gate); use iptables or ipvs, or a newer version`);
  }
}

function checkRuntime(spec: Spec, f: Findings): void {
  const rt = spec.containerRuntime;
  if (rt.type === 'docker' && !rt.criDockerd?.enabled) {
    const path = rt.criDockerd ? [S, 'containerRuntime', 'criDockerd', 'enabled'] : [S, 'containerRuntime', 'type'];
    f.error(path, 'docker needs cri-dockerd: Kubernetes removed the dockershim in 1.24; set containerRuntime.criDockerd.enabled: true, or use type: containerd');
  }
  if (rt.type === 'containerd' && rt.criDockerd?.enabled) {
    f.warn([S, 'containerRuntime', 'criDockerd', 'enabled'], 'ignored: cri-dockerd is only used with type: docker');
  }
  const seen = new Map<string, number>();
  rt.registryMirrors.forEach((m, i) => {
    const first = seen.get(m.registry);
    if (first !== undefined) {
      f.error([S, 'containerRuntime', 'registryMirrors', i, 'registry'], `duplicate registry "${m.registry}": registryMirrors[${first}] already configures it; list all its endpoints there`);
    } else seen.set(m.registry, i);
  });
}

function checkSsh(spec: Spec, f: Findings): void {
  const ssh = spec.ssh;
  const kh = ssh.knownHosts;
  const khPath = [S, 'ssh', 'knownHosts'];
  if (kh.policy === 'known-hosts-file' && !kh.file) {
    f.error([...khPath, 'file'], 'required when policy is known-hosts-file: give the path of the known_hosts file, such as ~/.ssh/known_hosts');
  }
  // accept-new reads and records keys in the file when one is given; only pinned never looks at it.
  if (kh.policy === 'pinned' && kh.file) {
    f.warn([...khPath, 'file'], 'ignored: policy is pinned; host keys are checked against knownHosts.fingerprints only');
  }
  const fps = kh.fingerprints ?? {};
  const bastions = new Set<string>();
  if (ssh.bastion) bastions.add(ssh.bastion.address);
  for (const n of spec.nodes) if (n.ssh?.bastion) bastions.add(n.ssh.bastion.address);
  const known = [...spec.nodes.flatMap((n) => [n.name, n.address]), ...bastions];
  for (const key of Object.keys(fps)) {
    if (!known.includes(key)) {
      const guess = didYouMean(key, known);
      f.error([...khPath, 'fingerprints', key], `"${key}" names no node or bastion: use a node name or address from spec.nodes${guess ? ` (did you mean "${guess}"?)` : ''}`, 'key');
    }
  }
  if (kh.policy === 'pinned') {
    const missing = spec.nodes.filter((n) => !fps[n.name] && !fps[n.address]).map((n) => n.name);
    for (const b of bastions) if (!fps[b]) missing.push(`bastion ${b}`);
    if (missing.length) {
      const path = kh.fingerprints ? [...khPath, 'fingerprints'] : [...khPath, 'policy'];
      f.error(path, `policy pinned needs a fingerprint for every host; missing: ${names(missing, 4)} (get one with ssh-keyscan HOST | ssh-keygen -lf -)`, kh.fingerprints ? 'key' : 'value');
    }
  }
  const users: Array<[PropertyKey[], string]> = [[[S, 'ssh', 'user'], ssh.user]];
  spec.nodes.forEach((n, i) => {
    if (n.ssh?.user) users.push([[S, 'nodes', i, 'ssh', 'user'], n.ssh.user]);
  });
  if (ssh.sudo === 'never') {
    for (const [path, user] of users) {
      if (user !== 'root') f.error(path, `user ${user} with ssh.sudo: never cannot get root, which kha needs on every host; log in as root or set sudo: auto`);
    }
  }
  const vip = spec.controlPlaneEndpoint.vip;
  const bastionPaths: Array<[PropertyKey[], string]> = [];
  if (ssh.bastion) bastionPaths.push([[S, 'ssh', 'bastion', 'address'], ssh.bastion.address]);
  spec.nodes.forEach((n, i) => {
    if (n.ssh?.bastion) bastionPaths.push([[S, 'nodes', i, 'ssh', 'bastion', 'address'], n.ssh.bastion.address]);
  });
  for (const [path, addr] of bastionPaths) {
    if (addr === vip) f.error(path, `the bastion ${addr} is the control-plane VIP: the VIP moves between control-plane nodes and is not up before the cluster; use the bastion host's own address`);
    else if (/^[\d.]+$/.test(addr) && !isIpv4(addr)) f.error(path, `${addr} is not a valid IPv4 address`);
  }
}

function checkCalico(spec: Spec, f: Findings): void {
  const c = spec.networking.calico;
  const base = [S, 'networking', 'calico'];
  const nad = c.nodeAddressDetection;
  const nadPath = [...base, 'nodeAddressDetection'];
  if (nad.method === 'interface' && !nad.interface) {
    f.error([...nadPath, 'interface'], 'required when method is interface: give the interface name or regular expression, such as enp1s0');
  }
  if (nad.method === 'can-reach' && !nad.canReach) {
    f.error([...nadPath, 'canReach'], 'required when method is can-reach: give an address every node can reach, such as the default gateway');
  }
  if (nad.method !== 'interface' && nad.interface) f.warn([...nadPath, 'interface'], `ignored: method is ${nad.method}, not interface`);
  if (nad.method !== 'can-reach' && nad.canReach) f.warn([...nadPath, 'canReach'], `ignored: method is ${nad.method}, not can-reach`);
  if (c.manifestUrl && c.installMethod !== 'manifest') {
    f.error([...base, 'manifestUrl'], 'only used with installMethod: manifest; remove it or set installMethod: manifest');
  }
}

function checkPolicy(spec: Spec, f: Findings): void {
  const r = spec.policy.retry;
  if (r.initialIntervalSeconds > r.maximumIntervalSeconds) {
    f.error(
      [S, 'policy', 'retry', 'initialIntervalSeconds'],
      `${r.initialIntervalSeconds} is larger than maximumIntervalSeconds (${r.maximumIntervalSeconds}); the first retry interval cannot exceed the largest`,
    );
  }
}

export interface CheckOptions {
  /** The nodes are the membership kha recorded for a running cluster (kha remove may leave an even count). */
  running?: boolean;
}

/** Every cross-field finding for a file the schema accepted. */
export function crossFieldChecks(file: ClusterFileParsed, o: CheckOptions = {}): Finding[] {
  const f = new Findings();
  const spec = file.spec;
  checkVersion(spec, f);
  checkNodes(spec, f, o.running === true);
  checkEndpoint(spec, f);
  checkNetworks(spec, f);
  checkProxy(spec, f);
  checkRuntime(spec, f);
  checkSsh(spec, f);
  checkCalico(spec, f);
  checkPolicy(spec, f);
  for (const s of sourceFindings(spec)) f.error(s.path, s.message, s.path.at(-1) === 'criDockerd' ? 'key' : 'value');
  return f.list;
}

const withV = (v: string): string => (v.startsWith('v') ? v : `v${v}`);

/**
 * Values that follow from others, filled so every consumer sees one form:
 * strictARP on for IPVS with kube-vip ARP; Kubernetes version without "v";
 * kube-vip, Calico and cri-dockerd versions with "v" (their image tags and release URLs use it).
 */
export function normalise(file: ClusterFileParsed): ClusterFileParsed {
  // A JSON copy (the spec is plain data): structuredClone does not exist in the workflow sandbox, which runs this too.
  const spec = JSON.parse(JSON.stringify(file.spec)) as Spec;
  spec.kubernetes.version = spec.kubernetes.version.replace(/^v/, '');
  spec.controlPlaneEndpoint.kubeVip.version = withV(spec.controlPlaneEndpoint.kubeVip.version);
  spec.networking.calico.version = withV(spec.networking.calico.version);
  if (spec.containerRuntime.criDockerd) spec.containerRuntime.criDockerd.version = withV(spec.containerRuntime.criDockerd.version);
  if (spec.networking.kubeProxyMode === 'ipvs' && spec.controlPlaneEndpoint.kubeVip.mode === 'arp') {
    spec.networking.ipvsStrictARP = true;
  }
  return { ...file, spec };
}
