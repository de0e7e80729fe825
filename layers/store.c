/* kiln layers: the local content store (OCI image layout): handle, locks, blobs, references. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layers/store-internal.h"

/* ---- JSON helpers -------------------------------------------------------------------------- */

json_t *store_json_parse(const char *data, size_t len, const char *what, kn_error **err)
{
	json_error_t je;
	json_t *j;

	if (len > STORE_JSON_MAX) {
		kn_error_set(err, EFBIG, "%s is too large (%zu bytes, limit %u)", what, len,
			     STORE_JSON_MAX);
		return NULL;
	}
	j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		kn_error_set(err, EINVAL, "invalid JSON in %s: %s (line %d)", what, je.text, je.line);
		return NULL;
	}
	return j;
}

char *store_json_dump(const json_t *j, size_t *ret_len)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);

	if (!s)
		abort();
	if (ret_len)
		*ret_len = strlen(s);
	return s;
}

char **store_json_strv(json_t *a)
{
	struct kn_strv v = KN_STRV_INIT;
	size_t i;
	json_t *e;

	if (!json_is_array(a))
		return NULL;
	json_array_foreach(a, i, e) {
		if (json_is_string(e))
			kn_strv_push(&v, json_string_value(e));
	}
	return kn_strv_detach(&v);
}

json_t *store_strv_json(char *const *v)
{
	json_t *a = json_array();

	for (size_t i = 0; v && v[i]; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

/* ---- handle -------------------------------------------------------------------------------- */

const char *store_root(const struct store *s)
{
	return s->root;
}

static void clean_tmp(const char *root)
{
	_cleanup_free_ char *tmp = kn_path_join(root, "tmp");
	_cleanup_closedir_ DIR *d = opendir(tmp);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		_cleanup_free_ char *p = NULL;
		_cleanup_close_ int fd = -1;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		p = kn_path_join(tmp, de->d_name);
		fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0) {
			(void)unlink(p);
			continue;
		}
		/* A live handle holds its dir locked; only unlocked leftovers of a crash go. */
		if (flock(fd, LOCK_EX | LOCK_NB) < 0)
			continue;
		(void)kn_rm_rf(p, NULL);
	}
}

static int write_if_missing(struct store *s, const char *name, const char *content, kn_error **err)
{
	_cleanup_free_ char *p = kn_path_join(s->root, name);
	_cleanup_free_ char *tmp = NULL;
	_cleanup_close_ int fd = -1;

	if (kn_path_exists(p))
		return 0;
	fd = store_tmp_open(s, &tmp, err);
	if (fd < 0)
		return -1;
	if (kn_write_all(fd, content, strlen(content), err) < 0)
		return -1;
	if (fsync(fd) < 0)
		return kn_error_errno(err, "fsync '%s'", tmp);
	/* link() fails with EEXIST if another writer won the race; either copy is fine. */
	if (link(tmp, p) < 0 && errno != EEXIST)
		return kn_error_errno(err, "create '%s'", p);
	(void)unlink(tmp);
	return kn_fsync_dir(s->root, err);
}

int store_open(const char *root, unsigned flags, struct store **ret, kn_error **err)
{
	_cleanup_(store_freep) struct store *s = NULL;
	static const char *const dirs[] = { "blobs/sha256", "tmp", "snapshots", "cache" };

	if (flags & STORE_EXCLUSIVE)
		flags |= STORE_WRITE;
	s = xcalloc(1, sizeof(*s));
	s->root = xstrdup(root);
	s->flags = flags;
	s->lock_fd = -1;
	s->tmp_fd = -1;
	pthread_mutex_init(&s->tmp_lock, NULL);
	if (flags & STORE_WRITE) {
		_cleanup_free_ char *lock = kn_path_join(root, "lock");

		for (size_t i = 0; i < KN_ARRAY_SIZE(dirs); i++) {
			_cleanup_free_ char *d = kn_path_join(root, dirs[i]);

			if (kn_mkdir_p(d, 0700, err) < 0)
				return kn_error_wrap(err, "store '%s'", root);
		}
		s->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (s->lock_fd < 0)
			return kn_error_errno(err, "open '%s'", lock);
		while (flock(s->lock_fd, (flags & STORE_EXCLUSIVE) ? LOCK_EX : LOCK_SH) < 0)
			if (errno != EINTR)
				return kn_error_errno(err, "lock '%s'", lock);
		clean_tmp(root);
		if (write_if_missing(s, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}", err) < 0 ||
		    write_if_missing(s, "index.json",
				     "{\"manifests\":[],\"mediaType\":\"" STORE_MT_OCI_INDEX
				     "\",\"schemaVersion\":2}",
				     err) < 0)
			return -1;
	} else {
		struct stat st;

		if (stat(root, &st) == 0 && !S_ISDIR(st.st_mode))
			return kn_error_set(err, ENOTDIR, "store root '%s' is not a directory", root);
		if (access(root, W_OK) == 0)
			clean_tmp(root);
	}
	*ret = steal_ptr(&s);
	return 0;
}

