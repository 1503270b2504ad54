// Container runtime: containerd (distro or Docker's repo) with the CRI config kubeadm needs,
// or Docker Engine with cri-dockerd. The containerd config version follows the installed major.
import type { ClusterSpec, NodeSpec } from '../spec/types';
import { criSocket, pauseImage } from './common';
import { dockerKeyFingerprint } from '../spec/sources';
import { APT_LIB, file, lines, q, script, writeFile } from './shell';
import type { PhaseRender, RenderFacts, RenderedFile } from './types';

export const CONTAINERD_CONFIG = '/etc/containerd/config.toml';
export const CERTS_DIR = '/etc/containerd/certs.d';
export const CRICTL_CONFIG = '/etc/crictl.yaml';
export const DOCKER_DAEMON_JSON = '/etc/docker/daemon.json';
export const CRI_DOCKERD_DROPIN = '/etc/systemd/system/cri-docker.service.d/10-kha.conf';
export const DOCKER_KEYRING = '/etc/apt/keyrings/docker.asc';
export const DOCKER_SOURCES = '/etc/apt/sources.list.d/docker.list';

/** containerd 2.x: config version 3, CRI split into images and runtime plugins. */
export function containerdConfigV3(c: ClusterSpec, facts: RenderFacts): string {
  return [
    '# containerd 2.x configuration (kha). Unset keys keep containerd defaults.',
    'version = 3',
    '',
    "[plugins.'io.containerd.cri.v1.images'.pinned_images]",
    `  sandbox = '${pauseImage(c, facts)}'`,
    '',
    "[plugins.'io.containerd.cri.v1.images'.registry]",
    `  config_path = '${CERTS_DIR}'`,
    '',
    "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]",
    "  runtime_type = 'io.containerd.runc.v2'",
    '',
    "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]",
    '  SystemdCgroup = true',
  ].join('\n');
}

/** containerd 1.6/1.7: config version 2, everything under the grpc CRI plugin. */
export function containerdConfigV2(c: ClusterSpec, facts: RenderFacts): string {
  return [
    '# containerd 1.x configuration (kha). Unset keys keep containerd defaults.',
    'version = 2',
    '',
    '[plugins."io.containerd.grpc.v1.cri"]',
    `  sandbox_image = "${pauseImage(c, facts)}"`,
    '',
    '[plugins."io.containerd.grpc.v1.cri".registry]',
    `  config_path = "${CERTS_DIR}"`,
    '',
    '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
    '  runtime_type = "io.containerd.runc.v2"',
    '',
    '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
    '  SystemdCgroup = true',
  ].join('\n');
}

/** The upstream server of a registry name as containerd's hosts.toml names it. */
export function registryServer(registry: string): string {
  return registry === 'docker.io' ? 'https://registry-1.docker.io' : `https://${registry}`;
}

export function hostsToml(registry: string, endpoints: string[]): string {
  const out = [`# Mirrors for ${registry} (kha); tried in order, then the registry itself.`, `server = "${registryServer(registry)}"`];
  for (const e of endpoints) out.push('', `[host."${e}"]`, '  capabilities = ["pull", "resolve"]');
  return out.join('\n');
}

function aptRepoSetup(c: ClusterSpec): string {
  const repo = c.spec.containerRuntime.containerd.dockerRepository;
  return lines(
    '# Docker\'s apt repository for this distribution; only the pinned key is taken.',
    'apt_install ca-certificates curl gpg',
    'os_id="$(sed -n \'s/^ID=//p\' /etc/os-release | tr -d "\\"\'")"',
    'os_codename="$(sed -n \'s/^VERSION_CODENAME=//p\' /etc/os-release | tr -d "\\"\'")"',
    'deb_arch="$(dpkg --print-architecture)"',
    `docker_repo=${q(repo)}`,
    `docker_fpr=${q(dockerKeyFingerprint(c.spec))}`,
    `if [ ! -s ${q(DOCKER_KEYRING)} ] || ! kha_key_pinned ${q(DOCKER_KEYRING)} "$docker_fpr"; then`,
    '  install -d -m 0755 /etc/apt/keyrings',
    `  kha_fetch_key "$docker_repo/$os_id/gpg" ${q(DOCKER_KEYRING + '.tmp')} "$docker_fpr" spec.containerRuntime.containerd.keyFingerprint`,
    `  chmod 0644 ${q(DOCKER_KEYRING + '.tmp')}`,
    `  mv -f ${q(DOCKER_KEYRING + '.tmp')} ${q(DOCKER_KEYRING)}`,
    'fi',
    `printf 'deb [arch=%s signed-by=%s] %s/%s %s stable\\n' "$deb_arch" ${q(DOCKER_KEYRING)} "$docker_repo" "$os_id" "$os_codename" |`,
    `  kha_write_file ${q(DOCKER_SOURCES)} 644`,
    'if kha_changed; then apt_updated=0; fi',
  );
}


