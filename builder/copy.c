/* kiln builder: COPY and ADD (and WORKDIR's mkdir). Sources are resolved in the parent (context)
 * or in the child (another stage's root), then a child process with its own mount namespace
 * mounts the stage's overlay (lowerdirs + a fresh upper), chroots into it and writes the files,
 * so destination paths follow the image's own symlinks and never reach the host. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <jansson.h>
#include <linux/openat2.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "builder/build-internal.h"
#include "registry/registry.h"

#define CP_MAX_ENTRIES (4u << 20)

void cp_list_release(struct cp_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].src);
		free(l->v[i].dst);
		free(l->v[i].data);
	}
	free(l->v);
	l->v = NULL;
	l->n = l->alloc = 0;
}

static struct cp_entry *cp_add(struct cp_list *l, enum cp_kind kind, const char *src, char *dst)
{
	struct cp_entry *e;

	KN_GROW(l->v, l->alloc, l->n + 1);
	e = &l->v[l->n++];
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->src = src ? xstrdup(src) : NULL;
	e->dst = dst;
	e->fd = -1;
	return e;
}

static int xopenat2(int dirfd, const char *path, int flags, unsigned long long resolve)
{
	struct open_how how = { 0 };

	how.flags = (unsigned long long)flags | O_CLOEXEC;
	how.resolve = resolve;
	return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

static unsigned long long cp_resolve_flags(const struct cp_opts *co)
{
	return co->ctx_strict ? RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS
			      : RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
}

/* Go's path.Clean of a source, made relative ("" -> "."). Returns NULL for `..` escapes when
 * strict, else clamps them at the root. */
static char *clean_rel(const char *p, bool strict)
{
	struct kn_strv parts = KN_STRV_INIT;
	struct kn_buf b = KN_BUF_INIT;
	const char *s = p, *e;
	bool escaped = false;

	while (*s) {
		size_t n;

		e = strchr(s, '/');
		n = e ? (size_t)(e - s) : strlen(s);
		if (n == 0 || (n == 1 && s[0] == '.')) {
			/* skip */
		} else if (n == 2 && s[0] == '.' && s[1] == '.') {
			if (parts.n) {
				free(parts.v[--parts.n]);
				parts.v[parts.n] = NULL;
			} else if (p[0] != '/') {
				escaped = true;
			}
		} else {
			kn_strv_push_owned(&parts, xstrndup(s, n));
		}
		if (!e)
			break;
		s = e + 1;
	}
	if (escaped && strict) {
		kn_strv_release(&parts);
		return NULL;
	}
	for (size_t i = 0; i < parts.n; i++)
		kn_buf_addf(&b, "%s%s", i ? "/" : "", parts.v[i]);
	if (!b.len)
		kn_buf_addch(&b, '.');
	kn_strv_release(&parts);
	return kn_buf_detach(&b);
}

/* readlinkat into a buffer that grows as needed (no fixed-size path buffer). NULL + errno. */
static char *read_link(int dirfd, const char *path)
{
	size_t size = 256;

	for (;;) {
		char *buf = xmalloc(size);
		ssize_t n = readlinkat(dirfd, path, buf, size);

		if (n < 0) {
			int saved = errno;

			free(buf);
			errno = saved;
			return NULL;
		}
		if ((size_t)n < size) {
			buf[n] = 0;
			return buf;
		}
		free(buf);
		if (size >= (1u << 20)) {
			errno = ENAMETOOLONG;
			return NULL;
		}
		size *= 2;
	}
}

static bool has_glob(const char *s)
{
	for (; *s; s++) {
		if (*s == '*' || *s == '?' || *s == '[')
			return true;
		if (*s == '\\' && s[1])
			s++;
	}
	return false;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names in directory fd (consumes nothing: dups fd). */
static int xopenat2(int dirfd, const char *path, int flags, unsigned long long resolve);

/*
 * Every path below is resolved inside the source root (RESOLVE_BENEATH for the context,
 * RESOLVE_IN_ROOT for another stage's root): a symlink component can never lead to the host.
 */
static int list_dir(int dirfd, const char *rel, unsigned long long resolve, struct kn_strv *out, kn_error **err)
{
	int fd = xopenat2(dirfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, resolve);
	DIR *d;
	struct dirent *de;

	if (fd < 0)
		return kn_error_errno(err, "cannot read directory '%s'", rel);
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return kn_error_errno(err, "cannot read directory '%s'", rel);
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		kn_strv_push(out, de->d_name);
	}
	closedir(d);
	if (out->n)
		qsort(out->v, out->n, sizeof(char *), cmp_str);
	return 0;
}

static char *join_rel(const char *a, const char *b)
{
	if (!strcmp(a, "."))
		return xstrdup(b);
	return xasprintf("%s/%s", a, b);
}

