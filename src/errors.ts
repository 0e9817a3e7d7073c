/**
 * isolab's typed errors (DESIGN.md rule 8).
 *
 * A simulated program's mistake never raises one of these: it gets the architectural fault or
 * the -errno Linux gives. These are for the *user* of isolab (a bad API argument, a bad
 * scenario) and for a broken model invariant.
 */

/** Base class: every error isolab raises on purpose is one of these. */
export class IsolabError extends Error {
  /** A stable, machine-readable code (e.g. `EARG`). */
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/** An API call received an argument it cannot accept; names the argument. */
export class ArgumentError extends IsolabError {
  /** The name of the offending argument, as the API documents it. */
  readonly argument: string;
  constructor(argument: string, message: string) {
    super('EARG', `${argument}: ${message}`);
    this.argument = argument;
  }
}

/** A configuration (machine, CPU model, kernel options) that cannot exist. */
export class ConfigError extends IsolabError {
  /** The option at fault, as a dotted path (e.g. `cpu.dirty_on_readonly`). */
  readonly option: string;
  constructor(option: string, message: string) {
    super('ECONFIG', `${option}: ${message}`);
    this.option = option;
  }
}

/**
 * A broken model invariant: a bug in isolab, not in the simulated program or the user's input.
 * Carries the check that failed; the System adds the step and the CPU it happened on
 * (`step`, `cpu`, -1 until then), the scenario runner the tail of the trace.
 */
export class ModelError extends IsolabError {
  readonly check: string;
  step = -1;
  cpu = -1;
  constructor(check: string, message: string) {
    super('EMODEL', `${check}: ${message}`);
    this.name = 'ModelError';
    this.check = check;
  }
}

/** One mistake in a scenario: where it is (file, line and column when it came from a file; always the path) and what was expected. */
export interface ScenarioIssue {
  file?: string;
  line?: number;
  col?: number;
  /** The path to the value, e.g. `processes[0].ops[2].mmap.prot`. */
  path: string;
  message: string;
}

/** `file:line:col: message`, or `path: message` for a scenario that came from an object. */
export function formatIssue(i: ScenarioIssue): string {
  if (i.file !== undefined && i.line !== undefined) return `${i.file}:${i.line}:${i.col ?? 1}: ${i.message}`;
  if (i.file !== undefined) return i.path ? `${i.file}: ${i.path}: ${i.message}` : `${i.file}: ${i.message}`;
  return `${i.path || '(scenario)'}: ${i.message}`;
}

/** A scenario with mistakes: every one found, in file order. Nothing has run. */
export class ScenarioError extends IsolabError {
  readonly issues: ScenarioIssue[];
  constructor(issues: ScenarioIssue[]) {
    super('ESCENARIO', issues.map(formatIssue).join('\n'));
    this.issues = issues;
  }
}
