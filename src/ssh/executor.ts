// Runs scripts and file operations on one host over SSH (ssh2). Knows nothing about Kubernetes.
import * as fs from 'node:fs';
import { sleep } from '../util/sleep';
import { constants as osConstants } from 'node:os';
import type { Duplex } from 'node:stream';
import { Client, type AuthenticationType, type ClientChannel, type ConnectConfig } from 'ssh2';
import {
  AuthFailedError,
  CancelledError,
  CommandFailedError,
  ConnectionLostError,
  SshError,
  SudoPasswordRequiredError,
  TimeoutError,
  UnreachableError,
  isTransient,
} from './errors';
import { prepareHostKeyCheck, type HostKeyCheck } from './hostkeys';
import { expandHome } from './paths';
import {
  LineSplitter,
  READY_MARKER,
  Redactor,
  Tail,
  WRITE_FILE_SCRIPT,
  runCommand,
  runPayload,
  shq,
  sudoPrefix,
  sudoWantsPassword,
} from './remote';
import type { OutputStream, RunOptions, RunResult, SshTarget } from './types';

export interface ConnectOptions {
  signal?: AbortSignal;
  /** SSH keepalive interval (default 5000 ms); the connection counts as lost after `keepaliveCountMax` misses (default 3). */
  keepaliveIntervalMs?: number;
  keepaliveCountMax?: number;
  /** false: under accept-new, a host key seen for the first time is accepted but not recorded (kha doctor). */
  recordNewHostKeys?: boolean;
}

export interface RebootOptions {
  /** Total time for issuing the reboot, the drop and the host coming back with a new boot id. */
  deadlineMs: number;
  /** Pause between reconnect attempts (default 1000 ms). */
  pollMs?: number;
  signal?: AbortSignal;
}

/** How long a cancelled or timed-out command gets to end on the host (TERM, then KILL after 3 s). */
const STOP_GRACE_MS = 6000;
const DEFAULT_TAIL_LINES = 40;
const SUPPORTED_HOST_KEY_ALGOS = new Set([
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
]);

type BastionSettings = NonNullable<SshTarget['bastion']>;

/** One live SSH connection (plus the bastion connection it runs through, if any). */
class Connection {
  closed = false;
  reason: Error | undefined;
  private readonly waiters: Array<() => void> = [];

  constructor(
    readonly client: Client,
    readonly bastion: Client | undefined,
  ) {
    const onGone = (): void => this.markGone();
    for (const c of [client, bastion]) {
      if (!c) continue;
      c.on('error', (e: Error) => (this.reason ??= e));
      c.on('end', onGone);
      c.on('close', onGone);
    }
  }

  onClosed(fn: () => void): () => void {
    if (this.closed) {
      fn();
      return () => undefined;
    }
    this.waiters.push(fn);
    return () => {
      const i = this.waiters.indexOf(fn);
      if (i >= 0) this.waiters.splice(i, 1);
    };
  }

  private markGone(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.waiters.splice(0)) w();
  }

  end(): void {
    this.markGone();
    this.client.end();
    this.bastion?.end();
  }
}

/** Secrets are read only from KHA_ variables: a target naming TEMPORAL_API_KEY must not send it to a host. */
export const SECRET_ENV_PREFIX = 'KHA_';

function readSecretEnv(host: string, step: string, name: string, what: string): string {
  if (!name.startsWith(SECRET_ENV_PREFIX) || !/^[A-Z0-9_]+$/.test(name)) {
    throw new AuthFailedError(host, step, `${what} environment variable ${name} does not start with ${SECRET_ENV_PREFIX}; only KHA_ variables are read as secrets`);
  }
  const v = process.env[name];
  if (v === undefined || v === '') throw new AuthFailedError(host, step, `${what} environment variable ${name} is not set`);
  return v;
}

interface AuthSettings {
  user: string;
  privateKeyPath?: string;
}