void store_free(struct store *s)
{
	if (!s)
		return;
	if (s->tmp_path)
		(void)kn_rm_rf(s->tmp_path, NULL);
	if (s->tmp_fd >= 0)
		close(s->tmp_fd);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	pthread_mutex_destroy(&s->tmp_lock);
	free(s->tmp_path);
	free(s->root);
	free(s);
}

static const char *tmpdir_create(struct store *s, kn_error **err)
{
	if (s->tmp_path)
		return s->tmp_path;
	if (!(s->flags & STORE_WRITE)) {
		kn_error_set(err, EPERM, "store '%s' was opened read-only", s->root);
		return NULL;
	}
	for (int attempt = 0; attempt < 16; attempt++) {
		unsigned int rnd = 0;
		_cleanup_free_ char *p = NULL;
		_cleanup_close_ int fd = -1;
		struct stat st;

		if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
			rnd = (unsigned int)attempt * 2654435761u;
		p = xasprintf("%s/tmp/%d-%08x", s->root, (int)getpid(), rnd);
		if (mkdir(p, 0700) < 0) {
			if (errno == EEXIST)
				continue;
			kn_error_errno(err, "mkdir '%s'", p);
			return NULL;
		}
		fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT)
			continue; /* another process's cleanup took it before we locked it */
		if (fd < 0) {
			kn_error_errno(err, "open '%s'", p);
			return NULL;
		}
		if (flock(fd, LOCK_EX) < 0) {
			kn_error_errno(err, "lock '%s'", p);
			return NULL;
		}
		/* Another process's cleanup may have removed it before we locked it: retry. */
		if (fstat(fd, &st) < 0 || st.st_nlink == 0)
			continue;
		s->tmp_fd = steal_fd(&fd);
		s->tmp_path = steal_ptr(&p);
		return s->tmp_path;
	}
	kn_error_set(err, EEXIST, "cannot create a temporary directory in '%s/tmp'", s->root);
	return NULL;
}

const char *store_tmpdir(struct store *s, kn_error **err)
{
	const char *t;

	pthread_mutex_lock(&s->tmp_lock);
	t = tmpdir_create(s, err);
	pthread_mutex_unlock(&s->tmp_lock);
	return t;
}

char *store_tmp_name(struct store *s, const char *prefix, kn_error **err)
{
	const char *t = store_tmpdir(s, err);

	if (!t)
		return NULL;
	return xasprintf("%s/%s-%u", t, prefix, atomic_fetch_add(&s->tmp_seq, 1));
}

int store_tmp_open(struct store *s, char **ret_path, kn_error **err)
{
	_cleanup_free_ char *p = store_tmp_name(s, "f", err);
	int fd;

	if (!p)
		return -1;
	fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return kn_error_errno(err, "create '%s'", p);
	*ret_path = steal_ptr(&p);
	return fd;
}

char *store_snapshot_path(const struct store *s, const char *chain_id, kn_error **err)
{
	if (store_digest_check(chain_id, err) < 0)
		return NULL;
	return xasprintf("%s/snapshots/%s", s->root, store_digest_hex(chain_id));
}

/* ---- blobs --------------------------------------------------------------------------------- */

char *store_blob_path(const struct store *s, const char *digest, kn_error **err)
{
	const char *c;

	if (store_digest_check(digest, err) < 0)
		return NULL;
	c = strchr(digest, ':');
	return xasprintf("%s/blobs/%.*s/%s", s->root, (int)(c - digest), digest, c + 1);
}

bool store_blob_exists(const struct store *s, const char *digest)
{
	_cleanup_free_ char *p = store_blob_path(s, digest, NULL);

	return p && kn_path_exists(p);
}

void store_writeback(int fd, int64_t *started, int64_t end)
{
	if (end - *started < STORE_WRITEBACK_CHUNK)
		return;
	(void)sync_file_range(fd, *started, end - *started, SYNC_FILE_RANGE_WRITE);
	*started = end;
}

struct store_blob_writer {
	struct store *s;
	struct store_hash *h;
	char *tmp;
	int fd;
	int64_t size;
	int64_t writeback; /* store_writeback() cursor */
};

