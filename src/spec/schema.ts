// The cluster file's schema. Every string that can reach a shell has a strict pattern here,
// so renderers may rely on values being safe to quote.
import { z } from 'zod';

export const API_VERSION = 'kha.dev/v1alpha1';
export const KIND = 'Cluster';

// Patterns shared by the schema and by tests.
export const patterns = {
  dnsLabel: /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/,
  dnsName: /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/,
  ipv4: /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/,
  cidr4: /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}\/(3[0-2]|[12]?\d)$/,
  interfaceName: /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}$/,
  k8sVersion: /^v?1\.\d{1,2}(\.\d{1,3})?$/,
  semver: /^v?\d{1,3}\.\d{1,3}\.\d{1,3}$/,
  userName: /^[a-z_][a-z0-9_-]{0,31}$/,
  // Absolute or ~-relative path without spaces, quotes or shell metacharacters.
  path: /^(~\/|\/)[A-Za-z0-9._+\/-]*$/,
  url: /^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?(\/[A-Za-z0-9._~:\/+%@-]*)?$/,
  // An image reference without tag: registry/path.
  imageRepo: /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?(\/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*$/,
  registryHost: /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?$/,
  labelKey: /^([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$/,
  labelValue: /^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$/,
  // Secrets come from the worker's environment; the prefix keeps a file from naming the worker's own
  // secrets (TEMPORAL_API_KEY, AWS_SECRET_ACCESS_KEY) and sending them to a host as a password.
  envName: /^KHA_[A-Z0-9_]{1,60}$/,
  fingerprint: /^SHA256:[A-Za-z0-9+\/]{43}=?$/,
  // An OpenPGP v4 fingerprint: 40 hex digits, spaces allowed as gpg prints them.
  pgpFingerprint: /^ *([0-9A-Fa-f] *){40}$/,
  sha256: /^[0-9a-f]{64}$/,
} as const;

const str = (re: RegExp, what: string) =>
  z.string().regex(re, { message: `must be ${what}` });

export const Ipv4 = str(patterns.ipv4, 'an IPv4 address such as 192.0.2.10');
export const Cidr4 = str(patterns.cidr4, 'an IPv4 CIDR such as 10.244.0.0/16');
export const InterfaceName = str(patterns.interfaceName, 'a network interface name such as enp1s0 (letters, digits, _ . -; at most 15 characters)');
export const PathStr = str(patterns.path, 'an absolute or ~/ path of letters, digits and ._+/- only');
export const UrlStr = str(patterns.url, 'an http(s) URL of letters, digits and ._~:/+%@- only');
export const ImageRepo = str(patterns.imageRepo, 'an image repository such as registry.k8s.io or registry.example.com/google_containers');
export const Port = z.number().int().min(1).max(65535);
const Insecure = z.boolean().optional();
const KeyFingerprint = str(patterns.pgpFingerprint, 'an OpenPGP key fingerprint of 40 hex digits such as DE15 B144 86CD 377B 9E87  6E1A 2346 54DA 9A29 6436');
export const EnvName = str(patterns.envName, 'an environment variable name that starts with KHA_, such as KHA_SSH_PASSPHRASE (only KHA_ variables are read as secrets)');

export const BastionSpec = z.strictObject({
  // One pattern (an IPv4 address also matches it) so a bad value gets one clear message.
  address: str(patterns.dnsName, 'an IPv4 address or a DNS name such as bastion.example.com'),
  port: Port.default(22),
  user: str(patterns.userName, 'a Unix user name').optional(),
  privateKeyPath: PathStr.optional(),
});

const knownHosts = z.strictObject({
  policy: z.enum(['known-hosts-file', 'pinned', 'accept-new']).default('accept-new').describe('known-hosts-file: check against file; pinned: check against fingerprints; accept-new: record each key on first contact, refuse changes.'),
  file: PathStr.optional().describe('known-hosts-file: the file keys are checked against (default ~/.ssh/known_hosts); accept-new: where first keys are recorded and checked (default ~/.config/kha/known_hosts). ~/ is the worker\'s home.'),
  fingerprints: z
    .record(str(patterns.dnsName, 'a node name or address'), str(patterns.fingerprint, 'a SHA256 fingerprint such as SHA256:<43 base64 characters>'))
    .optional(),
});

const sshCommon = {
  user: str(patterns.userName, 'a Unix user name such as root or ubuntu').optional(),
  port: Port.optional(),
  privateKeyPath: PathStr.optional(),
  bastion: BastionSpec.optional(),
};

export const SshDefaults = z.strictObject({
  ...sshCommon,
  user: sshCommon.user.default('root'),
  port: Port.default(22),
  passphraseEnv: EnvName.optional(),
  useAgent: z.boolean().default(false),
  passwordEnv: EnvName.optional(),
  knownHosts: knownHosts.default({ policy: 'accept-new' }),
  sudo: z.enum(['auto', 'always', 'never']).default('auto').describe('auto: use sudo when the user is not root; always; never (the user must be root).'),
  connectTimeoutSeconds: z.number().int().min(1).max(600).default(15),
  commandTimeoutSeconds: z.number().int().min(1).max(86400).default(1800),
});

export const NodeSsh = z.strictObject({ ...sshCommon });

export const Taint = z.strictObject({
  key: str(patterns.labelKey, 'a taint key such as node-role.kubernetes.io/infra'),
  value: str(patterns.labelValue, 'a taint value of letters, digits and _.-').optional(),
  effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']),
});

export const NodeSpec = z.strictObject({
  name: str(patterns.dnsLabel, 'a lower-case DNS label such as k8scp-01').describe('Host name and Kubernetes node name.'),
  address: Ipv4.describe('Address kha connects to over SSH; also the advertise address unless advertiseAddress is set.'),
  role: z.enum(['control-plane', 'worker']).describe('control-plane nodes run etcd and the API server (use an odd number, 3 for HA); the first one runs kubeadm init.'),
  advertiseAddress: Ipv4.optional().describe('Address the API server advertises and kubelet uses as node-ip, when it differs from address (another NIC).'),
  interface: InterfaceName.optional().describe("This node's NIC for the VIP, when it differs from controlPlaneEndpoint.interface."),
  labels: z.record(str(patterns.labelKey, 'a label key such as team or topology.kubernetes.io/zone (letters, digits, - _ . and an optional DNS prefix/)'), str(patterns.labelValue, 'a label value of letters, digits and _.-')).default({}),
  taints: z.array(Taint).default([]),
  ssh: NodeSsh.optional(),
});

export const KubeVipSpec = z.strictObject({
  version: str(patterns.semver, 'a kube-vip version such as v1.0.1').default('v1.0.1'),
  image: ImageRepo.default('ghcr.io/kube-vip/kube-vip'),
  mode: z.enum(['arp', 'bgp']).default('arp'),
});

export const EndpointSpec = z.strictObject({
  name: str(patterns.dnsName, 'a DNS name such as control-plane-endpoint').optional().describe('DNS name of the API endpoint; written to /etc/hosts with the VIP when writeHostsEntry is true. Without it the VIP is used.'),
  vip: Ipv4.describe("Virtual IP held by kube-vip on the control-plane nodes: a free address in the nodes' network."),
  port: Port.default(6443),
  interface: InterfaceName.describe('NIC that kube-vip binds the VIP to on control-plane nodes.'),
  writeHostsEntry: z.boolean().default(true),
  kubeVip: KubeVipSpec.default({ version: 'v1.0.1', image: 'ghcr.io/kube-vip/kube-vip', mode: 'arp' }),
});

export const RegistryMirror = z.strictObject({
  registry: str(patterns.registryHost, 'a registry host such as docker.io'),
  endpoints: z.array(UrlStr).min(1),
});

export const RuntimeSpec = z.strictObject({
  type: z.enum(['containerd', 'docker']).default('containerd').describe('containerd, or docker through cri-dockerd (criDockerd.enabled: true): the dockershim is gone since 1.24.'),
  containerd: z
    .strictObject({
      // distro: Debian/Ubuntu containerd package; docker: containerd.io from Docker's apt repo.
      packageSource: z.enum(['distro', 'docker']).default('distro'),
      dockerRepository: UrlStr.default('https://download.docker.com/linux'),
      insecure: Insecure.describe('Allow a plain http:// dockerRepository (its packages are still checked against the pinned key).'),
      keyFingerprint: KeyFingerprint.optional().describe("Fingerprint of the key that signs dockerRepository; default: Docker's release key."),
      configVersion: z.literal([2, 3]).optional(),
    })
    .default({ packageSource: 'distro', dockerRepository: 'https://download.docker.com/linux' }),
  criDockerd: z
    .strictObject({
      enabled: z.boolean().default(false),
      version: str(patterns.semver, 'a cri-dockerd version such as v0.3.21').default('v0.3.21'),
      packageUrl: UrlStr.optional(),
      sha256: str(patterns.sha256, 'a SHA-256 checksum of 64 lower-case hex digits').optional().describe('SHA-256 of the cri-dockerd .deb the nodes download; required: kha installs no unverified package.'),
      insecure: Insecure.describe('Allow a plain http:// packageUrl.'),
    })
    .optional(),
  registryMirrors: z.array(RegistryMirror).default([]),
});

export const PackagesSpec = z.strictObject({
  repository: UrlStr.default('https://pkgs.k8s.io/core:/stable:').describe('Base URL of the Kubernetes package repository (one repository per minor below it), or a mirror of the same layout.'),
  extra: z.array(str(/^[a-z0-9][a-z0-9.+-]*$/, 'a Debian package name')).default(['ipset', 'ipvsadm', 'conntrack', 'socat']),
  insecure: Insecure.describe('Allow a plain http:// repository (its packages are still checked against the pinned key).'),
  keyFingerprint: KeyFingerprint.optional().describe("Fingerprint of the key that signs the repository; default: the pkgs.k8s.io key (mirrors serve the same)."),
});

export const CalicoSpec = z.strictObject({
  version: str(patterns.semver, 'a Calico version such as v3.31.2').default('v3.31.2'),
  installMethod: z.enum(['operator', 'manifest']).default('operator'),
  manifestUrl: UrlStr.optional(),
  insecure: Insecure.describe('Allow a plain http:// manifestUrl.'),
  registry: ImageRepo.optional(),
  encapsulation: z.enum(['IPIP', 'IPIPCrossSubnet', 'VXLAN', 'VXLANCrossSubnet', 'None']).default('IPIP'),
  nodeAddressDetection: z
    .strictObject({
      method: z.enum(['node-internal-ip', 'interface', 'can-reach', 'first-found']).default('node-internal-ip'),
      interface: str(/^[a-zA-Z0-9_.*|-]{1,64}$/, 'an interface name or regular expression of letters, digits and _.*|-').optional(),
      canReach: Ipv4.optional(),
    })
    .default({ method: 'node-internal-ip' }),
});

export const NetworkingSpec = z.strictObject({
  podSubnet: Cidr4.default('10.244.0.0/16').describe('Pod network (Calico pool); each node gets a /24 of it. Must not overlap the nodes or the service subnet.'),
  serviceSubnet: Cidr4.default('10.96.0.0/12').describe('ClusterIP range, at most a /12. Must not overlap the nodes or the pod subnet.'),
  dnsDomain: str(patterns.dnsName, 'a DNS domain such as cluster.local').default('cluster.local'),
  kubeProxyMode: z.enum(['ipvs', 'iptables', 'nftables']).default('ipvs').describe('kube-proxy backend. IPVS is deprecated since 1.35; nftables needs 1.31 or newer.'),
  ipvsStrictARP: z.boolean().optional().describe('strictARP for IPVS; kha sets it to true when kube-vip uses ARP.'),
  calico: CalicoSpec.default({
    version: 'v3.31.2',
    installMethod: 'operator',
    encapsulation: 'IPIP',
    nodeAddressDetection: { method: 'node-internal-ip' },
  }),
});

export const HostPrepSpec = z.strictObject({
  disableUfw: z.boolean().default(true),
  disableIPv6LinkLocal: z.boolean().default(false),
  disableSwap: z.boolean().default(true),
});

export const RetrySpec = z.strictObject({
  maximumAttempts: z.number().int().min(1).max(100).default(3),
  initialIntervalSeconds: z.number().min(0.1).max(3600).default(5),
  backoffCoefficient: z.number().min(1).max(10).default(2),
  maximumIntervalSeconds: z.number().min(1).max(86400).default(120),
  transientBudgetSeconds: z
    .number()
    .min(0)
    .max(86400)
    .default(600)
    .describe('How long a step whose host is unreachable, or whose connection drops or times out, keeps being retried after its attempts are used up, before an operator is asked; 0: attempts only.'),
});

export const PolicySpec = z.strictObject({
  retry: RetrySpec.default({ maximumAttempts: 3, initialIntervalSeconds: 5, backoffCoefficient: 2, maximumIntervalSeconds: 120, transientBudgetSeconds: 600 }),
  compensation: z
    .strictObject({
      enabled: z.boolean().default(true),
      rounds: z.number().int().min(0).max(10).default(1),
      rebootTimeoutSeconds: z.number().int().min(10).max(3600).default(600),
    })
    .default({ enabled: true, rounds: 1, rebootTimeoutSeconds: 600 }),
  approveBeforeWorkers: z.boolean().default(true).describe('Wait for an approval after the control plane is up, before joining workers.'),
  workerJoinConcurrency: z.number().int().min(1).max(100).default(5).describe('How many workers join at once.'),
  workerUpgradeConcurrency: z.number().int().min(1).max(100).default(1).describe('How many workers kha upgrade drains and upgrades at once.'),
});

export const ClusterSpecBody = z.strictObject({
  kubernetes: z.strictObject({
    version: str(patterns.k8sVersion, 'a Kubernetes version such as 1.35 or 1.35.2').describe(
      'A minor ("1.35", resolved once to its newest patch and pinned on every node) or a patch ("1.35.2"); 1.28 or newer. Quote it.',
    ),
    allowCgroupV1: z
      .boolean()
      .default(false)
      .describe('Run the kubelet on hosts that still use cgroup v1 (failCgroupV1: false; the kubelet refuses them from 1.35). Also list SystemVerification in ignorePreflightErrors: kubeadm reports cgroup v1 as an error.'),
    ignorePreflightErrors: z
      .array(str(/^[A-Za-z][A-Za-z0-9.-]*$/, 'a kubeadm preflight check name such as SystemVerification'))
      .default([])
      .describe('kubeadm preflight checks whose errors are reported as warnings (nodeRegistration.ignorePreflightErrors), for init and every join.'),
  }),
  ssh: SshDefaults.default({
    user: 'root',
    port: 22,
    useAgent: false,
    knownHosts: { policy: 'accept-new' },
    sudo: 'auto',
    connectTimeoutSeconds: 15,
    commandTimeoutSeconds: 1800,
  }),
  nodes: z.array(NodeSpec),
  controlPlaneEndpoint: EndpointSpec,
  containerRuntime: RuntimeSpec.default({
    type: 'containerd',
    containerd: { packageSource: 'distro', dockerRepository: 'https://download.docker.com/linux' },
    registryMirrors: [],
  }),
  packages: PackagesSpec.default({ repository: 'https://pkgs.k8s.io/core:/stable:', extra: ['ipset', 'ipvsadm', 'conntrack', 'socat'] }),
  images: z
    .strictObject({ repository: ImageRepo.default('registry.k8s.io') })
    .default({ repository: 'registry.k8s.io' }),
  networking: NetworkingSpec.default({
    podSubnet: '10.244.0.0/16',
    serviceSubnet: '10.96.0.0/12',
    dnsDomain: 'cluster.local',
    kubeProxyMode: 'ipvs',
    calico: { version: 'v3.31.2', installMethod: 'operator', encapsulation: 'IPIP', nodeAddressDetection: { method: 'node-internal-ip' } },
  }),
  hostPrep: HostPrepSpec.default({ disableUfw: true, disableIPv6LinkLocal: false, disableSwap: true }),
  policy: PolicySpec.default({
    retry: { maximumAttempts: 3, initialIntervalSeconds: 5, backoffCoefficient: 2, maximumIntervalSeconds: 120, transientBudgetSeconds: 600 },
    compensation: { enabled: true, rounds: 1, rebootTimeoutSeconds: 600 },
    approveBeforeWorkers: true,
    workerJoinConcurrency: 5,
    workerUpgradeConcurrency: 1,
  }),
});

export const ClusterFile = z.strictObject({
  apiVersion: z.literal(API_VERSION, { message: `must be ${API_VERSION}` }),
  kind: z.literal(KIND, { message: `must be ${KIND}` }),
  metadata: z.strictObject({
    name: str(patterns.dnsLabel, 'a lower-case DNS label such as prod-eu1'),
  }),
  spec: ClusterSpecBody,
});

export type ClusterFileInput = z.input<typeof ClusterFile>;
/** The parsed file with defaults filled, before cross-field normalisation. */
export type ClusterFileParsed = z.output<typeof ClusterFile>;
export type NodeSpecT = z.output<typeof NodeSpec>;
export type SshDefaultsT = z.output<typeof SshDefaults>;
export type BastionT = z.output<typeof BastionSpec>;
