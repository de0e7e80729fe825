/* kiln builder: USER resolution through an image's /etc/passwd and /etc/group, as runc does.
 *
 * sandbox_user_resolve_raw() is the core and never allocates: the sandbox calls it inside the
 * new root (after pivot_root, so it sees exactly the merged view), where the child of a
 * possibly multi-threaded parent must not touch malloc. sandbox_user_lookup() reads the files
 * through the layers, for callers outside a sandbox (COPY --chown). */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "builder/sandbox-internal.h"

/* A slice of a text buffer. */
struct span {
	const char *p;
	size_t n;
};

static bool span_eq(struct span a, struct span b)
{
	return a.n == b.n && memcmp(a.p, b.p, a.n) == 0;
}

/* Parses a decimal id (no sign, no spaces) that fits in 32 bits minus the -1 sentinel. */
static bool span_to_id(struct span s, uint32_t *ret)
{
	uint64_t v = 0;

	if (s.n == 0 || s.n > 10)
		return false;
	for (size_t i = 0; i < s.n; i++) {
		if (s.p[i] < '0' || s.p[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s.p[i] - '0');
	}
	if (v >= UINT32_MAX)
		return false;
	*ret = (uint32_t)v;
	return true;
}

/* Splits the next line off *buf (without the newline); false at the end. */
static bool next_line(const char **buf, const char *end, struct span *line)
{
	const char *p = *buf, *nl;

	if (p >= end)
		return false;
	nl = memchr(p, '\n', (size_t)(end - p));
	if (!nl)
		nl = end;
	line->p = p;
	line->n = (size_t)(nl - p);
	*buf = nl < end ? nl + 1 : end;
	return true;
}

/* Splits line at ':' into at most max fields; returns the number of fields. */
static size_t split_fields(struct span line, struct span *f, size_t max)
{
	size_t n = 0;
	const char *p = line.p, *end = line.p + line.n;

	while (n < max) {
		const char *c = memchr(p, ':', (size_t)(end - p));

		f[n].p = p;
		f[n].n = c ? (size_t)(c - p) : (size_t)(end - p);
		n++;
		if (!c)
			break;
		p = c + 1;
	}
	for (size_t i = n; i < max; i++) {
		f[i].p = end;
		f[i].n = 0;
	}
	return n;
}

static bool skip_line(struct span line)
{
	size_t i = 0;

	while (i < line.n && (line.p[i] == ' ' || line.p[i] == '\t'))
		i++;
	return i == line.n || line.p[i] == '#';
}

/* Is name in the comma-separated member list? */
static bool is_member(struct span members, struct span name)
{
	const char *p = members.p, *end = members.p + members.n;

	while (p <= end && members.n) {
		const char *c = memchr(p, ',', (size_t)(end - p));
		struct span m = {p, c ? (size_t)(c - p) : (size_t)(end - p)};

		while (m.n && (m.p[0] == ' ' || m.p[0] == '\t')) {
			m.p++;
			m.n--;
		}
		while (m.n && (m.p[m.n - 1] == ' ' || m.p[m.n - 1] == '\t'))
			m.n--;
		if (span_eq(m, name))
			return true;
		if (!c)
			break;
		p = c + 1;
	}
	return false;
}

int sandbox_user_resolve_raw(const char *user, const char *passwd, size_t passwd_len,
			     const char *group, size_t group_len, gid_t *gids, size_t max_gids,
			     struct sandbox_user_raw *ret)
{
	struct span uarg = {"", 0}, garg = {"", 0}, name = {"", 0}, line, f[7];
	bool has_group = false, found = false, unum, gnum = false;
	uint32_t uid_arg = 0, gid_arg = 0, v;
	const char *p, *end;

	memset(ret, 0, sizeof(*ret));
	ret->home = "/";
	ret->home_len = 1;
	if (user) {
		const char *colon = strchr(user, ':');

		uarg.p = user;
		uarg.n = colon ? (size_t)(colon - user) : strlen(user);
		if (colon) {
			has_group = true;
			garg.p = colon + 1;
			garg.n = strlen(colon + 1);
		}
	}
	if (uarg.n == 0) {
		uarg.p = "0";
		uarg.n = 1;
	}
	unum = span_to_id(uarg, &uid_arg);
	if (has_group && garg.n == 0)
		has_group = false;
	if (has_group)
		gnum = span_to_id(garg, &gid_arg);

	/* passwd: name:password:uid:gid:gecos:home:shell; the first entry matching by name or id.
	 */
	p = passwd ? passwd : "";
	end = p + (passwd ? passwd_len : 0);
	while (next_line(&p, end, &line)) {
		uint32_t gid_v = 0;

		if (skip_line(line))
			continue;
		split_fields(line, f, 7);
		if (!span_to_id(f[2], &v))
			continue;
		if (!span_eq(f[0], uarg) && !(unum && v == uid_arg))
			continue;
		ret->uid = v;
		ret->gid = span_to_id(f[3], &gid_v) ? gid_v : 0;
		if (f[5].n) {
			ret->home = f[5].p;
			ret->home_len = f[5].n;
		}
		name = f[0];
		found = true;
		break;
	}
	if (!found) {
		if (!unum) {
			ret->msg = "unable to find user ";
			ret->msg_suffix = ": no matching entries in passwd file";
			ret->name = uarg.p;
			ret->name_len = uarg.n;
			return -ENOENT;
		}
		ret->uid = uid_arg;
		ret->gid = 0;
	}

	p = group ? group : "";
	end = p + (group ? group_len : 0);
	if (has_group) {
		found = false;
		while (next_line(&p, end, &line)) {
			if (skip_line(line))
				continue;
			split_fields(line, f, 4);
			if (!span_to_id(f[2], &v))
				continue;
			if (!span_eq(f[0], garg) && !(gnum && v == gid_arg))
				continue;
			ret->gid = v;
			found = true;
			break;
		}
		if (!found) {
			if (!gnum) {
				ret->msg = "unable to find group ";
				ret->msg_suffix = ": no matching entries in group file";
				ret->name = garg.p;
				ret->name_len = garg.n;
				return -ENOENT;
			}
			ret->gid = gid_arg;
		}
		return 0;
	}
	if (!name.n)
		return 0;
	/* Supplementary groups: every group that lists the user's name as a member. */
	while (next_line(&p, end, &line)) {
		bool dup = false;

		if (skip_line(line))
			continue;
		split_fields(line, f, 4);
		if (!span_to_id(f[2], &v) || !is_member(f[3], name))
			continue;
		for (size_t i = 0; i < ret->n_gids; i++)
			dup |= gids[i] == v;
		if (dup)
			continue;
		if (ret->n_gids == max_gids) {
			ret->msg = "too many supplementary groups for user ";
			ret->msg_suffix = "";
			ret->name = name.p;
			ret->name_len = name.n;
			return -E2BIG;
		}
		gids[ret->n_gids++] = v;
	}
	return 0;
}

void sandbox_user_release(struct sandbox_user *u)
{
	if (!u)
		return;
	free(u->gids);
	free(u->home);
	u->gids = NULL;
	u->home = NULL;
	u->n_gids = 0;
}

static int openat2_in_root(int dirfd, const char *path, int flags)
{
	struct open_how how = {
	    .flags = (uint64_t)(flags | O_CLOEXEC),
	    .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
	};

	return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

/* Reads a regular file inside the root dirfd (RESOLVE_IN_ROOT). A missing file is empty. */
static int read_in_root(int rootfd, const char *rel, struct kn_buf *out, kn_error **err)
{
	_cleanup_close_ int fd = -1;
	struct stat st;

	fd = openat2_in_root(rootfd, rel, O_RDONLY | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		return kn_error_errno(err, "open '/%s'", rel);
	}
	if (fstat(fd, &st) < 0)
		return kn_error_errno(err, "stat '/%s'", rel);
	if (!S_ISREG(st.st_mode))
		return 0;
	if (kn_read_fd(fd, SANDBOX_USER_FILE_MAX, out, err) < 0)
		return kn_error_wrap(err, "read '/%s'", rel);
	return 0;
}

static bool is_whiteout(int dirfd, const char *name)
{
	struct stat st;
	size_t n = strlen(name);
	_cleanup_free_ char *wh = NULL;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
	/* OCI-style whiteout files, in case a snapshot keeps them. */
	wh = xmalloc(n + 5);
	memcpy(wh, ".wh.", 4);
	memcpy(wh + 4, name, n + 1);
	return fstatat(dirfd, wh, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static bool is_opaque(int dirfd)
{
	char v[2];
	struct stat st;

	if (fgetxattr(dirfd, "trusted.overlay.opaque", v, sizeof(v)) == 1 && v[0] == 'y')
		return true;
	if (fgetxattr(dirfd, "user.overlay.opaque", v, sizeof(v)) == 1 && v[0] == 'y')
		return true;
	return fstatat(dirfd, ".wh..wh..opq", &st, AT_SYMLINK_NOFOLLOW) == 0;
}

#define MAX_SYMLINK_HOPS 40

/* What one layer says about name inside the (already resolved) directory prefix. */
enum layer_hit {
	LAYER_MISS,   /* nothing here: look in the layers below */
	LAYER_FOUND,  /* *ret_dfd is the directory holding it, *st its lstat */
	LAYER_HIDDEN, /* a whiteout, an opaque directory or a non-directory hides the layers below
		       */
};

static enum layer_hit layer_lookup(int layerfd, const char *prefix, const char *name,
				   struct stat *st, int *ret_dfd)
{
	struct open_how how = {
	    .flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
	    .resolve =
		RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
	};
	_cleanup_close_ int dfd = -1;

	dfd = (int)syscall(SYS_openat2, layerfd, *prefix ? prefix : ".", &how, sizeof(how));
	if (dfd < 0)
		/* A file, symlink or whiteout on the way masks whatever lies below. */
		return errno == ENOENT ? LAYER_MISS : LAYER_HIDDEN;
	if (fstatat(dfd, name, st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0))
			return LAYER_HIDDEN;
		*ret_dfd = steal_fd(&dfd);
		return LAYER_FOUND;
	}
	if (is_whiteout(dfd, name) || is_opaque(dfd))
		return LAYER_HIDDEN;
	return LAYER_MISS;
}

void sandbox_walk_release(struct sandbox_walk *w)
{
	if (!w)
		return;
	free(w->resolved);
	kn_strv_free(w->dirs);
	free(w->dir_st);
	memset(w, 0, sizeof(*w));
}

int sandbox_layers_walk(const int *layers, size_t n, const char *path, struct sandbox_walk *ret)
{
	struct kn_buf todo = KN_BUF_INIT, prefix = KN_BUF_INIT, next = KN_BUF_INIT;
	struct kn_strv dirs = KN_STRV_INIT;
	struct stat *dir_st = NULL;
	size_t dir_st_alloc = 0;
	int hops = 0, r = -1, e = 0;

	memset(ret, 0, sizeof(*ret));
	kn_buf_adds(&todo, path);
restart:
	kn_buf_reset(&prefix);
	kn_strv_release(&dirs);
	for (const char *p = todo.buf;;) {
		_cleanup_close_ int dfd = -1;
		_cleanup_free_ char *name = NULL;
		const char *end;
		struct stat st;
		bool found = false;

		while (*p == '/')
			p++;
		if (!*p) {
			/* the whole path exists and is a directory */
			ret->exists = true;
			break;
		}
		end = strchrnul(p, '/');
		name = xstrndup(p, (size_t)(end - p));
		p = end;
		if (strcmp(name, ".") == 0)
			continue;
		if (strcmp(name, "..") == 0) {
			char *slash = strrchr(prefix.buf, '/');

			kn_buf_setlen(&prefix, slash ? (size_t)(slash - prefix.buf) : 0);
			if (dirs.n) {
				free(dirs.v[--dirs.n]);
				dirs.v[dirs.n] = NULL;
			}
			continue;
		}
		for (size_t i = 0; i < n && !found; i++) {
			enum layer_hit hit = layer_lookup(layers[i], prefix.buf, name, &st, &dfd);

			if (hit == LAYER_HIDDEN)
				break;
			found = hit == LAYER_FOUND;
		}
		if (!found) {
			/* missing from here on: the rest must be plain names */
			kn_buf_reset(&next);
			kn_buf_addf(&next, "%s%s%s%s", prefix.buf, prefix.len ? "/" : "", name, p);
			if (strstr(next.buf + prefix.len, "/../") ||
			    strstr(next.buf + prefix.len, "/./") ||
			    (next.len >= 3 && strcmp(next.buf + next.len - 3, "/..") == 0)) {
				e = EINVAL;
				goto out;
			}
			break;
		}
		if (S_ISLNK(st.st_mode)) {
			struct kn_buf target = KN_BUF_INIT;
			ssize_t len;

			if (++hops > MAX_SYMLINK_HOPS || st.st_size <= 0 || st.st_size > 4096) {
				e = ELOOP;
				goto out;
			}
			kn_buf_grow(&target, (size_t)st.st_size + 1);
			len = readlinkat(dfd, name, target.buf, (size_t)st.st_size + 1);
			if (len <= 0 || len > st.st_size) {
				kn_buf_release(&target);
				e = ELOOP;
				goto out;
			}
			kn_buf_setlen(&target, (size_t)len);
			kn_buf_reset(&next);
			if (target.buf[0] != '/')
				kn_buf_addf(&next, "%s/", prefix.buf);
			kn_buf_addf(&next, "%s%s", target.buf, p);
			kn_buf_release(&target);
			kn_buf_reset(&todo);
			kn_buf_adds(&todo, next.buf);
			goto restart;
		}
		if (prefix.len)
			kn_buf_addch(&prefix, '/');
		kn_buf_adds(&prefix, name);
		if (!S_ISDIR(st.st_mode)) {
			while (*p == '/')
				p++;
			if (*p) {
				e = ENOTDIR;
				goto out;
			}
			ret->exists = true;
			break;
		}
		KN_GROW(dir_st, dir_st_alloc, dirs.n + 1);
		dir_st[dirs.n] = st;
		kn_strv_push(&dirs, prefix.buf);
	}
	ret->resolved = ret->exists ? kn_buf_detach(&prefix) : kn_buf_detach(&next);
	ret->n_dirs = dirs.n;
	ret->dirs = kn_strv_detach(&dirs);
	ret->dir_st = steal_ptr(&dir_st);
	r = 0;
out:
	kn_buf_release(&todo);
	kn_buf_release(&prefix);
	kn_buf_release(&next);
	kn_strv_release(&dirs);
	free(dir_st);
	if (r < 0)
		errno = e;
	return r;
}

/*
 * Opens path (relative to the image root) as the merged overlay view of layers[] (top first)
 * shows it, resolved by sandbox_layers_walk(): whiteouts and opaque directories respected,
 * symlinks followed inside the image. Returns an O_RDONLY fd of a non-directory, or -1 with errno.
 */
static int merged_open(const int *layers, size_t n, const char *path)
{
	struct sandbox_walk w;
	const char *name;
	_cleanup_free_ char *parent = NULL;
	int fd = -1, e = ENOENT;

	if (sandbox_layers_walk(layers, n, path, &w) < 0)
		return -1;
	if (!w.exists)
		goto out;
	if (!*w.resolved) {
		e = EISDIR;
		goto out;
	}
	name = strrchr(w.resolved, '/');
	parent = name ? xstrndup(w.resolved, (size_t)(name - w.resolved)) : xstrdup("");
	name = name ? name + 1 : w.resolved;
	for (size_t i = 0; i < n; i++) {
		_cleanup_close_ int dfd = -1;
		struct stat st;
		enum layer_hit hit = layer_lookup(layers[i], parent, name, &st, &dfd);

		if (hit == LAYER_HIDDEN)
			break;
		if (hit != LAYER_FOUND)
			continue;
		if (S_ISDIR(st.st_mode)) {
			e = EISDIR;
			break;
		}
		fd = openat(dfd, name, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_NOFOLLOW | O_CLOEXEC);
		e = errno;
		break;
	}
out:
	sandbox_walk_release(&w);
	if (fd < 0)
		errno = e;
	return fd;
}

static int read_image_file(const char *const *lowerdirs, size_t n, const char *rootfs,
			   const char *name, struct kn_buf *out, kn_error **err)
{
	_cleanup_free_ char *rel = xasprintf("etc/%s", name);
	_cleanup_free_ int *fds = NULL;
	_cleanup_close_ int fd = -1;
	struct stat st;
	int r = 0;

	if (!lowerdirs || n == 0) {
		_cleanup_close_ int rootfd = -1;

		if (!rootfs)
			return 0;
		rootfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (rootfd < 0 && errno == ENOENT)
			return 0; /* no root at all (FROM scratch): no passwd, no group */
		if (rootfd < 0)
			return kn_error_errno(err, "open rootfs '%s'", rootfs);
		return read_in_root(rootfd, rel, out, err);
	}
	fds = xreallocarray(NULL, n, sizeof(*fds));
	for (size_t i = 0; i < n; i++)
		fds[i] = -1;
	for (size_t i = 0; i < n; i++) {
		fds[i] = open(lowerdirs[i], O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (fds[i] < 0) {
			r = kn_error_errno(err, "open layer '%s'", lowerdirs[i]);
			goto out;
		}
	}
	fd = merged_open(fds, n, rel);
	if (fd < 0) {
		if (errno != ENOENT && errno != ENOTDIR && errno != EISDIR)
			r = kn_error_errno(err, "open '/%s' in the image", rel);
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		r = kn_error_errno(err, "stat '/%s'", rel);
		goto out;
	}
	if (S_ISREG(st.st_mode) && kn_read_fd(fd, SANDBOX_USER_FILE_MAX, out, err) < 0)
		r = kn_error_wrap(err, "read '/%s'", rel);
out:
	for (size_t i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return r;
}

int sandbox_user_lookup(const char *const *lowerdirs, size_t n_lowerdirs, const char *rootfs,
			const char *user, struct sandbox_user *ret, kn_error **err)
{
	struct kn_buf passwd = KN_BUF_INIT, group = KN_BUF_INIT;
	struct sandbox_user_raw raw;
	gid_t *gids = NULL;
	int r = -1;

	if (read_image_file(lowerdirs, n_lowerdirs, rootfs, "passwd", &passwd, err) < 0 ||
	    read_image_file(lowerdirs, n_lowerdirs, rootfs, "group", &group, err) < 0)
		goto out;
	gids = xreallocarray(NULL, SANDBOX_MAX_GROUPS, sizeof(*gids));
	if (sandbox_user_resolve_raw(user, passwd.buf, passwd.len, group.buf, group.len, gids,
				     SANDBOX_MAX_GROUPS, &raw) < 0) {
		kn_error_set(err, 0, "%s%.*s%s", raw.msg, (int)raw.name_len, raw.name,
			     raw.msg_suffix);
		goto out;
	}
	ret->uid = raw.uid;
	ret->gid = raw.gid;
	ret->n_gids = raw.n_gids;
	ret->gids = raw.n_gids ? xreallocarray(gids, raw.n_gids, sizeof(*gids)) : NULL;
	if (ret->gids)
		gids = NULL;
	ret->home = xstrndup(raw.home, raw.home_len);
	r = 0;
out:
	free(gids);
	kn_buf_release(&passwd);
	kn_buf_release(&group);
	return r;
}

int sandbox_layers_paths(const char *const *lowerdirs, size_t n, const char *path, char ***ret,
			 kn_error **err)
{
	struct kn_strv out = KN_STRV_INIT;
	bool below_hidden = false;

	for (size_t i = 0; i < n && !below_hidden; i++) {
		_cleanup_close_ int dfd = open(lowerdirs[i], O_PATH | O_DIRECTORY | O_CLOEXEC);
		bool whole = true;

		if (dfd < 0) {
			kn_strv_release(&out);
			return kn_error_errno(err, "open layer '%s'", lowerdirs[i]);
		}
		for (const char *p = path; *p;) {
			_cleanup_free_ char *name = NULL;
			const char *end;
			struct stat st;
			int next;

			while (*p == '/')
				p++;
			if (!*p)
				break;
			end = strchrnul(p, '/');
			name = xstrndup(p, (size_t)(end - p));
			p = end;
			while (*p == '/')
				p++;
			if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
				/* Missing here: an OCI whiteout file hides it below too. */
				below_hidden = is_whiteout(dfd, name);
				whole = false;
				break;
			}
			if (!S_ISDIR(st.st_mode)) {
				/* A whiteout or a non-directory masks the layers below; the path
				 * itself when it is the last component and not a whiteout. */
				below_hidden = true;
				whole = !*p && !(S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0));
				break;
			}
			next = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (next < 0) {
				kn_strv_release(&out);
				return kn_error_errno(err, "open '%s' in layer '%s'", path, lowerdirs[i]);
			}
			close(dfd);
			dfd = next;
			if (is_opaque(dfd))
				below_hidden = true;
		}
		if (whole)
			kn_strv_push_owned(&out, kn_path_join(lowerdirs[i], path));
	}
	*ret = kn_strv_detach(&out);
	return 0;
}
