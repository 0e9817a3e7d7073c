/** The footprint checks (footprint-runs.ts) over part 2 of 4 of the built-in scenarios. */
import { footprintCases } from './footprint-runs.js';

footprintCases(2, 4);