int store_blob_writer_new(struct store *s, struct store_blob_writer **ret, kn_error **err)
{
	struct store_blob_writer *w;
	char *tmp = NULL;
	int fd = store_tmp_open(s, &tmp, err);

	if (fd < 0)
		return -1;
	w = xcalloc(1, sizeof(*w));
	w->s = s;
	w->fd = fd;
	w->tmp = tmp;
	w->h = store_hash_new("sha256", NULL);
	*ret = w;
	return 0;
}

int store_blob_writer_write(struct store_blob_writer *w, const void *buf, size_t len,
			    kn_error **err)
{
	store_hash_update(w->h, buf, len);
	if (kn_write_all(w->fd, buf, len, err) < 0)
		return kn_error_wrap(err, "write blob");
	w->size += (int64_t)len;
	store_writeback(w->fd, &w->writeback, w->size);
	return 0;
}

void store_blob_writer_abort(struct store_blob_writer *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (w->tmp)
		(void)unlink(w->tmp);
	store_hash_free(w->h);
	free(w->tmp);
	free(w);
}

int store_blob_install(struct store *s, const char *tmp_path, const char *digest, kn_error **err)
{
	_cleanup_free_ char *dst = store_blob_path(s, digest, err);
	_cleanup_free_ char *dir = NULL;
	char *slash;

	if (!dst)
		return -1;
	dir = xstrdup(dst);
	slash = strrchr(dir, '/');
	*slash = 0;
	if (kn_mkdir_p(dir, 0700, err) < 0)
		return -1;
	if (kn_path_exists(dst)) {
		(void)unlink(tmp_path);
		return 0;
	}
	if (chmod(tmp_path, 0444) < 0)
		return kn_error_errno(err, "chmod '%s'", tmp_path);
	if (rename(tmp_path, dst) < 0)
		return kn_error_errno(err, "rename '%s' to '%s'", tmp_path, dst);
	return kn_fsync_dir(dir, err);
}

int store_blob_writer_commit(struct store_blob_writer *w, const char *expected,
			     char **ret_digest, int64_t *ret_size, kn_error **err)
{
	_cleanup_free_ char *d = NULL;
	int r = -1;

	if (expected && store_digest_check(expected, err) < 0)
		goto out;
	if (expected && strncmp(expected, "sha256:", 7)) {
		/* Re-hash with the expected algorithm: the file is already on disk. */
		kn_error_set(err, ENOTSUP, "blob digest '%s': only sha256 ingest is supported",
			     expected);
		goto out;
	}
	d = store_hash_final(w->h);
	if (expected && strcmp(expected, d)) {
		kn_error_set(err, EBADMSG, "digest mismatch: expected '%s', got '%s'", expected, d);
		goto out;
	}
	if (fsync(w->fd) < 0) {
		kn_error_errno(err, "fsync '%s'", w->tmp);
		goto out;
	}
	if (close(w->fd) < 0) {
		w->fd = -1;
		kn_error_errno(err, "close '%s'", w->tmp);
		goto out;
	}
	w->fd = -1;
	if (store_blob_install(w->s, w->tmp, d, err) < 0)
		goto out;
	if (ret_size)
		*ret_size = w->size;
	if (ret_digest)
		*ret_digest = steal_ptr(&d);
	r = 0;
out:
	store_blob_writer_abort(w);
	return r;
}

int store_blob_put(struct store *s, const void *data, size_t len, char **ret_digest,
		   kn_error **err)
{
	struct store_blob_writer *w = NULL;

	if (store_blob_writer_new(s, &w, err) < 0)
		return -1;
	if (store_blob_writer_write(w, data, len, err) < 0) {
		store_blob_writer_abort(w);
		return -1;
	}
	return store_blob_writer_commit(w, NULL, ret_digest, NULL, err);
}

int store_blob_open(const struct store *s, const char *digest, int *ret_fd, int64_t *ret_size,
		    kn_error **err)
{
	_cleanup_free_ char *p = store_blob_path(s, digest, err);
	_cleanup_close_ int fd = -1;
	struct stat st;

	if (!p)
		return -1;
	fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return kn_error_set(err, ENOENT, "blob '%s' not found", digest);
		return kn_error_errno(err, "open blob '%s'", digest);
	}
	if (fstat(fd, &st) < 0)
		return kn_error_errno(err, "stat blob '%s'", digest);
	if (!S_ISREG(st.st_mode))
		return kn_error_set(err, EINVAL, "blob '%s' is not a regular file", digest);
	if (ret_size)
		*ret_size = st.st_size;
	*ret_fd = steal_fd(&fd);
	return 0;
}

