// Inputs and results of the activities. Nothing here may carry a secret: join credentials are minted and
// used inside one activity call, and kubeconfigs are written to disk on the worker's machine, never returned.
import type { ClusterSpec } from '../spec/types';
import type { RenderFacts } from '../render/types';

export interface NodeCall {
  /** The cluster, trimmed to the control-plane nodes plus this node (keeps history small). */
  cluster: ClusterSpec;
  node: string;
  facts?: RenderFacts;
  /** Control-plane nodes known to be healthy members, in order of preference, for steps run "via" one. */
  via?: string[];
}

export interface PreflightCall extends NodeCall {
  /** Ask for the kubeadm versions the package repository offers (first control-plane node only). */
  listVersions: boolean;
  /** The VIP must not answer yet (false when the cluster already exists). */
  expectVipFree: boolean;
}

/** What preflight learned about a node; no secrets (the CA hash is public by design). */
export interface NodeFacts {
  node: string;
  hostname: string;
  macs: string[];
  productUuid: string;
  machineId: string;
  os: string;
  arch: string;
  cpus: number;
  memoryMb: number;
  /** Remote clock minus the worker's clock, measured around the call. */
  clockOffsetMs: number;
  interfaces: string[];
  criSockets: string[];
  portsInUse: number[];
  privileged: boolean;
  /** Present when the node already belongs to a cluster. */
  clusterCaHash?: string;
  kubeletConfPresent: boolean;
  adminConfPresent: boolean;
  installed: { kubeadm?: string; kubelet?: string; kubectl?: string };
  availableVersions?: string[];
  vipAnswers: boolean;
  /** MAC of another machine that answered ARP for the VIP (control-plane nodes only). */
  vipNeighbor?: string;
  problems: string[];
}

export interface StepResult {
  node: string;
  /** False when the effect was already there and nothing ran. */
  changed: boolean;
  note: string;
  /** Which attempt of the activity produced this (1 = first try). */
  attempt?: number;
}

export interface PackagesResult extends StepResult {
  versions: { kubeadm: string; kubelet: string; kubectl: string };
}

export interface VerifyResult {
  nodesReady: number;
  nodesTotal: number;
  notReady: string[];
  etcdMembers: number;
  etcdHealthy: boolean;
  vipAnswers: boolean;
  kubeProxyMode: string;
  problems: string[];
}

export interface KubeconfigResult {
  path: string;
  server: string;
}

/** Error types the activities throw; the workflow decides retries by these names. */
export const NON_RETRYABLE_ERRORS = [
  'HostKeyMismatch',
  'HostKeyUnknown',
  'AuthFailed',
  'SudoPasswordRequired',
  'PreflightFailed',
  'JoinPreflightFailed',
  'CommandFailed',
  'InvalidSpec',
  'ForeignCluster',
] as const;
// Everything else is retried: the network kinds of src/ssh/errors.ts, TransientCommandFailed, JoinedStepFailed (never compensated).
