// The SSH executor against real sshd on lab hosts: output, env, host keys, sudo, bastion, faults,
// cancellation, reboot and files. Every check looks at the host itself where it can.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type AddressInfo } from 'node:net';
import { Lab, type LabHost } from '../src/lab/lab';
import {
  AuthFailedError,
  CancelledError,
  CommandFailedError,
  ConnectionLostError,
  HostKeyMismatchError,
  HostKeyUnknownError,
  SshError,
  SudoPasswordRequiredError,
  TimeoutError,
  UnreachableError,
  isTransient,
} from '../src/ssh/errors';
import { SshSession, withSession } from '../src/ssh/executor';
import { IdleSessions } from '../src/ssh/reuse';
import { fingerprint } from '../src/ssh/hostkeys';
import type { OutputStream, SshTarget } from '../src/ssh/types';

let lab: Lab;
let work: string;
let cp1: LabHost; // general use
let cp2: LabHost; // host key changes, reboot, unreachable, dropped connections
let bastion: LabHost;

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'kha-ssh-test-'));
  lab = await Lab.up({ dir: join(work, 'lab'), controlPlanes: 2, workers: 0, bastion: true, rebootDelayMs: 1000 });
  cp1 = lab.host('k8scp-01');
  cp2 = lab.host('k8scp-02');
  bastion = lab.bastion!;
});

after(async () => {
  await lab?.down();
  rmSync(work, { recursive: true, force: true });
});

function target(h: LabHost, over: Partial<SshTarget> = {}): SshTarget {
  return {
    host: h.name,
    address: h.address,
    port: 22,
    user: 'root',
    privateKeyPath: lab.rootKeyPath,
    useAgent: false,
    knownHosts: { policy: 'known-hosts-file', file: lab.knownHostsPath, fingerprints: [] },
    sudo: 'auto',
    connectTimeoutMs: 5000,
    commandTimeoutMs: 60_000,
    ...over,
  };
}

async function hostSh(h: LabHost, cmd: string): Promise<string> {
  const r = await lab.exec(h, cmd);
  assert.equal(r.code, 0, `lab exec on ${h.name} failed: ${cmd}\n${r.stderr}`);
  return r.stdout;
}

/** Every process's command line on the host (from /proc, so nothing hides). */
async function hostCmdlines(h: LabHost): Promise<string> {
  return hostSh(h, `for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' <"$f" 2>/dev/null; echo; done`);
}

async function hostKeyFingerprint(h: LabHost): Promise<string> {
  const pub = await hostSh(h, 'cat /etc/ssh/ssh_host_ed25519_key.pub');
  return fingerprint(Buffer.from(pub.trim().split(/\s+/)[1] ?? '', 'base64'));
}

async function expectError<T extends SshError>(p: Promise<unknown>, cls: new (...a: never[]) => T): Promise<T> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    return e;
  }
  assert.fail(`expected ${cls.name}, but it succeeded`);
}

/** Waits until a line appears, then returns; used to act while a remote script runs. */
function lineWatcher(): { onLine: (s: OutputStream, l: string) => void; lines: Array<[OutputStream, string]>; seen: (l: string) => Promise<void> } {
  const lines: Array<[OutputStream, string]> = [];
  const waiters: Array<[string, () => void]> = [];
  return {
    lines,
    onLine: (s, l) => {
      lines.push([s, l]);
      for (const [want, fn] of waiters) if (want === l) fn();
    },
    seen: (l) => new Promise((resolve) => (lines.some(([, x]) => x === l) ? resolve() : waiters.push([l, resolve]))),
  };
}

