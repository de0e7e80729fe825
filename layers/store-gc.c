/* kiln layers: garbage collection (prune) and consistency checks (fsck) of the store. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layers/store-internal.h"

/* A set of strings (digests, chain IDs): open addressing, so stores of 100k blobs stay fast. */
struct strset {
	char **slot;
	size_t n, cap;
};

static size_t str_hash(const char *x)
{
	size_t h = 1469598103934665603ull;

	for (; *x; x++)
		h = (h ^ (unsigned char)*x) * 1099511628211ull;
	return h;
}

static bool strset_has(const struct strset *s, const char *x)
{
	if (!s->cap)
		return false;
	for (size_t i = str_hash(x) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
		if (!s->slot[i])
			return false;
		if (!strcmp(s->slot[i], x))
			return true;
	}
}

static bool strset_add(struct strset *s, const char *x)
{
	if (strset_has(s, x))
		return false;
	if ((s->n + 1) * 2 > s->cap) {
		struct strset bigger = { xcalloc(s->cap ? s->cap * 2 : 64, sizeof(char *)), 0,
					 s->cap ? s->cap * 2 : 64 };

		for (size_t i = 0; i < s->cap; i++) {
			if (!s->slot[i])
				continue;
			for (size_t k = str_hash(s->slot[i]) & (bigger.cap - 1);; k = (k + 1) & (bigger.cap - 1)) {
				if (!bigger.slot[k]) {
					bigger.slot[k] = s->slot[i];
					break;
				}
			}
			bigger.n++;
		}
		free(s->slot);
		*s = bigger;
	}
	for (size_t i = str_hash(x) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
		if (!s->slot[i]) {
			s->slot[i] = xstrdup(x);
			s->n++;
			return true;
		}
	}
}

static void strset_release(struct strset *s)
{
	for (size_t i = 0; i < s->cap; i++)
		free(s->slot[i]);
	free(s->slot);
	memset(s, 0, sizeof(*s));
}

static bool json_media(const char *mt)
{
	return !mt || strstr(mt, "json");
}

/* Reports a problem through fn (fsck) or ignores it (gc). */
struct walk {
	const struct store *s;
	struct strset blobs, snaps;
	struct strset dangling; /* gc: digests of the index entries not to mark */
	store_problem_fn fn;
	void *ud;
	int problems;
};

static void problem(struct walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct walk *w, const char *fmt, ...)
{
	va_list ap;
	_cleanup_free_ char *msg = NULL;

	w->problems++;
	if (!w->fn)
		return;
	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	w->fn(msg, w->ud);
}

static void mark(struct walk *w, const char *digest, const char *media_type, const char *from, int depth);

static void mark_config(struct walk *w, json_t *j)
{
	json_t *ids = json_object_get(json_object_get(j, "rootfs"), "diff_ids"), *e;
	_cleanup_free_ char *chain = NULL;
	size_t i;

	json_array_foreach(ids, i, e) {
		char *next;

		if (!json_is_string(e) || store_digest_check(json_string_value(e), NULL) < 0)
			return;
		next = store_chain_id(chain, json_string_value(e));
		free(chain);
		chain = next;
		strset_add(&w->snaps, store_digest_hex(chain));
	}
}

