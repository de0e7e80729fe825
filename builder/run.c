/* kiln builder: `kiln run`, an image's command in the foreground, the way docker run runs it.
 *
 * The container is the sandbox RUN steps use (sandbox.c: namespaces, an overlay on the image's
 * snapshots, docker's capabilities and seccomp), with docker run's process model on top: the
 * command is PID 1 (or kiln's reaper is, with --init), its stdio is the caller's or a terminal,
 * and this process stays in the foreground, passing signals on and stopping the container the
 * way `docker stop` does (the stop signal, then SIGKILL after the timeout).
 *
 * The writable layer (upper/work dirs) and the anonymous volumes live in the store handle's temp
 * dir, which store_free() removes: every container is ephemeral, as with docker run --rm.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "builder/builder.h"
#include "builder/sandbox-internal.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define ENV_FILE_MAX (1u << 20)
#define HOSTS_MAX (1u << 20)
#define EXIT_FAIL 125
#define EXIT_CANNOT_INVOKE 126
#define EXIT_NOT_FOUND 127

static inline void run_strv_freep(char ***p)
{
	kn_strv_free(*p);
}

void run_options_init(struct run_options *o)
{
	memset(o, 0, sizeof(*o));
	o->stop_timeout = 10;
}

int run_env_file_read(const char *path, struct kn_strv *out, kn_error **err)
{
	struct kn_buf b = KN_BUF_INIT;
	const char *s, *end;
	int line = 0;

	if (kn_read_file(path, ENV_FILE_MAX, &b, err) < 0) {
		kn_buf_release(&b);
		return kn_error_wrap(err, "env file '%s'", path);
	}
	for (s = b.buf ? b.buf : "", end = s + b.len; s < end;) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		const char *e = nl ? nl : end;
		size_t n;

		line++;
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		n = (size_t)(e - s);
		if (n && s[n - 1] == '\r')
			n--;
		if (n && *s != '#') {
			const char *eq = memchr(s, '=', n);
			size_t klen = eq ? (size_t)(eq - s) : n;

			/* docker: no whitespace in the name (trailing blanks of a bare name go). */
			while (!eq && klen && (s[klen - 1] == ' ' || s[klen - 1] == '\t'))
				klen--;
			if (klen == 0 || memchr(s, ' ', klen) || memchr(s, '\t', klen)) {
				kn_error_set_at(err, path, line, 0,
						"variable '%.*s' has white spaces or no name", (int)klen,
						s);
				kn_buf_release(&b);
				return -1;
			}
			kn_strv_pushf(out, "%.*s", (int)(eq ? n : klen), s);
		}
		s = nl ? nl + 1 : end;
	}
	kn_buf_release(&b);
	return 0;
}

/* ---- the configuration docker would give the container ----------------------------------- */

static size_t env_key_len(const char *e)
{
	const char *eq = strchr(e, '=');

	return eq ? (size_t)(eq - e) : strlen(e);
}

static ssize_t env_find(const struct kn_strv *v, const char *e)
{
	size_t n = env_key_len(e);

	for (size_t i = 0; i < v->n; i++)
		if (v->v[i] && env_key_len(v->v[i]) == n && strncmp(v->v[i], e, n) == 0)
			return (ssize_t)i;
	return -1;
}

/*
 * docker's environment: the user's variables, then the image's that they do not name (the
 * daemon's merge), applied over PATH, HOSTNAME and TERM (with a tty) as defaults: a "K=V"
 * replaces or appends, a bare "K" removes (container.ReplaceOrAppendEnvValues).
 */
