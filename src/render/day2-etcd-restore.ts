// kha restore: the scripts that put a snapshot from kha backup back into every etcd member. Each one checks
// first whether its work is done (a retried or resumed step changes nothing twice) and none deletes what it
// did not create: the old data directory and the moved static pod manifests stay, named with the run, and
// are the way back. No script prints the snapshot: only its hash and what etcdutl says about it.
import type { ClusterSpec, NodeSpec } from '../spec/types';
import { advertiseAddress } from '../spec/types';
import { ADMIN_CONF, MANIFESTS_DIR, vipUrl } from './common';
import { etcdctlFunction } from './join';
import { etcdAtFunction } from './remove';
import { lines, q, script } from './shell';
import type { RenderedScript } from './types';

/** A run's name in paths on the nodes: letters, digits and dashes only. */
const TAG = /^[0-9A-Za-z-]{1,64}$/;
const SHA256 = /^[0-9a-f]{64}$/;

export const RESTORE_ROOT = '/var/lib/kha/restore';
export const ETCD_DATA = '/var/lib/etcd';

/** Where one run keeps its files on a node: the snapshot copy, etcdutl when the host has none, its markers. */
export const restorePaths = (tag: string) => {
  if (!TAG.test(tag)) throw new Error(`restore run tag ${JSON.stringify(tag)} is not letters, digits and dashes`);
  return {
    stage: `${RESTORE_ROOT}/${tag}`,
    snapshot: `${RESTORE_ROOT}/${tag}/snapshot.db`,
    manifestsAside: `/etc/kubernetes/kha-restore/${tag}`,
    dataAside: `${ETCD_DATA}.kha-restore-${tag}`,
    restoring: `${ETCD_DATA}.kha-restoring-${tag}`,
  };
};

export const peerURL = (n: NodeSpec) => `https://${advertiseAddress(n)}:2380`;
export const clientURL = (n: NodeSpec) => `https://${advertiseAddress(n)}:2379`;
const controlPlanes = (c: ClusterSpec) => c.spec.nodes.filter((n) => n.role === 'control-plane');
/** etcd's --initial-cluster for the file's control-plane nodes: NAME=PEER_URL, comma-separated. */
export const initialCluster = (c: ClusterSpec) => controlPlanes(c).map((n) => `${n.name}=${peerURL(n)}`).join(',');

const common = (c: ClusterSpec, n: NodeSpec, name: string, summary: string) => ({ cluster: c.name, node: n.name, phase: 'restore', name, summary });

/** etcdutl: the host's, or the copy the stage step took from this node's etcd container. */
function etcdutlFunction(stage: string): string {
  return lines(
    `etcdutl_bin() { if kha_have etcdutl; then command -v etcdutl; elif [ -x ${q(`${stage}/etcdutl`)} ]; then printf '%s\\n' ${q(`${stage}/etcdutl`)}; else return 1; fi; }`,
  );
}

const running = "running() { crictl ps --name \"^$1\\$\" --state running -q 2>/dev/null | grep -q .; }";
const gone = 'gone() { ! running "$1"; }';

/** Before the copy: the stage directory (0700), and the sha256 of a copy an earlier attempt left ('' if none). */
export function renderRestorePrepare(c: ClusterSpec, n: NodeSpec, tag: string): RenderedScript {
  const p = restorePaths(tag);
  return script({
    ...common(c, n, 'restore-prepare', 'Creates the directory of this restore run (0700) and reports the sha256 of a snapshot copy already there.'),
    body: lines(
      `install -d -m 0700 ${q(RESTORE_ROOT)} ${q(p.stage)}`,
      `snap=${q(p.snapshot)}`,
      'sha=""',
      'if [ -f "$snap" ]; then sha="$(sha256sum -- "$snap" | awk \'{ print $1 }\')"; fi',
      'kha_result RESTORE-COPY "{\\"sha256\\":\\"$sha\\"}"',
    ),
  });
}