static int hash_fd(int fd, const char *alg, struct kn_buf *keep, size_t max, char **ret,
		   kn_error **err)
{
	_cleanup_(store_hash_freep) struct store_hash *h = store_hash_new(alg, err);
	_cleanup_free_ char *buf = xmalloc(1 << 16);
	size_t total = 0;

	if (!h)
		return -1;
	for (;;) {
		ssize_t n = read(fd, buf, 1 << 16);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return kn_error_errno(err, "read");
		}
		if (n == 0)
			break;
		total += (size_t)n;
		if (keep) {
			if (max && total > max)
				return kn_error_set(err, EFBIG, "larger than %zu bytes", max);
			kn_buf_add(keep, buf, (size_t)n);
		}
		store_hash_update(h, buf, (size_t)n);
	}
	*ret = store_hash_final(h);
	return 0;
}

int store_blob_read(const struct store *s, const char *digest, size_t max, struct kn_buf *out,
		    kn_error **err)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *got = NULL;
	_cleanup_free_ char *alg = NULL;
	struct kn_buf tmp = KN_BUF_INIT;
	int64_t size;

	if (store_blob_open(s, digest, &fd, &size, err) < 0)
		return -1;
	if (max && size > (int64_t)max)
		return kn_error_set(err, EFBIG, "blob '%s' is too large (%lld bytes, limit %zu)",
				    digest, (long long)size, max);
	alg = xstrndup(digest, strchr(digest, ':') - digest);
	if (hash_fd(fd, alg, &tmp, max, &got, err) < 0) {
		kn_buf_release(&tmp);
		return kn_error_wrap(err, "blob '%s'", digest);
	}
	if (strcmp(got, digest)) {
		kn_buf_release(&tmp);
		return kn_error_set(err, EBADMSG, "blob '%s' is corrupt (content hashes to '%s')",
				    digest, got);
	}
	kn_buf_add(out, tmp.buf, tmp.len);
	kn_buf_release(&tmp);
	return 0;
}

int store_blob_verify(const struct store *s, const char *digest, kn_error **err)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *got = NULL;
	_cleanup_free_ char *alg = NULL;

	if (store_blob_open(s, digest, &fd, NULL, err) < 0)
		return -1;
	alg = xstrndup(digest, strchr(digest, ':') - digest);
	if (hash_fd(fd, alg, NULL, 0, &got, err) < 0)
		return kn_error_wrap(err, "blob '%s'", digest);
	if (strcmp(got, digest))
		return kn_error_set(err, EBADMSG, "blob '%s' is corrupt (content hashes to '%s')",
				    digest, got);
	return 0;
}

json_t *store_blob_json(const struct store *s, const char *digest, const char *what,
			kn_error **err)
{
	struct kn_buf b = KN_BUF_INIT;
	json_t *j;

	if (store_blob_read(s, digest, STORE_JSON_MAX, &b, err) < 0) {
		kn_buf_release(&b);
		kn_error_wrap(err, "%s", what);
		return NULL;
	}
	j = store_json_parse(b.buf, b.len, what, err);
	kn_buf_release(&b);
	return j;
}

/* ---- descriptors --------------------------------------------------------------------------- */

static void platform_free(struct store_platform *p)
{
	if (!p)
		return;
	free(p->architecture);
	free(p->os);
	free(p->variant);
	free(p->os_version);
	free(p);
}

void store_desc_release(struct store_desc *d)
{
	if (!d)
		return;
	free(d->media_type);
	free(d->digest);
	platform_free(d->platform);
	if (d->annotations)
		json_decref(d->annotations);
	memset(d, 0, sizeof(*d));
}

static char *xstrdup_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

void store_desc_copy(struct store_desc *dst, const struct store_desc *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->media_type = xstrdup_null(src->media_type);
	dst->digest = xstrdup_null(src->digest);
	dst->size = src->size;
	if (src->platform) {
		dst->platform = xcalloc(1, sizeof(*dst->platform));
		dst->platform->architecture = xstrdup_null(src->platform->architecture);
		dst->platform->os = xstrdup_null(src->platform->os);
		dst->platform->variant = xstrdup_null(src->platform->variant);
		dst->platform->os_version = xstrdup_null(src->platform->os_version);
	}
	if (src->annotations)
		dst->annotations = json_deep_copy(src->annotations);
}

static char *json_str_dup(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_string(v) ? xstrdup(json_string_value(v)) : NULL;
}

