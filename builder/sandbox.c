/* kiln builder: the sandbox that runs one RUN step.
 *
 * After bubblewrap: the parent turns the declarative struct sandbox_spec into a plan (every
 * string, buffer and array the child will need is allocated here, the seccomp program included),
 * then clones a child into new mount, pid, uts, ipc, cgroup (and net) namespaces. That child is
 * PID 1 of the new pid namespace, the "reaper": it builds the root (private propagation, a tmpfs
 * for run-time files over the state dir, the overlay, pivot_root, /proc, /dev, /sys, run-time
 * files and extra mounts), resolves USER inside the new root and clones the command, which drops
 * to the user, docker's capability set, no_new_privs and the seccomp filter, and execs. The reaper
 * forwards signals, reaps zombies and exits with the command's status, which ends the namespace and
 * kills whatever the command left behind.
 *
 * Rules for code that runs after clone (the parent may be multi-threaded, another thread may
 * hold malloc's or stdio's locks): no allocation, no stdio, no glibc set*id wrappers (they
 * signal the parent's other threads, which do not exist here): raw syscalls only. Errors and
 * the mount-point stubs the child creates are reported to the parent over a CLOEXEC pipe as
 * records; the pipe reaches EOF when the command has exec'd (or everything died).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <sched.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <poll.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "base/userns.h"
#include "builder/sandbox-internal.h"
#include "builder/seccomp-internal.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define DEFAULT_HOSTNAME "kiln"
#define SECRET_MAX (512u << 10)
#define RESOLV_MAX (64u << 10)
#define EXIT_SETUP 125

/* docker's default capabilities: 0x00000000a80425fb. */
#define CAP_BIT(c) (1ull << (c))
static const uint64_t docker_caps =
    CAP_BIT(CAP_CHOWN) | CAP_BIT(CAP_DAC_OVERRIDE) | CAP_BIT(CAP_FSETID) | CAP_BIT(CAP_FOWNER) |
    CAP_BIT(CAP_MKNOD) | CAP_BIT(CAP_NET_RAW) | CAP_BIT(CAP_SETGID) | CAP_BIT(CAP_SETUID) |
    CAP_BIT(CAP_SETFCAP) | CAP_BIT(CAP_SETPCAP) | CAP_BIT(CAP_NET_BIND_SERVICE) |
    CAP_BIT(CAP_SYS_CHROOT) | CAP_BIT(CAP_KILL) | CAP_BIT(CAP_AUDIT_WRITE);

/* docker's masked and read-only /proc and /sys paths. */
static const char *const masked_paths[] = {
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
};
static const char *const readonly_paths[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

struct dev_node {
	const char *path;
	unsigned int major, minor;
};
static const struct dev_node dev_nodes[] = {
    {"/dev/null", 1, 3},   {"/dev/zero", 1, 5},	   {"/dev/full", 1, 7},
    {"/dev/random", 1, 8}, {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0},
};
static const char *const dev_links[][2] = {
    {"/dev/ptmx", "pts/ptmx"},		{"/dev/fd", "/proc/self/fd"},
    {"/dev/stdin", "/proc/self/fd/0"},	{"/dev/stdout", "/proc/self/fd/1"},
    {"/dev/stderr", "/proc/self/fd/2"}, {"/dev/core", "/proc/kcore"},
};

/* Child -> parent records: a header, then len bytes of path or message. */
enum rec_kind {
	REC_STUB_FILE = 1,
	REC_STUB_DIR = 2,
	REC_ERROR = 3,
};
struct rec_hdr {
	uint32_t kind;
	int32_t err;
	uint32_t len;
};
/* A stub record's payload starts with its parent directory's times around the creation. */
struct stub_times {
	struct timespec pre;
	struct timespec post;
};

/* A file served from the sandbox's private tmpfs: hosts, resolv.conf, hostname, secrets. */
struct sbx_file {
	char *stage;  /* its path in the state dir (before pivot_root) */
	char *target; /* writable copy of the container path */
	char *data;
	size_t len;
	mode_t mode;
	uid_t uid;
	gid_t gid;
	bool readonly;
	int fd;
};

/* A bind or tmpfs mount from the spec. */
/* A mount from the spec: a bind, a tmpfs or a secret (then files[file_idx] has its bytes). */
struct sbx_mnt {
	enum sandbox_mount_type type;
	const char *source;
	char *target;
	char *tmpfs_opts;
	bool readonly;
	bool noexec;
	bool src_is_dir;
	const char *const *lowers; /* a bind of layers (n_lowers > 0) */
	size_t n_lowers;
	bool layers_ro; /* layers mounted as a read-only overlay (no upper dir) */
	char *scratch;	/* discard_writes: "<state>/mN" holding the overlay's upper and work dirs */
	char *scratch_upper;
	char *scratch_work;
	size_t file_idx;
	int fd;
};

/* An entry of the stub layer. */
struct sbx_stub {
	char *rel;   /* relative to the image root, for dedup */
	char *path;  /* in the state dir */
	mode_t mode; /* with its type: S_IFDIR or S_IFREG */
	uid_t uid;
	gid_t gid;
	struct timespec times[2]; /* atime, mtime; tv_nsec UTIME_OMIT when new */
};

struct sbx_plan {
	const struct sandbox_spec *spec;
	char *state;
	char *root;
	char *run;
	bool overlay;
	const char *root_src; /* bind source of the root when not an overlay */
	char *lower_joined;   /* "lowerdir=" fallback for kernels without lowerdir+ */

	struct sbx_file *files;
	size_t n_files;
	size_t n_base_files; /* hosts, resolv.conf, hostname; secrets follow */
	struct sbx_mnt *mnts;
	size_t n_mnts;

	char **exec_paths; /* NULL-terminated candidates for argv[0] */
	bool path_search;
	char **argv;
	char **envp;
	ssize_t home_slot;
	char *home_env;
	size_t file_cap;
	char *passwd;
	char *group;
	gid_t *gids;
	char *linkbuf;
	size_t linkbuf_cap;
	char *msgbuf;
	size_t msgbuf_cap;
	char *cwd;
	const char *hostname;
	char shm_opts[64]; /* mount options of /dev/shm */
	/*
	 * Overlay mode: mount points missing from the image are created in a small extra top
	 * layer in the state tmpfs (directories on the way copy the image's owner, mode and
	 * times), so they never touch the upper dir.
	 */
	char *stubs_dir;
	struct sbx_stub *stubs;
	size_t n_stubs;
	const struct sock_filter *bpf; /* the seccomp program (NULL: none), shared: not freed */
	size_t n_bpf;
	/*
	 * The reaper batches its records here and writes them once (before the command starts or
	 * when it fails), so the parent wakes up once rather than per record.
	 */
	char *recbuf;
	size_t recbuf_cap;
	size_t *reclen;

	int err_w;
	int out_w;
	int in_fd;     /* spec->stdin_fd, moved above stdio in the reaper */
	int errout_w;  /* spec->stderr_fd, likewise */
	int console_w; /* tty: the socket that carries the terminal's master to the parent */
	int tty_slave; /* tty: the terminal, opened by the reaper */

	/*
	 * Rootless (kn_userns_active()): the overlays use user.overlay.* xattrs (userxattr), /dev
	 * nodes are binds of the host's (a user namespace cannot mknod them), /sys is a read-only
	 * bind of the host's with the host network (sysfs needs a network namespace of our own)
	 * and devpts is given gid=5 only when that gid is mapped. The fds are opened by the reaper
	 * before pivot_root.
	 */
	bool userns;
	int dev_fds[KN_ARRAY_SIZE(dev_nodes)];
	int sys_fd;
	const char *devpts_opts;
	char *proc_path; /* "<root>/proc" */
	bool setgroups_denied; /* /proc/self/setgroups says "deny" */
};

/* ---------- code run in the children: no allocation, raw syscalls ---------- */

static size_t c_strlen(const char *s)
{
	return s ? strlen(s) : 0;
}

static void write_all_iov(int fd, struct iovec *iov, int n)
{
	int i = 0;

	/* Write every byte (a record may exceed PIPE_BUF); retry on EINTR and short writes. */
	while (i < n) {
		ssize_t w = writev(fd, iov + i, n - i);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		while (i < n && (size_t)w >= iov[i].iov_len) {
			w -= (ssize_t)iov[i].iov_len;
			i++;
		}
		if (i < n) {
			iov[i].iov_base = (char *)iov[i].iov_base + w;
			iov[i].iov_len -= (size_t)w;
		}
	}
}

/* Sends the batched records (see sbx_plan.recbuf). */
static void rec_flush(const struct sbx_plan *p)
{
	struct iovec iov = {p->recbuf, *p->reclen};

	if (*p->reclen)
		write_all_iov(p->err_w, &iov, 1);
	*p->reclen = 0;
}

static void rec_writev(const struct sbx_plan *p, uint32_t kind, int e, struct iovec *iov, int n)
{
	struct rec_hdr h = {kind, e, 0};
	size_t total;

	for (int k = 1; k < n; k++)
		h.len += (uint32_t)iov[k].iov_len;
	iov[0].iov_base = &h;
	iov[0].iov_len = sizeof(h);
	total = sizeof(h) + h.len;
	if (p->recbuf && *p->reclen + total > p->recbuf_cap)
		rec_flush(p);
	if (!p->recbuf || total > p->recbuf_cap) {
		write_all_iov(p->err_w, iov, n);
		return;
	}
	for (int k = 0; k < n; k++) {
		if (iov[k].iov_len)
			memcpy(p->recbuf + *p->reclen, iov[k].iov_base, iov[k].iov_len);
		*p->reclen += iov[k].iov_len;
	}
}

static void rec_write(const struct sbx_plan *p, uint32_t kind, int e, const char *a, const char *b,
		      const char *c)
{
	struct iovec iov[4] = {
	    {NULL, 0},
	    {(void *)a, c_strlen(a)},
	    {(void *)b, c_strlen(b)},
	    {(void *)c, c_strlen(c)},
	};

	rec_writev(p, kind, e, iov, 4);
}

/* Reports a failure: "a b c" with errno e; returns -1. */
static int child_fail(const struct sbx_plan *p, int e, const char *a, const char *b, const char *c)
{
	rec_write(p, REC_ERROR, e, a, b, c);
	return -1;
}

static void fmt_uint(char *buf, size_t size, unsigned long v)
{
	char tmp[24];
	size_t n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v && n < sizeof(tmp));
	for (i = 0; i < n && i + 1 < size; i++)
		buf[i] = tmp[n - 1 - i];
	buf[i] = '\0';
}

