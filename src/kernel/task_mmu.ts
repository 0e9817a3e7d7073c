/**
 * /proc/PID/maps, smaps, pagemap and clear_refs (fs/proc/task_mmu.c): the text of
 * show_map_vma and show_smap, made from the VMAs and the page tables at read time;
 * pagemap_read's 64-bit entry per page (pte_to_pagemap_entry, pagemap_pte_hole); and
 * clear_refs_write, which clears the accessed bits or, for 4, the soft-dirty state.
 *
 * maps and smaps are read under mmap_lock for reading, the whole text at once; each PTE table
 * smaps or pagemap reads is read under the page-table lock in one step, as zap and mincore read
 * theirs. Soft-dirty is configured in (CONFIG_MEM_SOFT_DIRTY, as Debian's x86-64 kernel has it):
 * a new VMA has VM_SOFTDIRTY (Vma.softdirty), pte_mkdirty sets _PAGE_SOFT_DIRTY, swap-out and
 * swap-in carry it over, and clear_refs 4 clears both and write-protects every PTE so the next
 * write faults and sets it again.
 *
 * XXX: clearing VM_SOFTDIRTY does not write-protect a shared writable mapping's vm_page_prot
 * (vma_set_page_prot's writenotify): the model computes PTE protections from the flags, so a
 * page of such a mapping first faulted in by a read after clear_refs is writable and a later
 * write to it is not seen; the PTEs present at clear_refs are write-protected as Linux does.
 * No gate VMA other than [vsyscall] (vsyscall.ts; no vDSO or vvar), no hugetlb and no huge pages
 * (THPeligible says whether the VMA could have them, huge_memory.ts: under
 * CONFIG_TRANSPARENT_HUGEPAGE_MADVISE, Debian's default, only an anonymous VMA marked
 * MADV_HUGEPAGE holding an aligned 2 MiB; AnonHugePages stays 0). The program's text and
 * read-only data are not files in the model: their lines carry the program's path with no
 * device or inode (vma_name), and smaps and pagemap count their pages as anonymous. A private mapping
 * of /dev/zero is plain anonymous memory in the model (Linux keeps the file and shows
 * /dev/zero).
 */
import { track } from '../track.js';
import type { Kernel, PerCpu } from './kernel.js';
import { spin_lock_ptl, spin_unlock_ptl } from './memory.js';
import type { MmStruct } from './mm.js';
import { PG_anon, PG_dirty, PG_referenced, PG_swapbacked } from './page.js';
import {
  __pte, _PAGE_SOFT_DIRTY, _PAGE_SPECIAL, _PAGE_SWP_SOFT_DIRTY, is_swap_pte, pgtableIndex, pmd_addr_end, pte_clear_soft_dirty, pte_dirty, pte_none, pte_pfn, pte_present,
  pte_swp_soft_dirty, pte_wrprotect, pte_write, swp_offset, swp_type,
} from './pgtable.js';
import { PTE_A, PTE_SOFTW2, PTE_US } from '../hw/pte.js';
import { GUP_PIN_COUNTING_BIAS } from './page.js';
import { flush_tlb_mm_range, TLB_FLUSH_ALL } from './tlbflush.js';
import { __swap_count } from './swap.js';
import { STEP_ATOMIC, STEP_READ, STEP_WRITE, type KSteps } from './steps.js';
import type { Task } from './task.js';
import type { Inode, Vfs } from './vfs.js';
import {
  VM_ACCOUNT, VM_DONTCOPY, VM_DONTDUMP, VM_DONTEXPAND, VM_EXEC, VM_GROWSDOWN, VM_HUGEPAGE, VM_IO, VM_LOCKED, VM_LOCKONFAULT, VM_MAYEXEC, VM_MAYREAD, VM_MAYSHARE,
  VM_MAYWRITE, VM_MERGEABLE, VM_MIXEDMAP, VM_NOHUGEPAGE, VM_NORESERVE, VM_PFNMAP, VM_RAND_READ, VM_READ, VM_SEQ_READ, VM_SHARED, VM_UFFD_MISSING, VM_UFFD_WP,
  VM_WIPEONFORK, VM_WRITE, type Vma,
} from './vma.js';
import { thp_vma_allowable_pmd } from './huge_memory.js';
import { VSYSCALL_ADDR } from './layout.js';
import { gate_vma_flags } from './vsyscall.js';

