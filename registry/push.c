/* kiln registry: push an image from the store (HEAD, cross-repo mount, monolithic or chunked). */
#include <errno.h>
#include <jansson.h>
#include <string.h>
#include <time.h>

#include "registry/transfer-internal.h"
#include "registry/transport-internal.h"

/* Blobs up to this size go in one PUT; bigger ones in PATCH chunks of REG_PUSH_CHUNK bytes. */
#define REG_PUSH_MONOLITHIC_MAX (32ll << 20)
#define REG_PUSH_CHUNK (32ll << 20)
/* Whole-blob attempts (POST/PATCH are not idempotent, the transport does not retry them). */
#define REG_PUSH_ATTEMPTS 4

void reg_push_opts_init(struct reg_push_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->tls_verify = -1;
}

void reg_push_result_release(struct reg_push_result *r)
{
	if (!r)
		return;
	free(r->dest);
	free(r->tag);
	free(r->digest);
	memset(r, 0, sizeof(*r));
}

struct push_blob {
	const char *digest;
	int64_t size;
	bool is_config;
	char *mount_from; /* repository path on the same registry, or NULL */
};

struct push_ctx {
	const struct store *store;
	struct reg_client *client;
	struct push_blob *blobs;
	struct reg_xfer_progress progress;
	unsigned uploaded, mounted, present;
	bool stop;
};

/* Appends "digest=<d>" to an upload URL that may already carry a query. Owned. */
static char *url_with_digest(const char *location, const char *digest)
{
	return xasprintf("%s%sdigest=%s", location, strchr(location, '?') ? "&" : "?", digest);
}

static int need_location(const struct reg_response *resp, const char *what, char **ret,
			 kn_error **err)
{
	const char *loc = reg_response_header(resp, "Location");

	if (!loc || !*loc)
		return kn_error_set(err, EPROTO, "registry gave no upload Location after %s", what);
	free(*ret);
	*ret = xstrdup(loc);
	return 0;
}

/* Starts an upload session: POST .../blobs/uploads/, returning its Location. */
static int upload_start(struct reg_client *c, char **ret_location, kn_error **err)
{
	_cleanup_free_ char *url = xasprintf("/v2/%s/blobs/uploads/", reg_client_repository(c));
	_cleanup_(reg_response_freep) struct reg_response *resp = NULL;
	static const char *const hdrs[] = { "Content-Length: 0", NULL };
	struct reg_body empty = REG_BODY_INIT;
	struct reg_request req = { .method = "POST", .url = url, .headers = hdrs, .body = &empty };

	if (reg_request(c, &req, &resp, err) < 0)
		return kn_error_wrap(err, "cannot start blob upload");
	if (resp->status != 202)
		return kn_error_set(err, EPROTO, "blob upload start answered %ld, expected 202",
				    resp->status);
	return need_location(resp, "POST", ret_location, err);
}

/*
 * Asks an upload session how much it holds (GET <location>: 204 with "Range: 0-<last>"), for
 * resuming a chunked upload after a failed PATCH. *ret_next is the next offset to send; the
 * session's new Location replaces *location.
 */
static int upload_status(struct reg_client *c, char **location, int64_t *ret_next, kn_error **err)
{
	_cleanup_(reg_response_freep) struct reg_response *resp = NULL;
	struct reg_request req = { .method = "GET", .url = *location, .flags = REG_REQ_ANY_STATUS };
	const char *range;
	long long first, last;
	int n = 0;

	if (reg_request(c, &req, &resp, err) < 0)
		return -1;
	if (resp->status != 204)
		return reg_response_error(resp, "cannot query upload status", err);
	range = reg_response_header(resp, "Range");
	if (!range || sscanf(range, "%lld-%lld%n", &first, &last, &n) != 2 || range[n] ||
	    first != 0 || last < 0)
		return kn_error_set(err, EPROTO, "upload status has no usable Range ('%s')",
				    range ? range : "");
	/* distribution reports an empty session as "0-0" as well: resend from 0 then. */
	*ret_next = last == 0 ? 0 : last + 1;
	if (reg_response_header(resp, "Location"))
		return need_location(resp, "upload status", location, err);
	return 0;
}

/* Errors worth another try: transport failures and 5xx/408/429 (the transport's EIO). */
static bool transient(int code)
{
	return code == EIO || code == ETIMEDOUT || code == ECONNRESET || code == ECONNREFUSED ||
	       code == EAGAIN || code == EPIPE;
}

