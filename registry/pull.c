/* kiln registry: pull an image into the store (manifest negotiation, parallel verified blobs). */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "registry/transfer-internal.h"
#include "registry/transport-internal.h"

void reg_pull_opts_init(struct reg_pull_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->tls_verify = -1;
	o->policy = REG_PULL_ALWAYS;
}

void reg_pull_result_release(struct reg_pull_result *r)
{
	if (!r)
		return;
	free(r->name);
	free(r->digest);
	free(r->manifest_digest);
	free(r->config_digest);
	memset(r, 0, sizeof(*r));
}

/* One blob to fetch. */
struct pull_blob {
	const struct reg_desc *desc;
	bool is_config;
};

struct pull_ctx {
	struct store *store;
	struct reg_client *client;
	struct pull_blob *blobs;
	struct reg_xfer_progress progress;
	bool stop;
};

/* The sink of one blob download: every byte goes through the store's verifying writer. */
struct blob_sink {
	struct store *store;
	struct store_blob_writer *w;
	uint64_t expected_size;
	uint64_t got;
	const bool *stop;
	/* libcurl hands over ~16 KiB at a time: batch them into fewer, larger writes. */
	struct kn_buf pending;
	/* byte progress, reported at most every BLOB_SINK_REPORT bytes */
	const struct reg_xfer_progress *progress;
	const char *digest;
	bool is_config;
	uint64_t reported;
};

#define BLOB_SINK_REPORT (256u << 10)

#define BLOB_SINK_BATCH (1u << 20)

/* The store hands out temp names from a per-handle counter: create writers one at a time. */
static pthread_mutex_t writer_new_lock = PTHREAD_MUTEX_INITIALIZER;

static int writer_new(struct store *s, struct store_blob_writer **ret, kn_error **err)
{
	int r;

	pthread_mutex_lock(&writer_new_lock);
	r = store_blob_writer_new(s, ret, err);
	pthread_mutex_unlock(&writer_new_lock);
	return r;
}

static int blob_sink_flush(struct blob_sink *s, kn_error **err)
{
	int r = 0;

	if (s->pending.len)
		r = store_blob_writer_write(s->w, s->pending.buf, s->pending.len, err);
	kn_buf_reset(&s->pending);
	return r;
}

static int blob_sink_write(void *ctx, const void *data, size_t len, kn_error **err)
{
	struct blob_sink *s = ctx;

	if (__atomic_load_n(s->stop, __ATOMIC_RELAXED))
		return kn_error_set(err, ECANCELED, "cancelled after another transfer failed");
	if (s->got + len > s->expected_size)
		return kn_error_set(err, EBADMSG,
				    "registry sent more than the %llu bytes the manifest declares",
				    (unsigned long long)s->expected_size);
	s->got += len;
	if (s->got - s->reported >= BLOB_SINK_REPORT) {
		s->reported = s->got;
		reg_xfer_emit_progress(s->progress, s->digest, s->is_config,
				       s->expected_size, s->got);
	}
	if (len >= BLOB_SINK_BATCH) {
		if (blob_sink_flush(s, err) < 0)
			return -1;
		return store_blob_writer_write(s->w, data, len, err);
	}
	kn_buf_add(&s->pending, data, len);
	if (s->pending.len >= BLOB_SINK_BATCH)
		return blob_sink_flush(s, err);
	return 0;
}

static int blob_sink_restart(void *ctx, kn_error **err)
{
	struct blob_sink *s = ctx;

	store_blob_writer_abort(s->w);
	s->w = NULL;
	s->got = 0;
	s->reported = 0;
	kn_buf_reset(&s->pending);
	return writer_new(s->store, &s->w, err);
}

