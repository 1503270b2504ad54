// Day 2: what a running cluster is, read on one control-plane node (kha apply's discovery). Read-only: the
// version kubeadm recorded, every Node (address, Ready, role, kubelet version), the etcd members by ID and peer
// URL, which members answer a health check, and which node holds kube-vip's leader Lease (the VIP).
import type { ClusterSpec, NodeSpec } from '../spec/types';
import { ADMIN_CONF } from './common';
import { parseEtcdMembers, type EtcdMember } from './day2-etcd-members';
import { etcdctlFunction } from './join';
import { lines, q, script } from './shell';
import { requireResult } from './result';
import type { RenderedScript } from './types';

/** kube-vip's leader election Lease (the manifest's vip_leasename): its holder announces the VIP. */
export const VIP_LEASE = 'plndr-cp-lock';

export interface ClusterNode {
  name: string;
  address: string;
  ready: boolean;
  controlPlane: boolean;
  kubeletVersion: string;
  /** Cordoned (spec.unschedulable). */
  unschedulable: boolean;
}

export interface ClusterState {
  /** The node the state was read on. */
  via: string;
  /** kubeadm's ClusterConfiguration kubernetesVersion ("v1.35.1"). */
  kubernetesVersion: string;
  nodes: ClusterNode[];
  members: EtcdMember[];
  /** Client URLs of the members that answered etcd's health check. */
  healthyEndpoints: string[];
  /** The node holding kube-vip's Lease, or "" when none does. */
  vipHolder: string;
}

export function renderClusterState(c: ClusterSpec, n: NodeSpec): RenderedScript {
  return script({
    cluster: c.name,
    node: n.name,
    phase: 'day2',
    name: 'cluster-state',
    summary: 'Reads the running cluster (version, Nodes, etcd members and their health, the VIP holder) and prints it as one CLUSTER-STATE line; changes nothing.',
    body: lines(
      `export KUBECONFIG=${q(ADMIN_CONF)}`,
      '# A node without admin.conf is no control-plane member (yet): it says so, and kha asks the next one.',
      'if [ ! -f "$KUBECONFIG" ]; then',
      `  kha_result CLUSTER-STATE '{"member":false}'`,
      '  exit 0',
      'fi',
      'config="$(kubectl -n kube-system get configmap kubeadm-config -o jsonpath=\'{.data.ClusterConfiguration}\')" || kha_die "the API server does not answer through $KUBECONFIG"',
      "version=\"$(printf '%s\\n' \"$config\" | sed -n 's/^kubernetesVersion:[[:space:]]*//p' | head -n 1 | tr -cd 'v0-9.')\"",
      '[ -n "$version" ] || kha_die "kubeadm-config names no kubernetesVersion"',
      '# One line per Node, fields split by | (no name, address, version or label may hold one): name, InternalIP, Ready, kubelet version, cordoned, labels (a JSON map: the role label is looked up in it).',
      'node_lines="$(kubectl get nodes -o jsonpath=\'{range .items[*]}{.metadata.name}{"|"}{.status.addresses[?(@.type=="InternalIP")].address}{"|"}{.status.conditions[?(@.type=="Ready")].status}{"|"}{.status.nodeInfo.kubeletVersion}{"|"}{.spec.unschedulable}{"|"}{.metadata.labels}{"\\n"}{end}\')" || kha_die "kubectl get nodes failed"',
      'nodes_json=""',
      "while IFS='|' read -r name address ready kubelet unschedulable labels; do",
      '  [ -n "$name" ] || continue',
      '  case "$labels" in *\'"node-role.kubernetes.io/control-plane"\'*) cp=true ;; *) cp=false ;; esac',
      '  if [ "$ready" = True ]; then ready=true; else ready=false; fi',
      '  if [ "$unschedulable" = true ]; then unschedulable=true; else unschedulable=false; fi',
      "  name=\"$(printf '%s' \"$name\" | tr -cd 'a-z0-9.-')\"; address=\"$(printf '%s' \"$address\" | tr -cd '0-9a-f.:')\"; kubelet=\"$(printf '%s' \"$kubelet\" | tr -cd 'v0-9.+a-z-')\"",
      '  nodes_json="${nodes_json:+$nodes_json,}{\\"name\\":\\"$name\\",\\"address\\":\\"$address\\",\\"ready\\":$ready,\\"controlPlane\\":$cp,\\"kubeletVersion\\":\\"$kubelet\\"}"',
      'done <<<"$node_lines"',
      etcdctlFunction(),
      'members="$(etcdctl_run member list -w json --hex | tr -d \'\\n\')" || kha_die "etcd did not list its members"',
      '# Healthy members print "URL is healthy: ..."; unhealthy ones go to stderr and make etcdctl fail.',
      'health="$(etcdctl_run endpoint health --cluster 2>&1 || true)"',
      'healthy_json=""',
      "for url in $(printf '%s\\n' \"$health\" | sed -n 's#^\\(https\\{0,1\\}://[^ ]*\\) is healthy:.*#\\1#p' | tr -cd 'a-z0-9.:/\\n'); do",
      '  healthy_json="${healthy_json:+$healthy_json,}\\"$url\\""',
      'done',
      `holder="$(kubectl -n kube-system get lease ${q(VIP_LEASE)} -o jsonpath='{.spec.holderIdentity}' 2>/dev/null | tr -cd 'a-z0-9.-' || true)"`,
      `kha_result CLUSTER-STATE "{\\"member\\":true,\\"kubernetesVersion\\":\\"$version\\",\\"nodes\\":[$nodes_json],\\"etcd\\":$members,\\"healthyEndpoints\\":[$healthy_json],\\"vipHolder\\":\\"$holder\\"}"`,
    ),
  });
}

/** The state from the script's output, or undefined when the node is no member; throws naming what is wrong. */
export function parseClusterState(stdout: string, via: string): ClusterState | undefined {
  const r = requireResult(stdout, 'CLUSTER-STATE', 'cluster-state');
  if (r.member === false) return undefined;
  if (typeof r.kubernetesVersion !== 'string' || !/^v?\d+\.\d+\.\d+/.test(r.kubernetesVersion)) throw new Error('cluster-state: no Kubernetes version');
  if (!Array.isArray(r.nodes)) throw new Error('cluster-state: no nodes array');
  const nodes = r.nodes.map((x: Record<string, unknown>, i): ClusterNode => {
    if (typeof x.name !== 'string' || !x.name || typeof x.address !== 'string') throw new Error(`cluster-state: node ${i} has no name or address`);
    return { name: x.name, address: x.address, ready: x.ready === true, controlPlane: x.controlPlane === true, kubeletVersion: typeof x.kubeletVersion === 'string' ? x.kubeletVersion : '', unschedulable: x.unschedulable === true };
  });
  const members = parseEtcdMembers(JSON.stringify(r.etcd ?? null));
  const healthyEndpoints = Array.isArray(r.healthyEndpoints) ? r.healthyEndpoints.filter((u): u is string => typeof u === 'string') : [];
  return { via, kubernetesVersion: r.kubernetesVersion, nodes, members, healthyEndpoints, vipHolder: typeof r.vipHolder === 'string' ? r.vipHolder : '' };
}
