// The lab's host infrastructure, tested with the real OpenSSH client against the hosts' real sshd.
// Needs root (namespaces, mounts), like the lab itself.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, LabDirRefusedError, LabNeedsRootError } from '../src/lab/lab';
import { ClusterFile } from '../src/spec/schema';
import { parse } from 'yaml';
import { simTools } from '../src/lab/tools';
import { readHostFaults } from '../src/lab/faults';
import { claimSubnet, pickSubnet } from '../src/lab/cleanup';
import { createBridge } from '../src/lab/net';
import { sleep } from '../src/util/sleep';

interface SshResult {
  code: number;
  stdout: string;
  stderr: string;
}

interface SshOptions {
  key?: string;
  knownHosts?: string;
  extra?: string[];
  input?: string;
  timeoutMs?: number;
  onStdout?: (soFar: string) => void;
}

function ssh(lab: Lab, address: string, user: string, cmd: string, opts: SshOptions = {}): Promise<SshResult> {
  const key = opts.key ?? (user === 'kha' ? lab.userKeyPath : user === 'khapw' ? lab.pwUserKeyPath : lab.rootKeyPath);
  // ssh keeps the first value of an option: extra options come first to override the defaults.
  const args = [
    ...(opts.extra ?? []),
    '-F', '/dev/null',
    '-o', 'BatchMode=yes',
    '-o', `UserKnownHostsFile=${opts.knownHosts ?? lab.knownHostsPath}`,
    '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'StrictHostKeyChecking=yes',
    '-o', 'ConnectTimeout=3',
    '-o', 'IdentitiesOnly=yes',
    '-i', key,
    `${user}@${address}`,
    cmd,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn('ssh', args, { timeout: opts.timeoutMs ?? 20_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      opts.onStdout?.(stdout);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(opts.input ?? '');
  });
}


function labNetns(subnetIndex: number): string[] {
  return existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.startsWith(`kha${subnetIndex}-`)) : [];
}

function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '').filter((m) => m === dir || m.startsWith(dir + '/'));
}

/** Processes on this machine whose command line or working directory mentions the lab directory. */
function processesOf(dir: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8');
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      if (cmd.includes(dir) && !/\) Z /.test(stat)) out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

function assertNothingLeft(dir: string, subnetIndex: number, bridge: string): void {
  assert.deepEqual(labNetns(subnetIndex), [], 'no network namespace left');
  assert.equal(existsSync(`/sys/class/net/${bridge}`), false, 'bridge removed');
  assert.deepEqual(readdirSync('/sys/class/net').filter((n) => n.startsWith(`khv${subnetIndex}-`)), [], 'no veth left');
  assert.deepEqual(mountsUnder(dir), [], 'no mount left');
  assert.deepEqual(processesOf(dir), [], 'no process left');
  assert.equal(existsSync(dir), false, 'lab directory removed');
}

const base = mkdtempSync('/var/tmp/kha-lab-infra-');

