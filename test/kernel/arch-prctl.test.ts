/**
 * arch_prctl's remaining x86-64 codes (arch/x86/kernel/process_64.c do_arch_prctl_64, process.c
 * do_arch_prctl_common, fpu/xstate.c fpu_xstate_prctl and xstate_request_perm; 6.12).
 *
 * Host-checked (/tmp/vsc/ap.c, 6.18 x86-64, XCR0 0xe7 there): ARCH_GET_XCOMP_SUPP,
 * ARCH_GET_XCOMP_PERM and ARCH_GET_XCOMP_GUEST_PERM all store XCR0's user components; to address
 * 8 -EFAULT; ARCH_REQ_XCOMP_PERM and _GUEST_PERM of component 2 (no facility) and 18 (AMX tile
 * data, which that CPU lacks) -EOPNOTSUPP, of 1000 -EINVAL (19 is -EOPNOTSUPP there, where 6.16
 * added component 19; 6.12's XFEATURE_MAX is 19, so -EINVAL); the four LAM codes -EINVAL
 * (no CONFIG_ADDRESS_MASKING). The model's XCR0 is x87 | SSE | PKRU (0x203), or 0x3 with nopku.
 */
import { test } from 'node:test';
import { runHolding } from './helpers.js';

function run(text: string): void {
  runHolding(text, 'arch-prctl.yaml');
}

// Without XSAVE only the legacy FXSR size is set up (fpu__init_system_xstate_size_legacy): SUPP is
// its legacy_features, the permissions fpu_kernel_cfg.default_features, still 0.
for (const [label, kernel, cpu, xcr0, perm] of [
  ['PKU', '{}', '{}', '0x203', '0x203'],
  ['nopku', '{ nopku: true }', '{}', '0x3', '0x3'],
  ['no XSAVE', '{}', '{ xsave: false, pku: false, shstk: false }', '0x3', '0'],
] as const) {
  test(`ARCH_GET_XCOMP_SUPP, _PERM and _GUEST_PERM store the user xfeatures (${label}: ${xcr0}, permitted ${perm}); -EFAULT for a bad address (host)`, () => {
    run(`name: xcomp
kernel: ${kernel}
machine: { cpu: ${cpu} }
processes:
  - name: p
    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS }
        as: buf
      - arch_prctl: { option: ARCH_GET_XCOMP_SUPP, arg2: $buf }
        expect: 0
      - load: $buf
        expect: ${xcr0}
      - arch_prctl: { option: ARCH_GET_XCOMP_PERM, arg2: $buf + 8 }
        expect: 0
      - load: $buf + 8
        expect: ${perm}
      - arch_prctl: { option: ARCH_GET_XCOMP_GUEST_PERM, arg2: $buf + 16 }
        expect: 0
      - load: $buf + 16
        expect: ${perm}
      - arch_prctl: { option: ARCH_GET_XCOMP_SUPP, arg2: 8 }
        expect: { errno: EFAULT }
      - arch_prctl: { option: ARCH_GET_XCOMP_PERM, arg2: 0 }
        expect: { errno: EFAULT }
`);
  });
}

test('ARCH_REQ_XCOMP_PERM and _GUEST_PERM: -EINVAL at or past XFEATURE_MAX (19), -EOPNOTSUPP below it (only AMX tile data is a dynamic facility, and the model has none) (host)', () => {
  run(`name: xcomp-req
processes:
  - name: p
    ops:
      - arch_prctl: { option: ARCH_REQ_XCOMP_PERM, arg2: 2 }
        expect: { errno: EOPNOTSUPP }
      - arch_prctl: { option: ARCH_REQ_XCOMP_PERM, arg2: 18 }
        expect: { errno: EOPNOTSUPP }
      - arch_prctl: { option: ARCH_REQ_XCOMP_PERM, arg2: 0 }
        expect: { errno: EOPNOTSUPP }
      - arch_prctl: { option: ARCH_REQ_XCOMP_PERM, arg2: 19 }
        expect: { errno: EINVAL }
      - arch_prctl: { option: ARCH_REQ_XCOMP_PERM, arg2: 1000 }
        expect: { errno: EINVAL }
      - arch_prctl: { option: ARCH_REQ_XCOMP_GUEST_PERM, arg2: 18 }
        expect: { errno: EOPNOTSUPP }
      - arch_prctl: { option: ARCH_REQ_XCOMP_GUEST_PERM, arg2: 19 }
        expect: { errno: EINVAL }
`);
});

test('the LAM codes are -EINVAL (6.12 without CONFIG_ADDRESS_MASKING, host), and so are the vDSO codes (the model has no vDSO)', () => {
  run(`name: lam-vdso
processes:
  - name: p
    ops:
      - mmap: { len: PAGE_SIZE, prot: PROT_READ|PROT_WRITE, flags: MAP_PRIVATE|MAP_ANONYMOUS }
        as: buf
      - arch_prctl: { option: ARCH_GET_UNTAG_MASK, arg2: $buf }
        expect: { errno: EINVAL }
      - arch_prctl: { option: ARCH_ENABLE_TAGGED_ADDR, arg2: 6 }
        expect: { errno: EINVAL }
      - arch_prctl: { option: ARCH_GET_MAX_TAG_BITS, arg2: $buf }
        expect: { errno: EINVAL }
      - arch_prctl: { option: ARCH_FORCE_TAGGED_SVA, arg2: 0 }
        expect: { errno: EINVAL }
      - arch_prctl: { option: ARCH_MAP_VDSO_64, arg2: 0x10000000 }
        expect: { errno: EINVAL }
      - arch_prctl: { option: ARCH_MAP_VDSO_32, arg2: 0x10000000 }
        expect: { errno: EINVAL }
      - arch_prctl: { option: ARCH_MAP_VDSO_X32, arg2: 0x10000000 }
        expect: { errno: EINVAL }
`);
});
