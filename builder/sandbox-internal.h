/* kiln builder: the sandbox that runs one RUN step (after bubblewrap: plan in the parent, execute
 * in the child). Internal to builder/ and its tests. */
#ifndef KILN_BUILDER_SANDBOX_INTERNAL_H
#define KILN_BUILDER_SANDBOX_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "base/base.h"

/** Network of a RUN step: share the host's namespace, or a new one with only `lo` up. */
enum sandbox_network {
	SANDBOX_NET_HOST = 0,
	SANDBOX_NET_NONE,
};

enum sandbox_mount_type {
	/** Bind of a host file or directory (RUN --mount=type=bind|cache): source -> target. */
	SANDBOX_MOUNT_BIND = 0,
	/** A fresh tmpfs at target (RUN --mount=type=tmpfs); size in bytes, 0 = kernel default. */
	SANDBOX_MOUNT_TMPFS,
	/**
	 * A secret (RUN --mount=type=secret): the bytes of the host file `source` (read by the
	 * parent, at most 512 KiB as BuildKit) appear read-only at target (default
	 * /run/secrets/<id>) with mode (default 0400), uid and gid. The bytes live in a tmpfs of
	 * the sandbox's own mount namespace only, never on disk and never in the upper dir.
	 */
	SANDBOX_MOUNT_SECRET,
};

/** One extra mount. Every string is borrowed for the duration of sandbox_run(). */
struct sandbox_mount {
	enum sandbox_mount_type type;
	/** BIND: host path; SECRET: host file with the secret; TMPFS: unused. */
	const char *source;
	/** Absolute path inside the container; SECRET: NULL means /run/secrets/<id>. */
	const char *target;
	/** SECRET: the id (for the default target and error messages). */
	const char *id;
	/** BIND: mount read-only (secrets are always read-only). */
	bool readonly;
	/**
	 * BIND of a directory, not readonly: the command may write, but its writes land in a
	 * throwaway overlay (upper dir in the sandbox's tmpfs) and never reach source, as
	 * BuildKit's RUN --mount=type=bind,rw. A file source is then mounted read-only.
	 */
	bool discard_writes;
	/**
	 * BIND from layers instead of a host path (RUN --mount=type=bind,from=STAGE|IMAGE): when
	 * n_lowerdirs > 0, source is ignored and the merged view of lowerdirs (top first, overlay
	 * format, as struct sandbox_spec's) is mounted at target: read-only, or with its writes
	 * discarded when discard_writes is set (readonly false). Nothing reaches the layers.
	 */
	const char *const *lowerdirs;
	size_t n_lowerdirs;
	/** TMPFS: mounted noexec (docker run --tmpfs's default); readonly applies to it too. */
	bool noexec;
	/** TMPFS: size in bytes (0 = default). */
	uint64_t size;
	/** TMPFS: mode of the root (0 = 01777); SECRET: file mode (0 = 0400). */
	mode_t mode;
	/** SECRET: owner of the file (default 0:0). */
	uid_t uid;
	gid_t gid;
};

