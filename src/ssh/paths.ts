// Paths from the cluster file may start with ~/ (the schema allows it); they mean the home directory of
// the process that reads the file, which is the worker.
import { homedir } from 'node:os';
import { join } from 'node:path';

/** `~/x` as `$HOME/x` (os.homedir() reads HOME first); other paths unchanged. */
export function expandHome(p: string): string {
  if (p === '~') return homedir();
  return p.startsWith('~/') ? join(homedir(), p.slice(2)) : p;
}
