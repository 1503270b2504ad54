// Where packages, keys and manifests come from: plain http only where the file says insecure: true,
// the keys that sign the apt repositories pinned by fingerprint, the cri-dockerd package by checksum.
import type { Spec } from './types';

/** The key pkgs.k8s.io signs its repositories with (isv:kubernetes OBS Project). */
export const KUBERNETES_KEY_FINGERPRINT = 'DE15B14486CD377B9E876E1A234654DA9A296436';
/** Docker's release key for download.docker.com (Docker Release (CE deb)). */
export const DOCKER_KEY_FINGERPRINT = '9DC858229FC7DD38854AE2D88D81803C0EBFCD88';

/** 40 upper-case hex digits, as gpg --with-colons prints a fingerprint. */
export function normaliseFingerprint(f: string): string {
  return f.replace(/\s+/g, '').toUpperCase();
}

export function kubernetesKeyFingerprint(spec: Spec): string {
  return normaliseFingerprint(spec.packages.keyFingerprint ?? KUBERNETES_KEY_FINGERPRINT);
}

export function dockerKeyFingerprint(spec: Spec): string {
  return normaliseFingerprint(spec.containerRuntime.containerd.keyFingerprint ?? DOCKER_KEY_FINGERPRINT);
}

export interface SourceFinding {
  path: PropertyKey[];
  message: string;
}

const S = 'spec';

function plainHttp(url: string | undefined): boolean {
  return url !== undefined && /^http:\/\//i.test(url);
}

/** Plain http sources without insecure: true, and a docker runtime without the package checksum. */
export function sourceFindings(spec: Spec): SourceFinding[] {
  const out: SourceFinding[] = [];
  const rt = spec.containerRuntime;
  const usesDockerRepo = rt.type === 'docker' || rt.containerd.packageSource === 'docker';
  const cri = rt.type === 'docker' ? rt.criDockerd : undefined;
  const sources: Array<{ url: string | undefined; insecure: boolean | undefined; path: PropertyKey[]; flag: string }> = [
    { url: spec.packages.repository, insecure: spec.packages.insecure, path: [S, 'packages', 'repository'], flag: 'spec.packages.insecure' },
    { url: usesDockerRepo ? rt.containerd.dockerRepository : undefined, insecure: rt.containerd.insecure, path: [S, 'containerRuntime', 'containerd', 'dockerRepository'], flag: 'spec.containerRuntime.containerd.insecure' },
    { url: cri?.packageUrl, insecure: cri?.insecure, path: [S, 'containerRuntime', 'criDockerd', 'packageUrl'], flag: 'spec.containerRuntime.criDockerd.insecure' },
    { url: spec.networking.calico.manifestUrl, insecure: spec.networking.calico.insecure, path: [S, 'networking', 'calico', 'manifestUrl'], flag: 'spec.networking.calico.insecure' },
  ];
  for (const s of sources) {
    if (plainHttp(s.url) && s.insecure !== true) {
      out.push({ path: s.path, message: `plain http is refused: anyone on the path can replace what the nodes download from ${s.url}; use https, or set ${s.flag}: true for a mirror you trust` });
    }
  }
  if (cri?.enabled && !cri.sha256) {
    out.push({
      path: [S, 'containerRuntime', 'criDockerd'],
      message: 'sha256 is required: the SHA-256 of the cri-dockerd .deb the nodes download (sha256sum of the release file for their distribution and architecture); kha installs no unverified package',
    });
  }
  return out;
}
