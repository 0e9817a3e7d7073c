/**
 * The numbers user space and the kernel agree on: errno values, signal numbers and si_codes,
 * mmap/mprotect flags, clone flags, wait options and sigaction flags, with the header each is
 * defined in (Linux 6.12, x86-64).
 */

// ---- errno (include/uapi/asm-generic/errno-base.h, errno.h) ------------------------------------
export const EPERM = 1;
export const ENOENT = 2;
export const ESRCH = 3;
export const EINTR = 4;
export const EIO = 5;
export const ENXIO = 6;
export const EBADF = 9;
export const ECHILD = 10;
export const EAGAIN = 11;
export const ENOMEM = 12;
export const EACCES = 13;
export const EFAULT = 14;
export const EBUSY = 16;
export const EEXIST = 17;
export const EXDEV = 18;
export const ENODEV = 19;
export const ENOTDIR = 20;
export const EISDIR = 21;
export const EINVAL = 22;
export const ENFILE = 23;
export const EMFILE = 24;
export const EFBIG = 27;
export const ENOSPC = 28;
export const ENOTTY = 25;
export const ESPIPE = 29;
export const EPIPE = 32;
export const ERANGE = 34;
export const ENAMETOOLONG = 36;
export const ENOSYS = 38;
export const EOVERFLOW = 75;
export const EOPNOTSUPP = 95;
export const ETIMEDOUT = 110;

/** errno names by number, for traces and messages. */
export const ERRNO_NAMES: Readonly<Record<number, string>> = {
  1: 'EPERM', 2: 'ENOENT', 3: 'ESRCH', 4: 'EINTR', 5: 'EIO', 6: 'ENXIO', 9: 'EBADF', 10: 'ECHILD', 11: 'EAGAIN', 12: 'ENOMEM', 13: 'EACCES',
  14: 'EFAULT', 16: 'EBUSY', 17: 'EEXIST', 18: 'EXDEV', 19: 'ENODEV', 20: 'ENOTDIR', 21: 'EISDIR', 22: 'EINVAL', 23: 'ENFILE', 24: 'EMFILE', 25: 'ENOTTY', 27: 'EFBIG',
  28: 'ENOSPC', 29: 'ESPIPE', 32: 'EPIPE', 34: 'ERANGE', 36: 'ENAMETOOLONG', 38: 'ENOSYS', 75: 'EOVERFLOW', 95: 'EOPNOTSUPP', 110: 'ETIMEDOUT',
};

// ---- Signals (arch/x86/include/uapi/asm/signal.h) ----------------------------------------------
export const SIGHUP = 1;
export const SIGINT = 2;
export const SIGQUIT = 3;
export const SIGILL = 4;
export const SIGTRAP = 5;
export const SIGABRT = 6;
export const SIGBUS = 7;
export const SIGFPE = 8;
export const SIGKILL = 9;
export const SIGUSR1 = 10;
export const SIGSEGV = 11;
export const SIGUSR2 = 12;
export const SIGPIPE = 13;
export const SIGALRM = 14;
export const SIGTERM = 15;
export const SIGSTKFLT = 16;
export const SIGCHLD = 17;
export const SIGCONT = 18;
export const SIGSTOP = 19;
export const SIGTSTP = 20;
export const SIGTTIN = 21;
export const SIGTTOU = 22;
export const SIGURG = 23;
export const SIGXCPU = 24;
export const SIGXFSZ = 25;
export const SIGVTALRM = 26;
export const SIGPROF = 27;
export const SIGWINCH = 28;
export const SIGIO = 29;
export const SIGPWR = 30;
export const SIGSYS = 31;
/** _NSIG: signals are 1.._NSIG; 32..64 are the real-time signals. */
export const NSIG = 64;

