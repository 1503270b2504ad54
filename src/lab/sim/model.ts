// The one cluster model every host shares (lab dir model.json), read and changed under the lab lock.
import * as path from 'node:path';
import { labDir, readJson, withLock, writeJson, now } from './env';

export interface SimToken {
  id: string;
  secret: string;
  expires: number; // lab-clock ms; 0 = never
  description?: string;
}

export interface SimEtcdMember {
  id: string; // 16 hex digits
  name: string;
  peerURL: string;
  clientURL: string;
  isLearner: boolean;
  /** False once the host stopped serving (reset without removal): a stale member. */
  running: boolean;
}

export interface SimTaint {
  key: string;
  value?: string;
  effect: string;
}

export interface SimNode {
  name: string;
  address: string;
  controlPlane: boolean;
  kubeletVersion: string;
  labels: Record<string, string>;
  taints: SimTaint[];
  createdAt: number;
  /** kubelet stopped on the host (reset, stop): NotReady. */
  kubeletDown: boolean;
}

export interface SimResource {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
}

export interface SimCluster {
  kubernetesVersion: string; // v1.35.2
  controlPlaneEndpoint: string; // host:port
  clusterName: string;
  podSubnet: string;
  serviceSubnet: string;
  dnsDomain: string;
  imageRepository: string;
  proxyMode: string;
  strictARP: boolean;
  caCertPem: string;
  caHash: string; // sha256:<hex>
  createdAt: number;
  tokens: SimToken[];
  certKey?: { key: string; expires: number };
  etcd: SimEtcdMember[];
  nodes: SimNode[];
  /** Resources created with kubectl apply/create, keyed by kind/namespace/name. */
  resources: Record<string, SimResource>;
  /** Control-plane hosts whose kube-vip static pod holds (or can hold) the VIP. */
  vipHolders: string[];
  vip?: string;
}

export interface SimModel {
  version: 1;
  cluster?: SimCluster;
}

export function modelPath(): string {
  return process.env.KHA_SIM_MODEL ?? path.join(labDir(), 'model.json');
}

export function readModel(): SimModel {
  return readJson<SimModel>(modelPath(), { version: 1 });
}

/** Read-modify-write the model under the lock; `fn` returns a result and mutates the model in place. */
export function updateModel<T>(fn: (m: SimModel) => T): T {
  return withLock(modelPath() + '.lock', () => {
    const m = readModel();
    const r = fn(m);
    writeJson(modelPath(), m);
    return r;
  });
}

export function resourceKey(kind: string, namespace: string | undefined, name: string): string {
  return `${kind.toLowerCase()}/${namespace ?? ''}/${name}`;
}

export function liveTokens(c: SimCluster): SimToken[] {
  const t = now();
  return c.tokens.filter((x) => x.expires === 0 || x.expires > t);
}

/** The API answers while etcd has quorum among its voting members. */
export function apiAvailable(c: SimCluster): boolean {
  const voters = c.etcd.filter((m) => !m.isLearner);
  const up = voters.filter((m) => m.running).length;
  return voters.length > 0 && up > voters.length / 2;
}

export function minorOf(version: string): number {
  const m = /^v?1\.(\d+)/.exec(version);
  return m ? Number(m[1]) : 0;
}

export function cniApplied(c: SimCluster): boolean {
  const r = c.resources;
  const operator = Object.values(r).some((x) => x.kind === 'Deployment' && x.metadata.name === 'tigera-operator');
  const installation = Object.values(r).some((x) => x.kind === 'Installation');
  const manifest = Object.values(r).some((x) => x.kind === 'DaemonSet' && x.metadata.name === 'calico-node');
  return (operator && installation) || manifest;
}

export function nodeReady(c: SimCluster, n: SimNode): boolean {
  return cniApplied(c) && !n.kubeletDown;
}