/** After the copy: its hash, etcdutl (the host's or one taken from the running etcd container), snapshot status. */
export function renderRestoreStage(c: ClusterSpec, n: NodeSpec, tag: string, sha256: string): RenderedScript {
  if (!SHA256.test(sha256)) throw new Error('restore stage: sha256 is not a SHA-256 digest');
  const p = restorePaths(tag);
  return script({
    ...common(c, n, 'restore-stage', 'Checks the copied snapshot (sha256, etcdutl snapshot status) and makes sure etcdutl runs here while etcd is stopped.'),
    body: lines(
      etcdutlFunction(p.stage),
      running,
      `snap=${q(p.snapshot)}`,
      `want=${q(sha256)}`,
      '[ -f "$snap" ] || kha_die "no snapshot copy at $snap"',
      'chmod 0600 -- "$snap"',
      'sha="$(sha256sum -- "$snap" | awk \'{ print $1 }\')"',
      '[ "$sha" = "$want" ] || kha_die "the snapshot copy at $snap has sha256 $sha, not $want"',
      `if mountpoint -q ${q(ETCD_DATA)}; then kha_die "${ETCD_DATA} is a mount point here: kha restore moves it aside by renaming it, which a mount point refuses; nothing was changed"; fi`,
      `[ -d ${q(ETCD_DATA)} ] || kha_die "no ${ETCD_DATA} here: not an etcd member of a kubeadm cluster"`,
      'source=host',
      'if ! etcdutl_bin >/dev/null; then',
      '  # etcdutl must run once etcd is stopped: take the one in its image from the running container.',
      '  source=container',
      '  running etcd || kha_die "no etcdutl on this host and no running etcd container to take it from"',
      "  cid=\"$(crictl ps --name '^etcd$' --state running -q --no-trunc | head -n 1)\"",
      '  pid="$(crictl inspect -o go-template --template \'{{.info.pid}}\' "$cid" 2>/dev/null)" || pid=""',
      `  tmp=${q(`${p.stage}/.etcdutl.tmp`)}`,
      '  # The container\'s root as containerd mounts it, or through its process (needs ptrace rights); the image has no cat.',
      '  found=""',
      '  for f in "/run/containerd/io.containerd.runtime.v2.task/k8s.io/$cid/rootfs/usr/local/bin/etcdutl" "/proc/${pid:-0}/root/usr/local/bin/etcdutl"; do',
      '    if [ -f "$f" ] && cp -- "$f" "$tmp" 2>/dev/null; then found="$f"; break; fi',
      '  done',
      '  [ -n "$found" ] || kha_die "no etcdutl on this host, and none found in the running etcd container (its rootfs under /run/containerd, /proc/PID/root): install etcdutl on the host, then kha retry"',
      '  chmod 0700 -- "$tmp"',
      '  "$tmp" version >/dev/null 2>&1 || kha_die "the etcdutl taken from the etcd container does not run on this host"',
      `  mv -f -- "$tmp" ${q(`${p.stage}/etcdutl`)}`,
      'fi',
      'etcdutl="$(etcdutl_bin)"',
      'status="$("$etcdutl" snapshot status "$snap" -w json)" || kha_die "etcdutl snapshot status rejects the snapshot copy"',
      'kha_result RESTORE-STAGED "{\\"sha256\\":\\"$sha\\",\\"etcdutl\\":\\"$source\\",\\"status\\":$(printf \'%s\' "$status" | tr -d \'\\n\')}"',
    ),
  });
}

