// Teardown of one node: kubeadm reset, then what reset leaves behind (CNI config and state,
// iptables/IPVS/ipset/nftables rules, tunnel and IPVS links, the VIP), and, from a healthy
// control-plane node, the etcd member and the Node object.
import type { ClusterSpec, NodeSpec } from '../spec/types';
import { advertiseAddress, vipInterface } from '../spec/types';
import { ADMIN_CONF, KUBEADM_DIR, KUBELET_CONF, KUBE_VIP_MANIFEST, criSocket, localApiAddress } from './common';
import { ROOT_KUBECONFIG } from './kubeadm';
import { etcdctlFunction } from './join';
import { lines, q, script } from './shell';
import type { PhaseRender, RenderFacts } from './types';

export function renderReset(c: ClusterSpec, n: NodeSpec, _facts: RenderFacts): PhaseRender {
  const cp = n.role === 'control-plane';
  const vip = c.spec.controlPlaneEndpoint.vip;
  const reset = script({
    step: true,
    cluster: c.name,
    node: n.name,
    phase: 'reset',
    name: 'reset',
    summary: 'kubeadm reset -f, then removes what reset leaves: CNI state, rules, links, the VIP.',
    body: lines(
      '# Whether anything of a cluster is here: then this reset changes the node (the step reports it).',
      `for f in ${q(KUBELET_CONF)} /etc/kubernetes/manifests/kube-apiserver.yaml /var/lib/etcd/member; do`,
      '  if [ -e "$f" ]; then KHA_CHANGES=$((${KHA_CHANGES:-0} + 1)); break; fi',
      'done',
      'if kha_have kubeadm; then',
      `  kubeadm reset -f --cri-socket ${q(criSocket(c))} 2>&1 | kha_redact`,
      'fi',
      cp
        ? lines(
            '# kubeadm reset empties the etcd data directory while the member may still be stopping, and a member that',
            '# stops late writes it again: wait until no etcd container runs, then empty it (seen on real kubeadm).',
            "etcd_stopped() { ! { kha_have crictl && crictl ps -q --name '^etcd$' 2>/dev/null | grep -q .; }; }",
            'kha_wait 60 "the etcd container to stop" etcd_stopped',
            'if [ -d /var/lib/etcd ]; then find /var/lib/etcd -mindepth 1 -delete; fi',
          )
        : null,
      `rm -f -- ${q(KUBE_VIP_MANIFEST)} ${q(ROOT_KUBECONFIG)}`,
      '# kha\'s own kubeadm and Calico configuration files.',
      `rm -rf -- ${q(KUBEADM_DIR)}`,
      '# Records of earlier init/join runs: the next join must run for real.',
      'rm -rf /var/lib/kha/once /run/kha',
      '',
      '# CNI configuration and state (Calico would otherwise linger until a reboot).',
      'rm -rf /etc/cni/net.d/* /var/lib/cni /var/run/calico /var/lib/calico',
      '',
      '# Rules kube-proxy and Calico programmed.',
      'for t in iptables ip6tables; do',
      '  if kha_have "$t"; then',
      '    for table in filter nat mangle raw; do',
      '      "$t" -t "$table" -F 2>/dev/null || true',
      '      "$t" -t "$table" -X 2>/dev/null || true',
      '    done',
      '  fi',
      'done',
      'if kha_have ipvsadm; then ipvsadm --clear 2>/dev/null || true; fi',
      'if kha_have ipset; then',
      '  ipset flush 2>/dev/null || true',
      '  ipset destroy 2>/dev/null || true',
      'fi',
      'if kha_have nft; then',
      '  for fam in ip ip6; do',
      '    if nft list table "$fam" kube-proxy >/dev/null 2>&1; then nft delete table "$fam" kube-proxy; fi',
      '  done',
      'fi',
      '',
      '# Links kube-proxy (IPVS) and Calico created.',
      'for link in kube-ipvs0 vxlan.calico tunl0; do',
      '  if ip link show "$link" >/dev/null 2>&1; then',
      '    # tunl0 belongs to the ipip module and cannot be deleted, only taken down.',
      '    ip link delete "$link" 2>/dev/null || ip link set "$link" down 2>/dev/null || true',
      '  fi',
      'done',
      cp
        ? lines(
            '',
            '# The VIP, if kube-vip still had it when it stopped.',
            `vip=${q(vip)}`,
            `vip_dev=${q(vipInterface(c, n))}`,
            'if ip -4 -o addr show dev "$vip_dev" 2>/dev/null | awk \'{ print $4 }\' | grep -qx -- "$vip/32"; then',
            '  ip addr del "$vip/32" dev "$vip_dev"',
            '  kha_log "removed the VIP $vip from $vip_dev"',
            'fi',
          )
        : null,
      'kha_log "reset done"',
    ),
  });
  const remove = script({
    step: true,
    cluster: c.name,
    node: n.name,
    phase: 'reset',
    name: 'remove-node',
    runsOn: 'control-plane',
    summary: `Removes ${n.name} from the cluster: ${cp ? 'its etcd member if still listed, then ' : ''}its Node object.`,
    body: lines(
      `export KUBECONFIG=${q(ADMIN_CONF)}`,
      `node=${q(n.name)}`,
      '# This node\'s own API server first: the VIP moves while the node being removed lets it go; the endpoint',
      '# when this one is not answering.',
      localApiAddress(),
      `api_server="https://$api_address:${c.spec.controlPlaneEndpoint.port}"`,
      cp
        ? lines(
            etcdctlFunction(),
            '[ "$node" != "$(cat /proc/sys/kernel/hostname)" ] || kha_die "refusing to remove the etcd member of the node this runs on"',
            'members="$(etcdctl_run member list -w simple)" || kha_die "cannot list etcd members"',
            `peer=${q(`https://${advertiseAddress(n)}:2380`)}`,
            '# By name, or by peer URL for a member that never started (its name is still empty).',
            "member_id=\"$(printf '%s\\n' \"$members\" | awk -F', ' -v want=\"$node\" -v peer=\"$peer\" '$3 == want || $4 == peer { print $1 }')\"",
            'if [ -n "$member_id" ]; then',
            '  etcdctl_run member remove "$member_id" >/dev/null',
            '  kha_log "removed etcd member $member_id ($node)"',
            'fi',
          )
        : null,
      'if ! kubectl --server "$api_server" delete node "$node" --ignore-not-found >/dev/null 2>&1; then',
      '  kubectl delete node "$node" --ignore-not-found >/dev/null',
      'fi',
      'kha_log "node $node removed from the cluster"',
    ),
  });
  return { phase: 'reset', node: n.name, files: [], scripts: [reset, remove] };
}
