// kha doctor FILE against 1+1 lab hosts and a bastion (subnet 85): ready, through the bastion, then one thing
// wrong at a time (key permissions, known_hosts entries for each policy, sudo that wants a password, a node nobody
// answers for), each a FAIL line with what to do and exit 1. `~/` paths expand against HOME. Nothing is recorded
// or changed anywhere.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { Lab } from '../src/lab/lab';
import { findTemporalCli } from '../src/temporal/cli-path';
import { cliEnv, kha } from './cli-run';
import { subnet } from './helpers/subnet';

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

describe('kha doctor FILE against lab hosts', () => {
  const dir = join(tmpdir(), `kha-doctor-${subnet(85)}`);
  const home = join(dir, 'home');
  let lab: Lab;
  let env: NodeJS.ProcessEnv;
  let base: Record<string, unknown>;
  let cp = '';
  let wn = '';

  /** Writes the lab's cluster file with changes to spec.ssh (and the nodes) and runs kha doctor on it. */
  async function doctor(name: string, change: (spec: { ssh: Record<string, unknown>; nodes: Array<Record<string, unknown>> }) => void = () => undefined) {
    const doc = structuredClone(base) as { spec: { ssh: Record<string, unknown>; nodes: Array<Record<string, unknown>> } };
    change(doc.spec);
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, stringify(doc));
    return { file, ...(await kha(['doctor', file], env)) };
  }

  before(async () => {
    await Lab.downDir(join(dir, 'lab'));
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(home, { recursive: true });
    lab = await Lab.up({ dir: join(dir, 'lab'), controlPlanes: 1, workers: 1, bastion: true, subnetIndex: subnet(85) });
    base = parse(lab.specYaml({ name: 'doc' })) as Record<string, unknown>;
    cp = lab.hosts.find((h) => h.role === 'control-plane')!.name;
    wn = lab.hosts.find((h) => h.role === 'worker')!.name;
    env = cliEnv({ HOME: home, XDG_STATE_HOME: join(dir, 'state'), TEMPORAL_CLI_PATH: findTemporalCli()! });
    for (const h of lab.hosts) await lab.exec(h.name, 'touch /run/kha-doctor-mark');
  });

  after(async () => {
    await lab?.down();
    rmSync(dir, { recursive: true, force: true });
  });

  it('everything ready: one ok line per check, exit 0', async () => {
    const r = await doctor('ready');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const addr = (n: string) => lab.hosts.find((h) => h.name === n)!.address;
    assert.match(r.stdout, new RegExp(`^ok {4}cluster file: ${esc(r.file)}: cluster doc, 2 nodes$`, 'm'));
    assert.match(r.stdout, new RegExp(`^ok {4}private key ${esc(lab.rootKeyPath)}: ssh-ed25519, mode 0600$`, 'm'));
    for (const n of [cp, wn]) {
      assert.match(r.stdout, new RegExp(`^ok {4}host key ${n} \\(${esc(addr(n))}\\): ssh-ed25519 at ${esc(lab.knownHostsPath)}:\\d+$`, 'm'));
      assert.match(r.stdout, new RegExp(`^ok {4}ssh ${n}: root@${esc(addr(n))}:22$`, 'm'));
    }
    assert.match(r.stdout, /^ok {4}Temporal: embedded server not running; kha deploy starts it with /m);
    assert.match(r.stdout, /^all 8 checks passed: ready to deploy$/m);
    assert.doesNotMatch(r.stdout, /^FAIL/m);
  });

  it('~/ in privateKeyPath and knownHosts.file expands against HOME; a non-root user with passwordless sudo passes', async () => {
    mkdirSync(join(home, '.ssh'), { recursive: true, mode: 0o700 });
    copyFileSync(lab.userKeyPath, join(home, '.ssh', 'id_lab'));
    chmodSync(join(home, '.ssh', 'id_lab'), 0o600);
    copyFileSync(lab.knownHostsPath, join(home, '.ssh', 'known_hosts'));
    const r = await doctor('tilde', (s) => {
      s.ssh = { ...s.ssh, user: 'kha', privateKeyPath: '~/.ssh/id_lab', knownHosts: { policy: 'known-hosts-file', file: '~/.ssh/known_hosts' } };
    });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`^ok {4}private key ${esc(join(home, '.ssh', 'id_lab'))}: ssh-ed25519, mode 0600$`, 'm'));
    assert.match(r.stdout, new RegExp(`^ok {4}host key ${cp} \\(.*\\): ssh-ed25519 at ${esc(join(home, '.ssh', 'known_hosts'))}:\\d+$`, 'm'));
    assert.match(r.stdout, new RegExp(`^ok {4}ssh ${wn}: kha@\\S+:22, sudo -n works$`, 'm'));
  });

  it('through a bastion: its host key is checked too, and SSH goes through it', async () => {
    const b = lab.bastion!;
    writeFileSync(join(dir, 'bastion.yaml'), lab.specYaml({ name: 'doc', viaBastion: true }));
    const r = await kha(['doctor', join(dir, 'bastion.yaml')], env);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`^ok {4}host key bastion ${esc(b.address)}: ssh-ed25519 at ${esc(lab.knownHostsPath)}:\\d+$`, 'm'));
    for (const n of [cp, wn]) assert.match(r.stdout, new RegExp(`^ok {4}ssh ${n}: root@\\S+:22 via bastion ${esc(b.address)}$`, 'm'));
    assert.match(r.stdout, /^all 9 checks passed: ready to deploy$/m);
  });

  it('a key other users can read fails with the chmod to run', async () => {
    const key = join(dir, 'loose-key');
    copyFileSync(lab.rootKeyPath, key);
    chmodSync(key, 0o644);
    const r = await doctor('loose', (s) => {
      s.ssh.privateKeyPath = key;
    });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`^FAIL {2}private key ${esc(key)}: mode 0644: other users can read it; chmod 600 ${esc(key)}$`, 'm'));
    assert.match(r.stdout, /^1 of 8 checks failed$/m);
  });

  it('known-hosts-file with no entries: each node fails with the ssh-keyscan line, and so does SSH', async () => {
    const empty = join(dir, 'empty_known_hosts');
    writeFileSync(empty, '');
    const r = await doctor('nokeys', (s) => {
      s.ssh.knownHosts = { policy: 'known-hosts-file', file: empty };
    });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    for (const h of lab.nodes) {
      assert.match(r.stdout, new RegExp(`^FAIL {2}host key ${h.name} \\(${esc(h.address)}\\): no entry in ${esc(empty)}; ssh-keyscan ${esc(h.address)} >> ${esc(empty)}, after checking the fingerprint against the host's$`, 'm'));
      assert.match(r.stdout, new RegExp(`^FAIL {2}ssh ${h.name}: .*is not in the known hosts file .*; record the host key`, 'm'));
    }
    assert.equal(readFileSync(empty, 'utf8'), '', 'doctor recorded nothing');
  });

  it('accept-new: unrecorded keys are fine (recorded at first deployment), SSH is checked, and nothing is recorded', async () => {
    const fresh = join(dir, 'accept-new', 'known_hosts');
    const r = await doctor('acceptnew', (s) => {
      s.ssh.knownHosts = { policy: 'accept-new', file: fresh };
    });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`^ok {4}known_hosts ${esc(fresh)}: not there yet; created at first contact \\(policy accept-new\\)$`, 'm'));
    assert.match(r.stdout, new RegExp(`^ok {4}host key ${cp} \\(.*\\): not recorded yet: the first deployment records the key the host presents \\(policy accept-new\\)$`, 'm'));
    assert.match(r.stdout, new RegExp(`^ok {4}ssh ${cp}: root@`, 'm'));
    assert.equal(existsSync(fresh), false, 'no host key was recorded');
  });

  it('pinned: the right fingerprint passes, a wrong one fails the SSH line as a changed key', async () => {
    const pins = execFileSync('ssh-keygen', ['-lf', lab.knownHostsPath], { encoding: 'utf8' });
    const right = new RegExp(`^\\d+ (SHA256:\\S+) ${cp}[, ]`, 'm').exec(pins)?.[1];
    assert.ok(right, pins);
    const wrong = 'SHA256:' + 'A'.repeat(43);
    const r = await doctor('pinned', (s) => {
      s.ssh.knownHosts = { policy: 'pinned', fingerprints: { [cp]: right, [wn]: wrong } };
    });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`^ok {4}host key ${cp} \\(.*\\): pinned ${esc(right)}$`, 'm'));
    assert.match(r.stdout, new RegExp(`^ok {4}ssh ${cp}: root@`, 'm'));
    assert.match(r.stdout, new RegExp(`^FAIL {2}ssh ${wn}: .*does not match the pinned fingerprint: expected ${esc(wrong)}, got SHA256:\\S+; find out why the host key changed before removing the old entry$`, 'm'));
  });

  it('sudo that wants a password fails with what to allow', async () => {
    const r = await doctor('sudopw', (s) => {
      s.ssh = { ...s.ssh, user: 'khapw', privateKeyPath: lab.pwUserKeyPath };
    });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`^FAIL {2}ssh ${cp}: .*; allow khapw passwordless sudo \\(NOPASSWD in /etc/sudoers\\.d\\) or connect as root$`, 'm'));
  });

  it('a node address nobody answers at fails its SSH line with what to check', async () => {
    const r = await doctor('unreachable', (s) => {
      s.ssh.connectTimeoutSeconds = 2;
      s.nodes[1]!.address = `198.18.${subnet(85)}.99`;
    });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`^FAIL {2}ssh ${wn}: .*198\\.18\\.85\\.99:22.*; check the address, that sshd listens on port 22, and firewalls between here and the host$`, 'm'));
    assert.match(r.stdout, new RegExp(`^ok {4}ssh ${cp}: `, 'm'));
  });

  it('changed nothing on the hosts: no file under /tmp, /var/tmp, /home or /etc is newer than the start', async () => {
    for (const h of lab.hosts) {
      const r = await lab.exec(h.name, 'find /tmp /var/tmp /home /etc -newer /run/kha-doctor-mark -print 2>/dev/null || true');
      assert.equal(r.stdout.trim(), '', `${h.name}: ${r.stdout}`);
    }
  });
});
