/*
 * kiln layers: writing layer tars from an overlayfs upper dir, a plain directory, or a tar stream.
 *
 * The tree is walked depth-first with each directory's names sorted bytewise (the order of
 * `tar --sort=name`), so the same tree always gives the same bytes. libarchive writes
 * pax_restricted (ustar headers, a PAX header only when an entry needs one) with SCHILY.xattr
 * records only, unblocked, straight into the compression pipeline.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "layers/layer-internal.h"

#define COPY_BUF ((size_t)1 << 20)
#define XATTR_LIST_MAX_BYTES ((size_t)1 << 16)
#define XATTR_VALUE_MAX_BYTES ((size_t)1 << 16)

struct xattr {
	char *name;
	void *value;
	size_t len;
};

struct xattrs {
	struct xattr *v;
	size_t n, alloc;
};

static void xattrs_release(struct xattrs *x)
{
	for (size_t i = 0; i < x->n; i++) {
		free(x->v[i].name);
		free(x->v[i].value);
	}
	free(x->v);
	x->v = NULL;
	x->n = x->alloc = 0;
}

static int cmp_xattr(const void *a, const void *b)
{
	return strcmp(((const struct xattr *)a)->name, ((const struct xattr *)b)->name);
}

/* Every xattr of path (not following a final symlink), sorted by name. */
static int xattrs_read(const char *path, struct xattrs *ret, kn_error **err)
{
	_cleanup_free_ char *list = NULL;
	ssize_t n;

	n = llistxattr(path, NULL, 0);
	if (n < 0) {
		if (errno == ENOTSUP || errno == ENOSYS)
			return 0;
		return kn_error_errno(err, "cannot list xattrs of '%s'", path);
	}
	if (n == 0)
		return 0;
	if ((size_t)n > XATTR_LIST_MAX_BYTES)
		return kn_error_set(err, E2BIG, "too many xattrs on '%s'", path);
	list = xmalloc((size_t)n + 1);
	n = llistxattr(path, list, (size_t)n);
	if (n < 0)
		return kn_error_errno(err, "cannot list xattrs of '%s'", path);
	list[n] = 0;
	for (char *name = list; name < list + n; name += strlen(name) + 1) {
		_cleanup_free_ void *val = NULL;
		ssize_t vl;

		if (!*name)
			continue;
		vl = lgetxattr(path, name, NULL, 0);
		if (vl < 0) {
			if (errno == ENODATA)
				continue;
			return kn_error_errno(err, "cannot read xattr '%s' of '%s'", name, path);
		}
		if ((size_t)vl > XATTR_VALUE_MAX_BYTES)
			return kn_error_set(err, E2BIG, "xattr '%s' of '%s' is too large", name, path);
		val = xmalloc((size_t)vl + 1);
		vl = lgetxattr(path, name, val, (size_t)vl);
		if (vl < 0)
			return kn_error_errno(err, "cannot read xattr '%s' of '%s'", name, path);
		KN_GROW(ret->v, ret->alloc, ret->n + 1);
		ret->v[ret->n].name = xstrdup(name);
		ret->v[ret->n].value = steal_ptr(&val);
		ret->v[ret->n].len = (size_t)vl;
		ret->n++;
	}
	qsort(ret->v, ret->n, sizeof(*ret->v), cmp_xattr);
	return 0;
}

static const struct xattr *xattrs_get(const struct xattrs *x, const char *suffix)
{
	/* Overlay's own xattrs: trusted.overlay.* (default) or user.overlay.* (userxattr). */
	for (size_t i = 0; i < x->n; i++) {
		const char *n = x->v[i].name;
		if ((!strncmp(n, "trusted.overlay.", 16) && !strcmp(n + 16, suffix)) ||
		    (!strncmp(n, "user.overlay.", 13) && !strcmp(n + 13, suffix)))
			return &x->v[i];
	}
	return NULL;
}

