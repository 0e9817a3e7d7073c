/*
 * isolab host-kernel oracle.
 *
 * Executes a "sequence" (one operation per line: mmap, munmap, mprotect, load, store,
 * getpid, fork ... end, wait, exit, execve) on the real Linux kernel and prints one
 * result line per operation, `<who> <index> <result>`, exactly as the isolab model
 * prints them for the same sequence, so that the two listings can be compared.
 *
 * Usage:  oracle <file | ->
 *         oracle --resume <index> <who> <gates> <file>   (used by the execve operation)
 *
 * Exit status: 0 when the sequence ran (operations may have failed), 2 on a malformed
 * sequence or bad arguments (message on stderr), 3 when the arena is already in use,
 * or the status given to an `exit <n>` operation run by the initial process.
 *
 * Every address the sequence names is in the arena [ARENA, ARENA + ARENA_SIZE), in a
 * region bound to a handle by an earlier mmap, or an absolute address.  Output goes out
 * with write(2), one line per call, so nothing is buffered across fork or execve.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define ARENA ((uint64_t)0x200000000000)
#define ARENA_SIZE ((uint64_t)0x4000000)
#define MAX_HANDLES 256
#define MAX_DEPTH 200 /* deepest fork nesting, so that `who` stays short */

enum op_kind { OP_MMAP, OP_MUNMAP, OP_MPROTECT, OP_LOAD, OP_STORE, OP_GETPID,
               OP_FORK, OP_END, OP_WAIT, OP_EXIT, OP_EXECVE };

/* An address expression: absolute, arena-relative, or relative to a handle's base. */
enum addr_kind { ADDR_ABSOLUTE, ADDR_ARENA, ADDR_HANDLE };
struct addr_expr {
    enum addr_kind kind;
    int handle;
    uint64_t offset;
};

struct op {
    enum op_kind kind;
    struct addr_expr addr; /* mmap hint, munmap, mprotect, load, store */
    int handle;            /* mmap: the handle to bind */
    uint64_t len;          /* mmap, munmap, mprotect */
    uint64_t prot, flags;  /* mmap, mprotect (prot only) */
    int size;              /* load, store: 1, 2, 4 or 8 */
    uint64_t value;        /* store */
    int status;            /* exit */
    int match;             /* fork: index of its `end` */
    int block_end;         /* index of the `end` closing the block this line is in, or nops */
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

/* Write ends of the gate pipes of children forked but not yet released by a `wait`. */
static int *gates;
static int ngates, gates_cap;

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
    char line[512];
    int n = snprintf(line, sizeof line, "%s %d ", who, index);
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    line[n++] = '\n';
    write_all(1, line, (size_t)n);
}

