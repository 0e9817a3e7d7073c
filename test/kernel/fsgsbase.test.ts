/**
 * FS and GS bases (arch/x86/kernel/process_64.c, 6.12): arch_prctl ARCH_SET_FS, ARCH_SET_GS,
 * ARCH_GET_FS, ARCH_GET_GS (do_arch_prctl_64: -EPERM at or above TASK_SIZE_MAX, the selector
 * zeroed, put_user's -EFAULT), ARCH_GET_CPUID and ARCH_SET_CPUID (do_arch_prctl_common),
 * unknown codes -EINVAL; RDFSBASE, WRFSBASE, RDGSBASE, WRGSBASE (SDM Vol. 2: #UD unless
 * CR4.FSGSBASE, #GP(0) for a non-canonical base); the bases across a context switch
 * (save_fsgs and x86_fsgsbase_load, or save_base_legacy and load_seg_legacy without
 * FSGSBASE), fork (copy_thread), execve (start_thread_common) and CLONE_SETTLS (set_new_tls).
 *
 * Host-checked (/tmp/segchk/ap.c, x86-64, 6.18): ARCH_SET_GS of 1<<47 and of TASK_SIZE_MAX
 * (1<<47)-4096 give -EPERM, of (1<<47)-4097 0; ARCH_SET_GS 0x5000 then ARCH_GET_GS and RDGSBASE
 * read 0x5000; WRGSBASE 0x7000 then ARCH_GET_GS reads 0x7000 and GS stays 0; ARCH_GET_FS to
 * address 8 is -EFAULT; ARCH_GET_CPUID 1; ARCH_GET_UNTAG_MASK (0x4001) and 0x9999 -EINVAL.
 * ARCH_SET_CPUID is -ENODEV here from set_cpuid_mode's code (the model's CPUs lack CPUID
 * faulting; the host has it and returns 0).
 */
import { test } from 'node:test';
import { runHolding } from './helpers.js';

function run(text: string): void {
  runHolding(text, 'fsgsbase.yaml');
}

const BUF = `
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS }
        as: buf`;

test('arch_prctl: the base codes with their checks, the CPUID codes and unknown ones (host)', () => {
  run(`name: arch-prctl
processes:
  - name: p
    ops:${BUF}
      - arch_prctl: { option: 0x1001, arg2: 0x800000000000 }
        expect: { errno: EPERM }
      - arch_prctl: { option: 0x1001, arg2: 0x7ffffffff000 }
        expect: { errno: EPERM }
      - arch_prctl: { option: 0x1001, arg2: 0x7fffffffefff }
        expect: 0
      - arch_prctl: { option: 0x1001, arg2: 0x5000 }
        expect: 0
      - arch_prctl: { option: 0x1004, arg2: $buf }
        expect: 0
      - load: $buf
        expect: 0x5000
      - rdgsbase:
        as: g
        expect: 0x5000
      - wrgsbase: 0x7000
      - arch_prctl: { option: 0x1004, arg2: $buf }
        expect: 0
      - load: $buf
        expect: 0x7000
      - read_sreg: gs
        expect: 0
      - arch_prctl: { option: 0x1003, arg2: 8 }
        expect: { errno: EFAULT }
      - arch_prctl: { option: 0x1002, arg2: 0x800000000000 }
        expect: { errno: EPERM }
      - arch_prctl: { option: 0x1011, arg2: 0 }
        expect: 1
      - arch_prctl: { option: 0x1012, arg2: 1 }
        expect: { errno: ENODEV }
      - arch_prctl: { option: 0x4001, arg2: $buf }
        expect: { errno: EINVAL }
      - arch_prctl: { option: 0x9999, arg2: 0 }
        expect: { errno: EINVAL }
`);
});