/* Xattrs that never go into a layer: overlay's bookkeeping and the host's SELinux label. */
static bool xattr_skipped(const char *name)
{
	return !strncmp(name, "trusted.overlay.", 16) || !strncmp(name, "user.overlay.", 13) ||
	       !strcmp(name, "security.selinux");
}

/* ---- hardlink map: (dev, ino) -> first path ----------------------------------------------- */

struct ino_ent {
	dev_t dev;
	ino_t ino;
	char *path;
};

struct ino_map {
	struct ino_ent *v;
	size_t n, cap; /* cap is 0 or a power of two */
};

static size_t ino_hash(dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ull ^ (uint64_t)dev * 0xc2b2ae3d27d4eb4full;
	return (size_t)(h ^ (h >> 29));
}

static struct ino_ent *ino_map_slot(struct ino_map *m, dev_t dev, ino_t ino)
{
	size_t i = ino_hash(dev, ino) & (m->cap - 1);

	while (m->v[i].path && !(m->v[i].dev == dev && m->v[i].ino == ino))
		i = (i + 1) & (m->cap - 1);
	return &m->v[i];
}

/* Returns the first path seen for (dev, ino), or records path and returns NULL. */
static const char *ino_map_check(struct ino_map *m, dev_t dev, ino_t ino, const char *path)
{
	struct ino_ent *e;

	if ((m->n + 1) * 2 > m->cap) {
		struct ino_map bigger = { NULL, m->n, m->cap ? m->cap * 2 : 64 };

		bigger.v = xcalloc(bigger.cap, sizeof(*bigger.v));
		for (size_t i = 0; i < m->cap; i++)
			if (m->v[i].path)
				*ino_map_slot(&bigger, m->v[i].dev, m->v[i].ino) = m->v[i];
		free(m->v);
		*m = bigger;
	}
	e = ino_map_slot(m, dev, ino);
	if (e->path)
		return e->path;
	e->dev = dev;
	e->ino = ino;
	e->path = xstrdup(path);
	m->n++;
	return NULL;
}

static void ino_map_release(struct ino_map *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->v[i].path);
	free(m->v);
	m->v = NULL;
	m->n = m->cap = 0;
}

/* ---- the writer --------------------------------------------------------------------------- */

struct dw {
	struct archive *a;
	struct layer_pipe *pipe;
	kn_error *werr; /* the pipe's error, kept while libarchive unwinds */
	const struct layer_write_opts *opts;
	const struct layer_source *src;
	struct kn_buf path; /* source path of the current entry */
	struct kn_buf rel;  /* its name in the layer (no leading "./" or "/") */
	struct ino_map inodes;
	unsigned char *buf;
	int64_t n_entries;
};

static la_ssize_t tar_write_cb(struct archive *a, void *ctx, const void *buf, size_t len)
{
	struct dw *w = ctx;

	if (w->werr)
		return -1;
	if (layer_pipe_write(w->pipe, buf, len, &w->werr) < 0) {
		archive_set_error(a, EIO, "layer stream failed");
		return -1;
	}
	return (la_ssize_t)len;
}

static int archive_fail(struct dw *w, const char *what, kn_error **err)
{
	if (w->werr) {
		kn_error *e = steal_ptr(&w->werr);
		kn_error_propagate(err, e);
		return kn_error_wrap(err, "%s", what);
	}
	return kn_error_set_errno(err, archive_errno(w->a) > 0 ? archive_errno(w->a) : EIO, "%s: %s", what,
			    archive_error_string(w->a) ? archive_error_string(w->a) : "tar error");
}

static time_t clamp_time(const struct dw *w, time_t t)
{
	if (w->opts->clamp_mtime && t > (time_t)w->opts->source_date_epoch)
		return (time_t)w->opts->source_date_epoch;
	return t;
}

static int write_header(struct dw *w, struct archive_entry *e, kn_error **err)
{
	int r = archive_write_header(w->a, e);

	if (r < ARCHIVE_OK) {
		/* A WARN from the pax writer (e.g. a name it had to mark binary) is fine. */
		if (r == ARCHIVE_WARN && !w->werr)
			goto ok;
		return archive_fail(w, "cannot write tar header", err);
	}
ok:
	w->n_entries++;
	return 0;
}