static char **compose_env(const struct run_options *o, char *const *image_env, const char *hostname)
{
	struct kn_strv conf = KN_STRV_INIT, out = KN_STRV_INIT;

	for (size_t i = 0; o->env && o->env[i]; i++)
		kn_strv_push(&conf, o->env[i]);
	for (size_t i = 0; image_env && image_env[i]; i++)
		if (env_find(&conf, image_env[i]) < 0)
			kn_strv_push(&conf, image_env[i]);
	kn_strv_push(&out, "PATH=" DEFAULT_PATH);
	kn_strv_pushf(&out, "HOSTNAME=%s", hostname);
	if (o->tty)
		kn_strv_push(&out, "TERM=xterm");
	for (size_t i = 0; i < conf.n; i++) {
		ssize_t at = env_find(&out, conf.v[i]);

		if (!strchr(conf.v[i], '=')) {
			if (at >= 0) {
				free(out.v[at]);
				out.v[at] = NULL;
			}
		} else if (at >= 0) {
			free(out.v[at]);
			out.v[at] = xstrdup(conf.v[i]);
		} else {
			kn_strv_push(&out, conf.v[i]);
		}
	}
	kn_strv_release(&conf);
	{
		/* close the holes the removals left */
		size_t j = 0;

		for (size_t i = 0; i < out.n; i++)
			if (out.v[i])
				out.v[j++] = out.v[i];
		for (size_t i = j; i < out.n; i++)
			out.v[i] = NULL;
		out.n = j;
	}
	return kn_strv_detach(&out);
}

/*
 * docker's command: --entrypoint (one word; "" clears) replaces the image's Entrypoint and drops
 * its Cmd; arguments replace Cmd; the result is Entrypoint followed by Cmd.
 */
static char **compose_argv(const struct run_options *o, const struct image_config *c)
{
	struct kn_strv v = KN_STRV_INIT;
	bool have_args = o->args && o->args[0];

	if (o->entrypoint) {
		if (*o->entrypoint)
			kn_strv_push(&v, o->entrypoint);
	} else {
		for (size_t i = 0; c->entrypoint && c->entrypoint[i]; i++)
			kn_strv_push(&v, c->entrypoint[i]);
	}
	if (have_args) {
		for (size_t i = 0; o->args[i]; i++)
			kn_strv_push(&v, o->args[i]);
	} else if (!o->entrypoint) {
		for (size_t i = 0; c->cmd && c->cmd[i]; i++)
			kn_strv_push(&v, c->cmd[i]);
	}
	return kn_strv_detach(&v);
}

/* "SIGTERM", "TERM", "15", "SIGRTMIN+3", "RTMAX-1": a signal number, or -1. */
static int parse_signal(const char *s)
{
	char *end;
	long n;

	if (!s || !*s)
		return -1;
	if (*s >= '0' && *s <= '9') {
		errno = 0;
		n = strtol(s, &end, 10);
		return !errno && !*end && n > 0 && n < NSIG ? (int)n : -1;
	}
	if (!strncasecmp(s, "SIG", 3))
		s += 3;
	if (!strncasecmp(s, "RTMIN", 5) || !strncasecmp(s, "RTMAX", 5)) {
		bool max = !strncasecmp(s, "RTMAX", 5);
		long off = 0;

		s += 5;
		if (*s == '+' || *s == '-') {
			errno = 0;
			off = strtol(s, &end, 10);
			if (errno || *end)
				return -1;
		} else if (*s) {
			return -1;
		}
		n = max ? SIGRTMAX + off : SIGRTMIN + off;
		return n >= SIGRTMIN && n <= SIGRTMAX ? (int)n : -1;
	}
	for (int i = 1; i < SIGRTMIN; i++) {
		const char *abbrev = sigabbrev_np(i);

		if (abbrev && !strcasecmp(s, abbrev))
			return i;
	}
	return -1;
}

/* ---- mounts ------------------------------------------------------------------------------- */

struct run_mounts {
	struct sandbox_mount *v;
	size_t n;
	struct kn_strv owned; /* strings the mounts point at */
	char ***layer_paths;  /* per mount: lowerdirs of an image volume, or NULL */
};

static struct sandbox_mount *mount_add(struct run_mounts *m, enum sandbox_mount_type type)
{
	struct sandbox_mount *x;

	m->v = xreallocarray(m->v, m->n + 1, sizeof(*m->v));
	m->layer_paths = xreallocarray(m->layer_paths, m->n + 1, sizeof(*m->layer_paths));
	m->layer_paths[m->n] = NULL;
	x = &m->v[m->n++];
	memset(x, 0, sizeof(*x));
	x->type = type;
	return x;
}

static const char *own(struct run_mounts *m, char *s)
{
	kn_strv_push_owned(&m->owned, s);
	return s;
}

static void run_mounts_release(struct run_mounts *m)
{
	for (size_t i = 0; i < m->n; i++)
		kn_strv_free(m->layer_paths[i]);
	free(m->layer_paths);
	free(m->v);
	kn_strv_release(&m->owned);
}

