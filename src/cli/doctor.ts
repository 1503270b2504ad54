// `kha doctor [FILE]`: checks what a deployment needs before it starts, one line per check with what to do:
// the SSH credentials, known_hosts entries for the chosen policy, the Temporal server (or that the embedded one
// can start), kha's search attributes, and SSH (and sudo) to every node. Nothing is written anywhere: host keys
// seen for the first time under accept-new are not recorded, and on the hosts only `true` runs.
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname } from 'node:path';
import { utils } from 'ssh2';
import { formatIssue, formatWarning, loadClusterFile } from '../spec/load';
import type { NodeSshSettings } from '../spec/types';
import { nodeSsh } from '../spec/types';
import { defaultKnownHostsFile, hostFieldMatches, knownHostsName, parseKnownHosts } from '../ssh/hostkeys';
import type { Connection } from '@temporalio/client';
import type { SshSession } from '../ssh/executor';
import { SEARCH_ATTRIBUTES, TASK_QUEUE } from '../workflows/definitions';
import { didYouMean } from './suggest';

const USAGE = `usage: kha doctor [FILE]

Checks what a deployment of the cluster in FILE needs, before it starts, and prints one line per check with
what to do: the private keys (readable, mode 0600 or stricter, usable), known_hosts entries for the host key
policy, the Temporal server (TEMPORAL_ADDRESS, or that the embedded server runs or can start), kha's search
attributes and a worker, SSH and sudo to every node. Without FILE only the Temporal checks run.
Nothing is changed: on the hosts only \`true\` runs, and no host key is recorded.
Exit status: 0 everything is ready, 1 something is not, 2 bad usage or an invalid file.
`;

type Result = { ok: true; text: string } | { ok: false; text: string; fix: string };
interface Check {
  what: string;
  result: Result;
}

const ok = (text: string): Result => ({ ok: true, text });
const fail = (text: string, fix: string): Result => ({ ok: false, text, fix });

/** `~/x` against $HOME, as the cluster file means it. */
export function expandHome(p: string, env: NodeJS.ProcessEnv = process.env): string {
  return p.startsWith('~/') ? `${(env.HOME || homedir()).replace(/\/+$/, '')}/${p.slice(2)}` : p;
}

function expandTarget(t: NodeSshSettings): NodeSshSettings {
  const key = t.privateKeyPath && expandHome(t.privateKeyPath);
  return {
    ...t,
    privateKeyPath: key,
    knownHosts: { ...t.knownHosts, file: t.knownHosts.file && expandHome(t.knownHosts.file) },
    bastion: t.bastion && { ...t.bastion, privateKeyPath: t.bastion.privateKeyPath && expandHome(t.bastion.privateKeyPath) },
  };
}

