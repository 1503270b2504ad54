// The embedded Temporal server: the Temporal CLI's dev server with a persistent SQLite database and the Web UI
// under the user's state directory, shared by every kha command on this machine. A record file (pid, ports)
// lets later commands find and reuse it; a lock keeps two commands from starting two servers at once.
import { spawn, type ChildProcess } from 'node:child_process';
import { sleep } from '../util/sleep';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { findTemporalCli } from '../temporal/cli-path';
import { SEARCH_ATTRIBUTES } from '../workflows/definitions';

export const EMBEDDED_NAMESPACE = 'default';
const DEFAULT_PORT = 7233;

export interface EmbeddedServer {
  /** host:port of the frontend (gRPC). */
  address: string;
  uiUrl: string;
  namespace: string;
  /** True when this call started it, false when it reused a running one. */
  started: boolean;
  pid: number;
  dbFile: string;
  logFile: string;
}

/** What the record file holds. */
export interface ServerRecord {
  pid: number;
  address: string;
  uiUrl: string;
  namespace: string;
  port: number;
  uiPort: number;
  dbFile: string;
  logFile: string;
  cli: string;
  startedAt: string;
  /** 'detached' (started by a command) or 'foreground' (`kha server`). */
  mode: 'detached' | 'foreground';
}

export interface ServerOptions {
  port?: number;
  uiPort?: number;
  /** How long to wait for the server to answer after the start (default 60 s). */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/** $XDG_STATE_HOME/kha, or ~/.local/state/kha. */
export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_STATE_HOME && env.XDG_STATE_HOME.startsWith('/') ? env.XDG_STATE_HOME : join(env.HOME || homedir(), '.local', 'state');
  return join(base, 'kha');
}

function paths(env: NodeJS.ProcessEnv) {
  const dir = stateDir(env);
  return {
    dir,
    record: join(dir, 'server.json'),
    lock: join(dir, 'server.lock'),
    db: join(dir, 'temporal.sqlite'),
    log: join(dir, 'server.log'),
    workerRecord: join(dir, 'worker.json'),
    workerLog: join(dir, 'worker.log'),
  };
}

export function devServerArgs(o: { dbFile: string; port: number; uiPort: number; headless?: boolean }): string[] {
  const args = ['server', 'start-dev', '--db-filename', o.dbFile, '--ip', '127.0.0.1', '--port', String(o.port), '--log-level', 'warn'];
  if (o.headless) args.push('--headless');
  else args.push('--ui-port', String(o.uiPort));
  for (const sa of SEARCH_ATTRIBUTES) args.push('--search-attribute', `${sa.name}=${saTypeName(sa.type)}`);
  return args;
}

function saTypeName(t: string): string {
  // The SDK's names are upper case (KEYWORD); the CLI takes Keyword, KeywordList, Datetime ...
  const map: Record<string, string> = { TEXT: 'Text', KEYWORD: 'Keyword', INT: 'Int', DOUBLE: 'Double', BOOL: 'Bool', DATETIME: 'Datetime', KEYWORD_LIST: 'KeywordList' };
  return map[t] ?? t;
}

/** The pid is alive and runs the command we expect (guards against a reused pid after a reboot). */
export function processRuns(pid: number, marker: string): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').includes(marker);
  } catch {
    return false;
  }
}

function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

function writeJsonAtomic(file: string, value: unknown): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
}

export function readServerRecord(env: NodeJS.ProcessEnv = process.env): ServerRecord | undefined {
  return readJson<ServerRecord>(paths(env).record);
}

/** True when a Temporal frontend answers at the address and its namespace exists. */
export async function probeServer(address: string, namespace = EMBEDDED_NAMESPACE, timeoutMs = 3000): Promise<boolean> {
  let conn: Connection | undefined;
  try {
    conn = await Connection.connect({ address, connectTimeout: timeoutMs });
    await conn.withDeadline(Date.now() + timeoutMs, () => conn!.workflowService.describeNamespace({ namespace }));
    return true;
  } catch {
    return false;
  } finally {
    await conn?.close().catch(() => undefined);
  }
}

