// The executor's contract. It knows nothing about Kubernetes.
export type { NodeSshSettings as SshTarget } from '../spec/types';

export type OutputStream = 'stdout' | 'stderr';

export interface RunOptions {
  /**
   * Variables exported before the script runs. They travel inside the SSH channel (never on a
   * command line, so not visible in `ps`), which is how secrets reach a script.
   */
  env?: Record<string, string>;
  /** Called once per complete output line, as it arrives. */
  onLine?: (stream: OutputStream, line: string) => void;
  signal?: AbortSignal;
  /** Overrides the target's command timeout. */
  timeoutMs?: number;
  /** How many trailing lines of each stream to keep in the result (default 40). */
  tailLines?: number;
}

export interface RunResult {
  exitCode: number;
  stdoutTail: string;
  stderrTail: string;
  durationMs: number;
}

export type SshErrorKind =
  | 'Unreachable'
  | 'AuthFailed'
  | 'HostKeyMismatch'
  | 'HostKeyUnknown'
  | 'SudoPasswordRequired'
  | 'CommandFailed'
  | 'Timeout'
  | 'ConnectionLost'
  | 'Cancelled';
