// Packages: the Kubernetes apt repository of the minor, kubelet/kubeadm/kubectl at one pinned
// version for every node, held, plus the extra tools (ipset, ipvsadm, ...).
import type { ClusterSpec, NodeSpec } from '../spec/types';
import { kubeMinor } from '../spec/types';
import { kubernetesKeyFingerprint } from '../spec/sources';
import { APT_LIB, file, lines, q, script, writeFile } from './shell';
import { KUBELET_CONF } from './common';
import type { PhaseRender, RenderFacts } from './types';

export const K8S_KEYRING = '/etc/apt/keyrings/kubernetes-apt-keyring.gpg';
export const K8S_SOURCES = '/etc/apt/sources.list.d/kubernetes.list';
export const K8S_PACKAGES = ['kubelet', 'kubeadm', 'kubectl'] as const;

/** `<repository>/v<minor>/deb/`, e.g. https://pkgs.k8s.io/core:/stable:/v1.35/deb/ */
export function k8sRepoUrl(c: ClusterSpec, facts: RenderFacts): string {
  return `${c.spec.packages.repository}/v${kubeMinor(facts.kubernetesVersion)}/deb/`;
}

/**
 * Shell that points apt at the Kubernetes repository of `minor` (packages, kha upgrade): the signing key fetched
 * once and taken only when it is the pinned one, then the source; apt_updated=0 whenever either changed.
 */
export function k8sRepository(c: ClusterSpec, minor: string): { sources: ReturnType<typeof file>; body: string } {
  const repo = `${c.spec.packages.repository}/v${minor}/deb/`;
  const sources = file(K8S_SOURCES, `deb [signed-by=${K8S_KEYRING}] ${repo} /`);
  const body = lines(
    `# Repository of Kubernetes ${minor}; its key is fetched once, and only the pinned key is taken.`,
    `repo_url=${q(repo)}`,
    `key_fpr=${q(kubernetesKeyFingerprint(c.spec))}`,
    `if [ ! -s ${q(K8S_KEYRING)} ] || ! kha_key_pinned ${q(K8S_KEYRING)} "$key_fpr"; then`,
    '  key_dir="$(mktemp -d)"',
    '  kha_fetch_key "${repo_url}Release.key" "$key_dir/Release.key" "$key_fpr" spec.packages.keyFingerprint',
    '  gpg --batch --yes --dearmor -o "$key_dir/keyring.gpg" "$key_dir/Release.key"',
    `  kha_write_file ${q(K8S_KEYRING)} 644 <"$key_dir/keyring.gpg"`,
    '  rm -rf -- "$key_dir"',
    '  apt_updated=0',
    'fi',
    writeFile(sources),
    'if kha_changed; then apt_updated=0; fi',
  );
  return { sources, body };
}

export function renderPackages(c: ClusterSpec, n: NodeSpec, facts: RenderFacts): PhaseRender {
  const repo = k8sRepoUrl(c, facts);
  const { sources, body: repoLines } = k8sRepository(c, kubeMinor(facts.kubernetesVersion));
  const extra = c.spec.packages.extra;
  const body = lines(
    APT_LIB,
    '',
    'apt_install ca-certificates curl gpg',
    '',
    repoLines,
    '',
    `# kubelet, kubeadm and kubectl at ${facts.packageVersion} on every node, held against upgrades.`,
    `version=${q(facts.packageVersion)}`,
    'need_install=0',
    `for p in ${K8S_PACKAGES.join(' ')}; do`,
    '  installed="$(dpkg-query -W -f="\\${Version}" "$p" 2>/dev/null || true)"',
    '  if [ "$installed" != "$version" ]; then need_install=1; fi',
    'done',
    '# A member of a cluster keeps the version it runs: changing it is kubeadm upgrade\'s job, node by node.',
    `if [ "$need_install" = 1 ] && [ -f ${q(KUBELET_CONF)} ]; then`,
    '  for p in kubelet kubeadm; do',
    '    installed="$(dpkg-query -W -f="\\${Version}" "$p" 2>/dev/null || true)"',
    '    if [ -n "$installed" ] && [ "$installed" != "$version" ]; then',
    '      kha_die "this node belongs to a cluster and runs $p $installed; installing $version would change it outside kubeadm upgrade: use kha upgrade"',
    '    fi',
    '  done',
    'fi',
    'if [ "$need_install" = 1 ]; then',
    '  if [ "$apt_updated" = 0 ]; then',
    '    kha_apt update -q',
    '    apt_updated=1',
    '  fi',
    '  kha_apt install -y -q --allow-change-held-packages --allow-downgrades \\',
    '    "kubelet=$version" "kubeadm=$version" "kubectl=$version"',
    'fi',
    'held="$(apt-mark showhold)"',
    `for p in ${K8S_PACKAGES.join(' ')}; do`,
    '  if ! printf \'%s\\n\' "$held" | grep -qx -- "$p"; then apt-mark hold "$p" >/dev/null; fi',
    'done',
    '',
    extra.length ? lines('# Tools kube-proxy, Calico and kubeadm preflight use.', `apt_install ${extra.map(q).join(' ')}`) : null,
    '',
    'if ! systemctl is-enabled --quiet kubelet; then',
    '  systemctl enable kubelet >/dev/null 2>&1',
    'fi',
    '# kubelet restarts in a loop until kubeadm init or join configures it; that is expected.',
    'systemctl start kubelet || true',
    'kha_log "kubeadm $(kubeadm version -o short) installed"',
    '# The versions now installed, for the cross-node check.',
    'kha_version() { dpkg-query -W -f=\'${Version}\' "$1" 2>/dev/null || true; }',
    'kha_result PACKAGES "{\\"kubeadm\\":\\"$(kha_version kubeadm)\\",\\"kubelet\\":\\"$(kha_version kubelet)\\",\\"kubectl\\":\\"$(kha_version kubectl)\\"}"',
  );
  return {
    phase: 'packages',
    node: n.name,
    files: [sources],
    scripts: [
      script({
        step: true,
        cluster: c.name,
        node: n.name,
        phase: 'packages',
        name: 'packages',
        summary: `Installs kubelet, kubeadm and kubectl ${facts.packageVersion} from ${repo} and holds them.`,
        body,
        apt: true,
      }),
    ],
  };
}
