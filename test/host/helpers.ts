/**
 * Running scenario texts on the host kernel for the tests: the pieces of `isolab host` one by
 * one, so a test can read the host program's own lines beside the comparison.
 */
import { compileGenerated, findHostCompiler, removeGenerated, runGenerated } from '../../native/build.js';
import { generateC } from '../../src/host/cgen.js';
import { compareRuns, parseHostOutput, type Comparison, type HostOutput } from '../../src/host/compare.js';
import { hostFacts } from '../../src/host/facts.js';
import { hostUnavailableReason } from '../../src/host/host.js';
import { planFromModel, type Plan } from '../../src/host/plan.js';
import { hostSupport, type Support } from '../../src/host/support.js';
import { compileScenarioText } from '../../src/scenario/index.js';
import type { CompiledScenario } from '../../src/scenario/compile.js';

/** Why these tests cannot run here (not Linux x86-64, no C compiler), or null. */
export function hostTestSkipReason(): string | null {
  return hostUnavailableReason();
}

export interface HostRun {
  c: CompiledScenario;
  support: Support;
  plan: Plan;
  host: HostOutput;
  comparison: Comparison;
  /** The host's record at the position of the `n`-th record isolab's run made for operation `label` of thread `thread`. */
  at(thread: string, label: string, n?: number): HostOutput['records'] extends Map<number, infer R> ? R | undefined : never;
  /** The host's tid of the task the scenario names `name`. */
  tid(name: string): number | undefined;
}

/** Compiles `text` (as file host.yaml), runs it in isolab and on the host, and compares. */
export async function hostRun(text: string): Promise<HostRun> {
  const c = compileScenarioText(text, 'host.yaml');
  const support = hostSupport(c, hostFacts());
  const plan = planFromModel(c, support);
  const build = await compileGenerated(generateC(c, support, plan), findHostCompiler()!);
  if ('error' in build) throw new Error(build.error);
  const run = await runGenerated(build.binary, 30_000).finally(() => removeGenerated(build.binary));
  const host = parseHostOutput(run.stdout);
  const comparison = compareRuns(c, support, plan, host);
  return {
    c,
    support,
    plan,
    host,
    comparison,
    at(thread, label, n = 0) {
      const recs = plan.records.filter((r) => {
        const t = plan.tasks[r.task];
        const info = c.ops.get(support.images[r.image].name, r.fn, r.index);
        return t.name === thread && info?.label.startsWith(label);
      });
      const r = recs[n];
      return r ? host.records.get(r.pos) : undefined;
    },
    tid(name) {
      const t = plan.tasks.find((x) => x.name === name);
      return t ? host.tids.get(t.idx) : undefined;
    },
  } as HostRun;
}
