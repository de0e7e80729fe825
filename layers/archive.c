/* kiln layers: docker-archive and oci-archive tarballs (save and load), streaming. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "layers/store-internal.h"

#define IO_CHUNK (1 << 16)
#define ARCHIVE_MAX_ENTRIES 100000

static void archive_freep(struct archive **a)
{
	if (*a) {
		if (archive_read_free(*a) != ARCHIVE_OK)
			(void)0;
	}
}

static void archive_wfreep(struct archive **a)
{
	if (*a)
		archive_write_free(*a);
}

/* ==== save ===================================================================================== */

struct saved_image {
	struct store_image *img;
	struct kn_strv names; /* normalized */
};

static int write_entry_header(struct archive *a, const char *path, int64_t size, kn_error **err)
{
	struct archive_entry *e = archive_entry_new();
	int r;

	archive_entry_set_pathname(e, path);
	archive_entry_set_size(e, size);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_mtime(e, 0, 0);
	r = archive_write_header(a, e);
	archive_entry_free(e);
	if (r != ARCHIVE_OK)
		return kn_error_set_errno(err, archive_errno(a) > 0 ? archive_errno(a) : EIO,
				    "write archive entry '%s': %s", path, archive_error_string(a));
	return 0;
}

static int write_data(struct archive *a, const void *data, size_t len, kn_error **err)
{
	while (len) {
		la_ssize_t n = archive_write_data(a, data, len);

		if (n <= 0)
			return kn_error_set_errno(err, archive_errno(a) > 0 ? archive_errno(a) : EIO,
					    "write archive: %s", archive_error_string(a));
		data = (const char *)data + n;
		len -= (size_t)n;
	}
	return 0;
}

static int write_mem(struct archive *a, const char *path, const void *data, size_t len, kn_error **err)
{
	if (write_entry_header(a, path, (int64_t)len, err) < 0)
		return -1;
	return write_data(a, data, len, err);
}

static int write_blob(const struct store *s, struct archive *a, struct kn_strv *written,
		      const char *digest, kn_error **err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *buf = NULL;
	_cleanup_close_ int fd = -1;
	int64_t size, left;

	if (kn_strv_contains(written, digest))
		return 0;
	if (store_blob_open(s, digest, &fd, &size, err) < 0)
		return -1;
	path = xasprintf("blobs/sha256/%s", store_digest_hex(digest));
	if (write_entry_header(a, path, size, err) < 0)
		return -1;
	buf = xmalloc(IO_CHUNK);
	for (left = size; left > 0;) {
		ssize_t n = read(fd, buf, left < IO_CHUNK ? (size_t)left : IO_CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return kn_error_errno(err, "read blob '%s'", digest);
		if (n == 0)
			return kn_error_set(err, EIO, "blob '%s' shrank while saving", digest);
		if (write_data(a, buf, (size_t)n, err) < 0)
			return -1;
		left -= n;
	}
	kn_strv_push(written, digest);
	return 0;
}

/*
 * oci-archive of a multi-platform image: the index and every platform manifest the store has
 * (with configs and layers); manifests of platforms never pulled are left out of the index.
 */
static int write_index_tree(const struct store *s, struct archive *a, struct kn_strv *written,
			    const struct store_desc *top, kn_error **err)
{
	struct kn_buf b = KN_BUF_INIT;
	struct image_index ix = { 0 };
	int r = -1;

	if (store_blob_read(s, top->digest, STORE_JSON_MAX, &b, err) < 0 ||
	    image_index_parse(b.buf, b.len, &ix, err) < 0)
		goto out;
	for (size_t i = 0; i < ix.n_manifests; i++) {
		struct kn_buf mb = KN_BUF_INIT;
		struct image_manifest m = { 0 };
		int mr;

		if (!store_blob_exists(s, ix.manifests[i].digest))
			continue;
		mr = store_blob_read(s, ix.manifests[i].digest, STORE_JSON_MAX, &mb, err) < 0 ||
		     image_manifest_parse(mb.buf, mb.len, &m, err) < 0 ||
		     write_blob(s, a, written, m.config.digest, err) < 0 ? -1 : 0;
		for (size_t k = 0; mr == 0 && k < m.n_layers; k++)
			mr = write_blob(s, a, written, m.layers[k].digest, err);
		if (mr == 0)
			mr = write_blob(s, a, written, ix.manifests[i].digest, err);
		kn_buf_release(&mb);
		image_manifest_release(&m);
		if (mr < 0)
			goto out;
	}
	r = write_blob(s, a, written, top->digest, err);
out:
	kn_buf_release(&b);
	image_index_release(&ix);
	return r;
}

static void saved_images_free(struct saved_image *imgs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		store_image_free(imgs[i].img);
		kn_strv_release(&imgs[i].names);
	}
	free(imgs);
}

/* Writes the tar of the resolved images (each with its names) to fd. */
static int archive_write_images(const struct store *s, const struct saved_image *imgs, size_t n,
				enum store_archive_format fmt, int fd, kn_error **err)
{
	struct kn_strv written = KN_STRV_INIT;
	_cleanup_(archive_wfreep) struct archive *a = NULL;
	json_t *manifest = json_array(), *repos = json_object(), *index = json_object(),
	       *imans = json_array();
	char *text = NULL;
	size_t len;
	int r = -1;

