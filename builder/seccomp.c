/* kiln builder: the RUN sandbox's seccomp filter.
 *
 * Docker's default profile (moby's profiles/seccomp/default.json) as it decides for an
 * unprivileged container: kiln's RUN keeps docker's default capability set (so the rules docker
 * includes for CAP_SYS_CHROOT apply and those for CAP_SYS_ADMIN, SYS_MODULE, SYS_TIME... do not)
 * and needs a kernel newer than 4.8 (so ptrace is allowed). The table below is kiln's own
 * reading of those decisions; libseccomp turns the names into each ABI's numbers and compiles
 * the program, as runc and crun do. The program is exported once in the parent (the sandbox's
 * children install it with a raw prctl and never allocate).
 */
#include <errno.h>
#include <stdbool.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/xalloc.h"
#include "builder/seccomp-internal.h"

/*
 * The syscalls docker's profile allows every container, with the rules it includes for kiln's
 * capabilities (CAP_SYS_CHROOT: chroot) and kernels >= 4.8 (ptrace, process_vm_*). A name an
 * ABI lacks is skipped for that ABI.
 */
static const char *const allowed[] = {
    /* files and directories */
    "access", "chdir", "chmod", "chown", "chown32", "chroot", "close",
    "close_range", "copy_file_range", "creat", "dup", "dup2", "dup3",
    "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate",
    "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32",
    "fchownat", "fcntl", "fcntl64", "fdatasync", "flock", "fstat", "fstat64",
    "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate", "ftruncate64",
    "futimesat", "getcwd", "getdents", "getdents64", "lchown", "lchown32",
    "link", "linkat", "_llseek", "lseek", "lstat", "lstat64", "mkdir",
    "mkdirat", "mknod", "mknodat", "name_to_handle_at", "newfstatat", "open",
    "openat", "openat2", "pread64", "preadv", "preadv2", "pwrite64",
    "pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat",
    "readv", "rename", "renameat", "renameat2", "rmdir", "sendfile",
    "sendfile64", "splice", "stat", "stat64", "statfs", "statfs64", "statx",
    "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "tee",
    "truncate", "truncate64", "umask", "unlink", "unlinkat", "utime",
    "utimensat", "utimensat_time64", "utimes", "vmsplice", "write", "writev",
    "cachestat",
    /* extended attributes */
    "fgetxattr", "flistxattr", "fremovexattr", "fsetxattr", "getxattr",
    "lgetxattr", "listxattr", "llistxattr", "lremovexattr", "lsetxattr",
    "removexattr", "setxattr",
    /* polling, events, notifications */
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
    "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2",
    "fanotify_mark", "inotify_add_watch", "inotify_init", "inotify_init1",
    "inotify_rm_watch", "_newselect", "pause", "pipe", "pipe2", "poll", "ppoll", "ppoll_time64",
    "pselect6", "pselect6_time64", "select", "signalfd", "signalfd4",
    "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
    "timerfd_settime64",
    /* asynchronous I/O (io_uring stays refused, as docker refuses it since 25.0) */
    "io_cancel", "io_destroy", "io_getevents", "io_pgetevents",
    "io_pgetevents_time64", "io_setup", "io_submit", "ioctl", "ioprio_get",
    "ioprio_set",
    /* processes, threads, signals */
    "capget", "capset", "execve", "execveat", "exit", "exit_group", "fork",
    "get_robust_list", "get_thread_area", "getcpu", "getpgid", "getpgrp",
    "getpid", "getppid", "getpriority", "getrlimit", "getrusage", "getsid",
    "gettid", "kill", "pidfd_open", "pidfd_send_signal", "prctl",
    "prlimit64", "process_mrelease", "ptrace", "process_vm_readv",
    "process_vm_writev", "restart_syscall", "rseq", "rt_sigaction",
    "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn",
    "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo", "sched_get_priority_max", "sched_get_priority_min",
    "sched_getaffinity", "sched_getattr", "sched_getparam", "sched_getscheduler",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity",
    "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield",
    "seccomp", "set_robust_list", "set_thread_area", "set_tid_address",
    "setpgid", "setpriority", "setrlimit", "setsid", "sigaltstack",
    "sigprocmask", "sigreturn", "tgkill", "tkill", "ugetrlimit", "vfork",
    "wait4", "waitid", "waitpid",
    /* identity */
    "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32",
    "getgroups", "getgroups32", "getresgid", "getresgid32", "getresuid",
    "getresuid32", "getuid", "getuid32", "setfsgid", "setfsgid32", "setfsuid",
    "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32", "setregid",
    "setregid32", "setresgid", "setresgid32", "setresuid", "setresuid32",
    "setreuid", "setreuid32", "setuid", "setuid32",
    /* memory */
    "brk", "madvise", "map_shadow_stack", "membarrier", "memfd_create",
    "memfd_secret", "mincore", "mlock", "mlock2", "mlockall", "mmap",
    "mmap2", "mprotect", "mremap", "msync", "munlock", "munlockall",
    "munmap", "pkey_alloc", "pkey_free", "pkey_mprotect", "remap_file_pages",
    /* synchronisation and System V / POSIX IPC */
    "futex", "futex_requeue", "futex_time64", "futex_wait",
    "futex_waitv", "futex_wake", "ipc", "mq_getsetattr", "mq_notify",
    "mq_open", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend",
    "mq_timedsend_time64", "mq_unlink", "msgctl", "msgget", "msgrcv", "msgsnd",
    "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "shmat",
    "shmctl", "shmdt", "shmget",
    /* time */
    "adjtimex", "alarm", "clock_adjtime", "clock_adjtime64", "clock_getres",
    "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep",
    "clock_nanosleep_time64", "getitimer", "gettimeofday", "nanosleep",
    "setitimer", "time", "timer_create", "timer_delete", "timer_getoverrun",
    "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64",
    "times",
    /* sockets (socket itself has an argument filter) */
    "accept", "accept4", "bind", "connect", "getpeername", "getsockname",
    "getsockopt", "listen", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64",
    "recvmsg", "send", "sendmmsg", "sendmsg", "sendto", "setsockopt",
    "shutdown", "socketcall", "socketpair",
    /* the rest */
    "getrandom", "landlock_add_rule", "landlock_create_ruleset",
    "landlock_restrict_self", "sysinfo", "uname",
};

