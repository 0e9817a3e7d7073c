/**
 * The tasks table: one row per task not yet reaped, the ones the current step changed marked.
 */
import { memo } from 'preact/compat';
import type { TaskView } from '../../src/see/types.js';
import { sameFields } from './same.js';
import type { StateWalker } from './state.js';

/** The tasks at the walker's step, by tid. */
export function TasksTable({ walker }: { walker: StateWalker }) {
  const tasks = [...walker.tasks.values()].sort((a, b) => a.tid - b.tid);
  return (
    <section class="panel tasks-panel">
      <h3>Tasks</h3>
      <table class="tasks" data-testid="tasks">
        <thead>
          <tr>
            <th>tid</th><th>name</th><th>pid</th><th>state</th><th>cpu</th><th>mm</th><th>image</th><th>kernel path</th>
          </tr>
        </thead>
        <tbody>
          {tasks.map((t) => (
            <TaskRow key={t.tid} task={t} changed={walker.changed.has(`task:${t.tid}`)} />
          ))}
        </tbody>
      </table>
    </section>
  );
}

interface RowProps {
  task: TaskView;
  changed: boolean;
}

/** One task; re-rendered only when a field or its mark changes. */
const TaskRow = memo(function TaskRow({ task: t, changed }: RowProps) {
  return (
    <tr data-tid={t.tid} class={changed ? 'changed' : undefined}>
      <td>{t.tid}</td>
      <td data-field="name">{t.name}</td>
      <td data-field="pid">{t.pid}</td>
      <td data-field="state">{t.state}</td>
      <td data-field="cpu">{t.cpu}</td>
      <td data-field="mm">{t.mm ?? '—'}</td>
      <td data-field="image">{t.image ?? '—'}</td>
      <td data-field="kernel">{t.kernel ?? '—'}</td>
    </tr>
  );
}, (a: RowProps, b: RowProps) => a.changed === b.changed && sameFields(a.task, b.task));