static int write_data_fd(struct dw *w, int fd, int64_t size, const char *path, kn_error **err)
{
	int64_t left = size;

	while (left > 0) {
		size_t want = left > (int64_t)COPY_BUF ? COPY_BUF : (size_t)left;
		ssize_t n = read(fd, w->buf, want);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return kn_error_errno(err, "cannot read '%s'", path);
		if (n == 0)
			break; /* the file shrank: libarchive pads the entry with zeros */
		if (archive_write_data(w->a, w->buf, (size_t)n) < 0)
			return archive_fail(w, "cannot write tar data", err);
		left -= n;
	}
	return 0;
}

static void add_xattrs(struct archive_entry *e, const struct xattrs *x)
{
	for (size_t i = 0; i < x->n; i++)
		if (!xattr_skipped(x->v[i].name))
			archive_entry_xattr_add_entry(e, x->v[i].name, x->v[i].value, x->v[i].len);
}

/* An OCI whiteout or opaque marker: an empty regular file, mode 0, owned by 0:0, mtime 0. */
static int write_marker(struct dw *w, const char *parent_rel, const char *name, kn_error **err)
{
	struct archive_entry *e = archive_entry_new();
	_cleanup_free_ char *p = xasprintf("%s%s%s", parent_rel, *parent_rel ? "/" : "", name);
	int r;

	archive_entry_set_pathname(e, p);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0);
	archive_entry_set_size(e, 0);
	archive_entry_set_mtime(e, 0, 0);
	r = write_header(w, e, err);
	archive_entry_free(e);
	return r;
}

/* Finds rel in the lowerdirs (top-first); returns an owned path and its stat, or NULL. */
static char *lower_lookup(struct dw *w, const char *rel, struct stat *ret_st)
{
	if (!w->src->lowerdirs)
		return NULL;
	for (char *const *l = w->src->lowerdirs; *l; l++) {
		char *p = kn_path_join(*l, rel);
		if (lstat(p, ret_st) == 0)
			return p;
		free(p);
	}
	return NULL;
}

