/**
 * How results read in timelines, verdicts and answers: values in hex or decimal, -errno by
 * name, signals and si_codes by name, page-fault error codes by their SDM bit names.
 */
import { PF_I, PF_SS, PF_W, pfErrorBitNames } from '../hw/rights.js';
import { BUS_ADRERR, ERRNO_NAMES, FPE_INTDIV, SEGV_ACCERR, SEGV_MAPERR, SEGV_PKUERR, SI_KERNEL, SI_TKILL, SI_USER, SIGBUS, SIGFPE, SIGNAL_NAMES, SIGSEGV } from '../kernel/uapi.js';

/** A value: decimal below 0x10000, hex above; negative 64-bit values as signed. */
export function formatValue(v: bigint): string {
  const s = BigInt.asIntN(64, v);
  if (s < 0n && s > -0x10000n) return String(s);
  const u = BigInt.asUintN(64, v);
  return u < 0x10000n ? String(u) : `0x${u.toString(16)}`;
}

/** An address, a register or a PTE: hex whatever its size (uint64). */
export function formatHex(v: bigint): string {
  return `0x${BigInt.asUintN(64, v).toString(16)}`;
}

/**
 * The operations whose value is a register the processor gives (PKRU, SSP, an XCR, a CPUID
 * output): shown in hex, like addresses and PTEs. A load's value is data: formatValue.
 */
export const REGISTER_OPS: ReadonlySet<string> = new Set(['rdpkru', 'rdssp', 'xgetbv', 'cpuid', 'read_sreg', 'rdfsbase', 'rdgsbase']);

/** An operation's value: hex for a register it read, else formatValue. */
export function formatOpValue(op: string, v: bigint): string {
  return REGISTER_OPS.has(op) ? formatHex(v) : formatValue(v);
}

/** A syscall's return: -EINVAL for an error, else the value. */
export function formatReturn(ret: bigint): string {
  const s = BigInt.asIntN(64, ret);
  if (s < 0n && s >= -4095n) return `-${ERRNO_NAMES[Number(-s)] ?? `errno ${-s}`}`;
  return formatValue(ret);
}

export function signalName(signo: number): string {
  return SIGNAL_NAMES[signo] ?? `signal ${signo}`;
}

/** si_code by name for the signal it belongs to. */
export function siCodeName(signo: number, code: number): string {
  if (code === SI_USER) return 'SI_USER';
  if (code === SI_KERNEL) return 'SI_KERNEL';
  if (code === SI_TKILL) return 'SI_TKILL';
  if (signo === SIGSEGV) {
    if (code === SEGV_MAPERR) return 'SEGV_MAPERR';
    if (code === SEGV_ACCERR) return 'SEGV_ACCERR';
    if (code === SEGV_PKUERR) return 'SEGV_PKUERR';
  }
  if (signo === SIGBUS && code === BUS_ADRERR) return 'BUS_ADRERR';
  if (signo === SIGFPE && code === FPE_INTDIV) return 'FPE_INTDIV';
  return String(code);
}

/** The set bits of a #PF error code by their SDM names. */
export function pfBits(ec: number): string {
  return pfErrorBitNames(ec).join(' ') || 'none';
}

/** What a #PF error code says was attempted. */
export function pfAccess(ec: number): string {
  return ec & PF_I ? 'fetch' : ec & PF_SS ? (ec & PF_W ? 'shadow-stack write' : 'shadow-stack read') : ec & PF_W ? 'write' : 'read';
}

/** A wait status in words: "exit 0", "killed by SIGSEGV". */
export function formatWaitStatus(status: number): string {
  const sig = status & 0x7f;
  if (sig === 0) return `exit ${(status >> 8) & 0xff}`;
  return `killed by ${signalName(sig)}${status & 0x80 ? ' (core dumped)' : ''}`;
}
