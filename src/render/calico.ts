// Calico: the Tigera operator with Installation + APIServer resources (default), or the plain
// manifest. Pool CIDR = podSubnet; node addresses are detected per the spec (never the VIP).
import type { ClusterSpec, NodeSpec } from '../spec/types';
import { ADMIN_CONF, KUBEADM_DIR, yamlDocs } from './common';
import { file, lines, q, script, writeFile } from './shell';
import type { PhaseRender, RenderFacts } from './types';

export const CALICO_RESOURCES = `${KUBEADM_DIR}/calico-resources.yaml`;

function calicoMinor(version: string): number {
  return Number(version.replace(/^v/, '').split('.')[1]);
}

export function calicoManifestBase(c: ClusterSpec): string {
  return `https://raw.githubusercontent.com/projectcalico/calico/${c.spec.networking.calico.version}/manifests`;
}

/** Operator manifests in apply order; from 3.30 the CRDs ship in their own file. */
export function operatorManifestUrls(c: ClusterSpec): string[] {
  const base = calicoManifestBase(c);
  const urls = [`${base}/tigera-operator.yaml`];
  if (calicoMinor(c.spec.networking.calico.version) >= 30) urls.unshift(`${base}/operator-crds.yaml`);
  return urls;
}

/** Installation.registry (with trailing slash) and imagePath from one "host[/path]" value. */
export function splitRegistry(registry: string): { registry: string; imagePath?: string } {
  const i = registry.indexOf('/');
  if (i < 0) return { registry: `${registry}/` };
  return { registry: `${registry.slice(0, i)}/`, imagePath: registry.slice(i + 1) };
}

export function autodetectionV4(c: ClusterSpec): Record<string, unknown> {
  const d = c.spec.networking.calico.nodeAddressDetection;
  switch (d.method) {
    case 'interface':
      return { interface: d.interface ?? c.spec.controlPlaneEndpoint.interface };
    case 'can-reach':
      return { canReach: d.canReach ?? c.spec.controlPlaneEndpoint.vip };
    case 'first-found':
      return { firstFound: true };
    default:
      return { kubernetes: 'NodeInternalIP' };
  }
}

/** IP_AUTODETECTION_METHOD for the manifest install. */
export function autodetectionEnv(c: ClusterSpec): string {
  const d = c.spec.networking.calico.nodeAddressDetection;
  switch (d.method) {
    case 'interface':
      return `interface=${d.interface ?? c.spec.controlPlaneEndpoint.interface}`;
    case 'can-reach':
      return `can-reach=${d.canReach ?? c.spec.controlPlaneEndpoint.vip}`;
    case 'first-found':
      return 'first-found';
    default:
      return 'kubernetes-internal-ip';
  }
}

export function calicoResources(c: ClusterSpec): string {
  const cal = c.spec.networking.calico;
  const spec: Record<string, unknown> = {
    calicoNetwork: {
      ipPools: [
        {
          name: 'default-ipv4-ippool',
          blockSize: 26,
          cidr: c.spec.networking.podSubnet,
          encapsulation: cal.encapsulation,
          natOutgoing: 'Enabled',
          nodeSelector: 'all()',
        },
      ],
      nodeAddressAutodetectionV4: autodetectionV4(c),
    },
  };
  if (cal.registry) Object.assign(spec, splitRegistry(cal.registry));
  return yamlDocs([
    { apiVersion: 'operator.tigera.io/v1', kind: 'Installation', metadata: { name: 'default' }, spec },
    { apiVersion: 'operator.tigera.io/v1', kind: 'APIServer', metadata: { name: 'default' }, spec: {} },
  ]);
}

/** A kubectl or download that timed out (the API server busy, images still pulling) is worth another try. */
const timeoutsReported = "kha_reporting timeout 'timed out|timeout|not ready'";

function waitNodesReady(): string {
  return lines(
    '# Nodes become Ready once the CNI runs on them.',
    'nodes_ready() { kubectl wait --for=condition=Ready node --all --timeout=10s >/dev/null 2>&1; }',
    'kha_wait 900 "all nodes Ready" nodes_ready',
    'kha_log "nodes Ready: $(kubectl get nodes --no-headers | awk \'{ print $1 }\' | paste -sd \' \')"',
  );
}