	a = archive_write_new();
	if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
	    archive_write_open_fd(a, fd) != ARCHIVE_OK) {
		r = kn_error_set(err, EIO, "open output archive: %s", archive_error_string(a));
		goto out;
	}
	if (write_mem(a, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}", 30, err) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct store_image *img = imgs[i].img;
		json_t *m = json_object(), *tags = json_array(), *layers = json_array();

		if (write_blob(s, a, &written, img->manifest.config.digest, err) < 0)
			goto out_m;
		for (size_t k = 0; k < img->manifest.n_layers; k++) {
			const char *d = img->manifest.layers[k].digest;

			if (write_blob(s, a, &written, d, err) < 0)
				goto out_m;
			json_array_append_new(layers, json_sprintf("blobs/sha256/%s", store_digest_hex(d)));
		}
		if (write_blob(s, a, &written, img->manifest_desc.digest, err) < 0)
			goto out_m;
		if (fmt == STORE_ARCHIVE_OCI && strcmp(img->top.digest, img->manifest_desc.digest) &&
		    write_index_tree(s, a, &written, &img->top, err) < 0)
			goto out_m;
		for (size_t k = 0; k < imgs[i].names.n; k++) {
			const char *full = imgs[i].names.v[k];
			_cleanup_free_ char *fam = store_ref_familiar(full);
			_cleanup_free_ char *repo = NULL, *tag = NULL, *frepo = NULL, *ftag = NULL;
			struct store_desc d;
			json_t *jd;

			json_array_append_new(tags, json_string(fam));
			store_ref_split(fam, &frepo, &ftag);
			if (!json_object_get(repos, frepo))
				json_object_set_new(repos, frepo, json_object());
			json_object_set_new(json_object_get(repos, frepo), ftag ? ftag : "latest",
					    json_string(store_digest_hex(img->id)));
			store_ref_split(full, &repo, &tag);
			store_desc_copy(&d, fmt == STORE_ARCHIVE_OCI ? &img->top : &img->manifest_desc);
			jd = store_desc_to_json(&d);
			store_desc_release(&d);
			json_object_del(jd, "platform");
			json_object_set_new(jd, "annotations",
					    json_pack("{s:s,s:s}", "io.containerd.image.name", full,
						      STORE_ANNOT_REF_NAME,
						      fmt == STORE_ARCHIVE_DOCKER ? (tag ? tag : "latest") : full));
			json_array_append_new(imans, jd);
		}
		if (!imgs[i].names.n) {
			struct store_desc d;
			json_t *jd;

			store_desc_copy(&d, fmt == STORE_ARCHIVE_OCI ? &img->top : &img->manifest_desc);
			jd = store_desc_to_json(&d);
			store_desc_release(&d);
			json_object_del(jd, "annotations");
			json_object_del(jd, "platform");
			json_array_append_new(imans, jd);
		}
		json_object_set_new(m, "Config", json_sprintf("blobs/sha256/%s",
							     store_digest_hex(img->manifest.config.digest)));
		json_object_set_new(m, "RepoTags", tags);
		json_object_set_new(m, "Layers", layers);
		json_array_append_new(manifest, m);
		continue;
out_m:
		json_decref(m);
		json_decref(tags);
		json_decref(layers);
		goto out;
	}
	json_object_set_new(index, "schemaVersion", json_integer(2));
	json_object_set_new(index, "mediaType", json_string(STORE_MT_OCI_INDEX));
	json_object_set(index, "manifests", imans);
	text = store_json_dump(index, &len);
	if (write_mem(a, "index.json", text, len, err) < 0)
		goto out;
	free(text);
	text = NULL;
	if (fmt == STORE_ARCHIVE_DOCKER) {
		text = store_json_dump(manifest, &len);
		if (write_mem(a, "manifest.json", text, len, err) < 0)
			goto out;
		free(text);
		text = NULL;
		if (json_object_size(repos)) {
			text = store_json_dump(repos, &len);
			if (write_mem(a, "repositories", text, len, err) < 0)
				goto out;
		}
	}
	if (archive_write_close(a) != ARCHIVE_OK) {
		r = kn_error_set_errno(err, archive_errno(a) > 0 ? archive_errno(a) : EIO,
				 "write archive: %s", archive_error_string(a));
		goto out;
	}
	r = 0;
out:
	free(text);
	kn_strv_release(&written);
	json_decref(manifest);
	json_decref(repos);
	json_decref(index);
	json_decref(imans);
	return r;
}

