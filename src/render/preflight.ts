// Preflight: read-only. Prints one line `KHA-FACTS <json>` (see result.ts) that parseFacts() turns into HostFacts.
import { z } from 'zod';
import type { ClusterSpec, NodeSpec } from '../spec/types';
import { kubeMinor, vipInterface } from '../spec/types';
import { requiredPorts } from './common';
import { q, script } from './shell';
import { requireResult, resultMarker } from './result';
import type { PhaseRender, RenderFacts } from './types';

export const FACTS_MARKER = resultMarker('FACTS');
/** Export this variable as "1" (or pass the flag) to also list the kubeadm versions of the repo. */
export const LIST_VERSIONS_ENV = 'KHA_LIST_VERSIONS';
export const LIST_VERSIONS_FLAG = '--available-versions';

/** The package index of the repository for one minor; the repo is flat (`deb URL /`). */
export function packagesIndexUrl(c: ClusterSpec, version: string): string {
  return `${c.spec.packages.repository}/v${kubeMinor(version)}/deb/Packages`;
}

/**
 * On a control-plane node: who answers ARP for the VIP on its interface. A connection attempt makes
 * the kernel ask (no arping needed), the neighbour table shows the answer; an old entry is flushed
 * first so only a fresh answer counts. Sets vip_neighbor to the MAC that answered, or leaves it empty.
 */
function vipArpProbe(c: ClusterSpec, n: NodeSpec): string {
  if (n.role !== 'control-plane') return '';
  return String.raw`
vip=${q(c.spec.controlPlaneEndpoint.vip)}
vip_dev=${q(vipInterface(c, n))}
vip_port=${q(String(c.spec.controlPlaneEndpoint.port))}
vip_is_local() { ip -o -4 addr show dev "$vip_dev" 2>/dev/null | awk '{ print $4 }' | grep -qx -- "$vip/[0-9]*"; }
if kha_have ip && kha_have timeout && [ -e "/sys/class/net/$vip_dev" ] && ! vip_is_local; then
  ip neigh flush to "$vip" dev "$vip_dev" 2>/dev/null || true
  # shellcheck disable=SC2016 # the inner script expands its own arguments
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' vip-probe "$vip" "$vip_port" >/dev/null 2>&1 &
  probe=$!
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    # "VIP lladdr MAC [router] STATE", or "VIP INCOMPLETE|FAILED" while nobody answered
    neigh=()
    read -r -a neigh < <(ip -4 neigh show to "$vip" dev "$vip_dev" 2>/dev/null) || true
    if [ "${'$'}{#neigh[@]}" -ge 4 ] && [ "${'$'}{neigh[1]}" = lladdr ]; then
      case "${'$'}{neigh[${'$'}{#neigh[@]} - 1]}" in REACHABLE | STALE | DELAY | PROBE) vip_neighbor="${'$'}{neigh[2]}"; break ;; esac
    fi
    sleep 0.1
  done
  kill "$probe" 2>/dev/null || true
  wait "$probe" 2>/dev/null || true
fi
`;
}