static bool target_taken(const struct run_mounts *m, const char *target)
{
	size_t n = strlen(target);

	while (n > 1 && target[n - 1] == '/')
		n--;
	for (size_t i = 0; i < m->n; i++) {
		const char *t = m->v[i].target;
		size_t tn = strlen(t);

		while (tn > 1 && t[tn - 1] == '/')
			tn--;
		if (tn == n && !strncmp(t, target, n))
			return true;
	}
	return false;
}

/* -v HOST:CTR[:ro|rw] */
static int add_volume(struct run_mounts *m, const char *spec, kn_error **err)
{
	_cleanup_(run_strv_freep) char **parts = NULL;
	struct kn_strv v = KN_STRV_INIT;
	struct sandbox_mount *x;
	bool ro = false;

	for (const char *s = spec;;) {
		const char *c = strchr(s, ':');

		kn_strv_pushf(&v, "%.*s", (int)(c ? (size_t)(c - s) : strlen(s)), s);
		if (!c)
			break;
		s = c + 1;
	}
	parts = kn_strv_detach(&v);
	if (kn_strv_len(parts) < 2 || kn_strv_len(parts) > 3 || !*parts[0] || !*parts[1])
		return kn_error_set(err, EINVAL,
				    "invalid volume '%s': expected HOST:CONTAINER[:ro]", spec);
	if (parts[2]) {
		if (!strcmp(parts[2], "ro"))
			ro = true;
		else if (strcmp(parts[2], "rw"))
			return kn_error_set(err, EINVAL,
					    "invalid volume '%s': unknown option '%s' (ro or rw)",
					    spec, parts[2]);
	}
	if (parts[0][0] != '/')
		return kn_error_set(err, EINVAL,
				    "invalid volume '%s': '%s' is not an absolute host path (kiln "
				    "has no named volumes: give a host directory)",
				    spec, parts[0]);
	if (parts[1][0] != '/')
		return kn_error_set(err, EINVAL,
				    "invalid volume '%s': mount path '%s' must be absolute", spec,
				    parts[1]);
	if (!strcmp(parts[1], "/"))
		return kn_error_set(err, EINVAL, "invalid volume '%s': cannot mount over '/'",
				    spec);
	if (target_taken(m, parts[1]))
		return kn_error_set(err, EINVAL, "duplicate mount point '%s'", parts[1]);
	/* docker -v creates a missing host path as a directory. */
	if (!kn_path_exists(parts[0]) && kn_mkdir_p(parts[0], 0755, err) < 0)
		return kn_error_wrap(err, "volume '%s'", spec);
	x = mount_add(m, SANDBOX_MOUNT_BIND);
	x->source = own(m, xstrdup(parts[0]));
	x->target = own(m, xstrdup(parts[1]));
	x->readonly = ro;
	return 0;
}

/* "64m", "1g", "1024": bytes, or -1. */
static int64_t parse_size(const char *s)
{
	char *end;
	unsigned long long n;
	uint64_t mul = 1;

	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case 'k':
	case 'K':
		mul = 1ull << 10;
		end++;
		break;
	case 'm':
	case 'M':
		mul = 1ull << 20;
		end++;
		break;
	case 'g':
	case 'G':
		mul = 1ull << 30;
		end++;
		break;
	case '\0':
		break;
	default:
		return -1;
	}
	if (*end || n > (uint64_t)INT64_MAX / mul)
		return -1;
	return (int64_t)(n * mul);
}