/* Uploads the blob file (fd) to an open upload session; consumes *location. */
static int upload_blob(struct reg_client *c, int fd, const struct push_blob *b, char **location,
		       const bool *stop, const struct reg_xfer_progress *progress, kn_error **err)
{
	static const char *const octet[] = { "Content-Type: application/octet-stream", NULL };
	_cleanup_(reg_response_freep) struct reg_response *resp = NULL;
	_cleanup_free_ char *put_url = NULL;
	struct reg_body body = REG_BODY_INIT;
	struct reg_request req = { .method = "PUT", .headers = octet, .body = &body };

	body.fd = fd;
	if (b->size > REG_PUSH_MONOLITHIC_MAX) {
		int resumes = 0;

		for (int64_t off = 0; off < b->size;) {
			int64_t n = b->size - off < REG_PUSH_CHUNK ? b->size - off : REG_PUSH_CHUNK;
			_cleanup_free_ char *range = xasprintf("Content-Range: %lld-%lld",
							       (long long)off,
							       (long long)(off + n - 1));
			const char *hdrs[] = { octet[0], range, NULL };
			struct reg_body chunk = REG_BODY_INIT;
			struct reg_request patch = { .method = "PATCH", .url = *location,
						     .headers = hdrs, .body = &chunk };
			kn_error *pe = NULL;

			if (__atomic_load_n(stop, __ATOMIC_RELAXED))
				return kn_error_set(err, ECANCELED,
						    "cancelled after another transfer failed");
			chunk.fd = fd;
			chunk.fd_offset = off;
			chunk.len = n;
			reg_response_free(steal_ptr(&resp));
			if (reg_request(c, &patch, &resp, &pe) < 0) {
				kn_error *e = NULL;
				int64_t next = 0;

				/*
				 * PATCH is not idempotent, so the transport does not retry it: ask
				 * the session what it has and continue from there (a few times).
				 */
				if (!transient(pe->code) || resumes >= 3 ||
				    upload_status(c, location, &next, &e) < 0 || next > off + n) {
					kn_error_free(e);
					kn_error_propagate(err, steal_ptr(&pe));
					return kn_error_wrap(err, "chunk at offset %lld", (long long)off);
				}
				kn_error_free(steal_ptr(&pe));
				resumes++;
				off = next;
				continue;
			}
			if (resp->status != 202)
				return kn_error_set(err, EPROTO,
						    "blob chunk upload answered %ld, expected 202",
						    resp->status);
			if (need_location(resp, "PATCH", location, err) < 0)
				return -1;
			off += n;
			reg_xfer_emit_progress(progress, b->digest, b->is_config, (uint64_t)b->size,
					       (uint64_t)off);
		}
		/* Close the session with an empty PUT carrying the digest. */
		body.fd = -1;
		body.len = 0;
	} else {
		body.len = b->size;
	}
	put_url = url_with_digest(*location, b->digest);
	req.url = put_url;
	reg_response_free(steal_ptr(&resp));
	if (reg_request(c, &req, &resp, err) < 0)
		return -1;
	if (resp->status != 201 && resp->status != 204)
		return kn_error_set(err, EPROTO, "blob upload answered %ld, expected 201",
				    resp->status);
	return 0;
}

/* HEAD: is the blob already in the repository? */
static int blob_present(struct reg_client *c, const struct push_blob *b, bool *ret,
			kn_error **err)
{
	_cleanup_free_ char *url = xasprintf("/v2/%s/blobs/%s", reg_client_repository(c),
					     b->digest);
	_cleanup_(reg_response_freep) struct reg_response *resp = NULL;
	struct reg_request req = { .method = "HEAD", .url = url, .flags = REG_REQ_ANY_STATUS };

	if (reg_request(c, &req, &resp, err) < 0)
		return -1;
	if (resp->status == 200) {
		*ret = true;
		return 0;
	}
	if (resp->status == 404) {
		*ret = false;
		return 0;
	}
	return reg_response_error(resp, "cannot check blob", err);
}

/*
 * Tries a cross-repository mount. 201: done (*ret_mounted). 202: the registry opened an upload
 * session instead (*ret_location). Anything else: not mounted, no session.
 */
