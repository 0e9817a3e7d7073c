/**
 * Supervisor protection keys (CR4.PKS with IA32_PKRS) and the CET registers, per
 * ../shared/spec/x86-access-rules.md §2, §3, §5, §6 and the SDM's WRMSR/MOV CR rules.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CR0_WP, CR4_CET, CR4_PKE, CR4_PKS, MSR_IA32_PKRS, MSR_IA32_PL3_SSP, MSR_IA32_U_CET, PF_P, PF_PK, PF_W, PF_U, X86_TRAP_GP,
} from '../../src/index.js';
import { rig } from './helpers.js';

const KVA = 0xffff888000002000n; // supervisor-mode address
const UVA = 0x0000000000402000n; // user-mode address

function pksRig() {
  const r = rig({ cpu: { pks: true } });
  r.pt.map(KVA, 0x300000, { leaf: { rw: true, pk: 6 } });
  r.pt.map(UVA, 0x301000, { leaf: { rw: true, us: true, pk: 6 } });
  assert.ok(r.cpu.movToCr4(r.cpu.cr4 | CR4_PKS));
  return r;
}

test('PKS: IA32_PKRS AD denies supervisor reads and writes of a supervisor page with PK set', () => {
  const { cpu } = pksRig();
  assert.ok(cpu.wrmsr(MSR_IA32_PKRS, 1n << 12n)); // AD6
  assert.equal(cpu.translateAddress(KVA, 'read'), null);
  assert.equal(cpu.faultErrorCode, PF_P | PF_PK);
  assert.equal(cpu.translateAddress(KVA, 'write'), null);
  assert.equal(cpu.faultErrorCode, PF_P | PF_W | PF_PK);
  assert.equal(cpu.translateAddress(KVA, 'fetch'), 0x300000, 'keys never apply to instruction fetches (spec §5)');
});

test('PKS: WD denies supervisor writes only with CR0.WP=1; reads pass', () => {
  const { cpu } = pksRig();
  assert.ok(cpu.wrmsr(MSR_IA32_PKRS, 2n << 12n)); // WD6
  assert.equal(cpu.translateAddress(KVA, 'read'), 0x300000);
  assert.equal(cpu.translateAddress(KVA, 'write'), null);
  assert.equal(cpu.faultErrorCode, PF_P | PF_W | PF_PK);
  assert.ok(cpu.movToCr0(cpu.cr0 & ~CR0_WP));
  assert.equal(cpu.translateAddress(KVA, 'write'), 0x300000, 'WP=0: WD does not apply to supervisor writes');
});

test('PKS does not apply to user-mode addresses, and PKRU does not apply to supervisor-mode ones', () => {
  const { cpu } = pksRig();
  assert.ok(cpu.wrmsr(MSR_IA32_PKRS, 0xffffffffn));
  assert.ok(cpu.movToCr4(cpu.cr4 | CR4_PKE));
  cpu.setCpl(3);
  assert.equal(cpu.translateAddress(UVA, 'write'), 0x301000, 'PKRS ignores user pages');
  cpu.pkru = 0xffffffff;
  assert.equal(cpu.translateAddress(UVA, 'read'), null);
  assert.equal(cpu.faultErrorCode, PF_P | PF_U | PF_PK, 'PKRU denies the user page');
  cpu.setCpl(0);
  assert.ok(cpu.wrmsr(MSR_IA32_PKRS, 0n));
  assert.equal(cpu.translateAddress(KVA, 'read'), 0x300000, 'PKRU ignores supervisor pages');
});

test('PKS needs the feature: CR4.PKS and IA32_PKRS are #GP on a CPU without it', () => {
  const { cpu } = rig(); // default model: no PKS
  assert.equal(cpu.movToCr4(cpu.cr4 | CR4_PKS), false);
  assert.equal(cpu.faultVector, X86_TRAP_GP);
  cpu.clearFault();
  assert.equal(cpu.wrmsr(MSR_IA32_PKRS, 0n), false);
  assert.equal(cpu.faultVector, X86_TRAP_GP);
});

test('CET registers: IA32_U_CET and IA32_PL3_SSP take what they can hold, and CET needs WP', () => {
  const { cpu } = rig();
  assert.ok(cpu.wrmsr(MSR_IA32_U_CET, 0x3n));
  assert.equal(cpu.uCet, 3);
  assert.equal(cpu.wrmsr(MSR_IA32_U_CET, 0x10000n), false, 'a bit the model does not implement');
  assert.ok(cpu.wrmsr(MSR_IA32_PL3_SSP, 0x7ffff0000ff8n));
  assert.equal(cpu.pl3Ssp, 0x7ffff0000ff8n);
  assert.equal(cpu.wrmsr(MSR_IA32_PL3_SSP, 0x7ffff0000ff9n), false, 'SSP must be 4-byte aligned');
  assert.equal(cpu.wrmsr(MSR_IA32_PL3_SSP, 0x0000800000000000n), false, 'SSP must be canonical');
  assert.ok(cpu.movToCr4(cpu.cr4 | CR4_CET));
  assert.equal(cpu.movToCr0(cpu.cr0 & ~CR0_WP), false, 'WP cannot be cleared under CET');
  const noShstk = rig({ cpu: { shstk: false } }).cpu;
  assert.equal(noShstk.movToCr4(noShstk.cr4 | CR4_CET), false);
  assert.equal(noShstk.wrmsr(MSR_IA32_U_CET, 1n), false);
});

test('CR0: NW=1 with CD=0 is #GP; EFER.SCE may be cleared, LME/LMA may not', () => {
  const { cpu } = rig();
  assert.equal(cpu.movToCr0(cpu.cr0 | (1 << 29)), false, 'NW without CD');
  assert.equal(cpu.faultVector, X86_TRAP_GP);
  assert.ok(cpu.movToCr0(cpu.cr0 | (1 << 29) | (1 << 30)), 'NW with CD');
  assert.ok(cpu.wrmsr(0xc0000080, BigInt(cpu.efer & ~1)), 'SCE cleared');
  assert.equal(cpu.wrmsr(0xc0000080, BigInt(cpu.efer & ~(1 << 8))), false, 'LME cleared');
});
