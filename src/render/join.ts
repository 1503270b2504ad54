// Joins: credentials are minted on a healthy control-plane node right before each join, travel
// to the joining node only as environment variables, and exist on disk only in a 0600 temp file
// for the duration of `kubeadm join`.
import type { ClusterSpec, NodeSpec } from '../spec/types';
import { advertiseAddress, endpointHostPort } from '../spec/types';
import { ADMIN_CONF, ETCD_PKI, KUBELET_CONF, kubeadmApiVersion, localApiAddress, yamlDocs } from './common';
import { endpointCheck, labelCommands, nodeRegistration, ROOT_KUBECONFIG } from './kubeadm';
import { file, lines, q, script } from './shell';
import { requireResult, resultMarker } from './result';
import type { PhaseRender, RenderFacts, RenderedFile, RenderedScript } from './types';

export const CREDENTIALS_MARKER = resultMarker('JOIN-CREDENTIALS');
export const ETCD_MARKER = resultMarker('ETCD');
export const JOIN_ENV = { token: 'KHA_JOIN_TOKEN', caCertHash: 'KHA_CA_CERT_HASH', certificateKey: 'KHA_CERTIFICATE_KEY' } as const;
export const JOIN_CONFIG_TEMPLATE = '/run/kha/kubeadm-join.yaml';
/** Bootstrap tokens minted for a join live this long: long enough for one join and its retries. */
export const TOKEN_TTL = '30m';

export const TOKEN_RE = /^[a-z0-9]{6}\.[a-z0-9]{16}$/;
export const CA_HASH_RE = /^sha256:[a-f0-9]{64}$/;
export const CERT_KEY_RE = /^[a-f0-9]{64}$/;

export interface JoinCredentials {
  token: string;
  caCertHash: string;
  /** Only for control-plane joins. */
  certificateKey?: string;
}

/** Parses mint-credentials' stdout. Error messages never include the values. */
export function parseJoinCredentials(stdout: string): JoinCredentials {
  const raw = requireResult(stdout, 'JOIN-CREDENTIALS', 'mint-credentials');
  const { token, caCertHash, certificateKey } = raw;
  if (typeof token !== 'string' || !TOKEN_RE.test(token)) throw new Error('mint-credentials: token missing or malformed');
  if (typeof caCertHash !== 'string' || !CA_HASH_RE.test(caCertHash)) throw new Error('mint-credentials: caCertHash missing or malformed');
  if (certificateKey === undefined || certificateKey === '') return { token, caCertHash };
  if (typeof certificateKey !== 'string' || !CERT_KEY_RE.test(certificateKey)) throw new Error('mint-credentials: certificateKey malformed');
  return { token, caCertHash, certificateKey };
}

/** The environment the join script expects, built from minted credentials. */
export function joinEnv(creds: JoinCredentials): Record<string, string> {
  const env: Record<string, string> = { [JOIN_ENV.token]: creds.token, [JOIN_ENV.caCertHash]: creds.caCertHash };
  if (creds.certificateKey) env[JOIN_ENV.certificateKey] = creds.certificateKey;
  return env;
}

const PLACEHOLDER = (name: string) => `@@${name}@@`;

/** JoinConfiguration with "${VAR}" where the secrets go; the script expands it from its env. */
export function joinConfigTemplate(c: ClusterSpec, n: NodeSpec, facts: RenderFacts): string {
  const doc: Record<string, unknown> = {
    apiVersion: kubeadmApiVersion(facts),
    kind: 'JoinConfiguration',
    discovery: {
      bootstrapToken: {
        apiServerEndpoint: endpointHostPort(c),
        token: PLACEHOLDER(JOIN_ENV.token),
        caCertHashes: [PLACEHOLDER(JOIN_ENV.caCertHash)],
      },
    },
    nodeRegistration: nodeRegistration(c, n, facts),
  };
  if (n.role === 'control-plane') {
    doc.controlPlane = {
      localAPIEndpoint: { advertiseAddress: advertiseAddress(n), bindPort: c.spec.controlPlaneEndpoint.port },
      certificateKey: PLACEHOLDER(JOIN_ENV.certificateKey),
    };
  }
  return yamlDocs([doc]).replace(/"?@@([A-Z_]+)@@"?/g, (_m, v: string) => `"\${${v}}"`);
}