static int walk_dir(struct dw *w, kn_error **err);

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int emit_entry(struct dw *w, const char *name, kn_error **err)
{
	_cleanup_free_ char *lower_path = NULL;
	struct xattrs xa = { 0 };
	struct archive_entry *e = NULL;
	struct stat st;
	size_t path_len = w->path.len, rel_len = w->rel.len;
	int r = -1;

	kn_buf_addch(&w->path, '/');
	kn_buf_adds(&w->path, name);
	if (w->rel.len)
		kn_buf_addch(&w->rel, '/');
	kn_buf_adds(&w->rel, name);

	if (lstat(w->path.buf, &st) < 0) {
		kn_error_errno(err, "cannot stat '%s'", w->path.buf);
		goto out;
	}
	if (S_ISSOCK(st.st_mode)) {
		r = 0; /* tar cannot hold sockets; they are runtime artifacts anyway */
		goto out;
	}
	if (xattrs_read(w->path.buf, &xa, err) < 0)
		goto out;

	if (w->src->overlay) {
		bool whiteout = (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) ||
				(S_ISREG(st.st_mode) && st.st_size == 0 && xattrs_get(&xa, "whiteout"));
		if (whiteout) {
			_cleanup_free_ char *m = xasprintf(".wh.%s", name);
			w->rel.len = rel_len;
			w->rel.buf[rel_len] = 0;
			r = write_marker(w, w->rel.buf, m, err);
			goto out;
		}
		if (S_ISDIR(st.st_mode) && xattrs_get(&xa, "redirect")) {
			kn_error_set(err, ENOTSUP,
				     "renamed directory '%s' in the overlay upper dir (mount the overlay "
				     "with redirect_dir=off)",
				     w->rel.buf);
			goto out;
		}
	}

	if (S_ISDIR(st.st_mode) && (w->opts->flags & LAYER_PARENTS_FROM_LOWER)) {
		struct stat lst;
		lower_path = lower_lookup(w, w->rel.buf, &lst);
		if (lower_path && S_ISDIR(lst.st_mode)) {
			struct xattrs lxa = { 0 };
			if (xattrs_read(lower_path, &lxa, err) < 0)
				goto out;
			/* Keep the upper's overlay xattrs (opaque) but the lower's metadata. */
			for (size_t i = 0; i < xa.n; i++) {
				if (!xattr_skipped(xa.v[i].name))
					continue;
				KN_GROW(lxa.v, lxa.alloc, lxa.n + 1);
				lxa.v[lxa.n++] = xa.v[i];
				xa.v[i].name = NULL;
				xa.v[i].value = NULL;
			}
			xattrs_release(&xa);
			xa = lxa;
			st.st_mode = lst.st_mode;
			st.st_uid = lst.st_uid;
			st.st_gid = lst.st_gid;
			st.st_mtim = lst.st_mtim;
		}
	}

	e = archive_entry_new();
	archive_entry_set_perm(e, st.st_mode & 07777);
	archive_entry_set_uid(e, st.st_uid);
	archive_entry_set_gid(e, st.st_gid);
	archive_entry_set_mtime(e, clamp_time(w, st.st_mtim.tv_sec), 0);
	add_xattrs(e, &xa);

	if (S_ISDIR(st.st_mode)) {
		_cleanup_free_ char *dname = xasprintf("%s/", w->rel.buf);
		const struct xattr *opq = w->src->overlay ? xattrs_get(&xa, "opaque") : NULL;

		archive_entry_set_pathname(e, dname);
		archive_entry_set_filetype(e, AE_IFDIR);
		if (write_header(w, e, err) < 0)
			goto out;
		/* "y" is opaque; "x" (kernel 6.7+) only says the dir holds xattr whiteouts. */
		if (opq && opq->len >= 1 && ((const char *)opq->value)[0] == 'y' &&
		    write_marker(w, w->rel.buf, ".wh..wh..opq", err) < 0)
			goto out;
		r = walk_dir(w, err);
		goto out;
	}

	archive_entry_set_pathname(e, w->rel.buf);
	if (S_ISREG(st.st_mode)) {
		_cleanup_close_ int fd = -1;
		_cleanup_free_ char *data_path = NULL;
		const char *first = NULL;

		if (st.st_nlink > 1)
			first = ino_map_check(&w->inodes, st.st_dev, st.st_ino, w->rel.buf);
		archive_entry_set_filetype(e, AE_IFREG);
		if (first) {
			archive_entry_set_hardlink(e, first);
			archive_entry_set_size(e, 0);
			r = write_header(w, e, err);
			goto out;
		}
		archive_entry_set_size(e, st.st_size);
		if (w->src->overlay && xattrs_get(&xa, "metacopy")) {
			/* Metadata-only copy-up: the data is still the lower file's. */
			struct stat lst;
			data_path = lower_lookup(w, w->rel.buf, &lst);
			if (!data_path || !S_ISREG(lst.st_mode)) {
				kn_error_set(err, ENOENT,
					     "no lower file holds the data of metacopy file '%s'",
					     w->rel.buf);
				goto out;
			}
		}
		fd = open(data_path ? data_path : w->path.buf, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			kn_error_errno(err, "cannot open '%s'", data_path ? data_path : w->path.buf);
			goto out;
		}
		if (write_header(w, e, err) < 0)
			goto out;
		if (write_data_fd(w, fd, st.st_size, w->path.buf, err) < 0)
			goto out;
		r = 0;
		goto out;
	}
	if (S_ISLNK(st.st_mode)) {
		_cleanup_free_ char *target = xmalloc((size_t)PATH_MAX + 1);
		ssize_t n = readlink(w->path.buf, target, PATH_MAX);

		if (n < 0) {
			kn_error_errno(err, "cannot read symlink '%s'", w->path.buf);
			goto out;
		}
		target[n] = 0;
		archive_entry_set_filetype(e, AE_IFLNK);
		archive_entry_set_symlink(e, target);
	} else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
		archive_entry_set_filetype(e, S_ISCHR(st.st_mode) ? AE_IFCHR : AE_IFBLK);
		archive_entry_set_rdevmajor(e, major(st.st_rdev));
		archive_entry_set_rdevminor(e, minor(st.st_rdev));
	} else if (S_ISFIFO(st.st_mode)) {
		archive_entry_set_filetype(e, AE_IFIFO);
	} else {
		r = 0;
		goto out;
	}
	r = write_header(w, e, err);