export const SIGNAL_NAMES: Readonly<Record<number, string>> = {
  1: 'SIGHUP', 2: 'SIGINT', 3: 'SIGQUIT', 4: 'SIGILL', 5: 'SIGTRAP', 6: 'SIGABRT', 7: 'SIGBUS', 8: 'SIGFPE', 9: 'SIGKILL',
  10: 'SIGUSR1', 11: 'SIGSEGV', 12: 'SIGUSR2', 13: 'SIGPIPE', 14: 'SIGALRM', 15: 'SIGTERM', 16: 'SIGSTKFLT', 17: 'SIGCHLD',
  18: 'SIGCONT', 19: 'SIGSTOP', 20: 'SIGTSTP', 21: 'SIGTTIN', 22: 'SIGTTOU', 23: 'SIGURG', 24: 'SIGXCPU', 25: 'SIGXFSZ',
  26: 'SIGVTALRM', 27: 'SIGPROF', 28: 'SIGWINCH', 29: 'SIGIO', 30: 'SIGPWR', 31: 'SIGSYS',
};

// ---- sigaction and sigprocmask (include/uapi/asm-generic/signal-defs.h, arch/x86/include/uapi/asm/signal.h) ---
/** sa_handler values. */
export const SIG_DFL = 0n;
export const SIG_IGN = 1n;

/** sa_flags (arch/x86/include/uapi/asm/signal.h, include/uapi/asm-generic/signal-defs.h). */
export const SA_NOCLDSTOP = 0x1;
export const SA_NOCLDWAIT = 0x2;
export const SA_SIGINFO = 0x4;
export const SA_EXPOSE_TAGBITS = 0x800;
export const SA_RESTORER = 0x04000000;
export const SA_ONSTACK = 0x08000000;
export const SA_RESTART = 0x10000000;
export const SA_NODEFER = 0x40000000;
export const SA_RESETHAND = 0x80000000;

/** rt_sigprocmask `how`. */
export const SIG_BLOCK = 0;
export const SIG_UNBLOCK = 1;
export const SIG_SETMASK = 2;

// ---- sigaltstack (include/uapi/linux/signal.h, arch/x86/include/uapi/asm/signal.h) ------------
/** stack_t's ss_flags: the thread runs on the alternate stack (reported), or it has none (set and reported). */
export const SS_ONSTACK = 1;
export const SS_DISABLE = 2;
/** Disarm the alternate stack while a handler runs on it (1U << 31); SS_FLAG_BITS, the flags besides the mode. */
export const SS_AUTODISARM = 0x80000000;
export const SS_FLAG_BITS = 0x80000000;
/** The smallest ss_size sigaltstack accepts, and the size it suggests (x86's values). */
export const MINSIGSTKSZ = 2048;
export const SIGSTKSZ = 8192;

// ---- clock ids (include/uapi/linux/time.h) ----------------------------------------------------
export const CLOCK_REALTIME = 0;
export const CLOCK_MONOTONIC = 1;
export const CLOCK_PROCESS_CPUTIME_ID = 2;
export const CLOCK_THREAD_CPUTIME_ID = 3;
export const CLOCK_MONOTONIC_RAW = 4;
export const CLOCK_REALTIME_COARSE = 5;
export const CLOCK_MONOTONIC_COARSE = 6;
export const CLOCK_BOOTTIME = 7;
export const CLOCK_TAI = 11;

// ---- si_code (include/uapi/asm-generic/siginfo.h) -----------------------------------------------
export const SI_USER = 0;
export const SI_KERNEL = 0x80;
export const SI_TKILL = -6;
export const SEGV_MAPERR = 1;
export const SEGV_ACCERR = 2;
export const SEGV_PKUERR = 4;
/** SEGV_CPERR: a control-protection fault (#CP) from a shadow-stack mismatch. */
export const SEGV_CPERR = 10;
/** ILL_ILLOPN: illegal operand (the si_code Linux gives #UD, do_error_trap). */
export const ILL_ILLOPN = 2;
/** FPE_INTDIV: integer divide by zero (the si_code Linux gives #DE, exc_divide_error). */
export const FPE_INTDIV = 1;
/** BUS_ADRERR: a nonexistent physical address (a file's page past its end). */
export const BUS_ADRERR = 2;
export const CLD_EXITED = 1;
export const CLD_KILLED = 2;
export const CLD_DUMPED = 3;
export const CLD_TRAPPED = 4;
export const CLD_STOPPED = 5;
export const CLD_CONTINUED = 6;