const PAGE_SIZE = 4096;

/** VM_SOFTDIRTY (include/linux/mm.h): "not soft-dirty clean area"; kept as Vma.softdirty, shown by smaps's VmFlags as "sd". */
export const VM_SOFTDIRTY = 0x08000000;

/** The device number of the shm_mnt internal mount behind shared anonymous memory (its inodes show as 00:01 on the host). */
const SHM_MNT_DEV = 0x1;

// Pagemap entry bits (fs/proc/task_mmu.c), as a high word and a low word.
/** PM_PFRAME_BITS: the frame (or swap type and offset) in bits 0..54. */
const PM_PFRAME_BITS = 55;
/** MAX_SWAPFILES_SHIFT: a swap entry's offset sits above its 5-bit type. */
const MAX_SWAPFILES_SHIFT = 5;
export const PM_SOFT_DIRTY = 1n << 55n;
export const PM_MMAP_EXCLUSIVE = 1n << 56n;
export const PM_UFFD_WP = 1n << 57n;
export const PM_FILE = 1n << 61n;
export const PM_SWAP = 1n << 62n;
export const PM_PRESENT = 1n << 63n;
/** PM_ENTRY_BYTES. */
export const PM_ENTRY_BYTES = 8;

/** _PAGE_UFFD_WP (bit 10) of a present PTE, _PAGE_SWP_UFFD_WP (bit 2, _PAGE_USER) of a swap PTE. */
const _PAGE_UFFD_WP = PTE_SOFTW2;
const _PAGE_SWP_UFFD_WP = PTE_US;

// ---- maps ------------------------------------------------------------------------------------

/** seq_put_hex_ll: `v` in lower-case hex, zero-padded to at least `width` digits. */
function hex(v: number | bigint, width: number): string {
  return v.toString(16).padStart(width, '0');
}

/** d_path of a tmpfs inode: its path from the root, or, when no directory holds it (a memfd), `/NAME (deleted)`; a newline in it is escaped as seq_path does ("\012"). */
export function inode_path(vfs: Vfs, inode: Inode): string {
  const find = (d: Inode, prefix: string): string | null => {
    for (const [name, i] of d.entries!) {
      if (i === inode) return `${prefix}/${name}`;
      if (i.entries && !i.lookup && i.parent === d) {
        const p = find(i, `${prefix}/${name}`);
        if (p) return p;
      }
    }
    return null;
  };
  const path = find(vfs.root, '') ?? `/${inode.name} (deleted)`;
  return path.replace(/\n/g, '\\012');
}

/** What show_map_vma prints of a VMA's backing: the device, inode and byte offset, and the name (a path, a [bracketed] name, or ''). */
interface MapName {
  dev: number;
  ino: number;
  pgoff: number;
  name: string;
}

/** The program image's first address (TEXT_BASE): its file offset 0. */
const IMAGE_BASE = 0x400000;

/**
 * get_vma_name and show_map_vma's `if (vma->vm_file)`: a tmpfs file's path, device and inode;
 * shared anonymous memory is shmem_zero_setup's unlinked "dev/zero" file (`/dev/zero
 * (deleted)` on shm_mnt; XXX: its inode number is the model's object id, where Linux counts
 * get_next_ino); otherwise the model's own name ([stack], [heap]) or none.
 *
 * The program's text and read-only data: Linux maps them from the executable and prints its
 * path, device, inode and the segment's file offset. The model's image is no file, but a reader
 * comparing with a real /proc/self/maps looks for the program's path on those lines, so they
 * carry it (mm.exe_path) with the offsets a linker gives a non-PIE executable loaded at
 * 0x400000 (the text at offset 0, the data after it, as vm_pgoff keeps them through splits and
 * moves), and device 00:00 and inode 0: there is no file to number.
 */