describe('running scripts', () => {
  test('streams stdout and stderr line by line as they come, returns exit code and bounded tails', async () => {
    await withSession(target(cp1), async (s) => {
      const times: number[] = [];
      const w = lineWatcher();
      const started = Date.now();
      const r = await s.runScript(
        'set -euo pipefail\nfor i in $(seq 1 10); do echo "out $i"; done\necho "err 1" >&2\nsleep 0.6\necho "late ✓"\necho "err 2" >&2\nexit 7\n',
        {
          tailLines: 3,
          onLine: (st, l) => {
            times.push(Date.now() - started);
            w.onLine(st, l);
          },
        },
      );
      assert.equal(r.exitCode, 7);
      assert.deepEqual(
        w.lines.filter(([st]) => st === 'stdout').map(([, l]) => l),
        [...Array.from({ length: 10 }, (_, i) => `out ${i + 1}`), 'late ✓'],
      );
      assert.deepEqual(
        w.lines.filter(([st]) => st === 'stderr').map(([, l]) => l),
        ['err 1', 'err 2'],
      );
      assert.equal(r.stdoutTail, 'out 9\nout 10\nlate ✓');
      assert.equal(r.stderrTail, 'err 1\nerr 2');
      // "out 10" arrived before the sleep ended, i.e. it was streamed, not collected at the end.
      const idx = w.lines.findIndex(([, l]) => l === 'out 10');
      const lateIdx = w.lines.findIndex(([, l]) => l === 'late ✓');
      assert.ok(times[lateIdx]! - times[idx]! >= 500, `lines were not streamed: ${times.join(',')}`);
      assert.ok(r.durationMs >= 600);
    });
  });

  test('runScriptChecked throws CommandFailedError with exit code and stderr tail', async () => {
    await withSession(target(cp1), async (s) => {
      const e = await expectError(s.runScriptChecked('echo fine\necho "it broke" >&2\nexit 3'), CommandFailedError);
      assert.equal(e.exitCode, 3);
      assert.equal(e.stderrTail, 'it broke');
      assert.equal(e.host, 'k8scp-01');
      assert.match(e.message, /^k8scp-01: run script: exited with code 3; stderr ends with:\nit broke$/);
      assert.equal(isTransient(e), false);
      const ok = await s.execChecked('hostname');
      assert.equal(ok.stdoutTail, 'k8scp-01');
    });
  });

  test('a large script with every kind of character arrives intact, and its stdin is empty', async () => {
    await withSession(target(cp1), async (s) => {
      const big = Array.from({ length: 4000 }, (_, i) => `# filler line ${i} with 'quotes' "and" $dollars \`ticks\` \\ ✓`).join('\n');
      const script = `${big}\nread -r x || echo "stdin empty"\nprintf '%s' ${JSON.stringify('tail-marker')} | sha256sum | cut -c1-16\n`;
      const r = await s.runScriptChecked(script);
      assert.equal(r.stdoutTail, `stdin empty\n${execFileSync('sh', ['-c', "printf '%s' tail-marker | sha256sum | cut -c1-16"], { encoding: 'utf8' }).trim()}`);
      assert.ok(Buffer.byteLength(script) > 200_000);
    });
  });

  test('env values reach the script exactly, never appear in any command line on the host, and are redacted from output and errors', async () => {
    const secret = `s3cr3t-${randomBytes(12).toString('hex')}`;
    const tricky = `it's "multi"\nline $(not run) ✓`;
    await withSession(target(cp1), async (s) => {
      const w = lineWatcher();
      const run = s.runScript(
        'printf "%s" "$KHA_TEST_SECRET" >/tmp/secret-seen\nprintf "%s" "$KHA_TEST_TRICKY" >/tmp/tricky-seen\necho "ready"\necho "leak: $KHA_TEST_SECRET"\nsleep 2\necho "$KHA_TEST_SECRET" >&2\nexit 4',
        { env: { KHA_TEST_SECRET: secret, KHA_TEST_TRICKY: tricky }, onLine: w.onLine },
      );
      await w.seen('ready');
      const cmdlines = await hostCmdlines(cp1);
      assert.ok(cmdlines.includes('kha-run'), 'the wrapper is running while we look');
      assert.ok(!cmdlines.includes(secret), 'secret visible in a command line on the host');
      const r = await run;
      assert.equal(r.exitCode, 4);
      assert.equal(await lab.readFile(cp1, '/tmp/secret-seen'), secret);
      assert.equal(await lab.readFile(cp1, '/tmp/tricky-seen'), tricky);
      assert.ok(w.lines.some(([, l]) => l === 'leak: ***'));
      assert.ok(!JSON.stringify(w.lines).includes(secret));
      assert.ok(!r.stdoutTail.includes(secret) && !r.stderrTail.includes(secret));

      const e = await expectError(s.runScriptChecked('echo "bad $KHA_TEST_SECRET" >&2; exit 1', { env: { KHA_TEST_SECRET: secret } }), CommandFailedError);
      assert.ok(!e.message.includes(secret) && !e.stderrTail.includes(secret), e.message);
      assert.match(e.message, /bad \*\*\*/);
    });
  });

  test('exec and bootId, and many commands over one connection', async () => {
    await withSession(target(cp1), async (s) => {
      assert.equal(await s.bootId(), await lab.bootId(cp1));
      const r = await Promise.all(Array.from({ length: 8 }, (_, i) => s.exec(`echo ${i}`)));
      assert.deepEqual(
        r.map((x) => x.stdoutTail),
        Array.from({ length: 8 }, (_, i) => String(i)),
      );
      // One SSH connection carried all of it: the host has exactly one root session process.
      const deadline = Date.now() + 3000;
      let sessions = -1;
      while (Date.now() < deadline) {
        sessions = (await hostCmdlines(cp1)).split('\n').filter((l) => l.startsWith('sshd: root@notty')).length;
        if (sessions === 1) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(sessions, 1);
    });
  });
});

describe('host keys', () => {
  test('unknown host under known-hosts-file is refused with its fingerprint; hashed known_hosts entries work', async () => {
    const empty = join(work, 'empty_known_hosts');
    writeFileSync(empty, '');
    const fp = await hostKeyFingerprint(cp1);
    const e = await expectError(SshSession.connect(target(cp1, { knownHosts: { policy: 'known-hosts-file', file: empty, fingerprints: [] } })), HostKeyUnknownError);
    assert.equal(e.actual, fp);
    assert.match(e.message, new RegExp(`^k8scp-01: connect: host key check: k8scp-01 \\(${cp1.address.replace(/\./g, '\\.')}\\) is not in the known hosts file`));
    assert.ok(e.message.includes(fp));
    assert.equal(readFileSync(empty, 'utf8'), '', 'nothing was recorded');

    const hashed = join(work, 'hashed_known_hosts');
    writeFileSync(hashed, readFileSync(lab.knownHostsPath, 'utf8'));
    execFileSync('ssh-keygen', ['-q', '-H', '-f', hashed], { stdio: 'ignore' });
    rmSync(`${hashed}.old`, { force: true });
    assert.ok(!readFileSync(hashed, 'utf8').includes(cp1.address));
    await withSession(target(cp1, { knownHosts: { policy: 'known-hosts-file', file: hashed, fingerprints: [] } }), async (s) => {
      assert.equal((await s.exec('hostname')).stdoutTail, 'k8scp-01');
    });
  });

  test('pinned fingerprint: the right one connects, another is refused naming both', async () => {
    const fp = await hostKeyFingerprint(cp1);
    await withSession(target(cp1, { knownHosts: { policy: 'pinned', fingerprints: [fp] } }), async (s) => {
      assert.equal((await s.exec('hostname')).stdoutTail, 'k8scp-01');
    });
    const other = await hostKeyFingerprint(cp2);
    const e = await expectError(SshSession.connect(target(cp1, { knownHosts: { policy: 'pinned', fingerprints: [other] } })), HostKeyMismatchError);
    assert.ok(e.message.includes(fp) && e.message.includes(other), e.message);
    assert.deepEqual([e.expected, e.actual], [[other], fp]);
  });

  test('a changed host key is refused (known-hosts-file and accept-new) with both fingerprints; accept-new recorded the first', async () => {
    const recorded = join(work, 'accept-new', 'known_hosts');
    const acceptNew = target(cp2, { knownHosts: { policy: 'accept-new', file: recorded, fingerprints: [] } });
    const oldFp = await hostKeyFingerprint(cp2);
    await withSession(acceptNew, async (s) => assert.equal((await s.exec('hostname')).stdoutTail, 'k8scp-02'));
    assert.match(readFileSync(recorded, 'utf8'), new RegExp(`^${cp2.address.replace(/\./g, '\\.')} ssh-ed25519 \\S+\\n$`));
    // Same key again: accepted, nothing new recorded.
    await withSession(acceptNew, async (s) => assert.equal((await s.exec('true')).exitCode, 0));
    assert.equal(readFileSync(recorded, 'utf8').split('\n').length, 2);

    await hostSh(cp2, 'cp -p /etc/ssh/ssh_host_ed25519_key /root/hk.bak && cp -p /etc/ssh/ssh_host_ed25519_key.pub /root/hk.pub.bak && rm -f /etc/ssh/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key.pub && ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key');
    try {
      const newFp = await hostKeyFingerprint(cp2);
      assert.notEqual(newFp, oldFp);
      for (const t of [acceptNew, target(cp2)]) {
        const e = await expectError(SshSession.connect(t), HostKeyMismatchError);
        assert.equal(e.host, 'k8scp-02');
        assert.match(e.message, /^k8scp-02: connect: host key check: HOST KEY CHANGED for k8scp-02 \(198\.18\.\d+\.12\)/);
        assert.ok(e.message.includes(oldFp) && e.message.includes(newFp), e.message);
        assert.deepEqual([e.expected, e.actual], [[oldFp], newFp]);
        assert.equal(isTransient(e), false);
      }
      assert.equal(readFileSync(recorded, 'utf8').split('\n').length, 2, 'the changed key was not recorded');
    } finally {
      await hostSh(cp2, 'mv -f /root/hk.bak /etc/ssh/ssh_host_ed25519_key && mv -f /root/hk.pub.bak /etc/ssh/ssh_host_ed25519_key.pub');
    }
    await withSession(target(cp2), async (s) => assert.equal((await s.exec('true')).exitCode, 0));
  });
});

describe('authentication', () => {
  test('a key the host does not know gives AuthFailed', async () => {
    const e = await expectError(SshSession.connect(target(cp1, { privateKeyPath: lab.userKeyPath })), AuthFailedError);
    assert.match(e.message, /^k8scp-01: connect: .* refused user root \(tried publickey\)$/);
    assert.equal(isTransient(e), false);
  });

  test('passphrase from the named environment variable; missing passphrase is AuthFailed', async () => {
    const key = join(work, 'pp_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'open sesame', '-f', key]);
    await hostSh(cp1, `cat >>/root/.ssh/authorized_keys <<'EOF'\n${readFileSync(`${key}.pub`, 'utf8').trim()}\nEOF`);
    const t = target(cp1, { privateKeyPath: key, passphraseEnv: 'KHA_TEST_PASSPHRASE' });
    delete process.env.KHA_TEST_PASSPHRASE;
    const e = await expectError(SshSession.connect(t), AuthFailedError);
    assert.match(e.message, /KHA_TEST_PASSPHRASE is not set/);
    process.env.KHA_TEST_PASSPHRASE = 'open sesame';
    try {
      await withSession(t, async (s) => assert.equal((await s.exec('hostname')).stdoutTail, 'k8scp-01'));
    } finally {
      delete process.env.KHA_TEST_PASSPHRASE;
    }
  });

  test('ssh-agent when useAgent is set', async () => {
    const agentDir = mkdtempSync(join(work, 'agent-'));
    const sock = join(agentDir, 'agent.sock');
    const agent = spawnSync('ssh-agent', ['-a', sock, '-s'], { encoding: 'utf8' });
    const pid = Number(/SSH_AGENT_PID=(\d+)/.exec(agent.stdout)?.[1]);
    assert.ok(pid > 0, agent.stderr);
    const saved = process.env.SSH_AUTH_SOCK;
    try {
      execFileSync('ssh-add', ['-q', lab.rootKeyPath], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: 'ignore' });
      process.env.SSH_AUTH_SOCK = sock;
      await withSession(target(cp1, { privateKeyPath: undefined, useAgent: true }), async (s) => {
        assert.equal((await s.exec('hostname')).stdoutTail, 'k8scp-01');
      });
    } finally {
      if (saved === undefined) delete process.env.SSH_AUTH_SOCK;
      else process.env.SSH_AUTH_SOCK = saved;
      process.kill(pid);
    }
  });

  test('password only when passwordEnv names it; no method at all is AuthFailed', async () => {
    const password = readFileSync(lab.pwUserPasswordPath, 'utf8').trim();
    const t = target(cp1, { user: 'khapw', privateKeyPath: undefined, passwordEnv: 'KHA_TEST_PASSWORD' });
    process.env.KHA_TEST_PASSWORD = password;
    try {
      // Logged in by password; its sudo still wants one, which is reported, not typed in.
      await withSession(t, async (s) => void (await expectError(s.runScript('id -un'), SudoPasswordRequiredError)));
      await withSession({ ...t, sudo: 'never' }, async (s) => assert.equal((await s.runScriptChecked('id -un')).stdoutTail, 'khapw'));
    } finally {
      delete process.env.KHA_TEST_PASSWORD;
    }
    const e = await expectError(SshSession.connect(target(cp1, { privateKeyPath: undefined })), AuthFailedError);
    assert.match(e.message, /no authentication method configured/);
    // Only KHA_ variables are secrets: a target naming the worker's own secret is refused before connecting.
    process.env.TEMPORAL_API_KEY = password;
    try {
      const own = await expectError(SshSession.connect({ ...t, passwordEnv: 'TEMPORAL_API_KEY' }), AuthFailedError);
      assert.match(own.message, /password environment variable TEMPORAL_API_KEY does not start with KHA_/);
    } finally {
      delete process.env.TEMPORAL_API_KEY;
    }
  });
});

describe('sudo', () => {
  test('as kha: scripts, readFile and writeFile run as root through sudo -n', async () => {
    await withSession(target(cp1, { user: 'kha', privateKeyPath: lab.userKeyPath }), async (s) => {
      assert.equal(s.usesSudo, true);
      const r = await s.runScriptChecked('id -un; printf "%s" "$KHA_X" >/tmp/kha-x', { env: { KHA_X: 'through sudo' } });
      assert.equal(r.stdoutTail, 'root');
      assert.equal(await lab.readFile(cp1, '/tmp/kha-x'), 'through sudo');
      await s.writeFile('/etc/kha-test/owned-by-root.conf', 'a=1\n', 0o640);
      assert.equal(await hostSh(cp1, 'stat -c "%U %a" /etc/kha-test/owned-by-root.conf'), 'root 640\n');
      assert.equal((await s.readFile('/etc/kha-test/owned-by-root.conf')).toString(), 'a=1\n');
      assert.match((await s.readFile('/etc/shadow')).toString(), /^root:/);
    });
  });

  test('as khapw: SudoPasswordRequired at once, for scripts and files, not a hang', async () => {
    await withSession(target(cp1, { user: 'khapw', privateKeyPath: lab.pwUserKeyPath }), async (s) => {
      const t0 = Date.now();
      const e = await expectError(s.runScript('echo should-not-run >/tmp/khapw-ran'), SudoPasswordRequiredError);
      assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
      assert.match(e.message, /^k8scp-01: run script: sudo -n as khapw wants a password/);
      assert.equal(isTransient(e), false);
      await expectError(s.readFile('/etc/hostname'), SudoPasswordRequiredError);
      await expectError(s.writeFile('/tmp/x', 'x'), SudoPasswordRequiredError);
      assert.equal((await lab.exec(cp1, 'test -e /tmp/khapw-ran')).code, 1);
    });
  });

  test("sudo 'never' runs as the login user", async () => {
    await withSession(target(cp1, { user: 'kha', privateKeyPath: lab.userKeyPath, sudo: 'never' }), async (s) => {
      assert.equal((await s.runScriptChecked('id -un')).stdoutTail, 'kha');
    });
  });
});

describe('bastion', () => {
  test('commands reach the node through the bastion, whose host key is checked too', async () => {
    const via = target(cp1, { bastion: { address: bastion.address, port: 22, user: 'root', privateKeyPath: lab.rootKeyPath } });
    await withSession(via, async (s) => {
      const r = await s.runScriptChecked('hostname; echo "$SSH_CLIENT" | cut -d" " -f1');
      assert.equal(r.stdoutTail, `k8scp-01\n${bastion.address}`);
    });
    // A known_hosts file that lacks the bastion: refused at the bastion, named as such.
    const nodesOnly = join(work, 'nodes_only_known_hosts');
    writeFileSync(nodesOnly, readFileSync(lab.knownHostsPath, 'utf8').split('\n').filter((l) => !l.startsWith('bastion')).join('\n'));
    const e = await expectError(SshSession.connect({ ...via, knownHosts: { policy: 'known-hosts-file', file: nodesOnly, fingerprints: [] } }), HostKeyUnknownError);
    // A node the bastion cannot reach.
    const lost = await expectError(SshSession.connect({ ...via, address: cp1.address.replace(/\.\d+$/, '.250'), connectTimeoutMs: 1500 }), UnreachableError);
    assert.match(lost.message, new RegExp(`^k8scp-01: connect via bastion ${bastion.address.replace(/\./g, '\\.')}: bastion could not reach 198\\.18\\.\\d+\\.250:22`));
    assert.match(e.message, new RegExp(`^k8scp-01: connect to bastion ${bastion.address.replace(/\./g, '\\.')}:22: host key check: bastion ${bastion.address.replace(/\./g, '\\.')} is not in the known hosts file`));
  });
});

describe('faults', () => {
  test('a killed sshd session is reported as ConnectionLost and the remote command is gone', async () => {
    await withSession(target(cp2), async (s) => {
      const w = lineWatcher();
      const outcome = expectError(s.runScript('sleep 3011 & echo started; wait', { onLine: w.onLine }), ConnectionLostError);
      await w.seen('started');
      await hostSh(cp2, `pkill -f '^sshd: root@notty'`);
      const e = await outcome;
      assert.equal(isTransient(e), true);
      assert.match(e.message, /^k8scp-02: run script: connection lost/);
      assert.equal(s.isAlive(), false);
      await expectError(s.exec('true'), ConnectionLostError);
    });
    await waitGone(cp2, 'sleep 3011');
  });

  test('an unreachable host gives Unreachable within the connect timeout', async () => {
    await lab.setUnreachable(cp2, 4000);
    const t0 = Date.now();
    const e = await expectError(SshSession.connect(target(cp2, { connectTimeoutMs: 1500 })), UnreachableError);
    const took = Date.now() - t0;
    assert.ok(took >= 1400 && took < 3500, `took ${took} ms`);
    assert.match(e.message, /^k8scp-02: connect: no answer from 198\.18\.\d+\.12:22 within 1500 ms$/);
    assert.equal(isTransient(e), true);
    // Cancelling a connect that hangs returns at once.
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    const t1 = Date.now();
    await expectError(SshSession.connect(target(cp2, { connectTimeoutMs: 3000 }), { signal: ac.signal }), CancelledError);
    assert.ok(Date.now() - t1 < 1000);
    // A closed port is unreachable too, and says so at once.
    const refused = await expectError(SshSession.connect(target(cp1, { port: 2222 })), UnreachableError);
    assert.match(refused.message, /ECONNREFUSED/);
  });

  test('a connection that goes silent mid-command is detected by keepalive as ConnectionLost', async () => {
    await withSession(
      target(cp2),
      async (s) => {
        const w = lineWatcher();
        const outcome = expectError(s.runScript('echo started; sleep 3041', { onLine: w.onLine }), ConnectionLostError);
        await w.seen('started');
        const t0 = Date.now();
        await lab.setUnreachable(cp2, 3000);
        const e = await outcome;
        assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
        assert.match(e.message, /^k8scp-02: run script: connection lost \(Keepalive timeout\)$/);
      },
      { keepaliveIntervalMs: 400, keepaliveCountMax: 2 },
    );
  });

  test('a server that accepts TCP but never speaks SSH gives Timeout', async () => {
    const server = createServer(() => undefined);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const e = await expectError(SshSession.connect({ ...target(cp1), address: '127.0.0.1', port, connectTimeoutMs: 700 }), TimeoutError);
      assert.equal(e.message, `k8scp-01: connect: SSH handshake with 127.0.0.1:${port} did not finish within 700 ms`);
      assert.equal(isTransient(e), true);
    } finally {
      server.close();
    }
  });

  test('a command that outlives its timeout is stopped on the host and reported as Timeout', async () => {
    await withSession(target(cp1), async (s) => {
      const t0 = Date.now();
      const e = await expectError(s.runScript('sleep 3021', { timeoutMs: 800 }), TimeoutError);
      assert.ok(Date.now() - t0 < 5000);
      assert.match(e.message, /^k8scp-01: run script: did not finish within 800 ms/);
      assert.equal(isTransient(e), true);
      await waitGone(cp1, 'sleep 3021');
      assert.equal((await s.exec('echo still usable')).stdoutTail, 'still usable');
    });
  });

  test('cancellation ends the remote command and all its children, even one that ignores TERM', async () => {
    await withSession(target(cp1), async (s) => {
      const ac = new AbortController();
      const w = lineWatcher();
      const run = s.runScript("sleep 3031 &\n(trap '' TERM; sleep 3032) &\nbash -c 'sleep 3033' &\necho started\nwait", { signal: ac.signal, onLine: w.onLine });
      await w.seen('started');
      const before = await hostCmdlines(cp1);
      for (const p of ['sleep 3031', 'sleep 3032', 'sleep 3033']) assert.ok(before.includes(p), `${p} not running before cancel`);
      const t0 = Date.now();
      ac.abort();
      const e = await expectError(run, CancelledError);
      assert.ok(Date.now() - t0 < 7000);
      assert.equal(isTransient(e), false);
      // By the time the call returns, the host has nothing left of it.
      const left = await hostCmdlines(cp1);
      for (const p of ['sleep 3031', 'sleep 3032', 'sleep 3033', 'kha-run']) assert.ok(!left.includes(p), `${p} still running after cancel`);
      await expectError(s.runScript('true', { signal: ac.signal }), CancelledError);
    });
  });
});