int store_archive_save(const struct store *s, char *const *images, enum store_archive_format fmt,
		       int fd, kn_error **err)
{
	struct saved_image *imgs = NULL;
	size_t n = 0, alloc = 0;
	int r = -1;

	if (!images || !images[0])
		return kn_error_set(err, EINVAL, "no image to save");
	for (size_t i = 0; images[i]; i++) {
		struct store_image *img = NULL;
		size_t k;

		if (store_image_resolve(s, images[i], &img, err) < 0)
			goto out;
		for (k = 0; k < n; k++)
			if (!strcmp(imgs[k].img->id, img->id))
				break;
		if (k == n) {
			KN_GROW(imgs, alloc, n + 1);
			imgs[n].img = img;
			imgs[n].names = (struct kn_strv)KN_STRV_INIT;
			n++;
		} else {
			/* Same image under a second name: one manifest.json entry, both tags. */
			if (img->name && !kn_strv_contains(&imgs[k].names, img->name) && !strchr(img->name, '@'))
				kn_strv_push(&imgs[k].names, img->name);
			store_image_free(img);
			continue;
		}
		if (img->name && !strchr(img->name, '@'))
			kn_strv_push(&imgs[n - 1].names, img->name);
	}
	r = archive_write_images(s, imgs, n, fmt, fd, err);
out:
	saved_images_free(imgs, n);
	return r;
}

int store_archive_save_manifest(const struct store *s, const struct store_desc *manifest,
				char *const *names, enum store_archive_format fmt, int fd,
				kn_error **err)
{
	struct saved_image *img = xcalloc(1, sizeof(*img));
	int r;

	img->names = (struct kn_strv)KN_STRV_INIT;
	if (store_image_load(s, manifest, NULL, &img->img, err) < 0) {
		saved_images_free(img, 1);
		return -1;
	}
	for (size_t i = 0; names && names[i]; i++)
		if (!kn_strv_contains(&img->names, names[i]) && !strchr(names[i], '@'))
			kn_strv_push(&img->names, names[i]);
	r = archive_write_images(s, img, 1, fmt, fd, err);
	saved_images_free(img, 1);
	return r;
}

/* ==== load ===================================================================================== */

/* One tar entry of the archive: a regular file spooled to the temp dir, or a link to another. */
struct entry {
	char *path;     /* normalized, relative */
	char *link;     /* normalized target for symlinks/hardlinks, else NULL */
	char *tmp;      /* spooled file (regular files) */
	char *digest;   /* sha256 of the content */
	int64_t size;
	bool wanted;    /* verified and needed: moved into the store at the very end */
	bool installed;
};

struct loader {
	struct store *s;
	struct entry *e;
	size_t n, alloc;
	struct kn_strv pending_names; /* normalized names to set, with pending_descs */
	struct store_desc *descs;
	size_t n_descs, alloc_descs;
	struct kn_strv ids; /* config digest for each pending desc */
	struct kn_strv blobs; /* generated JSON blobs (manifests) to store at the end */
};

static void loader_release(struct loader *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->e[i].path);
		free(l->e[i].link);
		if (l->e[i].tmp && !l->e[i].installed)
			(void)unlink(l->e[i].tmp);
		free(l->e[i].tmp);
		free(l->e[i].digest);
	}
	free(l->e);
	kn_strv_release(&l->pending_names);
	for (size_t i = 0; i < l->n_descs; i++)
		store_desc_release(&l->descs[i]);
	free(l->descs);
	kn_strv_release(&l->ids);
	kn_strv_release(&l->blobs);
}

/*
 * Normalizes an archive path: strips "./" and duplicate slashes; rejects absolute paths, ".."
 * components and empty names (hostile archives must not name anything outside themselves).
 * base: the directory of a relative symlink (then ".." may climb inside the archive), or NULL.
 */
static char *norm_path(const char *base, const char *p, kn_error **err)
{
	struct kn_strv parts = KN_STRV_INIT;
	_cleanup_free_ char *full = NULL;
	struct kn_buf out = KN_BUF_INIT;
	char *save = NULL, *tok;

	if (!p || !*p || strlen(p) > 4096) {
		kn_error_set(err, EINVAL, "archive entry has an invalid name");
		return NULL;
	}
	if (p[0] == '/') {
		kn_error_set(err, EINVAL, "archive entry '%.200s' has an absolute path", p);
		return NULL;
	}
	full = base && *base ? xasprintf("%s/%s", base, p) : xstrdup(p);
	for (tok = full; tok; tok = save) {
		save = strchr(tok, '/');
		if (save)
			*save++ = 0;
		if (!*tok || !strcmp(tok, "."))
			continue;
		if (!strcmp(tok, "..")) {
			/* Link targets may climb back up (docker's "../<id>/layer.tar"), not out. */
			if (base && parts.n) {
				free(parts.v[--parts.n]);
				parts.v[parts.n] = NULL;
				continue;
			}
			kn_strv_release(&parts);
			kn_error_set(err, EINVAL, "archive entry '%.200s' points outside the archive", p);
			return NULL;
		}
		kn_strv_push(&parts, tok);
	}
	for (size_t i = 0; i < parts.n; i++) {
		if (i)
			kn_buf_addch(&out, '/');
		kn_buf_adds(&out, parts.v[i]);
	}
	kn_strv_release(&parts);
	if (!out.len) {
		kn_buf_release(&out);
		return xstrdup("");
	}
	return kn_buf_detach(&out);
}

static struct entry *find_entry(struct loader *l, const char *path, int depth)
{
	for (size_t i = 0; i < l->n; i++) {
		if (strcmp(l->e[i].path, path))
			continue;
		if (l->e[i].link)
			return depth > 8 ? NULL : find_entry(l, l->e[i].link, depth + 1);
		return &l->e[i];
	}
	return NULL;
}