function authConfig(target: SshTarget, who: AuthSettings, step: string): Partial<ConnectConfig> & { methods: AuthenticationType[] } {
  const cfg: Partial<ConnectConfig> & { methods: AuthenticationType[] } = { username: who.user, methods: [] };
  if (who.privateKeyPath) {
    const keyPath = expandHome(who.privateKeyPath);
    try {
      cfg.privateKey = fs.readFileSync(keyPath);
    } catch (e) {
      const shown = keyPath === who.privateKeyPath ? keyPath : `${who.privateKeyPath} (${keyPath})`;
      throw new AuthFailedError(target.host, step, `cannot read private key ${shown}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    if (target.passphraseEnv) cfg.passphrase = readSecretEnv(target.host, step, target.passphraseEnv, 'passphrase');
    cfg.methods.push('publickey');
  }
  if (target.useAgent) {
    const sock = process.env.SSH_AUTH_SOCK;
    if (!sock) throw new AuthFailedError(target.host, step, 'useAgent is set but SSH_AUTH_SOCK is not');
    cfg.agent = sock;
    cfg.methods.push('agent');
  }
  if (target.passwordEnv) {
    cfg.password = readSecretEnv(target.host, step, target.passwordEnv, 'password');
    cfg.methods.push('password');
  }
  if (cfg.methods.length === 0)
    throw new AuthFailedError(target.host, step, 'no authentication method configured (privateKeyPath, useAgent or passwordEnv)');
  return cfg;
}

interface OpenParams {
  host: string; // node name for errors
  step: string;
  address: string;
  port: number;
  auth: Partial<ConnectConfig> & { methods: AuthenticationType[] };
  check: HostKeyCheck;
  sock?: Duplex;
  timeoutMs: number;
  keepaliveIntervalMs: number;
  keepaliveCountMax: number;
  signal?: AbortSignal;
}

const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL']);

function openClient(p: OpenParams): Promise<Client> {
  return new Promise((resolve, reject) => {
    if (p.signal?.aborted) return reject(new CancelledError(p.host, p.step, 'cancelled before connecting'));
    const verifier = prepareHostKeyCheck(p.check, `${p.step}: host key check`);
    const client = new Client();
    let tcpConnected = p.sock !== undefined;
    let settled = false;
    const where = `${p.address}:${p.port}`;
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      p.signal?.removeEventListener('abort', onAbort);
      if (err) {
        client.destroy();
        reject(err);
      } else resolve(client);
    };
    const onAbort = (): void => finish(new CancelledError(p.host, p.step, `cancelled while connecting to ${where}`));
    const timer = setTimeout(() => {
      finish(
        tcpConnected
          ? new TimeoutError(p.host, p.step, `SSH handshake with ${where} did not finish within ${p.timeoutMs} ms`, p.timeoutMs)
          : new UnreachableError(p.host, p.step, `no answer from ${where} within ${p.timeoutMs} ms`),
      );
    }, p.timeoutMs);
    p.signal?.addEventListener('abort', onAbort, { once: true });

    client.on('connect', () => (tcpConnected = true));
    client.on('ready', () => finish());
    client.on('error', (e: Error & { level?: string; code?: string }) => {
      const hk = verifier.failure();
      if (hk) return finish(hk);
      if (e.level === 'client-authentication')
        return finish(new AuthFailedError(p.host, p.step, `${where} refused user ${p.auth.username} (tried ${p.auth.methods.join(', ')})`));
      const detail = `${where}: ${e.message}`;
      if (e.level === 'client-dns' || (e.code && UNREACHABLE_CODES.has(e.code)) || !tcpConnected)
        return finish(new UnreachableError(p.host, p.step, detail));
      finish(new ConnectionLostError(p.host, p.step, `connection lost during the SSH handshake with ${detail}`));
    });
    client.on('close', () =>
      finish(
        tcpConnected
          ? new ConnectionLostError(p.host, p.step, `${where} closed the connection during the SSH handshake`)
          : new UnreachableError(p.host, p.step, `cannot connect to ${where}`),
      ),
    );

    const serverHostKey = [
      ...verifier.preferredAlgorithms.filter((a) => SUPPORTED_HOST_KEY_ALGOS.has(a)),
      ...SUPPORTED_HOST_KEY_ALGOS,
    ].filter((a, i, all) => all.indexOf(a) === i);
    const { methods, ...auth } = p.auth;
    try {
      client.connect({
        ...auth,
        host: p.address,
        port: p.port,
        sock: p.sock,
        authHandler: methods,
        hostVerifier: verifier.verify,
        algorithms: { serverHostKey: serverHostKey as NonNullable<ConnectConfig['algorithms']>['serverHostKey'] },
        readyTimeout: 0,
        keepaliveInterval: p.keepaliveIntervalMs,
        keepaliveCountMax: p.keepaliveCountMax,
      });
    } catch (e) {
      // ssh2 throws synchronously for keys it cannot parse or decrypt.
      finish(new AuthFailedError(p.host, p.step, `cannot use the private key: ${(e as Error).message}`));
    }
  });
}

function forwardThrough(bastion: Client, target: SshTarget, step: string, timeoutMs: number): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new UnreachableError(target.host, step, `bastion could not reach ${target.address}:${target.port} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    bastion.forwardOut('127.0.0.1', 0, target.address, target.port, (err, stream) => {
      clearTimeout(timer);
      if (err) reject(new UnreachableError(target.host, step, `bastion could not reach ${target.address}:${target.port}: ${err.message}`));
      else resolve(stream);
    });
  });
}

async function openConnection(target: SshTarget, opts: ConnectOptions, timeoutMs = target.connectTimeoutMs): Promise<Connection> {
  const common = {
    host: target.host,
    timeoutMs,
    keepaliveIntervalMs: opts.keepaliveIntervalMs ?? 5000,
    keepaliveCountMax: opts.keepaliveCountMax ?? 3,
    signal: opts.signal,
  };
  const policy = { policy: target.knownHosts.policy, file: target.knownHosts.file, record: opts.recordNewHostKeys };
  let bastion: Client | undefined;
  let sock: Duplex | undefined;
  if (target.bastion) {
    const b = target.bastion as BastionSettings;
    const step = `connect to bastion ${b.address}:${b.port}`;
    bastion = await openClient({
      ...common,
      step,
      address: b.address,
      port: b.port,
      auth: authConfig(target, b, step),
      check: { ...policy, host: target.host, who: `bastion ${b.address}`, address: b.address, port: b.port, fingerprints: b.fingerprints ?? [] },
    });
    try {
      sock = await forwardThrough(bastion, target, `connect via bastion ${b.address}`, timeoutMs);
    } catch (e) {
      bastion.end();
      throw e;
    }
  }
  const step = bastion ? `connect via bastion ${target.bastion?.address}` : 'connect';
  try {
    const client = await openClient({
      ...common,
      step,
      address: target.address,
      port: target.port,
      sock,
      auth: authConfig(target, target, step),
      check: { ...policy, host: target.host, address: target.address, port: target.port, aliases: [target.host], fingerprints: target.knownHosts.fingerprints },
    });
    return new Connection(client, bastion);
  } catch (e) {
    bastion?.end();
    throw e;
  }
}

function signalExitCode(signal: string | undefined): number {
  const n = signal ? (osConstants.signals as Record<string, number>)[`SIG${signal}`] : undefined;
  return 128 + (n ?? 0);
}

interface ChannelRun {
  step: string;
  command: string;
  stdin?: Buffer;
  /** Leave stdin open after the payload (the wrapper's lifeline). */
  lifeline?: boolean;
  /** Collect stdout as bytes instead of splitting it into lines. */
  rawStdout?: boolean;
  /** Expect the wrapper's ready line first; lines before it are dropped. */
  wrapper?: boolean;
  opts: RunOptions;
}

interface ChannelResult extends RunResult {
  stdout: Buffer;
  started: boolean;
}

export class SshSession {
  private closedByUs = false;

  private constructor(
    readonly target: SshTarget,
    private conn: Connection,
    private readonly connectOpts: ConnectOptions,
  ) {}

  static async connect(target: SshTarget, opts: ConnectOptions = {}): Promise<SshSession> {
    const conn = await openConnection(target, opts);
    // The signal only governs connecting; later calls take their own.
    return new SshSession(target, conn, { ...opts, signal: undefined });
  }

  /** False once the connection is closed or lost. */
  isAlive(): boolean {
    return !this.closedByUs && !this.conn.closed;
  }

  get host(): string {
    return this.target.host;
  }

  /** Whether commands go through `sudo -n` (non-root user and sudo not 'never', or sudo 'always'). */
  get usesSudo(): boolean {
    if (this.target.sudo === 'never') return false;
    return this.target.sudo === 'always' || this.target.user !== 'root';
  }

  /** Runs a bash script (sent over stdin, env exported inside the channel). Non-zero exit is a result, not an error. */
  async runScript(script: string, opts: RunOptions = {}): Promise<RunResult> {
    return this.runWrapped('run script', script, opts);
  }

  /** Like runScript, but a non-zero exit throws CommandFailedError. */
  async runScriptChecked(script: string, opts: RunOptions = {}): Promise<RunResult> {
    return this.checked('run script', await this.runScript(script, opts));
  }

  /** Runs one command line the same way as a script (sudo, env, streaming, cancellation). */
  async exec(cmd: string, opts: RunOptions = {}): Promise<RunResult> {
    return this.runWrapped(`exec ${firstWord(cmd)}`, cmd, opts);
  }

  async execChecked(cmd: string, opts: RunOptions = {}): Promise<RunResult> {
    return this.checked(`exec ${firstWord(cmd)}`, await this.exec(cmd, opts));
  }

  async readFile(path: string, opts: Pick<RunOptions, 'signal' | 'timeoutMs'> = {}): Promise<Buffer> {
    const step = `read ${path}`;
    const r = await this.runChannel({ step, command: `${sudoPrefix(this.usesSudo)}cat -- ${shq(path)}`, rawStdout: true, opts });
    this.checked(step, r);
    return r.stdout;
  }

  /** Replaces a file atomically (temp file + rename), creating parent directories; owned by root when sudo is used. */
  async writeFile(path: string, data: Buffer | string, mode = 0o644, opts: Pick<RunOptions, 'signal' | 'timeoutMs'> = {}): Promise<void> {
    const step = `write ${path}`;
    const m = (mode & 0o7777).toString(8).padStart(4, '0');
    const command = `${sudoPrefix(this.usesSudo)}sh -c ${shq(WRITE_FILE_SCRIPT)} kha-write ${shq(path)} ${m}`;
    const stdin = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    this.checked(step, await this.runChannel({ step, command, stdin, opts }));
  }

  /** Runs `true` (through `sudo -n` when commands use sudo) without the script wrapper: proves login and sudo, writes nothing. */
  async probe(opts: Pick<RunOptions, 'signal' | 'timeoutMs'> = {}): Promise<void> {
    const step = this.usesSudo ? 'probe sudo' : 'probe';
    this.checked(step, await this.runChannel({ step, command: `${sudoPrefix(this.usesSudo)}true`, opts }));
  }

  /** The host's current boot id (/proc/sys/kernel/random/boot_id). */
  async bootId(opts: Pick<RunOptions, 'signal' | 'timeoutMs'> = {}): Promise<string> {
    const step = 'read boot id';
    const r = await this.runChannel({ step, command: 'cat /proc/sys/kernel/random/boot_id', rawStdout: true, opts });
    this.checked(step, r);
    const id = r.stdout.toString('utf8').trim();
    if (!/^[0-9a-f-]{36}$/.test(id)) throw new CommandFailedError(this.host, step, r.exitCode, `unexpected boot id ${JSON.stringify(id.slice(0, 80))}`);
    return id;
  }

  /**
   * Reboots the host and waits until it answers SSH again with a new boot id. Afterwards this session
   * uses the new connection.
   */
  async reboot(opts: RebootOptions): Promise<{ before: string; after: string }> {
    const started = Date.now();
    const left = (): number => opts.deadlineMs - (Date.now() - started);
    const step = 'reboot';
    const before = await this.bootId({ signal: opts.signal, timeoutMs: Math.max(1, left()) });
    const conn = this.conn;
    const dropped = new Promise<void>((resolve) => conn.onClosed(resolve));
    // Detached with a short delay so the command itself returns cleanly before the host goes down.
    const issue = `${sudoPrefix(this.usesSudo)}sh -c ${shq('nohup sh -c "sleep 1; reboot" </dev/null >/dev/null 2>&1 &')}`;
    try {
      this.checked(step, await this.runChannel({ step, command: issue, opts: { signal: opts.signal, timeoutMs: Math.max(1, left()) } }));
    } catch (e) {
      // A host that goes down before it reports the exit status has done what was asked.
      if (!(e instanceof ConnectionLostError)) throw e;
    }

    await this.waitFor(dropped, left(), opts.signal, step, 'the connection did not drop after reboot was issued');
    conn.end();

    const pollMs = opts.pollMs ?? 1000;
    let last: unknown;
    while (left() > 0) {
      if (opts.signal?.aborted) throw new CancelledError(this.host, step, 'cancelled while waiting for the host to come back');
      try {
        const next = await openConnection(this.target, { ...this.connectOpts, signal: opts.signal }, Math.max(1, Math.min(this.target.connectTimeoutMs, left())));
        const probe = new SshSession(this.target, next, this.connectOpts);
        let after: string;
        try {
          after = await probe.bootId({ signal: opts.signal, timeoutMs: Math.max(1, left()) });
        } catch (e) {
          next.end();
          throw e;
        }
        if (after !== before) {
          this.conn = next;
          if (this.closedByUs) next.end();
          return { before, after };
        }
        next.end();
        last = new Error('boot id unchanged');
      } catch (e) {
        if (!isTransient(e)) throw e;
        last = e;
      }
      await sleep(Math.min(pollMs, Math.max(0, left())), opts.signal);
    }
    throw new TimeoutError(
      this.host,
      step,
      `host did not come back with a new boot id within ${opts.deadlineMs} ms (last: ${last instanceof Error ? last.message : String(last)})`,
      opts.deadlineMs,
    );
  }

  close(): void {
    this.closedByUs = true;
    this.conn.end();
  }

  private checked<R extends RunResult>(step: string, r: R): R {
    if (r.exitCode !== 0) throw new CommandFailedError(this.host, step, r.exitCode, r.stderrTail, r.stdoutTail);
    return r;
  }

  private async runWrapped(step: string, script: string, opts: RunOptions): Promise<RunResult> {
    const r = await this.runChannel({
      step,
      command: runCommand(this.usesSudo),
      stdin: runPayload(script, opts.env),
      lifeline: true,
      wrapper: true,
      opts,
    });
    if (!r.started) throw new CommandFailedError(this.host, `${step}: start`, r.exitCode, r.stderrTail);
    const { stdout: _stdout, started: _started, ...result } = r;
    return result;
  }

  private waitFor(p: Promise<void>, ms: number, signal: AbortSignal | undefined, step: string, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = (err?: Error): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      const onAbort = (): void => done(new CancelledError(this.host, step, 'cancelled'));
      const timer = setTimeout(() => done(new TimeoutError(this.host, step, `${what} within ${ms} ms`, ms)), Math.max(0, ms));
      signal?.addEventListener('abort', onAbort, { once: true });
      p.then(() => done());
    });
  }

  private runChannel(run: ChannelRun): Promise<ChannelResult> {
    const { step, opts } = run;
    const host = this.host;
    const conn = this.conn;
    const started = Date.now();
    const tailLines = opts.tailLines ?? DEFAULT_TAIL_LINES;
    const redactor = new Redactor(opts.env);
    const timeoutMs = opts.timeoutMs ?? this.target.commandTimeoutMs;

    return new Promise<ChannelResult>((resolve, reject) => {
      if (opts.signal?.aborted) return reject(new CancelledError(host, step, 'cancelled before it started'));
      if (this.closedByUs) return reject(new ConnectionLostError(host, step, 'session is closed'));
      if (conn.closed) return reject(new ConnectionLostError(host, step, `connection is gone${conn.reason ? ` (${conn.reason.message})` : ''}`));

      const tails: Record<OutputStream, Tail> = { stdout: new Tail(tailLines), stderr: new Tail(tailLines) };
      const stdoutChunks: Buffer[] = [];
      let ready = !run.wrapper;
      let exitCode: number | undefined;
      let stopError: SshError | undefined;
      let settled = false;
      let channel: ClientChannel | undefined;
      let graceTimer: NodeJS.Timeout | undefined;

      const emit = (stream: OutputStream, raw: string): void => {
        if (stream === 'stdout' && !ready) {
          if (raw === READY_MARKER) ready = true;
          return;
        }
        const line = redactor.apply(raw);
        tails[stream].push(line);
        opts.onLine?.(stream, line);
      };
      const splitters = {
        stdout: new LineSplitter((l) => emit('stdout', l)),
        stderr: new LineSplitter((l) => emit('stderr', l)),
      };

      const finish = (err?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        clearTimeout(graceTimer);
        unwatch();
        opts.signal?.removeEventListener('abort', onAbort);
        if (err) return reject(err);
        splitters.stdout.end();
        splitters.stderr.end();
        const result: ChannelResult = {
          exitCode: exitCode ?? -1,
          stdoutTail: tails.stdout.toString(),
          stderrTail: tails.stderr.toString(),
          durationMs: Date.now() - started,
          stdout: Buffer.concat(stdoutChunks),
          started: ready,
        };
        if (this.usesSudo && result.exitCode !== 0 && (!ready || !run.wrapper) && sudoWantsPassword(result.stderrTail))
          return reject(new SudoPasswordRequiredError(host, step, `sudo -n as ${this.target.user} wants a password; configure passwordless sudo or log in as root`));
        resolve(result);
      };

      // Cancel and timeout: end stdin so the wrapper kills the script's process group, give it a
      // moment to report, then close the channel regardless.
      const stop = (err: SshError): void => {
        if (settled || stopError) return;
        stopError = err;
        if (!channel) return finish(err);
        channel.end();
        graceTimer = setTimeout(() => {
          channel?.close();
          finish(err);
        }, STOP_GRACE_MS);
      };
      const onAbort = (): void => stop(new CancelledError(host, step, 'cancelled; the remote command was stopped'));
      const timer = setTimeout(
        () => stop(new TimeoutError(host, step, `did not finish within ${timeoutMs} ms; the remote command was stopped`, timeoutMs)),
        timeoutMs,
      );
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      const unwatch = conn.onClosed(() => {
        // Channels are closed by ssh2 right after; report the loss rather than a missing exit status.
        setImmediate(() =>
          finish(stopError ?? new ConnectionLostError(host, step, `connection lost${conn.reason ? ` (${conn.reason.message})` : ''}`)),
        );
      });

      conn.client.exec(run.command, (err, ch) => {
        if (err) return finish(new ConnectionLostError(host, step, `cannot open a channel: ${err.message}`));
        if (settled) {
          ch.close();
          return;
        }
        channel = ch;
        ch.on('data', (d: Buffer) => {
          if (run.rawStdout) stdoutChunks.push(d);
          else splitters.stdout.write(d);
        });
        ch.stderr.on('data', (d: Buffer) => splitters.stderr.write(d));
        ch.on('exit', (code: number | null, signal?: string) => {
          exitCode = typeof code === 'number' ? code : signalExitCode(signal);
        });
        ch.on('close', () => {
          if (stopError) return finish(stopError);
          if (exitCode === undefined) {
            // ssh2 closes channels when the socket goes; let the connection watcher name it.
            setTimeout(() => finish(new ConnectionLostError(host, step, 'channel closed without an exit status')), 50);
            return;
          }
          finish();
        });
        if (run.stdin) ch.write(run.stdin);
        if (!run.lifeline) ch.end();
        if (opts.signal?.aborted) onAbort();
      });
    });
  }
}

function firstWord(cmd: string): string {
  const w = cmd.trim().split(/\s+/)[0] ?? '';
  return w.length > 40 ? w.slice(0, 40) + '...' : w;
}

/** Connects, runs fn with the session, and always closes it. */
export async function withSession<T>(target: SshTarget, fn: (s: SshSession) => Promise<T>, opts: ConnectOptions = {}): Promise<T> {
  const s = await SshSession.connect(target, opts);
  try {
    return await fn(s);
  } finally {
    s.close();
  }
}