/* Whether rel exists (the entry itself, a final symlink not followed) inside the root. */
static bool exists_in(int root_fd, const char *rel, unsigned long long resolve)
{
	int fd = xopenat2(root_fd, rel, O_PATH | O_NOFOLLOW, resolve);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

static bool is_dir_in(int root_fd, const char *rel, unsigned long long resolve)
{
	_cleanup_close_ int fd = xopenat2(root_fd, rel, O_PATH | O_NOFOLLOW, resolve);
	struct stat st;

	return fd >= 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
}

/*
 * The path of the object open on fd relative to the root open on root_fd, with every symlink
 * resolved (from /proc/self/fd): what later string-based operations use, so they never follow a
 * symlink component again. NULL when fd is not below the root.
 */
static char *canon_rel(int root_fd, int fd)
{
	_cleanup_free_ char *rp = NULL, *fp = NULL, *a = xasprintf("/proc/self/fd/%d", root_fd);
	_cleanup_free_ char *b = xasprintf("/proc/self/fd/%d", fd);
	size_t n;

	rp = realpath(a, NULL);
	fp = realpath(b, NULL);
	if (!rp || !fp)
		return NULL;
	n = strlen(rp);
	if (!strcmp(rp, fp))
		return xstrdup(".");
	if (n == 1 && fp[0] == '/')
		return xstrdup(fp + 1);
	if (strncmp(rp, fp, n) || fp[n] != '/')
		return NULL;
	return xstrdup(fp + n + 1);
}

/* Expands a cleaned relative pattern component by component (filepath.Match per component). */
static int glob_expand(int root_fd, const char *pattern, unsigned long long resolve, struct kn_strv *out,
		       kn_error **err)
{
	struct kn_strv cur = KN_STRV_INIT;
	_cleanup_free_ char *pat = xstrdup(pattern);
	char *save = NULL, *comp;
	int ret = 0;

	kn_strv_push(&cur, ".");
	for (comp = strtok_r(pat, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
		struct kn_strv next = KN_STRV_INIT;

		for (size_t i = 0; i < cur.n; i++) {
			if (!has_glob(comp)) {
				_cleanup_free_ char *p = join_rel(cur.v[i], comp);

				if (exists_in(root_fd, p, resolve))
					kn_strv_push(&next, p);
				continue;
			}
			struct kn_strv names = KN_STRV_INIT;
			kn_error *e = NULL;

			if (list_dir(root_fd, cur.v[i], resolve, &names, &e) < 0) {
				kn_error_free(e); /* not a directory: no match below it */
				continue;
			}
			for (size_t j = 0; j < names.n; j++)
				if (!fnmatch(comp, names.v[j], 0))
					kn_strv_push_owned(&next, join_rel(cur.v[i], names.v[j]));
			kn_strv_release(&names);
		}
		kn_strv_release(&cur);
		cur = next;
		if (!cur.n)
			break;
	}
	for (size_t i = 0; i < cur.n; i++)
		kn_strv_push(out, cur.v[i]);
	kn_strv_release(&cur);
	(void)err;
	return ret;
}

static bool excluded(const struct df_ignore *ex, const char *rel)
{
	return ex && df_ignore_matches(ex, rel);
}

static char *dst_join(const char *dir, const char *rel)
{
	size_t n = strlen(dir);

	if (!strcmp(rel, "."))
		return n > 1 && dir[n - 1] == '/' ? xstrndup(dir, n - 1) : xstrdup(dir);
	if (n && dir[n - 1] == '/')
		return xasprintf("%s%s", dir, rel);
	return xasprintf("%s/%s", dir, rel);
}

struct walk {
	int root_fd;
	const struct cp_opts *co;
	const struct df_ignore *ex;
	struct cp_list *out;
};

static enum cp_kind kind_of(mode_t m)
{
	if (S_ISDIR(m))
		return CP_DIR;
	if (S_ISLNK(m))
		return CP_SYMLINK;
	if (S_ISREG(m))
		return CP_FILE;
	return CP_SPECIAL;
}

/* Walks directory rel (relative to the source root); wrel is relative to the copied dir. */
static int walk_dir(struct walk *w, const char *rel, const char *wrel, const char *dst, kn_error **err)
{
	struct kn_strv names = KN_STRV_INIT;
	int ret = 0;

	if (list_dir(w->root_fd, rel, cp_resolve_flags(w->co), &names, err) < 0)
		return -1;
	for (size_t i = 0; i < names.n && ret == 0; i++) {
		_cleanup_free_ char *r = join_rel(rel, names.v[i]);
		_cleanup_free_ char *wr = join_rel(wrel, names.v[i]);
		bool ign = w->co->ctx_strict && df_ignore_matches(w->co->ignore, r);
		struct stat st;
		struct cp_entry *e;

		if (excluded(w->ex, wr))
			continue;
		{
			int sfd = xopenat2(w->root_fd, r, O_PATH | O_NOFOLLOW, cp_resolve_flags(w->co));

			if (sfd < 0 || fstat(sfd, &st) < 0) {
				ret = kn_error_errno(err, "cannot stat '%s'", r);
				if (sfd >= 0)
					close(sfd);
				break;
			}
			close(sfd);
		}
		if (ign && (!S_ISDIR(st.st_mode) || df_ignore_dir_skippable(w->co->ignore, r)))
			continue;
		if (w->out->n >= CP_MAX_ENTRIES) {
			ret = kn_error_set(err, EFBIG, "too many files to copy (more than %u)", CP_MAX_ENTRIES);
			break;
		}
		e = cp_add(w->out, kind_of(st.st_mode), r, dst_join(dst, names.v[i]));
		e->st = st;
		if (S_ISDIR(st.st_mode)) {
			size_t mark = w->out->n;
			_cleanup_free_ char *d = xstrdup(e->dst);

			ret = walk_dir(w, r, wr, d, err);
			/* An ignored directory walked only for its exceptions stays only if needed. */
			if (ret == 0 && ign && w->out->n == mark) {
				w->out->n--;
				free(w->out->v[w->out->n].src);
				free(w->out->v[w->out->n].dst);
			}
		}
	}
	kn_strv_release(&names);
	return ret;
}

/* True when the regular file on fd is a tar archive (any compression libarchive knows). */
static bool is_archive(int fd)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	int dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	bool ok = false;

	if (dupfd < 0) {
		archive_read_free(a);
		return false;
	}
	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	if (lseek(dupfd, 0, SEEK_SET) == 0 && archive_read_open_fd(a, dupfd, 16384) == ARCHIVE_OK)
		ok = archive_read_next_header(a, &e) == ARCHIVE_OK;
	archive_read_free(a);
	close(dupfd);
	return ok;
}

int cp_resolve(int root_fd, char *const *sources, size_t n_sources, const char *dest,
	       const struct cp_opts *co, struct cp_list *out, kn_error **err)
{
	struct df_ignore *ex = NULL;
	struct kn_strv matches = KN_STRV_INIT;
	char *canon = NULL;
	size_t dlen = strlen(dest);
	bool dest_dir = dlen && dest[dlen - 1] == '/';
	int ret = 0;

	if (co->excludes && co->excludes[0] &&
	    df_ignore_new(co->excludes, kn_strv_len(co->excludes), &ex, err) < 0)
		return -1;
	for (size_t i = 0; i < n_sources; i++) {
		_cleanup_free_ char *c = clean_rel(sources[i], co->ctx_strict);
		size_t before = matches.n;

		if (!c) {
			ret = kn_error_set(err, 0, "forbidden path outside the build context: %s", sources[i]);
			goto out;
		}
		if (has_glob(c))
			glob_expand(root_fd, c, cp_resolve_flags(co), &matches, err);
		else if (!strcmp(c, ".") || exists_in(root_fd, c, cp_resolve_flags(co)))
			kn_strv_push(&matches, c);
		/* .dockerignore'd and --exclude'd sources do not exist for the build, except an
		 * excluded directory holding files re-included by a `!` pattern: it holds those. */
		for (size_t j = before; j < matches.n;) {
			if ((co->ctx_strict && df_ignore_matches(co->ignore, matches.v[j]) &&
			     (df_ignore_dir_skippable(co->ignore, matches.v[j]) ||
			      !is_dir_in(root_fd, matches.v[j], cp_resolve_flags(co)))) ||
			    excluded(ex, matches.v[j])) {
				free(matches.v[j]);
				memmove(&matches.v[j], &matches.v[j + 1], (matches.n - j) * sizeof(char *));
				matches.n--;
			} else {
				j++;
			}
		}
		if (matches.n == before && has_glob(c))
			continue; /* BuildKit: a wildcard that matches nothing copies nothing */
		if (matches.n == before) {
			if (co->ctx_strict)
				ret = kn_error_set(err, 0, "\"/%s\": not found in the build context (or excluded by .dockerignore)",
						   strcmp(c, ".") ? c : "");
			else
				ret = kn_error_set(err, 0, "\"/%s\": not found", strcmp(c, ".") ? c : "");
			goto out;
		}
	}
	if (matches.n > 1)
		dest_dir = true;
	for (size_t i = 0; i < matches.n; i++) {
		const char *m = matches.v[i];
		_cleanup_close_ int fd = xopenat2(root_fd, m, O_PATH, cp_resolve_flags(co));
		struct stat st;
		struct cp_entry *e;

		if (fd < 0) {
			if (errno == EXDEV || errno == ELOOP)
				ret = kn_error_set(err, 0, "'%s' points outside the %s (symlink)", m,
						   co->ctx_strict ? "build context" : "source root");
			else
				ret = kn_error_errno(err, "cannot open '%s'", m);
			goto out;
		}
		if (fstat(fd, &st) < 0) {
			ret = kn_error_errno(err, "cannot stat '%s'", m);
			goto out;
		}
		free(canon);
		canon = canon_rel(root_fd, fd);
		if (!canon) {
			ret = kn_error_set(err, 0, "'%s' points outside the %s", m,
					   co->ctx_strict ? "build context" : "source root");
			goto out;
		}
		if (S_ISDIR(st.st_mode)) {
			struct walk w = { root_fd, co, ex, out };
			char *d = co->parents ? dst_join(dest, m) : dst_join(dest, ".");

			size_t mark = out->n;

			e = cp_add(out, CP_MKDIR, canon, d);
			e->st = st;
			ret = walk_dir(&w, canon, ".", e->dst, err);
			if (ret < 0)
				goto out;
			if (out->n == mark + 1 && co->ctx_strict && df_ignore_matches(co->ignore, m)) {
				ret = kn_error_set(err, 0, "\"/%s\": not found in the build context (or excluded by .dockerignore)", m);
				goto out;
			}
			continue;
		}
		if (co->add && S_ISREG(st.st_mode)) {
			_cleanup_close_ int rfd = xopenat2(root_fd, m, O_RDONLY, cp_resolve_flags(co));

			if (rfd >= 0 && is_archive(rfd)) {
				e = cp_add(out, CP_ARCHIVE, canon, dst_join(dest, "."));
				e->st = st;
				continue;
			}
		}
		{
			const char *base = strrchr(m, '/') ? strrchr(m, '/') + 1 : m;
			char *d;

			if (dest_dir)
				d = dst_join(dest, co->parents ? m : base);
			else
				d = xstrdup(dest);
			e = cp_add(out, kind_of(st.st_mode), canon, d);
			e->st = st;
			e->dst_maybe_dir = !dest_dir;
		}
	}
out:
	free(canon);
	kn_strv_release(&matches);
	df_ignore_free(ex);
	return ret;
}

static int hash_file(int root_fd, const char *rel, unsigned long long resolve, struct store_hash *h,
		     kn_error **err)
{
	_cleanup_close_ int fd = xopenat2(root_fd, rel, O_RDONLY, resolve);
	char buf[65536];
	ssize_t n;

	if (fd < 0)
		return kn_error_errno(err, "cannot open '%s'", rel);
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return kn_error_errno(err, "cannot read '%s'", rel);
		}
		store_hash_update(h, buf, (size_t)n);
	}
	return 0;
}