// ---- mmap and mprotect (include/uapi/asm-generic/mman-common.h, linux/mman.h, asm/mman.h) ----
export const PROT_NONE = 0x0;
export const PROT_READ = 0x1;
export const PROT_WRITE = 0x2;
export const PROT_EXEC = 0x4;
export const PROT_SEM = 0x8;
export const PROT_GROWSDOWN = 0x01000000;
export const PROT_GROWSUP = 0x02000000;

export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_SHARED_VALIDATE = 0x03;
export const MAP_DROPPABLE = 0x08;
export const MAP_TYPE = 0x0f;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;
export const MAP_32BIT = 0x40;
export const MAP_GROWSDOWN = 0x0100;
export const MAP_DENYWRITE = 0x0800;
export const MAP_EXECUTABLE = 0x1000;
export const MAP_LOCKED = 0x2000;
export const MAP_NORESERVE = 0x4000;
export const MAP_POPULATE = 0x8000;
export const MAP_NONBLOCK = 0x10000;
export const MAP_STACK = 0x20000;
export const MAP_HUGETLB = 0x40000;
export const MAP_SYNC = 0x80000;
export const MAP_FIXED_NOREPLACE = 0x100000;
export const MAP_UNINITIALIZED = 0x4000000;

/** MAP_ABOVE4G (arch/x86/include/uapi/asm/mman.h): place the mapping at or above 4 GiB. */
export const MAP_ABOVE4G = 0x80;

// ---- mremap (include/uapi/linux/mman.h) ---------------------------------------------------------
export const MREMAP_MAYMOVE = 1;
export const MREMAP_FIXED = 2;
export const MREMAP_DONTUNMAP = 4;

// ---- msync (include/uapi/asm-generic/mman-common.h) ---------------------------------------------
export const MS_ASYNC = 1;
export const MS_INVALIDATE = 2;
export const MS_SYNC = 4;

// ---- mlock and mlockall (include/uapi/asm-generic/mman-common.h, mman.h) ------------------------
/** mlock2 flags: lock the pages as they are faulted in, not at once. */
export const MLOCK_ONFAULT = 0x01;
/** mlockall flags: lock what is mapped now, what is mapped later, and only as pages are faulted in. */
export const MCL_CURRENT = 1;
export const MCL_FUTURE = 2;
export const MCL_ONFAULT = 4;

// ---- madvise (include/uapi/asm-generic/mman-common.h) -------------------------------------------
export const MADV_NORMAL = 0;
export const MADV_RANDOM = 1;
export const MADV_SEQUENTIAL = 2;
export const MADV_WILLNEED = 3;
export const MADV_DONTNEED = 4;
export const MADV_FREE = 8;
export const MADV_REMOVE = 9;
export const MADV_DONTFORK = 10;
export const MADV_DOFORK = 11;
/** KSM may merge identical pages (VM_MERGEABLE), or may not. */
export const MADV_MERGEABLE = 12;
export const MADV_UNMERGEABLE = 13;
/** Worth backing with transparent huge pages (VM_HUGEPAGE), or not (VM_NOHUGEPAGE). */
export const MADV_HUGEPAGE = 14;
export const MADV_NOHUGEPAGE = 15;
export const MADV_DONTDUMP = 16;
export const MADV_DODUMP = 17;
export const MADV_WIPEONFORK = 18;
export const MADV_KEEPONFORK = 19;
export const MADV_COLD = 20;
export const MADV_PAGEOUT = 21;
export const MADV_POPULATE_READ = 22;
export const MADV_POPULATE_WRITE = 23;
export const MADV_DONTNEED_LOCKED = 24;
/** Collapse the range's pages into transparent huge pages now. */
export const MADV_COLLAPSE = 25;
/** Poison a page (memory_failure), or soft-offline it, for testing: CAP_SYS_ADMIN only. */
export const MADV_HWPOISON = 100;
export const MADV_SOFT_OFFLINE = 101;

