/**
 * What `isolab host` needs to know about the machine it runs on, read once from /proc and /sys:
 * the CPU's flags as the kernel reports them (/proc/cpuinfo, with the kernel's own names:
 * `pku` and `ospke` for protection keys, `user_shstk` for user shadow stacks), how many CPUs
 * it may use, vm.mmap_min_addr, whether page-table isolation is on, and the privileges that
 * decide what some syscalls give. Nothing here runs a program.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

export interface HostFacts {
  /** The flags of the first processor in /proc/cpuinfo. */
  flags: ReadonlySet<string>;
  /** CPUs this process may run on. */
  cpus: number;
  /** /proc/sys/vm/mmap_min_addr, or null when unreadable. */
  mmapMinAddr: number | null;
  /** Page-table isolation on (/sys/devices/system/cpu/vulnerabilities/meltdown says "PTI"); null when unknown. */
  pti: boolean | null;
  /** The effective user id is 0. */
  root: boolean;
  /** vm.unprivileged_userfaultfd is 1, or null when unreadable. */
  unprivilegedUserfaultfd: boolean | null;
}

/** The text of a file, trimmed, or null when it cannot be read. */
function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
}

/** The host's facts (Linux only; on another system every feature reads as absent). */
export function hostFacts(): HostFacts {
  const cpuinfo = readText('/proc/cpuinfo') ?? '';
  const line = /^flags\s*:\s*(.*)$/m.exec(cpuinfo);
  const mmapMin = readText('/proc/sys/vm/mmap_min_addr');
  const meltdown = readText('/sys/devices/system/cpu/vulnerabilities/meltdown');
  const uffd = readText('/proc/sys/vm/unprivileged_userfaultfd');
  return {
    flags: new Set(line ? line[1].split(/\s+/) : []),
    cpus: availableParallelism(),
    mmapMinAddr: mmapMin !== null && /^\d+$/.test(mmapMin) ? Number(mmapMin) : null,
    pti: meltdown === null ? null : /PTI/.test(meltdown),
    root: typeof process.geteuid === 'function' && process.geteuid() === 0,
    unprivilegedUserfaultfd: uffd === null ? null : uffd === '1',
  };
}
