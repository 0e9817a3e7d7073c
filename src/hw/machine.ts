/**
 * A machine: N logical processors of one CPU model sharing physical memory and one event bus.
 * Knows nothing of Linux (DESIGN.md rule 1).
 */
import { ConfigError, IsolabError } from '../errors.js';
import { EventBus } from '../events.js';
import { Cpu } from './cpu.js';
import type { HwEvent } from './events.js';
import { resolveCpuModel, type CpuModel } from './features.js';
import { PhysMem } from './physmem.js';
import { Tlb } from './tlb.js';

export interface MachineConfig {
  /** Number of logical processors, 1..64. Default 1. */
  cpus?: number;
  /** Installed memory in bytes: a multiple of 4 KiB, at least 1 MiB, at most 64 GiB and 2^MAXPHYADDR. Default 1 GiB. */
  memory?: number;
  /** CPU features and bugs; unspecified ones take DEFAULT_CPU_MODEL's values. */
  cpu?: Partial<CpuModel>;
}

const MAX_CPUS = 64;
const MAX_MEMORY = 64 * 2 ** 30;

export class Machine {
  readonly model: CpuModel;
  readonly mem: PhysMem;
  readonly events = new EventBus<HwEvent>();
  readonly cpus: Cpu[];

  /** Builds the machine; throws ConfigError naming the option for a configuration that cannot exist. */
  constructor(config: MachineConfig = {}) {
    if (config === null || typeof config !== 'object') throw new ConfigError('machine', `expected an object of options, got ${String(config)}`);
    const known = new Set(['cpus', 'memory', 'cpu']);
    for (const key of Object.keys(config)) {
      if (!known.has(key)) throw new ConfigError(key, `unknown machine option; expected one of ${[...known].join(', ')}`);
    }
    const n = config.cpus ?? 1;
    if (!Number.isInteger(n) || n < 1 || n > MAX_CPUS) throw new ConfigError('cpus', `expected an integer from 1 to ${MAX_CPUS}, got ${JSON.stringify(n)}`);
    this.model = resolveCpuModel(config.cpu);
    try {
      new Tlb(this.model.tlb);
    } catch (e) {
      if (e instanceof IsolabError) throw new ConfigError(`cpu.${(e as { argument?: string }).argument ?? 'tlb'}`, e.message);
      throw e;
    }
    const bytes = config.memory ?? 2 ** 30;
    if (!Number.isSafeInteger(bytes) || bytes < 2 ** 20 || bytes > MAX_MEMORY || bytes % 4096 !== 0) {
      throw new ConfigError('memory', `expected a multiple of 4096 from 1 MiB to 64 GiB, got ${JSON.stringify(bytes)}`);
    }
    if (bytes > 2 ** this.model.maxphyaddr) {
      throw new ConfigError('memory', `${bytes} bytes do not fit below 2^${this.model.maxphyaddr} (cpu.maxphyaddr)`);
    }
    this.mem = new PhysMem(bytes);
    this.cpus = [];
    for (let i = 0; i < n; i++) this.cpus.push(new Cpu(i, this.model, this.mem, this.events));
  }
}