function vma_name(k: Kernel, mm: MmStruct, v: Vma): MapName {
  const obj = v.shmem;
  if (obj && obj.file) return { dev: obj.file.dev, ino: obj.file.ino, pgoff: v.vm_pgoff * PAGE_SIZE, name: inode_path(k.vfs, obj.file) };
  if (obj) return { dev: SHM_MNT_DEV, ino: obj.id, pgoff: v.vm_pgoff * PAGE_SIZE, name: '/dev/zero (deleted)' };
  if ((v.name === '[text]' || v.name === '[rodata]') && mm.exe_path) return { dev: 0, ino: 0, pgoff: v.vm_pgoff * PAGE_SIZE - IMAGE_BASE, name: mm.exe_path };
  return { dev: 0, ino: 0, pgoff: 0, name: v.name };
}

/**
 * show_vma_header_prefix + show_map_vma: `start-end perms offset major:minor inode `, then,
 * when there is a name, the line padded with spaces to column 73 (seq_setwidth(25 + 6 *
 * sizeof(void *) - 1) and seq_pad) and the name; then a newline.
 */
function show_map_line(start: bigint | number, end: bigint | number, flags: number, m: MapName): string {
  let s = `${hex(start, 8)}-${hex(end, 8)} `;
  s += (flags & VM_READ ? 'r' : '-') + (flags & VM_WRITE ? 'w' : '-') + (flags & VM_EXEC ? 'x' : '-') + (flags & VM_MAYSHARE ? 's' : 'p');
  s += ` ${hex(m.pgoff, 8)} ${hex(m.dev >>> 20, 2)}:${hex(m.dev & 0xfffff, 2)} ${m.ino} `;
  if (m.name) s = s.padEnd(25 + 6 * 8 - 1, ' ') + ' ' + m.name;
  return s + '\n';
}

/** The gate VMA (get_gate_vma, vsyscall.ts): the vsyscall page, after every VMA, unless vsyscall=none. */
const GATE_START = VSYSCALL_ADDR;
const GATE_NAME: Readonly<MapName> = { dev: 0, ino: 0, pgoff: 0, name: '[vsyscall]' };

/** show_map for every VMA of `mm` and the gate VMA: /proc/PID/maps's text. The caller holds mmap_lock. */
export function show_maps(k: Kernel, mm: MmStruct): string {
  let s = '';
  for (const v of mm.vmas.list) s += show_map_line(v.vm_start, v.vm_end, v.vm_flags, vma_name(k, mm, v));
  const gate = gate_vma_flags(k);
  return gate === null ? s : s + show_map_line(GATE_START, GATE_START + 4096n, gate, GATE_NAME);
}

// ---- smaps -----------------------------------------------------------------------------------

/** PSS_SHIFT: Pss is summed in units of 1/2^12 of a byte. */
const PSS_SHIFT = 12n;

/** struct mem_size_stats: the fields smaps shows, in bytes (pss* in bytes << PSS_SHIFT). */
class MemSizeStats {
  resident = 0;
  shared_clean = 0;
  shared_dirty = 0;
  private_clean = 0;
  private_dirty = 0;
  referenced = 0;
  anonymous = 0;
  lazyfree = 0;
  swap = 0;
  pss = 0n;
  pss_dirty = 0n;
  pss_locked = 0n;
  swap_pss = 0n;

  constructor() {
    return track(this);
  }
}

/** smaps_page_accumulate. */
function smaps_page_accumulate(k: Kernel, mss: MemSizeStats, pfn: number, size: number, pss: bigint, dirty: boolean, locked: boolean, priv: boolean): void {
  mss.pss += pss;
  if (locked) mss.pss_locked += pss;
  if (dirty || k.pages.flags[pfn] & PG_dirty) {
    mss.pss_dirty += pss;
    if (priv) mss.private_dirty += size;
    else mss.shared_dirty += size;
  } else if (priv) mss.private_clean += size;
  else mss.shared_clean += size;
}