int store_desc_from_json(json_t *j, struct store_desc *ret, kn_error **err)
{
	struct store_desc d = { 0 };
	json_t *size, *digest, *plat, *ann;

	if (!json_is_object(j))
		return kn_error_set(err, EINVAL, "descriptor is not a JSON object");
	digest = json_object_get(j, "digest");
	size = json_object_get(j, "size");
	if (!json_is_string(digest))
		return kn_error_set(err, EINVAL, "descriptor has no digest");
	if (store_digest_check(json_string_value(digest), err) < 0)
		return -1;
	if (!json_is_integer(size) || json_integer_value(size) < 0)
		return kn_error_set(err, EINVAL, "descriptor '%s' has no valid size",
				    json_string_value(digest));
	d.digest = xstrdup(json_string_value(digest));
	d.size = json_integer_value(size);
	d.media_type = json_str_dup(j, "mediaType");
	plat = json_object_get(j, "platform");
	if (json_is_object(plat)) {
		d.platform = xcalloc(1, sizeof(*d.platform));
		d.platform->architecture = json_str_dup(plat, "architecture");
		d.platform->os = json_str_dup(plat, "os");
		d.platform->variant = json_str_dup(plat, "variant");
		d.platform->os_version = json_str_dup(plat, "os.version");
	}
	ann = json_object_get(j, "annotations");
	if (json_is_object(ann))
		d.annotations = json_deep_copy(ann);
	*ret = d;
	return 0;
}

json_t *store_desc_to_json(const struct store_desc *d)
{
	json_t *o = json_object();

	if (d->media_type)
		json_object_set_new(o, "mediaType", json_string(d->media_type));
	json_object_set_new(o, "digest", json_string(d->digest));
	json_object_set_new(o, "size", json_integer(d->size));
	if (d->platform) {
		json_t *p = json_object();

		if (d->platform->architecture)
			json_object_set_new(p, "architecture", json_string(d->platform->architecture));
		if (d->platform->os)
			json_object_set_new(p, "os", json_string(d->platform->os));
		if (d->platform->variant)
			json_object_set_new(p, "variant", json_string(d->platform->variant));
		if (d->platform->os_version)
			json_object_set_new(p, "os.version", json_string(d->platform->os_version));
		json_object_set_new(o, "platform", p);
	}
	if (d->annotations && json_object_size(d->annotations))
		json_object_set(o, "annotations", d->annotations);
	return o;
}

/* ---- reference names ----------------------------------------------------------------------- */

static bool valid_repo_path(const char *p, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		bool sep = c == '.' || c == '_' || c == '-' || c == '/';

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || sep))
			return false;
		/* Components start and end with an alphanumeric. */
		if (sep && c != '_' && c != '-' && (i == 0 || i == n - 1))
			return false;
		if (c == '/' && (p[i - 1] == '/' || p[i - 1] == '.' || p[i - 1] == '-' ||
				 p[i - 1] == '_'))
			return false;
		if (c == '/' && i + 1 < n && (p[i + 1] == '.' || p[i + 1] == '-' || p[i + 1] == '_'))
			return false;
	}
	return p[0] != '_' && p[0] != '-' && p[n - 1] != '_' && p[n - 1] != '-';
}

static bool valid_tag(const char *t)
{
	size_t n = strlen(t);

	if (n == 0 || n > 128)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = t[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  c == '_' || (i > 0 && (c == '.' || c == '-'));

		if (!ok)
			return false;
	}
	return true;
}

static bool valid_host(const char *h, size_t n)
{
	if (n == 0 || n > 255)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = h[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == ':' || c == '[' || c == ']'))
			return false;
	}
	return true;
}

