/**
 * CPUID faulting (CPU option `cpuid_faulting`: MSR_PLATFORM_INFO bit 31, MSR_MISC_FEATURES_ENABLES
 * bit 0, SDM Vol. 3A "CPUID faulting"; Linux 6.12 arch/x86/kernel/process.c set_cpuid_mode,
 * disable_cpuid, enable_cpuid, set_cpuid_faulting, __switch_to_xtra, arch_setup_new_exec;
 * cpu/intel.c init_cpuid_fault).
 *
 * Host-checked (/tmp/vsc/ap.c, 6.18 x86-64 with cpuid_fault): ARCH_SET_CPUID(0) returns 0, then
 * ARCH_GET_CPUID 0 and CPUID is SIGSEGV with SI_KERNEL; a second ARCH_SET_CPUID(0) is 0; a
 * forked child has ARCH_GET_CPUID 0 and its CPUID faults; after the child's execve ARCH_GET_CPUID
 * is 1 and CPUID runs; ARCH_SET_CPUID(5) turns faulting off (GET 1, CPUID runs).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runHolding } from './helpers.js';
import { Machine } from '../../src/hw/machine.js';
import { MISC_FEATURES_CPUID_FAULT, MSR_MISC_FEATURES_ENABLES, MSR_PLATFORM_INFO, X86_TRAP_GP } from '../../src/hw/regs.js';

function run(text: string): void {
  runHolding(text, 'cpuid-faulting.yaml');
}

test('the MSRs: PLATFORM_INFO bit 31 says CPUID faulting; MISC_FEATURES_ENABLES takes bit 0 only where it is supported; CPUID at CPL 3 faults only with it set', () => {
  for (const on of [false, true]) {
    const cpu = new Machine({ cpu: { cpuid_faulting: on } }).cpus[0];
    assert.equal(cpu.rdmsr(MSR_PLATFORM_INFO), on ? 1n << 31n : 0n);
    assert.equal(cpu.wrmsr(MSR_MISC_FEATURES_ENABLES, 1n), on, 'bit 0');
    assert.equal(cpu.wrmsr(MSR_MISC_FEATURES_ENABLES, 2n), false, 'bit 1 (Xeon Phi ring-3 MWAIT) is not modelled');
    if (!on) assert.equal(cpu.faultVector, X86_TRAP_GP);
    cpu.clearFault();
    assert.equal(cpu.rdmsr(MSR_MISC_FEATURES_ENABLES), on ? BigInt(MISC_FEATURES_CPUID_FAULT) : 0n);
    assert.equal(cpu.cpuidFaults(), false, 'CPL 0 never faults');
    cpu.setCpl(3);
    assert.equal(cpu.cpuidFaults(), on);
    assert.equal(cpu.rdmsr(MSR_PLATFORM_INFO), null, 'RDMSR at CPL 3 is #GP');
  }
});

const SKIP = `
    handlers:
      SIGSEGV: { handler: skip }
    functions:
      skip: [ longjmp ]`;

test('without cpuid_faulting ARCH_SET_CPUID is -ENODEV and CPUID runs; ARCH_GET_CPUID is 1', () => {
  run(`name: no-cpuid-fault
processes:
  - name: p
    ops:
      - arch_prctl: { option: ARCH_SET_CPUID, arg2: 0 }
        expect: { errno: ENODEV }
      - arch_prctl: { option: ARCH_GET_CPUID, arg2: 0 }
        expect: 1
      - cpuid: 0
        expect: { success: true }
`);
});

test('ARCH_SET_CPUID(0): ARCH_GET_CPUID is 0 and CPUID is SIGSEGV SI_KERNEL until ARCH_SET_CPUID with a non-zero argument (host)', () => {
  run(`name: cpuid-fault
machine: { cpu: { cpuid_faulting: true } }
processes:
  - name: p${SKIP}
    ops:
      - arch_prctl: { option: ARCH_GET_CPUID, arg2: 0 }
        expect: 1
      - cpuid: 0
        expect: { success: true }
      - arch_prctl: { option: ARCH_SET_CPUID, arg2: 0 }
        expect: 0
      - arch_prctl: { option: ARCH_GET_CPUID, arg2: 0 }
        expect: 0
      - cpuid: 0
        expect: { signal: SIGSEGV, si_code: SI_KERNEL }
      - arch_prctl: { option: ARCH_SET_CPUID, arg2: 0 }
        expect: 0
      - cpuid: 7
        expect: { signal: SIGSEGV, si_code: SI_KERNEL }
      - arch_prctl: { option: ARCH_SET_CPUID, arg2: 5 }
        expect: 0
      - arch_prctl: { option: ARCH_GET_CPUID, arg2: 0 }
        expect: 1
      - cpuid: 0
        expect: { success: true }
`);
});

test('TIF_NOCPUID is per thread and follows it across context switches on one CPU; fork inherits it, execve clears it (host)', () => {
  run(`name: cpuid-fault-switch
machine: { cpu: { cpuid_faulting: true } }
programs:
  /bin/next:
    ops:
      - arch_prctl: { option: ARCH_GET_CPUID, arg2: 0 }
        expect: 1
      - cpuid: 0
        expect: { success: true }
processes:
  - name: p${SKIP}
    ops:
      - arch_prctl: { option: ARCH_SET_CPUID, arg2: 0 }
        expect: 0
      - clone:
          clone_flags: CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD
          cpu: 0
          name: t
          ops:
            - arch_prctl: { option: ARCH_SET_CPUID, arg2: 1 }
              expect: 0
            - sched_yield
            - cpuid: 0
              expect: { success: true }
      - sched_yield
      - cpuid: 0
        expect: { signal: SIGSEGV, si_code: SI_KERNEL }
      - sched_yield
      - cpuid: 1
        expect: { signal: SIGSEGV, si_code: SI_KERNEL }
      - fork:
          name: c
          ops:
            - arch_prctl: { option: ARCH_GET_CPUID, arg2: 0 }
              expect: 0
            - cpuid: 0
              expect: { signal: SIGSEGV, si_code: SI_KERNEL }
            - execve: { filename: /bin/next }
        as: child
      - wait4: { upid: $child }
`);
});