function keyCheck(path: string, passphraseEnv: string | undefined): Result {
  let mode: number;
  try {
    mode = statSync(path).mode;
    accessSync(path, constants.R_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return fail(code === 'ENOENT' ? 'no such file' : `cannot read it (${code})`, `point privateKeyPath at your private key, or create one with ssh-keygen -t ed25519 -f ${path}`);
  }
  if (mode & 0o077) {
    return fail(`mode ${(mode & 0o777).toString(8).padStart(4, '0')}: other users can read it`, `chmod 600 ${path}`);
  }
  const passphrase = passphraseEnv ? process.env[passphraseEnv] : undefined;
  if (passphraseEnv && !passphrase) return fail(`passphraseEnv names ${passphraseEnv}, which is not set`, `export ${passphraseEnv} with the key's passphrase`);
  const parsed = utils.parseKey(readFileSync(path), passphrase);
  if (parsed instanceof Error) {
    const encrypted = /encrypted|passphrase/i.test(parsed.message);
    return fail(
      encrypted && !passphraseEnv ? 'the key is encrypted and no passphrase is configured' : `not a private key SSH can use: ${parsed.message}`,
      encrypted && !passphraseEnv ? 'set spec.ssh.passphraseEnv to a variable holding the passphrase, or use useAgent: true' : 'use an OpenSSH or PEM private key (ed25519, ecdsa or rsa)',
    );
  }
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  return ok(`${key?.type ?? 'key'}, mode ${(mode & 0o777).toString(8).padStart(4, '0')}`);
}

function credentialChecks(targets: NodeSshSettings[]): Check[] {
  const checks: Check[] = [];
  const keys = new Set<string>();
  for (const t of targets) {
    for (const k of [t.privateKeyPath, t.bastion?.privateKeyPath]) if (k) keys.add(k);
  }
  const t0 = targets[0]!;
  for (const k of keys) checks.push({ what: `private key ${k}`, result: keyCheck(k, t0.passphraseEnv) });
  if (t0.useAgent) {
    const sock = process.env.SSH_AUTH_SOCK;
    const live = !!sock && existsSync(sock) && statSync(sock).isSocket();
    checks.push({ what: 'ssh-agent', result: live ? ok(`SSH_AUTH_SOCK ${sock}`) : fail(sock ? `SSH_AUTH_SOCK ${sock} is not a socket` : 'useAgent is set but SSH_AUTH_SOCK is not', 'start ssh-agent and ssh-add your key in this shell') });
  }
  if (t0.passwordEnv) {
    checks.push({ what: 'password', result: process.env[t0.passwordEnv] ? ok(`${t0.passwordEnv} is set`) : fail(`passwordEnv names ${t0.passwordEnv}, which is not set`, `export ${t0.passwordEnv}`) });
  }
  const without = targets.filter((t) => !t.privateKeyPath && !t.useAgent && !t.passwordEnv).map((t) => t.host);
  if (without.length) {
    checks.push({ what: 'authentication', result: fail(`no method for ${without.join(', ')}`, 'set spec.ssh.privateKeyPath, useAgent: true or passwordEnv') });
  }
  return checks;
}

/** One known_hosts check per machine kha connects to (nodes and bastions), for the policy in the file. */
function knownHostsChecks(targets: NodeSshSettings[]): Check[] {
  const policy = targets[0]!.knownHosts.policy;
  const machines = new Map<string, { who: string; address: string; port: number; names: string[]; pins: string[] }>();
  for (const t of targets) {
    machines.set(`${t.address}:${t.port}`, { who: `${t.host} (${t.address})`, address: t.address, port: t.port, names: [t.address, t.host], pins: t.knownHosts.fingerprints });
    if (t.bastion) {
      const b = t.bastion;
      machines.set(`${b.address}:${b.port}`, { who: `bastion ${b.address}`, address: b.address, port: b.port, names: [b.address], pins: b.fingerprints ?? [] });
    }
  }
  if (policy === 'pinned') {
    return [...machines.values()].map((m) => ({
      what: `host key ${m.who}`,
      result: m.pins.length ? ok(`pinned ${m.pins.join(', ')}`) : fail('no pinned fingerprint (policy pinned)', `add it under spec.ssh.knownHosts.fingerprints; read it on the host with ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`),
    }));
  }
  const file = targets[0]!.knownHosts.file ?? defaultKnownHostsFile(policy);
  let text = '';
  const checks: Check[] = [];
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (policy === 'known-hosts-file' || code !== 'ENOENT') {
      return [{ what: `known_hosts ${file}`, result: fail(code === 'ENOENT' ? 'no such file (policy known-hosts-file)' : `cannot read it (${code})`, `collect the keys with ssh-keyscan ADDRESS >> ${file} and compare their fingerprints with the hosts'`) }];
    }
    // accept-new creates the file at first contact: its directory must be writable then.
    let dir = dirname(file);
    while (!existsSync(dir)) dir = dirname(dir);
    try {
      accessSync(dir, constants.W_OK);
      checks.push({ what: `known_hosts ${file}`, result: ok(`not there yet; created at first contact (policy accept-new)`) });
    } catch {
      checks.push({ what: `known_hosts ${file}`, result: fail(`${dir} is not writable, so host keys cannot be recorded`, `set spec.ssh.knownHosts.file to a writable path`) });
    }
  }
  const entries = parseKnownHosts(text).filter((e) => !e.marker);
  for (const m of machines.values()) {
    const names = m.names.map((n) => knownHostsName(n, m.port));
    const hit = entries.find((e) => hostFieldMatches(e.hosts, names));
    let result: Result;
    if (hit) result = ok(`${hit.keyType} at ${file}:${hit.line}`);
    else if (policy === 'accept-new') result = ok(`not recorded yet: the first deployment records the key the host presents (policy accept-new)`);
    else result = fail(`no entry in ${file}`, `ssh-keyscan${m.port === 22 ? '' : ` -p ${m.port}`} ${m.address} >> ${file}, after checking the fingerprint against the host's`);
    checks.push({ what: `host key ${m.who}`, result });
  }
  return checks;
}

