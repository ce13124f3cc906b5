/*
 * probe — ask a container what it sees.
 *
 * Skiff's tests run this program inside containers (it is installed as /probe
 * in every sample rootfs) instead of parsing the output of shell tools, whose
 * format differs between busybox, coreutils and procps. Each verb answers one
 * question ("what is my hostname?", "which namespaces am I in?", "which
 * capabilities do I hold?") or performs one action ("exit with status 3",
 * "leave an orphan behind"), so a test can compare the answer with what the
 * lesson or runtime was supposed to set up.
 *
 * Output contract, so tests can parse it without guessing:
 *   - answers go to stdout, one item per line, fields separated by one space;
 *   - lists are sorted (by name, or numerically by pid), so output is stable;
 *   - a failure prints "probe: VERB ARG: strerror" (or another reason) to stderr
 *     and exits 1;
 *   - an unknown verb or bad arguments print a usage line and exit 2.
 *
 * Build: gcc -static -O2 -Wall -Wextra -Werror probe.c -o probe
 * It is static so that it runs in any rootfs, even one without a libc, and it
 * avoids glibc functions that need NSS at run time (getpwnam, getaddrinfo...),
 * which cannot work reliably from a static binary.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <limits.h>
#include <linux/magic.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/ipc.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The verb being run, for error messages. */
static const char *g_verb = "";

/* ---------------------------------------------------------------- helpers */

static void usage(void);

/* Report errno for WHAT ("probe: VERB WHAT: strerror") and exit 1. */
static void __attribute__((noreturn)) fail(const char *what)
{
    int err = errno;
    fflush(stdout);
    fprintf(stderr, "probe: %s %s: %s\n", g_verb, what, strerror(err));
    exit(1);
}

/* Report a usage mistake (bad argument) and exit 2. */
static void __attribute__((noreturn, format(printf, 1, 2))) bad_usage(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "probe: %s: ", g_verb);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    usage();
    exit(2);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        fail("malloc");
    return q;
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (d == NULL)
        fail("malloc");
    return d;
}

/* A growable array of strings, used to sort directory listings. */
struct strlist {
    char **items;
    size_t len, cap;
};

static void strlist_push(struct strlist *l, const char *s)
{
    if (l->len == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->items = xrealloc(l->items, l->cap * sizeof(*l->items));
    }
    l->items[l->len++] = xstrdup(s);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void strlist_sort(struct strlist *l)
{
    qsort(l->items, l->len, sizeof(*l->items), cmp_str);
}

/* Names in directory PATH except . and .., sorted bytewise. */
static struct strlist list_dir(const char *path)
{
    struct strlist l = {0};
    DIR *d = opendir(path);
    if (d == NULL)
        fail(path);
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (e == NULL) {
            if (errno != 0)
                fail(path);
            break;
        }
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        strlist_push(&l, e->d_name);
    }
    closedir(d);
    strlist_sort(&l);
    return l;
}

/* True if S is a non-empty string of decimal digits (a /proc pid entry). */
static int is_number(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return 0;
    return 1;
}

/* Pids of the numeric entries of /proc, sorted ascending. Sets *n. */
static long *list_pids(size_t *n)
{
    /* An empty /proc directory (procfs not mounted) would otherwise look like "no processes". */
    struct statfs sfs;
    if (statfs("/proc", &sfs) != 0)
        fail("/proc");
    if (sfs.f_type != PROC_SUPER_MAGIC) {
        fflush(stdout);
        fprintf(stderr, "probe: %s /proc: not a proc filesystem (is /proc mounted?)\n", g_verb);
        exit(1);
    }
    struct strlist names = list_dir("/proc");
    long *pids = xrealloc(NULL, names.len * sizeof(*pids));
    size_t count = 0;
    for (size_t i = 0; i < names.len; i++) {
        if (is_number(names.items[i]))
            pids[count++] = strtol(names.items[i], NULL, 10);
        free(names.items[i]);
    }
    free(names.items);
    /* Insertion sort is plenty for the few processes a container has. */
    for (size_t i = 1; i < count; i++) {
        long v = pids[i];
        size_t j = i;
        for (; j > 0 && pids[j - 1] > v; j--)
            pids[j] = pids[j - 1];
        pids[j] = v;
    }
    *n = count;
    return pids;
}

/*
 * Read a whole (small, usually /proc) file into a NUL-terminated buffer.
 * Returns NULL with errno set on failure; the caller decides whether that is
 * fatal (it is not when a process vanished while we were listing /proc).
 */
static char *read_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t len = 0, cap = 4096;
    char *buf = xrealloc(NULL, cap);
    for (;;) {
        if (len + 1 >= cap) {
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int err = errno;
            close(fd);
            free(buf);
            errno = err;
            return NULL;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    return buf;
}

/* Write all of BUF to FD, retrying short writes and EINTR. Returns -1 on error. */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Split LINE in place on blanks into at most MAX fields; returns the count. */
static int split_fields(char *line, char **fields, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(line, " \t\n", &save); tok && n < max;
         tok = strtok_r(NULL, " \t\n", &save))
        fields[n++] = tok;
    return n;
}

/* Parse a non-negative decimal integer argument, or exit 2. */
static unsigned long long parse_number(const char *s, unsigned long long max)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (s[0] == '\0' || s[0] == '-' || *end != '\0' || errno != 0 || v > max)
        bad_usage("not a number in range 0..%llu: '%s'", max, s);
    return v;
}

/* ------------------------------------------------------------------ verbs */

/* hostname: the UTS nodename, as set by sethostname in the container. */
static int verb_hostname(char **argv)
{
    (void)argv;
    struct utsname u;
    if (uname(&u) != 0)
        fail("uname");
    printf("%s\n", u.nodename);
    return 0;
}

/* pid: our pid as seen from our own pid namespace (1 if we are its init). */
static int verb_pid(char **argv)
{
    (void)argv;
    printf("%ld\n", (long)getpid());
    return 0;
}

/* ppid: our parent's pid; 0 when the parent is outside our pid namespace. */
static int verb_ppid(char **argv)
{
    (void)argv;
    printf("%ld\n", (long)getppid());
    return 0;
}

/* ns: "NAME INODE" per namespace; equal inodes mean the same namespace. */
static int verb_ns(char **argv)
{
    (void)argv;
    const char *dir = "/proc/self/ns";
    struct strlist names = list_dir(dir);
    for (size_t i = 0; i < names.len; i++) {
        char path[PATH_MAX];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, names.items[i]);
        /* stat follows the magic link to the nsfs inode, which identifies the namespace. */
        if (stat(path, &st) != 0)
            fail(path);
        printf("%s %llu\n", names.items[i], (unsigned long long)st.st_ino);
    }
    return 0;
}

/* Print one id map file as "PREFIX INSIDE OUTSIDE COUNT" lines. */
static void print_id_map(const char *path, const char *prefix)
{
    char *buf = read_file(path);
    if (buf == NULL)
        fail(path);
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        unsigned long long inside, outside, count;
        if (sscanf(line, "%llu %llu %llu", &inside, &outside, &count) == 3)
            printf("%s %llu %llu %llu\n", prefix, inside, outside, count);
    }
    free(buf);
}

/* idmap: the user namespace's uid_map then gid_map, one "uid|gid A B C" per line. */
static int verb_idmap(char **argv)
{
    (void)argv;
    print_id_map("/proc/self/uid_map", "uid");
    print_id_map("/proc/self/gid_map", "gid");
    return 0;
}