/* --tmpfs CTR[:OPTS] */
static int add_tmpfs(struct run_mounts *m, const char *spec, kn_error **err)
{
	const char *colon = strchr(spec, ':');
	_cleanup_free_ char *target = xstrndup(spec, colon ? (size_t)(colon - spec) : strlen(spec));
	_cleanup_free_ char *opts = xstrdup(colon ? colon + 1 : "");
	struct sandbox_mount *x;
	bool noexec = true, ro = false;
	uint64_t size = 0;
	mode_t mode = 0;

	if (target[0] != '/' || !strcmp(target, "/"))
		return kn_error_set(
		    err, EINVAL, "invalid tmpfs '%s': the path must be absolute and not '/'", spec);
	if (target_taken(m, target))
		return kn_error_set(err, EINVAL, "duplicate mount point '%s'", target);
	for (char *o = opts, *next; o && *o; o = next) {
		next = strchr(o, ',');
		if (next)
			*next++ = '\0';
		if (!strncmp(o, "size=", 5)) {
			int64_t n = parse_size(o + 5);

			if (n < 0)
				return kn_error_set(
				    err, EINVAL, "invalid tmpfs '%s': bad size '%s'", spec, o + 5);
			size = (uint64_t)n;
		} else if (!strncmp(o, "mode=", 5)) {
			char *end;
			unsigned long v = strtoul(o + 5, &end, 8);

			if (!o[5] || *end || v > 07777)
				return kn_error_set(
				    err, EINVAL, "invalid tmpfs '%s': bad mode '%s'", spec, o + 5);
			mode = (mode_t)v;
		} else if (!strcmp(o, "exec") || !strcmp(o, "noexec")) {
			noexec = o[0] == 'n';
		} else if (!strcmp(o, "ro") || !strcmp(o, "rw")) {
			ro = o[1] == 'o';
		} else if (strcmp(o, "nosuid") && strcmp(o, "nodev") && *o) {
			return kn_error_set(err, EINVAL,
					    "invalid tmpfs '%s': unsupported option '%s' (size=, "
					    "mode=, exec, noexec, ro, rw, nosuid, nodev)",
					    spec, o);
		}
	}
	x = mount_add(m, SANDBOX_MOUNT_TMPFS);
	x->target = own(m, steal_ptr(&target));
	x->size = size;
	x->mode = mode;
	x->readonly = ro;
	x->noexec = noexec;
	return 0;
}

/*
 * The image's VOLUMEs that no -v or --tmpfs covers: anonymous volumes, as docker makes them: a
 * directory holding what the image has at that path (an overlay of the layers' copies with a
 * throwaway upper dir), or an empty temporary directory when the image has nothing there.
 */
static int add_image_volumes(struct run_mounts *m, char *const *volumes, char *const *lowerdirs,
			     const char *tmp, kn_error **err)
{
	for (size_t i = 0; volumes && volumes[i]; i++) {
		const char *path = volumes[i];
		char **paths = NULL;
		struct sandbox_mount *x;
		struct stat st;

		if (path[0] != '/' || !strcmp(path, "/") || target_taken(m, path))
			continue;
		if (sandbox_layers_paths((const char *const *)lowerdirs, kn_strv_len(lowerdirs),
					 path + 1, &paths, err) < 0)
			return kn_error_wrap(err, "volume '%s'", path);
		if (paths[0] && (stat(paths[0], &st) < 0 || !S_ISDIR(st.st_mode))) {
			kn_strv_free(paths);
			return kn_error_set(err, ENOTDIR,
					    "volume '%s': not a directory in the image", path);
		}
		x = mount_add(m, SANDBOX_MOUNT_BIND);
		x->target = path;
		if (paths[0]) {
			m->layer_paths[m->n - 1] = paths;
			x->lowerdirs = (const char *const *)paths;
			x->n_lowerdirs = kn_strv_len(paths);
			x->discard_writes = true;
		} else {
			char *dir = xasprintf("%s/volume-%zu", tmp, i);

			kn_strv_free(paths);
			own(m, dir);
			if (kn_mkdir_p(dir, 0755, err) < 0)
				return -1;
			x->source = dir;
		}
	}
	return 0;
}

/* ---- --name: one running container of a name per store ---------------------------------- */

static bool name_valid(const char *n)
{
	/* docker's [a-zA-Z0-9][a-zA-Z0-9_.-]+ */
	if (!n[0] || !n[1] || strlen(n) > 128)
		return false;
	for (const char *c = n; *c; c++) {
		bool alnum = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
			     (*c >= '0' && *c <= '9');

		if (!alnum && (c == n || (*c != '_' && *c != '.' && *c != '-')))
			return false;
	}
	return true;
}

/*
 * Takes ROOT/containers/NAME (flock, with this process's pid and the container ID in it) for
 * the container's lifetime; the caller unlinks it before closing *ret_fd.
 */
