// What a lab's hosts cost this machine in memory. Summing RSS counts the pages every host's Node shares (the
// node binary and its libraries, ~34 MiB per process) once per host; PSS splits each shared page among the
// processes that map it, so the lab's PSS is what its hosts add, and "private" what would be freed per host.
import { netnsInode } from '../../src/lab/net';
import { pidsInNetns, readProc } from '../../src/lab/proc';
import type { Lab } from '../../src/lab/lab';

export interface LabMemory {
  hosts: number;
  processes: number;
  /** Per host, KiB: summed RSS (shared pages counted per process), PSS, private (clean + dirty) pages. */
  rssPerHostKiB: number;
  pssPerHostKiB: number;
  privatePerHostKiB: number;
  /** Per host, KiB, by process kind (sim-server, sshd, init, other): PSS. */
  pssByKindKiB: Record<string, number>;
}

function rollup(pid: number): { rss: number; pss: number; priv: number } | undefined {
  const t = readProc(pid, 'smaps_rollup');
  if (!t) return undefined;
  const kib = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(t)?.[1] ?? 0);
  return { rss: kib('Rss'), pss: kib('Pss'), priv: kib('Private_Clean') + kib('Private_Dirty') };
}

function kind(pid: number): string {
  const cmd = (readProc(pid, 'cmdline') ?? '').replace(/\0/g, ' ');
  if (cmd.includes('sim/server.js')) return 'sim-server';
  if (cmd.startsWith('sshd')) return 'sshd';
  if (cmd.startsWith('unshare ') || cmd.startsWith('sh ')) return 'init';
  return 'other';
}

export function labMemory(lab: Lab): LabMemory {
  const pids = lab.hosts.flatMap((h) => pidsInNetns(netnsInode(`kha${lab.subnetIndex}-${h.name}`) ?? -1));
  let rss = 0;
  let pss = 0;
  let priv = 0;
  const byKind: Record<string, number> = {};
  for (const p of pids) {
    const r = rollup(p);
    if (!r) continue;
    rss += r.rss;
    pss += r.pss;
    priv += r.priv;
    const k = kind(p);
    byKind[k] = (byKind[k] ?? 0) + r.pss;
  }
  const n = Math.max(1, lab.hosts.length);
  return {
    hosts: lab.hosts.length,
    processes: pids.length,
    rssPerHostKiB: Math.round(rss / n),
    pssPerHostKiB: Math.round(pss / n),
    privatePerHostKiB: Math.round(priv / n),
    pssByKindKiB: Object.fromEntries(Object.entries(byKind).map(([k, v]) => [k, Math.round(v / n)])),
  };
}