/** The API server's manifest, then etcd's, moved into this run's kha directory; waits until their containers are gone. */
export function renderRestoreStop(c: ClusterSpec, n: NodeSpec, tag: string): RenderedScript {
  const p = restorePaths(tag);
  return script({
    step: true,
    ...common(c, n, 'restore-stop', `Stops the API server and etcd: their static pod manifests move to ${p.manifestsAside}.`),
    body: lines(
      running,
      gone,
      `aside=${q(p.manifestsAside)}`,
      `install -d -m 0700 /etc/kubernetes/kha-restore "$aside"`,
      'move_aside() {',
      `  local src=${q(MANIFESTS_DIR)}/$1.yaml dst="$aside/$1.yaml"`,
      '  if [ -e "$src" ] && [ -e "$dst" ]; then kha_die "both $src and $dst exist: put back the one you want, then kha retry"; fi',
      '  if [ -e "$src" ]; then',
      '    mv -- "$src" "$dst"',
      '    KHA_CHANGES=$((${KHA_CHANGES:-0} + 1))',
      '    kha_log "moved $src to $dst"',
      '  elif [ -e "$dst" ]; then',
      '    kha_already "$1: its manifest is already in $aside"',
      '  else',
      '    kha_die "no $src and none in $aside: not a kubeadm control-plane node"',
      '  fi',
      '  if running "$1"; then kha_wait 180 "the $1 container to stop" gone "$1"; fi',
      '}',
      'move_aside kube-apiserver',
      'move_aside etcd',
    ),
  });
}

/** /var/lib/etcd renamed to this run's name; it stays there until the operator deletes it. */
export function renderRestoreDataAside(c: ClusterSpec, n: NodeSpec, tag: string): RenderedScript {
  const p = restorePaths(tag);
  return script({
    step: true,
    ...common(c, n, 'restore-data-aside', `Moves ${ETCD_DATA} to ${p.dataAside} (kept).`),
    body: lines(
      running,
      `data=${q(ETCD_DATA)}`,
      `aside=${q(p.dataAside)}`,
      'if [ -e "$aside" ]; then',
      '  kha_already "the old etcd data is already at $aside"',
      'else',
      '  if running etcd; then kha_die "etcd still runs here: its data is not moved while it runs"; fi',
      '  if [ -e "$data" ]; then',
      '    mv -- "$data" "$aside"',
      '    KHA_CHANGES=1',
      '    kha_log "moved $data to $aside"',
      '  else',
      '    install -d -m 0700 "$aside"',
      '    kha_log "no $data here: nothing to move ($aside is empty)"',
      '  fi',
      'fi',
    ),
  });
}

/** etcdutl snapshot restore into a new directory of this run, renamed to /var/lib/etcd once complete. */
export function renderRestoreMember(c: ClusterSpec, n: NodeSpec, tag: string): RenderedScript {
  const p = restorePaths(tag);
  return script({
    step: true,
    ...common(c, n, 'restore-member', `Restores etcd member ${n.name} (${peerURL(n)}) from the snapshot into ${ETCD_DATA}.`),
    body: lines(
      etcdutlFunction(p.stage),
      running,
      `data=${q(ETCD_DATA)}`,
      `tmp=${q(p.restoring)}`,
      `marker=${q(`${p.stage}/restored`)}`,
      'if [ -f "$marker" ] && [ -d "$data/member" ]; then',
      '  kha_already "member restored by this run already"',
      'else',
      '  if running etcd; then kha_die "etcd runs here: it is stopped before its data is restored"; fi',
      `  [ -e ${q(p.dataAside)} ] || kha_die "the old data is not at ${p.dataAside}: it is moved aside first"`,
      '  etcdutl="$(etcdutl_bin)" || kha_die "no etcdutl here (the stage step puts one there)"',
      '  # A partial restore of this run (an attempt killed half-way) is the only thing deleted here.',
      '  rm -rf -- "$tmp"',
      // --bump-revision and --mark-compacted: watchers (every informer) see the revision jump and list again.
      `  "$etcdutl" snapshot restore ${q(p.snapshot)} --name ${q(n.name)} --initial-cluster ${q(initialCluster(c))} --initial-cluster-token ${q(`kha-restore-${tag}`)} --initial-advertise-peer-urls ${q(peerURL(n))} --data-dir "$tmp" --bump-revision 1000000000 --mark-compacted >&2 || kha_die "etcdutl snapshot restore failed"`,
      '  if [ -e "$data" ]; then',
      '    if [ -d "$data" ] && [ -z "$(ls -A -- "$data")" ]; then rmdir -- "$data"',
      '    else kha_die "$data exists again and is not empty: kha deletes nothing; move it away, then kha retry"; fi',
      '  fi',
      '  mv -- "$tmp" "$data"',
      '  chmod 0700 -- "$data"',
      '  touch -- "$marker"',
      '  KHA_CHANGES=1',
      `  kha_log "restored member ${n.name} into $data"`,
      'fi',
    ),
  });
}

