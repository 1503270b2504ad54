// Verification on a control-plane node: every node Ready, etcd healthy, the VIP answers,
// kube-proxy runs in the configured mode. `cluster` always prints one KHA-VERIFY report and exits
// non-zero when something is wrong; `vip-livez` is a single quick probe of the VIP.
import type { ClusterSpec, NodeSpec } from '../spec/types';
import { ADMIN_CONF, vipUrl } from './common';
import { etcdctlFunction } from './join';
import { lines, q, script } from './shell';
import type { PhaseRender, RenderFacts } from './types';

export const VERIFY_MARKER = 'KHA-VERIFY';

/** The KHA-VERIFY report printed by the `cluster` script. */
export interface VerifyReport {
  nodes: Array<{ name: string; ready: boolean }>;
  etcd: { members: number; healthy: boolean; learners: number };
  vipAnswers: boolean;
  /** The mode kube-proxy reports on 127.0.0.1:10249/proxyMode, else the mode in its ConfigMap. */
  kubeProxyMode: string;
}

export function renderVerify(c: ClusterSpec, n: NodeSpec, _facts: RenderFacts): PhaseRender {
  const mode = c.spec.networking.kubeProxyMode;
  const names = c.spec.nodes.map((x) => x.name);
  const livez = `${vipUrl(c)}/livez`;
  const cluster = lines(
    `export KUBECONFIG=${q(ADMIN_CONF)}`,
    `expected_nodes=(${names.map(q).join(' ')})`,
    `want_mode=${q(mode)}`,
    `vip_livez=${q(livez)}`,
    'problems=0',
    '',
    '# One kubectl call lists every node and its Ready status: the checks cost the same remote calls on 6 nodes as on 103.',
    'declare -A ready_of=()',
    'read_nodes() {',
    '  ready_of=()',
    '  local name status',
    '  while read -r name status; do',
    '    if [ -n "$name" ]; then ready_of["$name"]="$status"; fi',
    '  done < <(kubectl get nodes -o jsonpath=\'{range .items[*]}{.metadata.name}{" "}{.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}\' 2>/dev/null || true)',
    '}',
    'all_ready() {',
    '  local name',
    '  for name in "${expected_nodes[@]}"; do [ "${ready_of[$name]:-}" = True ] || return 1; done',
    '}',
    '# Give nodes that are still starting time before reporting: a node is Ready only once its CNI runs, which',
    '# can take minutes on a slow image mirror (and took over 3 on a 2-core machine running 9 hosts).',
    'deadline=$(($(date +%s) + 600))',
    'next_note=$(($(date +%s) + 60))',
    'read_nodes',
    'until all_ready || [ "$(date +%s)" -ge "$deadline" ]; do',
    '  if [ "$(date +%s)" -ge "$next_note" ]; then',
    '    waiting=""',
    '    for name in "${expected_nodes[@]}"; do [ "${ready_of[$name]:-}" = True ] || waiting="$waiting $name"; done',
    '    kha_log "waiting for nodes to be Ready:$waiting"',
    '    next_note=$(($(date +%s) + 60))',
    '  fi',
    '  sleep 3',
    '  read_nodes',
    'done',
    'nodes_json=""',
    'for name in "${expected_nodes[@]}"; do',
    '  if [ "${ready_of[$name]:-}" = True ]; then ready=true; else ready=false; problems=1; kha_log "node $name is not Ready"; fi',
    '  nodes_json="${nodes_json:+$nodes_json,}{\\"name\\":\\"$name\\",\\"ready\\":$ready}"',
    'done',
    '',
    etcdctlFunction(),
    'members="$(etcdctl_run member list -w simple 2>/dev/null || true)"',
    'member_count="$(printf \'%s\\n\' "$members" | grep -c \', started, \' || true)"',
    "learners=\"$(printf '%s\\n' \"$members\" | awk -F', ' 'NF >= 6 && $6 == \"true\" { n++ } END { print n + 0 }')\"",
    'if etcdctl_run endpoint health --cluster >/dev/null 2>&1 && [ "$learners" = 0 ] && [ "$member_count" -gt 0 ]; then',
    '  etcd_healthy=true',
    'else',
    '  etcd_healthy=false; problems=1; kha_log "etcd is not healthy ($member_count started members, $learners learners)"',
    'fi',
    '',
    'if curl -fsSk --max-time 5 "$vip_livez" >/dev/null 2>&1; then',
    '  vip_answers=true',
    'else',
    '  vip_answers=false; problems=1; kha_log "the VIP does not answer $vip_livez"',
    'fi',
    '',
    '# kube-proxy: the mode the running proxy reports (its config alone says nothing about a crash-looping proxy).',
    'proxy_mode="$(curl -fsS --max-time 5 http://127.0.0.1:10249/proxyMode 2>/dev/null || true)"',
    'if [ -z "$proxy_mode" ]; then',
    '  problems=1; kha_log "kube-proxy does not answer on 127.0.0.1:10249 (not running on this node?)"',
    'elif [ "$proxy_mode" != "$want_mode" ]; then',
    '  problems=1; kha_log "kube-proxy mode is \'$proxy_mode\', expected \'$want_mode\'"',
    'fi',
    '',
    `printf '%s {"nodes":[%s],"etcd":{"members":%s,"healthy":%s,"learners":%s},"vipAnswers":%s,"kubeProxyMode":"%s"}\\n' \\`,
    `  ${q(VERIFY_MARKER)} "$nodes_json" "$member_count" "$etcd_healthy" "$learners" "$vip_answers" "$proxy_mode"`,
    'exit "$problems"',
  );
  return {
    phase: 'verify',
    node: n.name,
    files: [],
    scripts: [
      script({ cluster: c.name, node: n.name, phase: 'verify', name: 'cluster', summary: `Checks nodes, etcd, the VIP and kube-proxy; prints one ${VERIFY_MARKER} line.`, body: cluster }),
      script({
        cluster: c.name,
        node: n.name,
        phase: 'verify',
        name: 'vip-livez',
        summary: 'One probe of the VIP: exit 0 when https://VIP:port/livez answers.',
        body: lines(`curl -fsSk --max-time 5 ${q(livez)} >/dev/null || kha_die ${q(`the VIP does not answer ${livez}`)}`, `kha_log ${q(`the VIP answers ${livez}`)}`),
      }),
    ],
  };
}