struct bld_statcache {
	struct store *store;
	char *key;
	json_t *map; /* rel -> [ino, size, mtime_ns, ctime_ns, digest] */
	bool dirty;
};

struct bld_statcache *statcache_load(struct store *s, const char *ctx_dir)
{
	struct bld_statcache *c = xcalloc(1, sizeof(*c));
	_cleanup_free_ char *d = NULL, *text = NULL, *seed = xasprintf("kiln-statcache-v1:%s", ctx_dir);
	kn_error *e = NULL;

	d = store_digest_buf(seed, strlen(seed));
	c->store = s;
	c->key = xstrdup(store_digest_hex(d));
	if (store_cache_get(s, c->key, &text, &e) == 0)
		c->map = json_loads(text, 0, NULL);
	kn_error_free(e);
	if (!json_is_object(c->map)) {
		json_decref(c->map);
		c->map = json_object();
	}
	return c;
}

int statcache_save(struct bld_statcache *c, kn_error **err)
{
	_cleanup_free_ char *text = NULL;

	if (!c || !c->dirty)
		return 0;
	text = json_dumps(c->map, JSON_COMPACT);
	return store_cache_put(c->store, c->key, text, err) < 0 ? -1 : 0;
}

void statcache_free(struct bld_statcache *c)
{
	if (!c)
		return;
	json_decref(c->map);
	free(c->key);
	free(c);
}