/** A manifest moved back from this run's directory (none there and one in place: done already). */
function moveBack(name: string): string {
  return lines(
    `src="$aside/${name}.yaml"`,
    `dst=${q(`${MANIFESTS_DIR}/${name}.yaml`)}`,
    'if [ -e "$src" ] && [ -e "$dst" ]; then kha_die "both $src and $dst exist: keep the one you want, then kha retry"; fi',
    'if [ -e "$src" ]; then',
    '  mv -- "$src" "$dst"',
    '  KHA_CHANGES=1',
    '  kha_log "moved $src back to $dst"',
    'elif [ -e "$dst" ]; then',
    `  kha_already "${name}: its manifest is back already"`,
    'else',
    '  kha_die "no $src and no $dst"',
    'fi',
  );
}

export function renderRestoreEtcdStart(c: ClusterSpec, n: NodeSpec, tag: string): RenderedScript {
  const p = restorePaths(tag);
  return script({
    step: true,
    ...common(c, n, 'restore-etcd-start', 'Moves the etcd manifest back and waits for its container.'),
    body: lines(running, `aside=${q(p.manifestsAside)}`, moveBack('etcd'), 'kha_wait 300 "the kubelet to start etcd" running etcd'),
  });
}

/** On one control-plane node: every member of the file started, none a learner, each answering a quorum read. */
export function renderRestoreQuorum(c: ClusterSpec, n: NodeSpec, seconds = 300): RenderedScript {
  const cps = controlPlanes(c);
  return script({
    ...common(c, n, 'restore-etcd-quorum', `Waits until etcd lists ${cps.length} started members and each is healthy.`),
    body: lines(
      etcdctlFunction(),
      etcdAtFunction(),
      `want=${cps.length}`,
      `urls=(${cps.map((x) => q(clientURL(x))).join(' ')})`,
      'quorum_ok() {',
      '  local count u',
      "  count=\"$(etcdctl_run member list -w simple 2>/dev/null | awk -F', ' 'NF >= 6 && $2 == \"started\" && $6 == \"false\"' | wc -l)\" || return 1",
      '  [ "$count" = "$want" ] || return 1',
      '  for u in "${urls[@]}"; do etcd_at "$u" endpoint health >/dev/null 2>&1 || return 1; done',
      '}',
      `kha_wait ${seconds} "$want started, healthy etcd members" quorum_ok`,
      'kha_log "etcd: $want members started and healthy"',
      'kha_result ETCD "{\\"members\\":$want,\\"node\\":\\"' + n.name + '\\"}"',
    ),
  });
}

export function renderRestoreApiStart(c: ClusterSpec, n: NodeSpec, tag: string): RenderedScript {
  const p = restorePaths(tag);
  const api = `https://${advertiseAddress(n)}:${c.spec.controlPlaneEndpoint.port}/livez`;
  return script({
    step: true,
    ...common(c, n, 'restore-api-start', 'Moves the API server manifest back and waits for its /livez.'),
    body: lines(
      `aside=${q(p.manifestsAside)}`,
      moveBack('kube-apiserver'),
      `livez() { curl -fsSk --max-time 5 ${q(api)} >/dev/null 2>&1; }`,
      `kha_wait 300 "the API server (${api})" livez`,
    ),
  });
}