// ---- pkeys (include/uapi/asm-generic/mman-common.h) --------------------------------------------
export const PKEY_DISABLE_ACCESS = 0x1;
export const PKEY_DISABLE_WRITE = 0x2;

// ---- arch_prctl (arch/x86/include/uapi/asm/prctl.h) ---------------------------------------------
export const ARCH_SET_GS = 0x1001;
export const ARCH_SET_FS = 0x1002;
export const ARCH_GET_FS = 0x1003;
export const ARCH_GET_GS = 0x1004;
export const ARCH_GET_CPUID = 0x1011;
export const ARCH_SET_CPUID = 0x1012;
export const ARCH_GET_XCOMP_SUPP = 0x1021;
export const ARCH_GET_XCOMP_PERM = 0x1022;
export const ARCH_REQ_XCOMP_PERM = 0x1023;
export const ARCH_GET_XCOMP_GUEST_PERM = 0x1024;
export const ARCH_REQ_XCOMP_GUEST_PERM = 0x1025;
export const ARCH_MAP_VDSO_X32 = 0x2001;
export const ARCH_MAP_VDSO_32 = 0x2002;
export const ARCH_MAP_VDSO_64 = 0x2003;
export const ARCH_GET_UNTAG_MASK = 0x4001;
export const ARCH_ENABLE_TAGGED_ADDR = 0x4002;
export const ARCH_GET_MAX_TAG_BITS = 0x4003;
export const ARCH_FORCE_TAGGED_SVA = 0x4004;

// ---- arch_prctl shadow stacks (arch/x86/include/uapi/asm/prctl.h, mman.h) -----------------------
export const ARCH_SHSTK_ENABLE = 0x5001;
export const ARCH_SHSTK_DISABLE = 0x5002;
export const ARCH_SHSTK_LOCK = 0x5003;
export const ARCH_SHSTK_UNLOCK = 0x5004;
export const ARCH_SHSTK_STATUS = 0x5005;
/** Feature bits for ARCH_SHSTK_*. */
export const ARCH_SHSTK_SHSTK = 1 << 0;
export const ARCH_SHSTK_WRSS = 1 << 1;
/** map_shadow_stack flags. SHADOW_STACK_SET_MARKER is arm64's (6.13+) and refused on x86. */
export const SHADOW_STACK_SET_TOKEN = 1 << 0;
export const SHADOW_STACK_SET_MARKER = 1 << 1;

// ---- open and fcntl (include/uapi/asm-generic/fcntl.h, linux/fcntl.h) ---------------------------
export const O_ACCMODE = 0o3;
export const O_RDONLY = 0o0;
export const O_WRONLY = 0o1;
export const O_RDWR = 0o2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_NOCTTY = 0o400;
export const O_TRUNC = 0o1000;
export const O_APPEND = 0o2000;
export const O_NONBLOCK = 0o4000;
export const O_DSYNC = 0o10000;
export const FASYNC = 0o20000;
export const O_DIRECT = 0o40000;
export const O_LARGEFILE = 0o100000;
export const O_DIRECTORY = 0o200000;
export const O_NOFOLLOW = 0o400000;
export const O_NOATIME = 0o1000000;
export const O_CLOEXEC = 0o2000000;
export const __O_SYNC = 0o4000000;
export const O_PATH = 0o10000000;
export const __O_TMPFILE = 0o20000000;
/** openat's dirfd for the current directory. */
export const AT_FDCWD = -100;
export const F_DUPFD = 0;
export const F_GETFD = 1;
export const F_SETFD = 2;
export const F_GETFL = 3;
export const F_SETFL = 4;
export const F_DUPFD_CLOEXEC = 1030;
export const F_SETPIPE_SZ = 1031;
export const F_GETPIPE_SZ = 1032;
export const F_ADD_SEALS = 1033;
export const F_GET_SEALS = 1034;
export const FD_CLOEXEC = 1;
export const F_SEAL_SEAL = 0x0001;
export const F_SEAL_SHRINK = 0x0002;
export const F_SEAL_GROW = 0x0004;
export const F_SEAL_WRITE = 0x0008;
export const F_SEAL_FUTURE_WRITE = 0x0010;
export const F_SEAL_EXEC = 0x0020;