export function renderPreflight(c: ClusterSpec, n: NodeSpec, _facts: RenderFacts): PhaseRender {
  const ports = requiredPorts(c, n);
  const body = String.raw`want_versions=0
if [ "${'$'}{1:-}" = ${q(LIST_VERSIONS_FLAG)} ] || [ "${'$'}{${LIST_VERSIONS_ENV}:-0}" = "1" ]; then
  want_versions=1
fi
required_ports=(${ports.map((p) => q(String(p))).join(' ')})
packages_index=${q(packagesIndexUrl(c, c.spec.kubernetes.version))}

# The helpers set a variable (printf -v) instead of printing: every $(...) is a fork, and a busy host feels it.
# json_str VAR TEXT / json_arr VAR ITEMS... / json_num_arr VAR NUMBERS... / json_bool VAR COMMAND...
json_str() {
  local s="$2"
  s="${'$'}{s//\\/\\\\}"
  s="${'$'}{s//\"/\\\"}"
  s="${'$'}{s//[[:cntrl:]]/}" # control characters cannot appear raw in JSON (LC_ALL=C: 0x01-0x1f, 0x7f)
  printf -v "$1" '"%s"' "$s"
}
json_arr() {
  local name="$1" out="" v j
  shift
  for v in "$@"; do
    json_str j "$v"
    out="${'$'}{out:+$out,}$j"
  done
  printf -v "$name" '[%s]' "$out"
}
json_num_arr() {
  local name="$1" out="" v
  shift
  for v in "$@"; do
    out="${'$'}{out:+$out,}$v"
  done
  printf -v "$name" '[%s]' "$out"
}
json_bool() {
  local name="$1"
  shift
  if "$@"; then printf -v "$name" true; else printf -v "$name" false; fi
}
# first_line VAR FILE / os_field VAR KEY: builtins only.
first_line() {
  local l=""
  if [ -r "$2" ]; then IFS= read -r l <"$2" || true; fi
  printf -v "$1" '%s' "${'$'}{l%$'\r'}"
}
os_field() {
  local k v
  printf -v "$1" '%s' ""
  if [ -r /etc/os-release ]; then
    while IFS='=' read -r k v; do
      if [ "$k" = "$2" ]; then
        v="${'$'}{v#[\"\']}"
        printf -v "$1" '%s' "${'$'}{v%[\"\']}"
        return 0
      fi
    done </etc/os-release
  fi
}

# Variables the helpers set through printf -v, declared for readers and shellcheck.
host_name="" product_uuid="" machine_id="" boot_id="" mac="" j_name="" j_mac="" j_addrs="" j_versions=""
j_err="" j_host="" j_macs="" j_uuid="" j_machine="" j_boot="" os_id="" os_version="" os_codename=""
j_os_id="" j_os_version="" j_os_codename="" j_arch="" j_deb_arch="" j_cri="" j_required="" j_in_use=""
j_root="" j_sudo="" j_sudo_user="" j_swap="" j_kubelet="" j_admin="" j_super="" j_kubelet_conf=""
j_kubelet_server="" j_ca="" j_manifests="" j_etcd="" j_v_kubeadm="" j_v_kubelet="" j_v_kubectl=""
j_v_containerd="" j_vip_neighbor="" vip_neighbor=""

listening_ports() {
  local f hex
  for f in /proc/net/tcp /proc/net/tcp6; do
    if [ -r "$f" ]; then
      awk 'NR > 1 && $4 == "0A" { n = split($2, a, ":"); print a[n] }' "$f"
    fi
  done | sort -u | while read -r hex; do printf '%d\n' "0x$hex"; done
}

ca_cert_hash() {
  openssl x509 -pubkey -noout -in /etc/kubernetes/pki/ca.crt |
    openssl pkey -pubin -outform der |
    openssl dgst -sha256 -hex | sed 's/^.* //'
}

first_line host_name /proc/sys/kernel/hostname
first_line product_uuid /sys/class/dmi/id/product_uuid
first_line machine_id /etc/machine-id
first_line boot_id /proc/sys/kernel/random/boot_id
arch="$(uname -m)"
deb_arch="$(dpkg --print-architecture 2>/dev/null || true)"
cpus="$(nproc)"
memory_mb="$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)"

interfaces=""
macs=()
for dev in /sys/class/net/*; do
  [ -e "$dev" ] || continue
  name="${'$'}{dev##*/}"
  [ "$name" = lo ] && continue
  first_line mac "$dev/address"
  addrs=()
  if kha_have ip; then
    while read -r a; do
      [ -n "$a" ] && addrs+=("$a")
    done < <(ip -o -4 addr show dev "$name" 2>/dev/null | awk '{ print $4 }')
  fi
  json_str j_name "$name"
  json_str j_mac "$mac"
  json_arr j_addrs "${'$'}{addrs[@]}"
  entry="{\"name\":$j_name,\"mac\":$j_mac,\"ipv4\":$j_addrs}"
  interfaces="${'$'}{interfaces:+$interfaces,}$entry"
  case "$name" in
    cali* | tunl* | vxlan* | kube-ipvs* | docker* | cni* | flannel* | veth* | nodelocaldns) ;;
    *) if [ -n "$mac" ] && [ "$mac" != "00:00:00:00:00:00" ]; then macs+=("$mac"); fi ;;
  esac
done

cri_sockets=()
for s in /var/run/containerd/containerd.sock /var/run/cri-dockerd.sock /var/run/crio/crio.sock; do
  if [ -S "$s" ]; then cri_sockets+=("unix://$s"); fi
done

in_use=()
listening="$(listening_ports || true)"
for p in "${'$'}{required_ports[@]}"; do
  if printf '%s\n' "$listening" | grep -qx -- "$p"; then in_use+=("$p"); fi
done

is_root() { [ "$(id -u)" = 0 ]; }
can_sudo() { is_root || { kha_have sudo && sudo -n true 2>/dev/null; }; }
swap_active() { [ -r /proc/swaps ] && [ "$(wc -l </proc/swaps)" -gt 1 ]; }
kubelet_active() { kha_have systemctl && systemctl is-active --quiet kubelet; }

kubelet_server=""
if [ -f /etc/kubernetes/kubelet.conf ]; then kubelet_server="$(kha_kubeconfig_server /etc/kubernetes/kubelet.conf || true)"; fi
ca_hash=""
if [ -f /etc/kubernetes/pki/ca.crt ] && kha_have openssl; then
  h="$(ca_cert_hash 2>/dev/null || true)"
  if [ -n "$h" ]; then ca_hash="sha256:$h"; fi
fi
manifests=()
if [ -d /etc/kubernetes/manifests ]; then
  while read -r m; do
    [ -n "$m" ] && manifests+=("$m")
  done < <(find /etc/kubernetes/manifests -mindepth 1 -maxdepth 1 -printf '%f\n' | sort)
fi

v_kubeadm="" v_kubelet="" v_kubectl="" v_containerd=""
if kha_have kubeadm; then v_kubeadm="$(kubeadm version -o short 2>/dev/null || true)"; fi
if kha_have kubelet; then v_kubelet="$(kubelet --version 2>/dev/null | awk '{ print $2 }' || true)"; fi
if kha_have kubectl; then v_kubectl="$(kubectl version --client 2>/dev/null | awk '/^Client Version:/ { print $3 }' || true)"; fi
if kha_have containerd; then v_containerd="$(containerd --version 2>/dev/null | awk '{ print $3 }' || true)"; fi

${vipArpProbe(c, n)}
available=""
if [ "$want_versions" = 1 ]; then
  versions=()
  err=""
  if index="$(curl -fsSL --max-time 60 "$packages_index" 2>/dev/null)"; then
    while read -r v; do
      [ -n "$v" ] && versions+=("$v")
    done < <(printf '%s\n' "$index" | awk '/^Package: / { p = $2 } /^Version: / && p == "kubeadm" { print $2 }' | sort -u -V)
  else
    err="could not download $packages_index"
  fi
  json_arr j_versions "${'$'}{versions[@]}"
  json_str j_err "$err"
  available=",\"availableVersions\":{\"versions\":$j_versions,\"error\":$j_err}"
fi

json_str j_host "$host_name"
json_arr j_macs "${'$'}{macs[@]}"
json_str j_uuid "$product_uuid"
json_str j_machine "$machine_id"
json_str j_boot "$boot_id"
os_field os_id ID
os_field os_version VERSION_ID
os_field os_codename VERSION_CODENAME
json_str j_os_id "$os_id"
json_str j_os_version "$os_version"
json_str j_os_codename "$os_codename"
json_str j_arch "$arch"
json_str j_deb_arch "$deb_arch"
json_arr j_cri "${'$'}{cri_sockets[@]}"
json_num_arr j_required "${'$'}{required_ports[@]}"
json_num_arr j_in_use "${'$'}{in_use[@]}"
json_bool j_root is_root
json_bool j_sudo can_sudo
json_str j_sudo_user "${'$'}{SUDO_USER:-}"
json_bool j_swap swap_active
json_bool j_kubelet kubelet_active
json_bool j_admin test -f /etc/kubernetes/admin.conf
json_bool j_super test -f /etc/kubernetes/super-admin.conf
json_bool j_kubelet_conf test -f /etc/kubernetes/kubelet.conf
json_str j_kubelet_server "$kubelet_server"
json_str j_ca "$ca_hash"
json_arr j_manifests "${'$'}{manifests[@]}"
json_bool j_etcd test -d /var/lib/etcd/member
json_str j_v_kubeadm "$v_kubeadm"
json_str j_v_kubelet "$v_kubelet"
json_str j_v_kubectl "$v_kubectl"
json_str j_v_containerd "$v_containerd"
json_str j_vip_neighbor "$vip_neighbor"

printf '%s {' ${q(FACTS_MARKER)}
printf '"hostname":%s,' "$j_host"
printf '"macs":%s,' "$j_macs"
printf '"productUuid":%s,"machineId":%s,"bootId":%s,' "$j_uuid" "$j_machine" "$j_boot"
printf '"os":{"id":%s,"versionId":%s,"codename":%s},' "$j_os_id" "$j_os_version" "$j_os_codename"
printf '"arch":%s,"debArch":%s,"cpus":%s,"memoryMb":%s,"timeMs":%s,' "$j_arch" "$j_deb_arch" "$cpus" "$memory_mb" "$(date +%s%3N)"
printf '"criSockets":%s,' "$j_cri"
printf '"requiredPorts":%s,"portsInUse":%s,' "$j_required" "$j_in_use"
printf '"interfaces":[%s],' "$interfaces"
printf '"root":%s,"passwordlessSudo":%s,"sudoUser":%s,' "$j_root" "$j_sudo" "$j_sudo_user"
printf '"swapActive":%s,"kubeletActive":%s,' "$j_swap" "$j_kubelet"
printf '"state":{"adminConf":%s,"superAdminConf":%s,"kubeletConf":%s,"kubeletServer":%s,"caCertHash":%s,"manifests":%s,"etcdData":%s},' \
  "$j_admin" "$j_super" "$j_kubelet_conf" "$j_kubelet_server" "$j_ca" "$j_manifests" "$j_etcd"
printf '"installed":{"kubeadm":%s,"kubelet":%s,"kubectl":%s,"containerd":%s},' \
  "$j_v_kubeadm" "$j_v_kubelet" "$j_v_kubectl" "$j_v_containerd"
printf '"vipNeighbor":%s' "$j_vip_neighbor"
printf '%s}\n' "$available"
`;
  return {
    phase: 'preflight',
    node: n.name,
    files: [],
    scripts: [
      script({
        cluster: c.name,
        node: n.name,
        phase: 'preflight',
        name: 'preflight',
        summary: `Read-only: reports host facts as one ${FACTS_MARKER} JSON line.`,
        body,
      }),
      script({
        cluster: c.name,
        node: n.name,
        phase: 'preflight',
        name: 'clock',
        // A script of its own: the preflight script's run time would blur the offset measured around it.
        summary: `Read-only: reports the host's clock in milliseconds as one ${resultMarker('CLOCK')} line.`,
        body: 'kha_result CLOCK "{\\"ms\\":$(date +%s%3N)}"',
      }),
    ],
  };
}