/* status: capability sets, seccomp mode, no_new_privs and ids from /proc/self/status. */
static int verb_status(char **argv)
{
    (void)argv;
    static const char *const keys[] = {
        "CapEff", "CapBnd", "CapPrm", "CapInh", "CapAmb", "Seccomp", "NoNewPrivs", "Uid", "Gid",
    };
    const char *path = "/proc/self/status";
    char *buf = read_file(path);
    if (buf == NULL)
        fail(path);
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        size_t klen = strlen(keys[k]);
        for (char *line = buf; line && *line; ) {
            char *next = strchr(line, '\n');
            size_t llen = next ? (size_t)(next - line) : strlen(line);
            if (llen > klen && strncmp(line, keys[k], klen) == 0 && line[klen] == ':') {
                /* Copy the value collapsing runs of blanks (Uid/Gid use tabs) to one space. */
                printf("%s:", keys[k]);
                int in_blank = 1;
                for (size_t i = klen + 1; i < llen; i++) {
                    if (line[i] == ' ' || line[i] == '\t') {
                        in_blank = 1;
                        continue;
                    }
                    if (in_blank)
                        putchar(' ');
                    in_blank = 0;
                    putchar(line[i]);
                }
                putchar('\n');
                break;
            }
            line = next ? next + 1 : NULL;
        }
    }
    free(buf);
    return 0;
}

/* mounts: "MOUNTPOINT FSTYPE OPTIONS" per line of /proc/self/mountinfo (raw, escapes kept). */
static int verb_mounts(char **argv)
{
    (void)argv;
    const char *path = "/proc/self/mountinfo";
    FILE *f = fopen(path, "re");
    if (f == NULL)
        fail(path);
    char *line = NULL;
    size_t cap = 0;
    errno = 0;
    while (getline(&line, &cap, f) >= 0) {
        /*
         * Fields (proc(5)): id parent maj:min root mountpoint options [optional...] - fstype
         * source superoptions. The optional fields vary, so fstype is the one after "-".
         */
        char *fields[64];
        int n = split_fields(line, fields, 64);
        if (n < 7)
            continue;
        const char *fstype = "?";
        for (int i = 6; i + 1 < n; i++) {
            if (strcmp(fields[i], "-") == 0) {
                fstype = fields[i + 1];
                break;
            }
        }
        printf("%s %s %s\n", fields[4], fstype, fields[5]);
        errno = 0;
    }
    if (ferror(f))
        fail(path);
    free(line);
    fclose(f);
    return 0;
}

/* ls PATH: sorted directory entries, one per line. */
static int verb_ls(char **argv)
{
    struct strlist names = list_dir(argv[0]);
    for (size_t i = 0; i < names.len; i++)
        printf("%s\n", names.items[i]);
    return 0;
}

/* cat PATH: copy the file to stdout unchanged. */
static int verb_cat(char **argv)
{
    int fd = open(argv[0], O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fail(argv[0]);
    char buf[65536];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            fail(argv[0]);
        }
        if (r == 0)
            break;
        if (write_all(STDOUT_FILENO, buf, (size_t)r) != 0)
            fail("stdout");
    }
    close(fd);
    return 0;
}

/* exists PATH: "yes" and exit 0 if lstat succeeds, else "no" and exit 1. */
static int verb_exists(char **argv)
{
    struct stat st;
    if (lstat(argv[0], &st) == 0) {
        printf("yes\n");
        return 0;
    }
    printf("no\n");
    return 1;
}

/* ps: "PID COMM" for every process visible in /proc, sorted by pid. */
static int verb_ps(char **argv)
{
    (void)argv;
    size_t n;
    long *pids = list_pids(&n);
    for (size_t i = 0; i < n; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%ld/comm", pids[i]);
        char *comm = read_file(path);
        if (comm == NULL)
            continue; /* the process exited while we listed /proc */
        size_t len = strlen(comm);
        while (len > 0 && isspace((unsigned char)comm[len - 1]))
            comm[--len] = '\0';
        printf("%ld %s\n", pids[i], comm);
        free(comm);
    }
    free(pids);
    return 0;
}

/* links: "NAME up|down" per network interface of our network namespace, sorted by name. */
static int verb_links(char **argv)
{
    (void)argv;
    /* if_nameindex asks the kernel over netlink, so it sees our netns even if /sys is the host's. */
    struct if_nameindex *ifs = if_nameindex();
    if (ifs == NULL)
        fail("if_nameindex");
    struct strlist names = {0};
    for (struct if_nameindex *p = ifs; p->if_index != 0 && p->if_name != NULL; p++)
        strlist_push(&names, p->if_name);
    if_freenameindex(ifs);
    strlist_sort(&names);

    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0)
        fail("socket");
    for (size_t i = 0; i < names.len; i++) {
        struct ifreq ifr;
        memset(&ifr, 0, sizeof(ifr));
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", names.items[i]);
        if (ioctl(sock, SIOCGIFFLAGS, &ifr) != 0) {
            if (errno == ENODEV)
                continue; /* the interface went away meanwhile */
            fail(names.items[i]);
        }
        printf("%s %s\n", names.items[i], (ifr.ifr_flags & IFF_UP) ? "up" : "down");
    }
    close(sock);
    return 0;
}

/*
 * Call ROW for each line of the /proc table at PATH after its header line (a row of column
 * names) that splits into exactly COUNT fields.
 */
static void for_each_table_row(const char *path, int count, void (*row)(char **fields))
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        fail(path);
    char *line = NULL;
    size_t cap = 0;
    int header = 1;
    while (getline(&line, &cap, f) >= 0) {
        if (header) {
            header = 0;
            continue;
        }
        char *fields[8];
        if (split_fields(line, fields, count) == count)
            row(fields);
    }
    if (ferror(f))
        fail(path);
    free(line);
    fclose(f);
}

/* One /proc/sysvipc/shm row ("key shmid perms size cpid ..."): "KEY SHMID SIZE". */
static void print_shm_row(char **fields)
{
    printf("%s %s %s\n", fields[0], fields[1], fields[3]);
}

/* shm: "KEY SHMID SIZE" per SysV shared memory segment of our IPC namespace. */
static int verb_shm(char **argv)
{
    (void)argv;
    for_each_table_row("/proc/sysvipc/shm", 4, print_shm_row);
    return 0;
}

/* shm-create SIZE: create a private segment, print its id; it outlives us. */
static int verb_shm_create(char **argv)
{
    size_t size = (size_t)parse_number(argv[0], SIZE_MAX);
    int id = shmget(IPC_PRIVATE, size, IPC_CREAT | 0600);
    if (id < 0)
        fail(argv[0]);
    printf("%d\n", id);
    return 0;
}

/* shm-remove ID: remove the segment with that id (IPC_RMID). */
static int verb_shm_remove(char **argv)
{
    int id = (int)parse_number(argv[0], INT_MAX);
    if (shmctl(id, IPC_RMID, NULL) != 0)
        fail(argv[0]);
    return 0;
}

/* zombies: how many visible processes are in state Z (exited, not yet reaped). */
static int verb_zombies(char **argv)
{
    (void)argv;
    size_t n;
    long *pids = list_pids(&n);
    long zombies = 0;
    for (size_t i = 0; i < n; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%ld/stat", pids[i]);
        char *stat = read_file(path);
        if (stat == NULL)
            continue; /* reaped while we listed /proc */
        /* "pid (comm) S ...": comm may hold spaces and ')', so the state follows the LAST ')'. */
        char *close_paren = strrchr(stat, ')');
        if (close_paren && close_paren[1] == ' ' && close_paren[2] == 'Z')
            zombies++;
        free(stat);
    }
    free(pids);
    printf("%ld\n", zombies);
    return 0;
}