/* Hashes len zero bytes (the holes of a sparse entry) without allocating them. */
static void hash_zeros(struct store_hash *h, int64_t len)
{
	static const char zeros[IO_CHUNK];

	while (len > 0) {
		size_t n = len < IO_CHUNK ? (size_t)len : IO_CHUNK;

		store_hash_update(h, zeros, n);
		len -= (int64_t)n;
	}
}

/*
 * Copies one entry into a temp file while hashing it. Holes of sparse entries stay holes on disk
 * (a tiny archive holding a "1 GB" sparse file must not fill the disk) but are hashed as zeros.
 */
static int spool(struct loader *l, struct archive *a, struct archive_entry *ae, struct entry *e,
		 kn_error **err)
{
	_cleanup_close_ int fd = -1;
	_cleanup_(store_hash_freep) struct store_hash *h = store_hash_new("sha256", NULL);
	int64_t pos = 0, total = archive_entry_size_is_set(ae) ? archive_entry_size(ae) : 0;
	int64_t writeback = 0; /* store_writeback() cursor */

	fd = store_tmp_open(l->s, &e->tmp, err);
	if (fd < 0)
		return -1;
	for (;;) {
		const void *buf;
		size_t n;
		la_int64_t off;
		int r = archive_read_data_block(a, &buf, &n, &off);

		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK)
			return kn_error_set(err, EINVAL, "read archive entry '%s': %s", e->path,
					    archive_error_string(a));
		if (off < pos)
			return kn_error_set(err, EINVAL, "archive entry '%s' has overlapping data",
					    e->path);
		if (off > pos) {
			hash_zeros(h, off - pos);
			if (lseek(fd, off, SEEK_SET) < 0)
				return kn_error_errno(err, "seek '%s'", e->tmp);
			pos = off;
		}
		store_hash_update(h, buf, n);
		if (kn_write_all(fd, buf, n, err) < 0)
			return -1;
		pos += (int64_t)n;
		store_writeback(fd, &writeback, pos);
	}
	if (total > pos) {
		hash_zeros(h, total - pos);
		pos = total;
	}
	if (ftruncate(fd, pos) < 0)
		return kn_error_errno(err, "truncate '%s'", e->tmp);
	e->size = pos;
	if (fsync(fd) < 0)
		return kn_error_errno(err, "fsync '%s'", e->tmp);
	e->digest = store_hash_final(h);
	return 0;
}

static int read_archive(struct loader *l, int fd, kn_error **err)
{
	_cleanup_(archive_freep) struct archive *a = archive_read_new();
	struct archive_entry *ae;
	int r;

	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	if (archive_read_open_fd(a, fd, IO_CHUNK) != ARCHIVE_OK)
		return kn_error_set(err, EINVAL, "read archive: %s", archive_error_string(a));
	while ((r = archive_read_next_header(a, &ae)) == ARCHIVE_OK) {
		struct entry *e;
		_cleanup_free_ char *path = NULL;
		mode_t type = archive_entry_filetype(ae);

		path = norm_path(NULL, archive_entry_pathname(ae), err);
		if (!path)
			return -1;
		if (type == AE_IFDIR || !*path)
			continue;
		if (l->n >= ARCHIVE_MAX_ENTRIES)
			return kn_error_set(err, E2BIG, "archive has more than %d entries",
					    ARCHIVE_MAX_ENTRIES);
		if (find_entry(l, path, 9))
			return kn_error_set(err, EINVAL, "archive has entry '%s' twice", path);
		KN_GROW(l->e, l->alloc, l->n + 1);
		e = &l->e[l->n++];
		memset(e, 0, sizeof(*e));
		e->path = steal_ptr(&path);
		if (archive_entry_hardlink(ae)) {
			e->link = norm_path(NULL, archive_entry_hardlink(ae), err);
			if (!e->link)
				return -1;
		} else if (type == AE_IFLNK) {
			_cleanup_free_ char *dir = xstrdup(e->path);
			char *slash = strrchr(dir, '/');

			if (slash)
				*slash = 0;
			else
				*dir = 0;
			/* base "" still marks a link target, resolved from the top of the archive. */
			e->link = norm_path(dir, archive_entry_symlink(ae), err);
			if (!e->link)
				return -1;
		} else if (type == AE_IFREG) {
			if (spool(l, a, ae, e, err) < 0)
				return -1;
		} else {
			return kn_error_set(err, EINVAL, "archive entry '%s' is not a regular file",
					    e->path);
		}
	}
	if (r != ARCHIVE_EOF)
		return kn_error_set(err, EINVAL, "read archive: %s", archive_error_string(a));
	if (l->n == 0)
		return kn_error_set(err, EINVAL, "archive is empty or not a tar archive");
	return 0;
}