static long long ts_ns(const struct timespec *t)
{
	return (long long)t->tv_sec * 1000000000LL + t->tv_nsec;
}

/* The content digest of a context file, through the stat cache when it is safe. */
static char *file_digest(int root_fd, const struct cp_entry *e, struct bld_statcache *sc, kn_error **err)
{
	json_t *ent = sc ? json_object_get(sc->map, e->src) : NULL;
	struct store_hash *fh;
	struct timespec now;
	char *d;

	if (json_is_array(ent) && json_array_size(ent) == 5 &&
	    json_integer_value(json_array_get(ent, 0)) == (json_int_t)e->st.st_ino &&
	    json_integer_value(json_array_get(ent, 1)) == (json_int_t)e->st.st_size &&
	    json_integer_value(json_array_get(ent, 2)) == ts_ns(&e->st.st_mtim) &&
	    json_integer_value(json_array_get(ent, 3)) == ts_ns(&e->st.st_ctim) &&
	    json_is_string(json_array_get(ent, 4)))
		return xstrdup(json_string_value(json_array_get(ent, 4)));
	fh = store_hash_new("sha256", NULL);
	if (hash_file(root_fd, e->src, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS, fh, err) < 0) {
		store_hash_free(fh);
		return NULL;
	}
	d = store_hash_final(fh);
	store_hash_free(fh);
	clock_gettime(CLOCK_REALTIME, &now);
	if (sc && ts_ns(&e->st.st_ctim) < ts_ns(&now) - 2000000000LL) {
		json_t *v = json_array();

		json_array_append_new(v, json_integer((json_int_t)e->st.st_ino));
		json_array_append_new(v, json_integer((json_int_t)e->st.st_size));
		json_array_append_new(v, json_integer(ts_ns(&e->st.st_mtim)));
		json_array_append_new(v, json_integer(ts_ns(&e->st.st_ctim)));
		json_array_append_new(v, json_string(d));
		json_object_set_new(sc->map, e->src, v);
		sc->dirty = true;
	}
	return d;
}

int cp_digest(int root_fd, const struct cp_list *l, struct bld_statcache *sc, struct store_hash *h,
	      kn_error **err)
{
	for (size_t i = 0; i < l->n; i++) {
		const struct cp_entry *e = &l->v[i];
		struct kn_buf b = KN_BUF_INIT;

		kn_buf_addf(&b, "%d\t%s\t%s\t%d\t%o\t%u\t%u\t%lld\t%lld\t%llu\n", (int)e->kind,
			    e->src ? e->src : "", e->dst, (int)e->dst_maybe_dir, (unsigned)e->st.st_mode,
			    (unsigned)e->st.st_uid, (unsigned)e->st.st_gid, (long long)e->st.st_size,
			    (long long)e->st.st_mtim.tv_sec, (unsigned long long)e->st.st_rdev);
		store_hash_update(h, b.buf, b.len + 1);
		kn_buf_release(&b);
		switch (e->kind) {
		case CP_FILE:
		case CP_ARCHIVE: {
			char *d = file_digest(root_fd, e, sc, err);

			if (!d)
				return -1;
			store_hash_update(h, d, strlen(d) + 1);
			free(d);
			break;
		}
		case CP_SYMLINK: {
			_cleanup_free_ char *target = read_link(root_fd, e->src);

			if (!target)
				return kn_error_errno(err, "cannot read link '%s'", e->src);
			store_hash_update(h, target, strlen(target));
			break;
		}
		case CP_DATA:
			store_hash_update(h, e->data, e->len);
			break;
		case CP_FD:
			/* data holds the content digest computed at download time */
			store_hash_update(h, e->data, strlen(e->data));
			break;
		case CP_DIR:
		case CP_SPECIAL:
		case CP_MKDIR:
			break;
		}
	}
	return 0;
}

/* ---- the child ------------------------------------------------------------------------------- */

/* Dangling symlinks mkdir_parents followed in this copy child (bounds symlink loops). */
static int links_followed;