describe('lab hosts (3 control planes, 2 workers, bastion)', () => {
  let lab: Lab;
  before(async () => {
    lab = await Lab.up({ dir: join(base, 'main'), controlPlanes: 3, workers: 2, bastion: true, rebootDelayMs: 500 });
  });
  after(async () => {
    await lab?.down();
  });

  test('every host answers SSH as root with the lab key and known_hosts, under its own hostname', async () => {
    const names = await Promise.all(lab.hosts.map(async (h) => {
      const r = await ssh(lab, h.address, 'root', 'hostname; cat /etc/hostname');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${h.name}\n${h.name}\n`);
      return r.stdout;
    }));
    assert.equal(new Set(names).size, lab.hosts.length);
    assert.deepEqual(lab.hosts.map((h) => h.name), ['k8scp-01', 'k8scp-02', 'k8scp-03', 'k8swn-01', 'k8swn-02', 'bastion']);
  });

  test('host keys differ per host: a known_hosts entry of another host is refused', async () => {
    const lines = readFileSync(lab.knownHostsPath, 'utf8').trim().split('\n');
    const keys = lines.map((l) => l.split(' ')[2]);
    assert.equal(new Set(keys).size, lab.hosts.length);
    const [a, b] = lab.hosts;
    // a's name and address with b's key
    const wrong = join(base, 'wrong_known_hosts');
    writeFileSync(wrong, `${a!.name},${a!.address} ${lines[1]!.split(' ').slice(1).join(' ')}\n`);
    const r = await ssh(lab, a!.address, 'root', 'true', { knownHosts: wrong });
    assert.equal(r.code, 255);
    assert.match(r.stderr, /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
    void b;
  });

  test('user kha has passwordless sudo; khapw needs a password for sudo', async () => {
    const h = lab.hosts[0]!;
    const k = await ssh(lab, h.address, 'kha', 'id -un; sudo -n id -u');
    assert.equal(k.code, 0, k.stderr);
    assert.equal(k.stdout, 'kha\n0\n');
    const p = await ssh(lab, h.address, 'khapw', 'id -un; sudo -n true');
    assert.equal(p.code, 1);
    assert.equal(p.stdout, 'khapw\n');
    assert.match(p.stderr, /sudo: a password is required/);
    const password = readFileSync(lab.pwUserPasswordPath, 'utf8').trim();
    const ok = await ssh(lab, h.address, 'khapw', 'sudo -S -p "" id -u', { input: password + '\n' });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, '0\n');
    // root's key does not open the user accounts
    const wrongKey = await ssh(lab, h.address, 'kha', 'true', { key: lab.rootKeyPath });
    assert.equal(wrongKey.code, 255);
    assert.match(wrongKey.stderr, /Permission denied/);
  });

  test('simulated tools come first on PATH for root over SSH and through sudo', async () => {
    const tools = [...simTools().keys()];
    assert.ok(tools.includes('systemctl') && tools.includes('reboot'), `sim tools: ${tools.join(' ')}`);
    const h = lab.hosts[1]!;
    const probe = tools.map((t) => `command -v ${t}`).join('; ');
    const asRoot = await ssh(lab, h.address, 'root', probe);
    assert.equal(asRoot.code, 0, asRoot.stderr);
    assert.deepEqual(asRoot.stdout.trim().split('\n'), tools.map((t) => `/usr/local/sbin/${t}`));
    const viaSudo = await ssh(lab, h.address, 'kha', `sudo -n sh -c '${probe}'`);
    assert.equal(viaSudo.code, 0, viaSudo.stderr);
    assert.deepEqual(viaSudo.stdout.trim().split('\n'), tools.map((t) => `/usr/local/sbin/${t}`));
    const wrapper = await lab.readFile(h, '/usr/local/sbin/systemctl');
    assert.match(wrapper, /dist\/src\/lab\/sim\/main\.js' systemctl "\$@"/);
  });

  test('what a host writes stays in that host', async () => {
    const [a, b] = lab.hosts;
    const marker = `probe-${Date.now()}`;
    const r = await ssh(lab, a!.address, 'root', `echo ${marker} > /etc/kha-lab-probe && echo ${marker} >> /etc/passwd && mkdir -p /opt/kha-probe && touch /opt/kha-probe/x /tmp/p /dev/kha-probe`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await lab.readFile(a!, '/etc/kha-lab-probe')).trim(), marker);
    for (const p of ['/etc/kha-lab-probe', '/opt/kha-probe', '/dev/kha-probe']) assert.equal(existsSync(p), false, `${p} reached this machine`);
    assert.ok(!readFileSync('/etc/passwd', 'utf8').includes(marker), '/etc/passwd of this machine changed');
    const other = await lab.exec(b!, `test -e /etc/kha-lab-probe || test -e /opt/kha-probe || grep -q ${marker} /etc/passwd; echo $?`);
    assert.equal(other.stdout.trim(), '1', 'the other host sees the file');
    // The lab directory (keys, other hosts' layers) is hidden inside hosts.
    const hidden = await lab.exec(a!, `ls -A ${lab.dir} | wc -l; test -e ${lab.rootKeyPath}; echo $?`);
    assert.equal(hidden.stdout, '0\n1\n');
  });

  test('network: eth0 with the lab address, lo up, only the lab subnet routed', async () => {
    const h = lab.hosts[2]!;
    const r = await lab.exec(h, 'ip -4 -o addr show | awk \'{print $2, $4}\'; ip -4 route show');
    assert.equal(r.code, 0, r.stderr);
    const prefix = lab.gateway.replace(/\.1$/, '');
    assert.equal(r.stdout, `lo 127.0.0.1/8\neth0 ${h.address}/24\n${prefix}.0/24 dev eth0 proto kernel scope link src ${h.address} \n`);
    assert.match(lab.gateway, /^198\.1[89]\./);
    // No route off the bridge, whatever this machine forwards (asking the kernel sends nothing).
    const off = await lab.exec(h, 'ip route get 203.0.113.1');
    assert.notEqual(off.code, 0, off.stdout);
    assert.match(off.stderr, /Network is unreachable/);
    assert.equal((await lab.exec(h, `ip route get ${lab.gateway}`)).code, 0, 'the bridge side stays reachable');
    // names: lab hosts from /etc/hosts; no DNS server outside the lab
    const names = await lab.exec(h, `getent hosts ${lab.hosts[0]!.name}; grep -c '^nameserver 127.0.0.1$' /etc/resolv.conf; grep -v '^#' /etc/resolv.conf | grep -c nameserver`);
    assert.equal(names.stdout.replace(/ +/, ' '), `${lab.hosts[0]!.address} ${lab.hosts[0]!.name}\n1\n1\n`);
    // hosts reach each other directly
    const peer = await ssh(lab, h.address, 'root', `cat < /dev/null > /dev/tcp/${lab.hosts[0]!.address}/22 && echo reach`, {});
    assert.equal(peer.stdout, 'reach\n', peer.stderr);
  });

  test('a command through the bastion reaches a node from the bastion address', async () => {
    const bastion = lab.bastion!;
    const node = lab.hosts[3]!;
    const r = await ssh(lab, node.address, 'root', 'echo $SSH_CONNECTION', {
      extra: ['-o', `ProxyCommand=ssh -F /dev/null -o BatchMode=yes -o UserKnownHostsFile=${lab.knownHostsPath} -o StrictHostKeyChecking=yes -i ${lab.rootKeyPath} -W %h:%p root@${bastion.address}`],
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.split(' ')[0], bastion.address);
  });

  test('boot_id is per host; a reboot drops SSH, clears /run, keeps disk, and brings sshd back with a new boot id', async () => {
    const h = lab.hosts[0]!;
    const ids = await Promise.all(lab.hosts.map((x) => lab.bootId(x)));
    assert.equal(new Set(ids).size, lab.hosts.length);
    const before = await ssh(lab, h.address, 'root', 'cat /proc/sys/kernel/random/boot_id; mkdir -p /run/kha-sim && touch /run/kha-sim/modules /etc/persisted');
    assert.equal(before.stdout.trim(), ids[0]);
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    const long = ssh(lab, h.address, 'root', 'echo started; sleep 30; echo finished', { onStdout: (out) => out.includes('started') && started() });
    await running;
    const t0 = Date.now();
    await lab.reboot(h);
    const dropped = await long;
    assert.equal(dropped.code, 255, `ssh exit ${dropped.code}: ${dropped.stderr}`);
    assert.equal(dropped.stdout, 'started\n');
    assert.ok(Date.now() - t0 < 5000, 'the connection dropped at the reboot');
    await lab.waitUp(h, 10_000);
    const after = await ssh(lab, h.address, 'root', 'cat /proc/sys/kernel/random/boot_id; test -e /run/kha-sim/modules; echo run=$?; test -e /etc/persisted; echo disk=$?');
    assert.equal(after.code, 0, after.stderr);
    const [newId, run, disk] = after.stdout.trim().split('\n');
    assert.match(newId!, /^[0-9a-f-]{36}$/);
    assert.notEqual(newId, ids[0]);
    assert.equal(run, 'run=1');
    assert.equal(disk, 'disk=0');
    assert.equal(lab.status().hosts[h.name]!.boots, 2);
  });

  test('a host that asks for a reboot through the shared directory reboots', async () => {
    const h = lab.hosts[4]!;
    const id = await lab.bootId(h);
    const r = await ssh(lab, h.address, 'root', 'echo "{}" > /kha-lab/reboot-requests/$(hostname).json; sleep 20', { timeoutMs: 15_000 });
    assert.equal(r.code, 255, 'the session ends with the host');
    await lab.waitUp(h, 10_000);
    assert.notEqual(await lab.bootId(h), id);
  });

  test('an unreachable host drops packets for the given time, then answers again', async () => {
    const h = lab.hosts[1]!;
    const t0 = Date.now();
    await lab.setUnreachable(h, 4000);
    const r = await ssh(lab, h.address, 'root', 'true', { extra: ['-o', 'ConnectTimeout=2'] });
    assert.equal(r.code, 255);
    assert.match(r.stderr, /timed out|No route to host/);
    assert.ok(Date.now() - t0 < 4000, 'the attempt ended before the link came back');
    assert.ok(lab.status().hosts[h.name]!.unreachableUntil! > Date.now());
    await sleep(Math.max(0, 4300 - (Date.now() - t0)));
    const ok = await ssh(lab, h.address, 'root', 'hostname');
    assert.equal(ok.stdout, `${h.name}\n`, ok.stderr);
    assert.equal(lab.status().hosts[h.name]!.unreachableUntil, undefined);
  });

  test('faults, latency and the clock land in the shared directory every host mounts', async () => {
    const h = lab.hosts[2]!;
    lab.setFaults(h, [{ command: 'kubeadm', argsMatch: '^join', nth: 2, exitCode: 1, stderr: 'boom' }]);
    lab.setLatency(h, 150);
    lab.setClockOffset(3 * 3600);
    const f = JSON.parse((await lab.exec(h, `cat /kha-lab/faults/${h.name}.json`)).stdout) as { faults: unknown[]; latencyMs: number; generation: string };
    assert.deepEqual(f.faults, [{ command: 'kubeadm', argsMatch: '^join', nth: 2, exitCode: 1, stderr: 'boom' }]);
    assert.equal(f.latencyMs, 150);
    assert.equal(readHostFaults(lab.sharedDir, h.name).generation, f.generation);
    assert.deepEqual(JSON.parse((await lab.exec(h, 'cat /kha-lab/clock.json')).stdout), { offsetMs: 10_800_000 });
    lab.clearFaults(h);
    assert.equal((await lab.exec(h, `test -e /kha-lab/faults/${h.name}.json; echo $?`)).stdout, '1\n');
  });

  test('hostKey reports the key in known_hosts; rotateHostKey changes it and ssh then refuses the host', async () => {
    const h = lab.hosts[3]!;
    const key = await lab.hostKey(h);
    const line = readFileSync(lab.knownHostsPath, 'utf8').split('\n').find((l) => l.startsWith(`${h.name},`))!;
    assert.equal(line.split(' ').slice(1).join(' '), key.publicKey);
    const printed = spawnSync('ssh-keygen', ['-l', '-f', '-'], { input: line + '\n', encoding: 'utf8' }).stdout;
    assert.equal(printed.split(' ')[1], key.fingerprint);
    const rotated = await lab.rotateHostKey(h);
    assert.notEqual(rotated.fingerprint, key.fingerprint);
    const r = await ssh(lab, h.address, 'root', 'true');
    assert.equal(r.code, 255);
    assert.match(r.stderr, /REMOTE HOST IDENTIFICATION HAS CHANGED/);
    assert.ok(r.stderr.includes(rotated.fingerprint), 'ssh names the new fingerprint');
  });

  test('the cluster file for the lab is valid and points at the lab', () => {
    const doc = ClusterFile.parse(parse(lab.specYaml()));
    assert.equal(doc.spec.nodes.length, 5);
    assert.equal(doc.spec.ssh.privateKeyPath, lab.rootKeyPath);
    assert.deepEqual(doc.spec.ssh.knownHosts, { policy: 'known-hosts-file', file: lab.knownHostsPath });
    assert.equal(doc.spec.controlPlaneEndpoint.vip, lab.vip);
    assert.equal(doc.spec.controlPlaneEndpoint.interface, 'eth0');
    assert.ok(!lab.hosts.some((h) => h.address === lab.vip));
    const viaBastion = ClusterFile.parse(parse(lab.specYaml({ user: 'kha', viaBastion: true })));
    assert.equal(viaBastion.spec.ssh.user, 'kha');
    assert.equal(viaBastion.spec.ssh.privateKeyPath, lab.userKeyPath);
    assert.equal(viaBastion.spec.ssh.bastion?.address, lab.bastion!.address);
  });
});

describe('lab lifecycle', () => {
  test('down leaves no namespace, mount, process, bridge or file', async () => {
    const dir = join(base, 'down');
    const lab = await Lab.up({ dir, controlPlanes: 1, workers: 1 });
    assert.equal(labNetns(lab.subnetIndex).length, 2);
    assert.ok(processesOf(dir).length > 0);
    await lab.down();
    assertNothingLeft(dir, lab.subnetIndex, lab.bridge);
  });

  test('up after a crash (processes killed, namespaces and bridge left) recovers', async () => {
    const dir = join(base, 'crash');
    const first = await Lab.up({ dir, controlPlanes: 1, workers: 1 });
    const oldIds = await Promise.all(first.hosts.map((h) => first.bootId(h)));
    // Crash: kill the supervisor and every host process; namespaces, bridge and files stay.
    for (const pid of processesOf(dir)) process.kill(pid, 'SIGKILL');
    for (const h of first.hosts) {
      const pids = spawnSync('ip', ['netns', 'pids', `kha${first.subnetIndex}-${h.name}`], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
      for (const pid of pids) process.kill(Number(pid), 'SIGKILL');
    }
    await sleep(200);
    assert.equal(first.isRunning(), false);
    assert.equal(labNetns(first.subnetIndex).length, 2, 'the crash left the namespaces');
    assert.deepEqual(mountsUnder(dir), [join(dir, 'hosts')], 'the crash left the host layers mounted');
    const second = await Lab.up({ dir, controlPlanes: 1, workers: 1, subnetIndex: first.subnetIndex });
    try {
      for (const h of second.hosts) {
        const r = await ssh(second, h.address, 'root', 'cat /proc/sys/kernel/random/boot_id');
        assert.equal(r.code, 0, r.stderr);
        assert.ok(!oldIds.includes(r.stdout.trim()));
      }
    } finally {
      await second.down();
    }
    assertNothingLeft(dir, second.subnetIndex, second.bridge);
  });

  test('a run that died after claiming its subnet, before writing lab.json, is cleared by down', async () => {
    const dir = join(base, 'early-crash');
    const index = pickSubnet();
    assert.equal(await createBridge(index), true);
    claimSubnet(index, dir);
    await Lab.downDir(dir);
    assert.equal(existsSync(`/sys/class/net/khabr${index}`), false);
    assert.equal(existsSync(`/run/kha-lab/subnet-${index}`), false);
    await assert.rejects(Lab.up({ dir, controlPlanes: 0, workers: 0 }), /a lab needs at least one host/);
    assert.equal(existsSync(dir), false);
  });

  test('up and down refuse a directory the lab did not create and leave it untouched', async () => {
    // Names the lab removes on down, in a directory that is not a lab's (think --dir /etc).
    const dir = join(base, 'not-a-lab');
    mkdirSync(join(dir, 'keys'), { recursive: true });
    for (const f of ['hosts', 'lab.json', 'known_hosts', 'keys/id']) writeFileSync(join(dir, f), `mine: ${f}\n`);
    const before = readdirSync(dir).sort();
    await assert.rejects(Lab.downDir(dir), (e: Error) => e instanceof LabDirRefusedError && e.message.includes(`${dir} was not created by kha lab`));
    await assert.rejects(Lab.up({ dir, controlPlanes: 1, workers: 0 }), LabDirRefusedError);
    const cli = spawnSync(process.execPath, [join(__dirname, '../src/cli/main.js'), 'lab', 'down', '--dir', dir], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(cli.status, 1, cli.stderr);
    assert.match(cli.stderr, /^kha lab: .*not-a-lab was not created by kha lab \(no \.kha-lab file in it\); refusing to remove lab files from it; give --dir a new or empty directory\n$/);
    assert.deepEqual(readdirSync(dir).sort(), before);
    for (const f of ['hosts', 'lab.json', 'known_hosts', 'keys/id']) assert.equal(readFileSync(join(dir, f), 'utf8'), `mine: ${f}\n`);
  });

  test('an empty directory can hold a lab; files added to a lab directory survive down, and the next up reuses it', async () => {
    const dir = join(base, 'empty');
    mkdirSync(dir);
    const lab = await Lab.up({ dir, controlPlanes: 1, workers: 0 });
    writeFileSync(join(dir, 'notes.txt'), 'mine\n');
    await lab.down();
    assert.deepEqual(readdirSync(dir).sort(), ['.kha-lab', 'notes.txt']);
    const again = await Lab.up({ dir, controlPlanes: 1, workers: 0 });
    await again.down();
    assert.equal(readFileSync(join(dir, 'notes.txt'), 'utf8'), 'mine\n');
  });

  test('kha lab up writes a valid cluster file; status lists hosts with boot ids; down removes it all', () => {
    const dir = join(base, 'cli');
    const out = join(base, 'cli-lab.yaml');
    const cli = (...args: string[]) => spawnSync(process.execPath, [join(__dirname, '../src/cli/main.js'), 'lab', ...args], { encoding: 'utf8', timeout: 60_000 });
    const up = cli('up', '--nodes', '1+2', '--out', out, '--dir', dir, '--user', 'kha');
    assert.equal(up.status, 0, up.stderr);
    assert.match(up.stdout, /^lab up in \d+ ms: 3 hosts on khabr\d+ \(198\.18\.\d+\.0\/24\), VIP 198\.18\.\d+\.10\n/);
    const doc = ClusterFile.parse(parse(readFileSync(out, 'utf8')));
    assert.deepEqual(doc.spec.nodes.map((n) => [n.name, n.role]), [['k8scp-01', 'control-plane'], ['k8swn-01', 'worker'], ['k8swn-02', 'worker']]);
    assert.equal(doc.spec.ssh.user, 'kha');
    const st = cli('status', '--dir', dir, '--json');
    assert.equal(st.status, 0, st.stderr);
    const json = JSON.parse(st.stdout) as { running: boolean; bridge: string; hosts: { name: string; address: string; state: string; bootId: string }[] };
    assert.equal(json.running, true);
    assert.deepEqual(json.hosts.map((h) => [h.name, h.address, h.state]), doc.spec.nodes.map((n) => [n.name, n.address, 'up']));
    for (const h of json.hosts) assert.match(h.bootId, /^[0-9a-f-]{36}$/);
    const text = cli('status', '--dir', dir);
    assert.match(text.stdout, /k8swn-02\s+198\.18\.\d+\.13\s+worker\s+up\s+1\s+[0-9a-f-]{36}/);
    const subnet = Number(/khabr(\d+)/.exec(json.bridge)![1]);
    const down = cli('down', '--dir', dir);
    assert.equal(down.status, 0, down.stderr);
    assertNothingLeft(dir, subnet, json.bridge);
    const bad = cli('up', '--nodes', '3x3', '--out', out);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--nodes 3x3: expected CONTROLPLANES\+WORKERS such as 3\+3/);
  });

  test('without root, kha lab up says to run it as root', () => {
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, join(__dirname, '../src/cli/main.js'), 'lab', 'up', '--nodes', '1+1', '--out', '/dev/null', '--dir', join(base, 'noroot')], { encoding: 'utf8' });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /^kha lab: kha lab needs root .*run it as root, e\.g\. `sudo kha lab up/);
    assert.equal(existsSync(join(base, 'noroot')), false);
    assert.ok(new LabNeedsRootError().message.includes('sudo'));
  });
});

after(() => rmSync(base, { recursive: true, force: true }));
