/*
 * kiln layers: unpacking a layer into a directory, safely.
 *
 * Threat model: the layer is hostile. Every path is cleaned (leading "/" and "./" dropped, "."
 * components skipped, ".." refused) and its parent directory is opened with openat2(
 * RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) below the target's fd, or, if
 * the kernel has no openat2, by a walk of single components opened with O_NOFOLLOW. The final
 * component is always created with *at() calls that do not follow symlinks (O_CREAT|O_EXCL after
 * removing what was there). So no entry can write through a symlink, and nothing outside the
 * target is ever created, modified or linked. Directory modes and mtimes are set at the end
 * (writing children changes them, and a read-only directory must stay writable meanwhile).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "base/userns.h"
#include "layers/layer-internal.h"

#define APPLY_BUF ((size_t)256 << 10)
#define APPLY_PATH_MAX 4096
#define HOLE_BLOCK 4096

bool layer_apply_force_walk;

/* ---- a small string set (flattened mode: the paths this layer wrote) ---------------------- */

struct strset {
	char **v;
	size_t n, cap;
};

static uint64_t str_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static char **strset_slot(struct strset *s, const char *key)
{
	size_t i = (size_t)str_hash(key) & (s->cap - 1);

	while (s->v[i] && strcmp(s->v[i], key))
		i = (i + 1) & (s->cap - 1);
	return &s->v[i];
}

static bool strset_has(struct strset *s, const char *key)
{
	return s->cap && *strset_slot(s, key);
}

static void strset_add(struct strset *s, const char *key)
{
	char **slot;

	if ((s->n + 1) * 2 > s->cap) {
		struct strset big = { NULL, s->n, s->cap ? s->cap * 2 : 256 };

		big.v = xcalloc(big.cap, sizeof(*big.v));
		for (size_t i = 0; i < s->cap; i++)
			if (s->v[i])
				*strset_slot(&big, s->v[i]) = s->v[i];
		free(s->v);
		*s = big;
	}
	slot = strset_slot(s, key);
	if (!*slot) {
		*slot = xstrdup(key);
		s->n++;
	}
}

static void strset_release(struct strset *s)
{
	for (size_t i = 0; i < s->cap; i++)
		free(s->v[i]);
	free(s->v);
}

/* ---- the applier ------------------------------------------------------------------------- */

struct deferred_dir {
	char *rel;
	mode_t mode;
	time_t mtime;
};

struct ap {
	int rootfd;
	const struct layer_apply_opts *opts;
	bool overlay;
	bool is_root;
	bool userns; /* in a user namespace: rootless (base/userns.h) */
	bool no_openat2;
	char *cached_rel; /* parent directory cache: the last one opened */
	int cached_fd;
	struct strset written;
	struct deferred_dir *dirs;
	size_t n_dirs, alloc_dirs;
	int64_t total_size, n_entries;
	int64_t max_size, max_entries;
	unsigned char *buf;
	unsigned char *rbuf;
	struct layer_reader *rd;
	kn_error *rerr;
};

static void cache_drop(struct ap *ap)
{
	free(ap->cached_rel);
	ap->cached_rel = NULL;
	if (ap->cached_fd >= 0)
		close(ap->cached_fd);
	ap->cached_fd = -1;
}

static la_ssize_t read_cb(struct archive *a, void *ctx, const void **buf)
{
	struct ap *ap = ctx;
	ssize_t n;

	if (ap->rerr)
		return -1;
	n = layer_reader_read(ap->rd, ap->rbuf, APPLY_BUF, &ap->rerr);
	if (n < 0) {
		archive_set_error(a, EIO, "layer stream failed");
		return -1;
	}
	*buf = ap->rbuf;
	return n;
}