/* Reports a malformed sequence (index is 0-based) on stderr and exits with status 2. */
static void malformed(int index, const char *why)
{
    fprintf(stderr, "oracle: malformed line %d (index %d): %s\n", index + 1, index, why);
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

/* Parses one line (a NUL-terminated string) into *op; exits via malformed() on error. */
static void parse_line(int index, char *line, struct op *op)
{
    char *tok[8];
    int ntok = 0;
    for (char *p = line;; p++) {
        if (ntok == 8)
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

    static const struct { const char *name; enum op_kind kind; int ntok; } table[] = {
        { "mmap", OP_MMAP, 6 },   { "munmap", OP_MUNMAP, 3 }, { "mprotect", OP_MPROTECT, 4 },
        { "load", OP_LOAD, 3 },   { "store", OP_STORE, 4 },   { "getpid", OP_GETPID, 1 },
        { "fork", OP_FORK, 1 },   { "end", OP_END, 1 },       { "wait", OP_WAIT, 1 },
        { "exit", OP_EXIT, 2 },   { "execve", OP_EXECVE, 1 },
    };
    size_t t = 0;
    while (t < sizeof table / sizeof table[0] && strcmp(tok[0], table[t].name) != 0)
        t++;
    if (t == sizeof table / sizeof table[0])
        malformed(index, "unknown operation");
    if (ntok != table[t].ntok)
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
        fprintf(stderr, "oracle: cannot open %s: %s\n", input_path, strerror(errno));
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
            fprintf(stderr, "oracle: cannot read %s: %s\n", input_path, strerror(errno));
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
    default:
        *out = a->offset;
        return true;
    }
}

/* Formats an address as `A+<hex>` if it lies in the arena, else `X<hex>`. */
static void format_addr(char *buf, size_t n, uint64_t addr)
{
    if (addr - ARENA < ARENA_SIZE)
        snprintf(buf, n, "A+%" PRIx64, addr - ARENA);
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
    if (ngates == gates_cap) {
        gates_cap = gates_cap ? 2 * gates_cap : 8;
        gates = realloc(gates, sizeof *gates * (size_t)gates_cap);
    }
    gates[ngates++] = gate[1];
    return pid;
}

/* Replaces this process with a fresh image of the oracle that resumes the sequence at
 * line `resume`, keeping `who` and the pending gates. Returns only on failure. */
static void exec_self(int resume)
{
    if (input_is_stdin) { /* the new image cannot reread stdin: hand it a memfd copy */
        int fd = memfd_create("isolab-sequence", 0);
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
    char *gatelist = malloc(12 * (size_t)ngates + 2);
    strcpy(gatelist, ngates ? "" : "-");
    for (int i = 0; i < ngates; i++)
        sprintf(gatelist + strlen(gatelist), i ? ",%d" : "%d", gates[i]);
    char *argv[] = { "isolab-oracle", "--resume", index, who, gatelist, (char *)input_path, NULL };
    extern char **environ;
    execve("/proc/self/exe", argv, environ);
    free(gatelist);
}

/* Runs lines [i, stop) in this process, following forks into child blocks, then exits 0. */
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
            void *r = mmap((void *)(uintptr_t)addr, op->len, (int)op->prot, (int)op->flags, -1, 0);
            if (r == MAP_FAILED) {
                emit(i, "err %d", errno);
            } else {
                uint64_t base = (uint64_t)(uintptr_t)r;
                handle_base[op->handle] = base;
                handle_bound[op->handle] = true;
                if (base - ARENA < ARENA_SIZE)
                    emit(i, "ok A+%" PRIx64, base - ARENA);
                else
                    emit(i, "ok other");
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
    write_all(1, "fatal arena-busy\n", 17);
    fprintf(stderr, "oracle: the arena 0x%" PRIx64 "+0x%" PRIx64 " is not free (%s)\n",
            ARENA, ARENA_SIZE, r == MAP_FAILED ? strerror(e) : "mapped elsewhere");
    exit(3);
}

/* Parses the `--resume` gate list ("-" or comma-separated descriptors) into gates[]. */
static void parse_gates(const char *s)
{
    if (strcmp(s, "-") == 0)
        return;
    for (;;) {
        if (ngates == gates_cap) {
            gates_cap = gates_cap ? 2 * gates_cap : 8;
            gates = realloc(gates, sizeof *gates * (size_t)gates_cap);
        }
        gates[ngates++] = (int)strtol(s, (char **)&s, 10);
        if (*s != ',')
            break;
        s++;
    }
}

int main(int argc, char **argv)
{
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
        fprintf(stderr, "usage: %s <sequence-file | ->\n", argv[0]);
        return 2;
    }
    input_is_stdin = strcmp(input_path, "-") == 0;
    read_input();
    parse_sequence();
    if (resume < 0 || resume > nops) {
        fprintf(stderr, "oracle: resume index %d out of range\n", resume);
        return 2;
    }
    if (fresh)
        check_arena();
    install_fault_handler();
    start_pid = (pid_t)syscall(SYS_getpid);
    run(resume, resume == nops ? nops : ops[resume].block_end);
    return 0;
}