function ipipMode(enc: string): string {
  return enc === 'IPIP' ? 'Always' : enc === 'IPIPCrossSubnet' ? 'CrossSubnet' : 'Never';
}
function vxlanMode(enc: string): string {
  return enc === 'VXLAN' ? 'Always' : enc === 'VXLANCrossSubnet' ? 'CrossSubnet' : 'Never';
}

export function renderCalico(c: ClusterSpec, n: NodeSpec, _facts: RenderFacts): PhaseRender {
  const cal = c.spec.networking.calico;
  const common = { cluster: c.name, node: n.name, phase: 'calico', name: 'install', step: true };
  const head = lines(
    `export KUBECONFIG=${q(ADMIN_CONF)}`,
    // kubectl apply fails at once when nothing answers: ride out a kube-vip restart (its VIP gone for a while).
    'api_ready() { kubectl get --raw=/readyz --request-timeout=5s >/dev/null 2>&1; }',
    'kha_wait 180 "the API server through the control-plane endpoint" api_ready',
    '',
  );
  if (cal.installMethod === 'operator') {
    const resources = file(CALICO_RESOURCES, calicoResources(c), 0o644);
    const body = lines(
      head,
      `# Tigera operator ${cal.version}; server-side apply keeps a re-run harmless (the CRDs are too big for client-side apply).`,
      ...operatorManifestUrls(c).map((u) => `${timeoutsReported} kubectl apply --server-side --force-conflicts -f ${q(u)}`),
      'crd_ready() { kubectl wait --for=condition=Established crd/installations.operator.tigera.io --timeout=10s >/dev/null 2>&1; }',
      'kha_wait 300 "the operator CRDs" crd_ready',
      '',
      `# Installation (pool ${c.spec.networking.podSubnet}, ${cal.encapsulation}) and APIServer.`,
      writeFile(resources),
      `${timeoutsReported} kubectl apply -f ${q(CALICO_RESOURCES)}`,
      '',
      waitNodesReady(),
    );
    return { phase: 'calico', node: n.name, files: [resources], scripts: [script({ ...common, summary: `Installs Calico ${cal.version} through the Tigera operator and waits for Ready nodes.`, body })] };
  }
  const url = cal.manifestUrl ?? `${calicoManifestBase(c)}/calico.yaml`;
  const imagePrefix = cal.registry ? (cal.registry.includes('/') ? cal.registry : `${cal.registry}/calico`) : undefined;
  const body = lines(
    head,
    `manifest_url=${q(url)}`,
    `pod_cidr=${q(c.spec.networking.podSubnet)}`,
    'work="$(mktemp -d)"',
    'trap \'rm -rf -- "$work"\' EXIT',
    `${timeoutsReported} curl -fsSL "$manifest_url" -o "$work/calico.yaml"`,
    '# The pool CIDR must be set before calico-node first starts: it creates the pool only once.',
    'sed -i -E \\',
    "  -e 's|#[[:space:]]*- name: CALICO_IPV4POOL_CIDR|- name: CALICO_IPV4POOL_CIDR|' \\",
    "  -e 's|#[[:space:]]*value: \"192\\.168\\.0\\.0/16\"|  value: \"'\"$pod_cidr\"'\"|' \\",
    '  "$work/calico.yaml"',
    'if ! grep -q "value: \\"$pod_cidr\\"" "$work/calico.yaml"; then',
    '  kha_die "could not set CALICO_IPV4POOL_CIDR in $manifest_url"',
    'fi',
    imagePrefix
      ? lines(`image_prefix=${q(imagePrefix)}`, 'sed -i -E "s|image: (docker\\.io/)?calico/|image: $image_prefix/|" "$work/calico.yaml"')
      : null,
    `${timeoutsReported} kubectl apply --server-side --force-conflicts -f "$work/calico.yaml"`,
    '# Address detection and encapsulation; set env only rolls pods when a value changes.',
    `${timeoutsReported} kubectl -n kube-system set env daemonset/calico-node \\`,
    `  ${q(`IP_AUTODETECTION_METHOD=${autodetectionEnv(c)}`)} \\`,
    `  ${q(`CALICO_IPV4POOL_IPIP=${ipipMode(cal.encapsulation)}`)} \\`,
    `  ${q(`CALICO_IPV4POOL_VXLAN=${vxlanMode(cal.encapsulation)}`)}`,
    '',
    waitNodesReady(),
  );
  return {
    phase: 'calico',
    node: n.name,
    files: [],
    scripts: [script({ ...common, summary: `Installs Calico ${cal.version} from its manifest and waits for Ready nodes.`, body })],
  };
}