/*
 * Per kernel family, as docker includes them for the host's architecture (and then for every
 * ABI of the filter): x86's TLS and LDT calls, arm's cache, TLS and argument-order variants.
 */
static const char *const allowed_x86[] = {"arch_prctl", "modify_ldt"};
static const char *const allowed_arm[] = {"arm_fadvise64_64", "arm_sync_file_range",
					  "sync_file_range2", "breakpoint",
					  "cacheflush", "set_tls"};

/* The personas docker allows: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, the query. */
static const uint64_t personas[] = {0x0, 0x8, 0x20000, 0x20008, 0xffffffff};

#define AF_VSOCK_FAMILY 40
#define CLONE_NS_FLAGS                                                                             \
	(CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |             \
	 CLONE_NEWPID | CLONE_NEWNET)

enum sbx_seccomp_abis sbx_seccomp_host_abis(void)
{
	struct utsname u;

	if (uname(&u) == 0) {
		if (strcmp(u.machine, "x86_64") == 0)
			return SBX_SECCOMP_X86_64;
		if (strcmp(u.machine, "aarch64") == 0 || strcmp(u.machine, "arm64") == 0)
			return SBX_SECCOMP_AARCH64;
	}
	return SBX_SECCOMP_NATIVE;
}

static int scmp_fail(kn_error **err, int rc, const char *what, const char *name)
{
	return kn_error_set_errno(err, -rc, "seccomp: %s '%s'", what, name);
}

/*
 * Adds one rule for every ABI of ctx. libseccomp takes the number in the numbering of the ABI kiln
 * was built for and translates it through the name for each ABI of the filter (a name an ABI
 * lacks has a pseudo number there, and no rule). A name this libseccomp does not know is skipped.
 */
static int rule(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned int n_cmp,
		const struct scmp_arg_cmp *cmp, kn_error **err)
{
	int nr = seccomp_syscall_resolve_name(name), rc;

	if (nr == __NR_SCMP_ERROR)
		return 0;
	rc = seccomp_rule_add_array(ctx, action, nr, n_cmp, cmp);
	if (rc < 0)
		return scmp_fail(err, rc, "add a rule for", name);
	return 0;
}

static int add_rules(scmp_filter_ctx ctx, enum sbx_seccomp_abis abis, kn_error **err)
{
	const char *const *extra = NULL;
	size_t n_extra = 0;
	struct scmp_arg_cmp cmp;
	uint32_t native = seccomp_arch_native();
	/* s390 passes clone's flags second; every other ABI first */
	unsigned int clone_flags_arg =
	    abis == SBX_SECCOMP_NATIVE && (native == SCMP_ARCH_S390 || native == SCMP_ARCH_S390X);

	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		if (rule(ctx, SCMP_ACT_ALLOW, allowed[i], 0, NULL, err) < 0)
			return -1;
	if (abis == SBX_SECCOMP_X86_64 ||
	    (abis == SBX_SECCOMP_NATIVE && (native == SCMP_ARCH_X86 || native == SCMP_ARCH_X32))) {
		extra = allowed_x86;
		n_extra = sizeof(allowed_x86) / sizeof(allowed_x86[0]);
	} else if (abis == SBX_SECCOMP_AARCH64 ||
		   (abis == SBX_SECCOMP_NATIVE && native == SCMP_ARCH_ARM)) {
		extra = allowed_arm;
		n_extra = sizeof(allowed_arm) / sizeof(allowed_arm[0]);
	}
	for (size_t i = 0; i < n_extra; i++)
		if (rule(ctx, SCMP_ACT_ALLOW, extra[i], 0, NULL, err) < 0)
			return -1;

	cmp = SCMP_CMP(0, SCMP_CMP_NE, AF_VSOCK_FAMILY);
	if (rule(ctx, SCMP_ACT_ALLOW, "socket", 1, &cmp, err) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(personas) / sizeof(personas[0]); i++) {
		cmp = SCMP_CMP(0, SCMP_CMP_EQ, personas[i]);
		if (rule(ctx, SCMP_ACT_ALLOW, "personality", 1, &cmp, err) < 0)
			return -1;
	}
	cmp = SCMP_CMP(clone_flags_arg, SCMP_CMP_MASKED_EQ, CLONE_NS_FLAGS, 0);
	if (rule(ctx, SCMP_ACT_ALLOW, "clone", 1, &cmp, err) < 0)
		return -1;
	return rule(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL, err);
}