static int mkdir_parents(const char *path, const struct cp_opts *co, bool self, kn_error **err)
{
	_cleanup_free_ char *p = xstrdup(path);
	size_t n = strlen(p);

	for (size_t i = 1; i <= n; i++) {
		struct stat st;

		if (i < n && p[i] != '/')
			continue;
		if (i == n && !self)
			break;
		p[i] = 0;
		if (stat(p, &st) < 0) {
			_cleanup_free_ char *target = NULL;

			if (errno != ENOENT)
				return kn_error_errno(err, "cannot stat '%s'", p);
			/* a dangling symlink on the way: its target is made (BuildKit follows it) */
			target = read_link(AT_FDCWD, p);
			if (target) {
				_cleanup_free_ char *abs = NULL;
				char *slash = strrchr(p, '/');

				if (target[0] == '/')
					abs = xstrdup(target);
				else if (slash && slash != p)
					abs = xasprintf("%.*s/%s", (int)(slash - p), p, target);
				else
					abs = xasprintf("/%s", target);
				if (++links_followed > 40)
					return kn_error_set(err, ELOOP, "cannot create '%s': too many symlinks", path);
				if (mkdir_parents(abs, co, true, err) < 0)
					return -1;
				if (i < n)
					p[i] = '/';
				continue;
			}
			if (mkdir(p, 0755) < 0)
				return kn_error_errno(err, "cannot create directory '%s'", p);
			if (co->have_chown && lchown(p, co->uid, co->gid) < 0)
				return kn_error_errno(err, "cannot chown '%s'", p);
		} else if (!S_ISDIR(st.st_mode)) {
			return kn_error_set(err, ENOTDIR, "cannot create '%s': '%s' is not a directory", path, p);
		}
		if (i < n)
			p[i] = '/';
	}
	return 0;
}

static mode_t final_mode(const struct cp_opts *co, mode_t m)
{
	if (co->have_chmod)
		return (mode_t)df_chmod_apply(&co->chmod, m & 07777, S_ISDIR(m));
	return m & 07777;
}

static int remove_existing(const char *dst, kn_error **err)
{
	struct stat st;

	if (lstat(dst, &st) < 0)
		return errno == ENOENT ? 0 : kn_error_errno(err, "cannot stat '%s'", dst);
	if (S_ISDIR(st.st_mode)) {
		if (rmdir(dst) == 0)
			return 0;
		return kn_error_set(err, EISDIR, "cannot copy to '%s': it is a non-empty directory", dst);
	}
	if (unlink(dst) < 0)
		return kn_error_errno(err, "cannot replace '%s'", dst);
	return 0;
}

int copy_fd_data(int in, int out, const char *what, kn_error **err)
{
	char buf[131072];

	for (;;) {
		ssize_t n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);

		if (n > 0)
			continue;
		if (n == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)
			break;
		return kn_error_errno(err, "cannot copy '%s'", what);
	}
	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return kn_error_errno(err, "cannot read '%s'", what);
		if (n == 0)
			return 0;
		if (kn_write_all(out, buf, (size_t)n, err) < 0)
			return -1;
	}
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');

	return s ? s + 1 : p;
}

static int write_file(int in, const char *dst, mode_t mode, uid_t uid, gid_t gid,
		      const struct timespec *mtime, kn_error **err)
{
	_cleanup_close_ int out = -1;
	struct timespec ts[2];

	if (remove_existing(dst, err) < 0)
		return -1;
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0)
		return kn_error_errno(err, "cannot create '%s'", dst);
	if (in >= 0 && copy_fd_data(in, out, dst, err) < 0)
		return -1;
	if (fchown(out, uid, gid) < 0 || fchmod(out, mode) < 0)
		return kn_error_errno(err, "cannot set the owner and mode of '%s'", dst);
	if (mtime) {
		ts[0] = *mtime;
		ts[1] = *mtime;
		if (futimens(out, ts) < 0)
			return kn_error_errno(err, "cannot set the time of '%s'", dst);
	}
	if (close(steal_fd(&out)) < 0)
		return kn_error_errno(err, "cannot write '%s'", dst);
	return 0;
}

static bool has_dotdot_or_abs(const char *path)
{
	const char *p = path;

	if (*path == '/')
		return true;
	while ((p = strstr(p, ".."))) {
		if ((p == path || p[-1] == '/') && (p[2] == 0 || p[2] == '/'))
			return true;
		p += 2;
	}
	return false;
}

/* Creates the missing parents of archive member path (relative to the cwd) 0755, root-owned. */
static int archive_parents(const char *path, kn_error **err)
{
	_cleanup_free_ char *p = xstrdup(path);
	char *slash = p;

	while ((slash = strchr(slash, '/'))) {
		struct stat st;

		*slash = 0;
		if (*p && strcmp(p, ".") && stat(p, &st) < 0) {
			if (errno != ENOENT || mkdir(p, 0755) < 0 || lchown(p, 0, 0) < 0)
				return kn_error_errno(err, "cannot create directory '%s'", p);
		}
		*slash++ = '/';
		while (*slash == '/')
			slash++;
	}
	return 0;
}

/* Removes what is at path unless it and the member are both directories (a symlink listed as a
 * directory in the archive is replaced, as docker's untar does). */
static int archive_replace(const char *path, bool is_dir, kn_error **err)
{
	_cleanup_free_ char *p = xstrdup(path);
	size_t n = strlen(p);
	struct stat st;

	while (n > 1 && p[n - 1] == '/')
		p[--n] = 0; /* "lib/" would follow a symlink named lib */
	if (!strcmp(p, ".") || lstat(p, &st) < 0 || (is_dir && S_ISDIR(st.st_mode)))
		return 0;
	return kn_rm_rf(p, err);
}

