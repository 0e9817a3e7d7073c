/**
 * Malformed scenario files: each mistake is reported before anything runs, as file:line:col
 * with what was expected. The expected line and column come from the fixture text itself (the
 * position of the offending token), the expected words from the format's rules.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ScenarioError, type ScenarioIssue } from '../../src/errors.js';
import { compileScenario, compileScenarioFile, compileScenarioText } from '../../src/scenario/index.js';

/** 1-based line and column of the `nth` occurrence of `needle` in `text`. */
function position(text: string, needle: string, nth = 1): { line: number; col: number } {
  let at = -1;
  for (let i = 0; i < nth; i++) {
    at = text.indexOf(needle, at + 1);
    assert.ok(at >= 0, `fixture lacks ${JSON.stringify(needle)}`);
  }
  const before = text.slice(0, at).split('\n');
  return { line: before.length, col: before[before.length - 1].length + 1 };
}

function issues(text: string): ScenarioIssue[] {
  try {
    compileScenarioText(text, 'bad.yaml');
  } catch (e) {
    assert.ok(e instanceof ScenarioError, `expected a ScenarioError, got ${String(e)}`);
    return e.issues;
  }
  assert.fail('the scenario was accepted');
}

/** Asserts one issue whose message contains every fragment, at the position of `needle`. */
function expectIssue(text: string, needle: string, fragments: string[], nth = 1): void {
  const found = issues(text);
  const want = position(text, needle, nth);
  const match = found.find((i) => i.line === want.line && i.col === want.col);
  assert.ok(match, `no issue at ${want.line}:${want.col}; got ${found.map((i) => `${i.line}:${i.col} ${i.message}`).join(' | ')}`);
  for (const f of fragments) assert.ok(match.message.includes(f), `message ${JSON.stringify(match.message)} lacks ${JSON.stringify(f)}`);
  assert.equal(match.file, 'bad.yaml');
}

const OPS = (ops: string): string => `processes:\n  - name: p\n    ops:\n${ops}`;
const MMAP = '      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }\n        as: buf\n';