/* Sleep for SECONDS (fractions allowed), resuming after signal handlers. */
static void sleep_seconds(double seconds)
{
    struct timespec left;
    left.tv_sec = (time_t)seconds;
    left.tv_nsec = (long)((seconds - (double)left.tv_sec) * 1e9);
    while (nanosleep(&left, &left) != 0) {
        if (errno != EINTR)
            fail("nanosleep");
    }
}

/*
 * orphan: leave a grandchild behind for the namespace's init to reap; print its pid.
 * We fork child C, C forks grandchild G and exits at once, G sleeps 200 ms and exits.
 * We wait for C only, so G is reparented to PID 1 (or a subreaper), which must reap it.
 */
static int verb_orphan(char **argv)
{
    (void)argv;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        fail("pipe");
    fflush(stdout); /* do not let the children inherit buffered output */
    pid_t c = fork();
    if (c < 0)
        fail("fork");
    if (c == 0) {
        close(fds[0]);
        pid_t g = fork();
        if (g == 0) {
            /*
             * Close every inherited fd, stdout included: a test reading our
             * output until EOF must not wait 200 ms for the orphan.
             */
            if (close_range(0, ~0U, 0) != 0) {
                for (int fd = 0; fd < 3; fd++)
                    close(fd);
                close(fds[1]);
            }
            struct timespec t = {0, 200 * 1000 * 1000};
            while (nanosleep(&t, &t) != 0 && errno == EINTR)
                ;
            _exit(0);
        }
        long gpid = (long)g; /* -1 tells the parent that fork failed */
        if (write_all(fds[1], (const char *)&gpid, sizeof(gpid)) != 0)
            _exit(1);
        _exit(g < 0 ? 1 : 0);
    }
    close(fds[1]);
    long gpid = -1;
    ssize_t r;
    do
        r = read(fds[0], &gpid, sizeof(gpid));
    while (r < 0 && errno == EINTR);
    close(fds[0]);
    int status;
    while (waitpid(c, &status, 0) < 0) {
        if (errno != EINTR)
            fail("waitpid");
    }
    if (r != (ssize_t)sizeof(gpid) || gpid < 0) {
        errno = EAGAIN;
        fail("fork grandchild");
    }
    printf("%ld\n", gpid);
    return 0;
}

/* sleep SECONDS: sleep (fractions allowed), restarting after EINTR; for signal tests. */
static int verb_sleep(char **argv)
{
    char *end;
    errno = 0;
    double s = strtod(argv[0], &end);
    if (argv[0][0] == '\0' || *end != '\0' || errno != 0 || !(s >= 0) || s > 1e9)
        bad_usage("not a number of seconds: '%s'", argv[0]);
    sleep_seconds(s);
    return 0;
}

/* true: exit 0 without printing; for benchmarks (the cost of starting a container). */
static int verb_true(char **argv)
{
    (void)argv;
    return 0;
}

/* exit N: exit with status N (0..255). */
static int verb_exit(char **argv)
{
    return (int)parse_number(argv[0], 255);
}

/* kill-self SIGNUM: raise the signal with its default action (normally fatal). */
static int verb_kill_self(char **argv)
{
    int sig = (int)parse_number(argv[0], 64);
    if (sig == 0)
        bad_usage("signal 0 is not a signal");
    fflush(stdout);
    /* SIGKILL and SIGSTOP cannot have handlers, so there is nothing to reset for them. */
    if (sig != SIGKILL && sig != SIGSTOP && signal(sig, SIG_DFL) == SIG_ERR)
        fail(argv[0]);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL); /* a blocked signal would stay pending */
    if (raise(sig) != 0)
        fail(argv[0]);
    /*
     * Still alive: the default action is to ignore or stop-then-continue, or we are a
     * pid namespace's init, which the kernel protects from signals it has no handler for.
     */
    fprintf(stderr, "probe: kill-self %s: still alive after raise\n", argv[0]);
    return 1;
}

/* uid: real and effective user and group ids. */
static int verb_uid(char **argv)
{
    (void)argv;
    printf("uid=%lu euid=%lu gid=%lu egid=%lu\n", (unsigned long)getuid(),
           (unsigned long)geteuid(), (unsigned long)getgid(), (unsigned long)getegid());
    return 0;
}

/* write PATH TEXT: create/truncate PATH and write TEXT plus a newline (fails on read-only mounts). */
static int verb_write(char **argv)
{
    int fd = open(argv[0], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        fail(argv[0]);
    if (write_all(fd, argv[1], strlen(argv[1])) != 0 || write_all(fd, "\n", 1) != 0)
        fail(argv[0]);
    if (close(fd) != 0)
        fail(argv[0]);
    return 0;
}

/* ------------------------------------------------- cgroup lesson: load */

#define MIB (1024 * 1024)

/*
 * memhog MB: allocate MB MiB in 1 MiB chunks, writing a byte to every 4096 so each page is
 * really charged to the memory cgroup; print "allocated MB MiB". Under a memory limit the
 * kernel OOM-kills us with SIGKILL first; a failed malloc (e.g. under RLIMIT_AS) exits 1.
 */
static int verb_memhog(char **argv)
{
    unsigned long long mb = parse_number(argv[0], 1048576);
    for (unsigned long long i = 0; i < mb; i++) {
        /* volatile: the compiler may not drop the stores, and so not the allocation either. */
        volatile char *chunk = malloc(MIB);
        if (chunk == NULL) {
            fflush(stdout);
            fprintf(stderr, "probe: memhog: allocation failed after %llu MiB\n", i);
            return 1;
        }
        for (size_t off = 0; off < MIB; off += 4096)
            chunk[off] = 1;
        /* Never freed: the memory stays charged until we exit. */
    }
    printf("allocated %llu MiB\n", mb);
    return 0;
}

/* A forkbomb child: pause up to 30 s, dying at once if the parent dies first. */
static void __attribute__((noreturn)) forkbomb_child(pid_t parent)
{
    /* If the parent is killed before it can kill us, the kernel kills us for it... */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) /* ...unless it died before prctl: then we were reparented */
        _exit(0);
    struct timespec t = {30, 0};
    while (nanosleep(&t, &t) != 0 && errno == EINTR)
        ;
    _exit(0);
}

/*
 * forkbomb [MAX]: fork pausing children until fork fails or MAX (default 10000) exist, then
 * kill and reap every one of them and print "forked N", plus "fork failed: STRERROR" if a
 * fork failed (under a pids limit: EAGAIN). The children are gone before anything is
 * written, so a failed write (even SIGPIPE) cannot leave them behind.
 */
static int verb_forkbomb(char **argv)
{
    size_t max = argv[0] ? (size_t)parse_number(argv[0], 100000) : 10000;
    pid_t *kids = xrealloc(NULL, max * sizeof(*kids));
    /* An inherited SIG_IGN would let the kernel reap children behind our back. */
    signal(SIGCHLD, SIG_DFL);
    pid_t self = getpid();
    size_t n = 0;
    int fork_err = 0;
    while (n < max) {
        pid_t c = fork();
        if (c < 0) {
            fork_err = errno;
            break;
        }
        if (c == 0)
            forkbomb_child(self);
        kids[n++] = c;
    }
    for (size_t i = 0; i < n; i++)
        kill(kids[i], SIGKILL);
    /* Reap by pid, not waitpid(-1): children inherited across exec are not ours to wait for. */
    for (size_t i = 0; i < n; i++)
        while (waitpid(kids[i], NULL, 0) < 0 && errno == EINTR)
            ;
    free(kids);
    printf("forked %zu\n", n);
    if (fork_err != 0)
        printf("fork failed: %s\n", strerror(fork_err));
    return 0;
}