function mirrorFiles(c: ClusterSpec): RenderedFile[] {
  return c.spec.containerRuntime.registryMirrors.map((m) => file(`${CERTS_DIR}/${m.registry}/hosts.toml`, hostsToml(m.registry, m.endpoints)));
}

function crictlFile(c: ClusterSpec): RenderedFile {
  const sock = criSocket(c);
  return file(CRICTL_CONFIG, [`runtime-endpoint: ${sock}`, `image-endpoint: ${sock}`, 'timeout: 10'].join('\n'));
}

function renderContainerd(c: ClusterSpec, n: NodeSpec, facts: RenderFacts): PhaseRender {
  const rt = c.spec.containerRuntime.containerd;
  const pinned = rt.configVersion;
  const v3 = file(CONTAINERD_CONFIG, containerdConfigV3(c, facts), 0o644, pinned ? undefined : 'containerd-2.x');
  const v2 = file(CONTAINERD_CONFIG, containerdConfigV2(c, facts), 0o644, pinned ? undefined : 'containerd-1.x');
  const configs = pinned === 3 ? [v3] : pinned === 2 ? [v2] : [v3, v2];
  const mirrors = mirrorFiles(c);
  const crictl = crictlFile(c);

  const chooseConfig =
    pinned !== undefined
      ? lines(`# Config version ${pinned} is pinned in the spec.`, writeFile(pinned === 3 ? v3 : v2), 'if kha_changed; then restart=1; fi')
      : lines(
          '# The config version follows the installed major: 3 for containerd 2.x, 2 for 1.6/1.7.',
          'containerd_version="$(containerd --version | awk \'{ print $3 }\')"',
          'case "${containerd_version#v}" in',
          '  1.*)',
          writeFile(v2),
          '    ;;',
          '  *)',
          writeFile(v3),
          '    ;;',
          'esac',
          'if kha_changed; then restart=1; fi',
        );

  const body = lines(
    APT_LIB,
    '',
    rt.packageSource === 'docker'
      ? lines(aptRepoSetup(c), 'apt_install containerd.io')
      : lines('# containerd from the distribution.', 'apt_install containerd'),
    '',
    'restart=0',
    chooseConfig,
    '',
    `# Registry mirrors: one hosts.toml per registry under ${CERTS_DIR}.`,
    `install -d -m 0755 ${q(CERTS_DIR)}`,
    ...mirrors.map((f) => lines(writeFile(f), 'if kha_changed; then restart=1; fi')),
    '',
    writeFile(crictl),
    '',
    'systemctl enable containerd >/dev/null 2>&1 || true',
    'if [ "$restart" = 1 ] || ! systemctl is-active --quiet containerd; then',
    '  systemctl restart containerd',
    'fi',
    'containerd_up() { systemctl is-active --quiet containerd && test -S /var/run/containerd/containerd.sock; }',
    'kha_wait 60 "containerd and its socket" containerd_up',
    'kha_log "containerd $(containerd --version | awk \'{ print $3 }\') ready"',
  );
  return {
    phase: 'container-runtime',
    node: n.name,
    files: [...configs, ...mirrors, crictl],
    scripts: [
      script({
        step: true,
        cluster: c.name,
        node: n.name,
        phase: 'container-runtime',
        name: 'container-runtime',
        summary: 'Installs containerd and writes its CRI config (systemd cgroups, pause image, registry mirrors).',
        body,
        apt: true,
      }),
    ],
  };
}

