/* kiln builder: the build cache shared through a registry, an image config or a directory.
 *
 * The steps' cache keys are the local cache's (cache.c's cache_key is the one definition); an
 * exported entry is what a local entry holds (the image config after the step and its layers),
 * so a hit on an imported entry restores exactly the state a local hit would, and the final
 * image has the same ID. Import is lazy: only manifests and metadata are read up front; a layer
 * is downloaded by rcache_fetch when something needs its bytes (a step running on top of it, a
 * COPY --from, the final image). The format is documented in man/kiln-build-cache.5.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "builder/remote-cache.h"
#include "registry/registry.h"

enum rc_type { RC_REGISTRY, RC_LOCAL, RC_INLINE };

/** One --cache-from or --cache-to, parsed. */
struct rc_spec {
	enum rc_type type;
	char *text;   /* as the user wrote it, for messages */
	char *ref;    /* registry: REPO:TAG */
	char *dir;    /* local: src= / dest= */
	char *tag;    /* local: the index.json ref name ("latest") */
	bool max;     /* mode=max */
	bool ignore_error;
	bool have_compression;
	enum layer_compression compression;
	int level;
};

/** An imported cache: where its blobs are, and the layers it holds. */
struct rc_source {
	struct rc_spec spec;
	struct reg_repo *repo;
	struct store_desc *blobs;
	size_t n_blobs;
};

/** A step's state as built or restored, kept for --cache-to. */
struct rc_record {
	char *key;
	size_t stage;
	char *config;
	struct store_desc *layers;
	size_t n_layers;
};

struct rcache {
	struct rc_spec *to;
	size_t n_to;
	struct rc_source *src;
	size_t n_src;
	json_t *entries; /* key -> {"s": source index, "c": config JSON, "l": [layer digests]} */
	struct rc_source **bases; /* base images resolved without their layers (under mu) */
	size_t n_bases, alloc_bases;
	pthread_mutex_t mu;       /* records */
	pthread_mutex_t fetch_mu; /* one download of a blob at a time */
	struct rc_record *rec;
	size_t n_rec, alloc_rec;
};

/* ---- specs (buildx syntax) ------------------------------------------------------------------ */

static void spec_release(struct rc_spec *s)
{
	free(s->text);
	free(s->ref);
	free(s->dir);
	free(s->tag);
	memset(s, 0, sizeof(*s));
}

