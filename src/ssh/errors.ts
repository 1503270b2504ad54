// Typed errors of the SSH executor. The workflow maps them to retryable or not by `name` (the class
// name), so names are stable API. Every message starts with the host and the step that failed.
import type { SshErrorKind } from './types';

export abstract class SshError extends Error {
  abstract readonly kind: SshErrorKind;
  readonly host: string;
  readonly step: string;

  constructor(host: string, step: string, detail: string, options?: { cause?: unknown }) {
    super(`${host}: ${step}: ${detail}`, options);
    this.host = host;
    this.step = step;
    this.name = new.target.name;
  }
}

/** TCP connection refused, no route, DNS failure or no answer at all within the connect timeout. */
export class UnreachableError extends SshError {
  readonly kind = 'Unreachable' as const;
}

export class AuthFailedError extends SshError {
  readonly kind = 'AuthFailed' as const;
}

export class HostKeyMismatchError extends SshError {
  readonly kind = 'HostKeyMismatch' as const;
  constructor(
    host: string,
    step: string,
    detail: string,
    readonly expected: string[],
    readonly actual: string,
  ) {
    super(host, step, detail);
  }
}

export class HostKeyUnknownError extends SshError {
  readonly kind = 'HostKeyUnknown' as const;
  constructor(host: string, step: string, detail: string, readonly actual: string) {
    super(host, step, detail);
  }
}

export class SudoPasswordRequiredError extends SshError {
  readonly kind = 'SudoPasswordRequired' as const;
}

export class CommandFailedError extends SshError {
  readonly kind = 'CommandFailed' as const;
  constructor(
    host: string,
    step: string,
    readonly exitCode: number,
    readonly stderrTail: string,
    readonly stdoutTail = '',
  ) {
    super(host, step, `exited with code ${exitCode}${stderrTail ? `; stderr ends with:\n${stderrTail}` : ''}`);
  }
}

export class TimeoutError extends SshError {
  readonly kind = 'Timeout' as const;
  constructor(host: string, step: string, detail: string, readonly timeoutMs: number) {
    super(host, step, detail);
  }
}

export class ConnectionLostError extends SshError {
  readonly kind = 'ConnectionLost' as const;
}

export class CancelledError extends SshError {
  readonly kind = 'Cancelled' as const;
}

/** The kinds of error worth retrying as they are: the network or the host may come back. The one list of them. */
export const TRANSIENT_KINDS: readonly string[] = ['Unreachable', 'Timeout', 'ConnectionLost'] satisfies SshErrorKind[];

export function isTransient(err: unknown): boolean {
  return err instanceof SshError && TRANSIENT_KINDS.includes(err.kind);
}

