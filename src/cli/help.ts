// `kha help COMMAND`: a command's own --help text. The completion script reads its options from the same text,
// so what TAB offers is what the help shows.
import { didYouMean } from './suggest';

export type Command = { summary: string; load: () => Promise<{ run(argv: string[]): Promise<number> }> };

/** What `kha NAME --help` prints, captured. */
export async function usageText(cmd: Command): Promise<string> {
  const m = await cmd.load();
  let text = '';
  const write = process.stdout.write;
  process.stdout.write = ((chunk: string | Uint8Array) => {
    text += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    return true;
  }) as typeof process.stdout.write;
  try {
    await m.run(['--help']);
  } finally {
    process.stdout.write = write;
  }
  return text;
}

const USAGE = 'usage: kha help [COMMAND]\n\nShows how to use COMMAND: its arguments, options and exit status; without one, every command.\n';

export async function run(argv: string[], commands: Record<string, Command>, overview: string): Promise<number> {
  const [name, ...rest] = argv;
  if (!name) {
    process.stdout.write(overview);
    return 0;
  }
  if (name === '-h' || name === '--help' || (name === 'help' && !rest.length)) {
    process.stdout.write(USAGE);
    return 0;
  }
  const cmd = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!cmd || rest.length) {
    process.stderr.write(rest.length ? `kha help: one command at a time (got ${argv.join(' ')})\n` : `kha help: unknown command "${name}"${didYouMean(name, Object.keys(commands))}\n\n${overview}`);
    return 2;
  }
  process.stdout.write(await usageText(cmd));
  return 0;
}