// ---- pipes and splice (include/uapi/linux/watch_queue.h, include/linux/splice.h) -----------------
/** pipe2's flag for a notification pipe (watch queue): O_EXCL. */
export const O_NOTIFICATION_PIPE = 0o200;
export const SPLICE_F_MOVE = 0x01;
export const SPLICE_F_NONBLOCK = 0x02;
export const SPLICE_F_MORE = 0x04;
export const SPLICE_F_GIFT = 0x08;

// ---- memfd_create (include/uapi/linux/memfd.h) --------------------------------------------------
export const MFD_CLOEXEC = 0x0001;
export const MFD_ALLOW_SEALING = 0x0002;
export const MFD_HUGETLB = 0x0004;
export const MFD_NOEXEC_SEAL = 0x0008;
export const MFD_EXEC = 0x0010;

// ---- lseek and stat (include/uapi/linux/fs.h, linux/stat.h) -------------------------------------
export const SEEK_SET = 0;
export const SEEK_CUR = 1;
export const SEEK_END = 2;
export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;
export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o40000;
export const S_IFCHR = 0o20000;
export const S_IFIFO = 0o10000;

// ---- resource limits (include/uapi/asm-generic/resource.h, uapi/linux/resource.h) ---------------
export const RLIMIT_CPU = 0;
export const RLIMIT_FSIZE = 1;
export const RLIMIT_DATA = 2;
export const RLIMIT_STACK = 3;
export const RLIMIT_CORE = 4;
export const RLIMIT_RSS = 5;
export const RLIMIT_NPROC = 6;
export const RLIMIT_NOFILE = 7;
export const RLIMIT_MEMLOCK = 8;
export const RLIMIT_AS = 9;
export const RLIMIT_LOCKS = 10;
export const RLIMIT_SIGPENDING = 11;
export const RLIMIT_MSGQUEUE = 12;
export const RLIMIT_NICE = 13;
export const RLIMIT_RTPRIO = 14;
export const RLIMIT_RTTIME = 15;
/** RLIM_NLIMITS: resources are 0 .. RLIM_NLIMITS - 1. */
export const RLIM_NLIMITS = 16;
/** RLIM_INFINITY (and RLIM64_INFINITY): ~0UL, no limit. */
export const RLIM_INFINITY = 0xffffffffffffffffn;

// ---- futex (include/uapi/linux/futex.h) ------------------------------------------------------
export const FUTEX_WAIT = 0;
export const FUTEX_WAKE = 1;
export const FUTEX_WAIT_BITSET = 9;
export const FUTEX_WAKE_BITSET = 10;
export const FUTEX_PRIVATE_FLAG = 128;
export const FUTEX_CLOCK_REALTIME = 256;
/** FUTEX_CMD_MASK: ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME). */
export const FUTEX_CMD_MASK = ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
/** FUTEX_BITSET_MATCH_ANY: the bitset FUTEX_WAIT and FUTEX_WAKE use. */
export const FUTEX_BITSET_MATCH_ANY = 0xffffffff;

