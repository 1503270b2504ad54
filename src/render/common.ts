// Facts derived from the spec that several renderers share.
import { stringify } from 'yaml';
import type { ClusterSpec, NodeSpec } from '../spec/types';
import { advertiseAddress, controlPlaneNodes, endpointHost, firstControlPlane, minorNumber } from '../spec/types';
import type { RenderFacts } from './types';

export const KUBEADM_DIR = '/etc/kubernetes/kha';
export const ADMIN_CONF = '/etc/kubernetes/admin.conf';
export const SUPER_ADMIN_CONF = '/etc/kubernetes/super-admin.conf';
export const KUBELET_CONF = '/etc/kubernetes/kubelet.conf';
export const MANIFESTS_DIR = '/etc/kubernetes/manifests';
export const KUBE_VIP_MANIFEST = `${MANIFESTS_DIR}/kube-vip.yaml`;
export const ETCD_PKI = '/etc/kubernetes/pki/etcd';

export function isFirstControlPlane(c: ClusterSpec, n: NodeSpec): boolean {
  return firstControlPlane(c).name === n.name;
}

export function isControlPlane(n: NodeSpec): boolean {
  return n.role === 'control-plane';
}

/**
 * Shell setting api_address to this control-plane node's own API server address (kubeadm's flag in its static pod),
 * for steps that must not depend on the default route or on the VIP, which moves while a control plane is reset.
 */
export function localApiAddress(): string {
  return [
    "api_address=\"$(sed -n 's/^[[:space:]]*- --advertise-address=\\([0-9.]*\\)[[:space:]]*$/\\1/p' /etc/kubernetes/manifests/kube-apiserver.yaml 2>/dev/null | head -n 1)\"",
    '[ -n "$api_address" ] || kha_die "no --advertise-address in /etc/kubernetes/manifests/kube-apiserver.yaml: not a working control-plane node"',
  ].join('\n');
}

/** The CRI socket kubeadm and crictl use for the configured runtime. */
export function criSocket(c: ClusterSpec): string {
  return c.spec.containerRuntime.type === 'docker'
    ? 'unix:///var/run/cri-dockerd.sock'
    : 'unix:///var/run/containerd/containerd.sock';
}

/** kubeadm's default pause image tag per Kubernetes minor (cmd/kubeadm/app/constants). */
export function pauseVersion(kubernetesVersion: string): string {
  const minor = minorNumber(kubernetesVersion);
  if (minor >= 34) return '3.10.1';
  if (minor >= 31) return '3.10';
  return '3.9';
}

export function pauseImage(c: ClusterSpec, facts: RenderFacts): string {
  return `${c.spec.images.repository}/pause:${pauseVersion(facts.kubernetesVersion)}`;
}

/** v1beta4 from 1.31 (structured extraArgs), v1beta3 below. */
export function kubeadmApiVersion(facts: RenderFacts): 'kubeadm.k8s.io/v1beta3' | 'kubeadm.k8s.io/v1beta4' {
  return minorNumber(facts.kubernetesVersion) >= 31 ? 'kubeadm.k8s.io/v1beta4' : 'kubeadm.k8s.io/v1beta3';
}

/** kubelet extra args in the shape the kubeadm API version wants. */
export function kubeletExtraArgs(facts: RenderFacts, args: Record<string, string>): unknown {
  if (kubeadmApiVersion(facts) === 'kubeadm.k8s.io/v1beta4') {
    return Object.entries(args).map(([name, value]) => ({ name, value }));
  }
  return { ...args };
}

export const CONTROL_PLANE_TAINT = { key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' };

/**
 * Taints for nodeRegistration. Left out (undefined) when the node has none of its own, so kubeadm
 * applies its default; given explicitly, kubeadm applies exactly the list, so the control-plane
 * taint is kept in it.
 */
export function nodeTaints(n: NodeSpec): Array<Record<string, string>> | undefined {
  if (n.taints.length === 0) return undefined;
  const own = n.taints.map((t): Record<string, string> => (t.value === undefined ? { key: t.key, effect: t.effect } : { key: t.key, value: t.value, effect: t.effect }));
  return isControlPlane(n) ? [CONTROL_PLANE_TAINT, ...own] : own;
}

export function apiServerUrl(c: ClusterSpec): string {
  return `https://${endpointHost(c)}:${c.spec.controlPlaneEndpoint.port}`;
}

export function vipUrl(c: ClusterSpec): string {
  return `https://${c.spec.controlPlaneEndpoint.vip}:${c.spec.controlPlaneEndpoint.port}`;
}

/** certSANs: the VIP, the endpoint name, and every control-plane node's name and address. */
export function certSans(c: ClusterSpec): string[] {
  const sans = [c.spec.controlPlaneEndpoint.vip];
  if (c.spec.controlPlaneEndpoint.name) sans.push(c.spec.controlPlaneEndpoint.name);
  for (const n of controlPlaneNodes(c)) sans.push(n.name, advertiseAddress(n));
  return [...new Set(sans)];
}

/** Multi-document YAML with stable formatting. */
export function yamlDocs(docs: unknown[]): string {
  return docs.map((d) => stringify(d, { lineWidth: 0 })).join('---\n');
}

/** Ports a node needs free before kubeadm runs on it. */
export function requiredPorts(c: ClusterSpec, n: NodeSpec): number[] {
  if (!isControlPlane(n)) return [10250];
  return [...new Set([c.spec.controlPlaneEndpoint.port, 2379, 2380, 10250, 10257, 10259])];
}
