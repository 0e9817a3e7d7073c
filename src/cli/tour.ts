/** `isolab tour`: prints each stop's question, the model's answer and the evidence. */
import { hwTour } from '../tour/hw.js';

export function tourCommand(opts: { json?: boolean }): void {
  const stops = hwTour();
  if (opts.json) {
    process.stdout.write(JSON.stringify(stops, null, 2) + '\n');
    return;
  }
  const bold = process.stdout.isTTY ? (s: string) => `\x1b[1m${s}\x1b[0m` : (s: string) => s;
  const out: string[] = ['isolab tour: the machine layer (x86-64 paging, TLB, SMAP, PKU, A/D bits)', ''];
  stops.forEach((s, i) => {
    out.push(bold(`${i + 1}. ${s.question}`));
    out.push(`   ${s.answer}`);
    for (const line of s.evidence) out.push(`     ${line}`);
    out.push('');
  });
  process.stdout.write(out.join('\n'));
}
