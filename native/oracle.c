/*
 * isolab host-kernel oracle.
 *
 * Executes a "sequence" (one operation per line: mmap, munmap, mprotect, load, store,
 * getpid, fork ... end, wait, exit, execve, `call` of a file, pipe or splice syscall,
 * `sig` of the signal family: see parse_sig, `ptr`, a ptrace story: see parse_ptr, and `i80`,
 * INT 0x80: see parse_i80)
 * on the real Linux kernel and prints one result line per operation,
 * `<who> <index> <result>`, exactly as the isolab model prints them for the same
 * sequence, so that the two listings can be compared.
 *
 * Usage:  oracle <file | ->
 *         oracle --resume <index> <who> <gates> <file>   (used by the execve operation)
 *
 * Exit status: 0 when the sequence ran (operations may have failed), 2 on a malformed
 * sequence or bad arguments (message on stderr), 3 when the arena is already in use,
 * or the status given to an `exit <n>` operation run by the initial process.
 *
 * Every address the sequence names is in the arena [ARENA, ARENA + ARENA_SIZE), in a
 * region bound to a handle by an earlier mmap, relative to the program break the image
 * started with (`B+<hex>`, `B-<hex>`: brk's own area), or an absolute address.  Results that
 * are addresses print the same ways (an mmap's outside the arena and the break's
 * neighbourhood as `other`).  Output goes out with write(2), one line per call, so nothing
 * is buffered across fork or execve.
 *
 * A `call` line is `call <syscall> <bind> <arg>...`: bind is `-`, `F<k>` (the result becomes
 * descriptor handle k) or `F<j>/F<k>` (pipe's and pipe2's two descriptors), bound only on
 * success; the arguments are described at struct arg.  Its result is `ok <decimal>` (brk's:
 * the break as an address; a call given a `t:` text buffer: `ok text`) followed by the words of
 * each `m:` argument, the value of each `o:` cell and `p` pair and the arena's lines of each
 * `t:` text after the call, or `err <errno>` followed by the `m:` words.  An mmap line may end
 * with a descriptor (`F<k>` or a number) and a file offset.
 *
 * The oracle maps a write buffer at A+SAFE_OFF in every image (see map_safe_buffer), as the
 * model's runner does.
 *
 * Descriptors: the sequence sees exactly 0, 1 and 2, open on /dev/null for reading and
 * writing (as isolab starts a process), so the descriptors it opens are numbered as in the
 * model.  The oracle's own descriptors (its output, the fork gates) live at PRIVATE_FD and
 * above, RLIMIT_NOFILE's soft limit is 1024 as in the model, RLIMIT_NPROC is 1024 (soft and
 * hard, as the model's 256 MiB machine boots with), SIGPIPE is ignored (a write to a pipe
 * without readers is -EPIPE), the umask is 022, and relative paths resolve in the working
 * directory the caller gives (native/build.ts: a fresh directory on a tmpfs).
 *
 * The program break is the sequence's: the oracle's allocations all go to mmap (malloc's
 * M_MMAP_THRESHOLD 0), and once the sequence runs it allocates nothing, so its break, address
 * space and VM counters change only as the sequence changes them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <asm/ldt.h>
#include <sys/auxv.h>
#include <ucontext.h>

#define ARENA ((uint64_t)0x200000000000)
#define ARENA_SIZE ((uint64_t)0x4000000)
#define MAX_HANDLES 256
#define MAX_DEPTH 200 /* deepest fork nesting, so that `who` stays short */
#define MAX_TOKENS 16
#define MAX_ARGS 6
#define MAX_IOV 4
#define MAX_WORDS 8   /* words of an `m:` argument */
#define MAX_TEXT 0x4000 /* bytes of a `t:` argument */
#define MAX_GATES 256 /* children forked and not yet waited for */
#define NOFILE 1024     /* RLIMIT_NOFILE's soft limit, as in the model */
#define NPROC 1024      /* RLIMIT_NPROC's limits, as the model's 256 MiB machine boots with */
#define PRIVATE_FD 1000 /* the oracle's own descriptors: the gates from here up */
#define OUT_FD 1022     /* the result lines */
#define ERR_FD 1023     /* messages */
/* The write buffer: pages the generated sequences never unmap or protect, at A+SAFE_OFF, with
 * SAFE_PATTERN bytes of a pattern (byte i is i * 7 + 1) and zeroes after them. */
#define SAFE_OFF ((uint64_t)0x3000000)
#define SAFE_LEN ((uint64_t)0x4000)
#define SAFE_PATTERN 256
/* arch_prctl's codes (asm/prctl.h). */
#define ARCH_SET_GS_CODE 0x1001
#define ARCH_SET_FS_CODE 0x1002
#define ARCH_GET_FS_CODE 0x1003
#define ARCH_GET_GS_CODE 0x1004
#define ARCH_SET_CPUID_CODE 0x1012

enum op_kind { OP_MMAP, OP_MUNMAP, OP_MPROTECT, OP_LOAD, OP_STORE, OP_GETPID,
               OP_FORK, OP_END, OP_WAIT, OP_EXIT, OP_EXECVE, OP_CALL, OP_SIG, OP_PTR, OP_I80 };

/* An address expression: absolute, arena-relative, relative to a handle's base, or relative to
 * the program break the image started with (`B+<hex>`, `B-<hex>`). */
enum addr_kind { ADDR_ABSOLUTE, ADDR_ARENA, ADDR_HANDLE, ADDR_BRK };
struct addr_expr {
    enum addr_kind kind;
    int handle;
    uint64_t offset; /* ADDR_BRK: added modulo 2^64, so B-<hex> is a negative offset */
};

/*
 * A `call` argument: a descriptor handle `F<k>`, an address expression, an integer (hex,
 * optionally negative), a path `s:<text>`, a pointer to a 64-bit cell `o:<hex>` (printed
 * after a successful call), a pointer to an int[2] `p` (printed likewise), a pointer to
 * an iovec array `v:<addr>:<hexlen>,...`, a pointer to 64-bit words `m:<word>,...[/<mask>,...]`
 * (each word an integer or an address expression; printed after the call, ok or err, as
 * `m:<hex>,...`, each word ANDed with its mask, all ones when none is given), or a pointer to a
 * zeroed text buffer `t:<hexlen>` (after a successful call, the lines of the text that begin
 * with an arena address are printed, their addresses as `A+<hex>`, joined by `;`: the arena's
 * lines of /proc/self/maps).
 */
enum arg_kind { ARG_FD, ARG_ADDR, ARG_INT, ARG_STR, ARG_CELL, ARG_PAIR, ARG_IOV, ARG_WORDS, ARG_TEXT };
struct arg {
    enum arg_kind kind;
    int handle;              /* ARG_FD */
    struct addr_expr addr;   /* ARG_ADDR */
    int64_t value;           /* ARG_INT, ARG_CELL's initial value */
    const char *str;         /* ARG_STR */
    int niov;                /* ARG_IOV */
    struct addr_expr iov_base[MAX_IOV];
    uint64_t iov_len[MAX_IOV];
    int nwords;              /* ARG_WORDS */
    struct arg_word { bool is_addr; struct addr_expr addr; int64_t value; } words[MAX_WORDS];
    uint64_t mask[MAX_WORDS];
    uint64_t text_len;       /* ARG_TEXT */
};

struct op {
    enum op_kind kind;
    long nr;               /* call: the syscall number */
    int nargs;             /* call */
    struct arg args[MAX_ARGS];
    int bind[2];           /* call: descriptor handles bound by a success, or -1 */
    struct arg fd;         /* mmap: the descriptor (ARG_INT -1 when anonymous) */
    uint64_t off;          /* mmap: the file offset */
    struct addr_expr addr; /* mmap hint, munmap, mprotect, load, store */
    int handle;            /* mmap: the handle to bind */
    uint64_t len;          /* mmap, munmap, mprotect */
    uint64_t prot, flags;  /* mmap, mprotect (prot only) */
    int size;              /* load, store: 1, 2, 4 or 8 */
    uint64_t value;        /* store */
    int status;            /* exit */
    int match;             /* fork: index of its `end` */
    int block_end;         /* index of the `end` closing the block this line is in, or nops */
    int sig_what;          /* sig: enum sig_what */
    int sig_name;          /* sig: the handler (enum sig_handler), the segment register (enum sig_sreg) */
    int64_t sig_v[5];      /* sig: its numbers, in the order of its line; its address is in addr */
    int ptr_v[5];          /* ptr: mode, injected signal, how it ends, the user-area offset it peeks, DS's poked selector */
    uint64_t ptr_w[3];     /* ptr: the child's two register values and the value it pokes; i80: EAX */
    uint64_t i80_arg[3];   /* i80: EBX, ECX, EDX (ptr_v[k]: 1 the user_desc's address, 2 the pid with this high half) */
    uint32_t i80_desc[4];  /* i80: the user_desc (ptr_v[3]: one is given) */
};

/* The parsed sequence and where it came from. */
static struct op *ops;
static int nops;
static char *input_text;
static size_t input_len;
static const char *input_path;
static bool input_is_stdin;

/* This process: its name in the output, its pid at start, its handles. */
static char who[MAX_DEPTH + 8];
static pid_t start_pid;
static uint64_t handle_base[MAX_HANDLES];
static bool handle_bound[MAX_HANDLES];
static int fd_handle[MAX_HANDLES];
static bool fd_bound[MAX_HANDLES];

/* Write ends of the gate pipes of children forked but not yet released by a `wait` (a fixed
 * array: once the sequence runs, the oracle allocates nothing, so its address space, program
 * break and VM counters change only as the sequence changes them). */
static int gates[MAX_GATES];
static int ngates;

/* The program break this image started with: `B` addresses are relative to it. */
static uint64_t brk_base;

/* State shared with the fault handler. */
static sigjmp_buf fault_jump;
static volatile sig_atomic_t fault_armed;
static volatile int fault_signo, fault_code;
static volatile uint64_t fault_addr;

/* ------------------------------------------------------------------ output */

/* Writes all of buf to fd, retrying short writes and EINTR. */
static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            _exit(4);
        buf += n;
        len -= (size_t)n;
    }
}

/* Prints the result line `<who> <index> <result>` with one write(2). */
static void emit(int index, const char *fmt, ...)
{
    static char line[MAX_TEXT + 512];
    int n = snprintf(line, sizeof line, "%s %d ", who, index);
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    line[n++] = '\n';
    write_all(OUT_FD, line, (size_t)n);
}

/* Prints a message on the oracle's stderr (ERR_FD once the descriptors are set up). */
static int err_fd = 2;
static void complain(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    write_all(err_fd, line, n < (int)sizeof line ? (size_t)n : sizeof line - 1);
}

/* Reports a malformed sequence (index is 0-based) on stderr and exits with status 2. */
static void malformed(int index, const char *why)
{
    complain("oracle: malformed line %d (index %d): %s\n", index + 1, index, why);
    exit(2);
}

/* ------------------------------------------------------------------ parsing */

/* Parses 1 to 16 hex digits (no 0x) into *out; false if s is anything else. */
static bool parse_hex(const char *s, uint64_t *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 16 || strspn(s, "0123456789abcdefABCDEF") != n)
        return false;
    *out = strtoull(s, NULL, 16);
    return true;
}

/* Parses a decimal number in [0, max] into *out; false if s is anything else. */
static bool parse_dec(const char *s, int max, int *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 9 || strspn(s, "0123456789") != n)
        return false;
    long v = strtol(s, NULL, 10);
    if (v > max)
        return false;
    *out = (int)v;
    return true;
}