/* cpuburn SECONDS: busy-loop (no sleeping) for SECONDS of wall-clock time; print "burned SECONDS s". */
static int verb_cpuburn(char **argv)
{
    char *end;
    errno = 0;
    double s = strtod(argv[0], &end);
    if (argv[0][0] == '\0' || *end != '\0' || errno != 0 || !(s >= 0) || s > 600)
        bad_usage("not a number of seconds in range 0..600: '%s'", argv[0]);
    struct timespec start, now;
    if (clock_gettime(CLOCK_MONOTONIC, &start) != 0)
        fail("clock_gettime");
    /* volatile: the compiler must really do every increment. */
    volatile unsigned long counter = 0;
    for (;;) {
        for (int i = 0; i < 100000; i++)
            counter++;
        if (clock_gettime(CLOCK_MONOTONIC, &now) != 0)
            fail("clock_gettime");
        double elapsed = (double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9;
        if (elapsed >= s)
            break;
    }
    printf("burned %s s\n", argv[0]);
    return 0;
}

/* ---------------------------------------- network lesson: addresses, TCP */

#define NET_TIMEOUT_SECONDS 10  /* connect, send and receive timeout of sockets */
#define CONNECT_RETRIES 50      /* refused/unreachable retries, 100 ms apart */
#define SERVE_ALARM_SECONDS 120 /* serve never runs longer than this */
#define SERVE_MAX_MESSAGE 4096  /* serve reads at most this much per connection */
#define BLAST_BUFFER (128 * 1024)

/* One IPv4 address of an interface, for sorting by name then numerically by address. */
struct ifaddr4 {
    char *name;
    uint32_t addr; /* host byte order */
    int prefix;
};

static int cmp_ifaddr4(const void *a, const void *b)
{
    const struct ifaddr4 *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c != 0)
        return c;
    if (x->addr != y->addr)
        return x->addr < y->addr ? -1 : 1;
    return x->prefix - y->prefix;
}

/* The prefix length of a netmask in network byte order (its number of one bits). */
static int mask_prefix(uint32_t mask)
{
    return __builtin_popcount(ntohl(mask));
}

/* addrs: "IFNAME ADDRESS/PREFIX" per IPv4 address of every interface (lo too), sorted. */
static int verb_addrs(char **argv)
{
    (void)argv;
    /* getifaddrs asks the kernel over netlink, so it sees our netns even if /sys is the host's. */
    struct ifaddrs *ifs;
    if (getifaddrs(&ifs) != 0)
        fail("getifaddrs");
    struct ifaddr4 *list = NULL;
    size_t n = 0, cap = 0;
    for (struct ifaddrs *p = ifs; p != NULL; p = p->ifa_next) {
        if (p->ifa_addr == NULL || p->ifa_addr->sa_family != AF_INET)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            list = xrealloc(list, cap * sizeof(*list));
        }
        const struct sockaddr_in *addr = (const struct sockaddr_in *)p->ifa_addr;
        const struct sockaddr_in *mask = (const struct sockaddr_in *)p->ifa_netmask;
        list[n].name = xstrdup(p->ifa_name);
        list[n].addr = ntohl(addr->sin_addr.s_addr);
        list[n].prefix = mask ? mask_prefix(mask->sin_addr.s_addr) : 32;
        n++;
    }
    freeifaddrs(ifs);
    qsort(list, n, sizeof(*list), cmp_ifaddr4);
    for (size_t i = 0; i < n; i++) {
        struct in_addr a = {htonl(list[i].addr)};
        char text[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &a, text, sizeof(text));
        printf("%s %s/%d\n", list[i].name, text, list[i].prefix);
        free(list[i].name);
    }
    free(list);
    return 0;
}

/* One /proc/net/route row ("Iface Destination Gateway Flags RefCnt Use Metric Mask"), `ip route` style. */
static void print_route_row(char **fields)
{
    /*
     * The kernel prints each address as the hex of its in-memory (network byte order)
     * 32-bit value, so the parsed number is already an s_addr, on any endianness.
     */
    struct in_addr dest = {(uint32_t)strtoul(fields[1], NULL, 16)};
    struct in_addr gateway = {(uint32_t)strtoul(fields[2], NULL, 16)};
    uint32_t mask = (uint32_t)strtoul(fields[7], NULL, 16);
    char text[INET_ADDRSTRLEN];
    if (dest.s_addr == 0 && mask == 0) {
        printf("default");
    } else {
        inet_ntop(AF_INET, &dest, text, sizeof(text));
        printf("%s/%d", text, mask_prefix(mask));
    }
    if (gateway.s_addr != 0) {
        inet_ntop(AF_INET, &gateway, text, sizeof(text));
        printf(" via %s", text);
    }
    printf(" dev %s\n", fields[0]);
}

/* routes: the main IPv4 routing table from /proc/net/route, in file order, `ip route` style. */
static int verb_routes(char **argv)
{
    (void)argv;
    for_each_table_row("/proc/net/route", 8, print_route_row);
    return 0;
}

/* Like fail(), but a socket timeout (EAGAIN, or EINPROGRESS from connect) reads as ETIMEDOUT. */
static void __attribute__((noreturn)) fail_socket(const char *what)
{
    if (errno == EAGAIN || errno == EINPROGRESS)
        errno = ETIMEDOUT;
    fail(what);
}

/* Give socket FD send and receive timeouts (the send timeout also bounds connect). */
static void set_socket_timeouts(int fd, int seconds)
{
    struct timeval tv = {seconds, 0};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0)
        fail("setsockopt");
}

/* Parse a TCP port 1..65535, or exit 2. */
static uint16_t parse_port(const char *s)
{
    unsigned long long port = parse_number(s, 65535);
    if (port == 0)
        bad_usage("port 0 is not a port");
    return (uint16_t)port;
}

/*
 * Look NAME up in /etc/hosts: the address of the first IPv4 line listing NAME among its
 * names (case-insensitive), as the "files" NSS module would. Returns 0 if found, -1 if not.
 * We read the file ourselves because getaddrinfo needs NSS, which a static binary lacks.
 */
static int hosts_lookup(const char *name, struct in_addr *addr)
{
    const char *path = "/etc/hosts";
    FILE *f = fopen(path, "re");
    if (f == NULL)
        fail(path);
    char *line = NULL;
    size_t cap = 0;
    int found = 0;
    while (!found && getline(&line, &cap, f) >= 0) {
        char *comment = strchr(line, '#');
        if (comment != NULL)
            *comment = '\0';
        char *fields[64];
        int n = split_fields(line, fields, 64);
        if (n < 2 || inet_pton(AF_INET, fields[0], addr) != 1)
            continue; /* blank, comment-only, malformed or IPv6 line */
        for (int i = 1; i < n && !found; i++)
            found = strcasecmp(fields[i], name) == 0;
    }
    if (ferror(f))
        fail(path);
    free(line);
    fclose(f);
    return found ? 0 : -1;
}