/**
 * smaps_account for one small page: Anonymous (and LazyFree for a clean anonymous page that is
 * not swap-backed: MADV_FREE), Rss, Referenced (the PTE's A or PG_referenced); then, with a
 * single reference, all of it private; otherwise Pss divided by the mapcount, private when
 * mapped once.
 */
function smaps_account(k: Kernel, mss: MemSizeStats, pfn: number, young: boolean, dirty: boolean, locked: boolean): void {
  const f = k.pages.flags[pfn];
  if (f & PG_anon) {
    mss.anonymous += PAGE_SIZE;
    if (!(f & PG_swapbacked) && !dirty && !(f & PG_dirty)) mss.lazyfree += PAGE_SIZE;
  }
  mss.resident += PAGE_SIZE;
  if (young || f & PG_referenced) mss.referenced += PAGE_SIZE;
  const whole = BigInt(PAGE_SIZE) << PSS_SHIFT;
  if (k.pages.refcount[pfn] === 1) {
    smaps_page_accumulate(k, mss, pfn, PAGE_SIZE, whole, dirty, locked, true);
    return;
  }
  const mapcount = k.pages.mapcount[pfn];
  smaps_page_accumulate(k, mss, pfn, PAGE_SIZE, mapcount >= 2 ? whole / BigInt(mapcount) : whole, dirty, locked, mapcount < 2);
}

/**
 * smaps_pte_entry for the entries of PTE table `table` over [start, end) of `v`: a present
 * entry's normal page (not the zero page) is accounted; a swap entry adds to Swap and to
 * SwapPss divided by its swap count. Reads in the caller's step. XXX: a hole in a shmem mapping
 * adds nothing (the model's shmem is never swapped).
 */
function smaps_pte_range(k: Kernel, mss: MemSizeStats, v: Vma, table: number, start: number, end: number): void {
  const mem = k.machine.mem;
  const locked = (v.vm_flags & VM_LOCKED) !== 0;
  for (let va = start, i = pgtableIndex(start, 1); va < end; va += PAGE_SIZE, i++) {
    const lo = mem.readLo(table, i);
    const hi = mem.readHi(table, i);
    if (pte_none(lo, hi)) continue;
    if (pte_present(lo)) {
      // vm_normal_page: no page behind a special entry.
      if (lo & _PAGE_SPECIAL) continue;
      smaps_account(k, mss, pte_pfn(lo, hi), (lo & PTE_A) !== 0, pte_dirty(lo, hi), locked);
      continue;
    }
    mss.swap += PAGE_SIZE;
    const mapcount = __swap_count(k.swap, swp_offset(lo, hi));
    const whole = BigInt(PAGE_SIZE) << PSS_SHIFT;
    mss.swap_pss += mapcount >= 2 ? whole / BigInt(mapcount) : whole;
  }
}

/** smap_gather_stats: walk_page_vma with smaps_walk_ops, each PTE table read under the page-table lock in one step. */
function* smap_gather_stats(k: Kernel, pc: PerCpu, t: Task, mm: MmStruct, v: Vma, mss: MemSizeStats): KSteps<void> {
  for (let va = v.vm_start; va < v.vm_end; va = pmd_addr_end(va, v.vm_end)) {
    const to = pmd_addr_end(va, v.vm_end);
    if (mm.pgtables.pteTable(va, false) < 0) continue;
    yield* spin_lock_ptl(pc, mm, t);
    const table = mm.pgtables.pteTable(va, false);
    pc.touch = table * 4096 + pgtableIndex(va, 1) * 8;
    yield STEP_READ;
    smaps_pte_range(k, mss, v, table, va, to);
    yield* spin_unlock_ptl(pc, mm);
  }
}

/** seq_put_decimal_ull_width with width 8: `v` right-aligned in eight columns. */
function dec8(v: number | bigint): string {
  return v.toString().padStart(8, ' ');
}

