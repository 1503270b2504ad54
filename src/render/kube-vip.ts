// kube-vip as a static pod holding the control-plane VIP. The first control-plane node gets it
// before `kubeadm init`; from 1.29 it must mount super-admin.conf then (admin.conf has no rights
// until init finishes) and is switched back to admin.conf after init. Other control-plane nodes
// get it after their join (kubeadm join wants an empty manifests directory).
import type { ClusterSpec, NodeSpec } from '../spec/types';
import { minorNumber, vipInterface } from '../spec/types';
import { ADMIN_CONF, KUBE_VIP_MANIFEST, SUPER_ADMIN_CONF, isFirstControlPlane, vipUrl, yamlDocs } from './common';
import { file, lines, q, script, writeFile } from './shell';
import type { PhaseRender, RenderFacts, RenderedFile } from './types';

/** From 1.29 kubeadm's admin.conf is bound to a group that only exists after init. */
export function needsSuperAdmin(facts: RenderFacts): boolean {
  return minorNumber(facts.kubernetesVersion) >= 29;
}

export function kubeVipManifest(c: ClusterSpec, n: NodeSpec, kubeconfigHostPath: string): string {
  const ep = c.spec.controlPlaneEndpoint;
  const kv = ep.kubeVip;
  const arp = kv.mode === 'arp';
  const env: Array<Record<string, unknown>> = [
    { name: 'vip_arp', value: String(arp) },
    { name: 'port', value: String(ep.port) },
    { name: 'vip_nodename', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
    { name: 'vip_interface', value: vipInterface(c, n) },
    arp ? { name: 'vip_subnet', value: '32' } : { name: 'vip_cidr', value: '32' },
    { name: 'dns_mode', value: 'first' },
    { name: 'cp_enable', value: 'true' },
    { name: 'cp_namespace', value: 'kube-system' },
    ...(arp
      ? [
          { name: 'vip_leaderelection', value: 'true' },
          { name: 'vip_leasename', value: 'plndr-cp-lock' },
          { name: 'vip_leaseduration', value: '5' },
          { name: 'vip_renewdeadline', value: '3' },
          { name: 'vip_retryperiod', value: '1' },
        ]
      : [
          { name: 'bgp_enable', value: 'true' },
          { name: 'bgp_routerinterface', value: vipInterface(c, n) },
        ]),
    { name: 'address', value: ep.vip },
    { name: 'prometheus_server', value: ':2112' },
  ];
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'kube-vip', namespace: 'kube-system' },
    spec: {
      containers: [
        {
          name: 'kube-vip',
          image: `${kv.image}:${kv.version}`,
          imagePullPolicy: 'IfNotPresent',
          args: ['manager'],
          env,
          securityContext: { capabilities: { add: ['NET_ADMIN', 'NET_RAW'] } },
          volumeMounts: [{ name: 'kubeconfig', mountPath: '/etc/kubernetes/admin.conf' }],
        },
      ],
      // kube-vip reaches the local API server as https://kubernetes:<port>.
      hostAliases: [{ ip: '127.0.0.1', hostnames: ['kubernetes'] }],
      hostNetwork: true,
      volumes: [{ name: 'kubeconfig', hostPath: { path: kubeconfigHostPath } }],
    },
  };
  return yamlDocs([pod]);
}

export function kubeVipFiles(c: ClusterSpec, n: NodeSpec, facts: RenderFacts): { final: RenderedFile; beforeInit?: RenderedFile } {
  const final = file(KUBE_VIP_MANIFEST, kubeVipManifest(c, n, ADMIN_CONF), 0o600);
  if (!isFirstControlPlane(c, n) || !needsSuperAdmin(facts)) return { final };
  return { final, beforeInit: file(KUBE_VIP_MANIFEST, kubeVipManifest(c, n, SUPER_ADMIN_CONF), 0o600, 'super-admin') };
}

/** Shell that waits until the VIP answers /livez (anonymous access is allowed there). */
export function waitForVip(c: ClusterSpec, seconds: number): string {
  return lines(
    `vip_livez=${q(`${vipUrl(c)}/livez`)}`,
    'vip_answers() { curl -fsSk --max-time 5 "$vip_livez" >/dev/null 2>&1; }',
    `kha_wait ${seconds} "the VIP ($vip_livez)" vip_answers`,
    'kha_log "the VIP answers at $vip_livez"',
  );
}