static void mark(struct walk *w, const char *digest, const char *media_type, const char *from, int depth)
{
	json_t *j, *e, *arr;
	kn_error *err = NULL;
	size_t i;
	bool cfg;

	if (store_digest_check(digest, NULL) < 0) {
		problem(w, "%s: invalid digest '%.100s'", from, digest);
		return;
	}
	if (!strset_add(&w->blobs, digest))
		return;
	if (!store_blob_exists(w->s, digest)) {
		problem(w, "%s: missing blob %s", from, digest);
		return;
	}
	if (!json_media(media_type) || depth > 4)
		return;
	cfg = media_type && strstr(media_type, "config");
	if (!media_type) {
		/* Unknown type (cache roots): follow only small blobs that look like JSON. */
		_cleanup_free_ char *p = store_blob_path(w->s, digest, NULL);
		_cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
		char c = 0;
		struct stat st;

		if (fd < 0 || fstat(fd, &st) < 0 || st.st_size > STORE_JSON_MAX || read(fd, &c, 1) != 1 || c != '{')
			return;
	}
	j = store_blob_json(w->s, digest, digest, &err);
	if (!j) {
		_cleanup_free_ char *m = kn_error_format(err);

		problem(w, "%s: %s", from, m);
		kn_error_free(err);
		return;
	}
	if (cfg || json_object_get(j, "rootfs")) {
		mark_config(w, j);
	} else if ((arr = json_object_get(j, "manifests")) && json_is_array(arr)) {
		json_array_foreach(arr, i, e) {
			json_t *d = json_object_get(e, "digest");

			if (json_is_string(d))
				mark(w, json_string_value(d), json_string_value(json_object_get(e, "mediaType"))
					 ? json_string_value(json_object_get(e, "mediaType")) : STORE_MT_OCI_MANIFEST,
				     from, depth + 1);
			else
				problem(w, "%s: index %s entry %zu has no digest", from, digest, i);
		}
	} else if (json_object_get(j, "config")) {
		struct image_manifest m;
		_cleanup_free_ char *text = json_dumps(j, JSON_COMPACT);

		if (image_manifest_parse(text, strlen(text), &m, &err) < 0) {
			_cleanup_free_ char *msg = kn_error_format(err);

			problem(w, "%s: manifest %s: %s", from, digest, msg);
			kn_error_free(err);
		} else {
			mark(w, m.config.digest, m.config.media_type ? m.config.media_type : STORE_MT_OCI_CONFIG,
			     from, depth + 1);
			for (size_t k = 0; k < m.n_layers; k++)
				mark(w, m.layers[k].digest, m.layers[k].media_type ? m.layers[k].media_type : "layer",
				     from, depth + 1);
			if (w->fn && store_blob_exists(w->s, m.config.digest)) {
				/* fsck: layers must match the config's diff_ids one to one. */
				json_t *c = store_blob_json(w->s, m.config.digest, "config", NULL);
				json_t *ids = json_object_get(json_object_get(c, "rootfs"), "diff_ids");

				if (c && json_array_size(ids) != m.n_layers)
					problem(w, "%s: manifest %s has %zu layers but its config %zu diff_ids",
						from, digest, m.n_layers, json_array_size(ids));
				json_decref(c);
			}
			image_manifest_release(&m);
		}
	}
	json_decref(j);
}

static void walk_roots(struct walk *w, bool with_cache)
{
	struct store_ref *refs = NULL;
	size_t n = 0;
	kn_error *err = NULL;
	char **keys = NULL;

	if (store_ref_list(w->s, &refs, &n, &err) < 0) {
		_cleanup_free_ char *m = kn_error_format(err);

		problem(w, "index.json: %s", m);
		kn_error_free(err);
	}
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *from = NULL;

		if (!refs[i].name && strset_has(&w->dangling, refs[i].desc.digest))
			continue;
		from = xasprintf("image '%s'", refs[i].name ? refs[i].name : refs[i].desc.digest);
		mark(w, refs[i].desc.digest, refs[i].desc.media_type ? refs[i].desc.media_type : STORE_MT_OCI_MANIFEST,
		     from, 0);
	}
	store_refs_free(refs, n);
	if (!with_cache || store_cache_list(w->s, &keys, NULL) < 0)
		return;
	for (size_t i = 0; keys[i]; i++) {
		_cleanup_free_ char *text = NULL;
		_cleanup_free_ char *from = xasprintf("cache entry '%s'", keys[i]);
		json_t *j, *e;
		size_t k;

		if (store_cache_get(w->s, keys[i], &text, NULL) < 0)
			continue;
		j = store_json_parse(text, strlen(text), from, &err);
		if (!j) {
			_cleanup_free_ char *m = kn_error_format(err);

			problem(w, "%s", m);
			kn_error_free(err);
			continue;
		}
		json_array_foreach(json_object_get(j, "blobs"), k, e)
			if (json_is_string(e))
				mark(w, json_string_value(e), NULL, from, 0);
		json_array_foreach(json_object_get(j, "snapshots"), k, e)
			if (json_is_string(e) && store_digest_check(json_string_value(e), NULL) == 0)
				strset_add(&w->snaps, store_digest_hex(json_string_value(e)));
		json_decref(j);
	}
	kn_strv_free(keys);
}

