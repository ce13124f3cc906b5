#define _GNU_SOURCE
#include "cskiff.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/mount.h>
#include <linux/seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <spawn.h>
#include <sys/xattr.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

_Static_assert(SK_CLONE_NEWNS == CLONE_NEWNS, "CLONE_NEWNS");
_Static_assert(SK_CLONE_NEWCGROUP == CLONE_NEWCGROUP, "CLONE_NEWCGROUP");
_Static_assert(SK_CLONE_NEWUTS == CLONE_NEWUTS, "CLONE_NEWUTS");
_Static_assert(SK_CLONE_NEWIPC == CLONE_NEWIPC, "CLONE_NEWIPC");
_Static_assert(SK_CLONE_NEWUSER == CLONE_NEWUSER, "CLONE_NEWUSER");
_Static_assert(SK_CLONE_NEWPID == CLONE_NEWPID, "CLONE_NEWPID");
_Static_assert(SK_CLONE_NEWNET == CLONE_NEWNET, "CLONE_NEWNET");

pid_t sk_clone(unsigned long namespace_flags) {
    // x86_64 argument order: flags, stack, parent_tid, child_tid, tls. SIGCHLD makes the child
    // an ordinary child that waitpid() reports.
    return (pid_t)syscall(SYS_clone, namespace_flags | SIGCHLD, NULL, NULL, NULL, 0);
}

int sk_unshare(unsigned long namespace_flags) { return unshare((int)namespace_flags); }

int sk_setns(int fd, int namespace_type) { return setns(fd, namespace_type); }

int sk_pivot_root(const char *new_root, const char *put_old) {
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}

int sk_setresuid(uid_t uid) { return setresuid(uid, uid, uid); }

int sk_setresgid(gid_t gid) { return setresgid(gid, gid, gid); }

int sk_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int sk_set_no_new_privileges(void) { return prctl(PR_SET_NO_NEW_PRIVS, 1UL, 0UL, 0UL, 0UL); }

int sk_open_path(const char *path) { return open(path, O_PATH | O_CLOEXEC); }

int sk_set_keep_capabilities(int keep) { return prctl(PR_SET_KEEPCAPS, (unsigned long)keep, 0UL, 0UL, 0UL); }

int sk_load_seccomp_filter(const void *program, size_t length) {
    if (length == 0 || length % sizeof(struct sock_filter) != 0 || length / sizeof(struct sock_filter) > 0xffff) {
        errno = EINVAL;
        return -1;
    }
    struct sock_fprog filter = {
        .len = (unsigned short)(length / sizeof(struct sock_filter)),
        .filter = (struct sock_filter *)program,
    };
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &filter, 0UL, 0UL);
}

int sk_memfd_create(const char *name) { return memfd_create(name, MFD_CLOEXEC); }

int sk_parent_death_signal(void) {
    int signal_number = 0;
    return prctl(PR_GET_PDEATHSIG, &signal_number, 0UL, 0UL, 0UL) == 0 ? signal_number : 0;
}

static void for_each_descriptor(int lowest, void (*action)(int, const int *, int), const int *keep, int count) {
    DIR *directory = opendir("/proc/self/fd");
    if (directory == NULL) return;
    int own = dirfd(directory);
    struct dirent *entry;
    while ((entry = readdir(directory)) != NULL) {
        int fd = atoi(entry->d_name);
        if (entry->d_name[0] == '.' || fd < lowest || fd == own) continue;
        action(fd, keep, count);
    }
    closedir(directory);
}

static void set_cloexec(int fd, const int *keep, int count) {
    (void)keep;
    (void)count;
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

static void close_unless_kept(int fd, const int *keep, int count) {
    for (int i = 0; i < count; i++)
        if (keep[i] == fd) return;
    close(fd);
}

void sk_cloexec_from(int lowest) {
    // close_range(lowest, ~0U, CLOSE_RANGE_CLOEXEC): 436 and 4 on every architecture.
    if (syscall(436, (unsigned int)lowest, ~0U, 4U) == 0) return;
    for_each_descriptor(lowest, set_cloexec, NULL, 0);
}

void sk_close_descriptors_except(const int *keep, int count) { for_each_descriptor(3, close_unless_kept, keep, count); }

int sk_open_pty(char *slave_path, size_t length) {
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) return -1;
    if (grantpt(master) != 0 || unlockpt(master) != 0 || ptsname_r(master, slave_path, length) != 0) {
        int saved = errno;
        close(master);
        errno = saved;
        return -1;
    }
    return master;
}

int sk_send_descriptor(int socket, int fd) {
    char byte = 0;
    struct iovec data = {.iov_base = &byte, .iov_len = 1};
    union {
        char buffer[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof(control));
    struct msghdr message = {.msg_iov = &data, .msg_iovlen = 1, .msg_control = control.buffer, .msg_controllen = sizeof(control.buffer)};
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(header), &fd, sizeof(int));
    return sendmsg(socket, &message, 0) == 1 ? 0 : -1;
}

