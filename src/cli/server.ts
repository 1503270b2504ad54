// `kha server`: the embedded Temporal dev server in the foreground (persistent database, Web UI, kha's search
// attributes), `--status` to show the one running, `--stop` to stop a detached one and its background worker.
import { embeddedLogFiles, embeddedServerStatus, runEmbeddedServerForeground, stateDir, stopEmbeddedServer } from '../server/embedded';
import { guarded, parseArgs, portValue } from './args';
import { CliError } from './client';
import { EXIT } from './follow';

const USAGE = `usage: kha server [--port P] [--ui-port U]
       kha server --status [--json]
       kha server --stop

Runs the embedded Temporal server in the foreground: database and logs under $XDG_STATE_HOME/kha
(default ~/.local/state/kha), the Web UI, kha's search attributes. kha deploy starts one in the background
when none runs and TEMPORAL_ADDRESS is unset.
  --port      gRPC port (default 7233, or a free one)
  --ui-port   Web UI port (default port + 1000, or a free one)
  --status    show whether it runs (exit 0) or not (exit 1)
  --stop      stop the running one and the background worker
`;

export async function run(argv: string[]): Promise<number> {
  return guarded('server', async () => {
    if (argv.includes('-h') || argv.includes('--help')) {
      process.stdout.write(USAGE);
      return EXIT.ok;
    }
    const a = parseArgs(argv, ['--status', '--stop', '--json'], ['--port', '--ui-port'], USAGE);
    if (a.positionals.length) throw new CliError(`unexpected argument "${a.positionals[0]}"\n${USAGE}`, EXIT.usage);
    if (a.flags.has('--status')) {
      const st = await embeddedServerStatus();
      if (a.flags.has('--json')) {
        process.stdout.write(`${JSON.stringify({ running: st.running, reason: st.reason, stateDir: st.stateDir, server: st.record, worker: st.worker })}\n`);
      } else if (st.running && st.record) {
        const r = st.record;
        process.stdout.write(
          [
            `running: pid ${r.pid}, ${r.mode}, since ${r.startedAt}`,
            `address: ${r.address} (namespace ${r.namespace})`,
            `Web UI: ${r.uiUrl}`,
            `database: ${r.dbFile}`,
            `log: ${r.logFile}`,
            `background worker: ${st.worker?.running ? `pid ${st.worker.pid}` : 'none'}`,
          ].join('\n') + '\n',
        );
      } else {
        process.stdout.write(`not running: ${st.reason}\nstart it with: kha server (foreground) or kha deploy FILE (background)\n`);
      }
      return st.running ? EXIT.ok : EXIT.failed;
    }
    if (a.flags.has('--stop')) {
      const stopped = await stopEmbeddedServer();
      process.stdout.write(stopped.length ? `stopped ${stopped.join(' and ')}\n` : 'nothing was running\n');
      return EXIT.ok;
    }
    const port = portValue(a.values.get('--port'), '--port', USAGE);
    const uiPort = portValue(a.values.get('--ui-port'), '--ui-port', USAGE);
    try {
      return await runEmbeddedServerForeground({
        port,
        uiPort,
        onReady: (r) => {
          process.stdout.write(
            `kha server: Temporal ${r.address} (namespace ${r.namespace}), Web UI ${r.uiUrl}, database ${r.dbFile} (pid ${r.pid}); Ctrl-C stops it\n` +
              `kha deploy FILE uses it while TEMPORAL_ADDRESS is unset; worker logs go to ${embeddedLogFiles().inProcessWorker}\n`,
          );
        },
      });
    } catch (e) {
      throw new CliError(`${(e as Error).message} (state directory ${stateDir()})`);
    }
  });
}