static int blob_mount(struct reg_client *c, const struct push_blob *b, bool *ret_mounted,
		      char **ret_location, kn_error **err)
{
	_cleanup_free_ char *url = xasprintf("/v2/%s/blobs/uploads/?mount=%s&from=%s",
					     reg_client_repository(c), b->digest, b->mount_from);
	_cleanup_(reg_response_freep) struct reg_response *resp = NULL;
	static const char *const hdrs[] = { "Content-Length: 0", NULL };
	struct reg_body empty = REG_BODY_INIT;
	struct reg_request req = { .method = "POST", .url = url, .headers = hdrs, .body = &empty,
				   .flags = REG_REQ_ANY_STATUS };

	*ret_mounted = false;
	if (reg_request(c, &req, &resp, err) < 0)
		return -1;
	if (resp->status == 201) {
		*ret_mounted = true;
		return 0;
	}
	if (resp->status == 202)
		return need_location(resp, "mount", ret_location, err);
	return 0;
}

static int push_one_attempt(struct push_ctx *p, struct push_blob *b, int fd, kn_error **err)
{
	_cleanup_free_ char *location = NULL;
	bool present = false, mounted = false;

	if (blob_present(p->client, b, &present, err) < 0)
		return -1;
	if (present) {
		__atomic_add_fetch(&p->present, 1, __ATOMIC_RELAXED);
		reg_xfer_emit(&p->progress, REG_XFER_BLOB_EXISTS, b->digest, b->is_config,
			      b->size, NULL);
		return 0;
	}
	reg_xfer_emit(&p->progress, REG_XFER_BLOB_START, b->digest, b->is_config, b->size, NULL);
	if (b->mount_from) {
		if (blob_mount(p->client, b, &mounted, &location, err) < 0)
			return -1;
		if (mounted) {
			__atomic_add_fetch(&p->mounted, 1, __ATOMIC_RELAXED);
			reg_xfer_emit(&p->progress, REG_XFER_BLOB_MOUNTED, b->digest, b->is_config,
				      b->size, b->mount_from);
			return 0;
		}
	}
	if (!location && upload_start(p->client, &location, err) < 0)
		return -1;
	if (upload_blob(p->client, fd, b, &location, &p->stop, &p->progress, err) < 0)
		return -1;
	__atomic_add_fetch(&p->uploaded, 1, __ATOMIC_RELAXED);
	reg_xfer_emit(&p->progress, REG_XFER_BLOB_DONE, b->digest, b->is_config, b->size, NULL);
	return 0;
}

static int push_one(void *vctx, size_t i, kn_error **err)
{
	struct push_ctx *p = vctx;
	struct push_blob *b = &p->blobs[i];
	_cleanup_close_ int fd = -1;
	int64_t size = 0;
	long delay_ms = 500;

	if (store_blob_open(p->store, b->digest, &fd, &size, err) < 0)
		return kn_error_wrap(err, "blob '%s'", b->digest);
	if (size != b->size)
		return kn_error_set(err, EBADMSG, "blob '%s' is %lld bytes in the store, the "
				    "manifest declares %lld", b->digest, (long long)size,
				    (long long)b->size);
	for (int attempt = 1;; attempt++) {
		kn_error *e = NULL;
		struct timespec ts;

		if (push_one_attempt(p, b, fd, &e) == 0)
			return 0;
		/* Only transport failures and 5xx/408/429 (EIO, timeouts, resets) may pass: a 4xx
		 * (DIGEST_INVALID, BLOB_UPLOAD_INVALID, ...) is the registry's final answer. */
		if (attempt >= REG_PUSH_ATTEMPTS || !transient(e->code) ||
		    __atomic_load_n(&p->stop, __ATOMIC_RELAXED)) {
			kn_error_propagate(err, e);
			return kn_error_wrap(err, "cannot push blob '%s'", b->digest);
		}
		{
			_cleanup_free_ char *msg = kn_error_format(e);

			reg_xfer_emit(&p->progress, REG_XFER_RETRY, b->digest, b->is_config, b->size,
				      msg);
		}
		kn_error_free(e);
		ts.tv_sec = delay_ms / 1000;
		ts.tv_nsec = (delay_ms % 1000) * 1000000L;
		nanosleep(&ts, NULL);
		delay_ms *= 2;
	}
}