/**
 * What one RUN step needs, built by the caller (the build engine). All pointers are borrowed:
 * sandbox_run() copies what it keeps and never frees them.
 *
 * Root file system, one of:
 *  - lowerdirs[0..n_lowerdirs) (ordered TOP FIRST, i.e. the newest layer first) plus upperdir
 *    and workdir (both created by the caller, empty, on the same file system): the root is an
 *    overlayfs of them and after the run upperdir holds exactly the step's changes (overlay
 *    format: whiteouts are 0:0 char devices, opaque dirs carry trusted.overlay.opaque=y).
 *    n_lowerdirs may be 0 with an upperdir (FROM scratch): the upper dir alone is the root.
 *  - rootfs: a plain directory used read-write in place (upperdir/workdir NULL).
 *
 * argv: the command (argv[0] searched in PATH inside the new root when it has no '/').
 * env: NULL-terminated "K=V" list, exactly the process environment, except that PATH is added
 *   (docker's default) when missing and HOME is added from passwd (or "/") when missing.
 * cwd: absolute working directory, created (mkdir -p, root-owned, 0755) when missing, as docker
 *   does; it stays in the layer like docker's. NULL = "/".
 * user: docker's USER string: "name", "uid", "name:group", "uid:gid"; NULL or "" = root.
 *   Resolved inside the sandbox through the merged root's /etc/passwd and /etc/group, with the
 *   supplementary groups the user is a member of (as docker/runc do).
 * hostname: NULL = "kiln".
 * network: SANDBOX_NET_HOST or SANDBOX_NET_NONE.
 * hosts, resolv_conf: the content of /etc/hosts and /etc/resolv.conf during the run; NULL = a
 *   default hosts ("127.0.0.1 localhost <hostname>" and the ::1 line) / the host's
 *   /etc/resolv.conf. /etc/hostname holds the hostname. These files are bind-mounted from a
 *   tmpfs private to the sandbox and never reach the upper dir (see mount points below).
 * mounts: extra mounts, after the base ones, in order, sorted by target depth (parents first).
 * output_fd: where the command's stdout and stderr go (stdin is /dev/null). When < 0 and
 *   output_cb is set, sandbox_run() makes a pipe and calls output_cb(data, len, output_data)
 *   from the calling thread as output arrives. When both are unset, output goes to /dev/null.
 *
 * Mount points the image lacks (e.g. /etc/resolv.conf, /run/secrets/x, /proc in a scratch
 * image): with lowerdirs they live in an extra top layer on the sandbox's tmpfs (the image's
 * directories on the way are copied there with their owner, mode and times), so a RUN that
 * writes nothing leaves the upper dir empty and a write into /etc copies /etc up exactly as the
 * image has it. Otherwise (rootfs, upper dir alone, or a target below another mount) the sandbox
 * creates the stub in place and removes it after the run while it is still an empty file or
 * directory, restoring its parent's mtime; files the command itself wrote are never removed.
 */
struct sandbox_spec {
	const char *const *lowerdirs;
	size_t n_lowerdirs;
	const char *upperdir;
	const char *workdir;
	const char *rootfs;

	const char *const *argv;
	const char *const *env;
	const char *cwd;
	const char *user;
	const char *hostname;
	enum sandbox_network network;
	const char *hosts;
	const char *resolv_conf;
	/** Lines appended to the default /etc/hosts (not to hosts when that is given); NULL: none. */
	const char *extra_hosts;
	/** Size of /dev/shm in bytes (docker's --shm-size); 0 = 64 MiB. */
	unsigned long long shm_size;

	const struct sandbox_mount *mounts;
	size_t n_mounts;

	int output_fd;
	void (*output_cb)(const char *data, size_t len, void *output_data);
	void *output_data;

	/** Directory for the sandbox's short-lived state dir (NULL = $TMPDIR or /tmp). */
	const char *tmpdir;

	/**
	 * RUN --security=insecure: keep every capability, no seccomp filter, /sys and /proc
	 * without docker's read-only and masked paths. Default false: docker's confinement.
	 */
	bool privileged;

	/* ---- kiln run (docker run's process model); the defaults keep a RUN step's ---- */

	/**
	 * The command is the sandbox's PID 1 itself (docker run without --init): no reaper, so a
	 * signal it has no handler for is ignored by the kernel as for any PID 1, and its exit ends
	 * the namespace. Default false: kiln's reaper is PID 1 and the command its child.
	 */
	bool command_pid1;
	/** The command's stdin: a descriptor of the caller (-1, the default: /dev/null). */
	int stdin_fd;
	/** The command's stderr: a descriptor of the caller (-1, the default: as stdout). */
	int stderr_fd;
	/**
	 * A pseudo-terminal of the sandbox's own devpts (/dev/pts/0 inside) is the command's stdin,
	 * stdout, stderr and controlling terminal (stdin_fd, stderr_fd and output_fd are then
	 * ignored); tty_rows/tty_cols (0: unset) its first window size. Its master goes to started().
	 */
	bool tty;
	unsigned short tty_rows, tty_cols;
	/** The root file system is mounted read-only; /dev, /proc, mounts and the run-time files
	 * (hosts, resolv.conf, hostname) stay as they are. */
	bool readonly_root;
	/**
	 * Called once from the calling thread when the command has started (exec'd), with the pid of
	 * the sandbox's PID 1 and the terminal's master (-1 without tty; the callee closes it). It
	 * may signal that pid; it returns once that process has exited, without reaping it (poll a
	 * pidfd), or earlier; sandbox_run() then waits for it. With started set, a PID 1 killed by
	 * signal N (the command itself, or the reaper killed by the caller) gives the exit status
	 * 128+N instead of an error, as docker reports it.
	 */
	void (*started)(pid_t pid, int tty_master, void *started_data);
	void *started_data;
	/* ---- resource limits (without cgroups) ---- */