/* reg_blob_fetch() that also reports the bytes as they arrive to progress (may be NULL). */
static int blob_fetch(struct reg_client *client, struct store *store, const char *digest,
		      uint64_t size, const bool *stop, const struct reg_xfer_progress *progress,
		      bool is_config, kn_error **err)
{
	static const bool never = false;
	struct blob_sink s = { .store = store, .expected_size = size, .stop = stop ? stop : &never,
			       .pending = KN_BUF_INIT, .progress = progress, .digest = digest,
			       .is_config = is_config };
	struct reg_sink sink = {
		.write = blob_sink_write, .restart = blob_sink_restart, .ctx = &s,
	};
	_cleanup_free_ char *url = NULL;
	struct reg_request req = {
		.method = "GET", .sink = &sink, .flags = REG_REQ_RESUME,
	};
	int r;

	url = xasprintf("/v2/%s/blobs/%s", reg_client_repository(client), digest);
	req.url = url;
	if (writer_new(store, &s.w, err) < 0)
		return -1;
	r = reg_request(client, &req, NULL, err);
	if (r == 0)
		r = blob_sink_flush(&s, err);
	kn_buf_release(&s.pending);
	if (r < 0) {
		store_blob_writer_abort(s.w);
		return kn_error_wrap(err, "cannot fetch blob '%s'", digest);
	}
	if (s.got != size) {
		store_blob_writer_abort(s.w);
		return kn_error_set(err, EBADMSG,
				    "blob '%s' is %llu bytes, the manifest declares %llu",
				    digest, (unsigned long long)s.got, (unsigned long long)size);
	}
	/* commit consumes the writer and refuses bytes that do not hash to the digest. */
	if (store_blob_writer_commit(steal_ptr(&s.w), digest, NULL, NULL, err) < 0)
		return kn_error_wrap(err, "blob '%s' from the registry", digest);
	return 0;
}

int reg_blob_fetch(struct reg_client *client, struct store *store, const char *digest,
		   uint64_t size, const bool *stop, kn_error **err)
{
	return blob_fetch(client, store, digest, size, stop, NULL, false, err);
}

static int pull_one(void *vctx, size_t i, kn_error **err)
{
	struct pull_ctx *c = vctx;
	const struct pull_blob *b = &c->blobs[i];

	reg_xfer_emit(&c->progress, REG_XFER_BLOB_START, b->desc->digest, b->is_config,
		      b->desc->size, NULL);
	if (blob_fetch(c->client, c->store, b->desc->digest, b->desc->size, &c->stop, &c->progress,
		       b->is_config, err) < 0)
		return -1;
	reg_xfer_emit(&c->progress, REG_XFER_BLOB_DONE, b->desc->digest, b->is_config,
		      b->desc->size, NULL);
	return 0;
}

/* GETs a manifest by tag or digest; checks it against the digest when one is expected. */
static int fetch_manifest(struct reg_client *client, const char *reference, const char *expected,
			  const char *display, struct kn_buf *body, char **ret_digest,
			  struct reg_manifest **ret, kn_error **err)
{
	static const char *const hdrs[] = { "Accept: " REG_MANIFEST_ACCEPT, NULL };
	_cleanup_free_ char *url = xasprintf("/v2/%s/manifests/%s", reg_client_repository(client),
					     reference);
	_cleanup_(reg_response_freep) struct reg_response *resp = NULL;
	_cleanup_free_ char *digest = NULL;
	const char *ct, *hd;

	if (reg_get_buf(client, url, hdrs, REG_MANIFEST_MAX, body, &resp, err) < 0)
		return kn_error_wrap(err, "cannot fetch manifest of '%s'", display);
	digest = reg_digest_of(body->buf, body->len);
	if (expected && strcmp(expected, digest))
		return kn_error_set(err, EBADMSG,
				    "manifest of '%s': digest mismatch: asked for '%s', received "
				    "content with digest '%s'",
				    display, expected, digest);
	hd = reg_response_header(resp, "Docker-Content-Digest");
	if (hd && reg_digest_valid(hd) && strcmp(hd, digest))
		return kn_error_set(err, EBADMSG,
				    "manifest of '%s': digest mismatch: registry says '%s', content "
				    "hashes to '%s'",
				    display, hd, digest);
	ct = reg_response_header(resp, "Content-Type");
	if (reg_manifest_parse(body->buf, body->len, ct, ret, err) < 0)
		return kn_error_wrap(err, "manifest of '%s'", display);
	*ret_digest = steal_ptr(&digest);
	return 0;
}

/* Puts the exact bytes of a manifest into the store, checking they land under digest. */
static int store_exact(struct store *s, const struct kn_buf *b, const char *digest, kn_error **err)
{
	_cleanup_free_ char *got = NULL;

	if (store_blob_exists(s, digest))
		return 0;
	if (store_blob_put(s, b->buf, b->len, &got, err) < 0)
		return -1;
	if (strcmp(got, digest))
		return kn_error_set(err, EIO, "stored manifest has digest '%s', expected '%s'", got,
				    digest);
	return 0;
}

static int pull_local(struct store *s, const struct reg_ref *ref, struct reg_pull_result *ret,
		      kn_error **err)
{
	_cleanup_(store_image_freep) struct store_image *img = NULL;

	if (store_image_resolve(s, ref->string, &img, err) < 0)
		return -1;
	ret->name = xstrdup(ref->string);
	ret->digest = xstrdup(img->top.digest);
	ret->manifest_digest = xstrdup(img->manifest_desc.digest);
	ret->config_digest = xstrdup(img->id);
	ret->updated = false;
	return 0;
}