/* The manifest bytes to push: as stored, or converted to the other format's media types. */
static int manifest_bytes(const struct store *s, const struct store_image *img,
			  enum reg_push_format fmt, struct kn_buf *out, char **ret_mt,
			  kn_error **err)
{
	const char *target_mt, *config_mt;
	enum image_format ifmt;
	json_t *root, *layers, *l;
	json_error_t jerr;
	char *dumped;
	size_t i;

	if (store_blob_read(s, img->manifest_desc.digest, REG_MANIFEST_MAX, out, err) < 0)
		return -1;
	if (fmt == REG_PUSH_FORMAT_KEEP || (fmt == REG_PUSH_FORMAT_OCI &&
					    !strcmp(img->manifest.media_type, REG_MT_OCI_MANIFEST)) ||
	    (fmt == REG_PUSH_FORMAT_DOCKER &&
	     !strcmp(img->manifest.media_type, REG_MT_DOCKER_MANIFEST))) {
		*ret_mt = xstrdup(img->manifest.media_type);
		return 0;
	}
	if (fmt == REG_PUSH_FORMAT_OCI) {
		target_mt = REG_MT_OCI_MANIFEST;
		config_mt = REG_MT_OCI_CONFIG;
		ifmt = IMAGE_FORMAT_OCI;
	} else {
		target_mt = REG_MT_DOCKER_MANIFEST;
		config_mt = REG_MT_DOCKER_CONFIG;
		ifmt = IMAGE_FORMAT_DOCKER;
	}
	root = json_loadb(out->buf, out->len, 0, &jerr);
	if (!json_is_object(root)) {
		json_decref(root);
		return kn_error_set(err, EBADMSG, "stored manifest '%s' is malformed",
				    img->manifest_desc.digest);
	}
	json_object_set_new(root, "mediaType", json_string(target_mt));
	json_object_set_new(json_object_get(root, "config"), "mediaType", json_string(config_mt));
	layers = json_object_get(root, "layers");
	json_array_foreach (layers, i, l) {
		const char *mt = json_string_value(json_object_get(l, "mediaType"));
		const char *nmt = mt ? image_layer_media_type(mt, ifmt) : NULL;

		if (!nmt) {
			json_decref(root);
			return kn_error_set(err, EINVAL, "layer media type '%s' has no %s equivalent",
					    mt ? mt : "", fmt == REG_PUSH_FORMAT_OCI ? "OCI" : "Docker");
		}
		json_object_set_new(l, "mediaType", json_string(nmt));
	}
	if (fmt == REG_PUSH_FORMAT_DOCKER)
		json_object_del(root, "annotations");
	dumped = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	kn_buf_reset(out);
	kn_buf_adds(out, dumped);
	free(dumped);
	*ret_mt = xstrdup(target_mt);
	return 0;
}

int reg_manifest_put(struct reg_client *c, const char *reference, const char *mt,
		     const struct kn_buf *body, const char *digest, kn_error **err)
{
	_cleanup_free_ char *url = xasprintf("/v2/%s/manifests/%s", reg_client_repository(c),
					     reference);
	_cleanup_free_ char *ct = xasprintf("Content-Type: %s", mt);
	_cleanup_(reg_response_freep) struct reg_response *resp = NULL;
	const char *hdrs[] = { ct, NULL };
	struct reg_body b = REG_BODY_INIT;
	struct reg_request req = { .method = "PUT", .url = url, .headers = hdrs, .body = &b };
	const char *got;

	b.data = body->buf;
	b.len = (int64_t)body->len;
	if (reg_request(c, &req, &resp, err) < 0)
		return kn_error_wrap(err, "cannot push manifest '%s' as '%s'", digest, reference);
	got = reg_response_header(resp, "Docker-Content-Digest");
	if (got && reg_digest_valid(got) && strcmp(got, digest))
		return kn_error_set(err, EBADMSG,
				    "registry stored the manifest as '%s', expected '%s'", got,
				    digest);
	return 0;
}

int reg_blobs_push(struct reg_client *c, const struct store *s, const struct store_desc *blobs,
		   size_t n, unsigned jobs, kn_error **err)
{
	_cleanup_free_ struct push_blob *pb = xcalloc(n ? n : 1, sizeof(*pb));
	struct push_ctx ctx = { 0 };

	for (size_t i = 0; i < n; i++)
		pb[i] = (struct push_blob){ .digest = blobs[i].digest, .size = blobs[i].size };
	ctx.store = s;
	ctx.client = c;
	ctx.blobs = pb;
	if (reg_client_ping(c, err) < 0)
		return -1;
	return reg_xfer_run(n, jobs, push_one, &ctx, &ctx.stop, err);
}

int reg_push(const char *image, const char *dest, const struct reg_push_opts *opts,
	     struct reg_push_result *ret, kn_error **err)
{
	_cleanup_(store_freep) struct store *owned_store = NULL;
	_cleanup_(store_image_freep) struct store_image *img = NULL;
	_cleanup_(reg_ref_freep) struct reg_ref *ref = NULL;
	_cleanup_(reg_client_freep) struct reg_client *client = NULL;
	_cleanup_free_ struct push_blob *blobs = NULL;
	_cleanup_free_ char *mt = NULL;
	_cleanup_free_ char *digest = NULL;
	_cleanup_free_ char *self = NULL;
	struct kn_buf body = KN_BUF_INIT;
	struct kn_strv digests = KN_STRV_INIT;
	struct push_ctx ctx = { 0 };
	struct reg_opts ro;
	struct store *store;
	size_t n = 0;
	int r = -1;