// ---- clone (include/uapi/linux/sched.h) --------------------------------------------------------
export const CSIGNAL = 0x000000ff;
export const CLONE_VM = 0x00000100;
export const CLONE_FS = 0x00000200;
export const CLONE_FILES = 0x00000400;
export const CLONE_SIGHAND = 0x00000800;
export const CLONE_PIDFD = 0x00001000;
export const CLONE_PTRACE = 0x00002000;
export const CLONE_VFORK = 0x00004000;
export const CLONE_PARENT = 0x00008000;
export const CLONE_THREAD = 0x00010000;
export const CLONE_NEWNS = 0x00020000;
export const CLONE_SYSVSEM = 0x00040000;
export const CLONE_SETTLS = 0x00080000;
export const CLONE_PARENT_SETTID = 0x00100000;
export const CLONE_CHILD_CLEARTID = 0x00200000;
export const CLONE_DETACHED = 0x00400000;
export const CLONE_UNTRACED = 0x00800000;
export const CLONE_CHILD_SETTID = 0x01000000;
export const CLONE_NEWCGROUP = 0x02000000;
export const CLONE_NEWUTS = 0x04000000;
export const CLONE_NEWIPC = 0x08000000;
export const CLONE_NEWUSER = 0x10000000;
export const CLONE_NEWPID = 0x20000000;
export const CLONE_NEWNET = 0x40000000;
export const CLONE_IO = 0x80000000;

// ---- wait4 and waitid (include/uapi/linux/wait.h) ---------------------------------------------------------
export const WNOHANG = 0x00000001;
export const WUNTRACED = 0x00000002;
/** WSTOPPED: waitid's name for WUNTRACED. */
export const WSTOPPED = WUNTRACED;
export const WEXITED = 0x00000004;
export const WCONTINUED = 0x00000008;
export const WNOWAIT = 0x01000000;
export const __WNOTHREAD = 0x20000000;
export const __WALL = 0x40000000;
export const __WCLONE = 0x80000000;
/** waitid's `which`. */
export const P_ALL = 0;
export const P_PID = 1;
export const P_PGID = 2;
export const P_PIDFD = 3;

// ---- per-process PTI (isolab's model of the 2018 RFC, not upstream) -----------------------------
/** arch_prctl codes of the per-process PTI model (kernel option `pti_per_process`; the 2018 RFC's numbers are unknown). */
export const ARCH_GET_NOPTI = 0x6001;
export const ARCH_SET_NOPTI = 0x6002;
/** ARCH_SET_NOPTI flags: PTI off for this mm from its next return to user; PTI off for the image the next execve starts. */
export const NOPTI_NOW = 1 << 0;
export const NOPTI_NEXT = 1 << 1;

// ---- capabilities (include/uapi/linux/capability.h) ---------------------------------------------
export const CAP_IPC_LOCK = 14;
export const CAP_SYS_RAWIO = 17;
export const CAP_SYS_ADMIN = 21;
export const CAP_SYS_RESOURCE = 24;
/** _LINUX_CAPABILITY_VERSION_3 and its u32 count. */
export const _LINUX_CAPABILITY_VERSION_3 = 0x20080522;
export const _LINUX_CAPABILITY_U32S_3 = 2;

// ---- ioctl (include/uapi/asm-generic/ioctls.h) --------------------------------------------------
/** Set and clear the descriptor's close-on-exec bit (do_vfs_ioctl). */
export const FIONCLEX = 0x5450;
export const FIOCLEX = 0x5451;
/** The bytes ready to read (an int): a regular file's size past the position, a pipe's buffered bytes. */
export const FIONREAD = 0x541b;
/** Set (an int not 0) or clear O_NONBLOCK on the open file. */
export const FIONBIO = 0x5421;