export interface EmbeddedStatus {
  running: boolean;
  record?: ServerRecord;
  /** Why it is not running (or not healthy). */
  reason?: string;
  stateDir: string;
  worker?: { pid: number; running: boolean };
}

export async function embeddedServerStatus(env: NodeJS.ProcessEnv = process.env): Promise<EmbeddedStatus> {
  const p = paths(env);
  const record = readServerRecord(env);
  const wr = readJson<{ pid: number }>(p.workerRecord);
  const worker = wr ? { pid: wr.pid, running: processRuns(wr.pid, 'worker') } : undefined;
  if (!record) return { running: false, reason: `no embedded server recorded in ${p.dir}`, stateDir: p.dir, worker };
  if (!processRuns(record.pid, 'start-dev')) return { running: false, record, reason: `the recorded server (pid ${record.pid}) is not running`, stateDir: p.dir, worker };
  if (!(await probeServer(record.address, record.namespace))) {
    return { running: false, record, reason: `pid ${record.pid} runs but ${record.address} does not answer`, stateDir: p.dir, worker };
  }
  return { running: true, record, stateDir: p.dir, worker };
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ port, host: '127.0.0.1', exclusive: true }, () => s.close(() => resolve(true)));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen({ port: 0, host: '127.0.0.1' }, () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function envPort(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const v = env[name];
  if (!v) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0 || n > 65535) throw new Error(`${name}=${v}: not a port number`);
  return n;
}

/** Asked-for ports must be free; the defaults (7233 and 8233) give way to free ports when taken. */
async function choosePorts(o: ServerOptions, env: NodeJS.ProcessEnv): Promise<{ port: number; uiPort: number }> {
  const askedPort = o.port ?? envPort(env, 'KHA_SERVER_PORT');
  const askedUi = o.uiPort ?? envPort(env, 'KHA_UI_PORT');
  let port = askedPort ?? DEFAULT_PORT;
  if (!(await portFree(port))) {
    if (askedPort) throw new Error(`port ${port} is in use: choose another with --port`);
    port = await freePort();
  }
  let uiPort = askedUi ?? port + 1000;
  if (uiPort > 65535 || !(await portFree(uiPort))) {
    if (askedUi) throw new Error(`port ${uiPort} is in use: choose another with --ui-port`);
    uiPort = await freePort();
  }
  return { port, uiPort };
}