function renderDocker(c: ClusterSpec, n: NodeSpec, facts: RenderFacts): PhaseRender {
  const cri = c.spec.containerRuntime.criDockerd ?? { enabled: true, version: 'v0.3.21' };
  const dockerMirrors = c.spec.containerRuntime.registryMirrors.filter((m) => m.registry === 'docker.io').flatMap((m) => m.endpoints);
  const daemon = file(
    DOCKER_DAEMON_JSON,
    JSON.stringify(
      {
        'exec-opts': ['native.cgroupdriver=systemd'],
        'log-driver': 'json-file',
        'log-opts': { 'max-size': '100m' },
        ...(dockerMirrors.length ? { 'registry-mirrors': dockerMirrors } : {}),
      },
      null,
      2,
    ),
  );
  const dropin = file(
    CRI_DOCKERD_DROPIN,
    [
      '# cri-dockerd with the pause image of this Kubernetes version (kha).',
      '[Service]',
      'ExecStart=',
      `ExecStart=/usr/bin/cri-dockerd --container-runtime-endpoint fd:// --pod-infra-container-image=${pauseImage(c, facts)}`,
    ].join('\n'),
  );
  const crictl = crictlFile(c);
  const version = cri.version.replace(/^v/, '');
  const body = lines(
    APT_LIB,
    '',
    aptRepoSetup(c),
    'apt_install docker-ce docker-ce-cli containerd.io',
    '',
    'restart_docker=0',
    writeFile(daemon),
    'if kha_changed; then restart_docker=1; fi',
    'systemctl enable docker >/dev/null 2>&1 || true',
    'if [ "$restart_docker" = 1 ] || ! systemctl is-active --quiet docker; then',
    '  systemctl restart docker',
    'fi',
    '',
    '# cri-dockerd: the CRI shim kubelet talks to since dockershim was removed (1.24).',
    `cri_version=${q(version)}`,
    'if ! kha_have cri-dockerd || [ "$(cri-dockerd --version 2>&1 | awk \'{ print $2 }\')" != "$cri_version" ]; then',
    cri.packageUrl
      ? `  cri_url=${q(cri.packageUrl)}`
      : lines(
          '  # Release packages are named after the distribution and its codename.',
          '  cri_url="https://github.com/Mirantis/cri-dockerd/releases/download/v$cri_version/cri-dockerd_$cri_version.3-0.$os_id-${os_codename}_$deb_arch.deb"',
        ),
    `  cri_sha256=${q(cri.sha256 ?? '')}`,
    '  tmp_deb="$(mktemp --suffix=.deb)"',
    '  curl -fsSL "$cri_url" -o "$tmp_deb"',
    '  got_sha256="$(sha256sum "$tmp_deb" | awk \'{ print $1 }\')"',
    '  if [ -z "$cri_sha256" ] || [ "$got_sha256" != "$cri_sha256" ]; then',
    '    rm -f -- "$tmp_deb"',
    '    kha_die "the cri-dockerd package from $cri_url has SHA-256 $got_sha256, not ${cri_sha256:-(none given)} (spec.containerRuntime.criDockerd.sha256); refusing to install it"',
    '  fi',
    '  kha_apt install -y -q "$tmp_deb"',
    '  rm -f "$tmp_deb"',
    'fi',
    'restart_cri=0',
    writeFile(dropin),
    'if kha_changed; then',
    '  systemctl daemon-reload',
    '  restart_cri=1',
    'fi',
    'systemctl enable cri-docker.socket cri-docker.service >/dev/null 2>&1 || true',
    'if [ "$restart_cri" = 1 ] || ! systemctl is-active --quiet cri-docker.service; then',
    '  systemctl restart cri-docker.socket cri-docker.service',
    'fi',
    writeFile(crictl),
    'cri_up() { systemctl is-active --quiet cri-docker.service && test -S /var/run/cri-dockerd.sock; }',
    'kha_wait 60 "cri-dockerd and its socket" cri_up',
  );
  return {
    phase: 'container-runtime',
    node: n.name,
    files: [daemon, dropin, crictl],
    scripts: [
      script({
        step: true,
        cluster: c.name,
        node: n.name,
        phase: 'container-runtime',
        name: 'container-runtime',
        summary: 'Installs Docker Engine and cri-dockerd with systemd cgroups and the pause image.',
        body,
        apt: true,
      }),
    ],
  };
}

export function renderContainerRuntime(c: ClusterSpec, n: NodeSpec, facts: RenderFacts): PhaseRender {
  return c.spec.containerRuntime.type === 'docker' ? renderDocker(c, n, facts) : renderContainerd(c, n, facts);
}
