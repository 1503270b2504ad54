// `kha backup CLUSTER [--retain N]`: a verified etcd snapshot copied to the worker's state directory (0600).
import { DEFAULT_BACKUP_RETAIN } from '../activities/day2';
import type { BackupInput } from '../workflows/backup-cluster';
import { guarded, parseArgs } from './args';
import { CliError, connectTarget } from './client';
import { day2Cluster } from './day2-target';
import { EXIT, outputMode, Printer } from './follow';
import { announceServer, followOrDetach, startOrAttach } from './workflow-run';

const USAGE = `usage: kha backup CLUSTER [--retain N] [--json] [--detach]

Takes an etcd snapshot from the first control-plane node whose member is healthy, checks it with etcdutl
snapshot status there, and copies it to the worker's state directory ($XDG_STATE_HOME/kha/CLUSTER/backups,
mode 0600); the copy on the node is removed. CLUSTER is the name of a cluster kha deployed (its spec comes
from the deployment on the server) or a cluster file. Refused while a deployment or reset of it runs.
  --retain N   keep the newest N snapshots of CLUSTER, this one included (1-1000, default ${DEFAULT_BACKUP_RETAIN})
Prints the snapshot's path, size, sha256 and etcd revision; its content never enters a workflow history.
Exit status: 0 snapshot taken, 1 failed or refused, 2 bad usage or invalid file.
`;

export async function run(argv: string[]): Promise<number> {
  return guarded('backup', async () => {
    if (argv.includes('-h') || argv.includes('--help')) {
      process.stdout.write(USAGE);
      return EXIT.ok;
    }
    const a = parseArgs(argv, ['--json', '--detach'], ['--retain'], USAGE);
    const printer = new Printer(outputMode(a.flags.has('--json')));
    if (a.positionals.length !== 1) throw new CliError(`expected one cluster name or file, got ${a.positionals.length}\n${USAGE}`, EXIT.usage);
    const rv = a.values.get('--retain');
    const retain = rv === undefined ? undefined : Number(rv);
    if (retain !== undefined && (!/^\d+$/.test(rv!) || retain < 1 || retain > 1000)) throw new CliError(`--retain ${rv}: not an integer from 1 to 1000\n${USAGE}`, EXIT.usage);
    const t = await connectTarget({ startEmbedded: true });
    try {
      announceServer(t, printer);
      const cluster = await day2Cluster(t, a.positionals[0]!, printer);
      if (!cluster) return EXIT.usage;
      const input: BackupInput = { cluster, retain };
      // Every backup is a new snapshot.
      const started = await startOrAttach(t, printer, { kind: 'backup', cluster, args: [input], again: true });
      if ('code' in started) return started.code;
      return await followOrDetach(t, printer, started.handle, { kind: 'backup', cluster: cluster.name, detach: a.flags.has('--detach') });
    } finally {
      await t.close();
    }
  });
}
