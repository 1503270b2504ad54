// kha upgrade: the scripts of one hop, each safe to run again. The repository switch installs nothing; kubeadm is
// upgraded before it upgrades the node, kubelet and kubectl after the node is drained; every script ends by
// reporting the versions it left, and a node whose static pods (or kubelet) already run the target does nothing.
import type { ClusterSpec, NodeSpec } from '../spec/types';
import { ADMIN_CONF, KUBELET_CONF, MANIFESTS_DIR } from './common';
import { k8sRepository, K8S_PACKAGES } from './packages';
import { APT_LIB, lines, q, script } from './shell';
import type { RenderedScript, RenderFacts } from './types';

/** The static pods kubeadm upgrade rewrites with the target version's image tag. */
export const UPGRADED_COMPONENTS = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler'] as const;

/** What kubeadm does on a node: the first control-plane node applies, the others and the workers follow. */
export type KubeadmUpgradeMode = 'apply' | 'node';

function checkFacts(f: RenderFacts): void {
  if (!/^v\d+\.\d+\.\d+$/.test(f.kubernetesVersion)) throw new Error(`upgrade: ${JSON.stringify(f.kubernetesVersion)} is not a version such as v1.35.4`);
  if (!/^\d+\.\d+\.\d+-[0-9A-Za-z.+~]+$/.test(f.packageVersion)) throw new Error(`upgrade: ${JSON.stringify(f.packageVersion)} is not a package version such as 1.35.4-1.1`);
}

/** Prints the PACKAGES result: the versions of kubeadm, kubelet and kubectl now installed. */
const PACKAGES_RESULT = lines(
  "kha_version() { dpkg-query -W -f='${Version}' \"$1\" 2>/dev/null || true; }",
  'kha_result PACKAGES "{\\"kubeadm\\":\\"$(kha_version kubeadm)\\",\\"kubelet\\":\\"$(kha_version kubelet)\\",\\"kubectl\\":\\"$(kha_version kubectl)\\"}"',
);

/** Installs the named packages at $version unless installed at it already, then holds all three again. */
function installHeld(packages: readonly string[]): string {
  return lines(
    'KHA_CHANGES=${KHA_CHANGES:-0}',
    'need=()',
    `upgraded=(${packages.join(' ')})`,
    'for p in "${upgraded[@]}"; do',
    '  if [ "$(dpkg-query -W -f=\'${Version}\' "$p" 2>/dev/null || true)" != "$version" ]; then need+=("$p=$version"); fi',
    'done',
    'if [ "${#need[@]}" -gt 0 ]; then',
    '  kha_apt update -q',
    '  # Held against unattended upgrades: this install is the one that may change them.',
    '  kha_apt install -y -q --allow-change-held-packages "${need[@]}"',
    '  KHA_CHANGES=$((KHA_CHANGES + 1))',
    '  kha_log "installed ${need[*]}"',
    'fi',
    'held="$(apt-mark showhold)"',
    `for p in ${K8S_PACKAGES.join(' ')}; do`,
    '  if ! printf \'%s\\n\' "$held" | grep -qx -- "$p"; then apt-mark hold "$p" >/dev/null; fi',
    'done',
  );
}

/** Every node: the Kubernetes apt source names the target minor; the index is read; the kubeadm versions it offers are reported. */
export function renderUpgradeRepository(c: ClusterSpec, n: NodeSpec, minor: string): RenderedScript {
  if (!/^1\.\d+$/.test(minor)) throw new Error(`upgrade: ${JSON.stringify(minor)} is not a minor such as 1.35`);
  const { body } = k8sRepository(c, minor);
  return script({
    step: true,
    apt: true,
    cluster: c.name,
    node: n.name,
    phase: 'upgrade',
    name: 'upgrade-repository',
    summary: `Points the Kubernetes apt source at ${minor} and reads its index; installs nothing.`,
    body: lines(
      APT_LIB,
      body,
      'if ! kha_changed; then kha_already "the apt source names Kubernetes ' + minor + ' already"; fi',
      'kha_apt update -q',
      '# Every kubeadm version the target repository offers, for the choice of the patch.',
      "available=\"$(apt-cache madison kubeadm | awk -F'|' '{ gsub(/ /, \"\", $2); print $2 }' | tr -cd '0-9A-Za-z.+~\\n-' | sort -u)\"",
      'list=""',
      'for v in $available; do list="${list:+$list,}\\"$v\\""; done',
      'kha_result UPGRADE-REPOSITORY "{\\"available\\":[$list]}"',
    ),
  });
}

/**
 * kubeadm at the target, then on a control-plane node `kubeadm upgrade apply` (the first) or `kubeadm upgrade node`
 * unless its static pods already run the target; on a worker `kubeadm upgrade node` (it rewrites the kubelet's
 * configuration and nothing else, so running it again is harmless).
 */