/* Reads a small (JSON) entry with the size limit and a clear error. */
static int entry_read(const struct entry *e, const char *what, struct kn_buf *b, kn_error **err)
{
	if (e->size > (int64_t)STORE_JSON_MAX)
		return kn_error_set(err, EFBIG, "%s '%s' is too large (%lld bytes, limit %u)", what,
				    e->path, (long long)e->size, STORE_JSON_MAX);
	if (kn_read_file(e->tmp, STORE_JSON_MAX, b, err) < 0)
		return kn_error_wrap(err, "%s '%s'", what, e->path);
	return 0;
}

static json_t *entry_json(struct loader *l, const char *path, const char *what, kn_error **err)
{
	struct entry *e = find_entry(l, path, 0);
	struct kn_buf b = KN_BUF_INIT;
	json_t *j;

	if (!e) {
		kn_error_set(err, ENOENT, "archive has no '%s' (%s)", path, what);
		return NULL;
	}
	if (e->size > (int64_t)STORE_JSON_MAX) {
		kn_error_set(err, EFBIG, "%s is too large (%lld bytes, limit %u)", what,
			     (long long)e->size, STORE_JSON_MAX);
		return NULL;
	}
	if (kn_read_file(e->tmp, STORE_JSON_MAX, &b, err) < 0) {
		kn_buf_release(&b);
		kn_error_wrap(err, "%s '%s'", what, path);
		return NULL;
	}
	j = store_json_parse(b.buf, b.len, what, err);
	kn_buf_release(&b);
	return j;
}

/* Marks a verified entry for the store; nothing is moved before every image was verified. */
static int install(struct loader *l, struct entry *e, kn_error **err)
{
	(void)l;
	(void)err;
	e->wanted = true;
	return 0;
}

static int install_all(struct loader *l, kn_error **err)
{
	for (size_t i = 0; i < l->n; i++) {
		struct entry *e = &l->e[i];

		if (!e->wanted || e->installed || !e->tmp)
			continue;
		if (store_blob_exists(l->s, e->digest))
			continue;
		if (store_blob_install(l->s, e->tmp, e->digest, err) < 0)
			return -1;
		e->installed = true;
	}
	for (size_t i = 0; i < l->blobs.n; i++)
		if (store_blob_put(l->s, l->blobs.v[i], strlen(l->blobs.v[i]), NULL, err) < 0)
			return -1;
	return 0;
}

/* A blob named blobs/<alg>/<hex> in the archive, verified against its name. */
static struct entry *blob_entry(struct loader *l, const char *digest, kn_error **err)
{
	_cleanup_free_ char *p = NULL;
	struct entry *e;

	if (store_digest_check(digest, err) < 0)
		return NULL;
	p = xasprintf("blobs/%.*s/%s", (int)(strchr(digest, ':') - digest), digest,
		      store_digest_hex(digest));
	e = find_entry(l, p, 0);
	if (!e) {
		kn_error_set(err, ENOENT, "archive is missing blob '%s'", digest);
		return NULL;
	}
	if (strcmp(e->digest, digest)) {
		kn_error_set(err, EBADMSG, "digest mismatch for '%s': content hashes to '%s'", p,
			     e->digest);
		return NULL;
	}
	return e;
}

enum comp { COMP_NONE, COMP_GZIP, COMP_ZSTD, COMP_OTHER };

static enum comp sniff(const char *path)
{
	unsigned char m[6] = { 0 };
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || read(fd, m, sizeof(m)) < 4)
		return COMP_NONE;
	if (m[0] == 0x1f && m[1] == 0x8b)
		return COMP_GZIP;
	if (m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd)
		return COMP_ZSTD;
	if ((m[0] == 'B' && m[1] == 'Z' && m[2] == 'h') ||
	    (m[0] == 0xfd && m[1] == '7' && m[2] == 'z' && m[3] == 'X' && m[4] == 'Z'))
		return COMP_OTHER;
	return COMP_NONE;
}

/*
 * Computes the uncompressed digest of a layer file, streaming. With w, also writes the
 * decompressed bytes into that blob writer (used for xz/bzip2 layers, stored uncompressed).
 */
static int layer_diff_id(const char *path, struct store_blob_writer *w, char **ret, kn_error **err)
{
	_cleanup_(archive_freep) struct archive *a = archive_read_new();
	_cleanup_(store_hash_freep) struct store_hash *h = store_hash_new("sha256", NULL);
	_cleanup_free_ char *buf = xmalloc(IO_CHUNK);
	struct archive_entry *ae;

	archive_read_support_filter_all(a);
	archive_read_support_format_raw(a);
	if (archive_read_open_filename(a, path, IO_CHUNK) != ARCHIVE_OK ||
	    archive_read_next_header(a, &ae) != ARCHIVE_OK)
		return kn_error_set(err, EINVAL, "decompress layer: %s", archive_error_string(a));
	for (;;) {
		la_ssize_t n = archive_read_data(a, buf, IO_CHUNK);

		if (n < 0)
			return kn_error_set(err, EINVAL, "decompress layer: %s",
					    archive_error_string(a));
		if (n == 0)
			break;
		store_hash_update(h, buf, (size_t)n);
		if (w && store_blob_writer_write(w, buf, (size_t)n, err) < 0)
			return -1;
	}
	*ret = store_hash_final(h);
	return 0;
}

/*
 * Verifies one layer file against its expected diff_id and stores it. Returns its descriptor
 * (OCI media type by compression).
 */