/** show_smap_vma_flags's mnemonics[], for the bits of the 32-bit flags the model has, in bit order. */
const VM_FLAG_MNEMONICS: readonly [number, string][] = [
  [VM_READ, 'rd'], [VM_WRITE, 'wr'], [VM_EXEC, 'ex'], [VM_SHARED, 'sh'], [VM_MAYREAD, 'mr'], [VM_MAYWRITE, 'mw'], [VM_MAYEXEC, 'me'],
  [VM_MAYSHARE, 'ms'], [VM_GROWSDOWN, 'gd'], [VM_UFFD_MISSING, 'um'], [VM_PFNMAP, 'pf'], [VM_UFFD_WP, 'uw'], [VM_LOCKED, 'lo'], [VM_IO, 'io'],
  [VM_SEQ_READ, 'sr'], [VM_RAND_READ, 'rr'], [VM_DONTCOPY, 'dc'], [VM_DONTEXPAND, 'de'], [VM_LOCKONFAULT, 'lf'], [VM_ACCOUNT, 'ac'],
  [VM_NORESERVE, 'nr'], [VM_WIPEONFORK, 'wf'], [VM_DONTDUMP, 'dd'], [VM_SOFTDIRTY, 'sd'], [VM_MIXEDMAP, 'mm'], [VM_HUGEPAGE, 'hg'],
  [VM_NOHUGEPAGE, 'nh'], [VM_MERGEABLE, 'mg'],
];

/**
 * show_smap_vma_flags: the two-letter mnemonic of each vm_flags bit the model has, in bit
 * order, each followed by a space (the protection key's bits are shown as ProtectionKey).
 */
function show_smap_vma_flags(flags: number, shadowStack: boolean): string {
  let s = 'VmFlags: ';
  for (const [bit, name] of VM_FLAG_MNEMONICS) if (flags & bit) s += `${name} `;
  // Bit 37: VM_SHADOW_STACK ("ss", CONFIG_X86_USER_SHADOW_STACK).
  if (shadowStack) s += 'ss ';
  return s + '\n';
}

/**
 * show_smap for one VMA: its maps line, Size, KernelPageSize and MMUPageSize, __show_smap's
 * counts (each `%8lu kB`, Private_Hugetlb in seven columns as Linux prints it), THPeligible,
 * ProtectionKey when the CPU has OSPKE, and VmFlags.
 */
function show_smap_text(k: Kernel, start: bigint | number, end: bigint | number, flags: number, name: MapName, pkey: number, shadowStack: boolean, mss: MemSizeStats, thp: boolean): string {
  const kb = (bytes: number | bigint): string => dec8(BigInt(bytes) >> 10n);
  let s = show_map_line(start, end, flags, name);
  s += `Size:           ${kb(BigInt(end) - BigInt(start))} kB\n`;
  s += `KernelPageSize: ${kb(PAGE_SIZE)} kB\n`;
  s += `MMUPageSize:    ${kb(PAGE_SIZE)} kB\n`;
  s += `Rss:            ${kb(mss.resident)} kB\n`;
  s += `Pss:            ${kb(mss.pss >> PSS_SHIFT)} kB\n`;
  s += `Pss_Dirty:      ${kb(mss.pss_dirty >> PSS_SHIFT)} kB\n`;
  s += `Shared_Clean:   ${kb(mss.shared_clean)} kB\n`;
  s += `Shared_Dirty:   ${kb(mss.shared_dirty)} kB\n`;
  s += `Private_Clean:  ${kb(mss.private_clean)} kB\n`;
  s += `Private_Dirty:  ${kb(mss.private_dirty)} kB\n`;
  s += `Referenced:     ${kb(mss.referenced)} kB\n`;
  s += `Anonymous:      ${kb(mss.anonymous)} kB\n`;
  s += `KSM:            ${kb(0)} kB\n`;
  s += `LazyFree:       ${kb(mss.lazyfree)} kB\n`;
  s += `AnonHugePages:  ${kb(0)} kB\n`;
  s += `ShmemPmdMapped: ${kb(0)} kB\n`;
  s += `FilePmdMapped:  ${kb(0)} kB\n`;
  s += `Shared_Hugetlb: ${kb(0)} kB\n`;
  s += `Private_Hugetlb: ${'0'.padStart(7, ' ')} kB\n`;
  s += `Swap:           ${kb(mss.swap)} kB\n`;
  s += `SwapPss:        ${kb(mss.swap_pss >> PSS_SHIFT)} kB\n`;
  s += `Locked:         ${kb(mss.pss_locked >> PSS_SHIFT)} kB\n`;
  s += `THPeligible:    ${dec8(thp ? 1 : 0)}\n`;
  if (k.ospke) s += `ProtectionKey:  ${dec8(pkey)}\n`;
  return s + show_smap_vma_flags(flags, shadowStack);
}