/* Resolve ARG, "HOST:PORT" with HOST a dotted IPv4 address or an /etc/hosts name, into SA. */
static void resolve_endpoint(const char *arg, struct sockaddr_in *sa)
{
    const char *colon = strrchr(arg, ':');
    if (colon == NULL || colon == arg)
        bad_usage("expects HOST:PORT, got '%s'", arg);
    char host[256];
    size_t len = (size_t)(colon - arg);
    if (len >= sizeof(host))
        bad_usage("host name too long: '%s'", arg);
    memcpy(host, arg, len);
    host[len] = '\0';
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons(parse_port(colon + 1));
    if (inet_pton(AF_INET, host, &sa->sin_addr) == 1)
        return;
    if (hosts_lookup(host, &sa->sin_addr) != 0) {
        fflush(stdout);
        fprintf(stderr, "probe: %s %s: name not found in /etc/hosts\n", g_verb, arg);
        exit(1);
    }
}

/*
 * Connect over TCP to ARG ("HOST:PORT") with NET_TIMEOUT_SECONDS timeouts; return the socket.
 * A refused or unreachable connection is retried CONNECT_RETRIES times, 100 ms apart, since
 * the server may still be starting; then "probe: VERB HOST:PORT: strerror" and exit 1.
 */
static int connect_endpoint(const char *arg)
{
    struct sockaddr_in sa;
    resolve_endpoint(arg, &sa);
    /* A peer that goes away must make write fail with EPIPE, not kill us with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    for (int attempt = 0;; attempt++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            fail("socket");
        set_socket_timeouts(fd, NET_TIMEOUT_SECONDS);
        if (connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) == 0)
            return fd;
        int err = errno;
        close(fd);
        int retry = err == ECONNREFUSED || err == ENETUNREACH || err == EHOSTUNREACH;
        if (!retry || attempt >= CONNECT_RETRIES) {
            errno = err;
            fail_socket(arg);
        }
        sleep_seconds(0.1);
    }
}

/* Listen on 0.0.0.0:PORT (SO_REUSEADDR), then print "listening PORT" and flush it. */
static int listen_port(const char *arg)
{
    uint16_t port = parse_port(arg);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        fail("socket");
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
        fail("setsockopt");
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_ANY);
    char what[32];
    snprintf(what, sizeof(what), "0.0.0.0:%u", (unsigned)port);
    if (bind(fd, (const struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 64) != 0)
        fail(what);
    /* Only now can a client connect, so a test may wait for this line. */
    printf("listening %u\n", (unsigned)port);
    if (fflush(stdout) != 0)
        fail("stdout");
    return fd;
}

/* Accept one connection on LFD, retrying interruptions; PEER receives "ADDRESS:PORT". */
static int accept_peer(int lfd, char *peer, size_t len)
{
    for (;;) {
        struct sockaddr_in sa;
        socklen_t salen = sizeof(sa);
        int fd = accept4(lfd, (struct sockaddr *)&sa, &salen, SOCK_CLOEXEC);
        if (fd >= 0) {
            char text[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &sa.sin_addr, text, sizeof(text));
            snprintf(peer, len, "%s:%u", text, (unsigned)ntohs(sa.sin_port));
            return fd;
        }
        /* A client that gave up before we took its connection is not our failure. */
        if (errno != EINTR && errno != ECONNABORTED && errno != EPROTO)
            fail("accept");
    }
}

/*
 * Answer one serve connection: read up to SERVE_MAX_MESSAGE bytes, until EOF or a newline,
 * then reply "echo HOSTNAME: FIRST-LINE" (without its newline), or a minimal HTTP/1.0 page
 * if the request starts with "GET ". Returns -1 with errno set if the connection failed.
 */
static int serve_connection(int fd, const char *nodename)
{
    char buf[SERVE_MAX_MESSAGE];
    size_t len = 0;
    while (len < sizeof(buf)) {
        ssize_t r = read(fd, buf + len, sizeof(buf) - len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0)
            break;
        int newline = memchr(buf + len, '\n', (size_t)r) != NULL;
        len += (size_t)r;
        if (newline)
            break;
    }

    char reply[SERVE_MAX_MESSAGE + 256];
    size_t n = 0;
    if (len >= 4 && memcmp(buf, "GET ", 4) == 0) {
        n = (size_t)snprintf(reply, sizeof(reply),
                             "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                             "\r\nhello from %s\n",
                             nodename);
    } else {
        /* Copied with memcpy, not %s, so that bytes after a NUL are echoed too. */
        char *nl = memchr(buf, '\n', len);
        size_t line = nl ? (size_t)(nl - buf) : len;
        if (line > 0 && buf[line - 1] == '\r')
            line--;
        size_t hlen = strlen(nodename);
        memcpy(reply + n, "echo ", 5);
        n += 5;
        memcpy(reply + n, nodename, hlen);
        n += hlen;
        memcpy(reply + n, ": ", 2);
        n += 2;
        memcpy(reply + n, buf, line);
        n += line;
        reply[n++] = '\n';
    }
    if (write_all(fd, reply, n) != 0)
        return -1;

    /*
     * Lingering close: closing with unread input (HTTP headers after the request line) would
     * reset the connection and could destroy the reply in flight. So end our side, then read
     * until the client closes too, waiting at most 1 s for each read.
     */
    if (shutdown(fd, SHUT_WR) != 0)
        return -1;
    struct timeval tv = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    return 0;
}

/* serve PORT [COUNT]: answer COUNT (default 1) TCP connections with an echo or HTTP reply. */
static int verb_serve(char **argv)
{
    unsigned long long count = argv[1] ? parse_number(argv[1], 1000) : 1;
    if (count == 0)
        bad_usage("COUNT must be 1..1000");
    /* Never hang a test: SIGALRM's default action ends us after SERVE_ALARM_SECONDS. */
    signal(SIGALRM, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    alarm(SERVE_ALARM_SECONDS);
    signal(SIGPIPE, SIG_IGN); /* a client that went away gives EPIPE, reported below */
    struct utsname u;
    if (uname(&u) != 0)
        fail("uname");
    int lfd = listen_port(argv[0]);
    int rc = 0;
    for (unsigned long long i = 0; i < count; i++) {
        char peer[64];
        int fd = accept_peer(lfd, peer, sizeof(peer));
        set_socket_timeouts(fd, NET_TIMEOUT_SECONDS);
        if (serve_connection(fd, u.nodename) != 0) {
            /* A failed client (timeout, reset) does not stop the others but makes us exit 1. */
            int err = errno == EAGAIN ? ETIMEDOUT : errno;
            fflush(stdout);
            fprintf(stderr, "probe: serve %s: %s\n", peer, strerror(err));
            rc = 1;
        }
        close(fd);
    }
    close(lfd);
    return rc;
}

/* connect HOST:PORT [MESSAGE]: send MESSAGE (default "ping") and a newline, print the reply. */
static int verb_connect(char **argv)
{
    const char *message = argv[1] ? argv[1] : "ping";
    int fd = connect_endpoint(argv[0]);
    if (write_all(fd, message, strlen(message)) != 0 || write_all(fd, "\n", 1) != 0)
        fail_socket(argv[0]);
    if (shutdown(fd, SHUT_WR) != 0)
        fail_socket(argv[0]);
    char buf[65536];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            fail_socket(argv[0]);
        }
        if (r == 0)
            break;
        if (write_all(STDOUT_FILENO, buf, (size_t)r) != 0)
            fail("stdout");
    }
    close(fd);
    return 0;
}