char *layer_clean_path(const char *p, const char *what, kn_error **err)
{
	struct kn_buf out = KN_BUF_INIT;
	const char *orig = p;

	if (strlen(p) > APPLY_PATH_MAX) {
		kn_error_set(err, ENAMETOOLONG, "%s name too long", what);
		return NULL;
	}
	while (*p) {
		const char *end = strchrnul(p, '/');
		size_t len = (size_t)(end - p);

		if (len == 2 && p[0] == '.' && p[1] == '.') {
			kn_buf_release(&out);
			kn_error_set(err, EPERM, "%s '%s' escapes the root ('..' component)", what, orig);
			return NULL;
		}
		if (len && !(len == 1 && *p == '.')) {
			if (out.len)
				kn_buf_addch(&out, '/');
			kn_buf_add(&out, p, len);
		}
		p = *end ? end + 1 : end;
	}
	return kn_buf_detach(&out);
}

/* Splits rel into an owned parent ("" at the root) and a borrowed base. */
static char *split_path(const char *rel, const char **ret_base)
{
	const char *slash = strrchr(rel, '/');

	if (!slash) {
		*ret_base = rel;
		return xstrdup("");
	}
	*ret_base = slash + 1;
	return xstrndup(rel, (size_t)(slash - rel));
}

static int is_symlink_at(int dirfd, const char *name)
{
	struct stat st;

	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
}

