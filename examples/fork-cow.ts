// fork and copy-on-write through the TypeScript API: a parent writes 1, forks, the child
// writes 2 to the same address, and each still reads its own value.
import { System } from '../src/index.js';

const sys = new System({ cpus: 2, kernel: { debug_vm: true } });
sys.spawn({
  main: [
    { op: 'syscall', name: 'mmap', args: [0, 4096, 3, 0x22, -1, 0], into: 'buf' }, // PROT_READ|WRITE, MAP_PRIVATE|ANONYMOUS
    { op: 'store', addr: '$buf', value: 1 },
    {
      op: 'syscall', name: 'fork', into: 'pid',
      child: [
        { op: 'store', addr: '$buf', value: 2 }, // a write fault: do_wp_page copies the page
        { op: 'load', addr: '$buf', into: 'mine' },
      ],
    },
    { op: 'syscall', name: 'wait4', args: [-1, 0, 0, 0] },
    { op: 'load', addr: '$buf', into: 'mine' },
  ],
});
const cow: string[] = [];
sys.events.subscribe((e) => {
  if (e.type === 'page_fault' && (e.outcome === 'copied' || e.outcome === 'reused')) cow.push(`tid ${e.tid} ${e.outcome} the page`);
});
sys.run();

for (const r of sys.log.filter((r) => r.op === 'load')) console.log(`tid ${r.tid} read ${r.value}`);
console.log(cow.join('; '));
console.log(sys.debugReports.length === 0 ? 'page counts consistent' : sys.debugReports.join('\n'));