/* sink PORT: accept one TCP connection, read it to EOF, print "received BYTES bytes". */
static int verb_sink(char **argv)
{
    int lfd = listen_port(argv[0]);
    char peer[64];
    int fd = accept_peer(lfd, peer, sizeof(peer));
    close(lfd);
    set_socket_timeouts(fd, NET_TIMEOUT_SECONDS);
    static char buf[BLAST_BUFFER];
    unsigned long long total = 0;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            fail_socket(peer);
        }
        if (r == 0)
            break;
        total += (unsigned long long)r;
    }
    close(fd);
    printf("received %llu bytes\n", total);
    return 0;
}

/* Seconds on the monotonic clock, for measuring wall time. */
static double monotonic_seconds(void)
{
    struct timespec t;
    if (clock_gettime(CLOCK_MONOTONIC, &t) != 0)
        fail("clock_gettime");
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* blast HOST:PORT SECONDS: write 128 KiB buffers for SECONDS; print bytes, time and Gbit/s. */
static int verb_blast(char **argv)
{
    char *end;
    errno = 0;
    double s = strtod(argv[1], &end);
    if (argv[1][0] == '\0' || *end != '\0' || errno != 0 || !(s >= 0) || s > 600)
        bad_usage("not a number of seconds in range 0..600: '%s'", argv[1]);
    int fd = connect_endpoint(argv[0]);
    static char buf[BLAST_BUFFER];
    memset(buf, 'x', sizeof(buf));
    unsigned long long total = 0;
    double start = monotonic_seconds(), elapsed;
    /* The clock starts once connected, and the last write may end a little after SECONDS. */
    while ((elapsed = monotonic_seconds() - start) < s) {
        ssize_t w = write(fd, buf, sizeof(buf));
        if (w < 0) {
            if (errno == EINTR)
                continue;
            fail_socket(argv[0]);
        }
        total += (unsigned long long)w;
    }
    if (shutdown(fd, SHUT_WR) != 0)
        fail_socket(argv[0]);
    close(fd);
    double gbits = elapsed > 0 ? (double)total * 8 / elapsed / 1e9 : 0;
    printf("sent %llu bytes in %.2f s = %.2f Gbit/s\n", total, elapsed, gbits);
    return 0;
}

/* ------------------------- security lesson: capabilities, seccomp, masks */

/* Symbolic names of the errno values security tests are likely to meet. */
static const struct {
    int err;
    const char *name;
} errno_names[] = {
    {EPERM, "EPERM"}, {ENOENT, "ENOENT"}, {ESRCH, "ESRCH"}, {EINTR, "EINTR"},
    {EIO, "EIO"}, {ENXIO, "ENXIO"}, {E2BIG, "E2BIG"}, {ENOEXEC, "ENOEXEC"},
    {EBADF, "EBADF"}, {ECHILD, "ECHILD"}, {EAGAIN, "EAGAIN"}, {ENOMEM, "ENOMEM"},
    {EACCES, "EACCES"}, {EFAULT, "EFAULT"}, {EBUSY, "EBUSY"}, {EEXIST, "EEXIST"},
    {EXDEV, "EXDEV"}, {ENODEV, "ENODEV"}, {ENOTDIR, "ENOTDIR"}, {EISDIR, "EISDIR"},
    {EINVAL, "EINVAL"}, {ENFILE, "ENFILE"}, {EMFILE, "EMFILE"}, {ENOTTY, "ENOTTY"},
    {ENOSPC, "ENOSPC"}, {EROFS, "EROFS"}, {EPIPE, "EPIPE"}, {ERANGE, "ERANGE"},
    {ENOSYS, "ENOSYS"}, {ELOOP, "ELOOP"}, {ENOKEY, "ENOKEY"}, {EAFNOSUPPORT, "EAFNOSUPPORT"},
};

/* ERR's symbolic name ("EPERM"), or "errno N" (written to BUF) for one not in the table. */
static const char *errno_name(int err, char *buf, size_t len)
{
    for (size_t i = 0; i < sizeof(errno_names) / sizeof(errno_names[0]); i++)
        if (errno_names[i].err == err)
            return errno_names[i].name;
    snprintf(buf, len, "errno %d", err);
    return buf;
}

/*
 * The try_* functions below each make one attempt of a syscall, with arguments chosen so that
 * success changes nothing that outlives the probe, and return 0 if it succeeded or the errno
 * it failed with (negative: the child making it was killed by that signal). They call
 * syscall(SYS_xxx) directly, since glibc wrappers may use another syscall (mknod is mknodat
 * in glibc) and a seccomp filter matches syscall numbers. A failed preparation that is not
 * the syscall under test (opening /dev/zero...) is reported by fail(), exit status 1.
 */

/* 0 if R, a raw syscall's return value, means success, else the errno it left. */
static int syscall_result(long r)
{
    return r < 0 ? errno : 0;
}

/* unshare: a new UTS namespace, which only we are in and which goes away when we exit. */
static int try_unshare(void)
{
    return syscall_result(syscall(SYS_unshare, (long)CLONE_NEWUTS));
}

/* mount: a tmpfs on /tmp, detached again at once if the mount succeeded. */
static int try_mount(void)
{
    if (syscall(SYS_mount, "none", "/tmp", "tmpfs", 0L, NULL) != 0)
        return errno;
    if (syscall(SYS_umount2, "/tmp", (long)MNT_DETACH) != 0) {
        /* Allowed to mount but not to unmount: the tmpfs now hides /tmp, so say so. */
        fflush(stdout);
        fprintf(stderr, "probe: try-syscall umount2 /tmp: %s\n", strerror(errno));
    }
    return 0;
}

/* keyctl: look up the id of the session keyring, without creating one. */
static int try_keyctl(void)
{
    return syscall_result(syscall(SYS_keyctl, 0L /* KEYCTL_GET_KEYRING_ID */,
                                  -3L /* KEY_SPEC_SESSION_KEYRING */, 0L /* do not create */));
}

/* ptrace: PTRACE_TRACEME in a child, which exits at once with the errno as its status. */
static int try_ptrace(void)
{
    fflush(stdout); /* do not let the child inherit buffered output */
    pid_t c = fork();
    if (c < 0)
        fail("fork");
    if (c == 0)
        _exit(syscall(SYS_ptrace, (long)PTRACE_TRACEME, 0L, NULL, NULL) == 0 ? 0 : errno);
    int status;
    while (waitpid(c, &status, 0) < 0) {
        if (errno != EINTR)
            fail("waitpid");
    }
    /* A seccomp filter may kill the child (SIGSYS) instead of failing the call. */
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

/*
 * reboot: with wrong magic numbers, so that it can never reboot. The kernel checks
 * CAP_SYS_BOOT first (EPERM), then the magic (EINVAL): EINVAL means the call got through.
 */
static int try_reboot(void)
{
    return syscall_result(syscall(SYS_reboot, 0L, 0L, 0L, NULL));
}

/* init_module: an empty module image, which the kernel rejects (ENOEXEC) if let through. */
static int try_init_module(void)
{
    return syscall_result(syscall(SYS_init_module, NULL, 0L, ""));
}

/* setns: join the UTS namespace we are already in. */
static int try_setns(void)
{
    const char *path = "/proc/self/ns/uts";
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fail(path);
    int err = syscall_result(syscall(SYS_setns, (long)fd, (long)CLONE_NEWUTS));
    close(fd);
    return err;
}

/* chroot: to "/", the root we already have. */
static int try_chroot(void)
{
    return syscall_result(syscall(SYS_chroot, "/"));
}

/* mknod: a character device like /dev/null in /tmp, removed at once if it was made. */
static int try_mknod(void)
{
    const char *path = "/tmp/.probe-null";
    unlink(path); /* one left by an interrupted run would make mknod fail with EEXIST */
    long mode = S_IFCHR | 0600, dev = (long)makedev(1, 3);
#ifdef SYS_mknod
    int err = syscall_result(syscall(SYS_mknod, path, mode, dev));
#else
    int err = syscall_result(syscall(SYS_mknodat, (long)AT_FDCWD, path, mode, dev));
#endif
    if (err == 0)
        unlink(path);
    return err;
}

/* chown: a file we create in /tmp to uid 1 and gid 1, then remove. */
static int try_chown(void)
{
    const char *path = "/tmp/.probe-chown";
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        fail(path);
    close(fd);
#ifdef SYS_chown
    int err = syscall_result(syscall(SYS_chown, path, 1L, 1L));
#else
    int err = syscall_result(syscall(SYS_fchownat, (long)AT_FDCWD, path, 1L, 1L, 0L));
#endif
    unlink(path);
    return err;
}

/*
 * sethostname: to the name it already has. Our UTS namespace may be shared with the rest of
 * the container (or the host), and a new name would outlive us there.
 */
static int try_sethostname(void)
{
    struct utsname u;
    if (uname(&u) != 0)
        fail("uname");
    return syscall_result(syscall(SYS_sethostname, u.nodename, (long)strlen(u.nodename)));
}

/* bpf: an invalid command, which the kernel rejects (EINVAL) if let through. */
static int try_bpf(void)
{
    return syscall_result(syscall(SYS_bpf, -1L, NULL, 0L));
}

/* perf_event_open: with no attributes, which the kernel rejects (EFAULT) if let through. */
static int try_perf_event_open(void)
{
    return syscall_result(syscall(SYS_perf_event_open, NULL, 0L, -1L, -1L, 0L));
}

/* clone-newns: a child in a new mount namespace, which exits at once; we reap it. */
static int try_clone_newns(void)
{
    fflush(stdout); /* do not let the child inherit buffered output */
    long r = syscall(SYS_clone, (long)(CLONE_NEWNS | SIGCHLD), NULL, NULL, NULL, 0L);
    if (r < 0)
        return errno;
    if (r == 0)
        _exit(0);
    while (waitpid((pid_t)r, NULL, 0) < 0 && errno == EINTR)
        ;
    return 0;
}

/* getpid: must always work. */
static int try_getpid(void)
{
    return syscall_result(syscall(SYS_getpid));
}

/* open: /etc/hostname for reading, closed again. */
static int try_open(void)
{
    const char *path = "/etc/hostname";
    long flags = O_RDONLY | O_CLOEXEC;
#ifdef SYS_open
    long fd = syscall(SYS_open, path, flags);
#else
    long fd = syscall(SYS_openat, (long)AT_FDCWD, path, flags);
#endif
    if (fd < 0)
        return errno;
    close((int)fd);
    return 0;
}

/* read: one byte of /dev/zero. */
static int try_read(void)
{
    const char *path = "/dev/zero";
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fail(path);
    char c;
    int err = syscall_result(syscall(SYS_read, (long)fd, &c, 1L));
    close(fd);
    return err;
}

/* socket: a TCP socket, closed again. */
static int try_socket(void)
{
    long fd = syscall(SYS_socket, (long)AF_INET, (long)SOCK_STREAM, 0L);
    if (fd < 0)
        return errno;
    close((int)fd);
    return 0;
}

/* The syscalls try-syscall knows, in the order an unknown NAME lists them. */
static const struct {
    const char *name;
    int (*run)(void);
} try_calls[] = {
    {"unshare", try_unshare},
    {"mount", try_mount},
    {"keyctl", try_keyctl},
    {"ptrace", try_ptrace},
    {"reboot", try_reboot},
    {"init_module", try_init_module},
    {"setns", try_setns},
    {"chroot", try_chroot},
    {"mknod", try_mknod},
    {"chown", try_chown},
    {"sethostname", try_sethostname},
    {"bpf", try_bpf},
    {"perf_event_open", try_perf_event_open},
    {"clone-newns", try_clone_newns},
    {"getpid", try_getpid},
    {"open", try_open},
    {"read", try_read},
    {"socket", try_socket},
};

#define NTRY_CALLS (sizeof(try_calls) / sizeof(try_calls[0]))

/* try-syscall NAME: one harmless attempt; print "NAME ok", "NAME EPERM"... and exit 0 anyway. */
static int verb_try_syscall(char **argv)
{
    size_t i = 0;
    while (i < NTRY_CALLS && strcmp(argv[0], try_calls[i].name) != 0)
        i++;
    if (i == NTRY_CALLS) {
        char names[512] = "";
        size_t len = 0;
        for (size_t j = 0; j < NTRY_CALLS && len < sizeof(names); j++)
            len += (size_t)snprintf(names + len, sizeof(names) - len, "%s%s", j ? " " : "",
                                    try_calls[j].name);
        bad_usage("unknown syscall '%s'; names: %s", argv[0], names);
    }
    int err = try_calls[i].run();
    char buf[32];
    if (err == 0)
        printf("%s ok\n", try_calls[i].name);
    else if (err < 0)
        printf("%s signal %d\n", try_calls[i].name, -err);
    else
        printf("%s %s\n", try_calls[i].name, errno_name(err, buf, sizeof(buf)));
    return 0;
}

/* Capability names by bit number (capabilities(7)), lowercase and without "cap_". */
static const char *const cap_names[] = {
    /*  0 */ "chown", "dac_override", "dac_read_search", "fowner", "fsetid",
    /*  5 */ "kill", "setgid", "setuid", "setpcap", "linux_immutable",
    /* 10 */ "net_bind_service", "net_broadcast", "net_admin", "net_raw", "ipc_lock",
    /* 15 */ "ipc_owner", "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace",
    /* 20 */ "sys_pacct", "sys_admin", "sys_boot", "sys_nice", "sys_resource",
    /* 25 */ "sys_time", "sys_tty_config", "mknod", "lease", "audit_write",
    /* 30 */ "audit_control", "setfcap", "mac_override", "mac_admin", "syslog",
    /* 35 */ "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf",
    /* 40 */ "checkpoint_restore",
};

#define NCAP_NAMES (sizeof(cap_names) / sizeof(cap_names[0]))

/* The value of the "KEY:" line of a /proc status buffer, after its blanks, or NULL. */
static const char *status_field(const char *buf, const char *key)
{
    size_t klen = strlen(key);
    for (const char *line = buf; line && *line; ) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            const char *value = line + klen + 1;
            while (*value == ' ' || *value == '\t')
                value++;
            return value;
        }
        const char *next = strchr(line, '\n');
        line = next ? next + 1 : NULL;
    }
    return NULL;
}

