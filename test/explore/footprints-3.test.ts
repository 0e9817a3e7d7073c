/** The footprint checks (footprint-runs.ts) over part 3 of 4 of the built-in scenarios. */
import { footprintCases } from './footprint-runs.js';

footprintCases(3, 4);