describe('reboot', () => {
  before(async () => waitReachable(cp2));

  test('reboot waits for the drop and a new boot id, then the session works again', async () => {
    const before = await lab.bootId(cp2);
    await withSession(target(cp2), async (s) => {
      const t0 = Date.now();
      const r = await s.reboot({ deadlineMs: 60_000, pollMs: 200 });
      assert.equal(r.before, before);
      assert.notEqual(r.after, before);
      assert.equal(r.after, await lab.bootId(cp2));
      assert.ok(Date.now() - t0 < 30_000);
      assert.equal((await s.exec('cat /proc/sys/kernel/random/boot_id')).stdoutTail, r.after);
    });
  });

  test('a host that does not come back in time gives Timeout', async () => {
    await withSession(target(cp2, { connectTimeoutMs: 500 }), async (s) => {
      const reboot = s.reboot({ deadlineMs: 3000, pollMs: 200 });
      // Once it went down, keep it unreachable past the deadline.
      while (lab.status().hosts[cp2.name]?.state === 'up') await new Promise((r) => setTimeout(r, 20));
      await lab.setUnreachable(cp2, 6000);
      const e = await expectError(reboot, TimeoutError);
      assert.match(e.message, /^k8scp-02: reboot: /);
    });
    await waitReachable(cp2);
  });
});