/** /proc/PID/smaps's text: show_smap for each VMA, then for the gate VMA. The caller holds mmap_lock. */
export function* show_smaps(k: Kernel, pc: PerCpu, t: Task, mm: MmStruct): KSteps<string> {
  let s = '';
  for (const v of mm.vmas.list) {
    const mss = new MemSizeStats();
    yield* smap_gather_stats(k, pc, t, mm, v, mss);
    // thp_vma_allowable_orders(vma, vma->vm_flags, TVA_SMAPS | TVA_ENFORCE_SYSFS, THP_ORDERS_ALL): only the PMD order is enabled.
    const thp = thp_vma_allowable_pmd(v, v.vm_flags, true, true);
    s += show_smap_text(k, v.vm_start, v.vm_end, v.vm_flags | (v.softdirty ? VM_SOFTDIRTY : 0), vma_name(k, mm, v), v.vm_pkey, v.shadowStack, mss, thp);
  }
  // The gate VMA: nothing of it is counted (it has no mm: walk_page_vma gives -EINVAL).
  const gate = gate_vma_flags(k);
  return gate === null ? s : s + show_smap_text(k, GATE_START, GATE_START + 4096n, gate, GATE_NAME, 0, false, new MemSizeStats(), false);
}

// ---- pagemap ---------------------------------------------------------------------------------

/** make_pme: the frame (masked to PM_PFRAME_BITS) and the flags. */
function make_pme(frame: bigint, flags: bigint): bigint {
  return (frame & ((1n << BigInt(PM_PFRAME_BITS)) - 1n)) | flags;
}

/**
 * pte_to_pagemap_entry: a present entry gives PM_PRESENT, its frame when `show_pfn`, and its
 * soft-dirty and uffd-wp bits; a swap entry PM_SWAP, its type and offset (type | offset << 5)
 * when `show_pfn`, and its swap soft-dirty and uffd-wp bits. A normal page (not the zero page)
 * adds PM_FILE when it is not anonymous (shmem and tmpfs pages) and PM_MMAP_EXCLUSIVE when
 * mapped once (folio_precise_page_mapcount of a small folio). VM_SOFTDIRTY adds PM_SOFT_DIRTY.
 */
function pte_to_pagemap_entry(k: Kernel, v: Vma, lo: number, hi: number, show_pfn: boolean): bigint {
  let frame = 0n;
  let flags = 0n;
  let page = -1;
  if (pte_present(lo)) {
    if (show_pfn) frame = BigInt(pte_pfn(lo, hi));
    flags |= PM_PRESENT;
    if (!(lo & _PAGE_SPECIAL)) page = pte_pfn(lo, hi);
    if (lo & _PAGE_SOFT_DIRTY) flags |= PM_SOFT_DIRTY;
    if (lo & _PAGE_UFFD_WP) flags |= PM_UFFD_WP;
  } else if (is_swap_pte(lo, hi)) {
    if (lo & _PAGE_SWP_SOFT_DIRTY) flags |= PM_SOFT_DIRTY;
    if (lo & _PAGE_SWP_UFFD_WP) flags |= PM_UFFD_WP;
    if (show_pfn) frame = BigInt(swp_type(lo, hi)) | (BigInt(swp_offset(lo, hi)) << BigInt(MAX_SWAPFILES_SHIFT));
    flags |= PM_SWAP;
  }
  if (page >= 0) {
    if (!(k.pages.flags[page] & PG_anon)) flags |= PM_FILE;
    if (flags & PM_PRESENT && k.pages.mapcount[page] === 1) flags |= PM_MMAP_EXCLUSIVE;
  }
  if (v.softdirty) flags |= PM_SOFT_DIRTY;
  return make_pme(frame, flags);
}