static int check_platform(const struct store *s, const char *config_digest,
			  const struct reg_platform *want, const char *name, kn_error **err)
{
	struct kn_buf b = KN_BUF_INIT;
	struct reg_platform have = { 0 };
	struct reg_manifest idx = { 0 };
	struct reg_desc entry = { 0 };
	json_t *j;
	int r = 0;

	if (store_blob_read(s, config_digest, REG_MANIFEST_MAX, &b, err) < 0)
		return -1;
	j = json_loadb(b.buf, b.len, 0, NULL);
	kn_buf_release(&b);
	if (!json_is_object(j) || !json_is_string(json_object_get(j, "os")) ||
	    !json_is_string(json_object_get(j, "architecture"))) {
		json_decref(j);
		return 0; /* nothing to compare with */
	}
	{
		const char *v = json_string_value(json_object_get(j, "variant"));
		_cleanup_free_ char *spec = xasprintf(
			"%s/%s%s%s", json_string_value(json_object_get(j, "os")),
			json_string_value(json_object_get(j, "architecture")), v && *v ? "/" : "",
			v && *v ? v : "");

		if (reg_platform_parse(spec, &have, NULL) < 0) {
			json_decref(j);
			return 0;
		}
	}
	json_decref(j);
	/* Reuse the index matching rules with a one-entry index. */
	entry.platform = have;
	entry.has_platform = true;
	entry.digest = (char *)config_digest;
	idx.kind = REG_MANIFEST_INDEX;
	idx.entries = &entry;
	idx.n_entries = 1;
	if (!reg_index_select(&idx, want, NULL)) {
		_cleanup_free_ char *w = reg_platform_format(want);
		_cleanup_free_ char *h = reg_platform_format(&have);

		r = kn_error_set(err, ENOENT,
				 "image '%s' was found but does not match the requested platform: "
				 "wanted %s, image is %s",
				 name, w, h);
	}
	reg_platform_release(&have);
	return r;
}