	/** setrlimit() on the command before it runs (RLIMIT_NOFILE, RLIMIT_NPROC, ...; docker's
	 * --ulimit); none when n_rlimits is 0. */
	const struct sandbox_rlimit *rlimits;
	size_t n_rlimits;
	/** Wall-clock limit in seconds (0: none): past it every process of the sandbox is killed and
	 * sandbox_run() fails with ETIMEDOUT. */
	unsigned timeout_sec;
};

/** One resource limit: resource is an RLIMIT_* value. */
struct sandbox_rlimit {
	int resource;
	unsigned long long soft, hard;
};

/**
 * Fills spec with defaults: everything NULL/0, output_fd, stdin_fd and stderr_fd -1,
 * network = SANDBOX_NET_HOST.
 */
void sandbox_spec_init(struct sandbox_spec *spec);

/**
 * Runs spec->argv in a fresh sandbox: new mount, pid, uts, ipc and cgroup namespaces (and net for
 * SANDBOX_NET_NONE, with only `lo`, up), the overlay root with pivot_root (the host's tree is
 * detached, never reachable), a fresh /proc (docker's read-only /proc/{bus,fs,irq,sys,
 * sysrq-trigger} and masked /proc/kcore, keys, timer_list...), a minimal /dev on tmpfs (null zero
 * full random urandom tty as 0666 nodes, pts with its own ptmx, ptmx/fd/stdin/stdout/stderr
 * links, shm, mqueue), /sys read-only, the resolved user and its supplementary groups, docker's
 * default capability set (0xa80425fb for root; none effective for another user, bounding set
 * the same), no_new_privs, docker's default seccomp profile for an unprivileged container
 * (builder/seccomp-internal.h: an allow-list, so no new namespaces, keyrings, bpf, perf,
 * userfaultfd, io_uring, mount API, modules, kexec, reboot...; for every ABI of the host kernel:
 * x86_64 with i386 and x32, aarch64 with arm), umask 022, every other fd closed, stdin /dev/null. PID 1 is kiln's
 * reaper ("kiln-init" in ps): it forwards signals (a SIGTERM to it reaches the command), reaps
 * zombies and, when the command exits, ends the namespace, so every process left (a daemon) is
 * killed. Nothing is mounted in the caller's mount namespace and no process survives the call;
 * the upper dir is quiescent (overlay unmounted) when it returns.
 *
 * Returns 0 and sets *ret_exit_status to the command's exit code (128+N when killed by signal
 * N). Returns -1 with *err set when the sandbox could not be set up or the command could not be
 * started, e.g. "run: exec '/bin/foo': No such file or directory", "run: exec 'foo': executable
 * file not found in $PATH" or "unable to find user foo: no matching entries in passwd file",
 * or when PID 1 itself was killed from outside ("run: the sandbox was killed by signal 9").
 * Needs root: CAP_SYS_ADMIN in the initial user namespace, or root of a user namespace
 * (rootless, base/userns.h: kn_userns_active()), where the overlays use userxattr, /dev holds
 * binds of the host's nodes, /proc is mounted before pivot_root (the kernel wants a fully
 * visible proc in the mount namespace), /sys is the host's (bound, host network) or made
 * before pivot_root (SANDBOX_NET_NONE), and setgroups is skipped where it is denied.
 *
 * Thread-safe: the children never allocate, take locks or use glibc's set*id wrappers, so the
 * builder may run several sandboxes at once from different threads. The reaper dies with the
 * calling thread (PR_SET_PDEATHSIG), so call it from a thread that lives until it returns.
 * output_cb is called from the calling thread. Do not set SIGCHLD to SIG_IGN in the process.
 *
 * Not done (yet): cgroups (no /sys/fs/cgroup, no resource limits), AppArmor/SELinux labels,
 * extended attributes (ACLs) of image directories copied into the stub layer, a fallback for
 * kernels that refuse overlayfs in a user namespace (before 5.11), the compat ABIs of kernels
 * other than x86_64 and aarch64 (their native ABI is filtered).
 */
int sandbox_run(const struct sandbox_spec *spec, int *ret_exit_status, kn_error **err);

/* --- USER resolution (builder/user.c) --- */

/** A resolved USER. gids: the supplementary groups (owned, sandbox_user_release frees). */
struct sandbox_user {
	uid_t uid;
	gid_t gid;
	gid_t *gids;
	size_t n_gids;
	/** Home from passwd, or "/" when the user has no passwd entry. Owned. */
	char *home;
};