/**
 * walk_page_range with pagemap_ops over [start, end), inside one PMD's span: addresses in no
 * VMA are 0 (pagemap_pte_hole); in a VMA without a PTE table, PM_SOFT_DIRTY for VM_SOFTDIRTY;
 * a PTE table's entries are read under the page-table lock in one step (pagemap_pmd_range).
 * The caller holds mmap_lock for reading. Returns the entries, one per page.
 */
export function* pagemap_walk(k: Kernel, pc: PerCpu, t: Task, mm: MmStruct, start: number, end: number, show_pfn: boolean): KSteps<bigint[]> {
  const out: bigint[] = [];
  const mem = k.machine.mem;
  let addr = start;
  while (addr < end) {
    const v = mm.vmas.find_vma(addr);
    const holeEnd = v ? Math.min(end, v.vm_start) : end;
    for (; addr < holeEnd; addr += PAGE_SIZE) out.push(0n);
    if (!v || addr >= end) break;
    const vend = Math.min(end, v.vm_end);
    if (mm.pgtables.pteTable(addr, false) < 0) {
      for (; addr < vend; addr += PAGE_SIZE) out.push(make_pme(0n, v.softdirty ? PM_SOFT_DIRTY : 0n));
      continue;
    }
    yield* spin_lock_ptl(pc, mm, t);
    const table = mm.pgtables.pteTable(addr, false);
    pc.touch = table * 4096 + pgtableIndex(addr, 1) * 8;
    yield STEP_READ;
    for (let i = pgtableIndex(addr, 1); addr < vend; addr += PAGE_SIZE, i++) out.push(pte_to_pagemap_entry(k, v, mem.readLo(table, i), mem.readHi(table, i), show_pfn));
    yield* spin_unlock_ptl(pc, mm);
  }
  return out;
}

// ---- clear_refs --------------------------------------------------------------------------------

/** enum clear_refs_types. */
export const CLEAR_REFS_ALL = 1;
export const CLEAR_REFS_ANON = 2;
export const CLEAR_REFS_MAPPED = 3;
export const CLEAR_REFS_SOFT_DIRTY = 4;
export const CLEAR_REFS_MM_HIWATER_RSS = 5;
export const CLEAR_REFS_LAST = 6;

/**
 * pte_is_pinned: a writable entry of a COW mapping whose page may be pinned for DMA
 * (MMF_HAS_PINNED and folio_maybe_dma_pinned: a count of GUP_PIN_COUNTING_BIAS or more) keeps
 * its write access, so the pinned page and the mapping stay one.
 */
function pte_is_pinned(k: Kernel, mm: MmStruct, v: Vma, lo: number, hi: number): boolean {
  if (!pte_write(lo, k.userShstk)) return false;
  if ((v.vm_flags & (VM_SHARED | VM_MAYWRITE)) !== VM_MAYWRITE) return false;
  if (!mm.has_pinned) return false;
  if (lo & _PAGE_SPECIAL) return false;
  return k.pages.refcount[pte_pfn(lo, hi)] >= GUP_PIN_COUNTING_BIAS;
}

