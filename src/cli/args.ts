// A small argv parser for the operator commands: known flags, flags with a value, positionals.
import { CliError } from './client';
import { didYouMean } from './suggest';

export interface Parsed {
  flags: Set<string>;
  values: Map<string, string>;
  positionals: string[];
}

/**
 * `booleans` are flags without a value; `withValue` take one (`--port 7233` or `--port=7233`).
 * Unknown options and missing values are usage errors (exit 2).
 */
export function parseArgs(argv: string[], booleans: string[], withValue: string[], usage: string): Parsed {
  const flags = new Set<string>();
  const values = new Map<string, string>();
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(0, eq) : a;
    if (withValue.includes(name)) {
      const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined || v === '') throw new CliError(`${name} needs a value\n${usage}`, 2);
      values.set(name, v);
    } else if (booleans.includes(name) && eq < 0) {
      flags.add(name);
    } else {
      throw new CliError(`unknown option "${a}"${didYouMean(name, [...booleans, ...withValue, '--help'])}\n${usage}`, 2);
    }
  }
  return { flags, values, positionals };
}

/** Runs a command body; a CliError (or any error) becomes a message on stderr and an exit code. */
export async function guarded(command: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (e) {
    if (e instanceof CliError) {
      process.stderr.write(`kha ${command}: ${e.message}\n`);
      return e.code;
    }
    throw e;
  }
}

export function portValue(v: string | undefined, name: string, usage: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0 || n > 65535) throw new CliError(`${name} ${v}: not a port number\n${usage}`, 2);
  return n;
}
