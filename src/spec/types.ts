// The validated, normalised cluster spec that every other module consumes.
import type { ClusterFileParsed, NodeSpecT, BastionT } from './schema';

export type Spec = ClusterFileParsed['spec'];
export type NodeRole = NodeSpecT['role'];
export type KubeProxyMode = Spec['networking']['kubeProxyMode'];

export interface ClusterSpec {
  /** metadata.name */
  name: string;
  /** Path of the file it came from, for messages. */
  source: string;
  spec: Spec;
}

export type NodeSpec = NodeSpecT;

/** SSH settings of one node after merging the defaults with its overrides. */
export interface NodeSshSettings {
  host: string; // node name, used in messages
  address: string;
  port: number;
  user: string;
  privateKeyPath?: string;
  passphraseEnv?: string;
  useAgent: boolean;
  passwordEnv?: string;
  knownHosts: {
    policy: 'known-hosts-file' | 'pinned' | 'accept-new';
    file?: string;
    /** Fingerprints pinned for this node (by name or address). */
    fingerprints: string[];
  };
  /** fingerprints: pinned for the bastion's address (pinned policy). */
  bastion?: BastionT & { user: string; fingerprints?: string[] };
  sudo: 'auto' | 'always' | 'never';
  connectTimeoutMs: number;
  commandTimeoutMs: number;
}

export function controlPlaneNodes(c: ClusterSpec): NodeSpec[] {
  return c.spec.nodes.filter((n) => n.role === 'control-plane');
}

export function workerNodes(c: ClusterSpec): NodeSpec[] {
  return c.spec.nodes.filter((n) => n.role === 'worker');
}

/** The node that runs kubeadm init: the first control-plane node in file order. */
export function firstControlPlane(c: ClusterSpec): NodeSpec {
  const cp = controlPlaneNodes(c)[0];
  if (!cp) throw new Error(`${c.source}: no control-plane node`);
  return cp;
}

export function findNode(c: ClusterSpec, name: string): NodeSpec {
  const n = c.spec.nodes.find((x) => x.name === name);
  if (!n) throw new Error(`${c.source}: no node named ${name}`);
  return n;
}

/** The address the API server advertises and kubelet uses as node-ip. */
export function advertiseAddress(n: NodeSpec): string {
  return n.advertiseAddress ?? n.address;
}

/** The interface kube-vip binds the VIP to on this node. */
export function vipInterface(c: ClusterSpec, n: NodeSpec): string {
  return n.interface ?? c.spec.controlPlaneEndpoint.interface;
}

/** "1.35" for "1.35", "v1.35.2" or "1.35.2". */
export function kubeMinor(version: string): string {
  const m = /^v?(1\.\d+)/.exec(version);
  if (!m) throw new Error(`not a Kubernetes version: ${version}`);
  return m[1]!;
}

export function minorNumber(version: string): number {
  return Number(kubeMinor(version).split('.')[1]);
}

/** Host name (or VIP) and port that kubeconfigs and joins use. */
export function endpointHost(c: ClusterSpec): string {
  return c.spec.controlPlaneEndpoint.name ?? c.spec.controlPlaneEndpoint.vip;
}

export function endpointHostPort(c: ClusterSpec): string {
  return `${endpointHost(c)}:${c.spec.controlPlaneEndpoint.port}`;
}

export function nodeSsh(c: ClusterSpec, n: NodeSpec): NodeSshSettings {
  const d = c.spec.ssh;
  const o = n.ssh ?? {};
  const bastion = o.bastion ?? d.bastion;
  const pinned = d.knownHosts.fingerprints ?? {};
  const fingerprints = [pinned[n.name], pinned[n.address]].filter((x): x is string => typeof x === 'string');
  const user = o.user ?? d.user;
  return {
    host: n.name,
    address: n.address,
    port: o.port ?? d.port,
    user,
    privateKeyPath: o.privateKeyPath ?? d.privateKeyPath,
    passphraseEnv: d.passphraseEnv,
    useAgent: d.useAgent,
    passwordEnv: d.passwordEnv,
    knownHosts: { policy: d.knownHosts.policy, file: d.knownHosts.file, fingerprints },
    bastion: bastion
      ? {
          ...bastion,
          user: bastion.user ?? user,
          privateKeyPath: bastion.privateKeyPath ?? o.privateKeyPath ?? d.privateKeyPath,
          fingerprints: [pinned[bastion.address]].filter((x): x is string => typeof x === 'string'),
        }
      : undefined,
    sudo: d.sudo,
    connectTimeoutMs: d.connectTimeoutSeconds * 1000,
    commandTimeoutMs: d.commandTimeoutSeconds * 1000,
  };
}