/* A context for exactly the ABIs of abis, with the default and bad-ABI actions. */
static int ctx_init(scmp_filter_ctx *ret, enum sbx_seccomp_abis abis, kn_error **err)
{
	static const uint32_t x86[] = {SCMP_ARCH_X86_64, SCMP_ARCH_X86, SCMP_ARCH_X32};
	static const uint32_t arm[] = {SCMP_ARCH_AARCH64, SCMP_ARCH_ARM};
	const uint32_t *arches = NULL;
	size_t n_arches = 0;
	bool keep_native = abis == SBX_SECCOMP_NATIVE;
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
	int rc;

	if (!ctx)
		return kn_error_set(err, ENOMEM, "seccomp: cannot create a filter");
	if (abis == SBX_SECCOMP_X86_64) {
		arches = x86;
		n_arches = sizeof(x86) / sizeof(x86[0]);
	} else if (abis == SBX_SECCOMP_AARCH64) {
		arches = arm;
		n_arches = sizeof(arm) / sizeof(arm[0]);
	}
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ERRNO(ENOSYS));
	if (rc == 0) /* the sandbox sets no_new_privs itself */
		rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	/*
	 * libseccomp's default layout, not its binary tree (SCMP_FLTATR_CTL_OPTIMIZE 2): the tree
	 * costs four times as long to build (32 ms against 8 for x86's three ABIs), and the kernel
	 * (5.11+) runs the program only once per syscall whose answer ignores the arguments and
	 * caches it, so the tree would speed up little more than clone, socket and personality.
	 */
	for (size_t i = 0; rc == 0 && i < n_arches; i++) {
		if (arches[i] == seccomp_arch_native())
			keep_native = true;
		else
			rc = seccomp_arch_add(ctx, arches[i]);
	}
	if (rc == 0 && !keep_native)
		rc = seccomp_arch_remove(ctx, SCMP_ARCH_NATIVE);
	if (rc < 0) {
		seccomp_release(ctx);
		return scmp_fail(err, rc, "set up", "the filter");
	}
	*ret = ctx;
	return 0;
}

int sbx_seccomp_build(enum sbx_seccomp_abis abis, struct sock_filter **ret_prog, size_t *ret_len,
		      kn_error **err)
{
	scmp_filter_ctx ctx = NULL;
	_cleanup_close_ int fd = -1;
	struct sock_filter *prog = NULL;
	struct stat st;
	int rc;

	if (ctx_init(&ctx, abis, err) < 0)
		return -1;
	if (add_rules(ctx, abis, err) < 0)
		goto out_release;
	fd = memfd_create("kiln-seccomp", MFD_CLOEXEC);
	if (fd < 0) {
		kn_error_errno(err, "seccomp: memfd_create");
		goto out_release;
	}
	rc = seccomp_export_bpf(ctx, fd);
	if (rc < 0) {
		scmp_fail(err, rc, "export", "the filter");
		goto out_release;
	}
	if (fstat(fd, &st) < 0 || st.st_size <= 0 || st.st_size % sizeof(*prog) != 0 ||
	    (size_t)st.st_size / sizeof(*prog) > BPF_MAXINSNS) {
		kn_error_set(err, EINVAL, "seccomp: the exported filter has %lld bytes",
			     (long long)st.st_size);
		goto out_release;
	}
	prog = xmalloc((size_t)st.st_size);
	if (pread(fd, prog, (size_t)st.st_size, 0) != st.st_size) {
		free(prog);
		kn_error_errno(err, "seccomp: read back the filter");
		goto out_release;
	}
	seccomp_release(ctx);
	*ret_prog = prog;
	*ret_len = (size_t)st.st_size / sizeof(*prog);
	return 0;

out_release:
	seccomp_release(ctx);
	return -1;
}

static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sock_filter *default_prog;
static size_t default_len;

int sbx_seccomp_default(const struct sock_filter **ret_prog, size_t *ret_len, kn_error **err)
{
	int rc = 0;

	pthread_mutex_lock(&default_lock);
	if (!default_prog)
		rc = sbx_seccomp_build(sbx_seccomp_host_abis(), &default_prog, &default_len, err);
	if (rc == 0) {
		*ret_prog = default_prog;
		*ret_len = default_len;
	}
	pthread_mutex_unlock(&default_lock);
	return rc;
}