/** The dev server ignores --search-attribute for a database that already exists: add what is missing. */
export async function ensureSearchAttributes(address: string, namespace: string): Promise<string[]> {
  const conn = await Connection.connect({ address });
  try {
    const have = await conn.operatorService.listSearchAttributes({ namespace });
    const known = new Set([...Object.keys(have.customAttributes ?? {}), ...Object.keys(have.systemAttributes ?? {})]);
    // IndexedValueType numbers of the Temporal API (the proto package is not a direct dependency).
    const kind: Record<string, number> = { TEXT: 1, KEYWORD: 2, INT: 3, DOUBLE: 4, BOOL: 5, DATETIME: 6, KEYWORD_LIST: 7 };
    const missing = SEARCH_ATTRIBUTES.filter((sa) => !known.has(sa.name));
    if (missing.length) {
      await conn.operatorService.addSearchAttributes({
        namespace,
        searchAttributes: Object.fromEntries(missing.map((sa) => [sa.name, kind[sa.type]!])),
      });
    }
    return missing.map((sa) => sa.name);
  } finally {
    await conn.close();
  }
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** A lock file created exclusively; a stale one (holder gone, or older than 2 minutes) is taken over. */
async function withLock<T>(file: string, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let holder = NaN;
      let age = 0;
      try {
        holder = Number(readFileSync(file, 'utf8'));
        age = Date.now() - statSync(file).mtimeMs;
      } catch {
        continue;
      }
      if (!processRuns(holder, '') || age > 120_000) {
        rmSync(file, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`another kha command (pid ${holder}) is starting the embedded server; lock ${file}`);
      await sleep(250);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(file, { force: true });
  }
}

async function waitHealthy(address: string, child: ChildProcess, logFile: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited: string | undefined;
  child.once('exit', (code, sig) => (exited = sig ? `signal ${sig}` : `exit code ${code}`));
  for (;;) {
    if (exited) throw new Error(`the Temporal dev server stopped at start (${exited}); its log ${logFile}:\n${tail(logFile)}`);
    if (await probeServer(address, EMBEDDED_NAMESPACE, 2000)) return;
    if (Date.now() > deadline) throw new Error(`the Temporal dev server did not answer at ${address} within ${Math.round(timeoutMs / 1000)} s; its log ${logFile}:\n${tail(logFile)}`);
    await sleep(300);
  }
}

function cliOrThrow(): string {
  const cli = findTemporalCli();
  if (!cli) {
    throw new Error(
      'the embedded server needs the Temporal CLI 1.5.1 and none was found or built: set TEMPORAL_CLI_PATH to its temporal binary, ' +
        'or install Go so kha builds it (go install github.com/temporalio/cli/cmd/temporal@v1.5.1), ' +
        'or set TEMPORAL_ADDRESS to a Temporal cluster of your own',
    );
  }
  return cli;
}

interface Launch {
  child: ChildProcess;
  record: ServerRecord;
}

async function launch(o: ServerOptions, mode: ServerRecord['mode']): Promise<Launch> {
  const env = o.env ?? process.env;
  const p = paths(env);
  mkdirSync(p.dir, { recursive: true, mode: 0o700 });
  const cli = cliOrThrow();
  const { port, uiPort } = await choosePorts(o, env);
  const args = devServerArgs({ dbFile: p.db, port, uiPort });
  let child: ChildProcess;
  if (mode === 'detached') {
    const out = openSync(p.log, 'a');
    child = spawn(cli, args, { detached: true, stdio: ['ignore', out, out] });
    closeSync(out);
    child.unref();
  } else {
    child = spawn(cli, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  }
  if (!child.pid) throw new Error(`could not start ${cli}`);
  const address = `127.0.0.1:${port}`;
  const record: ServerRecord = {
    pid: child.pid,
    address,
    uiUrl: `http://127.0.0.1:${uiPort}`,
    namespace: EMBEDDED_NAMESPACE,
    port,
    uiPort,
    dbFile: p.db,
    logFile: mode === 'detached' ? p.log : '(terminal)',
    cli,
    startedAt: new Date().toISOString(),
    mode,
  };
  try {
    await waitHealthy(address, child, p.log, o.timeoutMs ?? 60_000);
    await ensureSearchAttributes(address, EMBEDDED_NAMESPACE);
  } catch (e) {
    child.kill('SIGTERM');
    throw e;
  }
  writeJsonAtomic(p.record, record);
  return { child, record };
}

function toServer(r: ServerRecord, started: boolean): EmbeddedServer {
  return { address: r.address, uiUrl: r.uiUrl, namespace: r.namespace, started, pid: r.pid, dbFile: r.dbFile, logFile: r.logFile };
}

/** Reuses the running embedded server, or starts one detached (it outlives this process). */
export async function ensureEmbeddedServer(o: ServerOptions = {}): Promise<EmbeddedServer> {
  const env = o.env ?? process.env;
  const p = paths(env);
  mkdirSync(p.dir, { recursive: true, mode: 0o700 });
  return withLock(p.lock, async () => {
    const st = await embeddedServerStatus(env);
    if (st.running && st.record) return toServer(st.record, false);
    // A recorded server that runs but does not answer is stopped first: it holds the database.
    if (st.record && processRuns(st.record.pid, 'start-dev')) await stopPid(st.record.pid);
    const { record } = await launch(o, 'detached');
    return toServer(record, true);
  });
}

async function stopPid(pid: number, marker = 'start-dev', timeoutMs = 15_000): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + timeoutMs;
  while (processRuns(pid, marker)) {
    if (Date.now() > deadline) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      return;
    }
    await sleep(200);
  }
}

