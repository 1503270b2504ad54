// Preflight: read-only facts from one node, checked against the node's own requirements. The cross-node
// checks (duplicates, clock skew, existing clusters) run in the workflow over every node's facts.
import { renderPhase } from '../render';
import { parseFacts } from '../render/preflight';
import type { NodeFacts, PreflightCall } from './types';
import { runScript, withNode, toFailure } from './common';
import { scriptOf } from './nodes';
import { requireResult } from '../render/result';
import { assumedFacts } from '../render/version';
import { vipInterface, type ClusterSpec, type NodeSpec } from '../spec/types';
import { canonicalCidr, cidrContains, intToIp, ipToInt, parseCidr } from '../spec/net';
import type { InterfaceFacts } from '../render/preflight';
import { criSocket } from '../render/common';

const SUPPORTED_OS: Record<string, string[]> = { ubuntu: ['22.04', '24.04'], debian: ['12', '13'] };

export async function preflightNode(call: PreflightCall): Promise<NodeFacts> {
  const { cluster, node } = call;
  return withNode(cluster, node, async (session, spec) => {
    const render = renderPhase(cluster, node, 'preflight', call.facts ?? assumedFacts(cluster.spec.kubernetes.version));
    const { stdout } = await runScript(session, node, 'preflight', scriptOf(render, 'preflight'), { env: call.listVersions ? { KHA_LIST_VERSIONS: '1' } : {} });
    // The clock is read by a script of its own: the whole preflight script's run time would blur the offset.
    const t0 = Date.now();
    const clock = await runScript(session, node, 'preflight', scriptOf(render, 'clock'));
    const t1 = Date.now();
    let h;
    let remoteMs: number;
    try {
      h = parseFacts(stdout);
      remoteMs = requireResult(clock.stdout, 'CLOCK', 'preflight/clock').ms;
    } catch (e) {
      throw toFailure(e, node);
    }
    // The remote reading sits between t0 and t1, so the midpoint is off by at most half the round trip.
    const clockOffsetMs = remoteMs - (t0 + t1) / 2;
    const problems: string[] = [];
    const supported = SUPPORTED_OS[h.os.id];
    if (!supported || !supported.includes(h.os.versionId)) {
      problems.push(`unsupported OS ${h.os.id} ${h.os.versionId} (supported: Ubuntu 22.04/24.04, Debian 12/13)`);
    }
    if (h.arch !== 'x86_64' && h.arch !== 'aarch64') problems.push(`unsupported architecture ${h.arch}`);
    if (!h.root && !h.passwordlessSudo) problems.push(`user ${h.sudoUser} is not root and has no passwordless sudo`);
    if (spec.role === 'control-plane') {
      if (h.cpus < 2) problems.push(`control-plane nodes need at least 2 CPUs (has ${h.cpus})`);
      if (h.memoryMb < 1700) problems.push(`control-plane nodes need at least 1700 MB of memory (has ${h.memoryMb} MB)`);
    }
    // kha names the socket in every kubeadm call, so others beside it are fine (Docker's containerd.io next to cri-dockerd).
    const sock = criSocket(cluster);
    if (h.criSockets.length > 1 && !h.criSockets.includes(sock)) problems.push(`more than one CRI socket: ${h.criSockets.join(', ')}, none of them ${sock}; kubeadm needs to know which one to use`);
    // Ports in use only matter on a node that is not already part of this deployment.
    const joined = h.state.kubeletConf || h.state.adminConf;
    if (!joined && h.portsInUse.length) problems.push(`required ports in use: ${h.portsInUse.join(', ')}`);
    if (spec.role === 'control-plane') problems.push(...vipSubnetProblems(cluster, spec, h.interfaces));
    const vip = cluster.spec.controlPlaneEndpoint.vip;
    const vipAnswers = h.interfaces.some((i) => i.ipv4.some((a) => a.split('/')[0] === vip)) || false;
    if (call.listVersions && h.availableVersions?.error) problems.push(`package repository: ${h.availableVersions.error}`);
    return {
      node,
      hostname: h.hostname,
      macs: h.macs,
      productUuid: h.productUuid,
      machineId: h.machineId,
      os: `${h.os.id} ${h.os.versionId}`,
      arch: h.arch,
      cpus: h.cpus,
      memoryMb: h.memoryMb,
      clockOffsetMs,
      interfaces: h.interfaces.map((i) => i.name),
      criSockets: h.criSockets,
      portsInUse: h.portsInUse,
      privileged: h.root || h.passwordlessSudo,
      clusterCaHash: h.state.caCertHash || undefined,
      kubeletConfPresent: h.state.kubeletConf,
      adminConfPresent: h.state.adminConf,
      installed: { kubeadm: h.installed.kubeadm || undefined, kubelet: h.installed.kubelet || undefined, kubectl: h.installed.kubectl || undefined },
      availableVersions: h.availableVersions?.versions,
      vipAnswers,
      vipNeighbor: h.vipNeighbor || undefined,
      problems,
    };
  });
}

/**
 * kube-vip announces the VIP with ARP on the node's VIP interface: the VIP must be a host address of
 * a subnet on that interface, or the other nodes never learn where it is.
 */
export function vipSubnetProblems(cluster: ClusterSpec, node: NodeSpec, interfaces: InterfaceFacts[]): string[] {
  const vip = cluster.spec.controlPlaneEndpoint.vip;
  const dev = vipInterface(cluster, node);
  const iface = interfaces.find((i) => i.name === dev);
  if (!iface) return []; // reported by the cross-node check, with the interfaces the node has
  // kube-vip adds the VIP as a /32 while this node holds it; that says nothing about the subnet.
  const nets = iface.ipv4.map(parseCidr).filter((c) => !(c.prefix === 32 && intToIp(c.base) === vip));
  if (!nets.length) return [`interface ${dev} has no IPv4 subnet, so kube-vip cannot announce the VIP ${vip} on it`];
  const home = nets.find((c) => cidrContains(c, vip));
  if (!home) {
    return [`the VIP ${vip} is outside the subnet of ${dev} (${nets.map(canonicalCidr).join(', ')}): the other nodes would never reach it; choose a free address in that subnet`];
  }
  if (home.prefix <= 30) {
    const broadcast = (home.base + 2 ** (32 - home.prefix) - 1) >>> 0;
    const at = ipToInt(vip);
    if (at === home.base || at === broadcast) {
      return [`the VIP ${vip} is the ${at === home.base ? 'network' : 'broadcast'} address of ${canonicalCidr(home)} on ${dev}; choose a free host address in it`];
    }
  }
  return [];
}