/**
 * clear_refs_pte_range over one PTE table's part [start, end) of `v`, under the page-table
 * lock. For CLEAR_REFS_SOFT_DIRTY, clear_soft_dirty: a present entry (not pinned) is taken
 * with ptep_modify_prot_start (an atomic exchange with 0, so no A or D the hardware sets is
 * lost) and put back write-protected without _PAGE_SOFT_DIRTY (ptep_modify_prot_commit); a
 * swap entry loses _PAGE_SWP_SOFT_DIRTY. Otherwise each present entry with a normal page has
 * its accessed bit cleared (ptep_test_and_clear_young, an atomic bit clear, only when set) and
 * its page PG_referenced. No flush here.
 */
function* clear_refs_pte_range(k: Kernel, pc: PerCpu, t: Task, mm: MmStruct, v: Vma, start: number, end: number, type: number): KSteps<void> {
  const mem = k.machine.mem;
  yield* spin_lock_ptl(pc, mm, t);
  const table = mm.pgtables.pteTable(start, false);
  for (let va = start, i = pgtableIndex(start, 1); va < end; va += PAGE_SIZE, i++) {
    const pa = table * 4096 + i * 8;
    pc.touch = pa;
    yield STEP_READ;
    const lo = mem.readLo(table, i);
    const hi = mem.readHi(table, i);
    if (type === CLEAR_REFS_SOFT_DIRTY) {
      if (pte_present(lo)) {
        if (pte_is_pinned(k, mm, v, lo, hi)) continue;
        pc.touch = pa;
        yield STEP_ATOMIC;
        const old = __pte(mem.readLo(table, i), mem.readHi(table, i));
        mem.write64(table, i, 0, 0);
        pte_clear_soft_dirty(pte_wrprotect(old));
        pc.touch = pa;
        yield STEP_WRITE;
        mem.write64(table, i, old.lo, old.hi);
      } else if (is_swap_pte(lo, hi) && pte_swp_soft_dirty(lo)) {
        pc.touch = pa;
        yield STEP_WRITE;
        mem.write64(table, i, lo & ~_PAGE_SWP_SOFT_DIRTY, hi);
      }
      continue;
    }
    if (!pte_present(lo) || lo & _PAGE_SPECIAL) continue;
    if (lo & PTE_A) {
      pc.touch = pa;
      yield STEP_ATOMIC;
      mem.write64(table, i, mem.readLo(table, i) & ~PTE_A, mem.readHi(table, i));
    }
    k.pages.flags[pte_pfn(lo, hi)] &= ~PG_referenced;
  }
  yield* spin_unlock_ptl(pc, mm);
}

/**
 * The part of clear_refs_write that works on the mm, under mmap_lock for writing (the caller
 * holds it): for CLEAR_REFS_SOFT_DIRTY every VMA's VM_SOFTDIRTY is cleared first; then
 * walk_page_range over every VMA (clear_refs_test_walk: CLEAR_REFS_ANON skips file and shmem
 * mappings, CLEAR_REFS_MAPPED anonymous ones), each PTE table in clear_refs_pte_range; for
 * CLEAR_REFS_SOFT_DIRTY, flush_tlb_mm at the end, so no CPU keeps a writable translation
 * (the write-protected entries are then seen by the next write, which faults).
 */
export function* clear_refs_mm(k: Kernel, pc: PerCpu, t: Task, mm: MmStruct, type: number): KSteps<void> {
  if (type === CLEAR_REFS_SOFT_DIRTY) for (const v of mm.vmas.list) v.softdirty = false;
  for (const v of [...mm.vmas.list]) {
    if (type === CLEAR_REFS_ANON && v.shmem) continue;
    if (type === CLEAR_REFS_MAPPED && !v.shmem) continue;
    for (let va = v.vm_start; va < v.vm_end; va = pmd_addr_end(va, v.vm_end)) {
      if (mm.pgtables.pteTable(va, false) < 0) continue;
      yield* clear_refs_pte_range(k, pc, t, mm, v, va, pmd_addr_end(va, v.vm_end), type);
    }
  }
  if (type === CLEAR_REFS_SOFT_DIRTY) yield* flush_tlb_mm_range(k, pc, mm, 0, TLB_FLUSH_ALL, 12, false);
}
