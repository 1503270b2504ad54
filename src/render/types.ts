// What renderers produce. Renderers are pure: (cluster, node, facts) -> scripts and files.
// `kha plan` and the activities call the same functions, so the plan is what runs.

import type { RENDERERS } from './index';

/**
 * The rendered phases, the deployment's and the teardown's: the keys of RENDERERS (index.ts), one renderer
 * each; their order and where they run come from the phase lists in src/phases/.
 */
export type AnyPhaseName = keyof typeof RENDERERS;

/** A file a script writes on the host; listed separately so reviewers and golden tests can read it. */
export interface RenderedFile {
  path: string;
  content: string;
  mode: number;
  /**
   * Set when a script picks one of several contents for the same path at run time (e.g. the
   * containerd config for 2.x or 1.x), or when the file is a template filled from secret env
   * variables on the host. `kha plan` writes such a file as `<path>.<variant>`.
   */
  variant?: string;
}

/**
 * A self-contained bash script. It embeds the files it writes, starts with `set -euo pipefail`,
 * and is safe to run twice. Secrets never appear in it: a script that needs one reads it from the
 * environment variables named in `secretEnv`, which the activity supplies over the SSH channel.
 */
export interface RenderedScript {
  /** Short name, unique within the phase, e.g. "join", "mint-credentials", "switch-admin-conf". */
  name: string;
  /** Where it runs: on the node itself, or on a healthy control-plane node on the node's behalf. */
  runsOn: 'node' | 'control-plane';
  content: string;
  secretEnv: string[];
  /** Its output carries secrets (minted credentials): never stream, log or keep it in errors. */
  sensitiveOutput: boolean;
}

export interface PhaseRender {
  phase: AnyPhaseName;
  node: string;
  scripts: RenderedScript[];
  files: RenderedFile[];
}

/** Facts learned at deploy time (preflight) that renderers need. */
export interface RenderFacts {
  /** Full Kubernetes version, e.g. "v1.35.2". */
  kubernetesVersion: string;
  /** Debian package version for kubeadm/kubelet/kubectl, e.g. "1.35.2-1.1". */
  packageVersion: string;
}