/* The mtime of path's parent directory (path is writable, cut and restored). */
static void parent_mtime(char *path, struct timespec *ret)
{
	char *slash = strrchr(path, '/');
	struct stat st;
	int r;

	ret->tv_sec = 0;
	ret->tv_nsec = UTIME_OMIT;
	if (!slash)
		return;
	if (slash == path) {
		r = stat("/", &st);
	} else {
		*slash = '\0';
		r = stat(path, &st);
		*slash = '/';
	}
	if (r == 0)
		*ret = st.st_mtim;
}

/* Reports a stub created at path: resolved through /proc/self/fd so symlinks do not matter. */
static void report_stub(const struct sbx_plan *p, uint32_t kind, int fd, char *path,
			struct stub_times *t)
{
	char proc[40] = "/proc/self/fd/";
	const char *real = path;
	ssize_t n = -1;

	parent_mtime(path, &t->post);
	if (fd >= 0) {
		fmt_uint(proc + 14, sizeof(proc) - 14, (unsigned long)fd);
		n = readlink(proc, p->linkbuf, p->linkbuf_cap - 1);
	}
	if (n > 0 && (size_t)n < p->linkbuf_cap - 1) {
		p->linkbuf[n] = '\0';
		real = p->linkbuf;
	}
	{
		struct iovec iov[3] = {
		    {NULL, 0},
		    {t, sizeof(*t)},
		    {(void *)real, strlen(real)},
		};

		rec_writev(p, kind, 0, iov, 3);
	}
}