static int load_layer(struct loader *l, struct entry *e, const char *diff_id, struct store_desc *ret,
		      kn_error **err)
{
	enum comp c = sniff(e->tmp);
	_cleanup_free_ char *got = NULL;

	memset(ret, 0, sizeof(*ret));
	if (c == COMP_NONE) {
		got = xstrdup(e->digest);
	} else if (c == COMP_OTHER) {
		struct store_blob_writer *w = NULL;
		char *d = NULL;
		int64_t size = 0;

		if (store_blob_writer_new(l->s, &w, err) < 0)
			return -1;
		if (layer_diff_id(e->tmp, w, &got, err) < 0) {
			store_blob_writer_abort(w);
			return kn_error_wrap(err, "layer '%s'", e->path);
		}
		if (strcmp(got, diff_id)) {
			store_blob_writer_abort(w);
			return kn_error_set(err, EBADMSG,
					    "layer '%s' does not match the config: diff_id is '%s', config says '%s'",
					    e->path, got, diff_id);
		}
		if (store_blob_writer_commit(w, got, &d, &size, err) < 0)
			return -1;
		ret->media_type = xstrdup(STORE_MT_OCI_LAYER);
		ret->digest = d;
		ret->size = size;
		return 0;
	} else if (layer_diff_id(e->tmp, NULL, &got, err) < 0) {
		return kn_error_wrap(err, "layer '%s'", e->path);
	}
	if (strcmp(got, diff_id))
		return kn_error_set(err, EBADMSG,
				    "layer '%s' does not match the config: diff_id is '%s', config says '%s'",
				    e->path, got, diff_id);
	ret->media_type = xstrdup(c == COMP_GZIP ? STORE_MT_OCI_LAYER_GZIP
				  : c == COMP_ZSTD ? STORE_MT_OCI_LAYER_ZSTD
						   : STORE_MT_OCI_LAYER);
	ret->digest = xstrdup(e->digest);
	ret->size = e->size;
	return 0;
}

static void pending_add(struct loader *l, const char *name, const struct store_desc *d, const char *id)
{
	KN_GROW(l->descs, l->alloc_descs, l->n_descs + 1);
	store_desc_copy(&l->descs[l->n_descs++], d);
	kn_strv_push(&l->pending_names, name ? name : "");
	kn_strv_push(&l->ids, id);
}

static char **config_diff_ids(const char *json, size_t len, kn_error **err)
{
	struct image_config *c = NULL;
	char **ids;

	if (image_config_parse(json, len, &c, err) < 0)
		return NULL;
	ids = steal_ptr(&c->diff_ids);
	image_config_free(c);
	return ids;
}