function mintScript(c: ClusterSpec, n: NodeSpec, facts: RenderFacts, phase: string): RenderedScript {
  const cp = n.role === 'control-plane';
  return script({
    cluster: c.name,
    node: n.name,
    phase,
    name: 'mint-credentials',
    runsOn: 'control-plane',
    sensitiveOutput: true,
    summary: `Mints a ${TOKEN_TTL} bootstrap token${cp ? ' and uploads the control-plane certificates under a fresh key' : ''} for ${n.name}; prints one ${CREDENTIALS_MARKER} line.`,
    body: lines(
      `export KUBECONFIG=${q(ADMIN_CONF)}`,
      `[ -f ${q(ADMIN_CONF)} ] || kha_die ${q(`${ADMIN_CONF} is missing: not a working control-plane node`)}`,
      cp
        ? lines(
            '# The uploaded certificates and their key expire after 2 h, so mint right before the join.',
            '# kubeadm takes this node\'s API address from the default route unless told: hosts without one need it named.',
            localApiAddress(),
            'upload_cfg="$(mktemp)"',
            `printf 'apiVersion: ${kubeadmApiVersion(facts)}\\nkind: InitConfiguration\\nlocalAPIEndpoint:\\n  advertiseAddress: %s\\n' "$api_address" >"$upload_cfg"`,
            'if ! certs_out="$(kubeadm init phase upload-certs --upload-certs --config "$upload_cfg" 2>/dev/null)"; then',
            '  rm -f -- "$upload_cfg"',
            '  kha_die "kubeadm init phase upload-certs failed"',
            'fi',
            'rm -f -- "$upload_cfg"',
            'cert_key="$(printf \'%s\\n\' "$certs_out" | tail -n 1 | tr -d \'[:space:]\')"',
            '[[ "$cert_key" =~ ^[a-f0-9]{64}$ ]] || kha_die "no certificate key in the output of kubeadm init phase upload-certs"',
          )
        : 'cert_key=""',
      `if ! join_cmd="$(kubeadm token create --ttl ${TOKEN_TTL} --description ${q(`kha join of ${n.name}`)} --print-join-command 2>/dev/null)"; then`,
      '  kha_die "kubeadm token create failed"',
      'fi',
      'token="$(printf \'%s\\n\' "$join_cmd" | sed -nE \'s/.*--token[[:space:]]+([a-z0-9]{6}\\.[a-z0-9]{16}).*/\\1/p\')"',
      'ca_hash="$(printf \'%s\\n\' "$join_cmd" | sed -nE \'s/.*--discovery-token-ca-cert-hash[[:space:]]+(sha256:[a-f0-9]{64}).*/\\1/p\')"',
      '[ -n "$token" ] || kha_die "no token in the output of kubeadm token create"',
      '[ -n "$ca_hash" ] || kha_die "no CA certificate hash in the output of kubeadm token create"',
      'kha_result JOIN-CREDENTIALS "{\\"token\\":\\"$token\\",\\"caCertHash\\":\\"$ca_hash\\",\\"certificateKey\\":\\"$cert_key\\"}"',
    ),
  });
}