static int extract_archive(int fd, const char *dst, const struct cp_opts *co, kn_error **err)
{
	struct archive *a = archive_read_new(), *w = archive_write_disk_new();
	struct archive_entry *e;
	int r, ret = 0;

	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	/* The child is chrooted into the image: symlinks on the way are followed and stay inside it. */
	archive_write_disk_set_options(w, ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_OWNER |
						  ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
						  ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS);
	if (chdir(dst) < 0) {
		ret = kn_error_errno(err, "cannot enter '%s'", dst);
		goto out;
	}
	if (archive_read_open_fd(a, fd, 65536) != ARCHIVE_OK) {
		ret = kn_error_set(err, EINVAL, "cannot read archive: %s", archive_error_string(a));
		goto out;
	}
	while ((r = archive_read_next_header(a, &e)) != ARCHIVE_EOF) {
		const void *buf;
		size_t len;
		la_int64_t off;

		if (r < ARCHIVE_WARN) {
			ret = kn_error_set(err, EINVAL, "cannot read archive: %s", archive_error_string(a));
			goto out;
		}
		if (!*archive_entry_pathname(e) && archive_entry_filetype(e) != AE_IFDIR)
			continue; /* a nameless member names nothing to write (docker skips it too) */
		if (co->have_chown) {
			archive_entry_set_uid(e, co->uid);
			archive_entry_set_gid(e, co->gid);
		}
		/* As docker's untar: parents the archive implies are 0755 root, and a member replaces
		 * whatever is in its place unless both are directories (names with `..` or a leading
		 * '/' are left for libarchive to refuse). */
		if (!has_dotdot_or_abs(archive_entry_pathname(e)) &&
		    (archive_parents(archive_entry_pathname(e), err) < 0 ||
		     archive_replace(archive_entry_pathname(e), archive_entry_filetype(e) == AE_IFDIR, err) < 0)) {
			ret = -1;
			goto out;
		}
		if (archive_write_header(w, e) < ARCHIVE_WARN) {
			ret = kn_error_set(err, EPERM, "cannot extract '%s': %s", archive_entry_pathname(e),
					   archive_error_string(w));
			goto out;
		}
		while ((r = archive_read_data_block(a, &buf, &len, &off)) == ARCHIVE_OK) {
			if (archive_write_data_block(w, buf, len, off) < ARCHIVE_WARN) {
				ret = kn_error_set(err, EIO, "cannot extract '%s': %s", archive_entry_pathname(e),
						   archive_error_string(w));
				goto out;
			}
		}
		if (r != ARCHIVE_EOF) {
			ret = kn_error_set(err, EINVAL, "cannot read archive: %s", archive_error_string(a));
			goto out;
		}
		if (archive_write_finish_entry(w) < ARCHIVE_WARN) {
			ret = kn_error_set(err, EIO, "cannot extract: %s", archive_error_string(w));
			goto out;
		}
	}
	if (archive_write_close(w) != ARCHIVE_OK)
		ret = kn_error_set(err, EIO, "cannot extract: %s", archive_error_string(w));
out:
	if (chdir("/") < 0 && ret == 0)
		ret = kn_error_errno(err, "chdir");
	archive_read_free(a);
	archive_write_free(w);
	return ret;
}

/* Files copied so far that have other names (st_nlink > 1): the copies keep the links. */
struct cp_links {
	struct cp_link {
		dev_t dev;
		ino_t ino;
		char *dst;
	} *v;
	size_t n, alloc;
};

static const char *cp_links_find(const struct cp_links *l, const struct stat *st)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].dev == st->st_dev && l->v[i].ino == st->st_ino)
			return l->v[i].dst;
	return NULL;
}

static void cp_links_release(struct cp_links *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].dst);
	free(l->v);
}

/* Extracts the archive with dst as the root, as docker's untar scopes the archive's own symlinks
 * to the destination directory (in a child: the chroot cannot be undone). */
static int extract_in_scope(int fd, const char *dst, const struct cp_opts *co, kn_error **err)
{
	struct kn_buf msg = KN_BUF_INIT;
	kn_error *e = NULL;
	int pfd[2], status = 0, r;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return kn_error_errno(err, "pipe");
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return kn_error_errno(err, "fork");
	}
	if (pid == 0) {
		kn_error *ce = NULL;

		close(pfd[0]);
		if (chdir(dst) < 0 || chroot(".") < 0)
			kn_error_errno(&ce, "cannot enter '%s'", dst);
		else if (extract_archive(fd, "/", co, &ce) == 0)
			_exit(0);
		{
			char *m = kn_error_format(ce);

			(void)kn_write_all(pfd[1], m, strlen(m), NULL);
		}
		_exit(1);
	}
	close(pfd[1]);
	(void)kn_read_fd(pfd[0], 1 << 16, &msg, &e);
	kn_error_free(e);
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	r = WIFEXITED(status) && WEXITSTATUS(status) == 0
		    ? 0
		    : kn_error_set(err, 0, "%s", msg.len ? msg.buf : "the archive extraction failed");
	kn_buf_release(&msg);
	return r;
}