static int load_docker(struct loader *l, json_t *manifest, kn_error **err)
{
	json_t *m;
	size_t i;

	if (!json_is_array(manifest) || !json_array_size(manifest))
		return kn_error_set(err, EINVAL, "manifest.json is not a non-empty array");
	json_array_foreach(manifest, i, m) {
		json_t *cfgp = json_object_get(m, "Config"), *layers = json_object_get(m, "Layers");
		json_t *tags = json_object_get(m, "RepoTags"), *t;
		_cleanup_free_ char *cfg_path = NULL, *man_json = NULL, *man_digest = NULL;
		struct kn_buf cfg = KN_BUF_INIT;
		struct entry *ce;
		char **diff_ids = NULL;
		struct image_manifest im = { 0 };
		struct store_desc md = { 0 };
		size_t k, man_len;
		const char *base;

		if (!json_is_string(cfgp) || !json_is_array(layers))
			return kn_error_set(err, EINVAL, "manifest.json entry %zu has no Config or Layers", i);
		cfg_path = norm_path(NULL, json_string_value(cfgp), err);
		if (!cfg_path)
			return kn_error_wrap(err, "manifest.json");
		ce = find_entry(l, cfg_path, 0);
		if (!ce)
			return kn_error_set(err, ENOENT, "archive has no config '%s'", cfg_path);
		/* The config's name is its digest in both forms ("<hex>.json", "blobs/sha256/<hex>"). */
		base = strrchr(cfg_path, '/') ? strrchr(cfg_path, '/') + 1 : cfg_path;
		if (strncmp(base, store_digest_hex(ce->digest), 64) ||
		    (base[64] && strcmp(base + 64, ".json")))
			return kn_error_set(err, EBADMSG,
					    "digest mismatch for config '%s': content hashes to '%s'",
					    cfg_path, ce->digest);
		if (entry_read(ce, "config", &cfg, err) < 0) {
			kn_buf_release(&cfg);
			return kn_error_wrap(err, "config '%s'", cfg_path);
		}
		diff_ids = config_diff_ids(cfg.buf, cfg.len, err);
		kn_buf_release(&cfg);
		if (!diff_ids)
			return kn_error_wrap(err, "config '%s'", cfg_path);
		if (kn_strv_len(diff_ids) != json_array_size(layers)) {
			kn_strv_free(diff_ids);
			return kn_error_set(err, EINVAL, "image '%s' has %zu layers but its config lists %zu",
					    cfg_path, json_array_size(layers), kn_strv_len(diff_ids));
		}
		im.media_type = xstrdup(STORE_MT_OCI_MANIFEST);
		im.config.media_type = xstrdup(STORE_MT_OCI_CONFIG);
		im.config.digest = xstrdup(ce->digest);
		im.config.size = ce->size;
		im.layers = xcalloc(json_array_size(layers) + 1, sizeof(*im.layers));
		json_array_foreach(layers, k, t) {
			_cleanup_free_ char *lp = NULL;
			struct entry *le;

			lp = json_is_string(t) ? norm_path(NULL, json_string_value(t), err) : NULL;
			if (!lp) {
				if (!json_is_string(t))
					kn_error_set(err, EINVAL, "manifest.json layer %zu is not a string", k);
				goto fail;
			}
			le = find_entry(l, lp, 0);
			if (!le) {
				kn_error_set(err, ENOENT, "archive has no layer '%s'", lp);
				goto fail;
			}
			if (!strncmp(lp, "blobs/", 6) &&
			    strcmp(strrchr(lp, '/') + 1, store_digest_hex(le->digest))) {
				kn_error_set(err, EBADMSG, "digest mismatch for '%s': content hashes to '%s'",
					     lp, le->digest);
				goto fail;
			}
			if (load_layer(l, le, diff_ids[k], &im.layers[k], err) < 0)
				goto fail;
			im.n_layers++;
			if (!strcmp(im.layers[k].digest, le->digest) && install(l, le, err) < 0)
				goto fail;
		}
		if (install(l, ce, err) < 0)
			goto fail;
		man_json = image_manifest_dump(&im, &man_len);
		man_digest = store_digest_buf(man_json, man_len);
		kn_strv_push(&l->blobs, man_json);
		md.media_type = xstrdup(STORE_MT_OCI_MANIFEST);
		md.digest = xstrdup(man_digest);
		md.size = (int64_t)man_len;
		if (json_array_size(tags)) {
			json_array_foreach(tags, k, t) {
				_cleanup_free_ char *norm = NULL;

				if (!json_is_string(t) ||
				    store_ref_normalize(json_string_value(t), &norm, err) < 0) {
					kn_error_wrap(err, "manifest.json RepoTags");
					goto fail;
				}
				pending_add(l, norm, &md, ce->digest);
			}
		} else {
			pending_add(l, NULL, &md, ce->digest);
		}
		store_desc_release(&md);
		image_manifest_release(&im);
		kn_strv_free(diff_ids);
		continue;
fail:
		store_desc_release(&md);
		image_manifest_release(&im);
		kn_strv_free(diff_ids);
		return -1;
	}
	return 0;
}

/* Copies a manifest (verified) and everything it references from the archive into the store. */
static int load_oci_manifest(struct loader *l, const struct store_desc *d, char **ret_id, kn_error **err)
{
	struct entry *me = blob_entry(l, d->digest, err), *ce;
	struct kn_buf b = KN_BUF_INIT;
	struct image_manifest m = { 0 };
	char **diff_ids = NULL;
	int r = -1;

	if (!me)
		return -1;
	if (entry_read(me, "manifest", &b, err) < 0 ||
	    image_doc_check(b.buf, b.len, d->media_type, err) < 0 ||
	    image_manifest_parse(b.buf, b.len, &m, err) < 0) {
		kn_error_wrap(err, "manifest '%s'", d->digest);
		goto out;
	}
	kn_buf_reset(&b);
	ce = blob_entry(l, m.config.digest, err);
	if (!ce)
		goto out;
	if (entry_read(ce, "config", &b, err) < 0)
		goto out;
	diff_ids = config_diff_ids(b.buf, b.len, err);
	if (!diff_ids)
		goto out;
	if (kn_strv_len(diff_ids) != m.n_layers) {
		kn_error_set(err, EINVAL, "manifest '%s' has %zu layers but its config lists %zu",
			     d->digest, m.n_layers, kn_strv_len(diff_ids));
		goto out;
	}
	for (size_t i = 0; i < m.n_layers; i++) {
		struct entry *le = blob_entry(l, m.layers[i].digest, err);
		struct store_desc ld;

		if (!le)
			goto out;
		if (m.layers[i].size != le->size) {
			kn_error_set(err, EBADMSG, "layer '%s' has size %lld, manifest says %lld",
				     m.layers[i].digest, (long long)le->size, (long long)m.layers[i].size);
			goto out;
		}
		if (load_layer(l, le, diff_ids[i], &ld, err) < 0)
			goto out;
		/* A manifest names its layer blobs: keep them byte for byte. */
		if (strcmp(ld.digest, le->digest)) {
			store_desc_release(&ld);
			kn_error_set(err, ENOTSUP, "layer '%s' uses an unsupported compression",
				     m.layers[i].digest);
			goto out;
		}
		store_desc_release(&ld);
		if (install(l, le, err) < 0)
			goto out;
	}
	if (install(l, ce, err) < 0 || install(l, me, err) < 0)
		goto out;
	*ret_id = xstrdup(m.config.digest);
	r = 0;
out:
	if (r < 0)
		kn_error_wrap(err, "manifest '%s'", d->digest);
	kn_buf_release(&b);
	image_manifest_release(&m);
	kn_strv_free(diff_ids);
	return r;
}