export function renderUpgradeKubeadm(c: ClusterSpec, n: NodeSpec, facts: RenderFacts, mode: KubeadmUpgradeMode): RenderedScript {
  checkFacts(facts);
  const cp = n.role === 'control-plane';
  if (mode === 'apply' && !cp) throw new Error(`upgrade: kubeadm upgrade apply runs on a control-plane node, not on worker ${n.name}`);
  const ignore = c.spec.kubernetes.ignorePreflightErrors;
  const ignoreFlag = ignore.length ? ` --ignore-preflight-errors=${q(ignore.join(','))}` : '';
  const command = mode === 'apply' ? `kubeadm upgrade apply "$target" --yes${ignoreFlag}` : `kubeadm upgrade node${ignoreFlag}`;
  return script({
    step: true,
    apt: true,
    cluster: c.name,
    node: n.name,
    phase: 'upgrade',
    name: 'kubeadm-upgrade',
    summary: `Upgrades kubeadm to ${facts.packageVersion}, then runs ${mode === 'apply' ? `kubeadm upgrade apply ${facts.kubernetesVersion}` : 'kubeadm upgrade node'} on this node.`,
    body: lines(
      APT_LIB,
      `version=${q(facts.packageVersion)}`,
      `target=${q(facts.kubernetesVersion)}`,
      installHeld(['kubeadm']),
      'got="$(kubeadm version -o short)"',
      '[ "$got" = "$target" ] || kha_die "kubeadm reports $got after installing $version, not $target"',
      cp
        ? lines(
            '# The control plane of this node runs the target when every static pod kubeadm upgrades names its image tag.',
            'at_target() {',
            '  local c',
            `  for c in ${UPGRADED_COMPONENTS.join(' ')}; do`,
            `    grep -Eq "^[[:space:]]*image:[[:space:]]*[^[:space:]]*/$c:$target\\$" ${q(MANIFESTS_DIR)}/"$c.yaml" 2>/dev/null || return 1`,
            '  done',
            mode === 'apply'
              ? lines(
                  '  # The first node also records the version in kubeadm-config, last of its steps.',
                  `  [ "$(KUBECONFIG=${q(ADMIN_CONF)} kubectl -n kube-system get configmap kubeadm-config -o jsonpath='{.data.ClusterConfiguration}' 2>/dev/null | sed -n 's/^kubernetesVersion:[[:space:]]*//p' | head -n 1)" = "$target" ]`,
                )
              : null,
            '}',
            'if at_target; then',
            '  kha_already "the control plane of this node runs $target already"',
            'else',
            mode === 'apply'
              ? lines(
                  '  # plan refuses what apply would trip on (unhealthy members, an unsupported version) before anything changes.',
                  `  kubeadm upgrade plan "$target"${ignoreFlag} >&2 || kha_die "kubeadm upgrade plan $target refused (its output is above)"`,
                )
              : null,
            `  ${command} >&2 || kha_die "${mode === 'apply' ? 'kubeadm upgrade apply $target' : 'kubeadm upgrade node'} failed (its output is above); running it again is safe"`,
            '  KHA_CHANGES=$((KHA_CHANGES + 1))',
            '  at_target || kha_die "kubeadm finished but the static pods of this node do not all name $target"',
            '  kha_log "control plane of this node upgraded to $target"',
            'fi',
          )
        : lines(`${command} >&2 || kha_die "kubeadm upgrade node failed (its output is above); running it again is safe"`, 'KHA_CHANGES=$((KHA_CHANGES + 1))', 'kha_log "kubelet configuration of this node upgraded for $target"'),
      PACKAGES_RESULT,
    ),
  });
}

/** kubelet and kubectl at the target (held), kubelet restarted and its Node reporting the target version. */
export function renderUpgradeKubelet(c: ClusterSpec, n: NodeSpec, facts: RenderFacts): RenderedScript {
  checkFacts(facts);
  return script({
    step: true,
    apt: true,
    cluster: c.name,
    node: n.name,
    phase: 'upgrade',
    name: 'kubelet-upgrade',
    summary: `Upgrades kubelet and kubectl to ${facts.packageVersion}, restarts the kubelet and waits until the Node reports ${facts.kubernetesVersion}.`,
    body: lines(
      APT_LIB,
      `version=${q(facts.packageVersion)}`,
      `target=${q(facts.kubernetesVersion)}`,
      `node=${q(n.name)}`,
      '# The kubelet may read its own Node with its own credentials.',
      `reported() { kubectl --kubeconfig ${q(KUBELET_CONF)} --request-timeout=10s get node "$node" -o jsonpath='{.status.nodeInfo.kubeletVersion}' 2>/dev/null; }`,
      'at_target() { [ "$(reported)" = "$target" ]; }',
      'KHA_CHANGES=${KHA_CHANGES:-0}',
      'before=$KHA_CHANGES',
      installHeld(['kubelet', 'kubectl']),
      'if [ "$KHA_CHANGES" != "$before" ] || ! at_target; then',
      '  systemctl daemon-reload',
      '  systemctl restart kubelet',
      '  KHA_CHANGES=$((KHA_CHANGES + 1))',
      '  kha_wait 300 "the Node $node to report kubelet $target" at_target',
      '  kha_log "kubelet of $node restarted at $target"',
      'else',
      '  kha_already "kubelet and kubectl are at $version and the Node reports $target"',
      'fi',
      PACKAGES_RESULT,
    ),
  });
}

/** On a control-plane node: the Node is schedulable again (unless kha was told to leave it cordoned). */
export function renderUncordon(c: ClusterSpec, via: NodeSpec, target: string): RenderedScript {
  return script({
    step: true,
    cluster: c.name,
    node: via.name,
    phase: 'upgrade',
    name: 'uncordon',
    runsOn: 'control-plane',
    summary: `Uncordons ${target} after its upgrade.`,
    body: lines(
      `export KUBECONFIG=${q(ADMIN_CONF)}`,
      'KHA_CHANGES=0',
      `node=${q(target)}`,
      'state="$(kubectl --request-timeout=20s get node "$node" -o jsonpath=\'{.spec.unschedulable}\')" || kha_die "cannot read the Node $node"',
      'if [ "$state" = true ]; then',
      '  kubectl --request-timeout=20s uncordon "$node" >&2',
      '  KHA_CHANGES=1',
      '  kha_log "uncordoned $node"',
      'else',
      '  kha_already "$node is schedulable"',
      'fi',
    ),
  });
}
