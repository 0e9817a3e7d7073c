/**
 * Kernel paths in lockstep (lockstep-cases.ts): fork against a write fault on the page it
 * write-protects, and fork against fork in another process.
 */
import { FORK_AGAINST_FORK, FORK_AGAINST_WRITE, lockstepTests } from './lockstep-cases.js';

lockstepTests([FORK_AGAINST_WRITE, FORK_AGAINST_FORK]);