int store_ref_normalize(const char *name, char **ret, kn_error **err)
{
	_cleanup_free_ char *s = NULL, *digest = NULL, *tag = NULL, *host = NULL, *path = NULL;
	char *at, *slash, *colon, *last;

	if (!name || !*name || strlen(name) > 4096)
		return kn_error_set(err, EINVAL, "invalid reference format '%.100s'", name ? name : "");
	s = xstrdup(name);
	at = strchr(s, '@');
	if (at) {
		*at = 0;
		if (store_digest_check(at + 1, NULL) < 0)
			return kn_error_set(err, EINVAL, "invalid digest in reference '%.200s'", name);
		digest = xstrdup(at + 1);
	}
	last = strrchr(s, '/');
	colon = strrchr(last ? last : s, ':');
	if (colon) {
		*colon = 0;
		if (!valid_tag(colon + 1))
			return kn_error_set(err, EINVAL, "invalid tag in reference '%.200s'", name);
		tag = xstrdup(colon + 1);
	}
	slash = strchr(s, '/');
	if (slash && (memchr(s, '.', slash - s) || memchr(s, ':', slash - s) ||
		      (slash - s == 9 && !strncmp(s, "localhost", 9)))) {
		if (!valid_host(s, slash - s))
			return kn_error_set(err, EINVAL, "invalid registry host in '%.200s'", name);
		host = xstrndup(s, slash - s);
		path = xstrdup(slash + 1);
	} else {
		host = xstrdup("docker.io");
		path = xstrdup(s);
	}
	if (!strcmp(host, "index.docker.io") || !strcmp(host, "registry-1.docker.io")) {
		free(host);
		host = xstrdup("docker.io");
	}
	if (!valid_repo_path(path, strlen(path))) {
		_cleanup_free_ char *lower = xstrdup(path);

		for (char *c = lower; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		if (valid_repo_path(lower, strlen(lower)))
			return kn_error_set(err, EINVAL,
					    "invalid reference format '%.200s': repository name must be lowercase",
					    name);
		return kn_error_set(err, EINVAL,
				    "invalid reference format '%.200s': repository name '%.200s' may hold only "
				    "lowercase letters, digits and the separators '.', '_', '__', '-' and '/' "
				    "between them",
				    name, path);
	}
	if (!strcmp(host, "docker.io") && !strchr(path, '/')) {
		char *p = xasprintf("library/%s", path);

		free(path);
		path = p;
	}
	if (!tag && !digest)
		tag = xstrdup("latest");
	*ret = xasprintf("%s/%s%s%s%s%s", host, path, tag ? ":" : "", tag ? tag : "",
			 digest ? "@" : "", digest ? digest : "");
	return 0;
}

char *store_ref_familiar(const char *full)
{
	if (!strncmp(full, "docker.io/library/", 18) && !strchr(full + 18, '/'))
		return xstrdup(full + 18);
	if (!strncmp(full, "docker.io/", 10))
		return xstrdup(full + 10);
	return xstrdup(full);
}

void store_ref_split(const char *full, char **ret_repo, char **ret_tag)
{
	const char *at = strchr(full, '@');
	size_t end = at ? (size_t)(at - full) : strlen(full);
	const char *slash = memrchr(full, '/', end);
	const char *colon = memrchr(slash ? slash : full, ':', end - (slash ? slash - full : 0));

	if (colon) {
		*ret_repo = xstrndup(full, colon - full);
		*ret_tag = xstrndup(colon + 1, end - (colon + 1 - full));
	} else {
		*ret_repo = xstrndup(full, end);
		*ret_tag = NULL;
	}
}

/* ---- index.json ------------------------------------------------------------------------------ */

json_t *store_index_load(const struct store *s, kn_error **err)
{
	_cleanup_free_ char *p = kn_path_join(s->root, "index.json");
	struct kn_buf b = KN_BUF_INIT;
	json_t *j;

	if (kn_read_file(p, STORE_JSON_MAX, &b, NULL) < 0) {
		kn_buf_release(&b);
		if (errno == ENOENT || !kn_path_exists(p))
			return json_pack("{s:i,s:s,s:[]}", "schemaVersion", 2, "mediaType",
					 STORE_MT_OCI_INDEX, "manifests");
		kn_error_errno(err, "read '%s'", p);
		return NULL;
	}
	j = store_json_parse(b.buf, b.len, "index.json", err);
	kn_buf_release(&b);
	if (!j)
		return NULL;
	if (!json_is_object(j) || !json_is_array(json_object_get(j, "manifests"))) {
		json_decref(j);
		kn_error_set(err, EINVAL, "'%s' is not an OCI image index", p);
		return NULL;
	}
	return j;
}

static int index_save(struct store *s, json_t *ix, kn_error **err)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_free_ char *tmp = NULL;
	_cleanup_free_ char *dst = kn_path_join(s->root, "index.json");
	_cleanup_close_ int fd = -1;
	size_t len;

	text = store_json_dump(ix, &len);
	fd = store_tmp_open(s, &tmp, err);
	if (fd < 0)
		return -1;
	if (kn_write_all(fd, text, len, err) < 0)
		return -1;
	if (fsync(fd) < 0)
		return kn_error_errno(err, "fsync '%s'", tmp);
	if (close(fd) < 0) {
		fd = -1;
		return kn_error_errno(err, "close '%s'", tmp);
	}
	fd = -1;
	if (rename(tmp, dst) < 0)
		return kn_error_errno(err, "rename '%s' to '%s'", tmp, dst);
	return kn_fsync_dir(s->root, err);
}

static int index_lock(struct store *s, kn_error **err)
{
	_cleanup_free_ char *p = kn_path_join(s->root, "index.lock");
	int fd;

	if (!(s->flags & STORE_WRITE))
		return kn_error_set(err, EPERM, "store '%s' was opened read-only", s->root);
	fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return kn_error_errno(err, "open '%s'", p);
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			close(fd);
			return kn_error_errno(err, "lock '%s'", p);
		}
	}
	return fd;
}

