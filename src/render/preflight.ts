// Preflight: read-only. Prints one line `KHA-FACTS <json>` that parseFacts() turns into HostFacts.
import { z } from 'zod';
import type { ClusterSpec, NodeSpec } from '../spec/types';
import { kubeMinor } from '../spec/types';
import { requiredPorts } from './common';
import { q, script } from './shell';
import type { PhaseRender, RenderFacts } from './types';

export const FACTS_MARKER = 'KHA-FACTS';
/** Export this variable as "1" (or pass the flag) to also list the kubeadm versions of the repo. */
export const LIST_VERSIONS_ENV = 'KHA_LIST_VERSIONS';
export const LIST_VERSIONS_FLAG = '--available-versions';

/** The package index of the repository for one minor; the repo is flat (`deb URL /`). */
export function packagesIndexUrl(c: ClusterSpec, version: string): string {
  return `${c.spec.packages.repository}/v${kubeMinor(version)}/deb/Packages`;
}

export function renderPreflight(c: ClusterSpec, n: NodeSpec, _facts: RenderFacts): PhaseRender {
  const ports = requiredPorts(c, n);
  const body = String.raw`want_versions=0
if [ "${'$'}{1:-}" = ${q(LIST_VERSIONS_FLAG)} ] || [ "${'$'}{${LIST_VERSIONS_ENV}:-0}" = "1" ]; then
  want_versions=1
fi
required_ports=(${ports.map((p) => q(String(p))).join(' ')})
packages_index=${q(packagesIndexUrl(c, c.spec.kubernetes.version))}

json_str() {
  local s="$1"
  s="${'$'}{s//\\/\\\\}"
  s="${'$'}{s//\"/\\\"}"
  s="${'$'}{s//[[:cntrl:]]/}" # control characters cannot appear raw in JSON (LC_ALL=C: 0x01-0x1f, 0x7f)
  printf '"%s"' "$s"
}
json_arr() {
  local out="" v
  for v in "$@"; do
    out="${'$'}{out:+$out,}$(json_str "$v")"
  done
  printf '[%s]' "$out"
}
json_num_arr() {
  local out="" v
  for v in "$@"; do
    out="${'$'}{out:+$out,}$v"
  done
  printf '[%s]' "$out"
}
json_bool() { if "$@"; then printf true; else printf false; fi; }
# Builtins only where a value is read many times: on a busy host every process counts.
first_line() {
  local l=""
  if [ -r "$1" ]; then IFS= read -r l <"$1" || true; fi
  printf '%s' "${'$'}{l%$'\r'}"
}
os_field() {
  local k v
  if [ -r /etc/os-release ]; then
    while IFS='=' read -r k v; do
      if [ "$k" = "$1" ]; then
        v="${'$'}{v#[\"\']}"
        printf '%s' "${'$'}{v%[\"\']}"
        return 0
      fi
    done </etc/os-release
  fi
}

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

host_name="$(first_line /proc/sys/kernel/hostname)"
product_uuid="$(first_line /sys/class/dmi/id/product_uuid)"
machine_id="$(first_line /etc/machine-id)"
boot_id="$(first_line /proc/sys/kernel/random/boot_id)"
arch="$(uname -m)"
deb_arch="$(dpkg --print-architecture 2>/dev/null || true)"
cpus="$(nproc)"
memory_mb="$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)"

interfaces=""
macs=()
for dev in /sys/class/net/*; do
  [ -e "$dev" ] || continue
  name="$(basename -- "$dev")"
  [ "$name" = lo ] && continue
  mac="$(first_line "$dev/address")"
  addrs=()
  if kha_have ip; then
    while read -r a; do
      [ -n "$a" ] && addrs+=("$a")
    done < <(ip -o -4 addr show dev "$name" 2>/dev/null | awk '{ print $4 }')
  fi
  entry="{\"name\":$(json_str "$name"),\"mac\":$(json_str "$mac"),\"ipv4\":$(json_arr "${'$'}{addrs[@]}")}"
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
  available=",\"availableVersions\":{\"versions\":$(json_arr "${'$'}{versions[@]}"),\"error\":$(json_str "$err")}"
fi

printf '%s {' ${q(FACTS_MARKER)}
printf '"hostname":%s,' "$(json_str "$host_name")"
printf '"macs":%s,' "$(json_arr "${'$'}{macs[@]}")"
printf '"productUuid":%s,"machineId":%s,"bootId":%s,' "$(json_str "$product_uuid")" "$(json_str "$machine_id")" "$(json_str "$boot_id")"
printf '"os":{"id":%s,"versionId":%s,"codename":%s},' "$(json_str "$(os_field ID)")" "$(json_str "$(os_field VERSION_ID)")" "$(json_str "$(os_field VERSION_CODENAME)")"
printf '"arch":%s,"debArch":%s,"cpus":%s,"memoryMb":%s,"timeMs":%s,' "$(json_str "$arch")" "$(json_str "$deb_arch")" "$cpus" "$memory_mb" "$(date +%s%3N)"
printf '"criSockets":%s,' "$(json_arr "${'$'}{cri_sockets[@]}")"
printf '"requiredPorts":%s,"portsInUse":%s,' "$(json_num_arr "${'$'}{required_ports[@]}")" "$(json_num_arr "${'$'}{in_use[@]}")"
printf '"interfaces":[%s],' "$interfaces"
printf '"root":%s,"passwordlessSudo":%s,"sudoUser":%s,' "$(json_bool is_root)" "$(json_bool can_sudo)" "$(json_str "${'$'}{SUDO_USER:-}")"
printf '"swapActive":%s,"kubeletActive":%s,' "$(json_bool swap_active)" "$(json_bool kubelet_active)"
printf '"state":{"adminConf":%s,"superAdminConf":%s,"kubeletConf":%s,"kubeletServer":%s,"caCertHash":%s,"manifests":%s,"etcdData":%s},' \
  "$(json_bool test -f /etc/kubernetes/admin.conf)" "$(json_bool test -f /etc/kubernetes/super-admin.conf)" \
  "$(json_bool test -f /etc/kubernetes/kubelet.conf)" "$(json_str "$kubelet_server")" "$(json_str "$ca_hash")" \
  "$(json_arr "${'$'}{manifests[@]}")" "$(json_bool test -d /var/lib/etcd/member)"
printf '"installed":{"kubeadm":%s,"kubelet":%s,"kubectl":%s,"containerd":%s}' \
  "$(json_str "$v_kubeadm")" "$(json_str "$v_kubelet")" "$(json_str "$v_kubectl")" "$(json_str "$v_containerd")"
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
});
export type HostFacts = z.infer<typeof HostFactsSchema>;
export type InterfaceFacts = z.infer<typeof InterfaceFacts>;

/** Parses the preflight script's stdout. Throws when the KHA-FACTS line is missing or malformed. */
export function parseFacts(stdout: string): HostFacts {
  const line = stdout.split('\n').find((l) => l.startsWith(`${FACTS_MARKER} `));
  if (!line) throw new Error(`preflight output has no ${FACTS_MARKER} line`);
  let raw: unknown;
  try {
    raw = JSON.parse(line.slice(FACTS_MARKER.length + 1));
  } catch (e) {
    throw new Error(`preflight ${FACTS_MARKER} line is not JSON: ${(e as Error).message}`);
  }
  const parsed = HostFactsSchema.safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new Error(`preflight facts: ${first ? `${first.path.join('.')}: ${first.message}` : 'invalid'}`);
  }
  return parsed.data;
}

export { resolveKubernetesVersion } from './version';