const cases: { name: string; text: string; needle: string; nth?: number; says: string[] }[] = [
  { name: 'a duplicate key', text: 'name: a\nname: b\nprocesses: []\n', needle: 'name: b', says: ['YAML', 'unique'] },
  { name: 'a tab in the indentation', text: 'processes:\n\t- name: p\n', needle: '\t', says: ['YAML'] },
  { name: 'an unclosed flow mapping', text: 'machine: { cpus: 2\nprocesses: []\n', needle: 'processes', says: ['YAML'] },
  { name: 'an unknown top-level key', text: 'machin: { cpus: 2 }\n' + OPS('      - getpid\n'), needle: 'machin', says: ['unknown key "machin"', 'did you mean machine?'] },
  { name: 'no processes', text: 'name: x\n', needle: 'name', says: ['missing key "processes"'] },
  { name: 'an empty process list', text: 'processes: []\n', needle: '[]', says: ['at least 1'] },
  { name: 'a word where a CPU count goes', text: 'machine:\n  cpus: two\n' + OPS('      - getpid\n'), needle: 'two', says: ['expected an integer', '"two"'] },
  { name: 'zero CPUs', text: 'machine:\n  cpus: 0\n' + OPS('      - getpid\n'), needle: '0\n', says: ['too small', 'at least 1'] },
  { name: 'a memory size without a unit', text: 'machine:\n  memory: 64 MB\n' + OPS('      - getpid\n'), needle: '64 MB', says: ['not a size', 'MiB'] },
  { name: 'an unknown CPU option', text: 'machine:\n  cpu: { pcide: true }\n' + OPS('      - getpid\n'), needle: 'pcide', says: ['unknown key "pcide"', 'did you mean pcid?'] },
  { name: 'PKS without PKU', text: 'machine:\n  cpu: { pku: false, pks: true }\n' + OPS('      - getpid\n'), needle: 'true', says: ['PKS', 'pku: true'] },
  { name: 'shadow stacks on a legacy-dirty CPU', text: 'machine:\n  cpu: { dirty_on_readonly: legacy }\n' + OPS('      - getpid\n'), needle: 'legacy', says: ['shadow stacks', 'legacy'] },
  { name: 'INVPCID without PCID', text: 'machine:\n  cpu:\n    pcid: false\n    invpcid: true\n' + OPS('      - getpid\n'), needle: 'true', says: ['INVPCID without PCID'] },
  { name: 'a kernel option of the wrong type', text: 'kernel:\n  nopcid: 1\n' + OPS('      - getpid\n'), needle: '1\n', says: ['expected true or false'] },
  { name: 'an unknown kernel option', text: 'kernel:\n  tlb_flush_ceiling: 4\n' + OPS('      - getpid\n'), needle: 'tlb_flush_ceiling', says: ['unknown key', 'tlb_single_page_flush_ceiling'] },
  { name: 'an unknown operation', text: OPS('      - mmapp: { len: 4096 }\n'), needle: 'mmapp', says: ['unknown operation', 'did you mean mmap?'] },
  { name: 'two operations in one item', text: OPS(MMAP + '      - load: $buf\n        store: { addr: $buf, value: 1 }\n'), needle: 'store', says: ['two operations', 'load and store'] },
  { name: 'a syscall argument by its man-page name', text: OPS('      - mmap: { length: 4096 }\n'), needle: 'length', says: ['unknown', '"length"', 'addr, len, prot, flags, fd, off'] },
  { name: 'an unknown constant', text: OPS('      - mmap: { len: 4096, prot: PROT_READ|PROT_WRIET, flags: MAP_PRIVATE|MAP_ANONYMOUS, fd: -1 }\n'), needle: 'PROT_WRIET', says: ['unknown constant PROT_WRIET', 'did you mean PROT_WRITE?'] },
  { name: 'an undefined $name', text: OPS(MMAP + '      - store: { addr: $bfu, value: 1 }\n'), needle: '$bfu', says: ['$bfu is not defined'] },
  { name: 'a $name used before it is defined', text: OPS('      - load: $buf\n' + MMAP), needle: '$buf', says: ['$buf is not defined'] },
  { name: 'a run-time value shifted by 64', text: OPS(MMAP + '      - load: $buf << 64\n'), needle: '64', says: ['shift count 64 is outside 0 to 63'] },
  { name: 'a run-time value divided by a constant 0', text: OPS(MMAP + '      - load: $buf / (4 - 4)\n'), needle: '(4', says: ['division by zero'] },
  { name: 'a run-time expression with two operators in a row', text: OPS(MMAP + '      - load: $buf +* 2\n'), needle: '* 2', says: ['unexpected "*"'] },
  { name: 'a thread on a CPU that does not exist', text: 'machine: { cpus: 2 }\nprocesses:\n  - name: p\n    ops: []\n    threads:\n      - name: t\n        cpu: 2\n        ops: [ getpid ]\n', needle: '2\n        ops', says: ['CPU 2 does not exist', '0 to 1'] },
  { name: 'a fork child on a CPU that does not exist', text: OPS('      - fork: { cpu: 5, ops: [ getpid ] }\n'), needle: '5', says: ['CPU 5 does not exist'] },
  { name: 'a process on a CPU that does not exist', text: 'processes:\n  - name: p\n    cpu: 1\n    ops: [ getpid ]\n', needle: '1\n', says: ['CPU 1 does not exist', 'machine has 1 CPU'] },
  { name: 'two threads with one name', text: 'processes:\n  - name: p\n    ops: []\n    threads:\n      - { name: p, ops: [] }\n', needle: 'p, ops', says: ['already used', 'unique'] },
  { name: 'a handler that names no function', text: 'processes:\n  - name: p\n    handlers:\n      SIGSEGV: { handler: on_segv }\n    ops: [ getpid ]\n', needle: 'on_segv', says: ['no function named "on_segv"'] },
  { name: 'a handler for SIGKILL', text: 'processes:\n  - name: p\n    handlers:\n      SIGKILL: { handler: SIG_IGN }\n    ops: [ getpid ]\n', needle: 'SIGKILL', says: ['cannot be caught'] },
  { name: 'a handler for a signal that does not exist', text: 'processes:\n  - name: p\n    handlers:\n      SIGSEGF: { handler: SIG_IGN }\n    ops: [ getpid ]\n', needle: 'SIGSEGF', says: ['not allowed', 'SIGSEGV'] },
  { name: 'an errno expected of a load', text: OPS(MMAP + '      - load: $buf\n        expect: { errno: EFAULT }\n'), needle: 'errno', says: ['only a syscall returns an errno'] },
  { name: 'an unknown errno name', text: OPS('      - getpid\n      - munmap: { addr: 0, len: 0 }\n        expect: { errno: EINVALID }\n'), needle: 'EINVALID', says: ['not allowed', 'EINVAL'] },
  { name: 'si_code without a signal', text: OPS(MMAP + '      - load: $buf\n        expect: { si_code: SEGV_MAPERR }\n'), needle: 'si_code', says: ['add signal'] },
  { name: 'a value and a signal both expected', text: OPS(MMAP + '      - load: $buf\n        expect: { value: 0, signal: SIGSEGV }\n'), needle: 'signal: SIGSEGV', says: ['one outcome'] },
  { name: 'a name given to a store', text: OPS(MMAP + '      - store: { addr: $buf, value: 1 }\n        as: x\n'), needle: 'as: x', says: ['store has no result to name'] },
  { name: 'an exit status for a process that does not exist', text: OPS('      - getpid\n') + 'expect:\n  exit: { q: 0 }\n', needle: 'q: 0', says: ['no process named "q"'] },
  { name: 'an exit status for a thread', text: 'processes:\n  - name: p\n    ops: []\n    threads:\n      - { name: t, ops: [] }\nexpect:\n  exit: { t: 0 }\n', needle: 't: 0', says: ['is a thread'] },
  { name: 'a memory expectation with a name its thread never defines', text: OPS(MMAP) + 'expect:\n  memory:\n    - { thread: p, addr: $bufx, value: 0 }\n', needle: '$bufx', says: ['$bufx is not defined'] },
  { name: 'an unknown invariant', text: OPS('      - getpid\n') + 'expect:\n  invariants: [no_leak]\n', needle: 'no_leak', says: ['not allowed', 'no_leaks'] },
  { name: 'an answer naming an unknown thread', text: 'answer: "it read {q.x}"\n' + OPS('      - getpid\n'), needle: '"it read', says: ['{q.x}', 'no thread named q'] },
  { name: 'a schedule policy that does not exist', text: 'schedule: { policy: fifo }\n' + OPS('      - getpid\n'), needle: 'fifo', says: ['not allowed', 'random, round-robin'] },
  // schedule.steps reads the explorer's tokens (src/explore/schedule.ts): a CPU number, e<cpu>.<slot>, p<cpu>, p<cpu>><cpu>, each *count.
  { name: 'a schedule token that does not exist', text: 'machine: { cpus: 2 }\nschedule:\n  steps: [\'0*3\', \'q1\', \'p0>1\']\n' + OPS('      - getpid\n'), needle: "'q1'", says: ['"q1"', 'e<cpu>.<slot>', 'p<cpu>><cpu>'] },
  { name: 'a bad token among several in one schedule item', text: 'machine: { cpus: 2 }\nschedule:\n  steps:\n    - 0*3\n    - 1*2,p0>>1\n' + OPS('      - getpid\n'), needle: '1*2,p0', says: ['item 2', '"p0>>1"'] },
  { name: 'a migration to a CPU the machine lacks', text: 'machine: { cpus: 2 }\nschedule:\n  steps: [\'0*3\', \'p0>2\']\n' + OPS('      - getpid\n'), needle: "'p0>2'", says: ['"p0>2"', 'CPUs 0 to 1'] },
  { name: 'a scheduled CPU the machine lacks', text: 'machine: { cpus: 2 }\nschedule:\n  steps: [0, 2]\n' + OPS('      - getpid\n'), needle: '2]', says: ['CPUs 0 to 1'] },
  { name: 'an eviction of a TLB slot the CPU lacks', text: 'machine: { cpus: 2 }\nschedule:\n  steps: [\'0*3\', \'e1.5000\']\n' + OPS('      - getpid\n'), needle: "'e1.5000'", says: ['"e1.5000"', 'existing TLB slots'] },
  { name: 'an eviction of a TLB slot no TLB has', text: 'machine: { cpus: 2 }\nschedule:\n  steps: [\'0*3\', \'e1.100000\']\n' + OPS('      - getpid\n'), needle: "'e1.100000'", says: ['"e1.100000"', 'a TLB slot is below 65536'] },
  { name: 'a script longer than the limit', text: 'schedule:\n  steps: [\'0*600000\', \'0*600000\']\n' + OPS('      - getpid\n'), needle: "'0*600000'", nth: 2, says: ['longer than 1000000 steps'] },
  { name: 'a bare word that is no operation', text: OPS('      - getpidd\n'), needle: 'getpidd', says: ['not allowed', 'did you mean getpid?'] },
  { name: 'a repeat without a count', text: OPS('      - repeat: { ops: [ getpid ] }\n'), needle: '{ ops', says: ['missing key "count"'] },
  { name: 'a value wider than 64 bits', text: OPS('      - mmap: { len: 0x1_0000_0000_0000_0000 }\n'), needle: '0x1_', says: ['does not fit in 64 bits'] },
  { name: 'an unknown syscall by name', text: OPS('      - syscall: { nr: pkey_allocc }\n'), needle: 'pkey_allocc', says: ['unknown syscall "pkey_allocc"'] },
  { name: 'an event kind the model does not have', text: OPS('      - getpid\n') + 'expect:\n  events:\n    - { type: pte_retyr, at_least: 1 }\n', needle: 'pte_retyr', says: ['unknown event kind "pte_retyr"', 'did you mean pte_retry?', 'page_fault', 'tlb_flush'] },
  { name: 'an event expectation without a count', text: OPS('      - getpid\n') + 'expect:\n  events:\n    - { type: pte_retry }\n', needle: '{ type', says: ['say how many', 'at_least, exactly or at_most'] },
  { name: 'exactly with a bound', text: OPS('      - getpid\n') + 'expect:\n  events:\n    - { type: pte_retry, exactly: 1, at_most: 2 }\n', needle: 'at_most', says: ['exactly is a count of its own'] },
  { name: 'bounds that leave no count', text: OPS('      - getpid\n') + 'expect:\n  events:\n    - { type: signal, at_least: 3, at_most: 2 }\n', needle: 'at_most', says: ['at_least 3 and at_most 2'] },
  { name: 'a filter another kind has', text: OPS('      - getpid\n') + 'expect:\n  events:\n    - { type: page_fault, what: swapgs, at_least: 1 }\n', needle: 'what', says: ['page_fault events have no field "what"', 'cpu, thread, outcome, user'] },
  { name: 'a filter value the kind never carries', text: OPS('      - getpid\n') + 'expect:\n  events:\n    - { type: page_fault, outcome: copyed, exactly: 0 }\n', needle: 'copyed', says: ['page_fault outcome', 'expected one of mapped, ', 'copied', 'did you mean copied?'] },
  { name: 'a filter of the wrong type', text: OPS('      - getpid\n') + 'expect:\n  events:\n    - { type: ad_set, dirty: 1, at_least: 1 }\n', needle: '1, at_least', says: ['expected true or false', 'the integer 1'] },
  { name: 'an unknown signal in an event filter', text: OPS('      - getpid\n') + 'expect:\n  events:\n    - { type: signal, signo: SIGSEG, exactly: 1 }\n', needle: 'SIGSEG,', says: ['signal signo', 'did you mean SIGSEGV?'] },
  { name: 'events of a thread that does not exist', text: OPS('      - getpid\n') + 'expect:\n  events:\n    - { type: page_fault, thread: q, exactly: 0 }\n', needle: 'q, exactly', says: ['no thread or process named "q"'] },
  { name: 'events on a CPU that does not exist', text: OPS('      - getpid\n') + 'expect:\n  events:\n    - { type: ipi, cpu: 1, exactly: 0 }\n', needle: '1, exactly', says: ['CPU 1 does not exist'] },
];

