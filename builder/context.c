/* kiln builder: the build context (a directory, or a tar stream unpacked into the store's tmp
 * dir) and its .dockerignore. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "builder/build-internal.h"
#include "registry/registry.h"

/* Unpacks a context tar from fd into dir, refusing absolute paths, `..` and symlink tricks. */
static int ctx_unpack(int fd, const char *dir, kn_error **err)
{
	struct archive *a = archive_read_new(), *w = archive_write_disk_new();
	struct archive_entry *e;
	_cleanup_close_ int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	int r, ret = 0;

	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	archive_write_disk_set_options(w, ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM |
						  ARCHIVE_EXTRACT_SECURE_SYMLINKS |
						  ARCHIVE_EXTRACT_SECURE_NODOTDOT |
						  ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS |
						  ARCHIVE_EXTRACT_OWNER);
	if (cwd < 0 || chdir(dir) < 0) {
		ret = kn_error_errno(err, "cannot enter '%s'", dir);
		goto out;
	}
	if (archive_read_open_fd(a, fd, 65536) != ARCHIVE_OK) {
		ret = kn_error_set(err, EINVAL, "cannot read the context tar: %s", archive_error_string(a));
		goto out_chdir;
	}
	for (;;) {
		r = archive_read_next_header(a, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN) {
			ret = kn_error_set(err, EINVAL, "cannot read the context tar: %s", archive_error_string(a));
			goto out_chdir;
		}
		r = archive_write_header(w, e);
		if (r < ARCHIVE_WARN) {
			ret = kn_error_set(err, EPERM, "context tar entry '%s': %s", archive_entry_pathname(e),
					   archive_error_string(w));
			goto out_chdir;
		}
		if (archive_entry_size(e) > 0) {
			const void *buf;
			size_t len;
			la_int64_t off;

			while ((r = archive_read_data_block(a, &buf, &len, &off)) == ARCHIVE_OK) {
				if (archive_write_data_block(w, buf, len, off) < ARCHIVE_WARN) {
					ret = kn_error_set(err, EIO, "context tar entry '%s': %s",
							   archive_entry_pathname(e), archive_error_string(w));
					goto out_chdir;
				}
			}
			if (r != ARCHIVE_EOF) {
				ret = kn_error_set(err, EINVAL, "cannot read the context tar: %s",
						   archive_error_string(a));
				goto out_chdir;
			}
		}
		archive_write_finish_entry(w);
	}
	if (archive_write_close(w) != ARCHIVE_OK)
		ret = kn_error_set(err, EIO, "cannot unpack the context: %s", archive_error_string(w));
out_chdir:
	if (fchdir(cwd) < 0 && ret == 0)
		ret = kn_error_errno(err, "cannot return to the working directory");
out:
	archive_read_free(a);
	archive_write_free(w);
	return ret;
}

bool bld_looks_like_archive(const void *data, size_t n)
{
	const unsigned char *b = data;

	if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b)
		return true;
	if (n >= 3 && !memcmp(b, "BZh", 3))
		return true;
	if (n >= 6 && !memcmp(b, "\xfd" "7zXZ\0", 6))
		return true;
	if (n >= 4 && !memcmp(b, "\x28\xb5\x2f\xfd", 4))
		return true;
	if (n >= 262 && !memcmp(b + 257, "ustar", 5))
		return true;
	return false;
}

/* An http(s) URL of a tar archive (plain or compressed): downloaded, then unpacked into dir. */
static int ctx_fetch_tarball(struct bld *b, const char *url, const char *dir, kn_error **err)
{
	const char *tmp = store_tmpdir(b->store, err);
	_cleanup_free_ char *path = NULL;
	_cleanup_close_ int fd = -1;
	struct reg_opts ro;
	char head[512];
	ssize_t n;

	if (!tmp)
		return -1;
	path = kn_path_join(tmp, "context.download");
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return kn_error_errno(err, "cannot create '%s'", path);
	unlink(path);
	reg_opts_init(&ro);
	ro.tls_verify = b->o->tls_verify;
	if (reg_fetch_url(url, &ro, fd, 0, NULL, NULL, err) < 0)
		return kn_error_wrap(err, "unable to prepare context from '%s'", url);
	n = pread(fd, head, sizeof(head), 0);
	if (n < 0)
		return kn_error_errno(err, "cannot read the context from '%s'", url);
	if (!bld_looks_like_archive(head, (size_t)n))
		return kn_error_set(err, EINVAL, "unable to prepare context from '%s': not a tar archive", url);
	if (lseek(fd, 0, SEEK_SET) < 0)
		return kn_error_errno(err, "cannot rewind the context");
	if (ctx_unpack(fd, dir, err) < 0)
		return kn_error_wrap(err, "context from '%s'", url);
	return 0;
}

