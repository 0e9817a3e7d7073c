/** The footprint checks (footprint-runs.ts) over part 1 of 4 of the built-in scenarios. */
import { footprintCases } from './footprint-runs.js';

footprintCases(1, 4);