/* Adds the strings of every cache entry's "images" list (image IDs, hex IDs, names) to out. */
static void cache_images(const struct store *s, struct strset *out)
{
	char **keys = NULL;

	if (store_cache_list(s, &keys, NULL) < 0)
		return;
	for (size_t i = 0; keys[i]; i++) {
		_cleanup_free_ char *text = NULL;
		json_t *j, *e;
		size_t k;

		if (store_cache_get(s, keys[i], &text, NULL) < 0)
			continue;
		j = store_json_parse(text, strlen(text), "cache entry", NULL);
		json_array_foreach(json_object_get(j, "images"), k, e)
			if (json_is_string(e))
				strset_add(out, json_string_value(e));
		json_decref(j);
	}
	kn_strv_free(keys);
}

/*
 * Dangling images: untagged index.json entries of images that have no name and that no cache
 * entry names. Each one goes into w->dangling (so walk_roots does not mark it), is reported
 * through fn and, unless dry, removed from index.json (before any blob goes, so a crash leaves
 * only unreferenced blobs behind).
 */
static int drop_dangling(struct store *s, struct walk *w, bool dry, store_gc_image_fn fn,
			 void *userdata, kn_error **err)
{
	struct strset used = { 0 };
	struct store_ref *refs = NULL;
	size_t n = 0;
	int r = 0;

	if (store_ref_list(s, &refs, &n, err) < 0)
		return -1;
	cache_images(s, &used);
	/* An untagged entry of a tagged image is no dangling image. */
	for (size_t i = 0; i < n; i++)
		if (refs[i].name)
			strset_add(&used, refs[i].desc.digest);
	for (size_t i = 0; i < n && r == 0; i++) {
		_cleanup_(store_image_freep) struct store_image *img = NULL;
		const char *d = refs[i].desc.digest, *id;

		if (refs[i].name || strset_has(&w->dangling, d))
			continue;
		/* An index with no image for this platform has no ID: it goes by its digest. */
		(void)store_image_resolve(s, d, &img, NULL);
		id = img ? img->id : d;
		if (strset_has(&used, id) || strset_has(&used, store_digest_hex(id)) ||
		    strset_has(&used, d))
			continue;
		strset_add(&w->dangling, d);
		if (!dry)
			r = store_ref_delete_untagged(s, d, err);
		if (r == 0 && fn)
			fn(id, userdata);
	}
	strset_release(&used);
	store_refs_free(refs, n);
	return r;
}

static int64_t tree_bytes;
static int sum_cb(const char *p, const struct stat *st, int type, struct FTW *f)
{
	(void)p;
	(void)type;
	(void)f;
	if (S_ISREG(st->st_mode))
		tree_bytes += st->st_size;
	return 0;
}

int store_gc(struct store *s, unsigned flags, int64_t *ret_reclaimed, kn_error **err)
{
	return store_gc_images(s, flags, NULL, NULL, ret_reclaimed, err);
}