int ctx_open(struct bld *b, kn_error **err)
{
	const struct bld_options *o = b->o;
	char *real;

	if (o->context_url && ctx_is_git_url(o->context_url)) {
		if (ctx_fetch_git(b, o->context_url, &real, err) < 0)
			return -1;
	} else if (o->context_url && strncmp(o->context_url, "http://", 7) &&
		   strncmp(o->context_url, "https://", 8)) {
		return kn_error_set(err, EINVAL,
				    "unable to prepare context: '%s' is neither a git repository URL (git://, "
				    "git@HOST:, ssh://, http(s)://...git) nor an http(s) URL of a tar archive",
				    o->context_url);
	} else if (o->context_dir) {
		real = realpath(o->context_dir, NULL);
		if (!real)
			return kn_error_errno(err, "unable to prepare context: path '%s' not found", o->context_dir);
	} else {
		const char *tmp = store_tmpdir(b->store, err);

		if (!tmp)
			return -1;
		real = kn_path_join(tmp, "context");
		if (mkdir(real, 0755) < 0) {
			int r = kn_error_errno(err, "cannot create '%s'", real);

			free(real);
			return r;
		}
		if ((o->context_tar_fd >= 0 && ctx_unpack(o->context_tar_fd, real, err) < 0) ||
		    (o->context_url && ctx_fetch_tarball(b, o->context_url, real, err) < 0)) {
			free(real);
			return -1;
		}
	}
	b->ctx_dir = real;
	b->ctx_fd = open(real, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (b->ctx_fd < 0)
		return kn_error_errno(err, "unable to prepare context: '%s' is not a directory", real);
	return 0;
}

int ctx_load_ignore(struct bld *b, const char *dockerfile_path, kn_error **err)
{
	_cleanup_strv_ char **cands = NULL;

	cands = df_ignore_candidates(b->ctx_dir, dockerfile_path);
	for (size_t i = 0; cands && cands[i]; i++) {
		struct kn_buf text = KN_BUF_INIT;
		kn_error *e = NULL;
		int r;

		/* a .dockerignore in the context never leads outside it, even as a symlink */
		if (kn_read_file_in_root(b->ctx_dir, cands[i], 16 << 20, &text, &e) < 0) {
			bool missing = e->code == ENOENT || e->code == ENOTDIR || e->code == ELOOP ||
				       e->code == EXDEV;

			kn_buf_release(&text);
			if (missing) {
				kn_error_free(e);
				continue;
			}
			kn_error_propagate(err, e);
			return -1;
		}
		r = df_ignore_parse(text.buf, text.len, &b->ignore, err);
		kn_buf_release(&text);
		if (r < 0)
			return kn_error_wrap(err, "%s", cands[i]);
		return 0;
	}
	return 0;
}

/* ---- contexts from URLs: git repositories (through the git command, as BuildKit) ------------- */

bool ctx_is_git_url(const char *s)
{
	size_t n = strcspn(s, "#");

	if (!strncmp(s, "git://", 6) || !strncmp(s, "git@", 4) || !strncmp(s, "ssh://", 6))
		return true;
	if ((!strncmp(s, "https://", 8) || !strncmp(s, "http://", 7)) && n > 4 && !strncmp(s + n - 4, ".git", 4))
		return true;
	return false;
}

int bld_exec(const char *dir, const char *const *argv, const char *const *extra_env, char **ret_out,
	     kn_error **err)
{
	int out[2] = { -1, -1 }, errp[2] = { -1, -1 }, status = 0;
	struct kn_buf o = KN_BUF_INIT, e = KN_BUF_INIT;
	struct kn_strv env = KN_STRV_INIT;
	kn_error *ignored = NULL;
	pid_t pid;

	/* The environment is made here: the child of a threaded process only execs. */
	for (char **v = environ; *v; v++) {
		bool replaced = false;

		for (size_t i = 0; extra_env && extra_env[i]; i++) {
			size_t n = strcspn(extra_env[i], "=");

			if (!strncmp(*v, extra_env[i], n + 1))
				replaced = true;
		}
		if (!replaced)
			kn_strv_push(&env, *v);
	}
	for (size_t i = 0; extra_env && extra_env[i]; i++)
		kn_strv_push(&env, extra_env[i]);
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
		if (out[0] >= 0) {
			close(out[0]);
			close(out[1]);
		}
		kn_strv_release(&env);
		return kn_error_errno(err, "%s: pipe", argv[0]);
	}
	pid = fork();
	if (pid < 0) {
		close(out[0]);
		close(out[1]);
		close(errp[0]);
		close(errp[1]);
		kn_strv_release(&env);
		return kn_error_errno(err, "%s: fork", argv[0]);
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		if (null < 0 || dup2(null, 0) < 0 || dup2(out[1], 1) < 0 || dup2(errp[1], 2) < 0 ||
		    (dir && chdir(dir) < 0))
			_exit(127);
		execvpe(argv[0], (char *const *)argv, env.v);
		_exit(127);
	}
	kn_strv_release(&env);
	close(out[1]);
	close(errp[1]);
	/* stdout is small (a commit time); stderr is read after it (these tools write little there). */
	(void)kn_read_fd(out[0], 1 << 20, &o, &ignored);
	kn_error_free(ignored);
	ignored = NULL;
	(void)kn_read_fd(errp[0], 1 << 16, &e, &ignored);
	kn_error_free(ignored);
	close(out[0]);
	close(errp[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		while (e.len && (e.buf[e.len - 1] == '\n' || e.buf[e.len - 1] == '\r'))
			kn_buf_setlen(&e, e.len - 1);
		if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && !e.len)
			kn_error_set(err, ENOENT, "%s %s: cannot run %s (is it installed?)", argv[0], argv[1] ? argv[1] : "",
				     argv[0]);
		else
			kn_error_set(err, 0, "%s %s failed: %s", argv[0], argv[1] ? argv[1] : "", e.len ? e.buf : "no message");
		kn_buf_release(&o);
		kn_buf_release(&e);
		return -1;
	}
	kn_buf_release(&e);
	while (o.len && (o.buf[o.len - 1] == '\n' || o.buf[o.len - 1] == ' '))
		kn_buf_setlen(&o, o.len - 1);
	if (ret_out)
		*ret_out = kn_buf_detach(&o);
	kn_buf_release(&o);
	return 0;
}