out:
	if (e)
		archive_entry_free(e);
	xattrs_release(&xa);
	kn_buf_setlen(&w->path, path_len);
	kn_buf_setlen(&w->rel, rel_len);
	return r;
}

static int walk_dir(struct dw *w, kn_error **err)
{
	_cleanup_closedir_ DIR *d = NULL;
	struct kn_strv names = KN_STRV_INIT;
	struct dirent *de;
	int fd, r = 0;

	fd = open(w->path.buf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return kn_error_errno(err, "cannot open directory '%s'", w->path.buf);
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return kn_error_errno(err, "cannot open directory '%s'", w->path.buf);
	}
	errno = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		kn_strv_push(&names, de->d_name);
	}
	if (errno) {
		kn_strv_release(&names);
		return kn_error_errno(err, "cannot read directory '%s'", w->path.buf);
	}
	/* Only the names are kept while descending: memory is bounded by depth x dir size. */
	closedir(steal_ptr(&d));
	if (names.n)
		qsort(names.v, names.n, sizeof(*names.v), cmp_str);
	for (size_t i = 0; i < names.n && r == 0; i++)
		r = emit_entry(w, names.v[i], err);
	kn_strv_release(&names);
	return r;
}

/* ---- re-writing a tar stream (import) -------------------------------------------------------- */

static int copy_tar(struct dw *w, kn_error **err)
{
	struct archive *in = archive_read_new();
	struct archive_entry *ie;
	int r = -1, ar;

	archive_read_support_filter_all(in);
	archive_read_support_format_tar(in);
	archive_read_support_format_empty(in);
	if (archive_read_open_fd(in, w->src->tar_fd, 256 << 10) != ARCHIVE_OK) {
		kn_error_set(err, EINVAL, "cannot read tar: %s", archive_error_string(in));
		goto out;
	}
	while ((ar = archive_read_next_header(in, &ie)) == ARCHIVE_OK || ar == ARCHIVE_WARN) {
		_cleanup_free_ char *name = NULL, *link = NULL;
		struct archive_entry *e;
		const char *hl = archive_entry_hardlink(ie);
		const char *xname;
		const void *xval;
		size_t xlen;
		mode_t type = archive_entry_filetype(ie);

		if (!archive_entry_pathname(ie)) {
			kn_error_set(err, EINVAL, "tar entry without a name");
			goto out;
		}
		name = layer_clean_path(archive_entry_pathname(ie), "tar entry", err);
		if (!name)
			goto out;
		if (hl) {
			link = layer_clean_path(hl, "hardlink target of", err);
			if (!link)
				goto out;
		}
		if (!*name)
			continue; /* the root itself ("./") */
		e = archive_entry_new();
		if (type == AE_IFDIR) {
			char *d = xasprintf("%s/", name);
			archive_entry_set_pathname(e, d);
			free(d);
		} else {
			archive_entry_set_pathname(e, name);
		}
		archive_entry_set_filetype(e, type);
		archive_entry_set_perm(e, archive_entry_perm(ie));
		archive_entry_set_uid(e, archive_entry_uid(ie));
		archive_entry_set_gid(e, archive_entry_gid(ie));
		archive_entry_set_mtime(e, clamp_time(w, archive_entry_mtime(ie)), 0);
		if (link) {
			archive_entry_set_hardlink(e, link);
			archive_entry_set_size(e, 0);
		} else if (type == AE_IFREG) {
			archive_entry_set_size(e, archive_entry_size(ie));
		} else if (type == AE_IFLNK) {
			archive_entry_set_symlink(e, archive_entry_symlink(ie));
		} else if (type == AE_IFCHR || type == AE_IFBLK) {
			archive_entry_set_rdevmajor(e, archive_entry_rdevmajor(ie));
			archive_entry_set_rdevminor(e, archive_entry_rdevminor(ie));
		}
		archive_entry_xattr_reset(ie);
		while (archive_entry_xattr_next(ie, &xname, &xval, &xlen) == ARCHIVE_OK)
			if (!xattr_skipped(xname))
				archive_entry_xattr_add_entry(e, xname, xval, xlen);
		if (write_header(w, e, err) < 0) {
			archive_entry_free(e);
			goto out;
		}
		archive_entry_free(e);
		if (!link && type == AE_IFREG) {
			for (;;) {
				la_ssize_t n = archive_read_data(in, w->buf, COPY_BUF);
				if (n < 0) {
					kn_error_set(err, EBADMSG, "cannot read tar data of '%s': %s",
						     name, archive_error_string(in));
					goto out;
				}
				if (n == 0)
					break;
				if (archive_write_data(w->a, w->buf, (size_t)n) < 0) {
					archive_fail(w, "cannot write tar data", err);
					goto out;
				}
			}
		}
	}
	if (ar != ARCHIVE_EOF) {
		kn_error_set(err, EBADMSG, "cannot read tar: %s", archive_error_string(in));
		goto out;
	}
	r = 0;
out:
	archive_read_free(in);
	return r;
}