const InterfaceFacts = z.object({ name: z.string(), mac: z.string(), ipv4: z.array(z.string()) });

export const HostFactsSchema = z.object({
  hostname: z.string(),
  macs: z.array(z.string()),
  productUuid: z.string(),
  machineId: z.string(),
  bootId: z.string(),
  os: z.object({ id: z.string(), versionId: z.string(), codename: z.string() }),
  arch: z.string(),
  debArch: z.string(),
  cpus: z.number().int(),
  memoryMb: z.number().int(),
  timeMs: z.number().int(),
  criSockets: z.array(z.string()),
  requiredPorts: z.array(z.number().int()),
  portsInUse: z.array(z.number().int()),
  interfaces: z.array(InterfaceFacts),
  root: z.boolean(),
  passwordlessSudo: z.boolean(),
  sudoUser: z.string(),
  swapActive: z.boolean(),
  kubeletActive: z.boolean(),
  state: z.object({
    adminConf: z.boolean(),
    superAdminConf: z.boolean(),
    kubeletConf: z.boolean(),
    kubeletServer: z.string(),
    caCertHash: z.string(),
    manifests: z.array(z.string()),
    etcdData: z.boolean(),
  }),
  installed: z.object({ kubeadm: z.string(), kubelet: z.string(), kubectl: z.string(), containerd: z.string() }),
  availableVersions: z.object({ versions: z.array(z.string()), error: z.string() }).optional(),
  /** The MAC that answered ARP for the VIP on a control-plane node ('' when none did, or a worker). */
  vipNeighbor: z.string(),
});
export type HostFacts = z.infer<typeof HostFactsSchema>;
export type InterfaceFacts = z.infer<typeof InterfaceFacts>;

/** Parses the preflight script's stdout. Throws when the KHA-FACTS line is missing or malformed. */
export function parseFacts(stdout: string): HostFacts {
  const raw = requireResult(stdout, 'FACTS', 'preflight');
  const parsed = HostFactsSchema.safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new Error(`preflight facts: ${first ? `${first.path.join('.')}: ${first.message}` : 'invalid'}`);
  }
  return parsed.data;
}

export { resolveKubernetesVersion } from './version';
