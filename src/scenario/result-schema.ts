/**
 * The JSON Schema of `isolab run --json` output (a RunReport without its trace). Documented
 * in docs/scenario-format.md; `npm run schema` writes it to schema/run-result.schema.json and
 * a test validates real output against it.
 */
export function runResultSchema(): Record<string, unknown> {
  const count = { type: 'integer', minimum: 0 };
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'https://isolab.invalid/schema/run-result.schema.json',
    title: 'isolab run --json',
    type: 'object',
    additionalProperties: false,
    required: ['scenario', 'policy', 'seed', 'finished', 'passed', 'verdicts', 'tasks', 'counts', 'timeline'],
    properties: {
      scenario: { type: 'string', description: 'The scenario name.' },
      file: { type: 'string', description: 'The file it came from.' },
      question: { type: 'string' },
      answer: { type: 'string', description: 'The answer with the run’s values filled in.' },
      policy: { enum: ['random', 'round-robin'], description: 'How the next CPU was chosen.' },
      seed: { type: 'integer', minimum: 0, description: 'The seed of the random schedule (replays the run).' },
      finished: { type: 'boolean', description: 'Every task exited before the step limit.' },
      passed: { type: 'boolean', description: 'Every expectation held; the exit status is 0 exactly when this is true.' },
      verdicts: {
        type: 'array',
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['kind', 'where', 'path', 'expected', 'status', 'actual'],
          properties: {
            kind: { enum: ['op', 'exit', 'memory', 'pte', 'registers', 'invariant', 'events'] },
            where: { type: 'string', description: 'file:line:col of the expectation.' },
            path: { type: 'string', description: 'Its path in the scenario, e.g. processes[0].ops[3].expect.' },
            expected: { type: 'string' },
            status: { enum: ['held', 'failed', 'not_reached'] },
            actual: { type: 'string', description: 'What happened (for an operation that ran several times, the first mismatch).' },
            count: { ...count, description: 'How many times the operation completed, or (kind events) how many events matched.' },
          },
        },
      },
      tasks: {
        type: 'array',
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['tid', 'pid', 'name', 'exit'],
          properties: { tid: count, pid: count, name: { type: 'string' }, exit: { type: ['string', 'null'], description: '"exit N", "killed by SIGx", or null if alive.' }, stopped: { const: true, description: 'Present when the task was left stopped (SIGSTOP, no SIGCONT) as the run ended.' } },
        },
      },
      counts: {
        type: 'object',
        additionalProperties: false,
        required: ['steps', 'syscalls', 'page_faults', 'signals', 'cr3_writes', 'tlb_flushes', 'ipis', 'tlb_misses', 'walks', 'page_copies', 'context_switches', 'stack_copies'],
        properties: {
          steps: count,
          syscalls: count,
          page_faults: count,
          signals: count,
          cr3_writes: { ...count, description: 'MOV to CR3, by any path.' },
          tlb_flushes: { ...count, description: 'INVLPG, INVPCID, flushing CR3 and CR4 writes.' },
          ipis: count,
          tlb_misses: count,
          walks: count,
          page_copies: { ...count, description: 'Pages copied or zero-filled by the fault path.' },
          context_switches: count,
          stack_copies: count,
        },
      },
      timeline: {
        type: 'array',
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['step', 'cpu', 'tid', 'task', 'kind', 'text'],
          properties: {
            step: count,
            cpu: { type: 'integer', minimum: -1, description: 'The CPU, or -1 for a finding made outside any CPU (a debug check at the end).' },
            tid: count,
            task: { type: 'string' },
            kind: { enum: ['syscall', 'op', 'fault', 'signal', 'cr3', 'flush', 'ipi', 'fork', 'exec', 'exit', 'switch', 'debug'] },
            text: { type: 'string' },
          },
        },
      },
    },
  };
}