int store_gc_images(struct store *s, unsigned flags, store_gc_image_fn fn, void *userdata,
		    int64_t *ret_reclaimed, kn_error **err)
{
	struct walk w = { .s = s };
	_cleanup_free_ char *bdir = kn_path_join(s->root, "blobs");
	_cleanup_free_ char *sdir = kn_path_join(s->root, "snapshots");
	_cleanup_closedir_ DIR *algs = NULL;
	_cleanup_closedir_ DIR *snaps = NULL;
	struct dirent *de;
	int64_t freed = 0;
	bool dry = flags & STORE_GC_DRY_RUN;

	if (!(s->flags & STORE_EXCLUSIVE))
		return kn_error_set(err, EPERM, "garbage collection needs the store locked exclusively");
	if ((flags & STORE_GC_CACHE) && !dry) {
		char **keys = NULL;

		if (store_cache_list(s, &keys, err) < 0)
			return -1;
		for (size_t i = 0; keys[i]; i++) {
			_cleanup_free_ char *p = xasprintf("%s/cache/%s.json", s->root, keys[i]);
			struct stat st;

			if (lstat(p, &st) == 0)
				freed += st.st_size;
			(void)unlink(p);
		}
		kn_strv_free(keys);
	}
	if ((flags & STORE_GC_DANGLING) && drop_dangling(s, &w, dry, fn, userdata, err) < 0)
		goto fail;
	walk_roots(&w, true);
	algs = opendir(bdir);
	while (algs && (de = readdir(algs))) {
		_cleanup_free_ char *adir = NULL;
		_cleanup_closedir_ DIR *d = NULL;
		struct dirent *be;

		if (de->d_name[0] == '.')
			continue;
		adir = kn_path_join(bdir, de->d_name);
		d = opendir(adir);
		while (d && (be = readdir(d))) {
			_cleanup_free_ char *dg = NULL, *p = NULL;
			struct stat st;

			if (be->d_name[0] == '.')
				continue;
			dg = xasprintf("%s:%s", de->d_name, be->d_name);
			if (strset_has(&w.blobs, dg))
				continue;
			p = kn_path_join(adir, be->d_name);
			if (lstat(p, &st) < 0)
				continue;
			if (!dry && unlink(p) < 0) {
				kn_error_errno(err, "remove '%s'", p);
				goto fail;
			}
			freed += st.st_size;
		}
	}
	snaps = opendir(sdir);
	while (snaps && (de = readdir(snaps))) {
		_cleanup_free_ char *p = NULL;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (strset_has(&w.snaps, de->d_name))
			continue;
		p = kn_path_join(sdir, de->d_name);
		tree_bytes = 0;
		(void)nftw(p, sum_cb, 16, FTW_PHYS);
		if (!dry && kn_rm_rf(p, err) < 0)
			goto fail;
		freed += tree_bytes;
	}
	if (!dry) {
		_cleanup_free_ char *adir = kn_path_join(bdir, "sha256");

		(void)kn_fsync_dir(adir, NULL);
	}
	strset_release(&w.blobs);
	strset_release(&w.snaps);
	strset_release(&w.dangling);
	if (ret_reclaimed)
		*ret_reclaimed = freed;
	return 0;
fail:
	strset_release(&w.blobs);
	strset_release(&w.snaps);
	strset_release(&w.dangling);
	return -1;
}

int store_fsck(const struct store *s, store_problem_fn fn, void *userdata, kn_error **err)
{
	struct walk w = { .s = s, .fn = fn, .ud = userdata };
	_cleanup_free_ char *bdir = kn_path_join(s->root, "blobs");
	_cleanup_free_ char *layout = kn_path_join(s->root, "oci-layout");
	_cleanup_closedir_ DIR *algs = NULL;
	struct dirent *de;

	if (!kn_path_exists(s->root))
		return kn_error_set(err, ENOENT, "no store at '%s'", s->root);
	if (kn_path_exists(bdir) && !kn_path_exists(layout))
		problem(&w, "oci-layout is missing");
	algs = opendir(bdir);
	while (algs && (de = readdir(algs))) {
		_cleanup_free_ char *adir = NULL;
		_cleanup_closedir_ DIR *d = NULL;
		struct dirent *be;

		if (de->d_name[0] == '.')
			continue;
		adir = kn_path_join(bdir, de->d_name);
		d = opendir(adir);
		while (d && (be = readdir(d))) {
			_cleanup_free_ char *dg = NULL;
			kn_error *e = NULL;

			if (be->d_name[0] == '.')
				continue;
			dg = xasprintf("%s:%s", de->d_name, be->d_name);
			if (store_digest_check(dg, NULL) < 0) {
				problem(&w, "stray file 'blobs/%s/%s'", de->d_name, be->d_name);
				continue;
			}
			if (store_blob_verify(s, dg, &e) < 0) {
				_cleanup_free_ char *m = kn_error_format(e);

				problem(&w, "%s", m);
				kn_error_free(e);
			}
		}
	}
	walk_roots(&w, true);
	strset_release(&w.blobs);
	strset_release(&w.snaps);
	return w.problems;
}