/* mkdir -p of a writable absolute path; reports every directory it created when report. */
static int ensure_dir(const struct sbx_plan *p, char *path, bool report)
{
	struct stub_times t;

	for (char *s = path + 1;; s++) {
		char c = *s;

		if (c != '/' && c != '\0')
			continue;
		if (s[-1] == '/') {
			if (!c)
				break;
			continue;
		}
		*s = '\0';
		if (report)
			parent_mtime(path, &t.pre);
		if (mkdir(path, 0755) == 0) {
			if (report) {
				int fd = open(path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

				report_stub(p, REC_STUB_DIR, fd, path, &t);
				if (fd >= 0)
					close(fd);
			}
		} else if (errno != EEXIST) {
			int e = errno;

			*s = c;
			return child_fail(p, e, "run: create directory '", path, "'");
		}
		*s = c;
		if (!c)
			break;
	}
	return 0;
}

/* Makes sure a file exists at path for a file mount, reporting what it created. */
static int ensure_file(const struct sbx_plan *p, char *path)
{
	struct stub_times t;
	char *slash;
	int fd;

	fd = open(path, O_PATH | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	if (errno != ENOENT)
		return child_fail(p, errno, "run: open '", path, "'");
	slash = strrchr(path, '/');
	if (slash && slash != path) {
		*slash = '\0';
		if (ensure_dir(p, path, true) < 0) {
			*slash = '/';
			return -1;
		}
		*slash = '/';
	}
	/* Follows a dangling symlink on purpose: the stub lands where the image points. */
	parent_mtime(path, &t.pre);
	fd = open(path, O_CREAT | O_WRONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC, 0644);
	if (fd < 0)
		return child_fail(p, errno, "run: create mount point '", path, "'");
	report_stub(p, REC_STUB_FILE, fd, path, &t);
	close(fd);
	return 0;
}

static int mount_fd_at(const struct sbx_plan *p, int fd, const char *target)
{
	if (move_mount(fd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_SYMLINKS) <
	    0)
		return child_fail(p, errno, "run: mount '", target, "'");
	return 0;
}

static int set_mount_attr(int dfd, const char *path, unsigned int flags, uint64_t attrs)
{
	struct mount_attr attr = {.attr_set = attrs};

	return mount_setattr(dfd, path, flags, &attr, sizeof(attr));
}

static int write_file_all(int fd, const char *data, size_t len)
{
	while (len) {
		ssize_t n = write(fd, data, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The state tmpfs (private to this namespace) with the run-time files. */
static int setup_state(const struct sbx_plan *p)
{
	if (mount("tmpfs", p->state, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700") < 0)
		return child_fail(p, errno, "run: mount tmpfs on '", p->state, "'");
	if (mkdir(p->root, 0755) < 0 || mkdir(p->run, 0755) < 0 ||
	    (p->stubs_dir && mkdir(p->stubs_dir, 0755) < 0))
		return child_fail(p, errno, "run: create '", p->root, "'");
	for (size_t i = 0; i < p->n_stubs; i++) {
		const struct sbx_stub *st = &p->stubs[i];
		int fd;

		if (S_ISDIR(st->mode)) {
			if (mkdir(st->path, st->mode & 07777) < 0)
				return child_fail(p, errno, "run: create '", st->path, "'");
			fd = open(st->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		} else {
			fd = open(st->path, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC,
				  st->mode & 07777);
		}
		if (fd < 0 || fchown(fd, st->uid, st->gid) < 0 ||
		    fchmod(fd, st->mode & 07777) < 0) {
			int e = errno;

			if (fd >= 0)
				close(fd);
			return child_fail(p, e, "run: create '", st->path, "'");
		}
		close(fd);
	}
	/* Times last, children first: creating entries changed their parents' mtimes. */
	for (size_t i = p->n_stubs; i-- > 0;) {
		const struct sbx_stub *st = &p->stubs[i];

		if (st->times[1].tv_nsec != UTIME_OMIT &&
		    utimensat(AT_FDCWD, st->path, st->times, AT_SYMLINK_NOFOLLOW) < 0)
			return child_fail(p, errno, "run: set times of '", st->path, "'");
	}
	for (size_t i = 0; i < p->n_mnts; i++) {
		const struct sbx_mnt *m = &p->mnts[i];

		if (m->scratch &&
		    (mkdir(m->scratch, 0700) < 0 || mkdir(m->scratch_upper, 0755) < 0 ||
		     mkdir(m->scratch_work, 0700) < 0))
			return child_fail(p, errno, "run: create '", m->scratch, "'");
	}
	for (size_t i = 0; i < p->n_files; i++) {
		const struct sbx_file *f = &p->files[i];
		int fd = open(f->stage, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);

		if (fd < 0)
			return child_fail(p, errno, "run: create '", f->stage, "'");
		if (write_file_all(fd, f->data, f->len) < 0 || fchown(fd, f->uid, f->gid) < 0 ||
		    fchmod(fd, f->mode) < 0) {
			int e = errno;

			close(fd);
			return child_fail(p, e, "run: write '", f->stage, "'");
		}
		close(fd);
	}
	return 0;
}

/* Reports a failed overlay option or creation: "what 'path': <kernel's message>" and errno. */
static int fs_error(const struct sbx_plan *p, int fsfd, int e, const char *what, const char *path)
{
	ssize_t n = -1;
	struct iovec iov[7] = {
	    {NULL, 0},
	    {(void *)what, strlen(what)},
	    {(void *)" '", path ? 2 : 0},
	    {(void *)path, c_strlen(path)},
	    {(void *)"'", path ? 1 : 0},
	    {(void *)": ", 0},
	    {p->msgbuf, 0},
	};

	/* The kernel may queue a message on the fs context ("e overlay: ..."): add it. */
	if (fsfd >= 0)
		n = read(fsfd, p->msgbuf, p->msgbuf_cap - 1);
	while (n > 0 && p->msgbuf[n - 1] == '\n')
		n--;
	if (n > 2 && p->msgbuf[1] == ' ') {
		iov[5].iov_len = 2;
		iov[6].iov_base = p->msgbuf + 2;
		iov[6].iov_len = (size_t)n - 2;
	}
	rec_writev(p, REC_ERROR, e, iov, 7);
	return -1;
}

static int mount_overlay(const struct sbx_plan *p)
{
	const struct sandbox_spec *s = p->spec;
	int fsfd, mfd, r = -1;

	fsfd = fsopen("overlay", FSOPEN_CLOEXEC);
	if (fsfd < 0)
		return child_fail(p, errno, "run: overlayfs is not available", NULL, NULL);
	for (size_t k = 0; k < s->n_lowerdirs + 1; k++) {
		const char *dir = k == 0 ? p->stubs_dir : s->lowerdirs[k - 1];
		size_t i = p->stubs_dir ? k : k - 1;

		if (!dir)
			continue;
		if (fsconfig(fsfd, FSCONFIG_SET_STRING, "lowerdir+", dir, 0) < 0) {
			if (errno == EINVAL && i == 0 && p->lower_joined) {
				/* Kernels before 6.8: one colon-separated option. */
				if (fsconfig(fsfd, FSCONFIG_SET_STRING, "lowerdir", p->lower_joined,
					     0) < 0) {
					fs_error(p, fsfd, errno, "run: overlay lowerdir",
						 p->lower_joined);
					goto out;
				}
				break;
			}
			fs_error(p, fsfd, errno, "run: overlay lowerdir", dir);
			goto out;
		}
	}
	if (fsconfig(fsfd, FSCONFIG_SET_STRING, "upperdir", s->upperdir, 0) < 0) {
		fs_error(p, fsfd, errno, "run: overlay upperdir", s->upperdir);
		goto out;
	}
	if (fsconfig(fsfd, FSCONFIG_SET_STRING, "workdir", s->workdir, 0) < 0) {
		fs_error(p, fsfd, errno, "run: overlay workdir", s->workdir);
		goto out;
	}
	/* Keep the upper dir a plain tree the layer differ can read: no redirects or metacopy. */
	/* userxattr forbids following redirects ("off" still follows): "nofollow" there. */
	(void)fsconfig(fsfd, FSCONFIG_SET_STRING, "redirect_dir", p->userns ? "nofollow" : "off",
		       0);
	(void)fsconfig(fsfd, FSCONFIG_SET_STRING, "metacopy", "off", 0);
	(void)fsconfig(fsfd, FSCONFIG_SET_STRING, "index", "off", 0);
	if (p->userns && fsconfig(fsfd, FSCONFIG_SET_FLAG, "userxattr", NULL, 0) < 0) {
		fs_error(p, fsfd, errno, "run: overlay option userxattr", NULL);
		goto out;
	}
	if (fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		goto fail;
	mfd = fsmount(fsfd, FSMOUNT_CLOEXEC, 0);
	if (mfd < 0)
		goto fail;
	r = mount_fd_at(p, mfd, p->root);
	close(mfd);
	goto out;
fail:
	fs_error(p, fsfd, errno, "run: mount overlay with upperdir", s->upperdir);
out:
	close(fsfd);
	return r;
}

static int setup_root(const struct sbx_plan *p)
{
	if (p->overlay)
		return mount_overlay(p);
	if (mount(p->root_src, p->root, NULL, MS_BIND | MS_REC, NULL) < 0)
		return child_fail(p, errno, "run: bind root '", p->root_src, "'");
	return 0;
}

/*
 * A detached overlay for a bind: over a host directory or over layers, with a throwaway upper
 * dir in the state tmpfs (discard_writes), or layers alone, read-only.
 */
static int mount_bind_overlay(const struct sbx_plan *p, struct sbx_mnt *m)
{
	int fsfd = fsopen("overlay", FSOPEN_CLOEXEC), r = -1;
	const char *what = m->n_lowers ? m->lowers[0] : m->source;

	if (fsfd < 0)
		return child_fail(p, errno, "run: overlayfs is not available", NULL, NULL);
	for (size_t i = 0; i < (m->n_lowers ? m->n_lowers : 1); i++) {
		what = m->n_lowers ? m->lowers[i] : m->source;
		if (fsconfig(fsfd, FSCONFIG_SET_STRING, "lowerdir+", what, 0) < 0)
			goto fail;
	}
	what = m->n_lowers ? m->lowers[0] : m->source;
	if (p->userns && fsconfig(fsfd, FSCONFIG_SET_FLAG, "userxattr", NULL, 0) < 0)
		goto fail;
	if (m->scratch &&
	    (fsconfig(fsfd, FSCONFIG_SET_STRING, "upperdir", m->scratch_upper, 0) < 0 ||
	     fsconfig(fsfd, FSCONFIG_SET_STRING, "workdir", m->scratch_work, 0) < 0))
		goto fail;
	if (fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		goto fail;
	m->fd = fsmount(fsfd, FSMOUNT_CLOEXEC, m->scratch ? 0 : MOUNT_ATTR_RDONLY);
	if (m->fd < 0)
		goto fail;
	r = 0;
	goto out;
fail:
	fs_error(p, fsfd, errno, "run: overlay for the mount of", what);
out:
	close(fsfd);
	return r;
}

/* Clones every host-side mount source while the host's tree is still reachable. */
static int open_sources(struct sbx_plan *p)
{
	for (size_t i = 0; p->userns && i < KN_ARRAY_SIZE(dev_nodes); i++) {
		p->dev_fds[i] = open_tree(AT_FDCWD, dev_nodes[i].path,
					  OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
		if (p->dev_fds[i] < 0)
			return child_fail(p, errno, "run: clone the host's '", dev_nodes[i].path,
					  "'");
	}
	/*
	 * A user namespace may mount sysfs only for a network namespace of its own and while a
	 * sysfs is visible: a fresh one made now (net none), else the host's, bound.
	 */
	if (p->userns) {
		unsigned int attrs = (p->spec->privileged ? 0 : MOUNT_ATTR_RDONLY) |
				     MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;

		if (p->spec->network == SANDBOX_NET_HOST) {
			p->sys_fd = open_tree(AT_FDCWD, "/sys",
					      OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
			if (p->sys_fd < 0 || set_mount_attr(p->sys_fd, "",
							    AT_EMPTY_PATH | AT_RECURSIVE, attrs) < 0)
				return child_fail(p, errno, "run: clone the host's '/sys'", NULL,
						  NULL);
		} else {
			int fsfd = fsopen("sysfs", FSOPEN_CLOEXEC);

			if (fsfd < 0 || fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0 ||
			    (p->sys_fd = fsmount(fsfd, FSMOUNT_CLOEXEC, attrs)) < 0) {
				int e = errno;

				if (fsfd >= 0)
					close(fsfd);
				return child_fail(p, e, "run: mount '/sys'", NULL, NULL);
			}
			close(fsfd);
		}
	}
	for (size_t i = 0; i < p->n_files; i++) {
		struct sbx_file *f = &p->files[i];

		f->fd = open_tree(AT_FDCWD, f->stage, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
		if (f->fd < 0)
			return child_fail(p, errno, "run: clone '", f->stage, "'");
		if (f->readonly && set_mount_attr(f->fd, "", AT_EMPTY_PATH,
						  MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
						      MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC) < 0)
			return child_fail(p, errno, "run: make '", f->target, "' read-only");
	}
	for (size_t i = 0; i < p->n_mnts; i++) {
		struct sbx_mnt *m = &p->mnts[i];

		if (m->type != SANDBOX_MOUNT_BIND)
			continue;
		if (m->scratch || m->layers_ro) {
			if (mount_bind_overlay(p, m) < 0)
				return -1;
			continue;
		}
		if (m->n_lowers == 1) {
			m->fd = open_tree(AT_FDCWD, m->lowers[0],
					  OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
			if (m->fd < 0 || set_mount_attr(m->fd, "", AT_EMPTY_PATH | AT_RECURSIVE,
							MOUNT_ATTR_RDONLY) < 0)
				return child_fail(p, errno, "run: bind layer '", m->lowers[0], "'");
			continue;
		}
		m->fd = open_tree(AT_FDCWD, m->source,
				  OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
		if (m->fd < 0)
			return child_fail(p, errno, "run: bind source '", m->source, "'");
		if (m->readonly &&
		    set_mount_attr(m->fd, "", AT_EMPTY_PATH | AT_RECURSIVE, MOUNT_ATTR_RDONLY) < 0)
			return child_fail(p, errno, "run: make '", m->target, "' read-only");
	}
	return 0;
}

static int enter_root(const struct sbx_plan *p)
{
	if (chdir(p->root) < 0)
		return child_fail(p, errno, "run: chdir '", p->root, "'");
	/* Stack the old root on the new one, then detach it: nothing of the host stays reachable.
	 */
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return child_fail(p, errno, "run: pivot_root", NULL, NULL);
	if (umount2(".", MNT_DETACH) < 0)
		return child_fail(p, errno, "run: detach the old root", NULL, NULL);
	if (chdir("/") < 0)
		return child_fail(p, errno, "run: chdir '/'", NULL, NULL);
	return 0;
}

/*
 * Mounts /proc at `at` (NULL: "/proc" of the new root). A user namespace may mount proc only
 * while a fully visible proc is in its mount namespace, so rootless mounts it before pivot_root
 * at "<root>/proc" (sbx_plan.proc_path), as rootless runc does.
 */
static int setup_proc(const struct sbx_plan *p, char *at)
{
	struct stub_times t;
	char proc[] = "/proc";

	if (!at)
		at = proc;
	parent_mtime(at, &t.pre);
	if (mkdir(at, 0555) == 0) {
		if (at == proc) {
			report_stub(p, REC_STUB_DIR, -1, proc, &t);
		} else {
			struct iovec iov[3] = {{NULL, 0}, {&t, sizeof(t)}, {proc, 5}};

			parent_mtime(at, &t.post);
			rec_writev(p, REC_STUB_DIR, 0, iov, 3);
		}
	}
	if (at != proc) {
		/* Not through a symlink of the image: that would resolve on the host's side. */
		char fdpath[40] = "/proc/self/fd/";
		int fd = open(at, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);

		if (fd < 0)
			return child_fail(p, errno, "run: '/proc' of the image", NULL, NULL);
		fmt_uint(fdpath + 14, sizeof(fdpath) - 14, (unsigned long)fd);
		if (mount("proc", fdpath, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
			int e = errno;

			close(fd);
			return child_fail(p, e, "run: mount '/proc' (in a container, /proc must be "
						"unmasked: procMount: Unmasked in Kubernetes)",
					  NULL, NULL);
		}
		close(fd);
		return 0;
	}
	if (mount("proc", at, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return child_fail(p, errno, "run: mount '/proc'", NULL, NULL);
	return 0;
}

static int setup_dev(struct sbx_plan *p)
{
	char dev[] = "/dev";

	if (ensure_dir(p, dev, true) < 0)
		return -1;
	if (mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k") < 0)
		return child_fail(p, errno, "run: mount '/dev'", NULL, NULL);
	for (size_t i = 0; i < sizeof(dev_nodes) / sizeof(dev_nodes[0]); i++) {
		const struct dev_node *d = &dev_nodes[i];

		if (p->userns) {
			int fd = open(d->path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666);

			if (fd < 0)
				return child_fail(p, errno, "run: create '", d->path, "'");
			close(fd);
			if (mount_fd_at(p, p->dev_fds[i], d->path) < 0)
				return -1;
			close(p->dev_fds[i]);
			p->dev_fds[i] = -1;
		} else if (mknod(d->path, S_IFCHR | 0666, makedev(d->major, d->minor)) < 0) {
			return child_fail(p, errno, "run: mknod '", d->path, "'");
		}
	}
	if (mkdir("/dev/pts", 0755) < 0 || mkdir("/dev/shm", 01777) < 0 ||
	    mkdir("/dev/mqueue", 0755) < 0)
		return child_fail(p, errno, "run: populate '/dev'", NULL, NULL);
	if (mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, p->devpts_opts) < 0)
		return child_fail(p, errno, "run: mount '/dev/pts'", NULL, NULL);
	if (mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, p->shm_opts) < 0)
		return child_fail(p, errno, "run: mount '/dev/shm'", NULL, NULL);
	/* A kernel without POSIX message queues just has no /dev/mqueue. */
	if (mount("mqueue", "/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
		if (errno != ENODEV)
			return child_fail(p, errno, "run: mount '/dev/mqueue'", NULL, NULL);
		(void)rmdir("/dev/mqueue");
	}
	for (size_t i = 0; i < sizeof(dev_links) / sizeof(dev_links[0]); i++) {
		if (symlink(dev_links[i][1], dev_links[i][0]) < 0)
			return child_fail(p, errno, "run: symlink '", dev_links[i][0], "'");
	}
	return 0;
}

static int setup_sys(struct sbx_plan *p)
{
	char sys[] = "/sys";

	if (ensure_dir(p, sys, true) < 0)
		return -1;
	if (p->sys_fd >= 0) {
		if (mount_fd_at(p, p->sys_fd, "/sys") < 0)
			return -1;
		close(p->sys_fd);
		p->sys_fd = -1;
		return 0;
	}
	if (mount("sysfs", "/sys", "sysfs",
		  (p->spec->privileged ? 0 : MS_RDONLY) | MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  NULL) < 0)
		return child_fail(p, errno, "run: mount '/sys'", NULL, NULL);
	return 0;
}

/* docker's masked paths (hidden behind /dev/null or an empty read-only tmpfs) and read-only ones.
 */
static int setup_proc_masks(const struct sbx_plan *p)
{
	if (p->spec->privileged)
		return 0;
	for (size_t i = 0; i < sizeof(readonly_paths) / sizeof(readonly_paths[0]); i++) {
		const char *path = readonly_paths[i];

		if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0) {
			if (errno == ENOENT)
				continue;
			return child_fail(p, errno, "run: bind '", path, "'");
		}
		if (set_mount_attr(AT_FDCWD, path, AT_RECURSIVE,
				   MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
				       MOUNT_ATTR_NOEXEC) < 0)
			return child_fail(p, errno, "run: make '", path, "' read-only");
	}
	for (size_t i = 0; i < sizeof(masked_paths) / sizeof(masked_paths[0]); i++) {
		const char *path = masked_paths[i];
		struct stat st;
		int r;

		if (stat(path, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode))
			r = mount("tmpfs", path, "tmpfs", MS_RDONLY, "size=0k,mode=0555");
		else
			r = mount("/dev/null", path, NULL, MS_BIND, NULL);
		if (r < 0)
			return child_fail(p, errno, "run: mask '", path, "'");
	}
	return 0;
}

static int setup_net_none(const struct sbx_plan *p)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return child_fail(p, errno, "run: socket", NULL, NULL);
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, "lo", 3);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		goto fail;
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		goto fail;
	close(fd);
	return 0;
fail:
	close(fd);
	return child_fail(p, errno, "run: bring up 'lo'", NULL, NULL);
}

static int setup_files_and_mounts(struct sbx_plan *p)
{
	for (size_t i = 0; i < p->n_base_files + p->n_mnts; i++) {
		struct sbx_mnt *m = i < p->n_base_files ? NULL : &p->mnts[i - p->n_base_files];
		struct sbx_file *f = NULL;

		if (!m)
			f = &p->files[i];
		else if (m->type == SANDBOX_MOUNT_SECRET)
			f = &p->files[m->file_idx];
		if (f) {
			if (ensure_file(p, f->target) < 0 || mount_fd_at(p, f->fd, f->target) < 0)
				return -1;
			close(f->fd);
			f->fd = -1;
			continue;
		}
		if (m->type == SANDBOX_MOUNT_TMPFS) {
			if (ensure_dir(p, m->target, true) < 0)
				return -1;
			if (mount("tmpfs", m->target, "tmpfs",
				  MS_NOSUID | MS_NODEV | (m->noexec ? MS_NOEXEC : 0) |
				      (m->readonly ? MS_RDONLY : 0),
				  m->tmpfs_opts) < 0)
				return child_fail(p, errno, "run: mount tmpfs on '", m->target,
						  "'");
			continue;
		}
		if (m->src_is_dir ? ensure_dir(p, m->target, true) < 0
				  : ensure_file(p, m->target) < 0)
			return -1;
		if (mount_fd_at(p, m->fd, m->target) < 0)
			return -1;
		close(m->fd);
		m->fd = -1;
	}
	return 0;
}

/* Reads a small regular file of the new root into buf (at most cap bytes); missing = empty. */
static int read_root_file(const struct sbx_plan *p, const char *path, char *buf, size_t cap,
			  size_t *ret_len)
{
	struct stat st;
	size_t len = 0;
	int fd;

	*ret_len = 0;
	fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR
			   ? 0
			   : child_fail(p, errno, "run: open '", path, "'");
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return 0;
	}
	for (;;) {
		ssize_t n;

		if (len == cap) {
			close(fd);
			return child_fail(p, EFBIG, "run: read '", path, "'");
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;

			close(fd);
			return child_fail(p, e, "run: read '", path, "'");
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	*ret_len = len;
	return 0;
}

struct cmd_ids {
	uid_t uid;
	gid_t gid;
	size_t n_gids;
};

static int resolve_user(struct sbx_plan *p, struct cmd_ids *ids)
{
	struct sandbox_user_raw raw;
	size_t plen, glen;
	int r;

	if (read_root_file(p, "/etc/passwd", p->passwd, p->file_cap, &plen) < 0 ||
	    read_root_file(p, "/etc/group", p->group, p->file_cap, &glen) < 0)
		return -1;
	/* gids[0] is kept for the primary group (below). */
	r = sandbox_user_resolve_raw(p->spec->user, p->passwd, plen, p->group, glen, p->gids + 1,
				     SANDBOX_MAX_GROUPS - 1, &raw);
	if (r < 0) {
		/* The name is a slice of the USER string or of passwd: copy it NUL-terminated. */
		size_t n = raw.name_len < p->msgbuf_cap - 1 ? raw.name_len : p->msgbuf_cap - 1;

		memcpy(p->msgbuf, raw.name, n);
		p->msgbuf[n] = '\0';
		return child_fail(p, 0, raw.msg, p->msgbuf, raw.msg_suffix);
	}
	ids->uid = raw.uid;
	ids->gid = raw.gid;
	/*
	 * The primary group is a supplementary group too, as docker (moby's getUser), containerd
	 * (EnsureAdditionalGids) and BuildKit's executors set it up: `id` shows it in groups=.
	 */
	ids->n_gids = raw.n_gids + 1;
	p->gids[0] = raw.gid;
	for (size_t i = 1; i <= raw.n_gids; i++) {
		if (p->gids[i] == raw.gid) {
			memmove(p->gids, p->gids + 1, raw.n_gids * sizeof(*p->gids));
			ids->n_gids = raw.n_gids;
			break;
		}
	}
	if (p->home_slot >= 0) {
		memcpy(p->home_env, "HOME=", 5);
		memcpy(p->home_env + 5, raw.home, raw.home_len);
		p->home_env[5 + raw.home_len] = '\0';
		p->envp[p->home_slot] = p->home_env;
	}
	return 0;
}

static pid_t raw_clone(unsigned long flags)
{
	return (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, 0);
}

static int drop_privileges(const struct sbx_plan *p, const struct cmd_ids *ids)
{
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[2];

	bool privileged = p->spec->privileged;

	for (int c = 0; c < 64 && !privileged; c++) {
		if (docker_caps & CAP_BIT(c))
			continue;
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0) {
			if (errno == EINVAL)
				break; /* past the kernel's last capability */
			return child_fail(p, errno, "run: drop capabilities", NULL, NULL);
		}
	}
	(void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	memset(data, 0, sizeof(data));
	data[0].effective = data[0].permitted = (uint32_t)docker_caps;
	data[1].effective = data[1].permitted = (uint32_t)(docker_caps >> 32);
	if (!privileged && syscall(SYS_capset, &hdr, data) < 0)
		return child_fail(p, errno, "run: set capabilities", NULL, NULL);
	/* Rootless with only our own ID mapped: setgroups is denied, and no other group exists. */
	if (!p->setgroups_denied && syscall(SYS_setgroups, ids->n_gids, p->gids) < 0)
		return child_fail(p, errno, "run: setgroups", NULL, NULL);
	if (syscall(SYS_setresgid, ids->gid, ids->gid, ids->gid) < 0)
		return child_fail(p, errno, "run: setgid", NULL, NULL);
	/* For a non-root uid the kernel clears the permitted and effective sets here. */
	if (syscall(SYS_setresuid, ids->uid, ids->uid, ids->uid) < 0)
		return child_fail(p, errno, "run: setuid", NULL, NULL);
	if (!privileged && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return child_fail(p, errno, "run: set no_new_privs", NULL, NULL);
	if (p->bpf) {
		struct sock_fprog prog = {(unsigned short)p->n_bpf, (struct sock_filter *)p->bpf};

		if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
			return child_fail(p, errno, "run: install the seccomp filter", NULL, NULL);
	}
	return 0;
}

static void reset_signals(void)
{
	struct sigaction sa;
	sigset_t none;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &sa, NULL);
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
}

static __attribute__((noreturn)) void command_main(struct sbx_plan *p, const struct cmd_ids *ids)
{
	const char *argv0 = p->argv[0];
	int nullfd, e = ENOENT;
	bool eacces = false;

	reset_signals();
	(void)setsid();
	nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nullfd >= 0) {
		int out = p->out_w >= 0 ? p->out_w : nullfd;
		int fds[3] = {p->in_fd >= 0 ? p->in_fd : nullfd, out,
			      p->errout_w >= 0 ? p->errout_w : out};

		if (p->tty_slave >= 0)
			fds[0] = fds[1] = fds[2] = p->tty_slave;
		for (int i = 0; i < 3 && nullfd >= 0; i++)
			if (dup2(fds[i], i) < 0)
				nullfd = -1;
	}
	if (nullfd < 0 || (p->tty_slave >= 0 && (ioctl(0, TIOCSCTTY, 0) < 0 ||
						 fchown(0, ids->uid, (gid_t)-1) < 0))) {
		child_fail(p, errno, "run: set up stdio", NULL, NULL);
		_exit(EXIT_SETUP);
	}
	/* Everything else closes at exec, the error pipe included (so the parent sees EOF). */
	(void)close_range(3, ~0u, CLOSE_RANGE_CLOEXEC);
	if (chdir(p->cwd) < 0) {
		child_fail(p, errno, "run: chdir '", p->cwd, "'");
		_exit(EXIT_SETUP);
	}
	umask(022);
	/* --ulimit: set while still privileged, so a hard limit may also be raised */
	for (size_t i = 0; i < p->spec->n_rlimits; i++) {
		const struct sandbox_rlimit *l = &p->spec->rlimits[i];
		struct rlimit rl = { (rlim_t)l->soft, (rlim_t)l->hard };

		if (setrlimit(l->resource, &rl) < 0) {
			child_fail(p, errno, "run: set a resource limit (--ulimit)", NULL, NULL);
			_exit(EXIT_SETUP);
		}
	}
	if (drop_privileges(p, ids) < 0)
		_exit(EXIT_SETUP);
	/* As PID 1 the command stands in for the reaper: it too dies with the caller's thread
	 * (changing credentials cleared the setting). */
	if (p->spec->command_pid1)
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	for (char **c = p->exec_paths; *c; c++) {
		execve(*c, p->argv, p->envp);
		if (errno == EACCES)
			eacces = true;
		else if (errno != ENOENT && errno != ENOTDIR && errno != ESTALE &&
			 errno != ENODEV && errno != ETIMEDOUT) {
			e = errno;
			child_fail(p, e, "run: exec '", p->path_search ? *c : argv0, "'");
			_exit(EXIT_SETUP);
		}
	}
	if (eacces)
		child_fail(p, EACCES, "run: exec '", argv0, "'");
	else if (p->path_search)
		child_fail(p, 0, "run: exec '", argv0, "': executable file not found in $PATH");
	else
		child_fail(p, e, "run: exec '", argv0, "'");
	_exit(EXIT_SETUP);
}

/* Closes every fd above 2 but those in keep[0..n) (-1 entries ignored; the array is sorted). */
static void close_all_but(int *keep, size_t n)
{
	unsigned int from = 3;

	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
			int t = keep[j];

			keep[j] = keep[j - 1];
			keep[j - 1] = t;
		}
	for (size_t i = 0; i < n; i++) {
		if (keep[i] < 3 || (unsigned int)keep[i] < from)
			continue;
		if ((unsigned int)keep[i] > from)
			(void)close_range(from, (unsigned int)keep[i] - 1, 0);
		from = (unsigned int)keep[i] + 1;
	}
	(void)close_range(from, ~0u, 0);
}

/*
 * tty: opens a terminal of the sandbox's devpts (so the command sees /dev/pts/N of its own
 * /dev), sets its first size and hands the master to the parent over console_w (SCM_RIGHTS).
 */
static int setup_tty(struct sbx_plan *p)
{
	struct winsize ws = {p->spec->tty_rows, p->spec->tty_cols, 0, 0};
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {(void *)"t", 1};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *cm;
	int unlock = 0, m;

	m = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0)
		return child_fail(p, errno, "run: open '/dev/pts/ptmx'", NULL, NULL);
	if (ioctl(m, TIOCSPTLCK, &unlock) < 0 ||
	    (p->tty_slave = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0 ||
	    (ws.ws_row && ws.ws_col && ioctl(m, TIOCSWINSZ, &ws) < 0)) {
		close(m);
		return child_fail(p, errno, "run: set up the terminal", NULL, NULL);
	}
	memset(cbuf, 0, sizeof(cbuf));
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &m, sizeof(int));
	if (sendmsg(p->console_w, &msg, MSG_NOSIGNAL) < 0) {
		close(m);
		return child_fail(p, errno, "run: send the terminal", NULL, NULL);
	}
	close(m);
	close(p->console_w);
	p->console_w = -1;
	return 0;
}

static int move_above_stdio(int fd)
{
	if (fd < 0 || fd > 2)
		return fd;
	return fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

static const char init_name[] = "kiln-init";

/*
 * Overwrites the reaper's copy of the builder's argv (found through /proc/self/stat fields 48
 * and 49) with "kiln-init": /proc/1/cmdline is readable by the command and the builder's
 * command line may carry build args. PR_SET_MM would need CAP_SYS_RESOURCE.
 */
static void hide_cmdline(const struct sbx_plan *p)
{
	unsigned long v[2] = {0, 0};
	ssize_t n = -1;
	char *s, *end;
	int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC), field = 2;

	if (fd >= 0) {
		n = read(fd, p->msgbuf, p->msgbuf_cap - 1);
		close(fd);
	}
	if (n <= 0)
		return;
	p->msgbuf[n] = '\0';
	s = strrchr(p->msgbuf, ')');
	if (!s)
		return;
	for (; *s && field < 49; s++) {
		if (*s != ' ')
			continue;
		field++;
		if (field == 48 || field == 49)
			v[field - 48] = strtoul(s + 1, &end, 10);
	}
	if (field < 49 || v[0] == 0 || v[1] <= v[0] + sizeof(init_name))
		return;
	memset((void *)v[0], 0, v[1] - v[0]);
	memcpy((void *)v[0], init_name, sizeof(init_name));
	/* A non-NUL last byte makes the kernel stop at the first NUL (its setproctitle case). */
	((char *)v[1])[-1] = ' ';
}

static __attribute__((noreturn)) void reaper_fail(const struct sbx_plan *p)
{
	rec_flush(p);
	_exit(EXIT_SETUP);
}

static __attribute__((noreturn)) void reaper_main(struct sbx_plan *p)
{
	struct cmd_ids ids = {0};
	sigset_t all;
	pid_t cmd;
	int status = 0, nullfd;

	sigfillset(&all);
	(void)sigprocmask(SIG_SETMASK, &all, NULL);
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	/* The reaper holds a copy of the builder's memory: keep it out of reach of the command. */
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	umask(0);
	p->err_w = move_above_stdio(p->err_w);
	p->out_w = move_above_stdio(p->out_w);
	p->in_fd = move_above_stdio(p->in_fd);
	p->errout_w = move_above_stdio(p->errout_w);
	p->console_w = move_above_stdio(p->console_w);
	{
		int keep[] = {p->err_w, p->out_w, p->in_fd, p->errout_w, p->console_w};

		close_all_but(keep, sizeof(keep) / sizeof(keep[0]));
	}
	nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nullfd >= 0) {
		(void)dup2(nullfd, 0);
		(void)dup2(nullfd, 1);
		(void)dup2(nullfd, 2);
		if (nullfd > 2)
			close(nullfd);
	}

	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		child_fail(p, errno, "run: make mounts private", NULL, NULL);
		reaper_fail(p);
	}
	if (setup_state(p) < 0 || setup_root(p) < 0 || open_sources(p) < 0 ||
	    (p->userns && setup_proc(p, p->proc_path) < 0) || enter_root(p) < 0 ||
	    (!p->userns && setup_proc(p, NULL) < 0) || setup_dev(p) < 0 || setup_sys(p) < 0 ||
	    setup_proc_masks(p) < 0)
		reaper_fail(p);
	if (sethostname(p->hostname, strlen(p->hostname)) < 0) {
		child_fail(p, errno, "run: sethostname", NULL, NULL);
		reaper_fail(p);
	}
	if (p->spec->network == SANDBOX_NET_NONE && setup_net_none(p) < 0)
		reaper_fail(p);
	if (setup_files_and_mounts(p) < 0 || ensure_dir(p, p->cwd, false) < 0 ||
	    resolve_user(p, &ids) < 0 || (p->spec->tty && setup_tty(p) < 0))
		reaper_fail(p);
	if (p->spec->readonly_root && set_mount_attr(AT_FDCWD, "/", 0, MOUNT_ATTR_RDONLY) < 0) {
		child_fail(p, errno, "run: make the root file system read-only", NULL, NULL);
		reaper_fail(p);
	}

	/* Show a plain name as PID 1, not the builder's command line (it may hold build args). */
	(void)prctl(PR_SET_NAME, init_name, 0, 0, 0);
	hide_cmdline(p);

	/* One wakeup of the parent for all the setup records; the command writes its own. */
	rec_flush(p);
	p->recbuf = NULL;
	if (p->spec->command_pid1)
		command_main(p, &ids);
	cmd = raw_clone(0);
	if (cmd < 0) {
		child_fail(p, errno, "run: fork", NULL, NULL);
		reaper_fail(p);
	}
	if (cmd == 0)
		command_main(p, &ids);
	close(p->err_w);
	{
		int theirs[] = {p->out_w, p->in_fd, p->errout_w, p->tty_slave};

		for (size_t i = 0; i < sizeof(theirs) / sizeof(theirs[0]); i++)
			if (theirs[i] >= 0)
				close(theirs[i]);
	}

	for (;;) {
		siginfo_t info;
		int sig = sigwaitinfo(&all, &info);

		if (sig < 0)
			continue;
		if (sig != SIGCHLD) {
			(void)kill(cmd, sig);
			continue;
		}
		for (;;) {
			int st;
			pid_t pid = waitpid(-1, &st, WNOHANG);

			if (pid <= 0)
				break;
			if (pid == cmd) {
				status = WIFEXITED(st)	   ? WEXITSTATUS(st)
					 : WIFSIGNALED(st) ? 128 + WTERMSIG(st)
							   : 1;
				/* The step is over: end whatever it left behind, as the namespace
				 * would. */
				(void)kill(-1, SIGKILL);
				while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
					;
				_exit(status);
			}
		}
	}
}

/* ---------- parent side ---------- */

static void plan_release(struct sbx_plan *p)
{
	for (size_t i = 0; i < p->n_files; i++) {
		free(p->files[i].stage);
		free(p->files[i].target);
		free(p->files[i].data);
	}
	free(p->files);
	for (size_t i = 0; i < p->n_mnts; i++) {
		free(p->mnts[i].target);
		free(p->mnts[i].tmpfs_opts);
		free(p->mnts[i].scratch);
		free(p->mnts[i].scratch_upper);
		free(p->mnts[i].scratch_work);
	}
	free(p->mnts);
	free(p->proc_path);
	kn_strv_free(p->exec_paths);
	kn_strv_free(p->argv);
	kn_strv_free(p->envp);
	free(p->home_env);
	free(p->passwd);
	free(p->group);
	free(p->gids);
	free(p->linkbuf);
	free(p->msgbuf);
	free(p->recbuf);
	free(p->reclen);
	free(p->cwd);
	free(p->lower_joined);
	for (size_t i = 0; i < p->n_stubs; i++) {
		free(p->stubs[i].rel);
		free(p->stubs[i].path);
	}
	free(p->stubs);
	free(p->stubs_dir);
	free(p->root);
	free(p->run);
	free(p->state);
}

void sandbox_spec_init(struct sandbox_spec *spec)
{
	memset(spec, 0, sizeof(*spec));
	spec->output_fd = -1;
	spec->stdin_fd = -1;
	spec->stderr_fd = -1;
	spec->network = SANDBOX_NET_HOST;
}

/* Normalizes an absolute container path (collapses '//', drops '.', trailing '/'); NULL if bad. */
static char *normalize_target(const char *path)
{
	struct kn_buf b = KN_BUF_INIT;
	const char *s = path;

	if (!path || path[0] != '/')
		return NULL;
	while (*s) {
		const char *e;
		size_t n;

		while (*s == '/')
			s++;
		e = s;
		while (*e && *e != '/')
			e++;
		n = (size_t)(e - s);
		if (n == 0)
			break;
		if (!(n == 1 && s[0] == '.')) {
			kn_buf_addch(&b, '/');
			kn_buf_add(&b, s, n);
		}
		s = e;
	}
	if (b.len == 0) {
		kn_buf_release(&b);
		return NULL;
	}
	return kn_buf_detach(&b);
}

static const char *env_get(const char *const *env, const char *key)
{
	size_t n = strlen(key);

	for (; env && *env; env++) {
		if (strncmp(*env, key, n) == 0 && (*env)[n] == '=')
			return *env + n + 1;
	}
	return NULL;
}

static size_t path_depth(const char *path)
{
	size_t n = 0;

	for (; *path; path++)
		n += *path == '/';
	return n;
}

/* Stable sort by target depth, as docker does: a mount inside another comes after it. */
static void sort_mounts(struct sbx_mnt *m, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		struct sbx_mnt x = m[i];
		size_t d = path_depth(x.target), j = i;

		while (j > 0 && path_depth(m[j - 1].target) > d) {
			m[j] = m[j - 1];
			j--;
		}
		m[j] = x;
	}
}

static int add_file(struct sbx_plan *p, const char *target, char *data, size_t len, mode_t mode,
		    uid_t uid, gid_t gid, bool readonly, kn_error **err)
{
	struct sbx_file *f;
	char *t = normalize_target(target);

	if (!t) {
		free(data);
		return kn_error_set(err, EINVAL, "run: invalid mount target '%s'",
				    target ? target : "");
	}
	p->files = xreallocarray(p->files, p->n_files + 1, sizeof(*p->files));
	f = &p->files[p->n_files];
	memset(f, 0, sizeof(*f));
	f->stage = xasprintf("%s/f%zu", p->run, p->n_files);
	f->target = t;
	f->data = data;
	f->len = len;
	f->mode = mode;
	f->uid = uid;
	f->gid = gid;
	f->readonly = readonly;
	f->fd = -1;
	p->n_files++;
	return 0;
}

static struct sbx_stub *stub_find(struct sbx_plan *p, const char *rel)
{
	for (size_t i = 0; i < p->n_stubs; i++)
		if (strcmp(p->stubs[i].rel, rel) == 0)
			return &p->stubs[i];
	return NULL;
}

static void stub_add(struct sbx_plan *p, const char *rel, mode_t mode, uid_t uid, gid_t gid,
		     const struct timespec *atime, const struct timespec *mtime)
{
	struct sbx_stub *st;

	if (stub_find(p, rel))
		return;
	p->stubs = xreallocarray(p->stubs, p->n_stubs + 1, sizeof(*p->stubs));
	st = &p->stubs[p->n_stubs++];
	st->rel = xstrdup(rel);
	st->path = xasprintf("%s/%s", p->stubs_dir, rel);
	st->mode = mode;
	st->uid = uid;
	st->gid = gid;
	st->times[0] = atime ? *atime : (struct timespec){0, UTIME_OMIT};
	st->times[1] = mtime ? *mtime : (struct timespec){0, UTIME_OMIT};
}

/* Adds the stub layer entries a mount target needs when the image lacks it. */
static void plan_stub(struct sbx_plan *p, const int *layers, const char *target, bool is_dir)
{
	struct sandbox_walk w;
	size_t n;

	if (sandbox_layers_walk(layers, p->spec->n_lowerdirs, target + 1, &w) < 0)
		return; /* the sandbox makes (and later removes) what it can itself */
	if (w.exists || !*w.resolved) {
		sandbox_walk_release(&w);
		return;
	}
	/* the existing directories on the way, as the image has them */
	for (size_t i = 0; i < w.n_dirs; i++) {
		const struct stat *st = &w.dir_st[i];

		stub_add(p, w.dirs[i], st->st_mode, st->st_uid, st->st_gid, &st->st_atim,
			 &st->st_mtim);
	}
	/* then the missing components */
	n = w.n_dirs ? strlen(w.dirs[w.n_dirs - 1]) + 1 : 0;
	for (char *c = w.resolved + n;; c++) {
		if (*c != '/' && *c != '\0')
			continue;
		{
			char saved = *c;

			*c = '\0';
			stub_add(p, w.resolved, (saved || is_dir) ? S_IFDIR | 0755 : S_IFREG | 0644,
				 0, 0, NULL, NULL);
			*c = saved;
			if (!saved)
				break;
		}
	}
	sandbox_walk_release(&w);
}

/*
 * Overlay mode: finds the mount points the image lacks (/proc, /dev, /sys, /etc/hosts,
 * /etc/resolv.conf, /etc/hostname, secrets and mount targets) and plans the stub layer holding
 * them, so that nothing is created in the upper dir. Targets below another mount are left to
 * the sandbox (they land in that mount, not in the layer).
 */
static int plan_stubs(struct sbx_plan *p, kn_error **err)
{
	const struct sandbox_spec *s = p->spec;
	static const char *const base_dirs[] = {"/proc", "/dev", "/sys"};
	_cleanup_free_ int *fds = xreallocarray(NULL, s->n_lowerdirs, sizeof(int));
	struct kn_buf b = KN_BUF_INIT;
	int r = -1;

	for (size_t i = 0; i < s->n_lowerdirs; i++)
		fds[i] = -1;
	for (size_t i = 0; i < s->n_lowerdirs; i++) {
		fds[i] = open(s->lowerdirs[i], O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (fds[i] < 0) {
			kn_error_errno(err, "run: overlay lowerdir '%s'", s->lowerdirs[i]);
			goto out;
		}
	}
	p->stubs_dir = xasprintf("%s/stubs", p->state);
	for (size_t i = 0; i < sizeof(base_dirs) / sizeof(base_dirs[0]); i++)
		plan_stub(p, fds, base_dirs[i], true);
	for (size_t i = 0; i < p->n_base_files; i++)
		plan_stub(p, fds, p->files[i].target, false);
	for (size_t i = 0; i < p->n_mnts; i++) {
		const struct sbx_mnt *m = &p->mnts[i];
		bool nested = false;

		for (size_t j = 0; j < i && !nested; j++) {
			size_t l = strlen(p->mnts[j].target);

			nested =
			    strncmp(m->target, p->mnts[j].target, l) == 0 && m->target[l] == '/';
		}
		nested |= strncmp(m->target, "/proc/", 6) == 0 ||
			  strncmp(m->target, "/dev/", 5) == 0 ||
			  strncmp(m->target, "/sys/", 5) == 0;
		if (!nested)
			plan_stub(p, fds, m->target,
				  m->type == SANDBOX_MOUNT_TMPFS ||
				      (m->type == SANDBOX_MOUNT_BIND && m->src_is_dir));
	}
	if (!p->n_stubs) {
		free(p->stubs_dir);
		p->stubs_dir = NULL;
	}
	/* The "lowerdir=" fallback for kernels before 6.8, stub layer first. */
	if (p->stubs_dir)
		kn_buf_adds(&b, p->stubs_dir);
	for (size_t i = 0; i < s->n_lowerdirs; i++) {
		if (b.len)
			kn_buf_addch(&b, ':');
		kn_buf_adds(&b, s->lowerdirs[i]);
	}
	p->lower_joined = kn_buf_detach(&b);
	r = 0;
out:
	for (size_t i = 0; i < s->n_lowerdirs; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return r;
}

static int plan_build(struct sbx_plan *p, const struct sandbox_spec *s, kn_error **err)
{
	const char *tmp = s->tmpdir;
	const char *path;
	size_t n_env = 0;

	p->spec = s;
	p->home_slot = -1;
	p->err_w = p->out_w = p->in_fd = p->errout_w = p->console_w = p->tty_slave = -1;
	p->err_w = p->out_w = -1;
	p->userns = kn_userns_active();
	for (size_t i = 0; i < KN_ARRAY_SIZE(p->dev_fds); i++)
		p->dev_fds[i] = -1;
	p->sys_fd = -1;
	if (p->userns) {
		struct kn_buf sg = KN_BUF_INIT;
		kn_error *ignored = NULL;

		if (kn_read_file("/proc/self/setgroups", 64, &sg, &ignored) < 0)
			kn_error_free(ignored);
		p->setgroups_denied = sg.len >= 4 && !strncmp(sg.buf, "deny", 4);
		kn_buf_release(&sg);
	}
	/* gid 5 (tty) owns the ptys, as docker; a user namespace may not map it. */
	p->devpts_opts = !p->userns || kn_userns_mapped_ids() > 5
			     ? "newinstance,ptmxmode=0666,mode=0620,gid=5"
			     : "newinstance,ptmxmode=0666,mode=0620";
	if (!s->argv || !s->argv[0] || !s->argv[0][0])
		return kn_error_set(err, EINVAL, "run: empty command");
	if (s->rootfs && (s->upperdir || s->n_lowerdirs))
		return kn_error_set(err, EINVAL, "run: both a rootfs and overlay layers given");
	if (!s->rootfs && !s->upperdir)
		return kn_error_set(err, EINVAL, "run: no root file system (rootfs or upperdir)");
	if (s->n_lowerdirs && !s->workdir)
		return kn_error_set(err, EINVAL, "run: overlay needs a workdir");
	if (s->n_lowerdirs) {
		p->overlay = true; /* lower_joined and the stub layer: plan_stubs() */
	} else {
		p->root_src = s->rootfs ? s->rootfs : s->upperdir;
	}

	if (!tmp)
		tmp = getenv("TMPDIR");
	if (!tmp || !*tmp)
		tmp = "/tmp";
	p->state = xasprintf("%s/kiln-sandbox-XXXXXX", tmp);
	if (!mkdtemp(p->state)) {
		int e = errno;

		free(p->state);
		p->state = NULL;
		return kn_error_set_errno(err, e, "run: create state dir in '%s'", tmp);
	}
	p->root = xasprintf("%s/root", p->state);
	p->proc_path = xasprintf("%s/proc", p->root);
	p->run = xasprintf("%s/run", p->state);

	p->hostname = s->hostname && *s->hostname ? s->hostname : DEFAULT_HOSTNAME;
	{
		char *hosts;
		struct kn_buf rb = KN_BUF_INIT;

		if (s->hosts)
			hosts = xstrdup(s->hosts);
		else
			hosts = xasprintf(
			    "127.0.0.1\tlocalhost %s\n::1\tlocalhost ip6-localhost ip6-loopback\n%s",
			    p->hostname, s->extra_hosts ? s->extra_hosts : "");
		snprintf(p->shm_opts, sizeof(p->shm_opts), "mode=1777,size=%llu",
			 s->shm_size ? s->shm_size : 64ULL << 20);
		if (add_file(p, "/etc/hosts", hosts, strlen(hosts), 0644, 0, 0, false, err) < 0)
			return -1;
		if (s->resolv_conf) {
			kn_buf_adds(&rb, s->resolv_conf);
		} else {
			kn_error *ignored = NULL;

			/* No resolv.conf on the host: an empty one, as docker without DNS config.
			 */
			if (kn_read_file("/etc/resolv.conf", RESOLV_MAX, &rb, &ignored) < 0)
				kn_error_free(ignored);
		}
		{
			size_t len = rb.len;
			char *data = kn_buf_detach(&rb);

			if (add_file(p, "/etc/resolv.conf", data, len, 0644, 0, 0, false, err) < 0)
				return -1;
		}
		{
			char *hn = xasprintf("%s\n", p->hostname);

			if (add_file(p, "/etc/hostname", hn, strlen(hn), 0644, 0, 0, false, err) <
			    0)
				return -1;
		}
	}

	p->n_base_files = p->n_files;
	for (size_t i = 0; i < s->n_mounts; i++) {
		const struct sandbox_mount *m = &s->mounts[i];

		if (m->type == SANDBOX_MOUNT_SECRET) {
			struct kn_buf sb = KN_BUF_INIT;
			_cleanup_free_ char *def = NULL;
			size_t len;

			if (!m->id || !*m->id || strchr(m->id, '/'))
				return kn_error_set(err, EINVAL, "run: invalid secret id '%s'",
						    m->id ? m->id : "");
			if (!m->source)
				return kn_error_set(err, EINVAL, "run: secret '%s' has no source",
						    m->id);
			if (kn_read_file(m->source, SECRET_MAX, &sb, err) < 0) {
				kn_buf_release(&sb);
				return kn_error_wrap(err, "run: secret '%s'", m->id);
			}
			def = xasprintf("/run/secrets/%s", m->id);
			len = sb.len;
			if (add_file(p, m->target ? m->target : def, kn_buf_detach(&sb), len,
				     m->mode ? m->mode : 0400, m->uid, m->gid, true, err) < 0)
				return -1;
			p->mnts = xreallocarray(p->mnts, p->n_mnts + 1, sizeof(*p->mnts));
			memset(&p->mnts[p->n_mnts], 0, sizeof(p->mnts[0]));
			p->mnts[p->n_mnts].type = SANDBOX_MOUNT_SECRET;
			p->mnts[p->n_mnts].target = xstrdup(p->files[p->n_files - 1].target);
			p->mnts[p->n_mnts].file_idx = p->n_files - 1;
			p->mnts[p->n_mnts].fd = -1;
			p->n_mnts++;
			continue;
		}
		{
			struct sbx_mnt *x;
			char *t = normalize_target(m->target);
			struct stat st;

			if (!t)
				return kn_error_set(err, EINVAL, "run: invalid mount target '%s'",
						    m->target ? m->target : "");
			p->mnts = xreallocarray(p->mnts, p->n_mnts + 1, sizeof(*p->mnts));
			x = &p->mnts[p->n_mnts++];
			memset(x, 0, sizeof(*x));
			x->type = m->type;
			x->target = t;
			x->fd = -1;
			x->readonly = m->readonly;
			x->noexec = m->noexec;
			if (m->type == SANDBOX_MOUNT_TMPFS) {
				x->tmpfs_opts =
				    m->size ? xasprintf("mode=%o,size=%llu",
							m->mode ? (unsigned int)m->mode : 01777u,
							(unsigned long long)m->size)
					    : xasprintf("mode=%o",
							m->mode ? (unsigned int)m->mode : 01777u);
				continue;
			}
			if (m->n_lowerdirs) {
				x->lowers = m->lowerdirs;
				x->n_lowers = m->n_lowerdirs;
				x->src_is_dir = true;
				x->readonly = !m->discard_writes || m->readonly;
				x->layers_ro = x->readonly && m->n_lowerdirs > 1;
			} else if (!m->source || stat(m->source, &st) < 0) {
				return kn_error_set_errno(err, m->source ? errno : EINVAL,
						    "run: mount source '%s'",
						    m->source ? m->source : "");
			} else {
				x->source = m->source;
				x->src_is_dir = S_ISDIR(st.st_mode);
			}
			if (m->discard_writes && !m->readonly) {
				if (x->src_is_dir) {
					x->scratch = xasprintf("%s/m%zu", p->state, p->n_mnts);
					x->scratch_upper = xasprintf("%s/upper", x->scratch);
					x->scratch_work = xasprintf("%s/work", x->scratch);
				} else {
					x->readonly = true;
				}
			}
		}
	}

	sort_mounts(p->mnts, p->n_mnts);
	if (p->overlay && plan_stubs(p, err) < 0)
		return -1;

	/* argv[0]: a path is used as is, a name is searched in the command's PATH (execvp rules).
	 */
	{
		struct kn_strv cands = KN_STRV_INIT;
		const char *argv0 = s->argv[0];

		path = env_get(s->env, "PATH");
		if (strchr(argv0, '/')) {
			kn_strv_push(&cands, argv0);
		} else {
			const char *d = path ? path : DEFAULT_PATH;

			p->path_search = true;
			for (;;) {
				const char *e = strchr(d, ':');
				size_t n = e ? (size_t)(e - d) : strlen(d);

				if (n == 0)
					kn_strv_pushf(&cands, "./%s", argv0);
				else
					kn_strv_pushf(&cands, "%.*s/%s", (int)n, d, argv0);
				if (!e)
					break;
				d = e + 1;
			}
		}
		p->exec_paths = kn_strv_detach(&cands);
	}

	/*
	 * Own copies of argv and the environment (plus PATH and a HOME slot filled inside the
	 * sandbox): the reaper wipes its copy of the process's argv area before the command starts,
	 * and the caller's strings may live there.
	 */
	p->argv = kn_strv_dup((char *const *)s->argv);
	n_env = kn_strv_len((char *const *)s->env);
	p->envp = xreallocarray(NULL, n_env + 3, sizeof(*p->envp));
	for (size_t i = 0; i < n_env; i++)
		p->envp[i] = xstrdup(s->env[i]);
	if (!path)
		p->envp[n_env++] = xstrdup("PATH=" DEFAULT_PATH);
	if (!env_get(s->env, "HOME"))
		p->home_slot = (ssize_t)n_env++;
	p->envp[n_env] = NULL;
	if (p->home_slot >= 0)
		p->envp[p->home_slot] = xstrdup("HOME=/");

	p->file_cap = SANDBOX_USER_FILE_MAX;
	p->passwd = xmalloc(p->file_cap);
	p->group = xmalloc(p->file_cap);
	p->home_env = xmalloc(p->file_cap + 6);
	p->gids = xreallocarray(NULL, SANDBOX_MAX_GROUPS, sizeof(*p->gids));
	p->linkbuf_cap = PATH_MAX + 1;
	p->linkbuf = xmalloc(p->linkbuf_cap);
	p->msgbuf_cap = 4096;
	p->msgbuf = xmalloc(p->msgbuf_cap);
	p->recbuf_cap = 32768;
	p->recbuf = xmalloc(p->recbuf_cap);
	p->reclen = xcalloc(1, sizeof(*p->reclen));
	if (!s->privileged && sbx_seccomp_default(&p->bpf, &p->n_bpf, err) < 0)
		return kn_error_wrap(err, "run");
	p->cwd = normalize_target(s->cwd && *s->cwd ? s->cwd : "/");
	if (!p->cwd) {
		if (s->cwd && strcmp(s->cwd, "/") != 0 && s->cwd[0] != '/')
			return kn_error_set(err, EINVAL,
					    "run: working directory '%s' is not absolute", s->cwd);
		p->cwd = xstrdup("/");
	}
	return 0;
}

/* Opens the directory holding rel (relative to rootfd) without following any symlink. */
static int open_parent_nofollow(int rootfd, const char *rel, const char **ret_base, char **ret_dir)
{
	struct open_how how = {
	    .flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
	    .resolve =
		RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
	};
	const char *slash = strrchr(rel, '/');

	*ret_dir = slash ? xstrndup(rel, (size_t)(slash - rel)) : xstrdup(".");
	*ret_base = slash ? slash + 1 : rel;
	return (int)syscall(SYS_openat2, rootfd, *ret_dir, &how, sizeof(how));
}

static bool dir_is_empty(int dirfd)
{
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return false;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return false;
	}
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			return false;
	}
	return true;
}

/* Is rel, in the lower layers, a directory with the same owner and mode as st? */
static bool same_as_lower(const struct sandbox_spec *s, const char *rel, const struct stat *st)
{
	for (size_t i = 0; i < s->n_lowerdirs; i++) {
		struct open_how how = {
		    .flags = O_PATH | O_CLOEXEC,
		    .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
			       RESOLVE_NO_XDEV,
		};
		_cleanup_close_ int lfd = open(s->lowerdirs[i], O_PATH | O_DIRECTORY | O_CLOEXEC);
		_cleanup_close_ int fd = -1;
		struct stat lst;

		if (lfd < 0)
			continue;
		fd = (int)syscall(SYS_openat2, lfd, rel, &how, sizeof(how));
		if (fd < 0)
			continue;
		if (fstat(fd, &lst) < 0)
			return false;
		return S_ISDIR(lst.st_mode) && lst.st_mode == st->st_mode &&
		       lst.st_uid == st->st_uid && lst.st_gid == st->st_gid;
	}
	return false;
}

/*
 * Removes, from the upper dir (or rootfs), a stub the child created for a mount point, when it
 * is still empty, then (overlay) its copied-up parents that are left empty and unchanged.
 */
static void remove_stub(const struct sandbox_spec *s, int rootfd, uint32_t kind,
			const struct stub_times *t, const char *path)
{
	_cleanup_free_ char *rel = NULL;
	bool removed = false;

	while (*path == '/')
		path++;
	if (!*path)
		return;
	rel = xstrdup(path);
	{
		_cleanup_free_ char *dir = NULL;
		const char *base;
		_cleanup_close_ int dfd = open_parent_nofollow(rootfd, rel, &base, &dir);
		struct stat st, pst;

		if (dfd < 0 || fstat(dfd, &pst) < 0 ||
		    fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return;
		if (kind == REC_STUB_FILE && S_ISREG(st.st_mode) && st.st_size == 0)
			removed = unlinkat(dfd, base, 0) == 0;
		else if (kind == REC_STUB_DIR && S_ISDIR(st.st_mode))
			removed = unlinkat(dfd, base, AT_REMOVEDIR) == 0;
		if (removed) {
			/*
			 * Neither the stub nor its removal may change the parent's mtime: back to
			 * its time before the stub when the command did not touch the directory
			 * since, else to the time the command left (as BuildKit).
			 */
			struct timespec times[2] = {{0, UTIME_OMIT}, pst.st_mtim};

			if (t->pre.tv_nsec != UTIME_OMIT && pst.st_mtim.tv_sec == t->post.tv_sec &&
			    pst.st_mtim.tv_nsec == t->post.tv_nsec)
				times[1] = t->pre;
			(void)futimens(dfd, times);
		}
	}
	if (!removed || !s->n_lowerdirs)
		return;
	/* Copied-up parents: remove while empty, not opaque and equal to the lower directory. */
	for (char *slash = strrchr(rel, '/'); slash; slash = strrchr(rel, '/')) {
		_cleanup_free_ char *dir = NULL;
		const char *base;
		_cleanup_close_ int dfd = -1, fd = -1;
		struct stat st;
		char v[2];

		*slash = '\0';
		dfd = open_parent_nofollow(rootfd, rel, &base, &dir);
		if (dfd < 0)
			return;
		fd = openat(dfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0 || !dir_is_empty(fd))
			return;
		if (fgetxattr(fd, "trusted.overlay.opaque", v, sizeof(v)) > 0 ||
		    fgetxattr(fd, "user.overlay.opaque", v, sizeof(v)) > 0)
			return;
		if (!same_as_lower(s, rel, &st))
			return;
		if (unlinkat(dfd, base, AT_REMOVEDIR) < 0)
			return;
	}
}

struct run_result {
	int err_code;
	char *err_msg;
};

struct stub {
	uint32_t kind;
	struct stub_times t;
	char *path;
};

/* Parses the child's records: stubs are cleaned up after the run, the first error kept. */
static void parse_records(const struct kn_buf *recs, struct stub **stubs, size_t *n_stubs,
			  struct run_result *res)
{
	size_t off = 0;

	while (off + sizeof(struct rec_hdr) <= recs->len) {
		struct rec_hdr h;

		memcpy(&h, recs->buf + off, sizeof(h));
		off += sizeof(h);
		if (h.len > recs->len - off)
			break;
		if (h.kind == REC_ERROR && !res->err_msg) {
			res->err_code = h.err;
			res->err_msg = xstrndup(recs->buf + off, h.len);
		} else if ((h.kind == REC_STUB_FILE || h.kind == REC_STUB_DIR) &&
			   h.len > sizeof(struct stub_times)) {
			struct stub *st;

			*stubs = xreallocarray(*stubs, *n_stubs + 1, sizeof(**stubs));
			st = &(*stubs)[(*n_stubs)++];
			st->kind = h.kind;
			memcpy(&st->t, recs->buf + off, sizeof(st->t));
			st->path = xstrndup(recs->buf + off + sizeof(st->t), h.len - sizeof(st->t));
		}
		off += h.len;
	}
}

static void pump_output(const struct sandbox_spec *s, int fd)
{
	_cleanup_free_ char *buf = xmalloc(65536);

	for (;;) {
		ssize_t n = read(fd, buf, 65536);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		s->output_cb(buf, (size_t)n, s->output_data);
	}
}

/* The terminal master the reaper sent (setup_tty), or -1. */
static int recv_fd(int sock)
{
	char cbuf[CMSG_SPACE(sizeof(int))], c;
	struct iovec iov = {&c, 1};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *cm;
	int fd = -1;

	if (recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) <= 0)
		return -1;
	cm = CMSG_FIRSTHDR(&msg);
	if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
	    cm->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	return fd;
}

/* The wall-clock limit: a thread that kills the sandbox's PID 1 (and so every process of its
 * PID namespace) when the limit passes before PID 1 exits. */
struct watchdog {
	pthread_t thread;
	int pidfd;
	pid_t pid;
	unsigned timeout_sec;
	bool fired;
};

static void *watchdog_main(void *data)
{
	struct watchdog *w = data;
	struct pollfd pfd = { w->pidfd, POLLIN, 0 };
	long long left = (long long)w->timeout_sec * 1000;
	struct timespec t0, t1;
	int n;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		n = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (n > 0)
			return NULL; /* PID 1 exited */
		clock_gettime(CLOCK_MONOTONIC, &t1);
		left = (long long)w->timeout_sec * 1000 - ((t1.tv_sec - t0.tv_sec) * 1000LL +
							   (t1.tv_nsec - t0.tv_nsec) / 1000000);
		if (n == 0 && left <= 0)
			break;
		if (n < 0 && errno != EINTR)
			return NULL;
		if (left <= 0)
			break;
	}
	__atomic_store_n(&w->fired, true, __ATOMIC_SEQ_CST);
	(void)syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0);
	return NULL;
}

static void watchdog_start(struct watchdog *w, pid_t pid, unsigned timeout_sec)
{
	w->pidfd = -1;
	w->fired = false;
	if (!timeout_sec)
		return;
	w->pid = pid;
	w->timeout_sec = timeout_sec;
	w->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (w->pidfd < 0)
		return;
	if (pthread_create(&w->thread, NULL, watchdog_main, w) != 0) {
		close(w->pidfd);
		w->pidfd = -1;
	}
}

/* Joins the watchdog (PID 1 has exited, so it returns); true when it killed the sandbox. */
static bool watchdog_stop(struct watchdog *w)
{
	if (w->pidfd < 0)
		return false;
	pthread_join(w->thread, NULL);
	close(w->pidfd);
	w->pidfd = -1;
	return w->fired;
}

int sandbox_run(const struct sandbox_spec *spec, int *ret_exit_status, kn_error **err)
{
	struct sbx_plan p;
	struct kn_buf recs = KN_BUF_INIT;
	struct stub *stubs = NULL;
	size_t n_stubs = 0;
	struct run_result res = {0, NULL};
	int pipefd[2] = {-1, -1}, outpipe[2] = {-1, -1}, console[2] = {-1, -1}, master = -1;
	unsigned long flags =
	    CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP;
	kn_error *read_err = NULL;
	int status = 0, r = -1;
	struct watchdog wd = { .pidfd = -1 };
	bool timed_out = false;
	pid_t pid;

	memset(&p, 0, sizeof(p));
	if (plan_build(&p, spec, err) < 0)
		goto out;
	if (spec->network == SANDBOX_NET_NONE)
		flags |= CLONE_NEWNET;
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		kn_error_errno(err, "run: pipe");
		goto out;
	}
	if (spec->output_fd >= 0) {
		p.out_w = spec->output_fd;
	} else if (spec->output_cb) {
		if (pipe2(outpipe, O_CLOEXEC) < 0) {
			kn_error_errno(err, "run: pipe");
			goto out;
		}
		p.out_w = outpipe[1];
	}
	p.err_w = pipefd[1];
	p.in_fd = spec->stdin_fd;
	p.errout_w = spec->stderr_fd;
	if (spec->tty) {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, console) < 0) {
			kn_error_errno(err, "run: socketpair");
			goto out;
		}
		p.console_w = console[1];
	}

	pid = raw_clone(flags);
	if (pid < 0) {
		kn_error_errno(err, "run: create namespaces");
		goto out;
	}
	if (pid == 0)
		reaper_main(&p);
	watchdog_start(&wd, pid, spec->timeout_sec);

	close(pipefd[1]);
	pipefd[1] = -1;
	if (outpipe[1] >= 0) {
		close(outpipe[1]);
		outpipe[1] = -1;
	}
	if (console[1] >= 0) {
		close(console[1]);
		console[1] = -1;
	}
	/* Until EOF: the command has exec'd or every process of the sandbox is gone. */
	if (kn_read_fd(pipefd[0], 64u << 20, &recs, &read_err) < 0)
		kn_error_free(read_err);
	parse_records(&recs, &stubs, &n_stubs, &res);
	if (console[0] >= 0 && !res.err_msg)
		master = recv_fd(console[0]);
	if (spec->started && !res.err_msg) {
		spec->started(pid, master, spec->started_data);
		master = -1;
	}
	if (outpipe[0] >= 0)
		pump_output(spec, outpipe[0]);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			kn_error_errno(err, "run: wait");
			goto out;
		}
	}
	timed_out = watchdog_stop(&wd);
	/* The state tmpfs lived in the child's namespace: the host sees an empty directory. */
	(void)rmdir(p.state);
	free(p.state);
	p.state = NULL;
	{
		_cleanup_close_ int rootfd = open(spec->rootfs ? spec->rootfs : spec->upperdir,
						  O_PATH | O_DIRECTORY | O_CLOEXEC);

		for (size_t i = n_stubs; rootfd >= 0 && i-- > 0;)
			remove_stub(spec, rootfd, stubs[i].kind, &stubs[i].t, stubs[i].path);
	}
	if (res.err_msg) {
		_cleanup_free_ char *hint = NULL;

		/* The user's IDs do not exist in a rootless namespace without subordinate IDs. */
		if (res.err_code == EINVAL &&
		    (!strcmp(res.err_msg, "run: setuid") || !strcmp(res.err_msg, "run: setgid") ||
		     !strcmp(res.err_msg, "run: setgroups")))
			hint = kn_userns_unmapped_hint(KN_USERNS_SOME_ID);
		/* Rootless overlayfs needs a kernel that allows it in a user namespace. */
		else if (p.userns && (!strncmp(res.err_msg, "run: mount overlay", 18) ||
				      !strncmp(res.err_msg, "run: overlayfs is not", 21)))
			hint = xstrdup(" (rootless: overlayfs in a user namespace needs Linux 5.11 or "
				       "later; kiln has no fallback for older kernels yet)");
		kn_error_set_errno(err, res.err_code, "%s%s", res.err_msg, hint ? hint : "");
		goto out;
	}
	if (timed_out) {
		kn_error_set(err, ETIMEDOUT, "run: did not finish within %u seconds (--run-timeout): "
			     "every process of the step was killed", spec->timeout_sec);
		goto out;
	}
	if (!WIFEXITED(status) && WIFSIGNALED(status) && spec->started) {
		*ret_exit_status = 128 + WTERMSIG(status);
		r = 0;
		goto out;
	}
	if (!WIFEXITED(status)) {
		/* PID 1 always exits with the command's status: a signal means it was killed. */
		kn_error_set(err, 0, "run: the sandbox was killed by signal %d",
			     WIFSIGNALED(status) ? WTERMSIG(status) : 0);
		goto out;
	}
	*ret_exit_status = WEXITSTATUS(status);
	r = 0;
out:
	if (wd.pidfd >= 0) {
		(void)syscall(SYS_pidfd_send_signal, wd.pidfd, SIGKILL, NULL, 0);
		(void)watchdog_stop(&wd);
	}
	if (p.state)
		(void)rmdir(p.state);
	for (int i = 0; i < 2; i++) {
		if (pipefd[i] >= 0)
			close(pipefd[i]);
		if (outpipe[i] >= 0)
			close(outpipe[i]);
		if (console[i] >= 0)
			close(console[i]);
	}
	if (master >= 0)
		close(master);
	free(res.err_msg);
	for (size_t i = 0; i < n_stubs; i++)
		free(stubs[i].path);
	free(stubs);
	kn_buf_release(&recs);
	plan_release(&p);
	return r;
}