static int load_oci(struct loader *l, json_t *index, kn_error **err)
{
	struct image_index ix = { 0 };
	_cleanup_free_ char *text = NULL;
	size_t len;
	int r = -1;

	text = store_json_dump(index, &len);
	if (image_index_parse(text, len, &ix, err) < 0)
		return kn_error_wrap(err, "index.json");
	if (!ix.n_manifests) {
		image_index_release(&ix);
		return kn_error_set(err, EINVAL, "index.json lists no image");
	}
	for (size_t i = 0; i < ix.n_manifests; i++) {
		const struct store_desc *d = &ix.manifests[i];
		_cleanup_free_ char *id = NULL, *norm = NULL;
		json_t *nm = d->annotations ? json_object_get(d->annotations, "io.containerd.image.name") : NULL;
		json_t *rn = d->annotations ? json_object_get(d->annotations, STORE_ANNOT_REF_NAME) : NULL;
		const char *name = json_is_string(nm) ? json_string_value(nm)
				   : json_is_string(rn) ? json_string_value(rn) : NULL;
		struct store_desc top;

		if (d->media_type && (!strcmp(d->media_type, STORE_MT_OCI_INDEX) ||
				      !strcmp(d->media_type, STORE_MT_DOCKER_LIST))) {
			struct entry *ie = blob_entry(l, d->digest, err);
			struct kn_buf b = KN_BUF_INIT;
			struct image_index sub = { 0 };
			int ci;

			if (!ie)
				goto out;
			if (entry_read(ie, "index", &b, err) < 0 ||
			    image_doc_check(b.buf, b.len, d->media_type, err) < 0 ||
			    image_index_parse(b.buf, b.len, &sub, err) < 0) {
				kn_error_wrap(err, "index '%s'", d->digest);
				kn_buf_release(&b);
				goto out;
			}
			kn_buf_release(&b);
			/* Keep every platform the archive carries. */
			ci = image_index_choose(&sub, NULL, NULL, NULL, NULL);
			if (ci < 0) {
				/* No host platform: keep what is there, the first as "the" image. */
				for (size_t k = 0; ci < 0 && k < sub.n_manifests; k++)
					if (blob_entry(l, sub.manifests[k].digest, NULL))
						ci = (int)k;
				if (ci < 0) {
					kn_error_set(err, ENOENT, "index '%s' has no manifest in the archive",
						     d->digest);
					image_index_release(&sub);
					goto out;
				}
			}
			for (size_t k = 0; ci >= 0 && k < sub.n_manifests; k++) {
				_cleanup_free_ char *sid = NULL;

				if (!blob_entry(l, sub.manifests[k].digest, NULL) && (int)k != ci)
					continue;
				if (load_oci_manifest(l, &sub.manifests[k], &sid, err) < 0) {
					ci = -1;
					break;
				}
				if ((int)k == ci)
					id = steal_ptr(&sid);
			}
			image_index_release(&sub);
			if (ci < 0 || install(l, ie, err) < 0)
				goto out;
		} else if (load_oci_manifest(l, d, &id, err) < 0) {
			goto out;
		}
		if (name && store_ref_normalize(name, &norm, err) < 0) {
			kn_error_wrap(err, "index.json image name");
			goto out;
		}
		store_desc_copy(&top, d);
		if (top.annotations) {
			json_decref(top.annotations);
			top.annotations = NULL;
		}
		pending_add(l, norm, &top, id);
		store_desc_release(&top);
	}
	r = 0;
out:
	image_index_release(&ix);
	return r;
}

int store_archive_load(struct store *s, int fd, store_loaded_fn fn, void *userdata, kn_error **err)
{
	struct loader l = { .s = s };
	json_t *j = NULL;
	int r = -1;

	if (!store_tmpdir(s, err))
		return -1;
	if (read_archive(&l, fd, err) < 0)
		goto out;
	if (find_entry(&l, "manifest.json", 0)) {
		j = entry_json(&l, "manifest.json", "manifest.json", err);
		if (!j || load_docker(&l, j, err) < 0)
			goto out;
	} else if (find_entry(&l, "index.json", 0)) {
		j = entry_json(&l, "index.json", "index.json", err);
		if (!j || load_oci(&l, j, err) < 0)
			goto out;
	} else {
		kn_error_set(err, EINVAL, "archive is neither a docker-archive (no manifest.json) nor an oci-archive (no index.json)");
		goto out;
	}
	/* Everything verified: move the blobs in, then point the names at the images. */
	if (install_all(&l, err) < 0)
		goto out;
	for (size_t i = 0; i < l.n_descs; i++) {
		const char *name = *l.pending_names.v[i] ? l.pending_names.v[i] : NULL;

		if (store_ref_set(s, name, &l.descs[i], err) < 0)
			goto out;
		if (fn)
			fn(name, l.ids.v[i], userdata);
	}
	r = 0;
out:
	if (r < 0)
		kn_error_wrap(err, "load");
	if (j)
		json_decref(j);
	loader_release(&l);
	return r;
}
