// kubeadm init on the first control-plane node, from a config file: v1beta3 below 1.31,
// v1beta4 (name/value extraArgs) from 1.31.
import type { ClusterSpec, NodeSpec } from '../spec/types';
import { advertiseAddress, endpointHostPort } from '../spec/types';
import {
  ADMIN_CONF,
  KUBEADM_DIR,
  apiServerUrl,
  certSans,
  criSocket,
  kubeadmApiVersion,
  kubeletExtraArgs,
  nodeTaints,
  yamlDocs,
} from './common';
import { file, lines, q, script, writeFile } from './shell';
import type { PhaseRender, RenderFacts } from './types';

export const INIT_CONFIG = `${KUBEADM_DIR}/kubeadm-init.yaml`;
export const ROOT_KUBECONFIG = '/root/.kube/config';

export function nodeRegistration(c: ClusterSpec, n: NodeSpec, facts: RenderFacts): Record<string, unknown> {
  const reg: Record<string, unknown> = {
    name: n.name,
    criSocket: criSocket(c),
    kubeletExtraArgs: kubeletExtraArgs(facts, { 'node-ip': advertiseAddress(n) }),
  };
  const taints = nodeTaints(n);
  if (taints) reg.taints = taints;
  const ignored = c.spec.kubernetes.ignorePreflightErrors;
  if (ignored.length) reg.ignorePreflightErrors = ignored;
  return reg;
}

export function kubeadmInitConfig(c: ClusterSpec, n: NodeSpec, facts: RenderFacts): string {
  const api = kubeadmApiVersion(facts);
  const s = c.spec;
  const mode = s.networking.kubeProxyMode;
  const proxy: Record<string, unknown> = { apiVersion: 'kubeproxy.config.k8s.io/v1alpha1', kind: 'KubeProxyConfiguration', mode };
  if (mode === 'ipvs') proxy.ipvs = { strictARP: s.networking.ipvsStrictARP ?? s.controlPlaneEndpoint.kubeVip.mode === 'arp' };
  return yamlDocs([
    {
      apiVersion: api,
      kind: 'InitConfiguration',
      localAPIEndpoint: { advertiseAddress: advertiseAddress(n), bindPort: s.controlPlaneEndpoint.port },
      nodeRegistration: nodeRegistration(c, n, facts),
    },
    {
      apiVersion: api,
      kind: 'ClusterConfiguration',
      clusterName: c.name,
      kubernetesVersion: facts.kubernetesVersion,
      controlPlaneEndpoint: endpointHostPort(c),
      imageRepository: s.images.repository,
      networking: { podSubnet: s.networking.podSubnet, serviceSubnet: s.networking.serviceSubnet, dnsDomain: s.networking.dnsDomain },
      apiServer: { certSANs: certSans(c) },
    },
    proxy,
    {
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      cgroupDriver: 'systemd',
      ...(s.kubernetes.allowCgroupV1 ? { failCgroupV1: false } : {}),
    },
  ]);
}

/**
 * Shell defining `belongs_here FILE`: true when the kubeconfig FILE points at this cluster's
 * endpoint. Used to tell "already done for this cluster" from "part of another cluster".
 */
export function endpointCheck(c: ClusterSpec): string {
  return lines(
    `expected_server=${q(apiServerUrl(c))}`,
    'belongs_here() { [ "$(kha_kubeconfig_server "$1")" = "$expected_server" ]; }',
  );
}

/** Shell that applies the node's labels with kubectl (admin rights; kubelet may not self-label node-role). */
export function labelCommands(n: NodeSpec, kubeconfig: string): string | null {
  const labels = Object.entries(n.labels);
  if (labels.length === 0) return null;
  return lines(
    `kubectl --kubeconfig ${q(kubeconfig)} label node ${q(n.name)} --overwrite \\`,
    `  ${labels.map(([k, v]) => q(`${k}=${v}`)).join(' ')} >/dev/null`,
    `kha_log ${q(`labels set on ${n.name}`)}`,
  );
}

export function renderKubeadmInit(c: ClusterSpec, n: NodeSpec, facts: RenderFacts): PhaseRender {
  const config = file(INIT_CONFIG, kubeadmInitConfig(c, n, facts), 0o600);
  const body = lines(
    writeFile(config),
    endpointCheck(c),
    '',
    `if [ -f ${q(ADMIN_CONF)} ] && [ -f /etc/kubernetes/manifests/kube-apiserver.yaml ]; then`,
    `  if ! belongs_here ${q(ADMIN_CONF)}; then`,
    `    kha_die "this node is already the control plane of another cluster ($(kha_kubeconfig_server ${q(ADMIN_CONF)})); reset it first"`,
    '  fi',
    '  kha_already "already initialized for this cluster; kubeadm init skipped"',
    'else',
    '  # Token and certificate key are not printed: joins mint fresh ones when they need them.',
    `  kha_once kubeadm-init ${q(ADMIN_CONF)} kubeadm init --config ${q(INIT_CONFIG)} --upload-certs --skip-token-print --skip-certificate-key-print`,
    'fi',
    '',
    '# kubectl for root on this node.',
    `kha_write_file ${q(ROOT_KUBECONFIG)} 600 <${q(ADMIN_CONF)}`,
    `api_ready() { kubectl --kubeconfig ${q(ADMIN_CONF)} get --raw=/readyz >/dev/null 2>&1; }`,
    'kha_wait 300 "the API server" api_ready',
    labelCommands(n, ADMIN_CONF),
  );
  return {
    phase: 'kubeadm-init',
    node: n.name,
    files: [config],
    scripts: [
      script({
        step: true,
        cluster: c.name,
        node: n.name,
        phase: 'kubeadm-init',
        name: 'init',
        summary: 'Runs kubeadm init from the rendered config unless this node already runs this cluster.',
        body,
      }),
    ],
  };
}