static int cp_entry_write(int src_fd, const struct cp_opts *co, struct cp_entry *e, struct cp_links *links,
			  kn_error **err)
{
	/* Context files become root's; files of another stage or image keep their owners. */
	bool keep = !co->have_chown && !co->ctx_strict && e->kind != CP_DATA && e->kind != CP_FD;
	uid_t uid = co->have_chown ? co->uid : keep ? e->st.st_uid : 0;
	gid_t gid = co->have_chown ? co->gid : keep ? e->st.st_gid : 0;
	unsigned long long rf = cp_resolve_flags(co);
	_cleanup_free_ char *dst = xstrdup(e->dst);
	struct stat dst_st;

	/* A destination that is a symlink is followed (the child is chrooted in the image), as
	 * BuildKit resolves the destination path in the image root. */
	if (e->dst_maybe_dir && !lstat(dst, &dst_st) && S_ISLNK(dst_st.st_mode)) {
		char *real = realpath(dst, NULL);

		if (real) {
			free(dst);
			dst = real;
		}
	}
	if (e->dst_maybe_dir && !stat(dst, &dst_st) && S_ISDIR(dst_st.st_mode)) {
		char *d = dst_join(dst, e->kind == CP_DATA || e->kind == CP_FD ? base_name(e->src)
										 : base_name(e->src));

		free(dst);
		dst = d;
	}
	if (e->kind != CP_MKDIR && mkdir_parents(dst, co, false, err) < 0)
		return -1;
	switch (e->kind) {
	case CP_MKDIR:
		return mkdir_parents(dst, co, true, err);
	case CP_DIR: {
		struct stat st;

		/* BuildKit refuses to put a directory where a file or a symlink is */
		if (lstat(dst, &st) == 0 && !S_ISDIR(st.st_mode))
			return kn_error_set(err, ENOTDIR, "cannot copy to non-directory: %s", dst);
		if (mkdir(dst, 0700) < 0 && errno != EEXIST)
			return kn_error_errno(err, "cannot create directory '%s'", dst);
		if (lchown(dst, uid, gid) < 0 || chmod(dst, final_mode(co, e->st.st_mode)) < 0)
			return kn_error_errno(err, "cannot set the owner and mode of '%s'", dst);
		return 0;
	}
	case CP_FILE: {
		_cleanup_close_ int in = -1;
		const char *first = e->st.st_nlink > 1 ? cp_links_find(links, &e->st) : NULL;

		if (first) {
			if (remove_existing(dst, err) < 0)
				return -1;
			if (link(first, dst) < 0)
				return kn_error_errno(err, "cannot link '%s' to '%s'", dst, first);
			return 0;
		}
		in = xopenat2(src_fd, e->src, O_RDONLY, rf);
		if (in < 0)
			return kn_error_errno(err, "cannot open source '%s'", e->src);
		if (write_file(in, dst, final_mode(co, e->st.st_mode), uid, gid, &e->st.st_mtim, err) < 0)
			return -1;
		if (e->st.st_nlink > 1) {
			KN_GROW(links->v, links->alloc, links->n + 1);
			links->v[links->n++] = (struct cp_link){ e->st.st_dev, e->st.st_ino, xstrdup(dst) };
		}
		return 0;
	}
	case CP_FD: {
		struct timespec ts = { .tv_sec = e->mtime };

		if (lseek(e->fd, 0, SEEK_SET) < 0)
			return kn_error_errno(err, "cannot rewind '%s'", e->src);
		return write_file(e->fd, dst, co->have_chmod ? final_mode(co, S_IFREG | 0600) : 0600, uid, gid,
				  e->mtime ? &ts : NULL, err);
	}
	case CP_DATA: {
		_cleanup_close_ int out = -1;

		if (remove_existing(dst, err) < 0)
			return -1;
		out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (out < 0)
			return kn_error_errno(err, "cannot create '%s'", dst);
		if (kn_write_all(out, e->data, e->len, err) < 0)
			return -1;
		if (fchown(out, uid, gid) < 0 || fchmod(out, co->have_chmod ? final_mode(co, S_IFREG | 0644) : 0644) < 0)
			return kn_error_errno(err, "cannot set the owner and mode of '%s'", dst);
		if (close(steal_fd(&out)) < 0)
			return kn_error_errno(err, "cannot write '%s'", dst);
		return 0;
	}
	case CP_SYMLINK: {
		_cleanup_free_ char *target = read_link(src_fd, e->src);
		struct timespec ts[2] = { e->st.st_mtim, e->st.st_mtim };

		if (!target)
			return kn_error_errno(err, "cannot read link '%s'", e->src);
		if (remove_existing(dst, err) < 0)
			return -1;
		if (symlink(target, dst) < 0)
			return kn_error_errno(err, "cannot create symlink '%s'", dst);
		if (lchown(dst, uid, gid) < 0)
			return kn_error_errno(err, "cannot chown '%s'", dst);
		(void)utimensat(AT_FDCWD, dst, ts, AT_SYMLINK_NOFOLLOW);
		return 0;
	}
	case CP_SPECIAL:
		if (remove_existing(dst, err) < 0)
			return -1;
		if (mknod(dst, (e->st.st_mode & S_IFMT) | 0600, e->st.st_rdev) < 0)
			return kn_error_errno(err, "cannot create '%s'", dst);
		if (lchown(dst, uid, gid) < 0 || chmod(dst, final_mode(co, e->st.st_mode)) < 0)
			return kn_error_errno(err, "cannot set the owner and mode of '%s'", dst);
		return 0;
	case CP_ARCHIVE: {
		_cleanup_close_ int in = xopenat2(src_fd, e->src, O_RDONLY, rf);

		if (in < 0)
			return kn_error_errno(err, "cannot open source '%s'", e->src);
		if (mkdir_parents(dst, co, true, err) < 0)
			return -1;
		return extract_in_scope(in, dst, co, err);
	}
	}
	return 0;
}

/* Directory mtimes are set last: writing their children changed them. */
static void cp_fix_dir_times(const struct cp_list *l)
{
	for (size_t i = l->n; i-- > 0;) {
		const struct cp_entry *e = &l->v[i];
		struct timespec ts[2];

		if (e->kind != CP_DIR)
			continue;
		ts[0] = e->st.st_mtim;
		ts[1] = e->st.st_mtim;
		(void)utimensat(AT_FDCWD, e->dst, ts, AT_SYMLINK_NOFOLLOW);
	}
}

