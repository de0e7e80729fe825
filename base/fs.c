#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/fs.h"
#include "base/xalloc.h"

int kn_read_fd(int fd, size_t max, struct kn_buf *out, kn_error **err)
{
	size_t start = out->len;

	for (;;) {
		ssize_t n;

		kn_buf_grow(out, 65536);
		n = read(fd, out->buf + out->len, out->alloc - out->len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return kn_error_errno(err, "read");
		}
		if (n == 0)
			break;
		out->len += (size_t)n;
		out->buf[out->len] = 0;
		if (max && out->len - start > max)
			return kn_error_set(err, EFBIG, "input larger than %zu bytes", max);
	}
	return 0;
}

int kn_read_file(const char *path, size_t max, struct kn_buf *out, kn_error **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return kn_error_errno(err, "open '%s'", path);
	if (kn_read_fd(fd, max, out, err) < 0)
		return kn_error_wrap(err, "'%s'", path);
	return 0;
}

int kn_openat_in_root(int rootfd, const char *rel, int flags)
{
	struct open_how how = { .flags = (unsigned long long)(flags | O_CLOEXEC),
				.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
	_cleanup_free_ char *copy = NULL;
	int fd, dfd;
	char *p, *slash;

	fd = (int)syscall(SYS_openat2, rootfd, rel, &how, sizeof(how));
	if (fd >= 0 || (errno != ENOSYS && errno != EPERM))
		return fd;
	/* no openat2 (or a seccomp filter refusing it): one component at a time, no symlinks */
	copy = xstrdup(rel);
	dfd = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
	for (p = copy; dfd >= 0;) {
		int next;

		while (*p == '/')
			p++;
		slash = strchr(p, '/');
		if (slash)
			*slash = 0;
		if (!strcmp(p, "..")) {
			close(dfd);
			errno = EXDEV;
			return -1;
		}
		next = openat(dfd, *p ? p : ".", slash ? O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
						 : flags | O_NOFOLLOW | O_CLOEXEC);
		close(dfd);
		if (!slash)
			return next;
		dfd = next;
		p = slash + 1;
	}
	return -1;
}

int kn_read_file_in_root(const char *root, const char *path, size_t max, struct kn_buf *out,
			 kn_error **err)
{
	_cleanup_free_ char *dir = xstrdup(path), *base = xstrdup(path), *real = NULL, *rel = NULL;
	_cleanup_close_ int rootfd = -1, fd = -1;
	size_t n = strlen(root);

	real = realpath(dirname(dir), NULL);
	if (!real || strncmp(real, root, n) || (real[n] && real[n] != '/'))
		return kn_read_file(path, max, out, err);
	rel = xasprintf("%s%s%s", real[n] ? real + n + 1 : "", real[n] ? "/" : "", basename(base));
	rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return kn_error_errno(err, "open '%s'", root);
	fd = kn_openat_in_root(rootfd, rel, O_RDONLY);
	if (fd < 0)
		return kn_error_errno(err, "open '%s'", path);
	if (kn_read_fd(fd, max, out, err) < 0)
		return kn_error_wrap(err, "'%s'", path);
	return 0;
}

int kn_write_all(int fd, const void *data, size_t len, kn_error **err)
{
	const char *p = data;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return kn_error_errno(err, "write");
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int kn_fsync_dir(const char *dir, kn_error **err)
{
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return kn_error_errno(err, "open '%s'", dir);
	if (fsync(fd) < 0)
		return kn_error_errno(err, "fsync '%s'", dir);
	return 0;
}

int kn_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode, kn_error **err)
{
	_cleanup_free_ char *tmp = xasprintf("%s.tmp-XXXXXX", path);
	_cleanup_free_ char *dcopy = xstrdup(path);
	int fd;

	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return kn_error_errno(err, "create temporary file for '%s'", path);
	if (fchmod(fd, mode) < 0 || kn_write_all(fd, data, len, NULL) < 0 || fsync(fd) < 0) {
		kn_error_errno(err, "write '%s'", tmp);
		close(fd);
		unlink(tmp);
		return -1;
	}
	if (close(fd) < 0) {
		kn_error_errno(err, "close '%s'", tmp);
		unlink(tmp);
		return -1;
	}
	if (rename(tmp, path) < 0) {
		kn_error_errno(err, "rename '%s' to '%s'", tmp, path);
		unlink(tmp);
		return -1;
	}
	return kn_fsync_dir(dirname(dcopy), err);
}

int kn_mkdir_p(const char *path, mode_t mode, kn_error **err)
{
	_cleanup_free_ char *p = xstrdup(path);

	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return kn_error_errno(err, "mkdir '%s'", p);
		*s = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		return kn_error_errno(err, "mkdir '%s'", p);
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path) < 0 && errno != ENOENT ? -1 : 0;
	return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

int kn_rm_rf(const char *path, kn_error **err)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : kn_error_errno(err, "stat '%s'", path);
	if (nftw(path, rm_one, 64, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0)
		return kn_error_errno(err, "remove '%s'", path);
	return 0;
}

char *kn_path_join(const char *a, const char *b)
{
	size_t la = strlen(a);

	while (la > 1 && a[la - 1] == '/')
		la--;
	while (*b == '/')
		b++;
	if (la == 1 && a[0] == '/')
		return xasprintf("/%s", b);
	return xasprintf("%.*s/%s", (int)la, a, b);
}

bool kn_path_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}
