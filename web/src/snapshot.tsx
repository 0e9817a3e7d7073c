/**
 * The machine at the cursor: a panel per CPU, the tasks, and a panel per live address space.
 */
import type { Recording } from '../../src/see/types.js';
import { CpuPanel } from './cpu.js';
import { MmPanel } from './mm.js';
import type { Selection, SelectionActions } from './selection.js';
import type { StateWalker } from './state.js';
import { TasksTable } from './tasks.js';

interface Props {
  rec: Recording;
  /** At the cursor's step. */
  walker: StateWalker;
  selection: Selection;
  actions: SelectionActions;
}

/** The CPUs, tasks and address spaces at the walker's step. */
export function Snapshot({ rec, walker, selection, actions }: Props) {
  const cpus = [...walker.cpus.values()].sort((a, b) => a.cpu - b.cpu);
  const mms = [...walker.mms.values()].sort((a, b) => a.id - b.id);
  return (
    <div class="snapshot">
      <div class="cpus">
        {cpus.map((c) => (
          <CpuPanel key={c.cpu} cpu={c} walker={walker} selected={selection.cpu === c.cpu} onSelect={actions.selectCpu} />
        ))}
      </div>
      <TasksTable walker={walker} />
      <div class="mms">
        {mms.length === 0 && <p class="dim">no live address space</p>}
        {mms.map((mm) => (
          <MmPanel
            key={mm.id}
            mm={mm}
            walker={walker}
            levels={rec.machine.levels}
            bits={rec.bits}
            expansion={selection.expansion}
            onToggle={actions.toggle}
            selected={selection.mm === mm.id}
            onSelect={actions.selectMm}
          />
        ))}
      </div>
    </div>
  );
}
