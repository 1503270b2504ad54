// The resident sim server of one lab host: host-init starts it (inside the host's namespaces) before sshd,
// and kha-sim-client hands it every call of a simulated tool over a unix socket. Each call runs the same
// synchronous code as `node main.js` would, on a worker thread of a pool (one call per thread at a time,
// so a tool sleeping or hanging blocks only itself). A Node start-up per command cost ~100 ms of CPU; this
// costs about one.
//
// Frames both ways: 1 byte kind, 4 bytes big-endian length, payload.
//   client -> server: 'h' JSON header {argv, env, pid, uid, tty}; 'i' stdin bytes; 'I' end of stdin
//   server -> client: 'o' stdout; 'e' stderr; 'i' send me your stdin; 'x' exit code (decimal)
// A client that goes away (killed, cancelled) takes its call with it: the thread is terminated.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { callWords, commandLatencyMs, type HostFaultsFile } from '../faults';
import { MessageChannel, Worker, isMainThread, parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';

export const SIM_SERVER_SOCKET = '/run/kha-sim-server.sock';

interface CallHeader {
  argv: string[];
  env: Record<string, string>;
  pid: number;
  uid: number;
  tty: boolean;
  /** Set by the server: the latency was waited for here. */
  latencyApplied?: boolean;
}

/**
 * The lab's latency for this call (faults/<host>.json), waited for here rather than on a thread: a control-plane
 * host minting credentials for 50 joins at once then needs a few threads, not 50 (each costs a module load).
 */
async function callLatencyMs(h: CallHeader): Promise<number> {
  const lab = h.env.KHA_SIM_LAB_DIR ?? '/kha-lab';
  const host = h.env.KHA_SIM_HOSTNAME ?? os.hostname();
  let cfg: Partial<HostFaultsFile>;
  try {
    cfg = JSON.parse(await fs.promises.readFile(path.join(lab, 'faults', `${host}.json`), 'utf8')) as Partial<HostFaultsFile>;
  } catch {
    return 0;
  }
  const [tool = '', ...args] = h.argv;
  return commandLatencyMs({ latencyMs: cfg.latencyMs ?? 0, latencyByCommand: cfg.latencyByCommand }, tool, callWords(args));
}

type ThreadMessage = { t: 'o' | 'e'; d: Uint8Array | string } | { t: 'stdin' } | { t: 'exit'; code: number };

interface ThreadData {
  flag: SharedArrayBuffer;
  stdinPort: MessagePort;
}

/**
 * Threads are kept while they are used: one idle longer than IDLE_MS ends, but never the last KEEP_IDLE. At most
 * MAX_RUNNING calls run at once; more wait for a thread to come back, because a new thread costs ~300 ms of CPU
 * and ~9 MiB while a call costs ~2 (100 credential mints at once took 15 s and 900 MiB with a thread each). A
 * call that waited QUEUE_MS gets a thread of its own anyway: calls that block (a hang fault, a tool waiting for
 * stdin or polling the model) can hold every thread, and must never hold back the rest for long.
 */
const KEEP_IDLE = 1;
const IDLE_MS = 20_000;
const MAX_RUNNING = 4;
const QUEUE_MS = 250;

function frame(kind: string, payload: Uint8Array | string = ''): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  const h = Buffer.alloc(5);
  h.write(kind, 0, 'latin1');
  h.writeUInt32BE(body.length, 1);
  return Buffer.concat([h, body]);
}

class CallThread {
  readonly worker: Worker;
  private readonly flag = new SharedArrayBuffer(4);
  private readonly stdinPort: MessagePort;
  onMessage: ((m: ThreadMessage) => void) | undefined;
  onGone: (() => void) | undefined;
  dead = false;
  idleSince = 0;