function joinScript(c: ClusterSpec, n: NodeSpec, phase: string, template: RenderedFile): RenderedScript {
  const cp = n.role === 'control-plane';
  const secretEnv: string[] = [JOIN_ENV.token, JOIN_ENV.caCertHash, ...(cp ? [JOIN_ENV.certificateKey] : [])];
  const stateFile = cp ? ADMIN_CONF : KUBELET_CONF;
  return script({
    cluster: c.name,
    node: n.name,
    phase,
    name: 'join',
    step: true,
    secretEnv,
    summary: `Joins ${n.name} as a ${cp ? 'control-plane node' : 'worker'} unless it already belongs to this cluster.`,
    body: lines(
      `[[ "\${${JOIN_ENV.token}:-}" =~ ^[a-z0-9]{6}\\.[a-z0-9]{16}$ ]] || kha_die "${JOIN_ENV.token} is missing or malformed"`,
      `[[ "\${${JOIN_ENV.caCertHash}:-}" =~ ^sha256:[a-f0-9]{64}$ ]] || kha_die "${JOIN_ENV.caCertHash} is missing or malformed"`,
      cp ? `[[ "\${${JOIN_ENV.certificateKey}:-}" =~ ^[a-f0-9]{64}$ ]] || kha_die "${JOIN_ENV.certificateKey} is missing or malformed"` : null,
      endpointCheck(c),
      'local_ca_hash() {',
      '  openssl x509 -pubkey -noout -in /etc/kubernetes/pki/ca.crt |',
      '    openssl pkey -pubin -outform der | openssl dgst -sha256 -hex | sed \'s/^.* /sha256:/\'',
      '}',
      '# Part of this cluster when its CA matches; without openssl, when it points at our endpoint.',
      'same_cluster() {',
      '  local h=""',
      '  if [ -f /etc/kubernetes/pki/ca.crt ] && kha_have openssl; then h="$(local_ca_hash 2>/dev/null || true)"; fi',
      `  if [ -n "$h" ]; then [ "$h" = "\${${JOIN_ENV.caCertHash}}" ]; else belongs_here "$1"; fi`,
      '}',
      '',
      `if [ -f ${q(stateFile)} ]; then`,
      '  # kubeadm writes the kubeconfigs early: a join killed half-way (after adding its etcd member, say) leaves them.',
      '  once_rc=/var/lib/kha/once/kubeadm-join.rc',
      '  if [ -f "$once_rc" ] && [ "$(cat "$once_rc")" != 0 ]; then',
      '    kha_die "the last kubeadm join on this node failed half-way (exit $(cat "$once_rc")): the node needs a reset first"',
      '  fi',
      `  if ! same_cluster ${q(stateFile)}; then`,
      `    kha_die "this node already belongs to another cluster ($(kha_kubeconfig_server ${q(stateFile)})); reset it first"`,
      '  fi',
      cp
        ? lines(
            '  if [ ! -f /etc/kubernetes/manifests/kube-apiserver.yaml ]; then',
            '    kha_die "this node has admin.conf but no API server manifest: a broken earlier join; reset it first"',
            '  fi',
          )
        : null,
      '  kha_already "already joined to this cluster; kubeadm join skipped"',
      'else',
      cp
        ? lines(
            `  if [ -f ${q(KUBELET_CONF)} ]; then`,
            `    kha_die ${q(`${KUBELET_CONF} is left over from an earlier join attempt; reset this node first`)}`,
            '  fi',
          )
        : null,
      '  install -d -m 0700 /run/kha',
      '  old_umask="$(umask)"',
      '  umask 077',
      '  join_config="$(mktemp /run/kha/kubeadm-join.XXXXXX)"',
      '  umask "$old_umask"',
      '  trap \'rm -f -- "$join_config"\' EXIT',
      '  # Quoted heredoc: nothing in the template expands; only the secret placeholders are replaced, by bash',
      '  # itself (printf is a builtin, so the values are never on a command line).',
      `  join_yaml="$(cat <<'KHA_JOIN_EOF'`,
      template.content + 'KHA_JOIN_EOF',
      '  )"',
      ...secretEnv.flatMap((v) => [
        '  # shellcheck disable=SC2016 # the placeholder is literal text',
        `  pat=${q('${' + v + '}')}`,
        `  join_yaml=\${join_yaml//"$pat"/"\$${v}"}`,
      ]),
      `  printf '%s\\n' "$join_yaml" >"$join_config"`,
      `  kha_once kubeadm-join ${q(KUBELET_CONF)} kubeadm join --config "$join_config"`,
      '  # Configs of earlier attempts whose session died hold a token too.',
      '  rm -f -- /run/kha/kubeadm-join.*',
      'fi',
      cp ? lines('', '# kubectl for root on this node.', `kha_write_file ${q(ROOT_KUBECONFIG)} 600 <${q(ADMIN_CONF)}`) : null,
    ),
  });
}