	memset(ret, 0, sizeof(*ret));
	store = opts->store;
	if (!store) {
		if (!opts->root)
			return kn_error_set(err, EINVAL, "no store root given");
		if (store_open(opts->root, 0, &owned_store, err) < 0)
			return -1;
		store = owned_store;
	}
	if (store_image_resolve(store, image, &img, err) < 0)
		return -1;
	if (!dest)
		dest = img->name;
	if (!dest)
		return kn_error_set(err, EINVAL,
				    "image '%s' has no name: give a destination reference", image);
	if (reg_ref_parse(dest, &ref, err) < 0)
		return -1;
	if (manifest_bytes(store, img, opts->format, &body, &mt, err) < 0)
		goto out;
	digest = reg_digest_of(body.buf, body.len);
	if (ref->digest && strcmp(ref->digest, digest)) {
		r = kn_error_set(err, EINVAL,
				 "destination names digest '%s' but the manifest's digest is '%s'",
				 ref->digest, digest);
		goto out;
	}

	reg_opts_init(&ro);
	ro.tls_verify = opts->tls_verify;
	if (reg_client_new(ref, &ro, REG_ACCESS_PULL | REG_ACCESS_PUSH, &client, err) < 0)
		goto out;

	blobs = xcalloc(img->manifest.n_layers + 1, sizeof(*blobs));
	blobs[n++] = (struct push_blob){ .digest = img->manifest.config.digest,
					 .size = img->manifest.config.size, .is_config = true };
	for (size_t i = 0; i < img->manifest.n_layers; i++) {
		bool dup = false;

		for (size_t k = 0; k < n; k++)
			dup = dup || !strcmp(blobs[k].digest, img->manifest.layers[i].digest);
		if (!dup)
			blobs[n++] = (struct push_blob){ .digest = img->manifest.layers[i].digest,
							 .size = img->manifest.layers[i].size };
	}
	/* Mount sources: another repository of the same registry that had the blob. */
	self = xasprintf("%s/%s", ref->domain, ref->path);
	for (size_t i = 0; i < n; i++) {
		char **src = reg_sources_lookup(store_root(store), blobs[i].digest);
		size_t dl = strlen(ref->domain);

		kn_strv_push(&digests, blobs[i].digest);
		for (size_t k = 0; src[k]; k++) {
			if (strncmp(src[k], ref->domain, dl) || src[k][dl] != '/' ||
			    !strcmp(src[k], self))
				continue;
			blobs[i].mount_from = xstrdup(src[k] + dl + 1);
			break;
		}
		kn_strv_free(src);
		if (blobs[i].mount_from) {
			_cleanup_free_ char *scope = xasprintf("repository:%s:pull",
							       blobs[i].mount_from);

			reg_client_add_scope(client, scope);
		}
	}

	ctx.store = store;
	ctx.client = client;
	ctx.blobs = blobs;
	ctx.progress = (struct reg_xfer_progress){ opts->progress, opts->progress_data };
	reg_xfer_emit(&ctx.progress, REG_XFER_RESOLVED, digest, false, body.len, ref->name);
	/* Learn the scheme and the auth challenge once, before the workers all ask at the same time. */
	if (reg_client_ping(client, err) < 0)
		goto out;
	if (reg_xfer_run(n, opts->jobs, push_one, &ctx, &ctx.stop, err) < 0)
		goto out;
	if (reg_manifest_put(client, ref->tag ? ref->tag : digest, mt, &body, digest, err) < 0)
		goto out;
	kn_strv_push(&digests, digest);
	{
		kn_error *e = NULL;

		if (reg_sources_record(store_root(store), self, digests.v, &e) < 0)
			kn_error_free(e);
	}
	ret->dest = xstrdup(ref->string);
	ret->tag = ref->tag ? xstrdup(ref->tag) : NULL;
	ret->digest = steal_ptr(&digest);
	ret->size = body.len;
	ret->blobs_uploaded = ctx.uploaded;
	ret->blobs_mounted = ctx.mounted;
	ret->blobs_present = ctx.present;
	r = 0;
out:
	for (size_t i = 0; i < n; i++)
		free(blobs[i].mount_from);
	kn_strv_release(&digests);
	kn_buf_release(&body);
	return r;
}