describe('files', () => {
  test('writeFile replaces atomically with the given mode and creates directories; readFile returns exact bytes', async () => {
    await withSession(target(cp1), async (s) => {
      const data = randomBytes(300_000);
      await s.writeFile('/opt/kha-test/deep/dir/blob.bin', data, 0o600);
      assert.equal(await hostSh(cp1, 'stat -c "%U %a %s" /opt/kha-test/deep/dir/blob.bin'), `root 600 ${data.length}\n`);
      assert.equal(await hostSh(cp1, 'stat -c "%a" /opt/kha-test/deep/dir'), '755\n');
      assert.ok((await s.readFile('/opt/kha-test/deep/dir/blob.bin')).equals(data));
      await s.writeFile('/opt/kha-test/deep/dir/blob.bin', 'replaced\n');
      assert.equal(await lab.readFile(cp1, '/opt/kha-test/deep/dir/blob.bin'), 'replaced\n');
      assert.equal(await hostSh(cp1, 'stat -c "%a" /opt/kha-test/deep/dir/blob.bin; ls -a /opt/kha-test/deep/dir | grep -c kha-write || true'), '644\n0\n');
      const e = await expectError(s.readFile('/nonexistent/file'), CommandFailedError);
      assert.match(e.message, /^k8scp-01: read \/nonexistent\/file: exited with code 1; stderr ends with:\ncat: \/nonexistent\/file: No such file or directory$/);
    });
  });
});

