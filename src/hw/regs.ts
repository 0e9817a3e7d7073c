/**
 * Architectural register bits (SDM Vol. 3A §2.5 control registers, §2.2.1 EFER, Vol. 1 §3.4.3
 * RFLAGS; CET MSRs from Vol. 1 ch. 17). Names as the SDM spells them; Linux's names in
 * arch/x86/include/uapi/asm/processor-flags.h and msr-index.h match.
 */

// CR0
export const CR0_PE = 1 << 0; // protection enable
export const CR0_MP = 1 << 1; // monitor coprocessor
export const CR0_EM = 1 << 2; // emulation
export const CR0_TS = 1 << 3; // task switched
export const CR0_ET = 1 << 4; // extension type (always 1)
export const CR0_NE = 1 << 5; // numeric error
export const CR0_WP = 1 << 16; // write protect: supervisor writes obey R/W and PKRU.WD
export const CR0_AM = 1 << 18; // alignment mask
export const CR0_NW = 1 << 29; // not write-through
export const CR0_CD = 1 << 30; // cache disable
export const CR0_PG = 1 << 31; // paging

// CR3 (64-bit, as hi/lo halves)
export const CR3_PCID_MASK = 0xfff; // bits 11:0 when CR4.PCIDE=1
export const CR3_PWT = 1 << 3; // bits 3 and 4 when CR4.PCIDE=0
export const CR3_PCD = 1 << 4;
export const CR3_HI_NOFLUSH = 1 << 31; // bit 63 of a MOV to CR3 source: keep the new PCID's entries

// CR4
export const CR4_PSE = 1 << 4;
export const CR4_PAE = 1 << 5;
export const CR4_PGE = 1 << 7; // global pages
export const CR4_OSFXSR = 1 << 9;
export const CR4_OSXMMEXCPT = 1 << 10;
export const CR4_UMIP = 1 << 11;
export const CR4_LA57 = 1 << 12; // 5-level paging
export const CR4_FSGSBASE = 1 << 16;
export const CR4_PCIDE = 1 << 17; // process-context identifiers
export const CR4_OSXSAVE = 1 << 18;
export const CR4_SMEP = 1 << 20; // supervisor-mode execution prevention
export const CR4_SMAP = 1 << 21; // supervisor-mode access prevention
export const CR4_PKE = 1 << 22; // protection keys for user-mode pages (PKRU)
export const CR4_CET = 1 << 23; // control-flow enforcement
export const CR4_PKS = 1 << 24; // protection keys for supervisor-mode pages (IA32_PKRS)

// IA32_EFER (MSR 0xC0000080)
export const EFER_SCE = 1 << 0;
export const EFER_LME = 1 << 8;
export const EFER_LMA = 1 << 10;
export const EFER_NXE = 1 << 11; // execute-disable bit enable

// RFLAGS
export const RFLAGS_RF = 1 << 16; // resume flag: set in the RFLAGS image a fault-class exception pushes
export const RFLAGS_AC = 1 << 18; // alignment check / SMAP override (STAC, CLAC)

// CET: IA32_U_CET (MSR 0x6A0) and IA32_S_CET (0x6A2) low bits
export const CET_SH_STK_EN = 1 << 0; // shadow stacks enabled at this privilege
export const CET_WR_SHSTK_EN = 1 << 1; // WRSS allowed at this privilege
export const CET_ENDBR_EN = 1 << 2; // indirect-branch tracking

// MSR numbers the model implements
export const MSR_EFER = 0xc0000080;
export const MSR_FS_BASE = 0xc0000100;
export const MSR_GS_BASE = 0xc0000101;
export const MSR_KERNEL_GS_BASE = 0xc0000102;
export const MSR_IA32_U_CET = 0x6a0;
export const MSR_IA32_S_CET = 0x6a2;
export const MSR_IA32_PL0_SSP = 0x6a4;
export const MSR_IA32_PL3_SSP = 0x6a7;
export const MSR_IA32_PKRS = 0x6e1;
export const MSR_IA32_XSS = 0xda0;
/** MSR_PLATFORM_INFO (0CEH): bit 31 says CPUID faulting is supported (SDM Vol. 4 Table 2-12). */
export const MSR_PLATFORM_INFO = 0xce;
export const PLATFORM_INFO_CPUID_FAULTING = 2 ** 31;
/** MSR_MISC_FEATURES_ENABLES (140H): bit 0 makes CPUID at CPL > 0 raise #GP(0) (Linux MSR_MISC_FEATURES_ENABLES_CPUID_FAULT). */
export const MSR_MISC_FEATURES_ENABLES = 0x140;
export const MISC_FEATURES_CPUID_FAULT = 1;

// XCR0 and IA32_XSS: one bit per XSAVE state component (SDM Vol. 1 §13.1, §13.3)
export const XFEATURE_MASK_X87 = 1 << 0;
export const XFEATURE_MASK_SSE = 1 << 1;
export const XFEATURE_MASK_AVX = 1 << 2; // not in the model: no CPU option has AVX
export const XFEATURE_MASK_PKRU = 1 << 9; // user state (XCR0)
export const XFEATURE_MASK_CET_U = 1 << 11; // supervisor state (IA32_XSS): IA32_U_CET, IA32_PL3_SSP
export const XFEATURE_MASK_CET_S = 1 << 12; // supervisor state (IA32_XSS): IA32_PL0..2_SSP

// Exception vectors (SDM Vol. 3A Table 6-1)
/** #DE: divide error (DIV or IDIV by 0, or a quotient too large). */
export const X86_TRAP_DE = 0;
export const X86_TRAP_UD = 6;
export const X86_TRAP_NP = 11; // segment not present
export const X86_TRAP_SS = 12; // stack-segment fault
export const X86_TRAP_GP = 13;
export const X86_TRAP_PF = 14;
export const X86_TRAP_CP = 21;