void sandbox_user_release(struct sandbox_user *u);

/**
 * Resolves a docker USER string (see struct sandbox_spec.user) through passwd and group file
 * contents (not NUL-terminated needed; lengths given). This is the allocation-free core also
 * used inside the sandbox: gids[] receives at most max_gids supplementary groups (*ret_n_gids),
 * *ret_home points into passwd (length *ret_home_len) or at "/" when the user is numeric and
 * not in passwd.
 *
 * Rules (runc's GetExecUser, which docker and BuildKit use): a name must exist in passwd
 * ("unable to find user NAME: no matching entries in passwd file"); a number is used as is, with
 * the primary gid and home of its passwd entry when there is one, else gid 0 and home "/". A
 * group name must exist in group ("unable to find group NAME: no matching entries in group
 * file"); a numeric group is used as is. Without an explicit group the supplementary groups are
 * the groups listing the user's name as a member; with one there are none.
 * On failure returns a negative errno-style value; the message is ret->msg (static), then the
 * offending name ret->name/ret->name_len, then ret->msg_suffix (static).
 */
struct sandbox_user_raw {
	uid_t uid;
	gid_t gid;
	size_t n_gids;
	const char *home;
	size_t home_len;
	const char *msg;
	const char *msg_suffix;
	const char *name;
	size_t name_len;
};
int sandbox_user_resolve_raw(const char *user, const char *passwd, size_t passwd_len,
			     const char *group, size_t group_len, gid_t *gids, size_t max_gids,
			     struct sandbox_user_raw *ret);

/**
 * Resolves user through the image files without running anything (for COPY --chown and
 * friends): /etc/passwd and /etc/group are opened as the merged overlay view of lowerdirs (top
 * first) shows them: whiteouts (0:0 devices, .wh. files) and opaque directories respected,
 * symlinks followed across layers and kept inside the image (at most 40). With lowerdirs NULL
 * they are opened inside rootfs (RESOLVE_IN_ROOT). The same lookup happens inside the sandbox
 * for RUN, on the mounted root, so both agree. A missing file (or a
 * missing rootfs, or no rootfs and no lowerdirs: FROM scratch) counts as empty, so numeric ids
 * still resolve. On success fills *ret (release with sandbox_user_release()).
 */
int sandbox_user_lookup(const char *const *lowerdirs, size_t n_lowerdirs, const char *rootfs,
			const char *user, struct sandbox_user *ret, kn_error **err);

/** A path walked through the merged view of layers (sandbox_layers_walk()). Owned fields. */
struct sandbox_walk {
	/** The path exists (any type). */
	bool exists;
	/**
	 * Relative, symlink-free: the path itself when it exists, else the existing part followed
	 * by the missing components (where a stub would go).
	 */
	char *resolved;
	/** The existing directories on the way (relative, symlink-free) and their lstat. */
	char **dirs;
	struct stat *dir_st;
	size_t n_dirs;
};

/**
 * Walks path (relative to the image root) through the merged overlay view of layers (open
 * O_PATH fds of the lowerdirs, top first): whiteouts and opaque directories respected, symlinks
 * followed inside the image (at most 40). Returns 0 and fills *ret (release with
 * sandbox_walk_release()), or -1 with errno: ELOOP, ENOTDIR (a non-directory on the way), EINVAL
 * ("." or ".." among the missing components).
 */
int sandbox_layers_walk(const int *layers, size_t n, const char *path, struct sandbox_walk *ret);
void sandbox_walk_release(struct sandbox_walk *w);

/**
 * The host paths that make up path (relative to the image root, symlink-free as
 * sandbox_layers_walk() resolves it) in the merged view of lowerdirs (top first, overlay format):
 * "<lowerdir>/<path>" of every layer holding it, top first, down to the first layer that hides
 * the rest (an opaque directory on the way, a whiteout, a non-directory). For a directory they
 * are the lowerdirs of an overlay showing exactly that subtree; for a file, the first one is it.
 * *ret (owned, kn_strv_free) is empty when no layer holds it.
 */
int sandbox_layers_paths(const char *const *lowerdirs, size_t n, const char *path, char ***ret,
			 kn_error **err);

/** Limits: passwd/group files larger than this are refused; supplementary groups cap. */
#define SANDBOX_USER_FILE_MAX (4u << 20)
#define SANDBOX_MAX_GROUPS 1024

#endif