static int name_lock(const char *root, const char *name, const char *id, char **ret_path,
		     int *ret_fd, kn_error **err)
{
	_cleanup_free_ char *dir = kn_path_join(root, "containers");
	_cleanup_free_ char *path = NULL;
	char line[160];

	if (!name_valid(name))
		return kn_error_set(err, EINVAL,
				    "invalid container name '%s': only [a-zA-Z0-9][a-zA-Z0-9_.-] "
				    "are allowed",
				    name);
	if (kn_mkdir_p(dir, 0700, err) < 0)
		return -1;
	path = kn_path_join(dir, name);
	for (;;) {
		struct stat a, b;
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

		if (fd < 0)
			return kn_error_errno(err, "open '%s'", path);
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			struct kn_buf b2 = KN_BUF_INIT;
			kn_error *ignored = NULL;
			char *nl;

			(void)kn_read_fd(fd, 4096, &b2, &ignored);
			kn_error_free(ignored);
			close(fd);
			nl = b2.buf ? strchr(b2.buf, '\n') : NULL;
			kn_error_set(err, EEXIST,
				     "the container name \"/%s\" is already in use by container "
				     "\"%s\" (kiln pid %.*s)",
				     name, nl ? nl + 1 : "", nl ? (int)(nl - b2.buf) : 0,
				     b2.buf ? b2.buf : "");
			kn_buf_release(&b2);
			{
				/* no newline at the end of the ID */
				char *m = (*err)->msg;
				size_t n = strlen(m);

				while (n && m[n - 1] == '\n')
					m[--n] = '\0';
			}
			return -1;
		}
		/* The previous holder may have unlinked it between our open and flock. */
		if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino &&
		    a.st_dev == b.st_dev) {
			int n = snprintf(line, sizeof(line), "%d\n%s\n", (int)getpid(), id);

			if (ftruncate(fd, 0) < 0 || kn_write_all(fd, line, (size_t)n, err) < 0) {
				close(fd);
				return kn_error_wrap(err, "write '%s'", path);
			}
			*ret_path = steal_ptr(&path);
			*ret_fd = fd;
			return 0;
		}
		close(fd);
	}
}

/* ---- the foreground: signals, the terminal, the stop timeout ----------------------------- */

struct run_sup {
	const struct run_options *o;
	int sigfd;
	int stop_sig;
	bool raw;
	struct termios saved;
};

static void set_winsize(int master)
{
	struct winsize ws;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 || ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0)
		(void)ioctl(master, TIOCSWINSZ, &ws);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Copies what is readable on from to to; returns false at EOF or an error (EIO: no slave). */
static bool copy_some(int from, int to)
{
	char buf[16384];
	ssize_t n = read(from, buf, sizeof(buf));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n <= 0)
		return false;
	return kn_write_all(to, buf, (size_t)n, NULL) == 0;
}