function labelScript(c: ClusterSpec, n: NodeSpec, phase: string): RenderedScript {
  const label = labelCommands(n, ADMIN_CONF);
  return script({
    cluster: c.name,
    node: n.name,
    phase,
    name: 'label-node',
    runsOn: 'control-plane',
    summary: `Applies the spec's labels to node ${n.name} (admin rights: kubelet may not set every label itself).`,
    body: label
      ? lines(
          `node_known() { kubectl --kubeconfig ${q(ADMIN_CONF)} get node ${q(n.name)} >/dev/null 2>&1; }`,
          `kha_wait 300 ${q(`node ${n.name} registered`)} node_known`,
          label,
        )
      : `kha_log ${q(`no labels to set on ${n.name}`)}`,
  });
}

/** Shell defining `etcdctl_run ARGS...`: etcdctl on the host when installed, else in the etcd container. */
export function etcdctlFunction(): string {
  return lines(
    `etcd_tls=(--endpoints=https://127.0.0.1:2379 --cacert=${ETCD_PKI}/ca.crt --cert=${ETCD_PKI}/healthcheck-client.crt --key=${ETCD_PKI}/healthcheck-client.key)`,
    'etcdctl_run() {',
    '  if kha_have etcdctl; then',
    '    ETCDCTL_API=3 etcdctl "${etcd_tls[@]}" "$@"',
    '  else',
    '    local cid',
    "    cid=\"$(crictl ps --name '^etcd$' --state running -q 2>/dev/null | head -n 1)\"",
    '    [ -n "$cid" ] || return 1',
    '    crictl exec "$cid" etcdctl "${etcd_tls[@]}" "$@"',
    '  fi',
    '}',
  );
}

function etcdCheckScript(c: ClusterSpec, n: NodeSpec): RenderedScript {
  return script({
    cluster: c.name,
    node: n.name,
    phase: 'control-plane-join',
    name: 'etcd-check',
    runsOn: 'control-plane',
    summary: `Waits until etcd lists ${n.name}, every member is started and none is a learner.`,
    body: lines(
      etcdctlFunction(),
      `member=${q(n.name)}`,
      'members=""',
      'members_ok() {',
      '  members="$(etcdctl_run member list -w simple 2>/dev/null)" || return 1',
      '  # Columns: ID, STATUS, NAME, PEER ADDRS, CLIENT ADDRS, IS LEARNER',
      "  printf '%s\\n' \"$members\" | awk -F', ' -v want=\"$member\" '",
      '    NF >= 6 { n++; if ($2 != "started" || $6 != "false") bad = 1; if ($3 == want) found = 1 }',
      "    END { exit !(n > 0 && !bad && found) }'",
      '}',
      'if ! members_ok; then',
      '  kha_wait 300 "etcd members all started, no learner, $member listed" members_ok',
      'fi',
      'count="$(printf \'%s\\n\' "$members" | grep -c \', started, \')"',
      'kha_result ETCD "{\\"members\\":$count,\\"node\\":\\"$member\\"}"',
    ),
  });
}

export function renderControlPlaneJoin(c: ClusterSpec, n: NodeSpec, facts: RenderFacts): PhaseRender {
  const template = file(JOIN_CONFIG_TEMPLATE, joinConfigTemplate(c, n, facts), 0o600, 'template');
  return {
    phase: 'control-plane-join',
    node: n.name,
    files: [template],
    scripts: [
      mintScript(c, n, facts, 'control-plane-join'),
      joinScript(c, n, 'control-plane-join', template),
      labelScript(c, n, 'control-plane-join'),
      etcdCheckScript(c, n),
    ],
  };
}

export function renderWorkerJoin(c: ClusterSpec, n: NodeSpec, facts: RenderFacts): PhaseRender {
  const template = file(JOIN_CONFIG_TEMPLATE, joinConfigTemplate(c, n, facts), 0o600, 'template');
  return {
    phase: 'worker-join',
    node: n.name,
    files: [template],
    scripts: [mintScript(c, n, facts, 'worker-join'), joinScript(c, n, 'worker-join', template), labelScript(c, n, 'worker-join')],
  };
}