static const char *entry_name(json_t *e)
{
	json_t *n = json_object_get(json_object_get(e, "annotations"), STORE_ANNOT_REF_NAME);

	return json_is_string(n) ? json_string_value(n) : NULL;
}

static const char *entry_digest(json_t *e)
{
	json_t *d = json_object_get(e, "digest");

	return json_is_string(d) ? json_string_value(d) : NULL;
}

int store_ref_set(struct store *s, const char *name, const struct store_desc *desc,
		  kn_error **err)
{
	_cleanup_close_ int lock = -1;
	json_t *ix = NULL, *arr, *e, *entry;
	size_t i;
	int r = -1;
	bool have_untagged = false;

	if (store_digest_check(desc->digest, err) < 0)
		return -1;
	lock = index_lock(s, err);
	if (lock < 0)
		return -1;
	ix = store_index_load(s, err);
	if (!ix)
		return -1;
	arr = json_object_get(ix, "manifests");
	for (i = 0; i < json_array_size(arr);) {
		const char *en;

		e = json_array_get(arr, i);
		en = entry_name(e);
		if (name && en && !strcmp(en, name)) {
			json_array_remove(arr, i);
			continue;
		}
		if (!en && entry_digest(e) && !strcmp(entry_digest(e), desc->digest)) {
			if (name) {
				json_array_remove(arr, i);
				continue;
			}
			have_untagged = true;
		}
		i++;
	}
	if (!name && have_untagged) {
		r = 0;
		goto out;
	}
	entry = store_desc_to_json(desc);
	if (name) {
		json_t *ann = json_object_get(entry, "annotations");

		if (!ann) {
			ann = json_object();
			json_object_set_new(entry, "annotations", ann);
		}
		json_object_set_new(ann, STORE_ANNOT_REF_NAME, json_string(name));
	} else {
		json_t *ann = json_object_get(entry, "annotations");

		if (ann)
			json_object_del(ann, STORE_ANNOT_REF_NAME);
	}
	json_array_append_new(arr, entry);
	r = index_save(s, ix, err);
out:
	json_decref(ix);
	return r;
}

int store_ref_get(const struct store *s, const char *name, struct store_desc *ret, kn_error **err)
{
	json_t *ix = store_index_load(s, err), *arr, *e;
	size_t i;
	int r;

	if (!ix)
		return -1;
	arr = json_object_get(ix, "manifests");
	json_array_foreach(arr, i, e) {
		const char *en = entry_name(e);

		if (en && !strcmp(en, name)) {
			r = store_desc_from_json(e, ret, err);
			json_decref(ix);
			if (r < 0)
				return kn_error_wrap(err, "index.json entry '%s'", name);
			return 0;
		}
	}
	json_decref(ix);
	return kn_error_set(err, ENOENT, "image '%s' not found", name);
}

static int ref_remove(struct store *s, const char *name, const char *digest, bool unnamed_only,
		      kn_error **err)
{
	_cleanup_close_ int lock = -1;
	json_t *ix, *arr;
	size_t i;
	int r, found = 0;

	lock = index_lock(s, err);
	if (lock < 0)
		return -1;
	ix = store_index_load(s, err);
	if (!ix)
		return -1;
	arr = json_object_get(ix, "manifests");
	for (i = 0; i < json_array_size(arr);) {
		json_t *e = json_array_get(arr, i);
		const char *en = entry_name(e), *ed = entry_digest(e);

		if ((name && en && !strcmp(en, name)) ||
		    (digest && ed && !strcmp(ed, digest) && (!unnamed_only || !en))) {
			json_array_remove(arr, i);
			found++;
			continue;
		}
		i++;
	}
	if (!found) {
		json_decref(ix);
		if (!name)
			return 0;
		return kn_error_set(err, ENOENT, "image '%s' not found", name);
	}
	r = index_save(s, ix, err);
	json_decref(ix);
	return r;
}

int store_ref_delete(struct store *s, const char *name, kn_error **err)
{
	return ref_remove(s, name, NULL, false, err);
}

int store_ref_delete_digest(struct store *s, const char *digest, kn_error **err)
{
	return ref_remove(s, NULL, digest, false, err);
}

int store_ref_delete_untagged(struct store *s, const char *digest, kn_error **err)
{
	return ref_remove(s, NULL, digest, true, err);
}

void store_refs_free(struct store_ref *refs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(refs[i].name);
		store_desc_release(&refs[i].desc);
	}
	free(refs);
}