test('ARCH_SET_FS zeroes a loaded FS selector and sets the base; MOV FS of an LDT entry takes the descriptor base', () => {
  run(`name: arch-prctl-fs
processes:
  - name: p
    ops:${BUF}
      - store: { addr: $buf, value: ${0x1234 * 2 ** 32} }
      - store: { addr: $buf + 8, value: ${0xfff + 0x41 * 2 ** 32} }
      - modify_ldt: { func: 0x11, ptr: $buf, bytecount: 16 }
        expect: 0
      - mov_sreg: { sreg: fs, value: 0x07 }
      - rdfsbase:
        expect: 0x1234
      - arch_prctl: { option: 0x1002, arg2: 0x6000 }
        expect: 0
      - read_sreg: fs
        expect: 0
      - rdfsbase:
        expect: 0x6000
      - arch_prctl: { option: 0x1003, arg2: $buf }
      - load: $buf
        expect: 0x6000
`);
});

test('WRFSBASE of a non-canonical base is #GP (SIGSEGV, SI_KERNEL); without FSGSBASE the four instructions are #UD (SIGILL, ILL_ILLOPN)', () => {
  run(`name: fsgsbase-faults
processes:
  - name: p
    handlers:
      SIGSEGV: { handler: skip }
    functions:
      skip: [ longjmp ]
    ops:
      - wrfsbase: 0x800000000000
        expect: { signal: SIGSEGV, si_code: SI_KERNEL }
      - wrfsbase: 0xffff800000000000
        expect: { success: true }
`);
  for (const op of ['rdfsbase:', 'rdgsbase:', 'wrfsbase: 0', 'wrgsbase: 0']) {
    run(`name: fsgsbase-off
machine: { cpu: { fsgsbase: false } }
processes:
  - name: p
    handlers:
      SIGILL: { handler: skip }
    functions:
      skip: [ longjmp ]
    ops:
      - arch_prctl: { option: 0x1002, arg2: 0x6000 }
        expect: 0
      - ${op}
        expect: { signal: SIGILL, si_code: ILL_ILLOPN }
`);
  }
});

for (const fsgsbase of [true, false]) {
  test(`two threads on one CPU keep their own FS and GS bases across context switches (fsgsbase ${fsgsbase}); fork inherits them, execve clears them`, () => {
    run(`name: fsgs-switch
machine: { cpu: { fsgsbase: ${fsgsbase} } }
programs:
  /bin/next:
    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS }
        as: b
      - store: { addr: $b, value: -1 }
      - arch_prctl: { option: 0x1003, arg2: $b }
      - load: $b
        expect: 0
      - store: { addr: $b, value: -1 }
      - arch_prctl: { option: 0x1004, arg2: $b }
      - load: $b
        expect: 0
processes:
  - name: p
    ops:${BUF}
      - arch_prctl: { option: 0x1002, arg2: 0x1000 }
      - arch_prctl: { option: 0x1001, arg2: 0x1100 }
      - clone:
          clone_flags: CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD
          cpu: 0
          name: t
          ops:
            - arch_prctl: { option: 0x1002, arg2: 0x2000 }
            - sched_yield
            - arch_prctl: { option: 0x1003, arg2: $buf + 8 }
            - load: $buf + 8
              expect: 0x2000
            - arch_prctl: { option: 0x1004, arg2: $buf + 16 }
            - load: $buf + 16
              expect: 0x1100
      - sched_yield
      - sched_yield
      - arch_prctl: { option: 0x1003, arg2: $buf }
      - load: $buf
        expect: 0x1000
      - fork:
          name: c
          ops:
            - arch_prctl: { option: 0x1003, arg2: $buf + 24 }
            - load: $buf + 24
              expect: 0x1000
            - execve: { filename: /bin/next }
        as: child
      - wait4: { upid: $child }
`);
  });
}

test('CLONE_SETTLS: the new thread starts with FS base = tls and FS 0; a tls at TASK_SIZE_MAX fails the clone with -EPERM', () => {
  run(`name: settls
processes:
  - name: p
    ops:${BUF}
      - clone:
          clone_flags: CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SETTLS
          tls: 0x9000
          name: t
          cpu: 0
          ops:
            - rdfsbase:
              expect: 0x9000
            - read_sreg: fs
              expect: 0
      - sched_yield
      - sched_yield
      - clone:
          clone_flags: CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SETTLS
          tls: 0x7ffffffff000
          name: u
          ops: [ gettid ]
        expect: { errno: EPERM }
      - rdfsbase:
        expect: 0
`);
});