describe('connection reuse', () => {
  test('IdleSessions: one connection for calls in sequence, shared by up to maxShare at once, none after an error', async () => {
    const pool = new IdleSessions(60_000, 4);
    try {
      const a = await pool.take(target(cp1));
      pool.give(a, true);
      const b = await pool.take(target(cp1));
      assert.equal(b, a, 'the connection of the previous call is reused');
      assert.equal((await b.exec('hostname')).stdoutTail, 'k8scp-01');
      pool.give(b, true);

      // Nine callers at once: the first connection carries four of them; two more connections carry the rest.
      const nine = await Promise.all(Array.from({ length: 9 }, () => pool.take(target(cp1))));
      assert.equal(new Set(nine).size, 3);
      assert.ok(nine.includes(a));
      // Their commands run at the same time on the shared connections (one channel each).
      const pids = await Promise.all(nine.map((s) => s.exec('sleep 0.3; echo $$')));
      assert.equal(new Set(pids.map((r) => r.stdoutTail)).size, 9);
      for (const s of nine) pool.give(s, true);
      assert.equal(pool.size, 3);

      // A caller that saw an error: the connection takes nobody new and closes when its last caller is done.
      const c = await pool.take(target(cp1));
      const d = await pool.take(target(cp1));
      assert.equal(c, d);
      pool.give(c, false);
      const e = await pool.take(target(cp1));
      assert.notEqual(e, c);
      assert.equal(c.isAlive(), true, 'still in use by d');
      pool.give(d, true);
      assert.equal(c.isAlive(), false);
      pool.give(e, true);

      // A connection that was lost is never handed out again.
      const f = await pool.take(target(cp1));
      pool.give(f, true);
      f.close();
      const g = await pool.take(target(cp1));
      assert.notEqual(g, f);
      assert.equal((await g.exec('hostname')).stdoutTail, 'k8scp-01');
      pool.give(g, true);
    } finally {
      pool.closeAll();
    }
    assert.equal(pool.size, 0);
  });

  test('withSession closes the connection when fn throws', async () => {
    let kept: SshSession | undefined;
    await assert.rejects(
      withSession(target(cp1), async (s) => {
        kept = s;
        throw new Error('boom');
      }),
      /boom/,
    );
    assert.equal(kept?.isAlive(), false);
  });
});

async function waitGone(h: LabHost, pattern: string, ms = 8000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (!(await hostCmdlines(h)).includes(pattern)) return;
    if (Date.now() > deadline) assert.fail(`${pattern} still running on ${h.name} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function waitReachable(h: LabHost, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      await withSession(target(h, { connectTimeoutMs: 1000 }), async () => undefined);
      return;
    } catch (e) {
      if (!isTransient(e) || Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