// ---- userfaultfd (include/uapi/linux/userfaultfd.h) ---------------------------------------------
/** userfaultfd flags: O_CLOEXEC and O_NONBLOCK (UFFD_SHARED_FCNTL_FLAGS), and faults from user mode only. */
export const UFFD_USER_MODE_ONLY = 1;
/** The API number UFFDIO_API asks for. */
export const UFFD_API = 0xaa;
/** The ioctls (_IOWR / _IOR of type 0xAA with the argument's size). */
export const UFFDIO_REGISTER = 0xc020aa00;
export const UFFDIO_UNREGISTER = 0x8010aa01;
export const UFFDIO_WAKE = 0x8010aa02;
export const UFFDIO_COPY = 0xc028aa03;
export const UFFDIO_ZEROPAGE = 0xc020aa04;
export const UFFDIO_MOVE = 0xc028aa05;
export const UFFDIO_WRITEPROTECT = 0xc018aa06;
export const UFFDIO_CONTINUE = 0xc020aa07;
export const UFFDIO_POISON = 0xc020aa08;
export const UFFDIO_API = 0xc018aa3f;
/** The ioctls' numbers (_UFFDIO_*): bit positions of the `ioctls` masks UFFDIO_API and UFFDIO_REGISTER write back. */
export const _UFFDIO_REGISTER = 0x00;
export const _UFFDIO_UNREGISTER = 0x01;
export const _UFFDIO_WAKE = 0x02;
export const _UFFDIO_COPY = 0x03;
export const _UFFDIO_ZEROPAGE = 0x04;
export const _UFFDIO_MOVE = 0x05;
export const _UFFDIO_WRITEPROTECT = 0x06;
export const _UFFDIO_CONTINUE = 0x07;
export const _UFFDIO_POISON = 0x08;
export const _UFFDIO_API = 0x3f;
/** struct uffd_msg's event. */
export const UFFD_EVENT_PAGEFAULT = 0x12;
export const UFFD_EVENT_FORK = 0x13;
export const UFFD_EVENT_REMAP = 0x14;
export const UFFD_EVENT_REMOVE = 0x15;
export const UFFD_EVENT_UNMAP = 0x16;
/** A page fault message's flags. */
export const UFFD_PAGEFAULT_FLAG_WRITE = 1 << 0;
export const UFFD_PAGEFAULT_FLAG_WP = 1 << 1;
export const UFFD_PAGEFAULT_FLAG_MINOR = 1 << 2;
/** uffdio_api.features. */
export const UFFD_FEATURE_PAGEFAULT_FLAG_WP = 1 << 0;
export const UFFD_FEATURE_EVENT_FORK = 1 << 1;
export const UFFD_FEATURE_EVENT_REMAP = 1 << 2;
export const UFFD_FEATURE_EVENT_REMOVE = 1 << 3;
export const UFFD_FEATURE_MISSING_HUGETLBFS = 1 << 4;
export const UFFD_FEATURE_MISSING_SHMEM = 1 << 5;
export const UFFD_FEATURE_EVENT_UNMAP = 1 << 6;
export const UFFD_FEATURE_SIGBUS = 1 << 7;
export const UFFD_FEATURE_THREAD_ID = 1 << 8;
export const UFFD_FEATURE_MINOR_HUGETLBFS = 1 << 9;
export const UFFD_FEATURE_MINOR_SHMEM = 1 << 10;
export const UFFD_FEATURE_EXACT_ADDRESS = 1 << 11;
export const UFFD_FEATURE_WP_HUGETLBFS_SHMEM = 1 << 12;
export const UFFD_FEATURE_WP_UNPOPULATED = 1 << 13;
export const UFFD_FEATURE_POISON = 1 << 14;
export const UFFD_FEATURE_WP_ASYNC = 1 << 15;
export const UFFD_FEATURE_MOVE = 1 << 16;
/** uffdio_register.mode. */
export const UFFDIO_REGISTER_MODE_MISSING = 1 << 0;
export const UFFDIO_REGISTER_MODE_WP = 1 << 1;
export const UFFDIO_REGISTER_MODE_MINOR = 1 << 2;
/** The modes of UFFDIO_COPY, ZEROPAGE, WRITEPROTECT and CONTINUE. */
export const UFFDIO_COPY_MODE_DONTWAKE = 1 << 0;
export const UFFDIO_COPY_MODE_WP = 1 << 1;
export const UFFDIO_ZEROPAGE_MODE_DONTWAKE = 1 << 0;
export const UFFDIO_WRITEPROTECT_MODE_WP = 1 << 0;
export const UFFDIO_WRITEPROTECT_MODE_DONTWAKE = 1 << 1;
export const UFFDIO_CONTINUE_MODE_DONTWAKE = 1 << 0;
export const UFFDIO_CONTINUE_MODE_WP = 1 << 1;