  constructor() {
    const ch = new MessageChannel();
    this.stdinPort = ch.port1;
    const data: ThreadData = { flag: this.flag, stdinPort: ch.port2 };
    this.worker = new Worker(__filename, { workerData: data, transferList: [ch.port2], stdout: false, stderr: false });
    this.worker.on('message', (m: ThreadMessage) => this.onMessage?.(m));
    const gone = () => {
      if (this.dead) return;
      this.dead = true;
      this.onGone?.();
    };
    this.worker.on('error', (e) => {
      process.stderr.write(`kha-sim-server: thread error: ${e.stack ?? String(e)}\n`);
      gone();
    });
    this.worker.on('exit', gone);
  }

  run(h: CallHeader): void {
    this.worker.postMessage(h);
  }

  /** Hands the caller's whole stdin to the thread blocked in readStdin(). */
  giveStdin(data: Buffer): void {
    this.stdinPort.postMessage(data.toString('utf8'));
    const f = new Int32Array(this.flag);
    Atomics.store(f, 0, 1);
    Atomics.notify(f, 0);
  }

  kill(): void {
    this.dead = true;
    void this.worker.terminate();
  }
}

/** Threads for calls: idle ones reused, at most MAX_RUNNING busy before callers queue (see QUEUE_MS). */
class ThreadPool {
  private readonly idle: CallThread[] = [];
  private readonly queue: Array<(t: CallThread) => void> = [];
  private running = 0;

  constructor() {
    // The most recently used threads sit at the end of the list; the oldest idle ones go first.
    setInterval(() => {
      const cutoff = Date.now() - IDLE_MS;
      while (this.idle.length > KEEP_IDLE && this.idle[0]!.idleSince < cutoff) this.idle.shift()!.kill();
    }, 5_000).unref();
  }

  /** Calls `give` with a thread, now or once one is free; the returned function withdraws a call still waiting. */
  acquire(give: (t: CallThread) => void): () => void {
    if (this.running < MAX_RUNNING) {
      this.running++;
      give(this.fresh());
      return () => undefined;
    }
    const waiter = (t: CallThread) => {
      clearTimeout(timer);
      give(t);
    };
    const withdraw = () => {
      const i = this.queue.indexOf(waiter);
      if (i >= 0) this.queue.splice(i, 1);
      clearTimeout(timer);
    };
    const timer = setTimeout(() => {
      withdraw();
      this.running++;
      give(this.fresh());
    }, QUEUE_MS);
    this.queue.push(waiter);
    return withdraw;
  }

  /** A call is over: its thread (unless it died) goes to the next caller waiting, else to the idle list. */
  release(t: CallThread): void {
    t.onMessage = undefined;
    t.onGone = undefined;
    const next = this.queue.shift();
    if (next) return next(t.dead ? this.fresh() : t);
    this.running--;
    if (t.dead) return;
    t.idleSince = Date.now();
    this.idle.push(t);
  }

  /** The first call should not wait for a thread to load the tools. */
  warm(): void {
    this.idle.push(new CallThread());
  }

  private fresh(): CallThread {
    for (let t = this.idle.pop(); t; t = this.idle.pop()) if (!t.dead) return t;
    return new CallThread();
  }
}

