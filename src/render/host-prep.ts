// Host prep: kernel modules, sysctls, swap, firewall, IPv6 link-local, /etc/hosts entry.
import type { ClusterSpec, NodeSpec } from '../spec/types';
import { vipInterface } from '../spec/types';
import { file, lines, q, script, writeFile } from './shell';
import type { PhaseRender, RenderFacts } from './types';

export const MODULES_FILE = '/etc/modules-load.d/k8s.conf';
export const SYSCTL_FILE = '/etc/sysctl.d/k8s.conf';
export const NETPLAN_FILE = '/etc/netplan/99-kha-no-ipv6-link-local.yaml';

/** Modules kubeadm's preflight and kube-proxy need: a missing one is an error. */
export function requiredModules(c: ClusterSpec): string[] {
  const mods = ['overlay', 'br_netfilter'];
  const mode = c.spec.networking.kubeProxyMode;
  if (mode === 'ipvs') mods.push('ip_vs', 'ip_vs_rr', 'ip_vs_wrr', 'ip_vs_sh', 'nf_conntrack');
  if (mode === 'nftables') mods.push('nf_tables');
  return mods;
}

/** Modules Calico uses; some kernels build them in, so a failed modprobe only warns. */
export function calicoModules(c: ClusterSpec): string[] {
  const mods = ['ip_set', 'ip_tables', 'xt_set', 'xt_mark', 'xt_multiport', 'xt_conntrack', 'xt_addrtype', 'xt_comment', 'nf_conntrack_netlink', 'ipt_rpfilter'];
  const enc = c.spec.networking.calico.encapsulation;
  if (enc.startsWith('IPIP')) mods.push('ipip');
  if (enc.startsWith('VXLAN')) mods.push('vxlan');
  return mods;
}

export function renderHostPrep(c: ClusterSpec, n: NodeSpec, _facts: RenderFacts): PhaseRender {
  const required = requiredModules(c);
  const optional = calicoModules(c).filter((m) => !required.includes(m));
  const modules = file(MODULES_FILE, ['# Loaded at boot for Kubernetes (kha).', ...required, ...optional].join('\n'));
  const sysctl = file(
    SYSCTL_FILE,
    [
      '# Kubernetes networking (kha).',
      'net.bridge.bridge-nf-call-iptables = 1',
      'net.bridge.bridge-nf-call-ip6tables = 1',
      'net.ipv4.ip_forward = 1',
    ].join('\n'),
  );
  const files = [modules, sysctl];
  const iface = vipInterface(c, n);
  const netplan = c.spec.hostPrep.disableIPv6LinkLocal
    ? file(NETPLAN_FILE, ['network:', '  version: 2', '  ethernets:', `    ${iface}:`, '      link-local: []'].join('\n'), 0o600)
    : undefined;
  if (netplan) files.push(netplan);

  const ep = c.spec.controlPlaneEndpoint;
  const hostsEntry = ep.writeHostsEntry && ep.name ? { ip: ep.vip, name: ep.name } : undefined;

  const body = lines(
    '# Kernel modules, now and at boot.',
    writeFile(modules),
    `for m in ${required.map(q).join(' ')}; do`,
    '  modprobe "$m" || kha_die "cannot load kernel module $m"',
    'done',
    `for m in ${optional.map(q).join(' ')}; do`,
    '  modprobe "$m" 2>/dev/null || kha_log "warning: kernel module $m not loaded (built in or missing)"',
    'done',
    '',
    '# Sysctls; --system re-applies every file, which changes nothing when values are already set.',
    writeFile(sysctl),
    'sysctl --system >/dev/null',
    '',
    c.spec.hostPrep.disableSwap
      ? lines(
          '# Swap off now, in fstab and as systemd units (kubelet refuses to start with swap by default).',
          'if [ -r /proc/swaps ] && [ "$(wc -l </proc/swaps)" -gt 1 ]; then',
          '  swapoff -a',
          '  kha_log "swap turned off"',
          'fi',
          "if [ -f /etc/fstab ] && grep -qE '^[^#].*[[:space:]]swap[[:space:]]' /etc/fstab; then",
          "  sed -i.kha.bak -E '/^[^#].*[[:space:]]swap[[:space:]]/ s/^/# kha: /' /etc/fstab",
          '  kha_log "swap entries commented out in /etc/fstab"',
          'fi',
          'if kha_have systemctl; then',
          "  while read -r unit; do",
          '    [ -n "$unit" ] || continue',
          '    if [ "$(systemctl is-enabled "$unit" 2>/dev/null || true)" != masked ]; then',
          '      systemctl mask "$unit" >/dev/null',
          '      kha_log "masked $unit"',
          '    fi',
          "  done < <(systemctl list-units --type=swap --all --plain --no-legend 2>/dev/null | awk '{ print $1 }')",
          'fi',
        )
      : '# Swap is left as it is (hostPrep.disableSwap: false).',
    '',
    c.spec.hostPrep.disableUfw
      ? lines(
          '# The seed disables ufw so that it cannot drop cluster traffic.',
          "if kha_have ufw && ufw status 2>/dev/null | grep -q '^Status: active'; then",
          '  ufw disable >/dev/null',
          '  kha_log "ufw disabled"',
          'fi',
        )
      : null,
    netplan
      ? lines(
          '',
          `# IPv6 link-local off on ${iface} (the seed's 5-second DNS delay). Only when netplan already`,
          '# manages this interface: a bare netplan entry would drop its addressing.',
          `if kha_have netplan && [ -d /etc/netplan ] && grep -rqsE -- ${q(`^[[:space:]]+${iface.replace(/\./g, '\\.')}:`)} /etc/netplan --exclude=${q(NETPLAN_FILE.split('/').pop()!)}; then`,
          writeFile(netplan),
          '  if kha_changed; then',
          '    netplan apply',
          '  fi',
          'else',
          `  kha_log ${q(`netplan does not manage ${iface}; IPv6 link-local left unchanged`)}`,
          'fi',
        )
      : null,
    hostsEntry
      ? lines(
          '',
          '# The endpoint name resolves to the VIP through /etc/hosts (no DNS serves it).',
          `hosts_ip=${q(hostsEntry.ip)}`,
          `hosts_name=${q(hostsEntry.name)}`,
          'if ! awk -v ip="$hosts_ip" -v n="$hosts_name" \'$1 == ip { for (i = 2; i <= NF; i++) if ($i == n) f = 1 } END { exit !f }\' /etc/hosts; then',
          '  {',
          '    awk -v n="$hosts_name" \'{ keep = 1; if ($1 !~ /^#/) for (i = 2; i <= NF; i++) if ($i == n) keep = 0; if (keep) print }\' /etc/hosts',
          '    printf \'%s %s\\n\' "$hosts_ip" "$hosts_name"',
          '  } | kha_write_file /etc/hosts 644',
          'fi',
        )
      : null,
  );
  return {
    phase: 'host-prep',
    node: n.name,
    files,
    scripts: [
      script({
        step: true,
        cluster: c.name,
        node: n.name,
        phase: 'host-prep',
        name: 'host-prep',
        summary: 'Kernel modules, sysctls, swap off, firewall and name resolution for Kubernetes.',
        body,
      }),
    ],
  };
}