/* Walks rel one component at a time below rootfd without following symlinks. */
static int walk_dir(struct ap *ap, const char *rel, bool create, kn_error **err)
{
	int cur = fcntl(ap->rootfd, F_DUPFD_CLOEXEC, 3);
	const char *p = rel;

	if (cur < 0)
		return kn_error_errno(err, "cannot dup the target fd");
	while (*p) {
		const char *end = strchrnul(p, '/');
		_cleanup_free_ char *c = xstrndup(p, (size_t)(end - p));
		int fd;

		p = *end ? end + 1 : end;
		if (!*c)
			continue;
		fd = openat(cur, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT && create) {
			if (mkdirat(cur, c, 0755) < 0 && errno != EEXIST) {
				kn_error_errno(err, "cannot create directory '%s'", rel);
				close(cur);
				return -1;
			}
			fd = openat(cur, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (fd < 0) {
			int e = errno;
			if ((e == ELOOP || e == ENOTDIR) && is_symlink_at(cur, c))
				kn_error_set(err, EPERM, "refusing to write through symlink '%s' in '%s'",
					     c, rel);
			else if (e == ENOTDIR)
				kn_error_set(err, ENOTDIR, "'%s' in '%s' is not a directory", c, rel);
			else {
				errno = e;
				kn_error_errno(err, "cannot open directory '%s'", rel);
			}
			close(cur);
			return -1;
		}
		close(cur);
		cur = fd;
	}
	return cur;
}

/*
 * Opens directory rel (cleaned) inside the target; create makes missing directories (0755).
 * Returns a new fd, or -1 (ENOENT when missing and !create).
 */
static int open_dir_new(struct ap *ap, const char *rel, bool create, kn_error **err)
{
	struct open_how how = {
		.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	long fd;

	if (!*rel) {
		fd = fcntl(ap->rootfd, F_DUPFD_CLOEXEC, 3);
		if (fd < 0)
			return kn_error_errno(err, "cannot dup the target fd");
		return (int)fd;
	}
	if (!ap->no_openat2) {
		do
			fd = syscall(SYS_openat2, ap->rootfd, rel, &how, sizeof(how));
		while (fd < 0 && (errno == EAGAIN || errno == EINTR));
		if (fd >= 0)
			return (int)fd;
		if (errno == ENOSYS || errno == EPERM /* seccomp */)
			ap->no_openat2 = true;
		else if (errno == ENOENT && !create)
			return kn_error_errno(err, "cannot open directory '%s'", rel);
		else if (errno != ENOENT && errno != ELOOP && errno != ENOTDIR)
			return kn_error_errno(err, "cannot open directory '%s'", rel);
		/* ENOENT (create), ELOOP, ENOTDIR: the walk creates or names the culprit. */
	}
	return walk_dir(ap, rel, create, err);
}

/* A borrowed fd of directory rel (cached: layers are mostly sorted by directory). */
static int open_dir(struct ap *ap, const char *rel, bool create, kn_error **err)
{
	int fd;

	if (ap->cached_rel && !strcmp(ap->cached_rel, rel))
		return ap->cached_fd;
	fd = open_dir_new(ap, rel, create, err);
	if (fd < 0)
		return -1;
	cache_drop(ap);
	ap->cached_rel = xstrdup(rel);
	ap->cached_fd = fd;
	return fd;
}

int layer_rm_rf_at(int at, const char *name, kn_error **err)
{
	struct stat st;
	DIR *d;
	struct dirent *de;
	int fd, r = 0;

	if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return kn_error_errno(err, "cannot stat '%s'", name);
	}
	if (!S_ISDIR(st.st_mode)) {
		if (unlinkat(at, name, 0) < 0 && errno != ENOENT)
			return kn_error_errno(err, "cannot remove '%s'", name);
		return 0;
	}
	fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return kn_error_errno(err, "cannot open directory '%s'", name);
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return kn_error_errno(err, "cannot open directory '%s'", name);
	}
	while (r == 0 && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		r = layer_rm_rf_at(dirfd(d), de->d_name, err);
	}
	closedir(d);
	if (r < 0)
		return -1;
	if (unlinkat(at, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return kn_error_errno(err, "cannot remove directory '%s'", name);
	return 0;
}

/* Removes whatever is at pfd/base unless it is a directory and keep_dir is set. */
static int clear_slot(int pfd, const char *base, bool keep_dir, bool *ret_is_dir,
		      kn_error **err)
{
	struct stat st;

	*ret_is_dir = false;
	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return kn_error_errno(err, "cannot stat '%s'", base);
	}
	if (S_ISDIR(st.st_mode)) {
		if (keep_dir) {
			*ret_is_dir = true;
			return 0;
		}
		/*
		 * The parent cache holds pfd itself (never something below base), so it stays
		 * valid.
		 */
		return layer_rm_rf_at(pfd, base, err);
	}
	if (unlinkat(pfd, base, 0) < 0)
		return kn_error_errno(err, "cannot remove '%s'", base);
	return 0;
}

/*
 * Xattrs go on what we hold an fd of: regular files and directories. Symlinks and special files
 * keep none (setting them needs a path, and a path through /proc could follow the symlink).
 */
static int set_xattrs(struct ap *ap, int fd, struct archive_entry *e, const char *rel,
		      kn_error **err)
{
	const char *name;
	const void *val;
	size_t len;

	if (archive_entry_xattr_reset(e) == 0)
		return 0;
	while (archive_entry_xattr_next(e, &name, &val, &len) == ARCHIVE_OK) {
		/* A layer must never steer overlayfs (redirect, opaque, metacopy, ...). */
		if (!strncmp(name, "trusted.overlay.", 16) || !strncmp(name, "user.overlay.", 13))
			continue;
		if (fsetxattr(fd, name, val, len, 0) < 0) {
			/* Some file systems have no (user) xattrs; non-root cannot set trusted.*. */
			if (errno == ENOTSUP || (errno == EPERM && (!ap->is_root || ap->userns)))
				continue;
			return kn_error_errno(err, "cannot set xattr '%s' on '%s'", name, rel);
		}
	}
	return 0;
}

/* A failed chown: fine for a plain user (EPERM), an error otherwise, with how to map the ID. */
static int owner_error(struct ap *ap, struct archive_entry *e, const char *rel, kn_error **err)
{
	int64_t uid = archive_entry_uid(e), gid = archive_entry_gid(e);
	_cleanup_free_ char *hint = NULL;

	if (!ap->is_root && errno == EPERM)
		return 0;
	if (errno == EINVAL && ap->userns)
		hint = kn_userns_unmapped_hint((unsigned long)(uid > gid ? uid : gid));
	return kn_error_errno(err, "cannot change owner of '%s' to %lld:%lld%s", rel,
			      (long long)uid, (long long)gid, hint ? hint : "");
}

static int set_owner_at(struct ap *ap, int pfd, const char *base, struct archive_entry *e,
			const char *rel, kn_error **err)
{
	if (fchownat(pfd, base, (uid_t)archive_entry_uid(e), (gid_t)archive_entry_gid(e),
		     AT_SYMLINK_NOFOLLOW) < 0)
		return owner_error(ap, e, rel, err);
	return 0;
}

static int set_mtime_at(int pfd, const char *base, struct archive_entry *e, const char *rel,
			kn_error **err)
{
	struct timespec ts[2] = { { archive_entry_mtime(e), 0 }, { archive_entry_mtime(e), 0 } };

	if (utimensat(pfd, base, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return kn_error_errno(err, "cannot set times of '%s'", rel);
	return 0;
}

static bool all_zero(const unsigned char *p, size_t len)
{
	static const unsigned char zeros[HOLE_BLOCK];

	while (len >= HOLE_BLOCK) {
		if (memcmp(p, zeros, HOLE_BLOCK))
			return false;
		p += HOLE_BLOCK;
		len -= HOLE_BLOCK;
	}
	return len == 0 || !memcmp(p, zeros, len);
}

/* Writes the entry's data; sparse holes and runs of zeros become holes. */
static int write_file_data(struct archive *a, int fd, int64_t size, const char *rel,
			   kn_error **err)
{
	const void *buf;
	size_t len;
	la_int64_t off;
	int r;

	while ((r = archive_read_data_block(a, &buf, &len, &off)) == ARCHIVE_OK) {
		const unsigned char *p = buf;

		if (off < 0 || off > size || len > (size_t)(size - off))
			return kn_error_set(err, EBADMSG, "bad data block in '%s'", rel);
		while (len) {
			size_t n = len > HOLE_BLOCK ? HOLE_BLOCK : len;
			if (!all_zero(p, n)) {
				const unsigned char *q = p;
				size_t left = n;
				while (left) {
					ssize_t w = pwrite(fd, q, left, off);
					if (w < 0 && errno == EINTR)
						continue;
					if (w < 0)
						return kn_error_errno(err, "cannot write '%s'", rel);
					q += w;
					off += w;
					left -= (size_t)w;
				}
			} else {
				off += (la_int64_t)n;
			}
			p += n;
			len -= n;
		}
	}
	if (r != ARCHIVE_EOF)
		return kn_error_set(err, EBADMSG, "cannot read data of '%s': %s", rel,
				    archive_error_string(a) ? archive_error_string(a) : "tar error");
	if (ftruncate(fd, size) < 0)
		return kn_error_errno(err, "cannot size '%s'", rel);
	return 0;
}

static void mark_written(struct ap *ap, const char *rel)
{
	_cleanup_free_ char *p = xstrdup(rel);

	if (ap->overlay)
		return;
	/* The entry and its parents: an opaque marker must not remove what this layer made. */
	for (;;) {
		char *slash;
		strset_add(&ap->written, p);
		slash = strrchr(p, '/');
		if (!slash)
			break;
		*slash = 0;
	}
}

static int do_whiteout(struct ap *ap, const char *parent, const char *victim, const char *rel,
		       kn_error **err)
{
	bool is_dir;
	int pfd;

	if (!*victim || !strcmp(victim, ".") || !strcmp(victim, ".."))
		return kn_error_set(err, EPERM, "invalid whiteout '%s'", rel);
	if (!ap->overlay) {
		kn_error *local = NULL;

		pfd = open_dir(ap, parent, false, &local);
		if (pfd < 0) {
			if (local->code == ENOENT || local->code == ENOTDIR) {
				kn_error_free(local);
				return 0; /* nothing to delete */
			}
			kn_error_propagate(err, local);
			return -1;
		}
		return layer_rm_rf_at(pfd, victim, err);
	}
	pfd = open_dir(ap, parent, true, err);
	if (pfd < 0)
		return -1;
	if (clear_slot(pfd, victim, false, &is_dir, err) < 0)
		return -1;
	if (mknodat(pfd, victim, S_IFCHR | 0, makedev(0, 0)) < 0)
		return kn_error_errno(err, "cannot create the overlay whiteout for '%s'", rel);
	return 0;
}

static int do_opaque(struct ap *ap, const char *dir, kn_error **err)
{
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	int dfd;

	dfd = open_dir(ap, dir, true, err);
	if (dfd < 0)
		return -1;
	if (ap->overlay) {
		const char *name = ap->is_root && !ap->userns ? "trusted.overlay.opaque"
							      : "user.overlay.opaque";
		if (fsetxattr(dfd, name, "y", 1, 0) < 0)
			return kn_error_errno(err, "cannot mark '%s' opaque", dir);
		return 0;
	}
	{
		int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return kn_error_errno(err, "cannot open directory '%s'", dir);
		d = fdopendir(fd);
		if (!d) {
			close(fd);
			return kn_error_errno(err, "cannot open directory '%s'", dir);
		}
	}
	while ((de = readdir(d))) {
		_cleanup_free_ char *child = NULL;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		child = *dir ? xasprintf("%s/%s", dir, de->d_name) : xstrdup(de->d_name);
		if (strset_has(&ap->written, child))
			continue;
		if (layer_rm_rf_at(dfd, de->d_name, err) < 0)
			return -1;
	}
	return 0;
}

static int apply_entry(struct ap *ap, struct archive *a, struct archive_entry *e, kn_error **err)
{
	_cleanup_free_ char *rel = NULL, *parent = NULL, *link = NULL;
	const char *base, *hl, *pathname = archive_entry_pathname(e);
	mode_t type = archive_entry_filetype(e);
	mode_t perm = archive_entry_perm(e) & 07777;
	bool is_dir;
	int pfd;

	if (!pathname)
		return kn_error_set(err, EBADMSG, "tar entry with an unreadable name");
	rel = layer_clean_path(pathname, "entry", err);
	if (!rel)
		return -1;
	if (++ap->n_entries > ap->max_entries)
		return kn_error_set(err, EFBIG, "layer has more than %lld entries",
				    (long long)ap->max_entries);
	if (!*rel)
		return 0; /* the root itself: its metadata stays the target's */
	parent = split_path(rel, &base);

	if (!strncmp(base, ".wh.", 4)) {
		if (!strcmp(base, ".wh..wh..opq"))
			return do_opaque(ap, parent, err);
		if (!strncmp(base, ".wh..wh.", 8))
			return 0; /* aufs bookkeeping (.wh..wh.plnk, ...): not content */
		return do_whiteout(ap, parent, base + 4, rel, err);
	}

	hl = archive_entry_hardlink(e);
	if (hl) {
		link = layer_clean_path(hl, "hardlink target of", err);
		if (!link)
			return -1;
		if (!*link || !strcmp(link, rel))
			return kn_error_set(err, EPERM, "invalid hardlink '%s' -> '%s'", rel, hl);
	}
	if (type == AE_IFREG && !link) {
		int64_t size = archive_entry_size(e);
		if (size < 0)
			return kn_error_set(err, EBADMSG, "entry '%s' has a negative size", rel);
		if (size > ap->max_size - ap->total_size)
			return kn_error_set(err, EFBIG,
					    "layer data exceeds the limit of %lld bytes at '%s'",
					    (long long)ap->max_size, rel);
		ap->total_size += size;
	}
	/* A user namespace cannot make devices: skipped, as rootless BuildKit and containerd do. */
	if ((type == AE_IFCHR || type == AE_IFBLK) && !link && ap->userns)
		return 0;
	if ((type == AE_IFCHR || type == AE_IFBLK) && !link && !ap->is_root)
		return kn_error_set(err, EPERM, "device file '%s' needs root", rel);

	pfd = open_dir(ap, parent, true, err);
	if (pfd < 0)
		return -1;
	if (clear_slot(pfd, base, type == AE_IFDIR && !link, &is_dir, err) < 0)
		return -1;
	mark_written(ap, rel);

	if (link) {
		_cleanup_free_ char *tparent = NULL;
		const char *tbase;
		int tfd;

		tparent = split_path(link, &tbase);
		tfd = open_dir_new(ap, tparent, false, err);
		if (tfd < 0)
			return kn_error_wrap(err, "hardlink '%s' -> '%s'", rel, link);
		if (linkat(tfd, tbase, pfd, base, 0) < 0) {
			kn_error_errno(err, "cannot create hardlink '%s' -> '%s'", rel, link);
			close(tfd);
			return -1;
		}
		close(tfd);
		return 0;
	}

	switch (type) {
	case AE_IFDIR: {
		_cleanup_close_ int dfd = -1;

		if (!is_dir && mkdirat(pfd, base, 0700) < 0)
			return kn_error_errno(err, "cannot create directory '%s'", rel);
		dfd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dfd < 0)
			return kn_error_errno(err, "cannot open directory '%s'", rel);
		if (fchown(dfd, (uid_t)archive_entry_uid(e), (gid_t)archive_entry_gid(e)) < 0 &&
		    owner_error(ap, e, rel, err) < 0)
			return -1;
		if (set_xattrs(ap, dfd, e, rel, err) < 0)
			return -1;
		KN_GROW(ap->dirs, ap->alloc_dirs, ap->n_dirs + 1);
		ap->dirs[ap->n_dirs].rel = xstrdup(rel);
		ap->dirs[ap->n_dirs].mode = perm;
		ap->dirs[ap->n_dirs].mtime = archive_entry_mtime(e);
		ap->n_dirs++;
		return 0;
	}
	case AE_IFREG: {
		_cleanup_close_ int fd = -1;
		struct timespec ts[2] = { { archive_entry_mtime(e), 0 }, { archive_entry_mtime(e), 0 } };

		fd = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0)
			return kn_error_errno(err, "cannot create '%s'", rel);
		if (write_file_data(a, fd, archive_entry_size(e), rel, err) < 0)
			return -1;
		if (fchown(fd, (uid_t)archive_entry_uid(e), (gid_t)archive_entry_gid(e)) < 0 &&
		    owner_error(ap, e, rel, err) < 0)
			return -1;
		if (fchmod(fd, perm) < 0)
			return kn_error_errno(err, "cannot change mode of '%s'", rel);
		if (set_xattrs(ap, fd, e, rel, err) < 0)
			return -1;
		if (futimens(fd, ts) < 0)
			return kn_error_errno(err, "cannot set times of '%s'", rel);
		if (close(steal_fd(&fd)) < 0)
			return kn_error_errno(err, "cannot write '%s'", rel);
		return 0;
	}
	case AE_IFLNK: {
		const char *target = archive_entry_symlink(e);

		if (!target)
			return kn_error_set(err, EBADMSG, "symlink '%s' has no target", rel);
		if (symlinkat(target, pfd, base) < 0)
			return kn_error_errno(err, "cannot create symlink '%s'", rel);
		if (set_owner_at(ap, pfd, base, e, rel, err) < 0)
			return -1;
		return set_mtime_at(pfd, base, e, rel, err);
	}
	case AE_IFCHR:
	case AE_IFBLK:
	case AE_IFIFO: {
		dev_t dev = type == AE_IFIFO ? 0
					     : makedev(archive_entry_rdevmajor(e),
						       archive_entry_rdevminor(e));
		if (mknodat(pfd, base, type | 0600, dev) < 0)
			return kn_error_errno(err, "cannot create special file '%s'", rel);
		if (set_owner_at(ap, pfd, base, e, rel, err) < 0)
			return -1;
		if (fchmodat(pfd, base, perm, 0) < 0)
			return kn_error_errno(err, "cannot change mode of '%s'", rel);
		return set_mtime_at(pfd, base, e, rel, err);
	}
	default:
		return 0; /* sockets and unknown types carry nothing */
	}
}

static int finish_dirs(struct ap *ap, kn_error **err)
{
	/* Deepest first is not needed (mode/mtime of a child do not touch the parent). */
	for (size_t i = 0; i < ap->n_dirs; i++) {
		struct deferred_dir *d = &ap->dirs[i];
		struct timespec ts[2] = { { d->mtime, 0 }, { d->mtime, 0 } };
		kn_error *local = NULL;
		int fd = open_dir_new(ap, d->rel, false, &local);

		if (fd < 0) {
			/* Removed later in the same layer (replaced or whited out): fine. */
			if (local->code == ENOENT || local->code == ENOTDIR) {
				kn_error_free(local);
				continue;
			}
			kn_error_propagate(err, local);
			return -1;
		}
		if (fchmod(fd, d->mode) < 0 || futimens(fd, ts) < 0) {
			kn_error_errno(err, "cannot set mode or times of '%s'", d->rel);
			close(fd);
			return -1;
		}
		close(fd);
	}
	return 0;
}

int layer_apply_fd(int fd, const char *target, const struct layer_apply_opts *opts,
		   char **ret_diff_id, kn_error **err)
{
	static const struct layer_apply_opts defaults = { 0 };
	struct ap ap = { .rootfd = -1, .cached_fd = -1 };
	struct archive *a = NULL;
	struct archive_entry *e;
	_cleanup_free_ char *digest = NULL, *diff_id = NULL;
	kn_error *local = NULL;
	int r = -1, ar;

	if (!opts)
		opts = &defaults;
	ap.opts = opts;
	ap.overlay = opts->flags & LAYER_APPLY_OVERLAY;
	ap.is_root = geteuid() == 0;
	ap.userns = kn_userns_active();
	ap.no_openat2 = layer_apply_force_walk;
	ap.max_size = opts->max_size > 0 ? opts->max_size : LAYER_APPLY_MAX_SIZE_DEFAULT;
	ap.max_entries = opts->max_entries > 0 ? opts->max_entries : LAYER_APPLY_MAX_ENTRIES_DEFAULT;
	ap.rootfd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ap.rootfd < 0)
		return kn_error_errno(err, "cannot open target directory '%s'", target);
	if (layer_reader_new(fd, &ap.rd, err) < 0)
		goto out;
	ap.rbuf = xmalloc(APPLY_BUF);
	a = archive_read_new();
	archive_read_support_format_tar(a);
	if (archive_read_open(a, &ap, NULL, read_cb, NULL) != ARCHIVE_OK) {
		if (ap.rerr)
			kn_error_propagate(&local, steal_ptr(&ap.rerr));
		else
			kn_error_set(&local, EBADMSG, "not a layer tar: %s", archive_error_string(a));
		goto out;
	}
	while ((ar = archive_read_next_header(a, &e)) == ARCHIVE_OK || ar == ARCHIVE_WARN) {
		if (apply_entry(&ap, a, e, &local) < 0) {
			if (ap.rerr) {
				kn_error_free(steal_ptr(&local));
				kn_error_propagate(&local, steal_ptr(&ap.rerr));
			}
			goto out;
		}
	}
	if (ar != ARCHIVE_EOF) {
		if (ap.rerr)
			kn_error_propagate(&local, steal_ptr(&ap.rerr));
		else
			kn_error_set(&local, EBADMSG, "corrupt layer tar: %s",
				     archive_error_string(a) ? archive_error_string(a) : "read error");
		goto out;
	}
	if (layer_reader_finish(ap.rd, &digest, &diff_id, &local) < 0)
		goto out;
	if (opts->expected_digest && strcmp(opts->expected_digest, digest)) {
		kn_error_set(&local, EBADMSG, "layer digest mismatch: expected '%s', got '%s'",
			     opts->expected_digest, digest);
		goto out;
	}
	if (opts->expected_diff_id && strcmp(opts->expected_diff_id, diff_id)) {
		kn_error_set(&local, EBADMSG, "layer diff_id mismatch: expected '%s', got '%s'",
			     opts->expected_diff_id, diff_id);
		goto out;
	}
	if (finish_dirs(&ap, &local) < 0)
		goto out;
	if (ret_diff_id)
		*ret_diff_id = steal_ptr(&diff_id);
	r = 0;
out:
	if (local)
		kn_error_propagate(err, local);
	if (a)
		archive_read_free(a);
	layer_reader_free(ap.rd);
	kn_error_free(ap.rerr);
	cache_drop(&ap);
	strset_release(&ap.written);
	for (size_t i = 0; i < ap.n_dirs; i++)
		free(ap.dirs[i].rel);
	free(ap.dirs);
	free(ap.rbuf);
	if (ap.rootfd >= 0)
		close(ap.rootfd);
	return r;
}
