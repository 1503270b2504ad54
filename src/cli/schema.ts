// `kha schema`: print the JSON Schema of the cluster file.
import { clusterJsonSchema } from '../spec/json-schema';

const USAGE = 'usage: kha schema\n\nPrints the JSON Schema (draft 2020-12) of the cluster file, for editors such as yaml-language-server.\n';

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (argv.length) {
    process.stderr.write(`kha schema: unexpected argument "${argv[0]}"\n${USAGE}`);
    return 2;
  }
  process.stdout.write(`${JSON.stringify(clusterJsonSchema(), null, 2)}\n`);
  return 0;
}