async function sshChecks(targets: NodeSshSettings[]): Promise<Check[]> {
  const { SshSession: Session } = await import('../ssh/executor');
  const one = async (t: NodeSshSettings): Promise<Check> => {
    const via = t.bastion ? ` via bastion ${t.bastion.address}` : '';
    const what = `ssh ${t.host}`;
    let session: SshSession | undefined;
    try {
      session = await Session.connect(t, { recordNewHostKeys: false });
      await session.probe({ timeoutMs: t.connectTimeoutMs });
      return { what, result: ok(`${t.user}@${t.address}:${t.port}${via}${session.usesSudo ? ', sudo -n works' : ''}`) };
    } catch (e) {
      const err = e as Error;
      const fixes: Record<string, string> = {
        UnreachableError: `check the address, that sshd listens on port ${t.port}, and firewalls between here and the host`,
        TimeoutError: 'check the network path and connectTimeoutSeconds',
        AuthFailedError: `install the public key in ~${t.user}/.ssh/authorized_keys on the host (ssh-copy-id), or fix the user`,
        HostKeyMismatchError: 'find out why the host key changed before removing the old entry',
        HostKeyUnknownError: 'record the host key (see the host key line above)',
        SudoPasswordRequiredError: `allow ${t.user} passwordless sudo (NOPASSWD in /etc/sudoers.d) or connect as root`,
        CommandFailedError: `${t.user} cannot run commands${session?.usesSudo ? ' through sudo -n' : ''}: check its shell and sudo rights`,
      };
      return { what, result: fail(err.message, fixes[err.name] ?? 'see the message') };
    } finally {
      session?.close();
    }
  };
  const out: Check[] = [];
  // A few at a time: a 50-node cluster should not open 50 connections at once.
  for (let i = 0; i < targets.length; i += 8) out.push(...(await Promise.all(targets.slice(i, i + 8).map(one))));
  return out;
}

const registerHint = (namespace: string, missing: string[]) =>
  `temporal operator search-attribute create --namespace ${namespace} ${missing.map((n) => `--name ${n} --type Keyword`).join(' ')}`;