/* caps: "CapEff: chown,kill,..." per set (Inh Prm Eff Bnd Amb), in bit order, "-" if none. */
static int verb_caps(char **argv)
{
    (void)argv;
    static const char *const keys[] = {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"};
    const char *path = "/proc/self/status";
    char *buf = read_file(path);
    if (buf == NULL)
        fail(path);
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        const char *value = status_field(buf, keys[k]);
        if (value == NULL)
            continue; /* CapAmb appeared in Linux 4.3 */
        char *end;
        errno = 0;
        unsigned long long mask = strtoull(value, &end, 16);
        if (end == value || errno != 0) {
            fflush(stdout);
            fprintf(stderr, "probe: caps %s: %s is not a hex mask\n", path, keys[k]);
            exit(1);
        }
        printf("%s: ", keys[k]);
        if (mask == 0)
            putchar('-');
        const char *sep = "";
        for (unsigned bit = 0; bit < 64; bit++) {
            if (!(mask & (1ULL << bit)))
                continue;
            if (bit < NCAP_NAMES)
                printf("%s%s", sep, cap_names[bit]);
            else
                printf("%scap_%u", sep, bit);
            sep = ",";
        }
        putchar('\n');
    }
    free(buf);
    return 0;
}

/* The resource limits rlimit knows, by the names it takes. */
static const struct {
    const char *name;
    int resource;
} rlimit_names[] = {
    {"nofile", RLIMIT_NOFILE}, {"nproc", RLIMIT_NPROC},   {"core", RLIMIT_CORE},
    {"memlock", RLIMIT_MEMLOCK}, {"stack", RLIMIT_STACK},
};