/** kubeadm's restore guidance: restart what may hold stale state (controller manager, scheduler, kubelet). */
export function renderRestoreRestart(c: ClusterSpec, n: NodeSpec, tag: string): RenderedScript {
  const p = restorePaths(tag);
  const cp = n.role === 'control-plane';
  return script({
    step: true,
    ...common(c, n, 'restore-restart', cp ? 'Restarts kube-controller-manager and kube-scheduler, then the kubelet.' : 'Restarts the kubelet.'),
    body: lines(
      `marker=${q(`${p.stage}/restarted`)}`,
      'if [ -f "$marker" ]; then',
      '  kha_already "restarted by this run already"',
      'else',
      `  install -d -m 0700 ${q(RESTORE_ROOT)} ${q(p.stage)}`,
      cp
        ? lines(
            '  created_ns() {',
            `    crictl ps --name "^$1\\$" --state running -o json 2>/dev/null | grep -o '"createdAt": *"[0-9]*"' | grep -o '[0-9][0-9]*' | sort -n | tail -n 1 || true`,
            '  }',
            '  restarted_since() { local t; t="$(created_ns "$1")"; [ -n "$t" ] && [ "$t" -ge "$2" ]; }',
            '  restart() {',
            '    local name="$1" since pod',
            '    since="$(date +%s%N)"',
            '    for pod in $(crictl pods --namespace kube-system --name "^$name-" --state ready -q 2>/dev/null); do crictl stopp "$pod" >/dev/null; done',
            '    kha_wait 180 "the kubelet to start $name again" restarted_since "$name" "$since"',
            '    kha_log "restarted $name"',
            '  }',
            '  restart kube-controller-manager',
            '  restart kube-scheduler',
          )
        : null,
      '  systemctl restart kubelet',
      '  kubelet_ok() { curl -fsS --max-time 5 http://127.0.0.1:10248/healthz >/dev/null 2>&1; }',
      '  kha_wait 180 "the kubelet to be healthy" kubelet_ok',
      '  kha_log "restarted the kubelet"',
      '  touch -- "$marker"',
      '  KHA_CHANGES=1',
      'fi',
    ),
  });
}

/** Read-only, on one control-plane node: the members and their health, /livez through the VIP, the Nodes. */
export function renderRestoreVerify(c: ClusterSpec, n: NodeSpec, seconds = 300): RenderedScript {
  const cps = controlPlanes(c);
  const vip = vipUrl(c);
  return script({
    ...common(c, n, 'restore-verify', 'Reports the etcd members and their health, whether the VIP answers /livez, and the Nodes the API lists.'),
    body: lines(
      etcdctlFunction(),
      etcdAtFunction(),
      `vip=${q(vip)}`,
      `urls=(${cps.map((x) => q(clientURL(x))).join(' ')})`,
      'vip_ok() { curl -fsSk --max-time 5 "$vip/livez" >/dev/null 2>&1; }',
      `kha_wait ${seconds} "the VIP ($vip/livez)" vip_ok`,
      'members="$(etcdctl_run member list -w json --hex | tr -d \'\\n\')" || kha_die "etcd did not list its members"',
      'healthy=()',
      'for u in "${urls[@]}"; do if etcd_at "$u" endpoint health >/dev/null 2>&1; then healthy+=("\\"$u\\""); fi; done',
      `nodes="$(kubectl --kubeconfig ${q(ADMIN_CONF)} --server "$vip" --request-timeout=20s get nodes -o jsonpath='{.items[*].metadata.name}')" || kha_die "the API did not list the Nodes through the VIP"`,
      'list=""',
      'for x in $nodes; do list="${list:+$list,}\\"$x\\""; done',
      'kha_result RESTORE-VERIFY "{\\"members\\":$members,\\"healthy\\":[$(IFS=,; printf \'%s\' "${healthy[*]}")],\\"nodes\\":[$list],\\"vip\\":true}"',
    ),
  });
}