/* ---- entry points --------------------------------------------------------------------------- */

int layer_write(const struct layer_source *src, const struct layer_write_opts *opts,
		layer_out_fn out, void *ctx, struct layer_result *ret, kn_error **err)
{
	static const struct layer_write_opts defaults = LAYER_WRITE_OPTS_INIT;
	struct dw w = { .path = KN_BUF_INIT, .rel = KN_BUF_INIT };
	struct layer_result res = { 0 };
	int r = -1;

	if (!opts)
		opts = &defaults;
	w.opts = opts;
	w.src = src;
	if (layer_pipe_new(opts->compression, opts->level, opts->threads, out, ctx, &w.pipe, err) < 0)
		return -1;
	w.buf = xmalloc(COPY_BUF);
	w.a = archive_write_new();
	if (archive_write_set_format_pax_restricted(w.a) != ARCHIVE_OK ||
	    archive_write_set_format_option(w.a, "pax", "xattrheader", "SCHILY") < ARCHIVE_OK ||
	    archive_write_set_bytes_per_block(w.a, 0) != ARCHIVE_OK) {
		kn_error_set(err, EINVAL, "cannot set up the tar writer: %s",
			     archive_error_string(w.a));
		goto out;
	}
	if (archive_write_open2(w.a, &w, NULL, tar_write_cb, NULL, NULL) != ARCHIVE_OK) {
		archive_fail(&w, "cannot start the tar stream", err);
		goto out;
	}
	if (src->tar_fd >= 0) {
		if (copy_tar(&w, err) < 0)
			goto out;
	} else {
		struct stat st;

		kn_buf_adds(&w.path, src->dir);
		while (w.path.len > 1 && w.path.buf[w.path.len - 1] == '/')
			kn_buf_setlen(&w.path, w.path.len - 1);
		if (lstat(w.path.buf, &st) < 0) {
			kn_error_errno(err, "cannot stat '%s'", w.path.buf);
			goto out;
		}
		if (!S_ISDIR(st.st_mode)) {
			kn_error_set(err, ENOTDIR, "'%s' is not a directory", w.path.buf);
			goto out;
		}
		if (walk_dir(&w, err) < 0)
			goto out;
	}
	if (archive_write_close(w.a) != ARCHIVE_OK) {
		archive_fail(&w, "cannot finish the tar stream", err);
		goto out;
	}
	if (layer_pipe_finish(w.pipe, &res.diff_id, &res.diff_size, &res.desc.digest,
			      &res.desc.size, err) < 0)
		goto out;
	res.desc.media_type = xstrdup(layer_media_type(opts->compression));
	res.n_entries = w.n_entries;
	*ret = res;
	r = 0;
out:
	archive_write_free(w.a);
	layer_pipe_free(w.pipe);
	kn_error_free(w.werr);
	ino_map_release(&w.inodes);
	kn_buf_release(&w.path);
	kn_buf_release(&w.rel);
	free(w.buf);
	return r;
}