export function renderKubeVip(c: ClusterSpec, n: NodeSpec, facts: RenderFacts): PhaseRender {
  const { final, beforeInit } = kubeVipFiles(c, n, facts);
  const common = { cluster: c.name, node: n.name, phase: 'kube-vip' };
  if (!isFirstControlPlane(c, n)) {
    return {
      phase: 'kube-vip',
      node: n.name,
      files: [final],
      scripts: [
        script({
          ...common,
          name: 'after-join',
          summary: 'Writes the kube-vip static pod (admin.conf) after this node joined the control plane.',
          body: lines(
            `if [ ! -f ${q(ADMIN_CONF)} ]; then`,
            `  kha_die ${q(`${ADMIN_CONF} is missing: this node has not joined the control plane yet`)}`,
            'fi',
            writeFile(final),
          ),
        }),
      ],
    };
  }
  return {
    phase: 'kube-vip',
    node: n.name,
    files: beforeInit ? [beforeInit, final] : [final],
    scripts: [
      script({
        step: true,
        ...common,
        name: 'before-init',
        summary: beforeInit
          ? 'Writes the kube-vip static pod with super-admin.conf so the VIP comes up during kubeadm init.'
          : 'Writes the kube-vip static pod so the VIP comes up during kubeadm init.',
        body: beforeInit
          ? lines(
              '# Once init has run, the switched manifest is the right one: never go back to super-admin.conf.',
              `if [ -f ${q(ADMIN_CONF)} ] && [ -f /etc/kubernetes/manifests/kube-apiserver.yaml ]; then`,
              writeFile(final),
              'else',
              writeFile(beforeInit),
              'fi',
            )
          : writeFile(final),
      }),
      script({
        step: true,
        ...common,
        name: 'switch-admin-conf',
        summary: beforeInit
          ? 'After kubeadm init: waits for the VIP, points kube-vip back at admin.conf, waits for the VIP again.'
          : 'After kubeadm init: waits for the VIP (admin.conf is used throughout before 1.29).',
        body: lines(
          `if [ ! -f ${q(ADMIN_CONF)} ]; then`,
          `  kha_die ${q(`${ADMIN_CONF} is missing: kubeadm init has not run on this node`)}`,
          'fi',
          waitForVip(c, 300),
          writeFile(final),
          '# The kubelet restarts the static pod when it sees the new manifest; until then the old pod still answers',
          '# on the VIP. A run after a failed one checks the same: a kube-vip created after the manifest last changed.',
          `manifest_ns="$(date -r ${q(KUBE_VIP_MANIFEST)} +%s%N)"`,
          'kube_vip_restarted() {',
          '  local created',
          `  created="$(crictl ps --name '^kube-vip$' --state running -o json 2>/dev/null | grep -o '"createdAt": *"[0-9]*"' | grep -o '[0-9][0-9]*' | sort -n | tail -n 1)"`,
          '  [ -n "$created" ] && [ "$created" -ge "$manifest_ns" ]',
          '}',
          'if ! kube_vip_restarted; then',
          '  deadline=$(($(date +%s) + 60))',
          '  until kube_vip_restarted || [ "$(date +%s)" -ge "$deadline" ]; do sleep 1; done',
          '  if ! kube_vip_restarted; then',
          "    # Right after its own restart (kubeadm's kubelet-finalize) the kubelet can keep a static pod's old version",
          '    # until a 2-minute volume timeout; stopping that pod makes it start the manifest as written.',
          `    for pod in $(crictl pods --name '^kube-vip-' --state ready -q 2>/dev/null); do crictl stopp "$pod" >/dev/null 2>&1 || true; done`,
          '    kha_log "kube-vip still ran its old manifest after 60 s: stopped its pod so the kubelet starts the new one"',
          '  fi',
          '  kha_wait 180 "kubelet to restart kube-vip with admin.conf" kube_vip_restarted',
          'fi',
          'kha_wait 300 "the VIP after the switch to admin.conf" vip_answers',
        ),
      }),
    ],
  };
}