/* Parses an address expression: `0`, `A+<hex>`, `H<k>+<hex>` or `X<hex>`. */
static bool parse_addr(const char *s, struct addr_expr *a)
{
    if (strcmp(s, "0") == 0) {
        *a = (struct addr_expr){ ADDR_ABSOLUTE, 0, 0 };
        return true;
    }
    if (s[0] == 'X') {
        a->kind = ADDR_ABSOLUTE;
        return parse_hex(s + 1, &a->offset);
    }
    if (s[0] == 'A' && s[1] == '+') {
        a->kind = ADDR_ARENA;
        return parse_hex(s + 2, &a->offset);
    }
    if (s[0] == 'B' && (s[1] == '+' || s[1] == '-')) {
        a->kind = ADDR_BRK;
        if (!parse_hex(s + 2, &a->offset))
            return false;
        if (s[1] == '-')
            a->offset = -a->offset;
        return true;
    }
    if (s[0] == 'H') {
        const char *plus = strchr(s, '+');
        char k[12];
        if (!plus || plus - s - 1 >= (long)sizeof k)
            return false;
        memcpy(k, s + 1, (size_t)(plus - s - 1));
        k[plus - s - 1] = '\0';
        a->kind = ADDR_HANDLE;
        return parse_dec(k, MAX_HANDLES - 1, &a->handle) && parse_hex(plus + 1, &a->offset);
    }
    return false;
}

/* Parses a hex integer with an optional leading `-` into *out. */
static bool parse_int(const char *s, int64_t *out)
{
    uint64_t v;
    bool neg = s[0] == '-';
    if (!parse_hex(s + neg, &v))
        return false;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return true;
}

/* Parses a descriptor handle `F<k>`. */
static bool parse_fd_handle(const char *s, int *out)
{
    return s[0] == 'F' && parse_dec(s + 1, MAX_HANDLES - 1, out);
}

/* Parses an `m:` word: an address expression or an integer. */
static bool parse_word(const char *s, struct arg_word *w)
{
    w->is_addr = s[0] == 'A' || s[0] == 'H' || s[0] == 'X' || s[0] == 'B';
    return w->is_addr ? parse_addr(s, &w->addr) : parse_int(s, &w->value);
}

/* Parses an `m:` argument's words and optional masks (a copy of the text is cut up). */
static bool parse_words(const char *s, struct arg *a)
{
    char *copy = strdup(s), *save = NULL;
    char *slash = strchr(copy, '/');
    if (slash)
        *slash = '\0';
    bool ok = true;
    for (char *w = strtok_r(copy, ",", &save); w && ok; w = strtok_r(NULL, ",", &save)) {
        if (a->nwords == MAX_WORDS)
            ok = false;
        else
            ok = parse_word(w, &a->words[a->nwords++]);
    }
    for (int i = 0; i < MAX_WORDS; i++)
        a->mask[i] = ~(uint64_t)0;
    int nmask = 0;
    if (slash)
        for (char *m = strtok_r(slash + 1, ",", &save); m && ok; m = strtok_r(NULL, ",", &save))
            ok = nmask < a->nwords && parse_hex(m, &a->mask[nmask++]);
    free(copy);
    return ok && a->nwords > 0;
}

/* Parses one `call` argument (see struct arg); the text it keeps is copied. */
static bool parse_arg(const char *s, struct arg *a)
{
    memset(a, 0, sizeof *a);
    if (strncmp(s, "m:", 2) == 0) {
        a->kind = ARG_WORDS;
        return parse_words(s + 2, a);
    }
    if (strncmp(s, "t:", 2) == 0) {
        a->kind = ARG_TEXT;
        return parse_hex(s + 2, &a->text_len) && a->text_len <= MAX_TEXT;
    }
    if (strcmp(s, "p") == 0) {
        a->kind = ARG_PAIR;
        return true;
    }
    if (strncmp(s, "s:", 2) == 0) {
        a->kind = ARG_STR;
        a->str = strdup(s + 2);
        return true;
    }
    if (strncmp(s, "o:", 2) == 0) {
        a->kind = ARG_CELL;
        return parse_int(s + 2, &a->value);
    }
    if (strncmp(s, "v:", 2) == 0) {
        a->kind = ARG_IOV;
        char *copy = strdup(s + 2), *save = NULL;
        bool ok = true;
        for (char *seg = strtok_r(copy, ",", &save); seg && ok; seg = strtok_r(NULL, ",", &save)) {
            char *colon = strrchr(seg, ':');
            if (!colon || a->niov == MAX_IOV) {
                ok = false;
                break;
            }
            *colon = '\0';
            ok = parse_addr(seg, &a->iov_base[a->niov]) && parse_hex(colon + 1, &a->iov_len[a->niov]);
            a->niov++;
        }
        free(copy);
        return ok;
    }
    if (s[0] == 'F') {
        a->kind = ARG_FD;
        return parse_fd_handle(s, &a->handle);
    }
    if (s[0] == 'A' || s[0] == 'H' || s[0] == 'X' || s[0] == 'B') {
        a->kind = ARG_ADDR;
        return parse_addr(s, &a->addr);
    }
    a->kind = ARG_INT;
    return parse_int(s, &a->value);
}

/* The syscalls `call` makes, by name. */
static const struct { const char *name; long nr; } calls[] = {
    { "read", SYS_read },         { "write", SYS_write },       { "open", SYS_open },
    { "close", SYS_close },       { "lseek", SYS_lseek },       { "pread64", SYS_pread64 },
    { "pwrite64", SYS_pwrite64 }, { "pipe", SYS_pipe },         { "dup", SYS_dup },
    { "dup2", SYS_dup2 },         { "fcntl", SYS_fcntl },       { "ftruncate", SYS_ftruncate },
    { "openat", SYS_openat },     { "splice", SYS_splice },     { "vmsplice", SYS_vmsplice },
    { "dup3", SYS_dup3 },         { "pipe2", SYS_pipe2 },       { "memfd_create", SYS_memfd_create },
    { "mlock", SYS_mlock },       { "munlock", SYS_munlock },   { "mlock2", SYS_mlock2 },
    { "madvise", SYS_madvise },   { "mincore", SYS_mincore },   { "msync", SYS_msync },
    { "mremap", SYS_mremap },     { "brk", SYS_brk },           { "getrlimit", SYS_getrlimit },
    { "setrlimit", SYS_setrlimit }, { "prlimit64", SYS_prlimit64 }, { "capset", SYS_capset },
    { "userfaultfd", SYS_userfaultfd }, { "ioctl", SYS_ioctl },
};

/* Parses a `call` line's name, bindings (`-`, `F<k>` or `F<j>/F<k>`) and arguments. */
static void parse_call(int index, char **tok, int ntok, struct op *op)
{
    size_t c = 0;
    while (c < sizeof calls / sizeof calls[0] && strcmp(tok[1], calls[c].name) != 0)
        c++;
    if (c == sizeof calls / sizeof calls[0])
        malformed(index, "unknown syscall");
    op->nr = calls[c].nr;
    op->bind[0] = op->bind[1] = -1;
    if (strcmp(tok[2], "-") != 0) {
        char *slash = strchr(tok[2], '/');
        if (slash)
            *slash = '\0';
        if (!parse_fd_handle(tok[2], &op->bind[0]) || (slash && !parse_fd_handle(slash + 1, &op->bind[1])))
            malformed(index, "bad binding");
    }
    op->nargs = ntok - 3;
    if (op->nargs > MAX_ARGS)
        malformed(index, "too many arguments");
    for (int i = 0; i < op->nargs; i++)
        if (!parse_arg(tok[3 + i], &op->args[i]))
            malformed(index, "bad argument");
}

/* ------------------------------------------------------------------ the signal family */

/*
 * A `sig` line: `sig <what> <operand>...`, numbers in hex (optionally negative), addresses as
 * everywhere else. Its result is `ok ...` or `err <errno>` as below, or `jmp` when a handler
 * jumped past it (a fault), followed by one ` h:<record>` per handler run while it ran, in the
 * order they started (see sig_record). The operations:
 *   sig reset                      sigaltstack(SS_DISABLE); SIGSEGV, SIGBUS to SIG_DFL    ok 0
 *   sig action <sig> <handler> <flags> <mask>
 *                                  rt_sigaction with SA_RESTORER, __restore_rt    ok 0 <old handler> <old flags> <old mask>
 *   sig kill <sig> | sig tgkill <sig>  to this process, this thread                ok 0
 *   sig mask <how> <set>           rt_sigprocmask                                 ok 0 <old set>
 *   sig load <addr> | sig store <addr>  8 bytes (the store of 0x5a)               ok <value> | ok 0
 *   sig altstack <sp> <size> <flags> | sig altstack -   sigaltstack(&ss or NULL, &old)
 *                                                                                 ok 0 <old sp> <old flags> <old size>
 *   sig ldt <func> <entry> <base> <limit> <bits>   modify_ldt with a user_desc (`bits` its
 *                                  flag word); func 0 reads 16 bytes              ok <r> [m:<w0>,<w1>]
 *   sig sreg <ds|es|fs|gs|ss> <sel>  MOV Sreg, read back, the old selector (and base) put back
 *                                                                                 ok <sel> [<base>]
 *   sig lar <sel>                  LAR, LSL (-1 for ZF=0), VERR, VERW             ok <lar> <lsl> <verr> <verw>
 *   sig prctl <code> <arg>         arch_prctl; SET_FS/GS read the base back (after a failure
 *                                  `cur` when unchanged: the host's is its TLS) and put the old
 *                                  one back; GET_FS/GS print the cell (`cur` when it is the
 *                                  base)                                          ok <r> [<base>]
 *   sig wrbase <fs|gs> <value>     WRFSBASE/WRGSBASE, read back, the old base put back   ok <base>
 * Handlers (struct op's sig_name): see enum sig_handler.
 */
enum sig_what { SW_RESET, SW_ACTION, SW_KILL, SW_TGKILL, SW_MASK, SW_LOAD, SW_STORE, SW_ALTSTACK,
                SW_LDT, SW_SREG, SW_LAR, SW_PRCTL, SW_WRBASE };
/* dfl, ign; rec: records (SA_SIGINFO) and returns; plain: records signo and the ucontext only
 * (no SA_SIGINFO); alt: records, then sigaltstack(SS_DISABLE) and its result; jmp: records, sets
 * the mask from uc_sigmask and jumps past the operation (returns when it interrupted a handler
 * that had not started: sig_before_handler); fix: records, then for SEGV_ACCERR makes the page
 * read-write and returns (the access is made again), else does as jmp. */
enum sig_handler { SH_DFL, SH_IGN, SH_REC, SH_PLAIN, SH_ALT, SH_JMP, SH_FIX };
static const char *const sig_handler_names[] = { "dfl", "ign", "rec", "plain", "alt", "jmp", "fix" };
enum sig_sreg { SR_DS, SR_ES, SR_FS, SR_GS, SR_SS };
static const char *const sig_sreg_names[] = { "ds", "es", "fs", "gs", "ss" };