int reg_pull(const char *refstr, const struct reg_pull_opts *opts, struct reg_pull_result *ret,
	     kn_error **err)
{
	_cleanup_(reg_ref_freep) struct reg_ref *ref = NULL;
	_cleanup_(store_freep) struct store *owned_store = NULL;
	_cleanup_(reg_client_freep) struct reg_client *client = NULL;
	_cleanup_(reg_manifest_freep) struct reg_manifest *top = NULL;
	_cleanup_(reg_manifest_freep) struct reg_manifest *platm = NULL;
	_cleanup_free_ char *top_digest = NULL;
	_cleanup_free_ char *man_digest = NULL;
	_cleanup_free_ char *source = NULL;
	_cleanup_free_ struct pull_blob *blobs = NULL;
	struct kn_buf top_body = KN_BUF_INIT, man_body = KN_BUF_INIT;
	struct reg_platform want = { 0 };
	struct store_desc cur = { 0 }, desc = { 0 };
	struct reg_opts ro;
	struct pull_ctx ctx = { 0 };
	struct kn_strv digests = KN_STRV_INIT;
	const struct reg_manifest *m;
	struct store *store;
	size_t n_blobs = 0, n_fetch = 0;
	bool had_cur;
	int r = -1;

	memset(ret, 0, sizeof(*ret));
	if (reg_ref_parse(refstr, &ref, err) < 0)
		return -1;
	store = opts->store;
	if (!store) {
		if (!opts->root)
			return kn_error_set(err, EINVAL, "no store root given");
		if (store_open(opts->root, STORE_WRITE, &owned_store, err) < 0)
			return -1;
		store = owned_store;
	}
	if (opts->policy != REG_PULL_ALWAYS) {
		kn_error *e = NULL;

		if (pull_local(store, ref, ret, &e) == 0)
			return 0;
		if (e->code != ENOENT || opts->policy == REG_PULL_NEVER) {
			kn_error_propagate(err, e);
			return -1;
		}
		kn_error_free(e);
	}
	if (opts->platform) {
		if (reg_platform_parse(opts->platform, &want, err) < 0)
			return -1;
	} else {
		reg_platform_host(&want);
	}

	reg_opts_init(&ro);
	ro.tls_verify = opts->tls_verify;
	if (reg_client_new(ref, &ro, REG_ACCESS_PULL, &client, err) < 0)
		goto out;

	if (fetch_manifest(client, ref->digest ? ref->digest : ref->tag, ref->digest, ref->string,
			   &top_body, &top_digest, &top, err) < 0)
		goto out;
	if (top->kind == REG_MANIFEST_INDEX) {
		const struct reg_desc *d = reg_index_select(top, &want, err);

		if (!d) {
			kn_error_wrap(err, "'%s'", ref->string);
			goto out;
		}
		if (fetch_manifest(client, d->digest, d->digest, ref->string, &man_body, &man_digest,
				   &platm, err) < 0)
			goto out;
		/* the index entry's media type is a third reading of the same document */
		if (image_doc_check(man_body.buf, man_body.len, d->media_type, err) < 0) {
			kn_error_wrap(err, "manifest '%s' of '%s'", d->digest, ref->string);
			goto out;
		}
		if (platm->kind != REG_MANIFEST_IMAGE) {
			r = kn_error_set(err, EBADMSG, "index entry '%s' is not an image manifest",
					 d->digest);
			goto out;
		}
		m = platm;
	} else {
		m = top;
		man_digest = xstrdup(top_digest);
	}

	/* The config first, then the layers, each once (a layer may repeat). */
	blobs = xcalloc(m->n_layers + 1, sizeof(*blobs));
	blobs[n_blobs++] = (struct pull_blob){ .desc = &m->config, .is_config = true };
	for (size_t i = 0; i < m->n_layers; i++) {
		bool dup = false;

		for (size_t k = 0; k < n_blobs; k++)
			dup = dup || !strcmp(blobs[k].desc->digest, m->layers[i].digest);
		if (!dup)
			blobs[n_blobs++] = (struct pull_blob){ .desc = &m->layers[i] };
	}
	ctx.store = store;
	ctx.client = client;
	ctx.progress = (struct reg_xfer_progress){ opts->progress, opts->progress_data };
	reg_xfer_emit(&ctx.progress, REG_XFER_RESOLVED, top_digest, false, top_body.len,
		      ref->string);
	/* Blobs already present are skipped; the rest are moved to the front of the array. */
	for (size_t i = 0; i < n_blobs; i++) {
		kn_strv_push(&digests, blobs[i].desc->digest);
		if (store_blob_exists(store, blobs[i].desc->digest)) {
			reg_xfer_emit(&ctx.progress, REG_XFER_BLOB_EXISTS, blobs[i].desc->digest,
				      blobs[i].is_config, blobs[i].desc->size, NULL);
			continue;
		}
		blobs[n_fetch++] = blobs[i];
	}
	ctx.blobs = blobs;
	/* Create the handle's temp dir before the threads race to do it. */
	if (n_fetch && !store_tmpdir(store, err))
		goto out;
	if (reg_xfer_run(n_fetch, opts->jobs, pull_one, &ctx, &ctx.stop, err) < 0)
		goto out;

	if (top->kind == REG_MANIFEST_INDEX && store_exact(store, &top_body, top_digest, err) < 0)
		goto out;
	if (store_exact(store, top->kind == REG_MANIFEST_INDEX ? &man_body : &top_body, man_digest,
			err) < 0)
		goto out;

	/* A single-platform image asked for with --platform must be that platform (as docker). */
	if (opts->platform && top->kind == REG_MANIFEST_IMAGE &&
	    check_platform(store, m->config.digest, &want, ref->string, err) < 0)
		goto out;

	had_cur = store_ref_get(store, ref->string, &cur, NULL) == 0;
	desc.media_type = xstrdup(m->media_type);
	desc.digest = xstrdup(man_digest);
	desc.size = (int64_t)(top->kind == REG_MANIFEST_INDEX ? man_body.len : top_body.len);
	if (store_ref_set(store, ref->string, &desc, err) < 0)
		goto out;

	/* Remember where the blobs came from, for cross-repository mounts on push. */
	source = xasprintf("%s/%s", ref->domain, ref->path);
	kn_strv_push(&digests, man_digest);
	{
		kn_error *e = NULL;

		/* Only an optimisation for later pushes: a failure here is not the pull's. */
		if (reg_sources_record(store_root(store), source, digests.v, &e) < 0)
			kn_error_free(e);
	}

	ret->name = xstrdup(ref->string);
	ret->digest = xstrdup(top_digest);
	ret->manifest_digest = xstrdup(man_digest);
	ret->config_digest = xstrdup(m->config.digest);
	ret->updated = !had_cur || strcmp(cur.digest, man_digest) != 0;
	r = 0;
out:
	if (r < 0)
		reg_pull_result_release(ret);
	store_desc_release(&cur);
	store_desc_release(&desc);
	kn_strv_release(&digests);
	kn_buf_release(&top_body);
	kn_buf_release(&man_body);
	reg_platform_release(&want);
	return r;
}