static int cp_child(const struct cp_job *job, kn_error **err)
{
	const char *root;
	_cleanup_close_ int root_fd = -1, src_fd = -1;
	struct cp_list local = { 0 };
	struct cp_list *list = job->list;
	struct cp_links links = { 0 };

	if (unshare(CLONE_NEWNS) < 0)
		return kn_error_errno(err, "cannot create a mount namespace");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return kn_error_errno(err, "cannot make mounts private");
	if (!job->co->link && job->lowerdirs && job->lowerdirs[0]) {
		if (layer_overlay_mount(job->mnt, job->lowerdirs, job->upper, job->work, err) < 0)
			return -1;
		root = job->mnt;
	} else {
		root = job->upper;
	}
	if (job->src_fd >= 0) {
		src_fd = fcntl(job->src_fd, F_DUPFD_CLOEXEC, 0);
	} else if (job->src_lowerdirs && job->src_lowerdirs[0] && job->src_lowerdirs[1]) {
		if (layer_overlay_mount(job->src_mnt, job->src_lowerdirs, NULL, NULL, err) < 0)
			return -1;
		src_fd = open(job->src_mnt, O_PATH | O_DIRECTORY | O_CLOEXEC);
	} else if (job->src_lowerdirs && job->src_lowerdirs[0]) {
		src_fd = open(job->src_lowerdirs[0], O_PATH | O_DIRECTORY | O_CLOEXEC);
	} else {
		src_fd = open(job->src_rootfs ? job->src_rootfs : job->src_mnt, O_PATH | O_DIRECTORY | O_CLOEXEC);
	}
	if (src_fd < 0)
		return kn_error_errno(err, "cannot open the copy source");
	/* sources in another stage or image are resolved here; heredocs and URLs come listed */
	if (job->n_sources &&
	    cp_resolve(src_fd, job->sources, job->n_sources, job->dest, job->co, &local, err) < 0)
		return -1;
	root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root_fd < 0 || fchdir(root_fd) < 0 || chroot(".") < 0 || chdir("/") < 0)
		return kn_error_errno(err, "cannot enter the image root");
	umask(0);
	for (size_t i = 0; i < local.n + (list ? list->n : 0); i++) {
		struct cp_entry *e = i < local.n ? &local.v[i] : &list->v[i - local.n];

		if (cp_entry_write(src_fd, job->co, e, &links, err) < 0) {
			cp_links_release(&links);
			return -1;
		}
	}
	cp_fix_dir_times(&local);
	if (list)
		cp_fix_dir_times(list);
	cp_links_release(&links);
	cp_list_release(&local);
	return 0;
}

int cp_run(const struct cp_job *job, kn_error **err)
{
	int pfd[2];
	pid_t pid;
	struct kn_buf msg = KN_BUF_INIT;
	kn_error *e = NULL;
	int status;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return kn_error_errno(err, "pipe");
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return kn_error_errno(err, "fork");
	}
	if (pid == 0) {
		kn_error *ce = NULL;

		close(pfd[0]);
		if (cp_child(job, &ce) < 0) {
			char *m = kn_error_format(ce);

			(void)kn_write_all(pfd[1], m, strlen(m), NULL);
			_exit(1);
		}
		_exit(0);
	}
	close(pfd[1]);
	(void)kn_read_fd(pfd[0], 1 << 20, &msg, &e);
	kn_error_free(e);
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			kn_buf_release(&msg);
			return kn_error_errno(err, "waitpid");
		}
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		int r = kn_error_set(err, 0, "%s", msg.len ? msg.buf : "the copy process failed");

		kn_buf_release(&msg);
		return r;
	}
	kn_buf_release(&msg);
	return 0;
}

/* ---- ADD <url> ------------------------------------------------------------------------------- */

int cp_download(struct store *s, const char *url, const char *checksum, int *ret_fd, char **ret_name,
		int64_t *ret_mtime, char **ret_digest, kn_error **err)
{
	const char *tmp = store_tmpdir(s, err);
	_cleanup_free_ char *path = NULL, *digest = NULL, *last_modified = NULL;
	_cleanup_close_ int fd = -1;
	struct reg_opts ro;
	time_t filetime = -1;
	const char *p, *q;

	if (!tmp)
		return -1;
	path = xasprintf("%s/download-XXXXXX", tmp);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return kn_error_errno(err, "cannot create a download file");
	unlink(path);
	/* the registry transport: timeouts, redirect limit, TLS and insecure rules, proxies,
	 * retries and resumes; hashed while it streams, held to CP_DOWNLOAD_MAX */
	reg_opts_init(&ro);
	if (reg_fetch_url(url, &ro, fd, CP_DOWNLOAD_MAX, &digest, &last_modified, err) < 0)
		return kn_error_wrap(err, "failed to download '%s'", url);
	if (checksum && strcmp(checksum, digest))
		return kn_error_set(err, EBADMSG, "digest mismatch for '%s': expected %s, got %s", url,
				    checksum, digest);
	if (last_modified) {
		struct tm tm = { 0 };
		const char *end = strptime(last_modified, "%a, %d %b %Y %H:%M:%S GMT", &tm);

		if (end && !*end)
			filetime = timegm(&tm);
	}
	/* The file name: the last path segment of the URL (query and fragment dropped). */
	p = strstr(url, "://");
	p = p ? p + 3 : url;
	q = p + strcspn(p, "?#");
	{
		_cleanup_free_ char *pathpart = xstrndup(p, (size_t)(q - p));
		char *slash = strrchr(pathpart, '/');

		*ret_name = xstrdup(slash && slash[1] ? slash + 1 : "index.html");
	}
	*ret_mtime = filetime > 0 ? (int64_t)filetime : 0;
	*ret_fd = steal_fd(&fd);
	*ret_digest = steal_ptr(&digest);
	return 0;
}
