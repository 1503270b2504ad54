// `kha lab up | down | status`: simulated hosts on this machine (see src/lab/README.md).
import { writeFileSync } from 'node:fs';
import { defaultLabDir, Lab, LabDirRefusedError, LabNeedsRootError } from '../lab/lab';
import { didYouMean } from './suggest';

const USAGE = `usage:
  kha lab up --nodes CP+W --out FILE [--dir DIR] [--bastion] [--subnet N] [--reboot-delay-ms MS] [--user root|kha|khapw] [--kube sim|real]
  kha lab down [--dir DIR]
  kha lab status [--dir DIR] [--json]

Starts CP control-plane and W worker hosts (network namespaces with their own sshd on
198.18.<N>.0/24) and writes a cluster file for them. DIR defaults to $KHA_LAB_DIR or /var/lib/kha/lab;
it must not exist, be empty, or be one a lab made (it holds .kha-lab): up and down refuse any other.
--kube real gives the hosts real kubeadm, kubelet, etcd, API servers, containerd and runc (built once by
scripts/kube-build.sh); the default, sim, is the fast simulator. Needs root.
`;

class UsageError extends Error {}

function parse(argv: string[], booleans: string[], withValue: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(0, eq) : a;
    if (withValue.includes(name)) {
      const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
      if (!v) throw new UsageError(`${name} needs a value`);
      out.set(name, v);
    } else if (booleans.includes(name) && eq < 0) {
      out.set(name, 'true');
    } else {
      throw new UsageError(`unexpected argument "${a}"${a.startsWith('-') ? didYouMean(name, [...booleans, ...withValue]) : ''}`);
    }
  }
  return out;
}

function intValue(v: string | undefined, name: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < min || n > max) throw new UsageError(`${name} ${v}: expected a whole number from ${min} to ${max}`);
  return n;
}

async function up(argv: string[]): Promise<number> {
  const o = parse(argv, ['--bastion'], ['--nodes', '--out', '--dir', '--subnet', '--reboot-delay-ms', '--user', '--kube']);
  const nodes = o.get('--nodes');
  const out = o.get('--out');
  if (!nodes || !out) throw new UsageError('--nodes and --out are required');
  const m = /^(\d+)\+(\d+)$/.exec(nodes);
  if (!m) throw new UsageError(`--nodes ${nodes}: expected CONTROLPLANES+WORKERS such as 3+3`);
  const user = o.get('--user') ?? 'root';
  if (!['root', 'kha', 'khapw'].includes(user)) throw new UsageError(`--user ${user}: expected root, kha or khapw`);
  const kube = o.get('--kube') ?? 'sim';
  if (kube !== 'sim' && kube !== 'real') throw new UsageError(`--kube ${kube}: expected sim or real`);
  const started = Date.now();
  const lab = await Lab.up({
    kube,
    dir: o.get('--dir') ?? defaultLabDir(),
    controlPlanes: Number(m[1]),
    workers: Number(m[2]),
    bastion: o.has('--bastion'),
    subnetIndex: intValue(o.get('--subnet'), '--subnet', 0, 255),
    rebootDelayMs: intValue(o.get('--reboot-delay-ms'), '--reboot-delay-ms', 0, 600_000),
  });
  writeFileSync(out, lab.specYaml({ user }));
  process.stdout.write(`lab up in ${Date.now() - started} ms: ${lab.hosts.length} hosts on ${lab.bridge} (${lab.gateway.replace(/\.1$/, '.0/24')}), VIP ${lab.vip}\n`);
  for (const h of lab.hosts) process.stdout.write(`  ${h.name.padEnd(12)} ${h.address.padEnd(15)} ${h.role}\n`);
  process.stdout.write(`cluster file: ${out}\nroot key: ${lab.rootKeyPath}\nknown_hosts: ${lab.knownHostsPath}\nstop it with: kha lab down --dir ${lab.dir}\n`);
  return 0;
}

async function down(argv: string[]): Promise<number> {
  const o = parse(argv, [], ['--dir']);
  const dir = o.get('--dir') ?? defaultLabDir();
  await Lab.downDir(dir);
  process.stdout.write(`lab in ${dir} is down\n`);
  return 0;
}

async function status(argv: string[]): Promise<number> {
  const o = parse(argv, ['--json'], ['--dir']);
  const lab = await Lab.attach(o.get('--dir') ?? defaultLabDir());
  const running = lab.isRunning();
  const st = running ? lab.status() : undefined;
  const rows = await Promise.all(
    lab.hosts.map(async (h) => {
      const s = st?.hosts[h.name];
      const state = running ? (s?.state ?? 'unknown') + (s?.unreachableUntil ? ' (unreachable)' : '') : 'down';
      const bootId = s?.state === 'up' ? await lab.bootId(h).catch(() => '-') : '-';
      return { ...h, state, boots: s?.boots ?? 0, bootId };
    }),
  );
  if (o.has('--json')) {
    process.stdout.write(JSON.stringify({ dir: lab.dir, running, bridge: lab.bridge, vip: lab.vip, hosts: rows }, null, 2) + '\n');
    return running ? 0 : 1;
  }
  process.stdout.write(`lab ${lab.dir}: ${running ? 'running' : 'not running (supervisor gone; run kha lab down)'}, bridge ${lab.bridge}, VIP ${lab.vip}\n`);
  process.stdout.write(`  ${'HOST'.padEnd(12)} ${'ADDRESS'.padEnd(15)} ${'ROLE'.padEnd(14)} ${'STATE'.padEnd(10)} BOOTS BOOT ID\n`);
  for (const r of rows) {
    process.stdout.write(`  ${r.name.padEnd(12)} ${r.address.padEnd(15)} ${r.role.padEnd(14)} ${r.state.padEnd(10)} ${String(r.boots).padEnd(5)} ${r.bootId}\n`);
  }
  return running ? 0 : 1;
}

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  try {
    switch (sub) {
      case 'up':
        return await up(rest);
      case 'down':
        return await down(rest);
      case 'status':
        return await status(rest);
      case '-h':
      case '--help':
        process.stdout.write(USAGE);
        return 0;
      default:
        throw new UsageError(sub ? `unknown subcommand "${sub}"${didYouMean(sub, ['up', 'down', 'status'])}` : 'missing subcommand');
    }
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`kha lab: ${e.message}\n${USAGE}`);
      return 2;
    }
    if (e instanceof LabNeedsRootError || e instanceof LabDirRefusedError) {
      process.stderr.write(`kha lab: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