async function temporalChecks(): Promise<Check[]> {
  const { Connection: Conn } = await import('@temporalio/client');
  const { connectionOptions, settingsFromEnv } = await import('../temporal/connection');
  const { embeddedServerStatus, stateDir } = await import('../server/embedded');
  const taskQueue = process.env.KHA_TASK_QUEUE || TASK_QUEUE;
  let settings;
  try {
    settings = settingsFromEnv();
  } catch (e) {
    return [{ what: 'Temporal', result: fail((e as Error).message, 'fix the TEMPORAL_* variables') }];
  }
  let address: string;
  let namespace: string;
  let connect: () => Promise<Connection>;
  const checks: Check[] = [];
  if (settings) {
    ({ address, namespace } = settings);
    connect = () => Conn.connect({ ...connectionOptions(settings), connectTimeout: 5000 });
  } else {
    const st = await embeddedServerStatus();
    if (!st.running || !st.record) {
      const { temporalCliLookup } = await import('../temporal/cli-path');
      const cli = temporalCliLookup({ findOnly: true });
      let dir = stateDir();
      while (!existsSync(dir)) dir = dirname(dir);
      let writable = true;
      try {
        accessSync(dir, constants.W_OK);
      } catch {
        writable = false;
      }
      const result = !writable
        ? fail(`the embedded server cannot keep its database: ${dir} is not writable`, 'set XDG_STATE_HOME to a writable directory')
        : cli.path
          ? ok(`embedded server not running; kha deploy starts it with ${cli.path} (state in ${stateDir()})`)
          : cli.buildable
            ? ok(`embedded server not running; ${cli.message}`)
            : fail(`the embedded server needs the Temporal CLI 1.5.1: ${cli.message}`, 'set TEMPORAL_CLI_PATH, install Go, or set TEMPORAL_ADDRESS to your Temporal cluster');
      checks.push({ what: 'Temporal', result });
      checks.push({ what: 'search attributes', result: ok(`${SEARCH_ATTRIBUTES.map((s) => s.name).join(', ')} are registered when the embedded server starts`) });
      return checks;
    }
    ({ address, namespace } = st.record);
    connect = () => Conn.connect({ address, connectTimeout: 5000 });
  }
  let conn: Connection;
  try {
    conn = await connect();
    await conn.withDeadline(Date.now() + 5000, () => conn.workflowService.describeNamespace({ namespace }));
  } catch (e) {
    const where = settings ? `${address} (TEMPORAL_ADDRESS, namespace ${namespace})` : `the embedded server at ${address}`;
    checks.push({ what: 'Temporal', result: fail(`cannot reach ${where}: ${(e as Error).message.split('\n')[0]}`, settings ? 'check TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and the TLS or API key settings' : 'restart it: kha server --stop, then kha deploy starts a new one') });
    return checks;
  }
  try {
    checks.push({ what: 'Temporal', result: ok(`${settings ? address : `embedded server at ${address}`} answers (namespace ${namespace})`) });
    const have = await conn.withDeadline(Date.now() + 5000, () => conn.operatorService.listSearchAttributes({ namespace }));
    const known = new Set([...Object.keys(have.customAttributes ?? {}), ...Object.keys(have.systemAttributes ?? {})]);
    const missing = SEARCH_ATTRIBUTES.map((s) => s.name).filter((n) => !known.has(n));
    checks.push({
      what: 'search attributes',
      result: missing.length ? fail(`${missing.join(', ')} not registered on namespace ${namespace}`, registerHint(namespace, missing)) : ok(`${SEARCH_ATTRIBUTES.map((s) => s.name).join(', ')} registered`),
    });
    if (settings) {
      // Against an external cluster, kha deploy only starts the workflow: a kha worker has to run it.
      const r = await conn.withDeadline(Date.now() + 5000, () => conn.workflowService.describeTaskQueue({ namespace, taskQueue: { name: taskQueue, kind: 1 }, taskQueueType: 1 }));
      const n = (r.pollers ?? []).length;
      checks.push({ what: 'worker', result: n ? ok(`${n} poller(s) on task queue ${taskQueue}`) : fail(`no kha worker polls task queue ${taskQueue}`, 'start one with: kha worker (same TEMPORAL_* settings, SSH access to the hosts)') });
    }
  } catch (e) {
    checks.push({ what: 'search attributes', result: fail(`cannot list them: ${(e as Error).message.split('\n')[0]}`, 'check that the API key or certificate may read the namespace') });
  } finally {
    await conn.close().catch(() => undefined);
  }
  return checks;
}

function line(c: Check): string {
  return c.result.ok ? `ok    ${c.what}: ${c.result.text}` : `FAIL  ${c.what}: ${c.result.text}; ${c.result.fix}`;
}

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write(USAGE);
    return 0;
  }
  const option = argv.find((a) => a.startsWith('-'));
  if (option || argv.length > 1) {
    process.stderr.write(`kha doctor: ${option ? `unknown option "${option}"${didYouMean(option, ['--help'])}` : 'one cluster file at most'}\n${USAGE}`);
    return 2;
  }
  const checks: Check[] = [];
  const print = (cs: Check[]) => {
    for (const c of cs) process.stdout.write(`${line(c)}\n`);
    checks.push(...cs);
  };
  const file = argv[0];
  let targets: NodeSshSettings[] = [];
  if (file) {
    const loaded = loadClusterFile(file);
    for (const w of loaded.warnings) process.stderr.write(`${formatWarning(w)}\n`);
    if (!loaded.cluster) {
      for (const e of loaded.errors) process.stderr.write(`${formatIssue(e)}\n`);
      return 2;
    }
    const c = loaded.cluster;
    print([{ what: 'cluster file', result: ok(`${file}: cluster ${c.name}, ${c.spec.nodes.length} nodes`) }]);
    targets = c.spec.nodes.map((n) => expandTarget(nodeSsh(c, n)));
    print(credentialChecks(targets));
    print(knownHostsChecks(targets));
  }
  print(await temporalChecks());
  if (targets.length) print(await sshChecks(targets));
  const failed = checks.filter((c) => !c.result.ok).length;
  process.stdout.write(failed ? `\n${failed} of ${checks.length} checks failed\n` : `\nall ${checks.length} checks passed: ready to deploy\n`);
  return failed ? 1 : 0;
}