int sk_connect_unix(const char *path) {
    struct sockaddr_un address;
    memset(&address, 0, sizeof(address));
    address.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(address.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(address.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&address, sizeof(address)) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int sk_become_terminal(int slave) {
    if (setsid() < 0) return -1;
    if (ioctl(slave, TIOCSCTTY, 0) != 0) return -1;
    for (int fd = 0; fd < 3; fd++)
        if (dup2(slave, fd) < 0) return -1;
    if (slave > 2) close(slave);
    return 0;
}

pid_t sk_gettid(void) { return (pid_t)syscall(SYS_gettid); }

int sk_set_parent_death_signal(int signal_number) {
    return prctl(PR_SET_PDEATHSIG, (unsigned long)signal_number, 0UL, 0UL, 0UL);
}

int sk_lsetxattr(const char *path, const char *name, const void *value, size_t size) {
    return lsetxattr(path, name, value, size, 0);
}

ssize_t sk_lgetxattr(const char *path, const char *name, void *value, size_t size) {
    return lgetxattr(path, name, value, size);
}

ssize_t sk_llistxattr(const char *path, char *names, size_t size) { return llistxattr(path, names, size); }

int sk_bind_idmapped(const char *source, const char *target, const char *userns_path, const char **failed_step) {
    int userns = open(userns_path, O_RDONLY | O_CLOEXEC);
    if (userns < 0) {
        *failed_step = "open user namespace";
        return -1;
    }
    int tree = (int)syscall(SYS_open_tree, AT_FDCWD, source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (tree < 0) {
        int saved = errno;
        close(userns);
        errno = saved;
        *failed_step = "open_tree";
        return -1;
    }
    struct mount_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.attr_set = MOUNT_ATTR_IDMAP;
    attr.userns_fd = (uint64_t)userns;
    int result = (int)syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof(attr));
    if (result < 0) {
        *failed_step = "mount_setattr MOUNT_ATTR_IDMAP";
    } else {
        result = (int)syscall(SYS_move_mount, tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH);
        if (result < 0) *failed_step = "move_mount";
    }
    int saved = errno;
    close(tree);
    close(userns);
    errno = saved;
    return result;
}

dev_t sk_makedev(unsigned int major, unsigned int minor) { return makedev(major, minor); }
unsigned int sk_major(dev_t device) { return major(device); }
unsigned int sk_minor(dev_t device) { return minor(device); }

int sk_exited(int status) { return WIFEXITED(status); }
int sk_exit_status(int status) { return WEXITSTATUS(status); }
int sk_signaled(int status) { return WIFSIGNALED(status); }
int sk_term_signal(int status) { return WTERMSIG(status); }

static volatile sig_atomic_t forward_target = 0;
static const int forwarded_signals[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH};
#define FORWARDED_COUNT (sizeof(forwarded_signals) / sizeof(forwarded_signals[0]))

static void forward_signal(int signal_number, siginfo_t *info, void *context) {
    (void)context;
    // si_code > 0 means the kernel sent it (SI_KERNEL: a terminal's Ctrl-C, Ctrl-\), which the
    // foreground process group, container included, already received. kill(1) sends SI_USER (0).
    if (info != NULL && info->si_code > 0) return;
    pid_t target = forward_target;
    if (target > 0) {
        int saved = errno;  // a handler must not change errno under the interrupted code
        kill(target, signal_number);
        errno = saved;
    }
}

void sk_forward_signals_install(void) {
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_sigaction = forward_signal;
    action.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&action.sa_mask);
    sigset_t forwarded;
    sigemptyset(&forwarded);
    for (size_t i = 0; i < FORWARDED_COUNT; i++) {
        sigaction(forwarded_signals[i], &action, NULL);
        sigaddset(&forwarded, forwarded_signals[i]);
    }
    // Whoever started us may have blocked them (test runners and some supervisors do).
    sigprocmask(SIG_UNBLOCK, &forwarded, NULL);
}

void sk_forward_signals_to(pid_t target) { forward_target = target; }

void sk_forward_signals_reset(void) {
    forward_target = 0;
    for (size_t i = 0; i < FORWARDED_COUNT; i++) signal(forwarded_signals[i], SIG_DFL);
    // The command starts with no signal blocked, whatever mask we inherited (execve keeps it).
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

int sk_spawn_detached(pid_t *pid, const char *path, char *const argv[], char *const envp[], const int *fds, int count)
{
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    int error = posix_spawn_file_actions_init(&actions);
    if (error != 0)
        return error;
    for (int target = 0; target < count && error == 0; target++)
        error = posix_spawn_file_actions_adddup2(&actions, fds[target], target);
    if (error == 0)
        error = posix_spawn_file_actions_addclosefrom_np(&actions, count);
    if (error == 0)
        error = posix_spawnattr_init(&attributes);
    if (error == 0) {
        error = posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSID);
        if (error == 0)
            error = posix_spawn(pid, path, &actions, &attributes, argv, envp);
        posix_spawnattr_destroy(&attributes);
    }
    posix_spawn_file_actions_destroy(&actions);
    return error;
}
