// Each lab test file owns a fixed /24. KHA_TEST_SUBNET_SHIFT moves them all, so a second checkout can run the same
// files at the same time without the two labs claiming one subnet.
const SHIFT = Number(process.env.KHA_TEST_SUBNET_SHIFT ?? 0);
if (!Number.isInteger(SHIFT) || SHIFT < 0 || SHIFT > 160) throw new Error(`KHA_TEST_SUBNET_SHIFT must be an integer from 0 to 160, got ${process.env.KHA_TEST_SUBNET_SHIFT}`);

/** The subnet index a test file uses: its own number, shifted. */
export function subnet(n: number): number {
  return n + SHIFT;
}
