// CSkiff: the few kernel calls Swift cannot make on Linux.
//
// Each function says why it is here. Mostly: Glibc's Swift module is built without _GNU_SOURCE, so it
// lacks clone/unshare/setns/pivot_root, the CLONE_NEW* flags, setresuid and pipe2; `syscall` and
// `ioctl` are variadic; the wait-status macros are macros; and a signal handler must be C.
#ifndef CSKIFF_H
#define CSKIFF_H

#include <sys/types.h>
// struct sockaddr_nl and NETLINK_ROUTE, which Glibc's Swift module does not include.
#include <linux/netlink.h>

// Namespace flags (linux/sched.h). Literal values, because Swift cannot see the _GNU_SOURCE macros;
// cskiff.c checks each against the kernel header at compile time.
#define SK_CLONE_NEWNS 0x00020000UL
#define SK_CLONE_NEWCGROUP 0x02000000UL
#define SK_CLONE_NEWUTS 0x04000000UL
#define SK_CLONE_NEWIPC 0x08000000UL
#define SK_CLONE_NEWUSER 0x10000000UL
#define SK_CLONE_NEWPID 0x20000000UL
#define SK_CLONE_NEWNET 0x40000000UL

/// clone(2) without a new stack: like fork(2), but the child starts in new namespaces.
/// Returns the child's pid in the parent, 0 in the child, -1 with errno on failure.
/// The raw syscall (as crun does) instead of glibc's clone() wrapper, which needs a separate stack
/// and a function pointer; with a NULL stack the child continues on a copy of the caller's stack.
pid_t sk_clone(unsigned long namespace_flags);

/// unshare(2): not in Glibc's Swift module.
int sk_unshare(unsigned long namespace_flags);

/// setns(2): not in Glibc's Swift module.
int sk_setns(int fd, int namespace_type);

/// pivot_root(2): glibc has no wrapper at all.
int sk_pivot_root(const char *new_root, const char *put_old);

/// setresuid(2)/setresgid(2): _GNU_SOURCE only.
int sk_setresuid(uid_t uid);
int sk_setresgid(gid_t gid);

/// pipe2(2) with O_CLOEXEC: _GNU_SOURCE only. Close-on-exec so a successful execve closes the
/// child's end and the parent reads end-of-file.
int sk_pipe_cloexec(int fds[2]);

/// posix_spawn(3) of `path` in a session of its own (POSIX_SPAWN_SETSID), with `fds[n]` as
/// its descriptor n and every other descriptor closed (posix_spawn_file_actions_addclosefrom_np:
/// _GNU_SOURCE only). Nothing of the caller's leaks into a process that outlives it, such as
/// the socket by which Foundation's Process learns that a child has ended. Returns 0 or an errno.
int sk_spawn_detached(pid_t *pid, const char *path, char *const argv[], char *const envp[], const int *fds, int count);

/// prctl(PR_SET_PDEATHSIG): prctl is variadic.
int sk_set_parent_death_signal(int signal_number);
/// prctl(PR_GET_PDEATHSIG): the signal set, 0 for none.
int sk_parent_death_signal(void);

/// Extended attributes (xattr(7)) without following symlinks: sys/xattr.h is not in Glibc's
/// Swift module. Overlayfs keeps its opaque-directory marker in one.
int sk_lsetxattr(const char *path, const char *name, const void *value, size_t size);
ssize_t sk_lgetxattr(const char *path, const char *name, void *value, size_t size);
ssize_t sk_llistxattr(const char *path, char *names, size_t size);

/// An idmapped bind mount (mount_setattr(2), Linux 5.12): clones the tree at `source`
/// (open_tree(OPEN_TREE_CLONE)), sets MOUNT_ATTR_IDMAP with the user namespace opened from
/// `userns_path`, and attaches it at `target` (move_mount). Returns 0, or -1 with errno and
/// `*failed_step` naming the call that failed.
int sk_bind_idmapped(const char *source, const char *target, const char *userns_path, const char **failed_step);

/// prctl(PR_SET_NO_NEW_PRIVS, 1): execve can never grant privileges again (setuid bits, file
/// capabilities); also what lets an unprivileged process install a seccomp filter.
int sk_set_no_new_privileges(void);

/// open(path, O_PATH|O_CLOEXEC): a handle on a file without opening it for I/O (_GNU_SOURCE).
int sk_open_path(const char *path);

/// prctl(PR_SET_KEEPCAPS, keep).
int sk_set_keep_capabilities(int keep);

/// prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER) with a compiled classic-BPF program of `length`
/// bytes (a whole number of struct sock_filter, 8 bytes each).
int sk_load_seccomp_filter(const void *program, size_t length);

/// memfd_create(2): an anonymous file, where libseccomp can export a compiled filter.
int sk_memfd_create(const char *name);

/// Marks every descriptor from `lowest` up close-on-exec (close_range(2) with
/// CLOSE_RANGE_CLOEXEC, Linux 5.11; a /proc/self/fd walk before that), so that nothing the
/// parent had open leaks into the container's process.
void sk_cloexec_from(int lowest);

/// Closes every descriptor from 3 up except those in `keep`: for a container init that outlives
/// its parent, which must not hold the parent's pipes and sockets open.
void sk_close_descriptors_except(const int *keep, int count);

/// A new pseudo-terminal from the /dev/ptmx of the current root (the container's, after
/// pivot_root): returns the master descriptor and writes the slave's path into `slave_path`.
int sk_open_pty(char *slave_path, size_t length);

/// Sends descriptor `fd` over the connected unix socket `socket` (SCM_RIGHTS), as runc does to
/// hand the pty master to whoever asked with --console-socket.
int sk_send_descriptor(int socket, int fd);

/// Connects a unix stream socket to `path`; returns it.
int sk_connect_unix(const char *path);

/// Makes `slave` the controlling terminal of a new session and the process's stdin, stdout
/// and stderr: setsid(2), ioctl(TIOCSCTTY), dup2.
int sk_become_terminal(int slave);

/// gettid(2): a netns is per thread, so the thread's own /proc entry names it.
pid_t sk_gettid(void);

/// makedev(3) is a macro.
dev_t sk_makedev(unsigned int major, unsigned int minor);
unsigned int sk_major(dev_t device);
unsigned int sk_minor(dev_t device);

/// The wait-status macros of sys/wait.h.
int sk_exited(int status);
int sk_exit_status(int status);
int sk_signaled(int status);
int sk_term_signal(int status);

/// Forward the signals a user sends to the container (HUP INT QUIT TERM USR1 USR2 WINCH) to
/// `target`. Installed before the child exists (target 0 drops them) so no signal arrives between
/// clone and install with the default action, which would kill us and orphan the container.
/// Signals the terminal generates (Ctrl-C) reach the whole foreground process group, the container
/// included, so they are not forwarded a second time.
void sk_forward_signals_install(void);
void sk_forward_signals_to(pid_t target);
/// Restore default dispositions and an empty signal mask: the child must not inherit the
/// forwarding handler, nor a mask that would leave the command deaf to SIGTERM.
void sk_forward_signals_reset(void);

#endif