function serve(socketPath: string): void {
  const pool = new ThreadPool();
  const server = net.createServer((sock) => {
    let buf = Buffer.alloc(0);
    let thread: CallThread | undefined;
    let finished = false;
    let headerSeen = false;
    const stdin: Buffer[] = [];
    let stdinEnded = false;
    let stdinWanted = false;
    const deliverStdin = () => {
      if (thread && stdinWanted && stdinEnded) {
        stdinWanted = false;
        thread.giveStdin(Buffer.concat(stdin));
      }
    };
    let withdraw: (() => void) | undefined;
    const finish = (code: number) => {
      if (finished) return;
      finished = true;
      sock.end(frame('x', String(code)));
      if (thread) pool.release(thread);
    };
    const start = (h: CallHeader) => {
      withdraw = pool.acquire((t) => run(t, h));
    };
    const run = (t: CallThread, h: CallHeader) => {
      thread = t;
      if (finished) return pool.release(t); // the caller left while waiting
      t.onMessage = (m) => {
        if (m.t === 'o' || m.t === 'e') sock.write(frame(m.t, m.d));
        else if (m.t === 'stdin') {
          stdinWanted = true;
          if (!stdinEnded) sock.write(frame('i'));
          deliverStdin();
        } else if (m.t === 'exit') finish(m.code);
      };
      t.onGone = () => {
        if (finished) return;
        sock.write(frame('e', `kha-sim-server: the thread running ${h.argv[0] ?? '?'} died\n`));
        finish(70);
      };
      t.run(h);
    };
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 5) {
        const len = buf.readUInt32BE(1);
        if (buf.length < 5 + len) break;
        const kind = String.fromCharCode(buf[0]!);
        const payload = buf.subarray(5, 5 + len);
        buf = buf.subarray(5 + len);
        if (kind === 'h' && !headerSeen) {
          headerSeen = true;
          let h: CallHeader;
          try {
            h = JSON.parse(payload.toString('utf8')) as CallHeader;
            if (!Array.isArray(h.argv) || typeof h.env !== 'object' || h.env === null) throw new Error('argv and env are required');
          } catch (e) {
            sock.write(frame('e', `kha-sim-server: bad call header: ${(e as Error).message}\n`));
            finish(70);
            return;
          }
          void callLatencyMs(h)
            .catch(() => 0)
            .then(async (ms) => {
              if (ms > 0) await new Promise((r) => setTimeout(r, ms));
              // A caller gone while "slow" never ran its command.
              if (!finished) start({ ...h, latencyApplied: true });
            });
        } else if (kind === 'i') stdin.push(Buffer.from(payload));
        else if (kind === 'I') {
          stdinEnded = true;
          deliverStdin();
        }
      }
    });
    // The caller is gone before the tool finished (killed, cancelled): stop the call where it is.
    const abandon = () => {
      if (finished) return;
      finished = true;
      withdraw?.();
      if (thread) {
        thread.kill();
        pool.release(thread);
      }
    };
    sock.on('close', abandon);
    sock.on('error', abandon);
  });

  fs.rmSync(socketPath, { force: true });
  const oldMask = process.umask(0o177); // root only: other users' calls run as their own process
  server.listen(socketPath, () => {
    process.umask(oldMask);
    pool.warm();
  });
  const stop = () => {
    server.close();
    fs.rmSync(socketPath, { force: true });
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

function threadMain(): void {
  // Loaded here, not at the top: the main thread never runs tool code.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const env = require('./env') as typeof import('./env');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { main } = require('./main') as typeof import('./main');
  const { flag, stdinPort } = workerData as ThreadData;
  const f = new Int32Array(flag);
  const port = parentPort!;
  port.on('message', (h: CallHeader) => {
    for (const k of Object.keys(process.env)) delete process.env[k];
    Object.assign(process.env, h.env);
    env.setInvocation({
      pid: h.pid,
      uid: h.uid,
      stdinIsTTY: h.tty,
      write: (fd, d) => port.postMessage({ t: fd === 1 ? 'o' : 'e', d } satisfies ThreadMessage),
      readStdin: () => {
        port.postMessage({ t: 'stdin' } satisfies ThreadMessage);
        for (;;) {
          Atomics.wait(f, 0, 0, 1000);
          const m = receiveMessageOnPort(stdinPort);
          if (m) {
            Atomics.store(f, 0, 0);
            return m.message as string;
          }
        }
      },
    });
    let code: number;
    try {
      code = main(h.argv, { latencyApplied: h.latencyApplied });
    } catch (e) {
      env.err(`kha-sim: ${(e as Error).stack ?? String(e)}`);
      code = 70;
    }
    env.setInvocation(undefined);
    port.postMessage({ t: 'exit', code } satisfies ThreadMessage);
  });
}

if (!isMainThread && workerData && (workerData as ThreadData).flag) threadMain();
else if (require.main === module) serve(process.argv[2] ?? SIM_SERVER_SOCKET);
