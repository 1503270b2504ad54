// Where benchmark labs live. Test files own 41..115 moved by KHA_TEST_SUBNET_SHIFT (0, 100, 120 and 140 on
// this machine), which reaches 230-235 and 250-255; 236..249 is taken by none of them, so a benchmark never
// claims a subnet a test of another checkout is about to use. KHA_BENCH_SUBNET moves the block.
const BASE = Number(process.env.KHA_BENCH_SUBNET ?? 236);
/** Benchmarks and how many labs each runs (one per size), in the block's order. */
const LABS = { 'lab-up': 3, deploy: 3, 'step-overhead': 1, resume: 1, real: 1 } as const;
const TOTAL = Object.values(LABS).reduce((a, b) => a + b, 0);
if (!Number.isInteger(BASE) || BASE < 1 || BASE + TOTAL - 1 > 255) throw new Error(`KHA_BENCH_SUBNET must leave room for ${TOTAL} subnets below 256, got ${process.env.KHA_BENCH_SUBNET}`);

/** The subnet index of a benchmark's `i`-th lab (each its own, so a crashed run's leftovers never meet another's). */
export function benchSubnet(bench: keyof typeof LABS, i = 0): number {
  if (!Number.isInteger(i) || i < 0 || i >= LABS[bench]) throw new Error(`${bench} has ${LABS[bench]} lab subnet(s); asked for lab ${i + 1}`);
  let offset = 0;
  for (const [name, n] of Object.entries(LABS)) {
    if (name === bench) break;
    offset += n;
  }
  return BASE + offset + i;
}