/* Finds s in names[0, n); -1 if absent. */
static int name_index(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

/* Parses a `sig` line's operation and operands into *op. */
static void parse_sig(int index, char **tok, int ntok, struct op *op)
{
    static const struct { const char *name; int ntok; } whats[] = {
        [SW_RESET] = { "reset", 2 },   [SW_ACTION] = { "action", 6 }, [SW_KILL] = { "kill", 3 },
        [SW_TGKILL] = { "tgkill", 3 }, [SW_MASK] = { "mask", 4 },     [SW_LOAD] = { "load", 3 },
        [SW_STORE] = { "store", 3 },   [SW_ALTSTACK] = { "altstack", 5 }, [SW_LDT] = { "ldt", 7 },
        [SW_SREG] = { "sreg", 4 },     [SW_LAR] = { "lar", 3 },       [SW_PRCTL] = { "prctl", 4 },
        [SW_WRBASE] = { "wrbase", 4 },
    };
    int w = 0;
    while (w < (int)(sizeof whats / sizeof whats[0]) && strcmp(tok[1], whats[w].name) != 0)
        w++;
    if (w == (int)(sizeof whats / sizeof whats[0]))
        malformed(index, "unknown sig operation");
    op->sig_what = w;
    bool query = w == SW_ALTSTACK && ntok == 3 && strcmp(tok[2], "-") == 0;
    if (ntok != whats[w].ntok && !query)
        malformed(index, "wrong number of sig operands");
    op->addr = (struct addr_expr){ ADDR_ABSOLUTE, 0, 0 };
    bool ok = true;
    switch (w) {
    case SW_ACTION:
        op->sig_name = name_index(tok[3], sig_handler_names, 7);
        ok = parse_int(tok[2], &op->sig_v[0]) && op->sig_name >= 0 && parse_int(tok[4], &op->sig_v[1]) && parse_int(tok[5], &op->sig_v[2]);
        break;
    case SW_KILL:
    case SW_TGKILL:
    case SW_LAR:
        ok = parse_int(tok[2], &op->sig_v[0]);
        break;
    case SW_MASK:
        ok = parse_int(tok[2], &op->sig_v[0]) && parse_int(tok[3], &op->sig_v[1]);
        break;
    case SW_LOAD:
    case SW_STORE:
        ok = parse_addr(tok[2], &op->addr);
        break;
    case SW_ALTSTACK:
        op->sig_v[2] = query;
        ok = query || (parse_addr(tok[2], &op->addr) && parse_int(tok[3], &op->sig_v[0]) && parse_int(tok[4], &op->sig_v[1]));
        break;
    case SW_LDT:
        for (int k = 0; k < 5 && ok; k++)
            ok = parse_int(tok[2 + k], &op->sig_v[k]);
        break;
    case SW_SREG:
        op->sig_name = name_index(tok[2], sig_sreg_names, 5);
        ok = op->sig_name >= 0 && parse_int(tok[3], &op->sig_v[0]);
        break;
    case SW_PRCTL:
        ok = parse_int(tok[2], &op->sig_v[0]) && parse_addr(tok[3], &op->addr);
        break;
    case SW_WRBASE:
        op->sig_name = name_index(tok[2], sig_sreg_names, 5);
        ok = (op->sig_name == SR_FS || op->sig_name == SR_GS) && parse_addr(tok[3], &op->addr);
        break;
    default:
        break;
    }
    if (!ok)
        malformed(index, "bad sig operand");
}

/*
 * The ptrace family: `ptr <mode> <inj> <fin> <off> <sel> <v1> <v2> <pv>` (hex numbers), one
 * story of a parent tracing a child it forks (do_ptr). mode: traceme (the child asks and stops
 * at its own SIGUSR1), attach or seize (+ INTERRUPT; the child sleeping in a pipe read); inj
 * the signal the tracer resumes it with (0, SIGUSR2 caught by its handler, SIGTERM); fin cont,
 * detach or kill; off a user-area offset to PEEKUSER; sel the selector POKEUSER gives DS; v1
 * and v2 the values the child puts in R12 and R13 (RBX: their XOR) before its stopping
 * syscall; pv the word the tracer pokes.
 */
enum ptr_mode { PM_TRACEME, PM_ATTACH, PM_SEIZE };
static const char *const ptr_mode_names[] = { "traceme", "attach", "seize" };
enum ptr_fin { PF_CONT, PF_DETACH, PF_KILL };
static const char *const ptr_fin_names[] = { "cont", "detach", "kill" };

static void parse_ptr(int index, char **tok, struct op *op)
{
    uint64_t inj, off, sel;
    op->ptr_v[0] = name_index(tok[1], ptr_mode_names, 3);
    op->ptr_v[2] = name_index(tok[3], ptr_fin_names, 3);
    if (op->ptr_v[0] < 0 || op->ptr_v[2] < 0 || !parse_hex(tok[2], &inj) || inj > 64 || !parse_hex(tok[4], &off) || off > 0xfff ||
        !parse_hex(tok[5], &sel) || sel > 0xfffff || !parse_hex(tok[6], &op->ptr_w[0]) || !parse_hex(tok[7], &op->ptr_w[1]) ||
        !parse_hex(tok[8], &op->ptr_w[2]))
        malformed(index, "bad ptr operand");
    op->ptr_v[1] = (int)inj;
    op->ptr_v[3] = (int)off;
    op->ptr_v[4] = (int)sel;
}

/*
 * `i80 <nr> <ebx> <ecx> <edx>` and `i80 <nr> <ebx> <ecx> <edx> <entry> <base> <limit> <flags>`:
 * INT 0x80 with EAX and the three registers as given (hex, 64 bits: the kernel sees their low
 * halves), an operand `D` being the address of a struct user_desc (the four u32 given) in a
 * page below 4 GiB (I80_LOW, mapped for the call and unmapped after), `P<hex>` the pid with
 * <hex> in the high half. Prints `ok <rax>` (`ok self` for the pid) and, with a user_desc, its
 * four words after the call.
 */
#define I80_LOW ((uint64_t)0x40000000)
static void parse_i80(int index, char **tok, int ntok, struct op *op)
{
    if (ntok != 5 && ntok != 9)
        malformed(index, "wrong number of operands");
    bool ok = parse_hex(tok[1], &op->ptr_w[0]);
    for (int k = 0; k < 3 && ok; k++) {
        const char *t = tok[2 + k];
        if (strcmp(t, "D") == 0)
            op->ptr_v[k] = 1;
        else if (t[0] == 'P')
            op->ptr_v[k] = 2, ok = parse_hex(t + 1, &op->i80_arg[k]);
        else
            ok = parse_hex(t, &op->i80_arg[k]);
        if (op->ptr_v[k] == 1 && ntok != 9)
            ok = false;
    }
    op->ptr_v[3] = ntok == 9;
    for (int k = 0; k < 4 && ok && ntok == 9; k++) {
        uint64_t w = 0;
        ok = parse_hex(tok[5 + k], &w) && w <= 0xffffffff;
        op->i80_desc[k] = (uint32_t)w;
    }
    if (!ok)
        malformed(index, "bad i80 operand");
}

static void do_i80(int index, const struct op *op)
{
    uint32_t *desc = (uint32_t *)I80_LOW;
    if (op->ptr_v[3]) {
        if (mmap(desc, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
            complain("i80: mmap: %s", strerror(errno));
        memcpy(desc, op->i80_desc, 16);
    }
    long pid = getpid();
    uint64_t a[3];
    for (int k = 0; k < 3; k++)
        a[k] = op->ptr_v[k] == 1 ? I80_LOW : op->ptr_v[k] == 2 ? (op->i80_arg[k] << 32) | (uint64_t)pid : op->i80_arg[k];
    uint64_t rax;
    __asm__ volatile("int $0x80" : "=a"(rax) : "a"(op->ptr_w[0]), "b"(a[0]), "c"(a[1]), "d"(a[2]) : "memory");
    char res[128];
    if (rax == (uint64_t)pid)
        snprintf(res, sizeof res, "ok self");
    else
        snprintf(res, sizeof res, "ok %" PRIx64, rax);
    if (op->ptr_v[3]) {
        size_t n = strlen(res);
        snprintf(res + n, sizeof res - n, " d:%x,%x,%x,%x", desc[0], desc[1], desc[2], desc[3]);
        munmap(desc, 4096);
    }
    emit(index, "%s", res);
}

/* Parses one line (a NUL-terminated string) into *op; exits via malformed() on error. */
static void parse_line(int index, char *line, struct op *op)
{
    char *tok[MAX_TOKENS];
    int ntok = 0;
    for (char *p = line;; p++) {
        if (ntok == MAX_TOKENS)
            malformed(index, "too many tokens");
        tok[ntok++] = p;
        p = strchr(p, ' ');
        if (!p)
            break;
        *p = '\0';
    }
    for (int i = 0; i < ntok; i++)
        if (tok[i][0] == '\0')
            malformed(index, "empty token (tokens are separated by single spaces)");

    /* ntok: the number of tokens, or the least for `call` (any number up to MAX_TOKENS). */
    static const struct { const char *name; enum op_kind kind; int ntok; } table[] = {
        { "mmap", OP_MMAP, 6 },   { "munmap", OP_MUNMAP, 3 }, { "mprotect", OP_MPROTECT, 4 },
        { "load", OP_LOAD, 3 },   { "store", OP_STORE, 4 },   { "getpid", OP_GETPID, 1 },
        { "fork", OP_FORK, 1 },   { "end", OP_END, 1 },       { "wait", OP_WAIT, 1 },
        { "exit", OP_EXIT, 2 },   { "execve", OP_EXECVE, 1 }, { "call", OP_CALL, 3 },
        { "sig", OP_SIG, 2 },     { "ptr", OP_PTR, 9 },     { "i80", OP_I80, 5 },
    };
    size_t t = 0;
    while (t < sizeof table / sizeof table[0] && strcmp(tok[0], table[t].name) != 0)
        t++;
    if (t == sizeof table / sizeof table[0])
        malformed(index, "unknown operation");
    bool ok = table[t].kind == OP_CALL ? ntok >= 3 : table[t].kind == OP_MMAP ? ntok == 6 || ntok == 8
            : table[t].kind == OP_SIG ? ntok >= 2 : table[t].kind == OP_I80 ? ntok == 5 || ntok == 9 : ntok == table[t].ntok;
    if (!ok)
        malformed(index, "wrong number of operands");

    memset(op, 0, sizeof *op);
    op->kind = table[t].kind;
    switch (op->kind) {
    case OP_MMAP:
        if (!parse_dec(tok[1], MAX_HANDLES - 1, &op->handle))
            malformed(index, "bad handle number");
        if (!parse_addr(tok[2], &op->addr) || !parse_hex(tok[3], &op->len) ||
            !parse_hex(tok[4], &op->prot) || !parse_hex(tok[5], &op->flags))
            malformed(index, "bad mmap operand");
        op->fd = (struct arg){ .kind = ARG_INT, .value = -1 };
        if (ntok == 8 && (!parse_arg(tok[6], &op->fd) || (op->fd.kind != ARG_FD && op->fd.kind != ARG_INT) ||
                          !parse_hex(tok[7], &op->off)))
            malformed(index, "bad mmap descriptor or offset");
        break;
    case OP_CALL:
        parse_call(index, tok, ntok, op);
        break;
    case OP_SIG:
        parse_sig(index, tok, ntok, op);
        break;
    case OP_PTR:
        parse_ptr(index, tok, op);
        break;
    case OP_I80:
        parse_i80(index, tok, ntok, op);
        break;
    case OP_MUNMAP:
    case OP_MPROTECT:
        if (!parse_addr(tok[1], &op->addr) || !parse_hex(tok[2], &op->len) ||
            (op->kind == OP_MPROTECT && !parse_hex(tok[3], &op->prot)))
            malformed(index, "bad operand");
        break;
    case OP_LOAD:
    case OP_STORE:
        if (!parse_addr(tok[1], &op->addr))
            malformed(index, "bad address");
        if (!parse_dec(tok[2], 8, &op->size) || (op->size & (op->size - 1)) || op->size == 0)
            malformed(index, "size must be 1, 2, 4 or 8");
        if (op->kind == OP_STORE) {
            if (!parse_hex(tok[3], &op->value))
                malformed(index, "bad store value");
            if (op->size < 8 && (op->value >> (8 * op->size)) != 0)
                malformed(index, "store value does not fit in the size");
        }
        break;
    case OP_EXIT:
        if (!parse_dec(tok[1], 255, &op->status))
            malformed(index, "exit status must be 0..255");
        break;
    default:
        break;
    }
}

/*
 * Splits input_text into lines and parses them into ops[], matching each `fork` with
 * its `end` and recording for every line the end of the block it belongs to.
 */
static void parse_sequence(void)
{
    if (memchr(input_text, '\0', input_len))
        malformed(0, "input contains a NUL byte");
    int cap = 16, depth = 0;
    int *open = malloc(sizeof *open * MAX_DEPTH);        /* indices of unclosed forks */
    int *parent = malloc(sizeof *parent * (size_t)cap); /* innermost open fork per line */
    ops = malloc(sizeof *ops * (size_t)cap);
    char *text = malloc(input_len + 1); /* split a copy: input_text may go to a memfd */
    memcpy(text, input_text, input_len + 1);
    char *p = text, *stop = text + input_len;
    while (p < stop) {
        char *nl = memchr(p, '\n', (size_t)(stop - p));
        if (nl)
            *nl = '\0';
        if (nops == cap) {
            cap *= 2;
            ops = realloc(ops, sizeof *ops * (size_t)cap);
            parent = realloc(parent, sizeof *parent * (size_t)cap);
        }
        if (*p == '\0')
            malformed(nops, "empty line");
        parse_line(nops, p, &ops[nops]);
        parent[nops] = depth > 0 ? open[depth - 1] : -1;
        if (ops[nops].kind == OP_FORK) {
            if (depth == MAX_DEPTH)
                malformed(nops, "forks nested too deeply");
            open[depth++] = nops;
        } else if (ops[nops].kind == OP_END) {
            if (depth == 0)
                malformed(nops, "`end` without a `fork`");
            ops[open[--depth]].match = nops;
        }
        nops++;
        p = nl ? nl + 1 : stop;
    }
    if (depth > 0)
        malformed(open[depth - 1], "`fork` without an `end`");
    for (int i = 0; i < nops; i++)
        ops[i].block_end = parent[i] < 0 ? nops : ops[parent[i]].match;
    free(open);
    free(parent);
    free(text);
}

/* Reads the whole of input_path (or stdin for "-") into input_text; exits 2 on error. */
static void read_input(void)
{
    int fd = input_is_stdin ? 0 : open(input_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        complain("oracle: cannot open %s: %s\n", input_path, strerror(errno));
        exit(2);
    }
    size_t cap = 4096;
    input_text = malloc(cap + 1);
    for (;;) {
        if (input_len == cap)
            input_text = realloc(input_text, (cap *= 2) + 1);
        ssize_t n = read(fd, input_text + input_len, cap - input_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            complain("oracle: cannot read %s: %s\n", input_path, strerror(errno));
            exit(2);
        }
        if (n == 0)
            break;
        input_len += (size_t)n;
    }
    input_text[input_len] = '\0';
    if (!input_is_stdin)
        close(fd);
}

/* ------------------------------------------------------------------ operations */

/* Resolves an address expression; false when it names an unbound handle. */
static bool resolve(const struct addr_expr *a, uint64_t *out)
{
    switch (a->kind) {
    case ADDR_ARENA:
        *out = ARENA + a->offset;
        return true;
    case ADDR_HANDLE:
        if (!handle_bound[a->handle])
            return false;
        *out = handle_base[a->handle] + a->offset;
        return true;
    case ADDR_BRK:
        *out = brk_base + a->offset;
        return true;
    default:
        *out = a->offset;
        return true;
    }
}

/* Addresses from BRK_BELOW under the image's first program break to BRK_NEAR above it are
 * printed relative to it. */
#define BRK_NEAR ((uint64_t)0x1000000)
#define BRK_BELOW ((uint64_t)0x200000)

/* Formats an address as `A+<hex>` if it lies in the arena, `B+<hex>` or `B-<hex>` if it lies
 * near the image's first program break, else `X<hex>`. */
static void format_addr(char *buf, size_t n, uint64_t addr)
{
    if (addr - ARENA < ARENA_SIZE)
        snprintf(buf, n, "A+%" PRIx64, addr - ARENA);
    else if (addr - brk_base < BRK_NEAR)
        snprintf(buf, n, "B+%" PRIx64, addr - brk_base);
    else if (brk_base - addr <= BRK_BELOW)
        snprintf(buf, n, "B-%" PRIx64, brk_base - addr);
    else
        snprintf(buf, n, "X%" PRIx64, addr);
}

/* Records a SIGSEGV/SIGBUS raised by a load or store and jumps back past it; any other
 * fault gets the default action (the handler resets it and the instruction re-faults). */
static void on_fault(int signo, siginfo_t *si, void *context)
{
    (void)context;
    if (!fault_armed) {
        signal(signo, SIG_DFL);
        return;
    }
    fault_armed = 0;
    fault_signo = signo;
    fault_code = si->si_code;
    fault_addr = (uint64_t)(uintptr_t)si->si_addr;
    siglongjmp(fault_jump, 1);
}

/* Installs on_fault for SIGSEGV and SIGBUS on an alternate stack (so a fault still gets
 * handled if the sequence unmaps the stack region it touches). */
static void install_fault_handler(void)
{
    static char altstack[64 * 1024];
    stack_t ss = { .ss_sp = altstack, .ss_size = sizeof altstack };
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
}

/* Performs one load or store of `size` bytes at addr through a volatile pointer.
 * Returns true on success (a load leaves its value in *value); false if it faulted,
 * with fault_signo/fault_code/fault_addr describing the signal. */
static bool access_memory(uint64_t addr, int size, bool store, uint64_t *value)
{
    if (sigsetjmp(fault_jump, 1))
        return false;
    fault_armed = 1;
    uintptr_t p = (uintptr_t)addr;
    switch (size) {
    case 1:
        if (store) *(volatile uint8_t *)p = (uint8_t)*value;
        else *value = *(volatile uint8_t *)p;
        break;
    case 2:
        if (store) *(volatile uint16_t *)p = (uint16_t)*value;
        else *value = *(volatile uint16_t *)p;
        break;
    case 4:
        if (store) *(volatile uint32_t *)p = (uint32_t)*value;
        else *value = *(volatile uint32_t *)p;
        break;
    default:
        if (store) *(volatile uint64_t *)p = *value;
        else *value = *(volatile uint64_t *)p;
        break;
    }
    fault_armed = 0;
    return true;
}

/* Closes the write ends of all pending gates, letting those children run. */
static void release_children(void)
{
    for (int i = 0; i < ngates; i++)
        close(gates[i]);
    ngates = 0;
}

/* Forks. The child blocks on a gate pipe until its parent releases it (at `wait` or
 * exit), then returns 0 with `who` extended by `c`. The parent records the gate and
 * returns the child's pid, or -1 with errno set. */
static pid_t fork_gated(void)
{
    int gate[2];
    if (pipe(gate) != 0)
        return -1;
    /* Out of the sequence's way: to the oracle's own descriptors (a few at once suffice). */
    for (int i = 0; i < 2; i++) {
        int moved = fcntl(gate[i], F_DUPFD, PRIVATE_FD);
        close(gate[i]);
        if (moved < 0)
            _exit(5);
        gate[i] = moved;
    }
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(gate[0]);
        close(gate[1]);
        errno = e;
        return -1;
    }
    if (pid == 0) {
        close(gate[1]);
        release_children(); /* the parent's pending gates are not ours to hold */
        char c;
        while (read(gate[0], &c, 1) < 0 && errno == EINTR)
            ;
        close(gate[0]);
        start_pid = (pid_t)syscall(SYS_getpid);
        strcat(who, "c");
        return 0;
    }
    close(gate[0]);
    if (ngates == MAX_GATES)
        _exit(5);
    gates[ngates++] = gate[1];
    return pid;
}

/* Replaces this process with a fresh image of the oracle that resumes the sequence at
 * line `resume`, keeping `who` and the pending gates. Returns only on failure. */
static void exec_self(int resume)
{
    if (input_is_stdin) { /* the new image cannot reread stdin: hand it a memfd copy */
        int low = memfd_create("isolab-sequence", 0);
        if (low < 0)
            return;
        int fd = fcntl(low, F_DUPFD, PRIVATE_FD); /* out of the sequence's way */
        close(low);
        if (fd < 0)
            return;
        write_all(fd, input_text, input_len);
        static char path[32];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        input_path = path;
        input_is_stdin = false;
    }
    char index[16];
    snprintf(index, sizeof index, "%d", resume);
    static char gatelist[12 * MAX_GATES + 2];
    strcpy(gatelist, ngates ? "" : "-");
    for (int i = 0; i < ngates; i++)
        sprintf(gatelist + strlen(gatelist), i ? ",%d" : "%d", gates[i]);
    char *argv[] = { "isolab-oracle", "--resume", index, who, gatelist, (char *)input_path, NULL };
    extern char **environ;
    execve("/proc/self/exe", argv, environ);
}

/* Appends the lines of text[0, len) that begin with an arena address (the arena's lines of
 * /proc/self/maps), joined by `;`, to out: each as `A+<start>-A+<end> <perms> <offset> <dev>
 * <inode> [<name>]`, single spaces between the fields, the inode `I` unless it is 0 (a shmem
 * inode's number is each kernel's own, and the padding before the name follows its width). */
static size_t arena_lines(char *out, size_t cap, const char *text, size_t len)
{
    size_t n = 0;
    bool first = true;
    for (size_t at = 0; at < len && text[at] != '\0';) {
        const char *line = text + at;
        const char *nl = memchr(line, '\n', len - at);
        size_t ll = nl ? (size_t)(nl - line) : len - at;
        at += ll + 1;
        char *end;
        uint64_t start = strtoull(line, &end, 16);
        if (*end != '-' || start - ARENA >= ARENA_SIZE)
            continue;
        uint64_t stop = strtoull(end + 1, &end, 16);
        char perms[8], offset[20], dev[16], inode[24];
        int name = 0;
        char copy[512];
        size_t rest = ll - (size_t)(end - line);
        snprintf(copy, sizeof copy, "%.*s", (int)rest, end);
        if (sscanf(copy, " %7s %19s %15s %23s %n", perms, offset, dev, inode, &name) < 4)
            continue;
        n += (size_t)snprintf(out + n, cap - n, "%sA+%" PRIx64 "-A+%" PRIx64 " %s %s %s %s%s%s", first ? " " : ";",
                              start - ARENA, stop - ARENA, perms, offset, dev, strcmp(inode, "0") ? "I" : "0",
                              copy[name] ? " " : "", copy + name);
        first = false;
        if (n >= cap)
            return cap - 1;
    }
    return n;
}

/* Runs a `call`: resolves its arguments (`skip` if one names an unbound handle), makes the
 * syscall, prints `ok <decimal>` (brk's: the break as an address) followed by the cells, pairs,
 * words and texts it passed, or `err <errno>` followed by the words, and binds its descriptor
 * handles on success. */
static void do_call(int index, const struct op *op)
{
    static int64_t cells[MAX_ARGS];
    static int pair[2];
    static struct iovec iovs[MAX_ARGS][MAX_IOV];
    static uint64_t words[MAX_ARGS][MAX_WORDS];
    static char texts[MAX_ARGS][MAX_TEXT];
    long a[MAX_ARGS] = { 0 };
    for (int k = 0; k < op->nargs; k++) {
        const struct arg *g = &op->args[k];
        uint64_t addr;
        switch (g->kind) {
        case ARG_FD:
            if (!fd_bound[g->handle]) {
                emit(index, "skip");
                return;
            }
            a[k] = fd_handle[g->handle];
            break;
        case ARG_ADDR:
            if (!resolve(&g->addr, &addr)) {
                emit(index, "skip");
                return;
            }
            a[k] = (long)addr;
            break;
        case ARG_INT:
            a[k] = (long)g->value;
            break;
        case ARG_STR:
            a[k] = (long)(uintptr_t)g->str;
            break;
        case ARG_CELL:
            cells[k] = g->value;
            a[k] = (long)(uintptr_t)&cells[k];
            break;
        case ARG_PAIR:
            pair[0] = pair[1] = -1;
            a[k] = (long)(uintptr_t)pair;
            break;
        case ARG_IOV:
            for (int v = 0; v < g->niov; v++) {
                if (!resolve(&g->iov_base[v], &addr)) {
                    emit(index, "skip");
                    return;
                }
                iovs[k][v].iov_base = (void *)(uintptr_t)addr;
                iovs[k][v].iov_len = g->iov_len[v];
            }
            a[k] = (long)(uintptr_t)iovs[k];
            break;
        case ARG_WORDS:
            for (int w = 0; w < g->nwords; w++) {
                if (!g->words[w].is_addr) {
                    words[k][w] = (uint64_t)g->words[w].value;
                } else if (!resolve(&g->words[w].addr, &words[k][w])) {
                    emit(index, "skip");
                    return;
                }
            }
            a[k] = (long)(uintptr_t)words[k];
            break;
        case ARG_TEXT:
            memset(texts[k], 0, sizeof texts[k]);
            a[k] = (long)(uintptr_t)texts[k];
            break;
        }
    }
    long r = syscall(op->nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    static char extra[MAX_TEXT + 256];
    size_t n = 0;
    extra[0] = '\0';
    for (int k = 0; k < op->nargs; k++) {
        const struct arg *g = &op->args[k];
        if (g->kind != ARG_WORDS)
            continue;
        for (int w = 0; w < g->nwords; w++)
            n += (size_t)snprintf(extra + n, sizeof extra - n, "%s%" PRIx64, w ? "," : " m:", words[k][w] & g->mask[w]);
    }
    if (r < 0) {
        emit(index, "err %d%s", errno, extra);
        return;
    }
    bool has_pair = false;
    for (int k = 0; k < op->nargs; k++) {
        if (op->args[k].kind == ARG_TEXT)
            n += arena_lines(extra + n, sizeof extra - n, texts[k], op->args[k].text_len);
        else if (op->args[k].kind == ARG_CELL)
            n += (size_t)snprintf(extra + n, sizeof extra - n, " %" PRId64, cells[k]);
        else if (op->args[k].kind == ARG_PAIR) {
            n += (size_t)snprintf(extra + n, sizeof extra - n, " %d %d", pair[0], pair[1]);
            has_pair = true;
        }
    }
    for (int b = 0; b < 2; b++) {
        if (op->bind[b] < 0)
            continue;
        fd_handle[op->bind[b]] = has_pair ? pair[b] : (int)r;
        fd_bound[op->bind[b]] = true;
    }
    bool has_text = false;
    for (int k = 0; k < op->nargs; k++)
        has_text |= op->args[k].kind == ARG_TEXT;
    if (has_text) { /* the text's length is each side's own (the host's maps has more lines) */
        emit(index, "ok text%s", extra);
        return;
    }
    if (op->nr == SYS_brk) {
        char where[40];
        format_addr(where, sizeof where, (uint64_t)r);
        emit(index, "ok %s%s", where, extra);
        return;
    }
    emit(index, "ok %ld%s", r, extra);
}

/* The handlers' runs during the operation running (see sig_record), and where `jmp` and `fix`
 * jump to: back into do_sig, which prints `jmp`. A handler only copies what it saw and calls
 * nothing in the C library: the printing is done after the operation, so that a handler needs
 * little stack (an alternate stack may end just above a page the sequence made inaccessible;
 * the model's handlers need none). */
#define MAX_RUNS 64
static struct sig_run {
    int signo;
    bool info, alt_called;
    int32_t code;
    uint64_t addr, uc, uc_flags, ss_sp, ss_size, err, trapno, cr2;
    uint32_t ss_flags;
    uint16_t cs, ss;
    long alt_result;
} sig_runs[MAX_RUNS];
static volatile int sig_nruns;
/* GCC's own setjmp buffer: __builtin_longjmp calls nothing in the C library (whose first call
 * through the PLT would resolve the symbol on the handler's stack, with an XSAVE image). */
static void *sig_jump[5];

static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

/* A syscall that touches neither errno nor the TLS (FS's base may be the sequence's): the
 * result, or -errno. */
static long raw_syscall(long nr, long a, long b, long c, long d)
{
    long r;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall" : "=a"(r) : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
    return r;
}

/* Offsets in the x86-64 ucontext (uc_flags, uc_stack's ss_sp, ss_flags and ss_size, the
 * sigcontext's cs, ss, err, trapno, cr2, and uc_sigmask) and siginfo (si_code, si_addr). */
#define UC_STACK_SP 16
#define UC_STACK_FLAGS 24
#define UC_STACK_SIZE 32
#define UC_SC_CS (40 + 144)
#define UC_SC_SS (40 + 150)
#define UC_SC_ERR (40 + 152)
#define UC_SC_TRAPNO (40 + 160)
#define UC_SC_CR2 (40 + 176)
#define UC_SC_RIP (40 + 128)
#define UC_SIGMASK 296
#define SI_CODE 8
#define SI_ADDR 16

/* Records a handler run: its signo (with SA_SIGINFO the siginfo's si_signo, else the argument:
 * RDI); with SA_SIGINFO (`info`) the siginfo's si_code and si_addr
 * (without it the kernel leaves the frame's siginfo unwritten); the ucontext's uc_flags,
 * uc_stack and the sigcontext's cs, ss, err, trapno, cr2. Returns the record (NULL when full). */
static struct sig_run *sig_record(int signo, const uint8_t *si, const uint8_t *uc, bool info)
{
    int n = sig_nruns;
    if (n == MAX_RUNS)
        return NULL;
    struct sig_run *h = &sig_runs[n];
    sig_nruns = n + 1;
    h->signo = info ? (int)rd32(si) : signo; /* with SA_SIGINFO, si_signo: what the frame holds */
    h->info = info;
    h->alt_called = false;
    h->code = info ? (int32_t)rd32(si + SI_CODE) : 0;
    h->addr = info ? rd64(si + SI_ADDR) : 0;
    h->uc = (uint64_t)(uintptr_t)uc;
    h->uc_flags = rd64(uc);
    h->ss_sp = rd64(uc + UC_STACK_SP);
    h->ss_flags = rd32(uc + UC_STACK_FLAGS);
    h->ss_size = rd64(uc + UC_STACK_SIZE);
    h->cs = rd16(uc + UC_SC_CS);
    h->ss = rd16(uc + UC_SC_SS);
    h->err = rd64(uc + UC_SC_ERR);
    h->trapno = rd64(uc + UC_SC_TRAPNO);
    h->cr2 = rd64(uc + UC_SC_CR2);
    return h;
}

/* Appends ` h:<signo>,<si_code>,<si_addr>,<uc_flags>,<ss_flags>,<alt|main>,<cs>,<ss>` for each
 * handler run to out: si_code and si_addr `-` without SA_SIGINFO, si_addr `-` unless si_code > 0
 * (a kernel-sent signal: a fault; the union holds the sender's pid otherwise); `alt` when the
 * frame lies in uc_stack's [ss_sp, ss_sp + ss_size); then, for si_code > 0,
 * `,<err>,<trapno>,<cr2>`, and for `alt`'s sigaltstack `,d<errno or 0>`. */
static void format_runs(char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (int i = 0; i < sig_nruns && n < cap; i++) {
        const struct sig_run *h = &sig_runs[i];
        char code[16] = "-", addr[40] = "-";
        if (h->info)
            snprintf(code, sizeof code, "%d", h->code);
        if (h->code > 0)
            format_addr(addr, sizeof addr, h->addr);
        n += (size_t)snprintf(out + n, cap - n, " h:%d,%s,%s,%" PRIx64 ",%" PRIx32 ",%s,%x,%x", h->signo, code, addr, h->uc_flags, h->ss_flags,
                              h->uc - h->ss_sp < h->ss_size ? "alt" : "main", h->cs, h->ss);
        if (h->code > 0 && n < cap) {
            char cr2[40];
            format_addr(cr2, sizeof cr2, h->cr2);
            n += (size_t)snprintf(out + n, cap - n, ",%" PRIx64 ",%" PRIx64 ",%s", h->err, h->trapno, cr2);
        }
        if (h->alt_called && n < cap)
            n += (size_t)snprintf(out + n, cap - n, ",d%ld", -h->alt_result);
    }
}

/* Leaves a handler for the operation's __builtin_setjmp, the mask the frame saved in force. */
static void sig_jump_out(const uint8_t *uc)
{
    raw_syscall(SYS_rt_sigprocmask, SIG_SETMASK, (long)(uintptr_t)(uc + UC_SIGMASK), 0, 8);
    __builtin_longjmp(sig_jump, 1);
}

static void h_rec(int, siginfo_t *, void *);
static void h_plain(int, siginfo_t *, void *);
static void h_alt(int, siginfo_t *, void *);
static void h_jmp(int, siginfo_t *, void *);
static void h_fix(int, siginfo_t *, void *);
static void (*const sig_handlers[])(int, siginfo_t *, void *) = { [SH_REC] = h_rec, [SH_PLAIN] = h_plain, [SH_ALT] = h_alt, [SH_JMP] = h_jmp, [SH_FIX] = h_fix };

static void h_rec(int signo, siginfo_t *si, void *uc) { sig_record(signo, (const uint8_t *)si, uc, true); }
static void h_plain(int signo, siginfo_t *si, void *uc) { sig_record(signo, (const uint8_t *)si, uc, false); }
static void h_alt(int signo, siginfo_t *si, void *uc)
{
    struct sig_run *h = sig_record(signo, (const uint8_t *)si, uc, true);
    stack_t ss = { .ss_sp = NULL, .ss_flags = SS_DISABLE, .ss_size = 0 };
    long r = raw_syscall(SYS_sigaltstack, (long)(uintptr_t)&ss, 0, 0, 0);
    if (h) {
        h->alt_called = true;
        h->alt_result = r;
    }
}
/* Whether the frame's rip is one of the handlers' entries: the signal came while a handler's
 * frame was being set up at the same return to user mode (a frame that could not be written),
 * before that handler ran; `jmp` and `fix` then return to it, there is nothing to jump past. */
static bool sig_before_handler(const uint8_t *uc)
{
    uint64_t rip = rd64(uc + UC_SC_RIP);
    for (int k = SH_REC; k <= SH_FIX; k++)
        if (rip == (uint64_t)(uintptr_t)sig_handlers[k])
            return true;
    return false;
}
static void h_jmp(int signo, siginfo_t *si, void *uc)
{
    sig_record(signo, (const uint8_t *)si, uc, true);
    if (!sig_before_handler(uc))
        sig_jump_out(uc);
}
static void h_fix(int signo, siginfo_t *si, void *uc)
{
    sig_record(signo, (const uint8_t *)si, uc, true);
    if (signo == SIGSEGV && si->si_code == SEGV_ACCERR) {
        raw_syscall(SYS_mprotect, (long)((uintptr_t)si->si_addr & ~(uintptr_t)0xfff), 0x1000, PROT_READ | PROT_WRITE, 0);
        return;
    }
    if (!sig_before_handler(uc))
        sig_jump_out(uc);
}

/* __restore_rt: the sa_restorer every `sig action` installs. */
void isolab_restore_rt(void);
__asm__(".text\n.globl isolab_restore_rt\n.type isolab_restore_rt, @function\nisolab_restore_rt:\n\tmovq $15, %rax\n\tsyscall\n\thlt\n");

struct kernel_sigaction_64 {
    uint64_t handler, flags, restorer, mask;
};
#define SA_RESTORER_FLAG 0x04000000

/* The old handler's name: one of ours, dfl, ign, or other. */
static const char *handler_name(uint64_t h)
{
    if (h == (uint64_t)(uintptr_t)SIG_DFL)
        return "dfl";
    if (h == (uint64_t)(uintptr_t)SIG_IGN)
        return "ign";
    for (int k = SH_REC; k <= SH_FIX; k++)
        if (h == (uint64_t)(uintptr_t)sig_handlers[k])
            return sig_handler_names[k];
    return "other";
}

/* Segment registers: read and written by name (the instructions name them). */
static uint16_t sreg_read(int r)
{
    uint16_t v = 0;
    switch (r) {
    case SR_DS: __asm__ volatile("mov %%ds, %0" : "=r"(v)); break;
    case SR_ES: __asm__ volatile("mov %%es, %0" : "=r"(v)); break;
    case SR_FS: __asm__ volatile("mov %%fs, %0" : "=r"(v)); break;
    case SR_GS: __asm__ volatile("mov %%gs, %0" : "=r"(v)); break;
    default: __asm__ volatile("mov %%ss, %0" : "=r"(v)); break;
    }
    return v;
}
static void sreg_write(int r, uint16_t v)
{
    switch (r) {
    case SR_DS: __asm__ volatile("mov %0, %%ds" : : "r"(v)); break;
    case SR_ES: __asm__ volatile("mov %0, %%es" : : "r"(v)); break;
    case SR_FS: __asm__ volatile("mov %0, %%fs" : : "r"(v)); break;
    case SR_GS: __asm__ volatile("mov %0, %%gs" : : "r"(v)); break;
    default: __asm__ volatile("mov %0, %%ss" : : "r"(v)); break;
    }
}
static uint64_t base_read(int r)
{
    uint64_t v;
    if (r == SR_FS)
        __asm__ volatile("rdfsbase %0" : "=r"(v));
    else
        __asm__ volatile("rdgsbase %0" : "=r"(v));
    return v;
}
static void base_write(int r, uint64_t v)
{
    if (r == SR_FS)
        __asm__ volatile("wrfsbase %0" : : "r"(v) : "memory");
    else
        __asm__ volatile("wrgsbase %0" : : "r"(v) : "memory");
}

/* What a sreg or wrbase operation changes, to put back after it (also after a jump). */
static volatile struct { bool sel, base; int reg; uint16_t old_sel; uint64_t old_base; } seg_saved;
static void seg_restore(void)
{
    if (seg_saved.sel)
        sreg_write(seg_saved.reg, seg_saved.old_sel);
    if (seg_saved.base)
        base_write(seg_saved.reg, seg_saved.old_base);
    seg_saved.sel = seg_saved.base = false;
}

/* Runs a `sig` line (see parse_sig); `addr` is its resolved address operand. */
static void do_sig(int index, const struct op *op, uint64_t addr)
{
    static char res[128], runs[8192];
    static struct kernel_sigaction_64 act, old;
    static uint64_t set, oldset, ldt_buf[2], cell;
    static stack_t ss, oss;
    static bool fsgsbase;
    fsgsbase = (getauxval(AT_HWCAP2) & 2) != 0; /* HWCAP2_FSGSBASE */
    const int64_t *v = op->sig_v;
    long r;
    sig_nruns = 0;
    if (__builtin_setjmp(sig_jump)) {
        seg_restore();
        format_runs(runs, sizeof runs);
        emit(index, "jmp%s", runs);
        return;
    }
    switch (op->sig_what) {
    case SW_RESET:
        ss = (stack_t){ .ss_flags = SS_DISABLE };
        raw_syscall(SYS_sigaltstack, (long)(uintptr_t)&ss, 0, 0, 0);
        act = (struct kernel_sigaction_64){ 0 };
        raw_syscall(SYS_rt_sigaction, SIGSEGV, (long)(uintptr_t)&act, 0, 8);
        raw_syscall(SYS_rt_sigaction, SIGBUS, (long)(uintptr_t)&act, 0, 8);
        strcpy(res, "ok 0");
        break;
    case SW_ACTION:
        act.handler = op->sig_name == SH_DFL ? (uint64_t)(uintptr_t)SIG_DFL : op->sig_name == SH_IGN ? (uint64_t)(uintptr_t)SIG_IGN : (uint64_t)(uintptr_t)sig_handlers[op->sig_name];
        act.flags = (uint64_t)v[1] | SA_RESTORER_FLAG;
        act.restorer = (uint64_t)(uintptr_t)isolab_restore_rt;
        act.mask = (uint64_t)v[2];
        old = (struct kernel_sigaction_64){ 0 };
        r = raw_syscall(SYS_rt_sigaction, v[0], (long)(uintptr_t)&act, (long)(uintptr_t)&old, 8);
        if (r < 0)
            snprintf(res, sizeof res, "err %ld", -r);
        else
            snprintf(res, sizeof res, "ok 0 %s %" PRIx64 " %" PRIx64, handler_name(old.handler), old.flags, old.mask);
        break;
    case SW_KILL:
    case SW_TGKILL:
        r = op->sig_what == SW_KILL ? raw_syscall(SYS_kill, raw_syscall(SYS_getpid, 0, 0, 0, 0), v[0], 0, 0)
                                    : raw_syscall(SYS_tgkill, raw_syscall(SYS_getpid, 0, 0, 0, 0), raw_syscall(SYS_gettid, 0, 0, 0, 0), v[0], 0);
        snprintf(res, sizeof res, r < 0 ? "err %ld" : "ok %ld", r < 0 ? -r : r);
        break;
    case SW_MASK:
        set = (uint64_t)v[1];
        r = raw_syscall(SYS_rt_sigprocmask, v[0], (long)(uintptr_t)&set, (long)(uintptr_t)&oldset, 8);
        if (r < 0)
            snprintf(res, sizeof res, "err %ld", -r);
        else
            snprintf(res, sizeof res, "ok 0 %" PRIx64, oldset);
        break;
    case SW_LOAD:
        snprintf(res, sizeof res, "ok %" PRIx64, *(volatile uint64_t *)(uintptr_t)addr);
        break;
    case SW_STORE:
        *(volatile uint64_t *)(uintptr_t)addr = 0x5a;
        strcpy(res, "ok 0");
        break;
    case SW_ALTSTACK:
        ss = (stack_t){ .ss_sp = (void *)(uintptr_t)addr, .ss_flags = (int)v[1], .ss_size = (size_t)v[0] };
        oss = (stack_t){ 0 };
        r = raw_syscall(SYS_sigaltstack, v[2] ? 0 : (long)(uintptr_t)&ss, (long)(uintptr_t)&oss, 0, 0);
        if (r < 0) {
            snprintf(res, sizeof res, "err %ld", -r);
        } else {
            char sp[40];
            format_addr(sp, sizeof sp, (uint64_t)(uintptr_t)oss.ss_sp);
            snprintf(res, sizeof res, "ok 0 %s %x %zx", sp, (unsigned)oss.ss_flags, oss.ss_size);
        }
        break;
    case SW_LDT: {
        /* struct user_desc: entry_number, base_addr, limit, then the flag bits' word. */
        static uint32_t desc[4];
        desc[0] = (uint32_t)v[1];
        desc[1] = (uint32_t)v[2];
        desc[2] = (uint32_t)v[3];
        desc[3] = (uint32_t)v[4];
        ldt_buf[0] = ldt_buf[1] = 0;
        r = raw_syscall(SYS_modify_ldt, v[0], v[0] == 0 ? (long)(uintptr_t)ldt_buf : (long)(uintptr_t)desc, 16, 0);
        if (r < 0)
            snprintf(res, sizeof res, "err %ld", -r);
        else if (v[0] == 0)
            snprintf(res, sizeof res, "ok %ld m:%" PRIx64 ",%" PRIx64, r, ldt_buf[0], ldt_buf[1]);
        else
            snprintf(res, sizeof res, "ok %ld", r);
        break;
    }
    case SW_SREG: {
        int reg = op->sig_name;
        bool has_base = (reg == SR_FS || reg == SR_GS) && fsgsbase;
        seg_saved.reg = reg;
        seg_saved.old_sel = sreg_read(reg);
        if (has_base)
            seg_saved.old_base = base_read(reg);
        seg_saved.base = has_base;
        seg_saved.sel = true;
        sreg_write(reg, (uint16_t)v[0]);
        uint16_t now = sreg_read(reg);
        uint64_t base = has_base ? base_read(reg) : 0;
        seg_restore();
        if (has_base)
            snprintf(res, sizeof res, "ok %x %" PRIx64, now, base);
        else
            snprintf(res, sizeof res, "ok %x", now);
        break;
    }
    case SW_LAR: {
        uint32_t sel = (uint32_t)v[0] & 0xffff, lar = 0, lsl = 0;
        uint8_t zlar, zlsl, zr, zw;
        __asm__ volatile("lar %2, %0\n\tsetz %1" : "+r"(lar), "=qm"(zlar) : "r"(sel) : "cc");
        __asm__ volatile("lsl %2, %0\n\tsetz %1" : "+r"(lsl), "=qm"(zlsl) : "r"(sel) : "cc");
        __asm__ volatile("verr %w1\n\tsetz %0" : "=qm"(zr) : "r"(sel) : "cc");
        __asm__ volatile("verw %w1\n\tsetz %0" : "=qm"(zw) : "r"(sel) : "cc");
        snprintf(res, sizeof res, "ok %" PRIx64 " %" PRIx64 " %d %d", zlar ? (uint64_t)lar : (uint64_t)-1, zlsl ? (uint64_t)lsl : (uint64_t)-1, zr, zw);
        break;
    }
    case SW_PRCTL: {
        long code = (long)v[0];
        if (code == ARCH_SET_FS_CODE || code == ARCH_SET_GS_CODE) {
            long get = code == ARCH_SET_FS_CODE ? ARCH_GET_FS_CODE : ARCH_GET_GS_CODE;
            static uint64_t before, after;
            raw_syscall(SYS_arch_prctl, get, (long)(uintptr_t)&before, 0, 0);
            r = raw_syscall(SYS_arch_prctl, code, (long)addr, 0, 0);
            raw_syscall(SYS_arch_prctl, get, (long)(uintptr_t)&after, 0, 0);
            raw_syscall(SYS_arch_prctl, code, (long)before, 0, 0);
            char b[40] = "cur"; /* a failed call's base is the one before it: the host's own (TLS) */
            if (r == 0 || after != before)
                format_addr(b, sizeof b, after);
            snprintf(res, sizeof res, r < 0 ? "err %ld %s" : "ok %ld %s", r < 0 ? -r : r, b);
        } else if (code == ARCH_GET_FS_CODE || code == ARCH_GET_GS_CODE) {
            static uint64_t base;
            raw_syscall(SYS_arch_prctl, code, (long)(uintptr_t)&base, 0, 0);
            r = raw_syscall(SYS_arch_prctl, code, (long)addr, 0, 0);
            if (r < 0) {
                snprintf(res, sizeof res, "err %ld", -r);
            } else {
                cell = *(volatile uint64_t *)(uintptr_t)addr;
                char b[40] = "cur";
                if (cell != base)
                    format_addr(b, sizeof b, cell);
                snprintf(res, sizeof res, "ok %ld %s", r, b);
            }
        } else {
            r = raw_syscall(SYS_arch_prctl, code, (long)addr, 0, 0);
            if (code == ARCH_SET_CPUID_CODE && r == 0 && addr == 0)
                raw_syscall(SYS_arch_prctl, code, 1, 0, 0); /* CPUID back on for the oracle */
            snprintf(res, sizeof res, r < 0 ? "err %ld" : "ok %ld", r < 0 ? -r : r);
        }
        break;
    }
    case SW_WRBASE: {
        int reg = op->sig_name;
        seg_saved.reg = reg;
        seg_saved.old_base = base_read(reg);
        seg_saved.sel = false;
        seg_saved.base = true;
        base_write(reg, addr);
        uint64_t now = base_read(reg);
        seg_restore();
        char b[40];
        format_addr(b, sizeof b, now);
        snprintf(res, sizeof res, "ok %s", b);
        break;
    }
    }
    format_runs(runs, sizeof runs);
    emit(index, "%s%s", res, runs);
}

/* Runs lines [i, stop) in this process, following forks into child blocks, then exits 0. */
/* ptrace's requests (linux/ptrace.h, asm/ptrace-abi.h) and user_regs_struct's offsets (asm/user_64.h). */
#define PT_TRACEME 0
#define PT_PEEKDATA 2
#define PT_PEEKUSR 3
#define PT_POKEDATA 5
#define PT_POKEUSR 6
#define PT_CONT 7
#define PT_KILL 8
#define PT_GETREGS 12
#define PT_SETREGS 13
#define PT_ATTACH 16
#define PT_DETACH 17
#define PT_GETSIGINFO 0x4202
#define PT_SEIZE 0x4206
#define PT_INTERRUPT 0x4207
#define UR_R13 16
#define UR_R12 24
#define UR_RBX 40
#define UR_RAX 80
#define UR_ORIG_RAX 120
#define UR_CS 136
#define UR_SS 160
#define UR_FS_BASE 168
#define UR_DS 184
#define UR_ES 192
#define UR_FS 200
#define UR_GS 208
#define UR_SIZE 216
/* The story's pages, which the family's sequences leave unmapped: S shared with the child (what
 * it saw), R private and read-only (the word the tracer pokes); nothing is ever mapped at U. */
#define PTR_S (ARENA + 0x3100000)
#define PTR_R (ARENA + 0x3110000)
#define PTR_U (ARENA + 0x3120000)

static char ptr_line[2048];
/* Appends ` <label>=<value>` to ptr_line: -errno in decimal, anything else in hex. */
static void ptr_put(const char *label, int64_t v)
{
    size_t n = strlen(ptr_line);
    if (v < 0 && v > -4096)
        snprintf(ptr_line + n, sizeof ptr_line - n, " %s=%" PRId64, label, v);
    else
        snprintf(ptr_line + n, sizeof ptr_line - n, " %s=%" PRIx64, label, (uint64_t)v);
}
/* A pid as the story prints it: the child's `self`, else as ptr_put. */
static void ptr_put_pid(const char *label, int64_t v, pid_t child)
{
    size_t n = strlen(ptr_line);
    if (v == child)
        snprintf(ptr_line + n, sizeof ptr_line - n, " %s=self", label);
    else
        ptr_put(label, v);
}
static void ptr_handler(int signo) { ((volatile uint64_t *)PTR_S)[0] = (uint64_t)signo; }

/* The `ptr` child: see parse_ptr. Never returns. */
static void ptr_child(const struct op *op, int sync_w, int blk_r)
{
    volatile uint64_t *S = (volatile uint64_t *)PTR_S;
    struct sigaction sa = { .sa_handler = ptr_handler }; /* no SA_RESTART: an interrupted read is -EINTR */
    sigaction(SIGUSR2, &sa, NULL);
    if (op->ptr_v[0] == PM_TRACEME)
        S[1] = (uint64_t)raw_syscall(SYS_ptrace, PT_TRACEME, 0, 0, 0);
    char c = 'x';
    raw_syscall(SYS_write, sync_w, (long)&c, 1, 0);
    long me = raw_syscall(SYS_getpid, 0, 0, 0, 0);
    register uint64_t r12 __asm__("r12") = op->ptr_w[0];
    register uint64_t r13 __asm__("r13") = op->ptr_w[1];
    uint64_t rbx = op->ptr_w[0] ^ op->ptr_w[1];
    long ret;
    if (op->ptr_v[0] == PM_TRACEME)
        __asm__ volatile("syscall" : "=a"(ret), "+r"(r12), "+r"(r13), "+b"(rbx) : "a"((long)SYS_kill), "D"(me), "S"((long)SIGUSR1) : "rcx", "r11", "memory");
    else
        __asm__ volatile("syscall" : "=a"(ret), "+r"(r12), "+r"(r13), "+b"(rbx) : "a"((long)SYS_read), "D"((long)blk_r), "S"(&c), "d"(1L) : "rcx", "r11", "memory");
    S[2] = (uint64_t)ret;
    S[3] = r12;
    S[4] = r13;
    S[5] = rbx;
    S[6] = *(volatile uint64_t *)PTR_R;
    raw_syscall(SYS_exit_group, 0, 0, 0, 0);
    for (;;)
        ;
}

/* Waits until the child sleeps (in its pipe read: nothing else it does sleeps). */
static void ptr_await_sleep(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    for (;;) {
        int fd = open(path, O_RDONLY);
        ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
        if (fd >= 0)
            close(fd);
        if (n > 0) {
            buf[n] = '\0';
            char *p = strrchr(buf, ')');
            if (p && p[1] == ' ' && p[2] == 'S')
                return;
        }
        usleep(100);
    }
}

/*
 * One ptrace story (parse_ptr), printed as `ptr` and `<label>=<value>` pairs in the order the
 * tracer learns them. Not printed: RIP, RSP and EFLAGS (where the oracle's code and the model's
 * program stop differ by nature) and FS_BASE's own value (the C library's TLS in the oracle;
 * the tracer sets it and reads its value back, then restores it before the child runs).
 */
static void do_ptr(int index, const struct op *op)
{
    int mode = op->ptr_v[0], inj = op->ptr_v[1], fin = op->ptr_v[2];
    int sync[2], blk[2];
    if (pipe(sync) != 0 || pipe(blk) != 0)
        complain("ptr: pipe: %s", strerror(errno));
    if (mmap((void *)PTR_S, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED ||
        mmap((void *)PTR_R, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
        complain("ptr: mmap: %s", strerror(errno));
    *(uint64_t *)PTR_R = op->ptr_w[1] ^ 0xabcdef;
    mprotect((void *)PTR_R, 4096, PROT_READ);
    pid_t pid = fork();
    if (pid < 0)
        complain("ptr: fork: %s", strerror(errno));
    if (pid == 0)
        ptr_child(op, sync[1], blk[0]);
    char c;
    while (read(sync[0], &c, 1) < 0 && errno == EINTR)
        ;
    strcpy(ptr_line, "ptr");
    int st = 0;
    if (mode != PM_TRACEME) {
        ptr_await_sleep(pid);
        if (mode == PM_ATTACH) {
            ptr_put("attach", raw_syscall(SYS_ptrace, PT_ATTACH, pid, 0, 0));
        } else {
            ptr_put("seize", raw_syscall(SYS_ptrace, PT_SEIZE, pid, 0, 0));
            ptr_put("nohang", raw_syscall(SYS_wait4, pid, (long)&st, WNOHANG, 0));
            ptr_put("interrupt", raw_syscall(SYS_ptrace, PT_INTERRUPT, pid, 0, 0));
        }
    }
    st = 0;
    ptr_put_pid("wait", raw_syscall(SYS_wait4, pid, (long)&st, 0, 0), pid);
    ptr_put("status", (uint32_t)st);
    ptr_put("again", raw_syscall(SYS_ptrace, PT_ATTACH, pid, 0, 0));

    uint64_t word;
    static const struct { const char *label; int off; } peeks[] = {
        { "r12", UR_R12 }, { "r13", UR_R13 }, { "rbx", UR_RBX }, { "rax", UR_RAX }, { "orig_rax", UR_ORIG_RAX },
        { "cs", UR_CS }, { "ss", UR_SS }, { "ds", UR_DS }, { "es", UR_ES }, { "fs", UR_FS }, { "gs", UR_GS },
    };
    for (size_t k = 0; k < sizeof peeks / sizeof peeks[0]; k++) {
        word = 0;
        raw_syscall(SYS_ptrace, PT_PEEKUSR, pid, peeks[k].off, (long)&word);
        ptr_put(peeks[k].label, (int64_t)word);
    }
    word = 0;
    ptr_put("peekuser", raw_syscall(SYS_ptrace, PT_PEEKUSR, pid, op->ptr_v[3], (long)&word));
    ptr_put("word", (int64_t)word);

    uint8_t si[128];
    memset(si, 0, sizeof si);
    ptr_put("getsiginfo", raw_syscall(SYS_ptrace, PT_GETSIGINFO, pid, 0, (long)si));
    ptr_put("si_signo", rd32(si));
    ptr_put("si_code", rd32(si + 8));
    ptr_put_pid("si_pid", (int32_t)rd32(si + 16), pid);

    word = 0;
    ptr_put("peekdata", raw_syscall(SYS_ptrace, PT_PEEKDATA, pid, (long)PTR_R, (long)&word));
    ptr_put("data", (int64_t)word);
    ptr_put("pokedata", raw_syscall(SYS_ptrace, PT_POKEDATA, pid, (long)PTR_R, (long)op->ptr_w[2]));
    ptr_put("mine", (int64_t)*(volatile uint64_t *)PTR_R);
    word = 0;
    raw_syscall(SYS_ptrace, PT_PEEKDATA, pid, (long)PTR_R, (long)&word);
    ptr_put("theirs", (int64_t)word);
    ptr_put("peek_unmapped", raw_syscall(SYS_ptrace, PT_PEEKDATA, pid, (long)PTR_U, (long)&word));
    ptr_put("poke_unmapped", raw_syscall(SYS_ptrace, PT_POKEDATA, pid, (long)PTR_U, 1));

    uint64_t fs_base = 0;
    raw_syscall(SYS_ptrace, PT_PEEKUSR, pid, UR_FS_BASE, (long)&fs_base);
    ptr_put("fs_base_max", raw_syscall(SYS_ptrace, PT_POKEUSR, pid, UR_FS_BASE, 0x7ffffffff000L));
    uint64_t my_base = op->ptr_w[0] & 0x3ffffffff000ULL; /* below TASK_SIZE_MAX */
    ptr_put("fs_base_set", raw_syscall(SYS_ptrace, PT_POKEUSR, pid, UR_FS_BASE, (long)my_base));
    word = 0;
    raw_syscall(SYS_ptrace, PT_PEEKUSR, pid, UR_FS_BASE, (long)&word);
    ptr_put("fs_base", (int64_t)word);
    raw_syscall(SYS_ptrace, PT_POKEUSR, pid, UR_FS_BASE, (long)fs_base);
    ptr_put("poke_ds", raw_syscall(SYS_ptrace, PT_POKEUSR, pid, UR_DS, op->ptr_v[4]));
    word = 0;
    raw_syscall(SYS_ptrace, PT_PEEKUSR, pid, UR_DS, (long)&word);
    ptr_put("ds_now", (int64_t)word);
    raw_syscall(SYS_ptrace, PT_POKEUSR, pid, UR_DS, 0);
    ptr_put("poke_cs", raw_syscall(SYS_ptrace, PT_POKEUSR, pid, UR_CS, 0));
    ptr_put("poke_r13", raw_syscall(SYS_ptrace, PT_POKEUSR, pid, UR_R13, (long)op->ptr_w[2]));
    ptr_put("poke_odd", raw_syscall(SYS_ptrace, PT_POKEUSR, pid, UR_R13 + 1, 0));

    uint8_t regs[UR_SIZE];
    memset(regs, 0, sizeof regs);
    ptr_put("getregs", raw_syscall(SYS_ptrace, PT_GETREGS, pid, 0, (long)regs));
    static const struct { const char *label; int off; } got[] = {
        { "g_r12", UR_R12 }, { "g_r13", UR_R13 }, { "g_rbx", UR_RBX }, { "g_rax", UR_RAX }, { "g_orig_rax", UR_ORIG_RAX },
        { "g_cs", UR_CS }, { "g_ss", UR_SS }, { "g_ds", UR_DS }, { "g_es", UR_ES }, { "g_fs", UR_FS }, { "g_gs", UR_GS },
    };
    for (size_t k = 0; k < sizeof got / sizeof got[0]; k++)
        ptr_put(got[k].label, (int64_t)rd64(regs + got[k].off));
    uint64_t cs = rd64(regs + UR_CS);
    memset(regs + UR_CS, 0, 8);
    ptr_put("setregs_cs0", raw_syscall(SYS_ptrace, PT_SETREGS, pid, 0, (long)regs));
    memcpy(regs + UR_CS, &cs, 8);
    uint64_t r12 = op->ptr_w[2] ^ 0x5a;
    memcpy(regs + UR_R12, &r12, 8);
    ptr_put("setregs", raw_syscall(SYS_ptrace, PT_SETREGS, pid, 0, (long)regs));
    ptr_put("bad_request", raw_syscall(SYS_ptrace, 0x4299, pid, 0, 0));
    ptr_put("cont_65", raw_syscall(SYS_ptrace, PT_CONT, pid, 0, 65));

    long r = fin == PF_CONT ? raw_syscall(SYS_ptrace, PT_CONT, pid, 0, inj)
           : fin == PF_DETACH ? raw_syscall(SYS_ptrace, PT_DETACH, pid, 0, inj)
           : raw_syscall(SYS_ptrace, PT_KILL, pid, 0, 0);
    ptr_put(ptr_fin_names[fin], r);
    ptr_put("running", raw_syscall(SYS_ptrace, PT_PEEKUSR, pid, 0, (long)&word));
    if (mode != PM_TRACEME)
        raw_syscall(SYS_write, blk[1], (long)&c, 1, 0);
    st = 0;
    ptr_put_pid("reaped", raw_syscall(SYS_wait4, pid, (long)&st, 0, 0), pid);
    ptr_put("exit", (uint32_t)st);
    static const char *const seen[] = { "h_signo", "traceme", "c_ret", "c_r12", "c_r13", "c_rbx", "c_ro" };
    for (int k = 0; k < 7; k++)
        ptr_put(seen[k], (int64_t)((volatile uint64_t *)PTR_S)[k]);
    munmap((void *)PTR_S, 4096);
    munmap((void *)PTR_R, 4096);
    close(sync[0]);
    close(sync[1]);
    close(blk[0]);
    close(blk[1]);
    emit(index, "%s", ptr_line);
}

static void run(int i, int stop)
{
    while (i < stop) {
        const struct op *op = &ops[i];
        uint64_t addr = 0, value = op->value;
        if (!resolve(&op->addr, &addr)) {
            emit(i, "skip");
            i++;
            continue;
        }
        switch (op->kind) {
        case OP_MMAP: {
            int fd = (int)op->fd.value;
            if (op->fd.kind == ARG_FD) {
                if (!fd_bound[op->fd.handle]) {
                    emit(i, "skip");
                    break;
                }
                fd = fd_handle[op->fd.handle];
            }
            void *r = mmap((void *)(uintptr_t)addr, op->len, (int)op->prot, (int)op->flags, fd, (off_t)op->off);
            if (r == MAP_FAILED) {
                emit(i, "err %d", errno);
            } else {
                uint64_t base = (uint64_t)(uintptr_t)r;
                handle_base[op->handle] = base;
                handle_bound[op->handle] = true;
                char where[40];
                format_addr(where, sizeof where, base);
                emit(i, "ok %s", where[0] == 'X' ? "other" : where);
            }
            break;
        }
        case OP_MUNMAP:
        case OP_MPROTECT: {
            int r = op->kind == OP_MUNMAP
                ? munmap((void *)(uintptr_t)addr, op->len)
                : mprotect((void *)(uintptr_t)addr, op->len, (int)op->prot);
            if (r == 0)
                emit(i, "ok 0");
            else
                emit(i, "err %d", errno);
            break;
        }
        case OP_LOAD:
        case OP_STORE:
            if (access_memory(addr, op->size, op->kind == OP_STORE, &value)) {
                emit(i, "ok %" PRIx64, op->kind == OP_STORE ? 0 : value);
            } else {
                char where[32] = "=";
                if (fault_addr != addr)
                    format_addr(where, sizeof where, fault_addr);
                emit(i, "sig %d %d %s", fault_signo, fault_code, where);
            }
            break;
        case OP_GETPID:
            emit(i, "ok %s", (pid_t)syscall(SYS_getpid) == start_pid ? "same" : "changed");
            break;
        case OP_FORK: {
            pid_t pid = fork_gated();
            if (pid == 0) { /* child: run the block, ending at its `end` */
                stop = op->match;
                break;
            }
            if (pid < 0)
                emit(i, "err %d", errno);
            else
                emit(i, "ok child");
            i = op->match; /* parent: continue after the block's `end` */
            break;
        }
        case OP_WAIT: {
            int status;
            release_children();
            pid_t r = wait4(-1, &status, 0, NULL);
            if (r < 0)
                emit(i, "err %d", errno);
            else if (WIFEXITED(status))
                emit(i, "ok exited %d", WEXITSTATUS(status));
            else
                emit(i, "ok signaled %d", WTERMSIG(status));
            break;
        }
        case OP_EXIT:
            _exit(op->status);
        case OP_EXECVE:
            exec_self(i + 1);
            emit(i, "err %d", errno);
            break;
        case OP_CALL:
            do_call(i, op);
            break;
        case OP_SIG:
            do_sig(i, op, addr);
            break;
        case OP_PTR:
            do_ptr(i, op);
            break;
        case OP_I80:
            do_i80(i, op);
            break;
        case OP_END: /* only reached at a block's stop, never inside the loop */
            break;
        }
        i++;
    }
    _exit(0);
}

/* Fails with status 3 unless [ARENA, ARENA + ARENA_SIZE) is entirely unmapped. */
static void check_arena(void)
{
    void *want = (void *)(uintptr_t)ARENA;
    void *r = mmap(want, ARENA_SIZE, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    if (r == want) {
        munmap(r, ARENA_SIZE);
        return;
    }
    int e = errno;
    if (r != MAP_FAILED) /* a kernel without MAP_FIXED_NOREPLACE treated it as a hint */
        munmap(r, ARENA_SIZE);
    write_all(OUT_FD, "fatal arena-busy\n", 17);
    complain("oracle: the arena 0x%" PRIx64 "+0x%" PRIx64 " is not free (%s)\n",
            ARENA, ARENA_SIZE, r == MAP_FAILED ? strerror(e) : "mapped elsewhere");
    exit(3);
}

/* Parses the `--resume` gate list ("-" or comma-separated descriptors) into gates[]. */
static void parse_gates(const char *s)
{
    if (strcmp(s, "-") == 0)
        return;
    for (;;) {
        if (ngates == MAX_GATES)
            exit(2);
        gates[ngates++] = (int)strtol(s, (char **)&s, 10);
        if (*s != ',')
            break;
        s++;
    }
}

/*
 * A fresh run's descriptors and process state: the output and messages moved to OUT_FD and
 * ERR_FD, every other descriptor closed, 0, 1 and 2 opened on /dev/null for reading and
 * writing; RLIMIT_NOFILE's soft limit 1024, SIGPIPE ignored, umask 022 (inherited by forks,
 * and kept by execve, so a resumed image needs none of it).
 */
static void setup_process(void)
{
    if (dup2(1, OUT_FD) != OUT_FD || dup2(2, ERR_FD) != ERR_FD)
        exit(2);
    err_fd = ERR_FD;
    if (syscall(SYS_close_range, 3, OUT_FD - 1, 0) != 0) {
        for (int fd = 3; fd < OUT_FD; fd++)
            close(fd);
    }
    int null = open("/dev/null", O_RDWR);
    if (null < 0) {
        complain("oracle: cannot open /dev/null: %s\n", strerror(errno));
        exit(2);
    }
    for (int fd = 0; fd < 3; fd++)
        if (fd != null && dup2(null, fd) != fd)
            exit(2);
    if (null > 2)
        close(null);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max >= NOFILE) {
        rl.rlim_cur = NOFILE;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    rl.rlim_cur = rl.rlim_max = NPROC;
    if (setrlimit(RLIMIT_NPROC, &rl) != 0) {
        complain("oracle: cannot set RLIMIT_NPROC: %s\n", strerror(errno));
        exit(2);
    }
    signal(SIGPIPE, SIG_IGN);
    umask(022);
}

/* Maps and fills the write buffer (each image: execve replaced the last one's). */
static void map_safe_buffer(void)
{
    uint8_t *p = mmap((void *)(uintptr_t)(ARENA + SAFE_OFF), SAFE_LEN, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (p == MAP_FAILED) {
        complain("oracle: cannot map the write buffer: %s\n", strerror(errno));
        exit(2);
    }
    for (int i = 0; i < SAFE_PATTERN; i++)
        p[i] = (uint8_t)(i * 7 + 1);
}

int main(int argc, char **argv)
{
    /* Every allocation by mmap, never the program break: the sequence's brk is its own. */
    mallopt(M_MMAP_THRESHOLD, 0);
    int resume = 0;
    bool fresh = argc == 2;
    if (fresh) {
        strcpy(who, "p");
        input_path = argv[1];
    } else if (argc == 6 && strcmp(argv[1], "--resume") == 0 && strlen(argv[3]) < sizeof who) {
        resume = atoi(argv[2]);
        strcpy(who, argv[3]);
        parse_gates(argv[4]);
        input_path = argv[5];
    } else {
        complain("usage: %s <sequence-file | ->\n", argv[0]);
        return 2;
    }
    input_is_stdin = strcmp(input_path, "-") == 0;
    if (fresh && input_is_stdin) { /* stdin is about to become /dev/null: take a copy */
        read_input();
        input_is_stdin = true;
        setup_process();
    } else {
        if (fresh)
            setup_process();
        else
            err_fd = ERR_FD;
        read_input();
    }
    parse_sequence();
    if (resume < 0 || resume > nops) {
        complain("oracle: resume index %d out of range\n", resume);
        return 2;
    }
    if (fresh)
        check_arena();
    map_safe_buffer();
    brk_base = (uint64_t)syscall(SYS_brk, 0);
    install_fault_handler();
    start_pid = (pid_t)syscall(SYS_getpid);
    run(resume, resume == nops ? nops : ops[resume].block_end);
    return 0;
}