// ---- ptrace (include/uapi/linux/ptrace.h, arch/x86/include/uapi/asm/ptrace-abi.h, include/uapi/linux/elf.h) ---
export const PTRACE_TRACEME = 0;
export const PTRACE_PEEKTEXT = 1;
export const PTRACE_PEEKDATA = 2;
export const PTRACE_PEEKUSR = 3;
export const PTRACE_POKETEXT = 4;
export const PTRACE_POKEDATA = 5;
export const PTRACE_POKEUSR = 6;
export const PTRACE_CONT = 7;
export const PTRACE_KILL = 8;
export const PTRACE_SINGLESTEP = 9;
export const PTRACE_GETREGS = 12;
export const PTRACE_SETREGS = 13;
export const PTRACE_GETFPREGS = 14;
export const PTRACE_SETFPREGS = 15;
export const PTRACE_ATTACH = 16;
export const PTRACE_DETACH = 17;
export const PTRACE_SYSCALL = 24;
export const PTRACE_ARCH_PRCTL = 30;
export const PTRACE_SETOPTIONS = 0x4200;
export const PTRACE_GETEVENTMSG = 0x4201;
export const PTRACE_GETSIGINFO = 0x4202;
export const PTRACE_SETSIGINFO = 0x4203;
export const PTRACE_GETREGSET = 0x4204;
export const PTRACE_SETREGSET = 0x4205;
export const PTRACE_SEIZE = 0x4206;
export const PTRACE_INTERRUPT = 0x4207;
export const PTRACE_LISTEN = 0x4208;
/** PTRACE_SETOPTIONS and PTRACE_SEIZE options (PTRACE_O_MASK: all of them). */
export const PTRACE_O_TRACESYSGOOD = 1;
export const PTRACE_O_TRACEFORK = 1 << 1;
export const PTRACE_O_TRACEVFORK = 1 << 2;
export const PTRACE_O_TRACECLONE = 1 << 3;
export const PTRACE_O_TRACEEXEC = 1 << 4;
export const PTRACE_O_TRACEVFORKDONE = 1 << 5;
export const PTRACE_O_TRACEEXIT = 1 << 6;
export const PTRACE_O_TRACESECCOMP = 1 << 7;
export const PTRACE_O_EXITKILL = 1 << 20;
export const PTRACE_O_SUSPEND_SECCOMP = 1 << 21;
export const PTRACE_O_MASK = 0x000000ff | PTRACE_O_EXITKILL | PTRACE_O_SUSPEND_SECCOMP;
/** Stop events: a stop's wait status holds the event in bits 16..23. */
export const PTRACE_EVENT_EXEC = 4;
export const PTRACE_EVENT_STOP = 128;
/** Register sets for PTRACE_GETREGSET and PTRACE_SETREGSET (the ELF core-note types). */
export const NT_PRSTATUS = 1;
export const NT_PRFPREG = 2;
export const NT_X86_XSTATE = 0x202;
export const NT_X86_SHSTK = 0x204;