#define NRLIMIT_NAMES (sizeof(rlimit_names) / sizeof(rlimit_names[0]))

/* An rlimit value as text into BUF: the number, or "unlimited" for RLIM_INFINITY. */
static const char *rlim_text(rlim_t v, char *buf, size_t len)
{
    if (v == RLIM_INFINITY)
        return "unlimited";
    snprintf(buf, len, "%llu", (unsigned long long)v);
    return buf;
}

/* rlimit NAME: "NAME SOFT HARD" for nofile, nproc, core, memlock or stack. */
static int verb_rlimit(char **argv)
{
    size_t i = 0;
    while (i < NRLIMIT_NAMES && strcmp(argv[0], rlimit_names[i].name) != 0)
        i++;
    if (i == NRLIMIT_NAMES) {
        char names[128] = "";
        size_t len = 0;
        for (size_t j = 0; j < NRLIMIT_NAMES && len < sizeof(names); j++)
            len += (size_t)snprintf(names + len, sizeof(names) - len, "%s%s", j ? " " : "",
                                    rlimit_names[j].name);
        bad_usage("unknown limit '%s'; names: %s", argv[0], names);
    }
    struct rlimit rl;
    if (getrlimit(rlimit_names[i].resource, &rl) != 0)
        fail(argv[0]);
    char soft[32], hard[32];
    printf("%s %s %s\n", argv[0], rlim_text(rl.rlim_cur, soft, sizeof(soft)),
           rlim_text(rl.rlim_max, hard, sizeof(hard)));
    return 0;
}

#define READ_FILE_MAX MIB /* read-file stops counting there */

/* read-file PATH: "PATH readable N bytes" (N at most 1 MiB) or "PATH error ERRNAME"; exit 0. */
static int verb_read_file(char **argv)
{
    static char buf[65536];
    size_t total = 0;
    int err = 0;
    int fd = open(argv[0], O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        err = errno;
    while (fd >= 0 && total < READ_FILE_MAX) {
        size_t want = READ_FILE_MAX - total < sizeof(buf) ? READ_FILE_MAX - total : sizeof(buf);
        ssize_t r = read(fd, buf, want);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            err = errno;
            break;
        }
        if (r == 0)
            break;
        total += (size_t)r;
    }
    if (fd >= 0)
        close(fd);
    char name[32];
    if (err != 0)
        printf("%s error %s\n", argv[0], errno_name(err, name, sizeof(name)));
    else
        printf("%s readable %zu bytes\n", argv[0], total);
    return 0;
}

/* ------------------------------------------------------------------ main */

struct verb {
    const char *name;
    int nargs;        /* required arguments */
    int optional;     /* optional arguments after them */
    const char *args; /* for the usage line */
    int (*run)(char **argv);
};

static const struct verb verbs[] = {
    {"hostname", 0, 0, "", verb_hostname},
    {"pid", 0, 0, "", verb_pid},
    {"ppid", 0, 0, "", verb_ppid},
    {"ns", 0, 0, "", verb_ns},
    {"idmap", 0, 0, "", verb_idmap},
    {"status", 0, 0, "", verb_status},
    {"mounts", 0, 0, "", verb_mounts},
    {"ls", 1, 0, " PATH", verb_ls},
    {"cat", 1, 0, " PATH", verb_cat},
    {"exists", 1, 0, " PATH", verb_exists},
    {"ps", 0, 0, "", verb_ps},
    {"links", 0, 0, "", verb_links},
    {"shm", 0, 0, "", verb_shm},
    {"shm-create", 1, 0, " SIZE", verb_shm_create},
    {"shm-remove", 1, 0, " ID", verb_shm_remove},
    {"zombies", 0, 0, "", verb_zombies},
    {"orphan", 0, 0, "", verb_orphan},
    {"sleep", 1, 0, " SECONDS", verb_sleep},
    {"true", 0, 0, "", verb_true},
    {"exit", 1, 0, " N", verb_exit},
    {"kill-self", 1, 0, " SIGNUM", verb_kill_self},
    {"uid", 0, 0, "", verb_uid},
    {"write", 2, 0, " PATH TEXT", verb_write},
    {"memhog", 1, 0, " MB", verb_memhog},
    {"forkbomb", 0, 1, " [MAX]", verb_forkbomb},
    {"cpuburn", 1, 0, " SECONDS", verb_cpuburn},
    {"addrs", 0, 0, "", verb_addrs},
    {"routes", 0, 0, "", verb_routes},
    {"serve", 1, 1, " PORT [COUNT]", verb_serve},
    {"connect", 1, 1, " HOST:PORT [MESSAGE]", verb_connect},
    {"sink", 1, 0, " PORT", verb_sink},
    {"blast", 2, 0, " HOST:PORT SECONDS", verb_blast},
    {"try-syscall", 1, 0, " NAME", verb_try_syscall},
    {"caps", 0, 0, "", verb_caps},
    {"rlimit", 1, 0, " NAME", verb_rlimit},
    {"read-file", 1, 0, " PATH", verb_read_file},
};

#define NVERBS (sizeof(verbs) / sizeof(verbs[0]))

/* One line on stderr: "usage: probe VERB [ARGS]; verbs: hostname | pid | ls PATH | ..." */
static void usage(void)
{
    fprintf(stderr, "usage: probe VERB [ARGS]; verbs:");
    for (size_t i = 0; i < NVERBS; i++)
        fprintf(stderr, "%s %s%s", i ? " |" : "", verbs[i].name, verbs[i].args);
    fputc('\n', stderr);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage();
        return 2;
    }
    const struct verb *v = NULL;
    for (size_t i = 0; i < NVERBS; i++)
        if (strcmp(argv[1], verbs[i].name) == 0)
            v = &verbs[i];
    if (v == NULL) {
        fprintf(stderr, "probe: unknown verb '%s'\n", argv[1]);
        usage();
        return 2;
    }
    g_verb = v->name;
    int given = argc - 2;
    if (given < v->nargs || given > v->nargs + v->optional) {
        if (v->optional == 0)
            bad_usage("expects %d argument%s, got %d", v->nargs, v->nargs == 1 ? "" : "s", given);
        bad_usage("expects %d to %d arguments, got %d", v->nargs, v->nargs + v->optional, given);
    }

    int rc = v->run(argv + 2);

    /* Output that never reached stdout (full disk, closed pipe) is a failure too. */
    if (fflush(stdout) != 0 || ferror(stdout))
        fail("stdout");
    return rc;
}