static void supervise(pid_t pid, int master, void *data)
{
	struct run_sup *sup = data;
	const struct run_options *o = sup->o;
	_cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	_cleanup_close_ int m = master;
	bool in_open = master >= 0 && o->interactive;
	int64_t deadline = -1;

	if (m >= 0) {
		(void)fcntl(m, F_SETFL, fcntl(m, F_GETFL) | O_NONBLOCK);
		if (o->interactive && isatty(STDIN_FILENO) &&
		    tcgetattr(STDIN_FILENO, &sup->saved) == 0) {
			struct termios raw = sup->saved;

			cfmakeraw(&raw);
			sup->raw = tcsetattr(STDIN_FILENO, TCSADRAIN, &raw) == 0;
		}
	}
	for (;;) {
		struct pollfd fds[4] = {
		    {pidfd, POLLIN, 0},
		    {sup->sigfd, POLLIN, 0},
		    {m, POLLIN, 0},
		    {in_open ? STDIN_FILENO : -1, POLLIN, 0},
		};
		int timeout = -1;

		if (deadline >= 0) {
			int64_t left = deadline - now_ms();

			timeout = left > 0 ? (int)(left > 1000000 ? 1000000 : left) : 0;
		}
		if (poll(fds, 4, timeout) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (deadline >= 0 && now_ms() >= deadline) {
			(void)kill(pid, SIGKILL);
			deadline = -1;
		}
		if (fds[1].revents & POLLIN) {
			struct signalfd_siginfo si;

			while (read(sup->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				int sig = (int)si.ssi_signo;

				if (sig == SIGWINCH) {
					if (m >= 0)
						set_winsize(m);
					continue;
				}
				(void)kill(pid, sig == SIGTERM ? sup->stop_sig : sig);
				if ((sig == SIGTERM || sig == SIGINT || sig == SIGHUP) &&
				    deadline < 0 && o->stop_timeout >= 0)
					deadline = now_ms() + (int64_t)o->stop_timeout * 1000;
			}
		}
		if (m >= 0 && (fds[2].revents & (POLLIN | POLLHUP | POLLERR)) &&
		    !copy_some(m, STDOUT_FILENO)) {
			close(m);
			m = -1;
		}
		if (in_open && (fds[3].revents & (POLLIN | POLLHUP | POLLERR)) &&
		    !copy_some(STDIN_FILENO, m))
			in_open = false;
		if (pidfd < 0 || (fds[0].revents & POLLIN)) {
			/* PID 1 is gone and the namespace with it: the rest of the output. */
			while (m >= 0 && copy_some(m, STDOUT_FILENO)) {
				struct pollfd p = {m, POLLIN, 0};

				if (poll(&p, 1, 0) <= 0)
					break;
			}
			break;
		}
	}
	if (sup->raw)
		(void)tcsetattr(STDIN_FILENO, TCSADRAIN, &sup->saved);
}

/* ---- the run ------------------------------------------------------------------------------ */

static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};

static int exec_error_status(const kn_error *e)
{
	if (e && e->msg && !strncmp(e->msg, "run: exec ", 10))
		return e->code == EACCES ? EXIT_CANNOT_INVOKE : EXIT_NOT_FOUND;
	return EXIT_FAIL;
}

int run_container(const struct run_options *o, int *ret_exit_status, kn_error **err)
{
	_cleanup_(store_freep) struct store *s = NULL;
	_cleanup_(store_image_freep) struct store_image *img = NULL;
	_cleanup_(run_strv_freep) char **lowerdirs = NULL, **argv = NULL, **env = NULL;
	_cleanup_free_ char *tmp = NULL, *upper = NULL, *work = NULL, *lock_path = NULL;
	_cleanup_free_ char *hosts = NULL, *hostname_buf = NULL;
	_cleanup_close_ int lock_fd = -1, sigfd = -1;
	struct run_mounts mounts = {0};
	struct sandbox_spec spec;
	struct run_sup sup = {.o = o, .sigfd = -1};
	const struct image_config *c;
	const char *hostname, *stop_signal;
	unsigned char rnd[32];
	char id[65];
	sigset_t set, old;
	bool masked = false;
	int r = -1, status = 0;

	*ret_exit_status = EXIT_FAIL;
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return kn_error_errno(err, "getrandom");
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(id + 2 * i, 3, "%02x", rnd[i]);

	if (store_open(o->root, STORE_WRITE, &s, err) < 0)
		return -1;
	if (store_image_resolve(s, o->image, &img, err) < 0) {
		if ((*err)->code == ENOENT) {
			kn_error_free(*err);
			*err = NULL;
			return kn_error_set(err, ENOENT,
					    "unable to find image '%s' locally (kiln pull or kiln "
					    "build it first)",
					    o->image);
		}
		return -1;
	}
	c = img->config;
	argv = compose_argv(o, c);
	if (!argv[0])
		return kn_error_set(err, EINVAL, "no command specified");

	stop_signal = o->stop_signal ? o->stop_signal : c->stop_signal;
	sup.stop_sig = stop_signal ? parse_signal(stop_signal) : SIGTERM;
	if (sup.stop_sig < 0)
		return kn_error_set(err, EINVAL, "invalid stop signal '%s'", stop_signal);
	if (o->workdir && o->workdir[0] != '/')
		return kn_error_set(err, EINVAL,
				    "the working directory '%s' is invalid, it needs to be an "
				    "absolute path",
				    o->workdir);
	if (o->name && name_lock(o->root, o->name, id, &lock_path, &lock_fd, err) < 0)
		return -1;

	/* docker: with the host's network the host's name and /etc/hosts; else the ID's head. */
	if (o->hostname) {
		hostname = o->hostname;
	} else if (o->network == RUN_NETWORK_HOST) {
		hostname_buf = xmalloc(256);
		if (gethostname(hostname_buf, 255) < 0)
			snprintf(hostname_buf, 256, "%.12s", id);
		hostname_buf[255] = '\0';
		hostname = hostname_buf;
	} else {
		hostname = hostname_buf = xasprintf("%.12s", id);
	}
	if (o->network == RUN_NETWORK_HOST) {
		struct kn_buf hb = KN_BUF_INIT;
		kn_error *ignored = NULL;

		if (kn_read_file("/etc/hosts", HOSTS_MAX, &hb, &ignored) == 0)
			hosts = kn_buf_detach(&hb);
		kn_buf_release(&hb);
		kn_error_free(ignored);
	}
	env = compose_env(o, c->env, hostname);

	if (!c->diff_ids || kn_strv_len(c->diff_ids) != img->manifest.n_layers) {
		r = kn_error_set(err, EINVAL, "image '%s': config has %zu diff_ids for %zu layers",
				 o->image, kn_strv_len(c->diff_ids), img->manifest.n_layers);
		goto out;
	}
	if (snapshot_prepare(s, img->manifest.layers, c->diff_ids, img->manifest.n_layers,
			     &lowerdirs, NULL, err) < 0)
		goto out;
	{
		const char *t = store_tmpdir(s, err);

		if (!t)
			goto out;
		tmp = xasprintf("%s/run-%.12s", t, id);
	}
	upper = kn_path_join(tmp, "upper");
	work = kn_path_join(tmp, "work");
	if (kn_mkdir_p(upper, 0755, err) < 0 || kn_mkdir_p(work, 0700, err) < 0)
		goto out;
	for (size_t i = 0; o->volumes && o->volumes[i]; i++)
		if (add_volume(&mounts, o->volumes[i], err) < 0)
			goto out;
	for (size_t i = 0; o->tmpfs && o->tmpfs[i]; i++)
		if (add_tmpfs(&mounts, o->tmpfs[i], err) < 0)
			goto out;
	if (add_image_volumes(&mounts, c->volumes, lowerdirs, tmp, err) < 0)
		goto out;

	sandbox_spec_init(&spec);
	spec.lowerdirs = (const char *const *)lowerdirs;
	spec.n_lowerdirs = kn_strv_len(lowerdirs);
	spec.upperdir = upper;
	spec.workdir = work;
	spec.argv = (const char *const *)argv;
	spec.env = (const char *const *)env;
	spec.cwd = o->workdir			       ? o->workdir
		   : c->working_dir && *c->working_dir ? c->working_dir
						       : "/";
	spec.user = o->user ? o->user : c->user;
	spec.hostname = hostname;
	spec.hosts = hosts;
	spec.network = o->network == RUN_NETWORK_NONE ? SANDBOX_NET_NONE : SANDBOX_NET_HOST;
	spec.mounts = mounts.v;
	spec.n_mounts = mounts.n;
	spec.tmpdir = tmp;
	spec.command_pid1 = !o->init;
	spec.readonly_root = o->read_only;
	spec.output_fd = STDOUT_FILENO;
	spec.stderr_fd = STDERR_FILENO;
	if (o->interactive)
		spec.stdin_fd = STDIN_FILENO;
	if (o->tty) {
		struct winsize ws;

		spec.tty = true;
		if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 ||
		    ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) {
			spec.tty_rows = ws.ws_row;
			spec.tty_cols = ws.ws_col;
		}
	}
	spec.started = supervise;
	spec.started_data = &sup;

	/* From here the signals queue for supervise(), even those that come during the setup. */
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
		sigaddset(&set, forwarded[i]);
	if (sigprocmask(SIG_BLOCK, &set, &old) < 0) {
		kn_error_errno(err, "block signals");
		goto out;
	}
	masked = true;
	sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sigfd < 0) {
		kn_error_errno(err, "signalfd");
		goto out;
	}
	sup.sigfd = sigfd;
	if (sandbox_run(&spec, &status, err) < 0) {
		*ret_exit_status = exec_error_status(*err);
		goto out;
	}
	*ret_exit_status = status;
	r = 0;
out:
	if (masked) {
		struct timespec zero = {0, 0};

		/* Drop what is still pending (it was for the container), then restore the mask. */
		while (sigtimedwait(&set, NULL, &zero) > 0)
			;
		(void)sigprocmask(SIG_SETMASK, &old, NULL);
	}
	if (tmp)
		(void)kn_rm_rf(tmp, NULL);
	if (lock_path)
		(void)unlink(lock_path);
	run_mounts_release(&mounts);
	return r;
}