for (const c of cases) {
  test(`malformed: ${c.name}`, () => expectIssue(c.text, c.needle, c.says, c.nth));
}

test('malformed: every mistake of shape in a file is reported, in file order', () => {
  const text = 'machine:\n  cpus: many\n  colour: blue\n' + OPS('      - frobnicate: 1\n');
  const found = issues(text);
  assert.deepEqual(found.map((i) => [i.line, i.col]), [[2, 9], [3, 3], [7, 9]].map(([l, c]) => [l, c]));
});

test('malformed: every mistake of meaning in a file is reported, in file order', () => {
  const text = 'machine: { cpus: 1 }\n' + OPS('      - mmap: { len: 4096, prot: PROT_RAED }\n      - load: $nope\n      - fork: { cpu: 3 }\n');
  const found = issues(text);
  const want = [position(text, 'PROT_RAED'), position(text, '$nope'), position(text, '3 }')];
  assert.deepEqual(found.map((i) => ({ line: i.line, col: i.col })), want);
});

test('malformed: a file that does not exist is a ScenarioError naming it', () => {
  assert.throws(() => compileScenarioFile('/nonexistent/isolab.yaml'), (e: unknown) => e instanceof ScenarioError && e.message.includes('/nonexistent/isolab.yaml') && e.message.includes('no such file'));
});

test('malformed: a scenario object from the API is checked the same way, with paths', () => {
  assert.throws(
    () => compileScenario({ machine: { cpus: 2 }, processes: [{ name: 'p', cpu: 4, ops: [{ load: '$x' }] }] }),
    (e: unknown) => {
      if (!(e instanceof ScenarioError)) return false;
      const paths = e.issues.map((i) => i.path).sort();
      return paths.join(',') === 'processes[0].cpu,processes[0].ops[0].load' && e.issues.every((i) => i.line === undefined);
    },
  );
});