static const char *const git_env[] = { "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1", NULL };

/* git with argv (argv[0] "git") in dir; see bld_exec. */
static int run_git(const char *dir, const char *const *argv, char **ret_out, kn_error **err)
{
	return bld_exec(dir, argv, git_env, ret_out, err);
}

static bool is_hex_commit(const char *s)
{
	size_t n = strlen(s);

	if (n != 40 && n != 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

int ctx_fetch_git(struct bld *b, const char *url, char **ret_dir, kn_error **err)
{
	const char *tmp = store_tmpdir(b->store, err);
	_cleanup_free_ char *repo = NULL, *ref = NULL, *subdir = NULL, *dir = NULL, *time = NULL;
	_cleanup_free_ char *sub = NULL, *real = NULL;
	const char *hash = strchr(url, '#');
	bool keep_git = false;
	char *end = NULL;
	long long t;

	if (!tmp)
		return -1;
	repo = hash ? xstrndup(url, (size_t)(hash - url)) : xstrdup(url);
	if (hash && hash[1]) {
		const char *colon = strchr(hash + 1, ':');

		ref = colon ? xstrndup(hash + 1, (size_t)(colon - hash - 1)) : xstrdup(hash + 1);
		subdir = colon && colon[1] ? xstrdup(colon + 1) : NULL;
	}
	if (ref && (!*ref || ref[0] == '-'))
		return kn_error_set(err, EINVAL, "invalid git reference in '%s'", url);
	for (size_t i = 0; b->o->build_args && b->o->build_args[i]; i++)
		if (!strcmp(b->o->build_args[i], "BUILDKIT_CONTEXT_KEEP_GIT_DIR=1") ||
		    !strcmp(b->o->build_args[i], "BUILDKIT_CONTEXT_KEEP_GIT_DIR=true"))
			keep_git = true;
	dir = kn_path_join(tmp, "git-context");
	{
		const char *init[] = { "git", "init", "-q", dir, NULL };
		const char *remote[] = { "git", "remote", "add", "origin", repo, NULL };
		const char *fetch[] = { "git", "fetch", "-q", "--depth=1", "--no-tags", "origin",
					ref ? ref : "HEAD", NULL };
		/* dumb HTTP servers cannot serve a shallow fetch */
		const char *fetch_full[] = { "git", "fetch", "-q", "--no-tags", "origin", ref ? ref : "HEAD", NULL };
		const char *fetch_all[] = { "git", "fetch", "-q", "origin", NULL };
		const char *checkout[] = { "git", "-c", "advice.detachedHead=false", "checkout", "-q",
					   "FETCH_HEAD", NULL };
		const char *checkout_ref[] = { "git", "-c", "advice.detachedHead=false", "checkout", "-q",
					       ref, NULL };
		const char *subm[] = { "git", "submodule", "update", "-q", "--init", "--recursive", "--depth=1",
				       NULL };
		const char *log[] = { "git", "log", "-1", "--format=%ct", NULL };
		kn_error *e = NULL;

		if (run_git(NULL, init, NULL, err) < 0 || run_git(dir, remote, NULL, err) < 0)
			return kn_error_wrap(err, "git context '%s'", url);
		if (run_git(dir, fetch, NULL, &e) == 0 || run_git(dir, fetch_full, NULL, NULL) == 0) {
			if (run_git(dir, checkout, NULL, err) < 0) {
				kn_error_free(e);
				return kn_error_wrap(err, "git context '%s'", url);
			}
			kn_error_free(e);
		} else if (ref && is_hex_commit(ref) && run_git(dir, fetch_all, NULL, NULL) == 0 &&
			   run_git(dir, checkout_ref, NULL, NULL) == 0) {
			/* A commit the server does not serve by itself: fetched with everything. */
			kn_error_free(e);
		} else {
			kn_error_propagate(err, e);
			return kn_error_wrap(err, "git context '%s'", url);
		}
		if (run_git(dir, subm, NULL, err) < 0 || run_git(dir, log, &time, err) < 0)
			return kn_error_wrap(err, "git context '%s'", url);
	}
	errno = 0;
	t = strtoll(time, &end, 10);
	if (!errno && end != time && !*end && t >= 0) {
		b->have_ctx_time = true;
		b->ctx_time = t;
	}
	if (!keep_git) {
		_cleanup_free_ char *gitdir = kn_path_join(dir, ".git");

		if (kn_rm_rf(gitdir, err) < 0)
			return -1;
	}
	if (!subdir) {
		*ret_dir = steal_ptr(&dir);
		return 0;
	}
	/* The subdirectory must stay inside the checkout (no '..', no symlink out). */
	sub = kn_path_join(dir, subdir);
	real = realpath(sub, NULL);
	if (!real)
		return kn_error_errno(err, "git context '%s': subdirectory '%s'", url, subdir);
	{
		_cleanup_free_ char *rdir = realpath(dir, NULL);
		size_t n = rdir ? strlen(rdir) : 0;

		if (!rdir || strncmp(real, rdir, n) || (real[n] && real[n] != '/'))
			return kn_error_set(err, EPERM, "git context '%s': subdirectory '%s' is outside the repository",
					    url, subdir);
	}
	*ret_dir = steal_ptr(&real);
	return 0;
}

int ctx_git_time(const struct bld *b, int64_t *ret)
{
	/* the context's own git settings run nothing: no fsmonitor; its ownership is not asked */
	const char *argv[] = { "git", "-c", "core.fsmonitor=false", "-c", "safe.directory=*", "--no-pager",
			       "log", "-1", "--format=%ct", "HEAD", NULL };
	_cleanup_free_ char *out = NULL;
	kn_error *e = NULL;
	char *end = NULL;
	long long t;

	if (b->have_ctx_time) {
		*ret = b->ctx_time;
		return 0;
	}
	if (!b->o->context_dir || run_git(b->ctx_dir, argv, &out, &e) < 0) {
		kn_error_free(e);
		return -1;
	}
	errno = 0;
	t = strtoll(out, &end, 10);
	if (errno || end == out || *end || t < 0)
		return -1;
	*ret = t;
	return 0;
}