static int spec_parse(const char *text, bool to, struct rc_spec *ret, kn_error **err)
{
	const char *flag = to ? "--cache-to" : "--cache-from";
	_cleanup_free_ char *copy = xstrdup(text);
	struct rc_spec s = { 0 };
	char *save = NULL, *type = NULL;
	int r = -1;

	s.text = xstrdup(text);
	/* buildx: a value without '=' is the ref of a registry cache */
	if (!strchr(text, '=')) {
		s.type = RC_REGISTRY;
		s.ref = xstrdup(text);
		goto check;
	}
	for (char *f = strtok_r(copy, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
		char *v = strchr(f, '=');

		if (!v) {
			kn_error_set(err, EINVAL, "invalid %s '%s': field '%s' is not KEY=VALUE", flag, text, f);
			goto out;
		}
		*v++ = 0;
		if (!strcmp(f, "type")) {
			type = v;
		} else if (!strcmp(f, "ref")) {
			free(s.ref);
			s.ref = xstrdup(v);
		} else if ((!strcmp(f, "dest") && to) || (!strcmp(f, "src") && !to)) {
			free(s.dir);
			s.dir = xstrdup(v);
		} else if (!strcmp(f, "tag")) {
			free(s.tag);
			s.tag = xstrdup(v);
		} else if (!strcmp(f, "mode") && to) {
			if (strcmp(v, "min") && strcmp(v, "max")) {
				kn_error_set(err, EINVAL, "invalid %s '%s': mode must be min or max", flag, text);
				goto out;
			}
			s.max = !strcmp(v, "max");
		} else if (!strcmp(f, "compression") && to) {
			if (layer_compression_parse(v, &s.compression, err) < 0) {
				kn_error_wrap(err, "invalid %s '%s'", flag, text);
				goto out;
			}
			s.have_compression = true;
		} else if (!strcmp(f, "compression-level") && to) {
			char *end;

			s.level = (int)strtol(v, &end, 10);
			if (*end || end == v || s.level < 0 || s.level > 22) {
				kn_error_set(err, EINVAL, "invalid %s '%s': bad compression-level", flag, text);
				goto out;
			}
		} else if (!strcmp(f, "ignore-error") && to) {
			s.ignore_error = !strcmp(v, "true");
		} else if ((!strcmp(f, "image-manifest") || !strcmp(f, "oci-mediatypes") ||
			    !strcmp(f, "force-compression")) && to) {
			/* kiln always writes an OCI image manifest with OCI media types */
		} else {
			kn_error_set(err, EINVAL, "invalid %s '%s': unknown field '%s'", flag, text, f);
			goto out;
		}
	}
	if (!type || !strcmp(type, "registry")) {
		s.type = RC_REGISTRY;
	} else if (!strcmp(type, "local")) {
		s.type = RC_LOCAL;
	} else if (!strcmp(type, "inline") && to) {
		s.type = RC_INLINE;
	} else {
		kn_error_set(err, EINVAL, "invalid %s '%s': cache type '%s' is not supported (kiln has %s)", flag,
			     text, type, to ? "registry, inline and local" : "registry and local");
		goto out;
	}
check:
	if (s.type == RC_REGISTRY) {
		struct reg_ref *ref = NULL;

		if (!s.ref) {
			kn_error_set(err, EINVAL, "invalid %s '%s': type=registry needs ref=REPO:TAG", flag, text);
			goto out;
		}
		if (reg_ref_parse(s.ref, &ref, err) < 0) {
			kn_error_wrap(err, "invalid %s '%s'", flag, text);
			goto out;
		}
		reg_ref_free(ref);
	}
	if (s.type == RC_LOCAL && !s.dir) {
		kn_error_set(err, EINVAL, "invalid %s '%s': type=local needs %s=DIR", flag, text, to ? "dest" : "src");
		goto out;
	}
	if (s.type == RC_LOCAL && !s.tag)
		s.tag = xstrdup("latest");
	*ret = s;
	memset(&s, 0, sizeof(s));
	r = 0;
out:
	spec_release(&s);
	return r;
}

int bld_cache_spec_check(const char *spec, bool to, kn_error **err)
{
	struct rc_spec s = { 0 };

	if (spec_parse(spec, to, &s, err) < 0)
		return -1;
	spec_release(&s);
	return 0;
}

/* ---- import ------------------------------------------------------------------------------- */

/* Reads a blob of an OCI layout directory into out, checking its digest. */
static int layout_read(const char *dir, const char *digest, size_t max, struct kn_buf *out, kn_error **err)
{
	_cleanup_free_ char *path = NULL, *got = NULL;

	if (store_digest_check(digest, err) < 0)
		return -1;
	path = xasprintf("%s/blobs/sha256/%s", dir, store_digest_hex(digest));
	if (strncmp(digest, "sha256:", 7))
		return kn_error_set(err, EINVAL, "unsupported digest '%s'", digest);
	if (kn_read_file(path, max, out, err) < 0)
		return -1;
	got = store_digest_buf(out->buf, out->len);
	if (strcmp(got, digest))
		return kn_error_set(err, EBADMSG, "blob '%s' hashes to '%s'", path, got);
	return 0;
}

/* The manifest of a local cache: index.json's entry named tag (or its only entry). */
static int local_manifest(const struct rc_spec *sp, struct kn_buf *body, kn_error **err)
{
	_cleanup_free_ char *path = kn_path_join(sp->dir, "index.json");
	struct kn_buf b = KN_BUF_INIT;
	struct image_index ix = { 0 };
	const struct store_desc *pick = NULL;
	int r = -1;

	if (kn_read_file(path, STORE_JSON_MAX, &b, err) < 0)
		return -1;
	if (image_index_parse(b.buf, b.len, &ix, err) < 0) {
		kn_error_wrap(err, "'%s'", path);
		goto out;
	}
	for (size_t i = 0; i < ix.n_manifests; i++) {
		json_t *name = ix.manifests[i].annotations
				       ? json_object_get(ix.manifests[i].annotations, STORE_ANNOT_REF_NAME)
				       : NULL;

		if (name && !strcmp(json_string_value(name) ? json_string_value(name) : "", sp->tag))
			pick = &ix.manifests[i];
	}
	if (!pick && ix.n_manifests == 1)
		pick = &ix.manifests[0];
	if (!pick) {
		kn_error_set(err, ENOENT, "'%s' has no manifest named '%s'", path, sp->tag);
		goto out;
	}
	r = layout_read(sp->dir, pick->digest, STORE_JSON_MAX, body, err);
out:
	image_index_release(&ix);
	kn_buf_release(&b);
	return r;
}

static const struct store_desc *source_blob(const struct rc_source *src, const char *digest)
{
	for (size_t i = 0; i < src->n_blobs; i++)
		if (!strcmp(src->blobs[i].digest, digest))
			return &src->blobs[i];
	return NULL;
}

/* Checks one entry of a source; NULL when usable, else why not (static text). */
static const char *entry_problem(const struct rc_source *src, json_t *e)
{
	json_t *cfg = json_object_get(e, "config"), *layers = json_object_get(e, "layers"), *l;
	struct image_config *c = NULL;
	const char *why = NULL;
	size_t i;

	if (!json_is_string(cfg) || !json_is_array(layers))
		return "no config or layers";
	if (image_config_parse(json_string_value(cfg), json_string_length(cfg), &c, NULL) < 0)
		return "its image config does not parse";
	if (kn_strv_len(c->diff_ids) != json_array_size(layers))
		why = "its layers do not match the config's diff_ids";
	json_array_foreach (layers, i, l)
		if (!why && (!json_is_string(l) || !source_blob(src, json_string_value(l))))
			why = "it names a layer the cache does not hold";
	image_config_free(c);
	return why;
}

static bool key_valid(const char *k)
{
	size_t n = strlen(k);

	return n >= 1 && n <= 128 && strspn(k, "0123456789abcdef") == n;
}

/* Adds the usable entries of meta ({"entries": [...]}) from source idx; first source wins. */
static void add_entries(struct bld *b, struct rcache *rc, size_t idx, json_t *meta)
{
	const struct rc_source *src = &rc->src[idx];
	json_t *entries = json_object_get(meta, "entries"), *e;
	size_t i, n = 0;

	if (!json_is_array(entries)) {
		bld_warn(b, "cache '%s' has no entries list: not used", src->spec.text);
		return;
	}
	json_array_foreach (entries, i, e) {
		const char *key = json_string_value(json_object_get(e, "key"));
		const char *why;
		json_t *ent;

		if (!key || !key_valid(key)) {
			bld_warn(b, "cache '%s': entry %zu has no valid key: skipped", src->spec.text, i);
			continue;
		}
		why = entry_problem(src, e);
		if (why) {
			bld_warn(b, "cache '%s': entry %s is corrupt (%s): skipped", src->spec.text, key, why);
			continue;
		}
		if (json_object_get(rc->entries, key))
			continue;
		ent = json_pack("{s:I,s:O,s:O}", "s", (json_int_t)idx, "c", json_object_get(e, "config"), "l",
				json_object_get(e, "layers"));
		json_object_set_new(rc->entries, key, ent);
		n++;
	}
	bld_info(b, "importing cache %s: %zu entries", src->spec.text, n);
}

/* Reads one source's manifest and metadata. */
static int source_import(struct bld *b, struct rcache *rc, size_t idx, kn_error **err)
{
	struct rc_source *src = &rc->src[idx];
	struct kn_buf body = KN_BUF_INIT, cfg = KN_BUF_INIT;
	_cleanup_free_ char *digest = NULL;
	struct image_manifest m = { 0 };
	json_t *meta = NULL, *j = NULL;
	int r = -1;

	if (src->spec.type == RC_REGISTRY) {
		if (reg_repo_open(src->spec.ref, b->o->tls_verify, false, &src->repo, err) < 0 ||
		    reg_repo_manifest_get(src->repo, &body, &digest, err) < 0)
			goto out;
	} else if (local_manifest(&src->spec, &body, err) < 0) {
		goto out;
	}
	if (image_manifest_parse(body.buf, body.len, &m, err) < 0)
		goto out;
	if (src->spec.type == RC_REGISTRY)
		r = reg_repo_blob_read(src->repo, m.config.digest, STORE_JSON_MAX, &cfg, err);
	else
		r = layout_read(src->spec.dir, m.config.digest, STORE_JSON_MAX, &cfg, err);
	if (r < 0)
		goto out;
	r = -1;
	j = json_loadb(cfg.buf, cfg.len, 0, NULL);
	if (!json_is_object(j)) {
		kn_error_set(err, EBADMSG, "its metadata is not a JSON object");
		goto out;
	}
	if (m.config.media_type && !strcmp(m.config.media_type, RCACHE_MT_CONFIG))
		meta = j;
	else
		meta = json_object_get(j, RCACHE_INLINE_KEY); /* an image with an inline cache */
	if (!json_is_object(meta)) {
		kn_error_set(err, ENOENT, "it holds no kiln build cache (an image built without --cache-to type=inline?)");
		goto out;
	}
	src->blobs = steal_ptr(&m.layers);
	src->n_blobs = m.n_layers;
	m.n_layers = 0;
	add_entries(b, rc, idx, meta);
	r = 0;
out:
	json_decref(j);
	image_manifest_release(&m);
	kn_buf_release(&body);
	kn_buf_release(&cfg);
	return r;
}

int rcache_open(struct bld *b, kn_error **err)
{
	const struct bld_options *o = b->o;
	struct rcache *rc;
	size_t nf = kn_strv_len(o->cache_from), nt = kn_strv_len(o->cache_to);

	if (!nf && !nt)
		return 0;
	rc = xcalloc(1, sizeof(*rc));
	pthread_mutex_init(&rc->mu, NULL);
	pthread_mutex_init(&rc->fetch_mu, NULL);
	rc->entries = json_object();
	rc->to = xcalloc(nt + 1, sizeof(*rc->to));
	rc->src = xcalloc(nf + 1, sizeof(*rc->src));
	b->rcache = rc;
	for (size_t i = 0; i < nt; i++, rc->n_to++)
		if (spec_parse(o->cache_to[i], true, &rc->to[i], err) < 0)
			return -1;
	for (size_t i = 0; i < nf; i++, rc->n_src++)
		if (spec_parse(o->cache_from[i], false, &rc->src[i].spec, err) < 0)
			return -1;
	if (o->no_cache)
		return 0;
	for (size_t i = 0; i < rc->n_src; i++) {
		kn_error *e = NULL;

		if (source_import(b, rc, i, &e) < 0) {
			_cleanup_free_ char *msg = kn_error_format(e);

			bld_warn(b, "cache '%s' not imported: %s", rc->src[i].spec.text, msg);
			kn_error_free(e);
		}
	}
	return 0;
}

static void source_release(struct rc_source *src)
{
	spec_release(&src->spec);
	reg_repo_free(src->repo);
	for (size_t k = 0; k < src->n_blobs; k++)
		store_desc_release(&src->blobs[k]);
	free(src->blobs);
}

void rcache_free(struct rcache *rc)
{
	if (!rc)
		return;
	for (size_t i = 0; i < rc->n_to; i++)
		spec_release(&rc->to[i]);
	free(rc->to);
	for (size_t i = 0; i < rc->n_src; i++)
		source_release(&rc->src[i]);
	free(rc->src);
	for (size_t i = 0; i < rc->n_bases; i++) {
		source_release(rc->bases[i]);
		free(rc->bases[i]);
	}
	free(rc->bases);
	for (size_t i = 0; i < rc->n_rec; i++) {
		free(rc->rec[i].key);
		free(rc->rec[i].config);
		for (size_t k = 0; k < rc->rec[i].n_layers; k++)
			store_desc_release(&rc->rec[i].layers[k]);
		free(rc->rec[i].layers);
	}
	free(rc->rec);
	json_decref(rc->entries);
	pthread_mutex_destroy(&rc->mu);
	pthread_mutex_destroy(&rc->fetch_mu);
	free(rc);
}

/* ---- lookups and lazy blobs ------------------------------------------------------------------ */

int rcache_lookup(struct bld_state *st, const char *key, kn_error **err)
{
	struct rcache *rc = st->b->rcache;
	json_t *e = rc ? json_object_get(rc->entries, key) : NULL, *l;
	struct image_config *config = NULL;
	_cleanup_free_ struct store_desc *descs = NULL;
	const struct rc_source *src;
	size_t i;

	if (!e)
		return 0;
	src = &rc->src[json_integer_value(json_object_get(e, "s"))];
	if (image_config_parse(json_string_value(json_object_get(e, "c")),
			       json_string_length(json_object_get(e, "c")), &config, err) < 0)
		return -1;
	descs = xcalloc(json_array_size(json_object_get(e, "l")) + 1, sizeof(*descs));
	json_array_foreach (json_object_get(e, "l"), i, l)
		descs[i] = *source_blob(src, json_string_value(l)); /* borrowed: apply copies them */
	return cache_entry_apply(st, config, descs, i, key, err);
}

void rcache_record(struct bld_state *st, const char *key)
{
	struct rcache *rc = st->b->rcache;
	struct rc_record r = { 0 };
	size_t len = 0;

	if (!rc || !rc->n_to)
		return;
	r.key = xstrdup(key);
	r.stage = st->stage->index;
	r.config = image_config_dump(st->config, &len);
	r.layers = xcalloc(st->n_layers + 1, sizeof(*r.layers));
	for (size_t i = 0; i < st->n_layers; i++)
		store_desc_copy(&r.layers[i], &st->layers[i]);
	r.n_layers = st->n_layers;
	pthread_mutex_lock(&rc->mu);
	KN_GROW(rc->rec, rc->alloc_rec, rc->n_rec + 1);
	rc->rec[rc->n_rec++] = r;
	pthread_mutex_unlock(&rc->mu);
}

/* Copies a blob of an OCI layout directory into the store, verified. */
static int local_fetch(const char *dir, struct store *s, const char *digest, kn_error **err)
{
	_cleanup_free_ char *path = xasprintf("%s/blobs/sha256/%s", dir, store_digest_hex(digest));
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *buf = NULL;
	struct store_blob_writer *w = NULL;
	ssize_t n;

	if (fd < 0)
		return kn_error_errno(err, "cannot open '%s'", path);
	if (store_blob_writer_new(s, &w, err) < 0)
		return -1;
	buf = xmalloc(1 << 20);
	while ((n = read(fd, buf, 1 << 20)) > 0)
		if (store_blob_writer_write(w, buf, (size_t)n, err) < 0)
			goto out_abort;
	if (n < 0) {
		kn_error_errno(err, "cannot read '%s'", path);
		goto out_abort;
	}
	return store_blob_writer_commit(w, digest, NULL, NULL, err);
out_abort:
	store_blob_writer_abort(w);
	return -1;
}

/* One blob to download, and where from. */
struct fetch_item {
	const struct rc_source *src;
	const struct store_desc *d;
};

struct fetch_batch {
	struct bld *b;
	struct store *s;
	struct fetch_item *items;
	size_t n, next;
	pthread_mutex_t mu;
	kn_error *error;
};

static int fetch_one(struct bld *b, struct store *s, const struct fetch_item *it, kn_error **err)
{
	int r;

	bld_info(b, "fetching layer %s (%lld bytes) from cache %s", it->d->digest, (long long)it->d->size,
		 it->src->spec.text);
	if (it->src->repo)
		r = reg_repo_blob_fetch(it->src->repo, s, it->d->digest, it->d->size, err);
	else
		r = local_fetch(it->src->spec.dir, s, it->d->digest, err);
	if (r < 0)
		kn_error_wrap(err, "cache '%s'", it->src->spec.text);
	return r;
}

static void *fetch_worker(void *arg)
{
	struct fetch_batch *fb = arg;

	for (;;) {
		kn_error *e = NULL;
		size_t i;

		pthread_mutex_lock(&fb->mu);
		i = fb->error ? fb->n : fb->next++;
		pthread_mutex_unlock(&fb->mu);
		if (i >= fb->n)
			return NULL;
		if (fetch_one(fb->b, fb->s, &fb->items[i], &e) < 0) {
			pthread_mutex_lock(&fb->mu);
			if (!fb->error)
				fb->error = steal_ptr(&e);
			pthread_mutex_unlock(&fb->mu);
			kn_error_free(e);
		}
	}
}

/* Registry blobs come several at a time (as kiln pull fetches them); local ones in turn. */
#define RCACHE_FETCH_JOBS 3

int rcache_fetch(struct bld *b, struct store *s, const struct store_desc *layers, size_t n,
		 kn_error **err)
{
	struct rcache *rc = b->rcache;
	_cleanup_free_ struct fetch_item *items = NULL;
	struct fetch_batch fb = { 0 };
	pthread_t th[RCACHE_FETCH_JOBS];
	size_t n_items = 0, n_th = 0;
	bool all_remote = true;

	if (!rc)
		return 0;
	items = xcalloc(n + 1, sizeof(*items));
	for (size_t i = 0; i < n; i++) {
		const struct rc_source *src = NULL;
		const struct store_desc *d = NULL;
		bool dup = false;

		if (store_blob_exists(s, layers[i].digest))
			continue;
		for (size_t k = 0; k < n_items; k++)
			dup = dup || !strcmp(items[k].d->digest, layers[i].digest);
		if (dup)
			continue;
		for (size_t k = 0; k < rc->n_src && !d; k++) {
			src = &rc->src[k];
			d = source_blob(src, layers[i].digest);
		}
		pthread_mutex_lock(&rc->mu);
		for (size_t k = 0; k < rc->n_bases && !d; k++) {
			src = rc->bases[k];
			d = source_blob(src, layers[i].digest);
		}
		pthread_mutex_unlock(&rc->mu);
		if (!d)
			return kn_error_set(err, ENOENT, "layer '%s' is neither in the store nor in an imported cache",
					    layers[i].digest);
		items[n_items++] = (struct fetch_item){ src, d };
		all_remote = all_remote && src->repo;
	}
	if (!n_items)
		return 0;
	/* The handle's temp dir exists before the downloads race to make it. */
	if (!store_tmpdir(s, err))
		return -1;
	fb.b = b;
	fb.s = s;
	fb.items = items;
	fb.n = n_items;
	pthread_mutex_init(&fb.mu, NULL);
	pthread_mutex_lock(&rc->fetch_mu);
	for (size_t i = 1; all_remote && i < n_items && n_th < RCACHE_FETCH_JOBS - 1; i++)
		if (pthread_create(&th[n_th], NULL, fetch_worker, &fb) == 0)
			n_th++;
	fetch_worker(&fb);
	for (size_t i = 0; i < n_th; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_unlock(&rc->fetch_mu);
	pthread_mutex_destroy(&fb.mu);
	if (fb.error) {
		kn_error_propagate(err, fb.error);
		return -1;
	}
	return 0;
}

int rcache_image(struct bld *b, const char *ref, struct store_image **ret, kn_error **err)
{
	struct rcache *rc = b->rcache;
	_cleanup_(reg_repo_freep) struct reg_repo *repo = NULL;
	_cleanup_(store_image_freep) struct store_image *img = NULL;
	struct kn_buf body = KN_BUF_INIT, cfg = KN_BUF_INIT;
	struct rc_source *src;
	int r = -1;

	if (!rc || !json_object_size(rc->entries))
		return 0;
	img = xcalloc(1, sizeof(*img));
	if (reg_repo_open(ref, b->o->tls_verify, false, &repo, err) < 0 ||
	    reg_repo_manifest_get(repo, &body, &img->manifest_desc.digest, err) < 0 ||
	    image_manifest_parse(body.buf, body.len, &img->manifest, err) < 0 ||
	    reg_repo_blob_read(repo, img->manifest.config.digest, STORE_JSON_MAX, &cfg, err) < 0 ||
	    image_config_parse(cfg.buf, cfg.len, &img->config, err) < 0)
		goto out;
	img->name = xstrdup(reg_repo_name(repo));
	img->manifest_desc.media_type = xstrdup(img->manifest.media_type);
	img->manifest_desc.size = (int64_t)body.len;
	store_desc_copy(&img->top, &img->manifest_desc);
	img->config_len = cfg.len;
	img->config_json = kn_buf_detach(&cfg);
	img->id = xstrdup(img->manifest.config.digest);
	src = xcalloc(1, sizeof(*src));
	src->spec.type = RC_REGISTRY;
	src->spec.text = xstrdup(ref);
	src->repo = steal_ptr(&repo);
	src->blobs = xcalloc(img->manifest.n_layers + 1, sizeof(*src->blobs));
	for (size_t i = 0; i < img->manifest.n_layers; i++)
		store_desc_copy(&src->blobs[i], &img->manifest.layers[i]);
	src->n_blobs = img->manifest.n_layers;
	pthread_mutex_lock(&rc->mu);
	KN_GROW(rc->bases, rc->alloc_bases, rc->n_bases + 1);
	rc->bases[rc->n_bases++] = src;
	pthread_mutex_unlock(&rc->mu);
	bld_info(b, "resolved %s to %s (its layers are fetched when a step needs them)", ref, img->id);
	*ret = steal_ptr(&img);
	r = 1;
out:
	kn_buf_release(&body);
	kn_buf_release(&cfg);
	return r;
}

/* ---- export ------------------------------------------------------------------------------- */

void rcache_strip(struct image_config *c)
{
	if (c->extra)
		json_object_del(c->extra, RCACHE_INLINE_KEY);
}

/* Whether stage idx is the target or one its image is built on (FROM <stage>). */
static bool in_final_image(const struct bld *b, size_t idx)
{
	const struct df_stage *s = &b->plan->stages[b->plan->target];

	for (;;) {
		if (s->index == idx)
			return true;
		if (s->base_kind != DF_BASE_STAGE)
			return false;
		s = &b->plan->stages[s->base_stage];
	}
}

static int rec_cmp(const void *a, const void *b)
{
	return strcmp((*(const struct rc_record *const *)a)->key, (*(const struct rc_record *const *)b)->key);
}

/* The records a cache of this mode holds, one per key, sorted by key (a stable digest). */
static size_t pick_records(struct bld *b, bool max, const struct rc_record ***ret)
{
	struct rcache *rc = b->rcache;
	const struct rc_record **v = xcalloc(rc->n_rec + 1, sizeof(*v));
	size_t n = 0;

	for (size_t i = 0; i < rc->n_rec; i++)
		if (max || in_final_image(b, rc->rec[i].stage))
			v[n++] = &rc->rec[i];
	qsort(v, n, sizeof(*v), rec_cmp);
	if (n) {
		size_t k = 1;

		for (size_t i = 1; i < n; i++)
			if (strcmp(v[i]->key, v[k - 1]->key))
				v[k++] = v[i];
		n = k;
	}
	*ret = v;
	return n;
}

/* The metadata {"entries": [...]} of the records, layer digests mapped through map (may be NULL). */
static json_t *metadata(const struct rc_record *const *v, size_t n, json_t *map)
{
	json_t *entries = json_array();

	for (size_t i = 0; i < n; i++) {
		json_t *layers = json_array();

		for (size_t k = 0; k < v[i]->n_layers; k++) {
			json_t *m = map ? json_object_get(map, v[i]->layers[k].digest) : NULL;

			json_array_append_new(layers, m ? json_copy(m) : json_string(v[i]->layers[k].digest));
		}
		json_array_append_new(entries, json_pack("{s:s,s:s,s:o}", "key", v[i]->key, "config",
							 v[i]->config, "layers", layers));
	}
	return json_pack("{s:o}", "entries", entries);
}

void rcache_inline(struct bld *b, struct image_config *final)
{
	const struct rc_record **v = NULL;
	size_t n;
	bool want = false;

	for (size_t i = 0; b->rcache && i < b->rcache->n_to; i++)
		want = want || b->rcache->to[i].type == RC_INLINE;
	if (!want)
		return;
	n = pick_records(b, false, &v);
	json_object_set_new(final->extra, RCACHE_INLINE_KEY, metadata(v, n, NULL));
	free(v);
}

/* The cache's layers: each record layer once, in order of first use, re-compressed if asked. */
static int export_layers(struct bld *b, const struct rc_spec *to, const struct rc_record *const *v, size_t n,
			 struct store_desc **ret, size_t *ret_n, json_t *map, kn_error **err)
{
	struct store_desc *l = NULL;
	size_t nl = 0, alloc = 0;
	int r = 0;

	for (size_t i = 0; i < n && r == 0; i++) {
		for (size_t k = 0; k < v[i]->n_layers && r == 0; k++) {
			const struct store_desc *d = &v[i]->layers[k];
			bool seen = json_object_get(map, d->digest) != NULL;

			if (seen)
				continue;
			KN_GROW(l, alloc, nl + 1);
			if (to->have_compression && strcmp(d->media_type, layer_media_type(to->compression))) {
				struct layer_write_opts lo = b->lopts;

				lo.compression = to->compression;
				lo.level = to->level;
				r = rcache_fetch(b, b->store, d, 1, err);
				if (r == 0)
					r = layer_recompress(b->store, d, NULL, &lo, &l[nl], err);
				if (r < 0)
					break;
			} else {
				store_desc_copy(&l[nl], d);
			}
			json_object_set_new(map, d->digest, json_string(l[nl].digest));
			nl++;
		}
	}
	*ret = l;
	*ret_n = nl;
	return r;
}

/* Copies a store blob into an OCI layout directory (skipped when there). */
static int layout_put(struct bld *b, const char *dir, const struct store_desc *d, kn_error **err)
{
	_cleanup_free_ char *path = xasprintf("%s/blobs/sha256/%s", dir, store_digest_hex(d->digest));
	_cleanup_free_ char *tmp = NULL;
	_cleanup_close_ int in = -1, out = -1;

	if (kn_path_exists(path))
		return 0;
	if (rcache_fetch(b, b->store, d, 1, err) < 0 || store_blob_open(b->store, d->digest, &in, NULL, err) < 0)
		return -1;
	tmp = xasprintf("%s.tmp-%d", path, (int)getpid());
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0)
		return kn_error_errno(err, "cannot create '%s'", tmp);
	if (copy_fd_data(in, out, d->digest, err) < 0 || fsync(out) < 0 || rename(tmp, path) < 0) {
		int r = kn_error_errno(err, "cannot write '%s'", path);

		(void)unlink(tmp);
		return r;
	}
	return 0;
}

static int export_local(struct bld *b, const struct rc_spec *to, const struct store_desc *layers, size_t nl,
			const struct store_desc *cfg, const struct store_desc *man, kn_error **err)
{
	_cleanup_free_ char *blobs = xasprintf("%s/blobs/sha256", to->dir);
	_cleanup_free_ char *index = kn_path_join(to->dir, "index.json");
	_cleanup_free_ char *layout = kn_path_join(to->dir, "oci-layout");
	_cleanup_free_ char *text = NULL;
	struct kn_buf old = KN_BUF_INIT;
	struct image_index ix = { 0 };
	static const char layout_json[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
	size_t len = 0;
	int r = -1;

	if (kn_mkdir_p(blobs, 0755, err) < 0)
		return -1;
	for (size_t i = 0; i < nl; i++)
		if (layout_put(b, to->dir, &layers[i], err) < 0)
			return -1;
	if (layout_put(b, to->dir, cfg, err) < 0 || layout_put(b, to->dir, man, err) < 0)
		return -1;
	/* index.json: the other names kept, this tag replaced */
	if (kn_path_exists(index)) {
		if (kn_read_file(index, STORE_JSON_MAX, &old, err) < 0 || image_index_parse(old.buf, old.len, &ix, err) < 0) {
			kn_error_wrap(err, "'%s'", index);
			goto out;
		}
	} else {
		ix.media_type = xstrdup(STORE_MT_OCI_INDEX);
	}
	for (size_t i = 0; i < ix.n_manifests;) {
		json_t *name = ix.manifests[i].annotations
				       ? json_object_get(ix.manifests[i].annotations, STORE_ANNOT_REF_NAME)
				       : NULL;

		if (name && json_is_string(name) && !strcmp(json_string_value(name), to->tag)) {
			store_desc_release(&ix.manifests[i]);
			memmove(&ix.manifests[i], &ix.manifests[i + 1], (ix.n_manifests - i - 1) * sizeof(*ix.manifests));
			ix.n_manifests--;
			continue;
		}
		i++;
	}
	ix.manifests = xreallocarray(ix.manifests, ix.n_manifests + 1, sizeof(*ix.manifests));
	store_desc_copy(&ix.manifests[ix.n_manifests], man);
	ix.manifests[ix.n_manifests].annotations = json_pack("{s:s}", STORE_ANNOT_REF_NAME, to->tag);
	ix.n_manifests++;
	text = image_index_dump(&ix, &len);
	if (kn_write_file_atomic(layout, layout_json, sizeof(layout_json) - 1, 0644, err) < 0 ||
	    kn_write_file_atomic(index, text, len, 0644, err) < 0)
		goto out;
	r = 0;
out:
	image_index_release(&ix);
	kn_buf_release(&old);
	return r;
}

static int export_registry(struct bld *b, const struct rc_spec *to, const struct store_desc *layers, size_t nl,
			   const struct store_desc *cfg, const char *man, size_t man_len, kn_error **err)
{
	_cleanup_(reg_repo_freep) struct reg_repo *repo = NULL;
	_cleanup_free_ struct store_desc *push = xcalloc(nl + 2, sizeof(*push));
	size_t np = 0;

	if (reg_repo_open(to->ref, b->o->tls_verify, true, &repo, err) < 0)
		return -1;
	/* A layer only an imported cache has is copied through the store unless the target has it. */
	for (size_t i = 0; i < nl; i++) {
		if (!store_blob_exists(b->store, layers[i].digest)) {
			bool there = false;

			if (reg_repo_blob_exists(repo, layers[i].digest, &there, err) < 0)
				return -1;
			if (there)
				continue;
			if (rcache_fetch(b, b->store, &layers[i], 1, err) < 0)
				return -1;
		}
		push[np++] = layers[i];
	}
	push[np++] = *cfg;
	if (reg_repo_blobs_push(repo, b->store, push, np, err) < 0)
		return -1;
	return reg_repo_manifest_put(repo, man, man_len, STORE_MT_OCI_MANIFEST, err);
}

static int export_one(struct bld *b, const struct rc_spec *to, kn_error **err)
{
	const struct rc_record **v = NULL;
	struct store_desc *layers = NULL;
	struct image_manifest m = { 0 };
	struct store_desc man = { 0 };
	json_t *map = json_object(), *meta = NULL;
	_cleanup_free_ char *cfg_text = NULL, *man_text = NULL, *cfg_digest = NULL;
	size_t n, nl = 0, man_len = 0;
	int r = -1;

	n = pick_records(b, to->max, &v);
	if (export_layers(b, to, v, n, &layers, &nl, map, err) < 0)
		goto out;
	meta = metadata(v, n, map);
	cfg_text = json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS);
	if (store_blob_put(b->store, cfg_text, strlen(cfg_text), &cfg_digest, err) < 0)
		goto out;
	m.media_type = xstrdup(STORE_MT_OCI_MANIFEST);
	m.config.media_type = xstrdup(RCACHE_MT_CONFIG);
	m.config.digest = xstrdup(cfg_digest);
	m.config.size = (int64_t)strlen(cfg_text);
	m.layers = layers;
	m.n_layers = nl;
	layers = NULL;
	man_text = image_manifest_dump(&m, &man_len);
	man.media_type = xstrdup(STORE_MT_OCI_MANIFEST);
	man.digest = store_digest_buf(man_text, man_len);
	man.size = (int64_t)man_len;
	if (to->type == RC_LOCAL) {
		if (store_blob_put(b->store, man_text, man_len, NULL, err) < 0 ||
		    export_local(b, to, m.layers, m.n_layers, &m.config, &man, err) < 0)
			goto out;
	} else if (export_registry(b, to, m.layers, m.n_layers, &m.config, man_text, man_len, err) < 0) {
		goto out;
	}
	bld_info(b, "exported cache %s: %zu entries, %zu layers", to->text, n, m.n_layers);
	r = 0;
out:
	free(v);
	json_decref(map);
	json_decref(meta);
	image_manifest_release(&m);
	store_desc_release(&man);
	return r;
}

int rcache_export(struct bld *b, kn_error **err)
{
	struct rcache *rc = b->rcache;

	for (size_t i = 0; rc && i < rc->n_to; i++) {
		kn_error *e = NULL;

		if (rc->to[i].type == RC_INLINE || export_one(b, &rc->to[i], &e) == 0)
			continue;
		kn_error_wrap(&e, "cache export to '%s' failed", rc->to[i].text);
		if (!rc->to[i].ignore_error) {
			kn_error_propagate(err, e);
			return -1;
		}
		{
			_cleanup_free_ char *msg = kn_error_format(e);

			bld_warn(b, "%s (ignore-error=true)", msg);
		}
		kn_error_free(e);
	}
	return 0;
}
