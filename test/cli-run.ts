// Runs the real `kha` CLI (the compiled entry) as a child process and captures what it prints.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const KHA_MAIN = join(__dirname, '..', 'src', 'cli', 'main.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export function kha(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 120_000): Promise<CliResult> {
  return runIn([process.execPath, KHA_MAIN, ...args], env, timeoutMs);
}

export function runIn(argv: string[], env: NodeJS.ProcessEnv, timeoutMs = 120_000): Promise<CliResult> {
  const t0 = Date.now();
  const args = argv.slice(1);
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`kha ${args.join(' ')} did not finish within ${timeoutMs} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

/** Environment for the CLI: the caller's, minus any Temporal settings, plus the given variables. */
export function cliEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('TEMPORAL_') && k !== 'TEMPORAL_CLI_PATH') delete env[k];
  delete env.KHA_TASK_QUEUE;
  return { ...env, ...extra };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen({ port: 0, host: '127.0.0.1' }, () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

/** JSON lines of --json output; every non-empty line must parse. */
export function jsonLines(stdout: string): Array<Record<string, unknown>> {
  return stdout
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** A lab-range /24 that no lab uses: a blackhole route on this machine drops anything sent there. */
export const UNREACHABLE_NET = '198.18.255';

/**
 * A cluster whose nodes kha cannot log in to (no SSH key configured): preflight fails on every node before any
 * connection, and the deployment waits for an operator decision. kha refuses loopback node addresses, so the
 * nodes sit in UNREACHABLE_NET, which this machine blackholes: nothing could leave it even if something tried.
 */
export function unreachableCluster(name: string, dir = mkdtempSync(join(tmpdir(), 'kha-cli-'))): string {
  execFileSync('ip', ['route', 'replace', 'blackhole', `${UNREACHABLE_NET}.0/24`]);
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `apiVersion: kha.dev/v1alpha1
kind: Cluster
metadata:
  name: ${name}
spec:
  kubernetes:
    version: "1.35"
  ssh:
    port: 1
    connectTimeoutSeconds: 2
  nodes:
    - { name: cp-1, address: ${UNREACHABLE_NET}.11, role: control-plane }
    - { name: worker-1, address: ${UNREACHABLE_NET}.21, role: worker }
  controlPlaneEndpoint:
    vip: ${UNREACHABLE_NET}.10
    interface: eth0
  networking:
    kubeProxyMode: nftables
  policy:
    retry: { maximumAttempts: 2, initialIntervalSeconds: 0.2, maximumIntervalSeconds: 1 }
`,
  );
  return file;
}