void layer_result_release(struct layer_result *r)
{
	if (!r)
		return;
	store_desc_release(&r->desc);
	free(r->diff_id);
	r->diff_id = NULL;
}

static int out_blob(void *ctx, const void *data, size_t len, kn_error **err)
{
	return store_blob_writer_write(ctx, data, len, err);
}

static int write_to_store(struct store *s, const struct layer_source *src,
			  const struct layer_write_opts *opts, struct layer_result *ret,
			  kn_error **err)
{
	struct store_blob_writer *bw = NULL;
	struct layer_result res = { 0 };

	if (store_blob_writer_new(s, &bw, err) < 0)
		return -1;
	if (layer_write(src, opts, out_blob, bw, &res, err) < 0) {
		store_blob_writer_abort(bw);
		return -1;
	}
	if (store_blob_writer_commit(bw, res.desc.digest, NULL, NULL, err) < 0) {
		layer_result_release(&res);
		return -1;
	}
	*ret = res;
	return 0;
}

int layer_diff_overlay(struct store *s, const char *upperdir, char *const *lowerdirs,
		       const struct layer_write_opts *opts, struct layer_result *ret, kn_error **err)
{
	struct layer_source src = { .dir = upperdir, .lowerdirs = lowerdirs, .overlay = true,
				    .tar_fd = -1 };

	return write_to_store(s, &src, opts, ret, err);
}

int layer_from_dir(struct store *s, const char *dir, const struct layer_write_opts *opts,
		   struct layer_result *ret, kn_error **err)
{
	struct layer_source src = { .dir = dir, .tar_fd = -1 };

	return write_to_store(s, &src, opts, ret, err);
}

static int out_fd(void *ctx, const void *data, size_t len, kn_error **err)
{
	return kn_write_all(*(int *)ctx, data, len, err);
}

int layer_tar_dir(const char *dir, const struct layer_write_opts *opts, int fd, kn_error **err)
{
	struct layer_source src = { .dir = dir, .tar_fd = -1 };
	struct layer_write_opts o = opts ? *opts : (struct layer_write_opts)LAYER_WRITE_OPTS_INIT;
	struct layer_result res = { 0 };

	o.compression = LAYER_COMPRESSION_NONE;
	if (layer_write(&src, &o, out_fd, &fd, &res, err) < 0)
		return -1;
	layer_result_release(&res);
	return 0;
}

int layer_from_tar(struct store *s, int fd, const struct layer_write_opts *opts,
		   struct layer_result *ret, kn_error **err)
{
	struct layer_source src = { .tar_fd = fd };

	return write_to_store(s, &src, opts, ret, err);
}

int layer_write_opts_from_env(struct layer_write_opts *opts, kn_error **err)
{
	const char *v = getenv("SOURCE_DATE_EPOCH");
	char *end = NULL;
	long long t;

	if (!v || !*v)
		return 0;
	errno = 0;
	t = strtoll(v, &end, 10);
	if (errno || *end || t < 0)
		return kn_error_set(err, EINVAL, "invalid SOURCE_DATE_EPOCH '%s'", v);
	opts->clamp_mtime = true;
	opts->source_date_epoch = t;
	return 0;
}