/** Stops the embedded server and the background worker; returns what was stopped. */
export async function stopEmbeddedServer(env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  const p = paths(env);
  const stopped: string[] = [];
  const wr = readJson<{ pid: number }>(p.workerRecord);
  if (wr && processRuns(wr.pid, 'worker')) {
    await stopPid(wr.pid, 'worker');
    stopped.push(`worker (pid ${wr.pid})`);
  }
  rmSync(p.workerRecord, { force: true });
  const r = readServerRecord(env);
  if (r && processRuns(r.pid, 'start-dev')) {
    await stopPid(r.pid);
    stopped.push(`server (pid ${r.pid})`);
  }
  rmSync(p.record, { force: true });
  return stopped;
}

/**
 * `kha server` in the foreground: starts the server with the terminal as its output, keeps the record while it
 * runs and removes it when it stops. Resolves with the exit code once the server has stopped.
 */
export async function runEmbeddedServerForeground(
  o: ServerOptions & { onReady?: (r: ServerRecord) => void },
): Promise<number> {
  const env = o.env ?? process.env;
  const p = paths(env);
  mkdirSync(p.dir, { recursive: true, mode: 0o700 });
  const st = await embeddedServerStatus(env);
  if (st.running && st.record) {
    throw new Error(`already running (pid ${st.record.pid}) at ${st.record.address}, Web UI ${st.record.uiUrl}; stop it with: kha server --stop`);
  }
  const { child, record } = await withLock(p.lock, () => launch(o, 'foreground'));
  let stopping = false;
  const stop = () => {
    stopping = true;
    child.kill('SIGTERM');
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  o.onReady?.(record);
  const code = await new Promise<number>((resolve) => {
    child.once('exit', (c, sig) => resolve(stopping ? 0 : c ?? (sig ? 1 : 0)));
  });
  process.off('SIGINT', stop);
  process.off('SIGTERM', stop);
  // Remove the record only if it is still ours.
  if (readServerRecord(env)?.pid === record.pid) rmSync(p.record, { force: true });
  return code;
}

/**
 * A `kha worker` process in the background against the embedded server, for commands that return before the
 * workflow is done (`--detach`). Reused while it runs; stopped by `kha server --stop`.
 */
export async function ensureBackgroundWorker(server: EmbeddedServer, env: NodeJS.ProcessEnv = process.env): Promise<{ pid: number; started: boolean; logFile: string }> {
  const p = paths(env);
  const wr = readJson<{ pid: number; address: string }>(p.workerRecord);
  if (wr && wr.address === server.address && processRuns(wr.pid, 'worker')) return { pid: wr.pid, started: false, logFile: p.workerLog };
  const main = join(__dirname, '..', 'cli', 'main.js');
  if (!existsSync(main)) throw new Error(`${main} is missing: run npm run build`);
  const out = openSync(p.workerLog, 'a');
  const child = spawn(process.execPath, [main, 'worker'], {
    detached: true,
    stdio: ['ignore', out, out],
    env: { ...env, TEMPORAL_ADDRESS: server.address, TEMPORAL_NAMESPACE: server.namespace, TEMPORAL_API_KEY: '', TEMPORAL_TLS: '' },
  });
  closeSync(out);
  child.unref();
  if (!child.pid) throw new Error('could not start the background worker');
  writeJsonAtomic(p.workerRecord, { pid: child.pid, address: server.address, startedAt: new Date().toISOString() });
  return { pid: child.pid, started: true, logFile: p.workerLog };
}

export function embeddedLogFiles(env: NodeJS.ProcessEnv = process.env): { server: string; worker: string; inProcessWorker: string } {
  const p = paths(env);
  return { server: p.log, worker: p.workerLog, inProcessWorker: join(p.dir, 'cli-worker.log') };
}