int store_ref_list(const struct store *s, struct store_ref **ret, size_t *ret_n, kn_error **err)
{
	json_t *ix = store_index_load(s, err), *arr, *e;
	struct store_ref *refs = NULL;
	size_t i, n = 0, alloc = 0;

	if (!ix)
		return -1;
	arr = json_object_get(ix, "manifests");
	json_array_foreach(arr, i, e) {
		struct store_desc d;
		const char *en = entry_name(e);

		if (store_desc_from_json(e, &d, err) < 0) {
			json_decref(ix);
			store_refs_free(refs, n);
			return kn_error_wrap(err, "index.json entry %zu", i);
		}
		KN_GROW(refs, alloc, n + 1);
		refs[n].name = en ? xstrdup(en) : NULL;
		refs[n].desc = d;
		n++;
	}
	json_decref(ix);
	*ret = refs;
	*ret_n = n;
	return 0;
}

/* ---- build cache ----------------------------------------------------------------------------- */

static int cache_key_check(const char *key, kn_error **err)
{
	size_t n = key ? strlen(key) : 0;

	if (n == 0 || n > 128)
		return kn_error_set(err, EINVAL, "invalid cache key '%.140s'", key ? key : "");
	for (size_t i = 0; i < n; i++)
		if (!((key[i] >= '0' && key[i] <= '9') || (key[i] >= 'a' && key[i] <= 'f')))
			return kn_error_set(err, EINVAL, "invalid cache key '%.140s'", key);
	return 0;
}

int store_cache_put(struct store *s, const char *key, const char *json, kn_error **err)
{
	_cleanup_free_ char *dst = NULL, *tmp = NULL, *dir = NULL;
	_cleanup_close_ int fd = -1;
	json_t *j;
	size_t len = strlen(json);

	if (cache_key_check(key, err) < 0)
		return -1;
	j = store_json_parse(json, len, "cache entry", err);
	if (!j)
		return -1;
	if (!json_is_object(j)) {
		json_decref(j);
		return kn_error_set(err, EINVAL, "cache entry '%s' is not a JSON object", key);
	}
	json_decref(j);
	dir = kn_path_join(s->root, "cache");
	if (kn_mkdir_p(dir, 0700, err) < 0)
		return -1;
	dst = xasprintf("%s/%s.json", dir, key);
	fd = store_tmp_open(s, &tmp, err);
	if (fd < 0)
		return -1;
	if (kn_write_all(fd, json, len, err) < 0)
		return -1;
	if (fsync(fd) < 0)
		return kn_error_errno(err, "fsync '%s'", tmp);
	if (rename(tmp, dst) < 0)
		return kn_error_errno(err, "rename '%s' to '%s'", tmp, dst);
	return kn_fsync_dir(dir, err);
}

int store_cache_get(const struct store *s, const char *key, char **ret, kn_error **err)
{
	_cleanup_free_ char *p = NULL;
	struct kn_buf b = KN_BUF_INIT;

	if (cache_key_check(key, err) < 0)
		return -1;
	p = xasprintf("%s/cache/%s.json", s->root, key);
	if (kn_read_file(p, STORE_JSON_MAX, &b, NULL) < 0) {
		kn_buf_release(&b);
		if (!kn_path_exists(p))
			return kn_error_set(err, ENOENT, "cache entry '%s' not found", key);
		return kn_error_errno(err, "read '%s'", p);
	}
	*ret = kn_buf_detach(&b);
	return 0;
}

int store_cache_delete(struct store *s, const char *key, kn_error **err)
{
	_cleanup_free_ char *p = NULL;

	if (cache_key_check(key, err) < 0)
		return -1;
	p = xasprintf("%s/cache/%s.json", s->root, key);
	if (unlink(p) < 0) {
		if (errno == ENOENT)
			return kn_error_set(err, ENOENT, "cache entry '%s' not found", key);
		return kn_error_errno(err, "remove '%s'", p);
	}
	return 0;
}

int store_cache_list(const struct store *s, char ***ret, kn_error **err)
{
	_cleanup_free_ char *dir = kn_path_join(s->root, "cache");
	_cleanup_closedir_ DIR *d = opendir(dir);
	struct kn_strv v = KN_STRV_INIT;
	struct dirent *de;

	if (!d) {
		if (errno != ENOENT)
			return kn_error_errno(err, "open '%s'", dir);
		*ret = kn_strv_detach(&v);
		return 0;
	}
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		_cleanup_free_ char *key = NULL;

		if (n <= 5 || strcmp(de->d_name + n - 5, ".json"))
			continue;
		key = xstrndup(de->d_name, n - 5);
		if (cache_key_check(key, NULL) == 0)
			kn_strv_push(&v, key);
	}
	*ret = kn_strv_detach(&v);
	return 0;
}
