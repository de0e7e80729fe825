/* kiln registry: manifests and blobs of one repository for artifacts (the build cache), through
 * the same transport, verified fetch and upload code as pull and push. */
#include <errno.h>
#include <string.h>

#include "registry/transfer-internal.h"
#include "registry/transport-internal.h"

struct reg_repo {
	struct reg_ref *ref;
	struct reg_client *client;
};

int reg_repo_open(const char *refstr, int tls_verify, bool push, struct reg_repo **ret,
		  kn_error **err)
{
	_cleanup_(reg_ref_freep) struct reg_ref *ref = NULL;
	struct reg_repo *r;
	struct reg_opts ro;

	if (reg_ref_parse(refstr, &ref, err) < 0)
		return -1;
	reg_opts_init(&ro);
	ro.tls_verify = tls_verify;
	r = xcalloc(1, sizeof(*r));
	if (reg_client_new(ref, &ro, REG_ACCESS_PULL | (push ? REG_ACCESS_PUSH : 0), &r->client,
			   err) < 0) {
		free(r);
		return -1;
	}
	r->ref = steal_ptr(&ref);
	*ret = r;
	return 0;
}

void reg_repo_free(struct reg_repo *r)
{
	if (!r)
		return;
	reg_client_free(r->client);
	reg_ref_free(r->ref);
	free(r);
}

const char *reg_repo_name(const struct reg_repo *r)
{
	return r->ref->string;
}

static int get_manifest(struct reg_repo *r, const char *reference, const char *expected,
			struct kn_buf *body, char **ret_digest, struct reg_manifest **ret,
			kn_error **err)
{
	static const char *const hdrs[] = { "Accept: " REG_MANIFEST_ACCEPT, NULL };
	_cleanup_free_ char *url = xasprintf("/v2/%s/manifests/%s",
					     reg_client_repository(r->client), reference);
	_cleanup_(reg_response_freep) struct reg_response *resp = NULL;
	_cleanup_free_ char *digest = NULL;

	kn_buf_reset(body);
	if (reg_get_buf(r->client, url, hdrs, REG_MANIFEST_MAX, body, &resp, err) < 0)
		return kn_error_wrap(err, "cannot fetch manifest of '%s'", r->ref->string);
	digest = reg_digest_of(body->buf, body->len);
	if (expected && strcmp(expected, digest))
		return kn_error_set(err, EBADMSG,
				    "manifest of '%s': asked for '%s', received content with digest '%s'",
				    r->ref->string, expected, digest);
	if (reg_manifest_parse(body->buf, body->len, reg_response_header(resp, "Content-Type"), ret,
			       err) < 0)
		return kn_error_wrap(err, "manifest of '%s'", r->ref->string);
	*ret_digest = steal_ptr(&digest);
	return 0;
}

int reg_repo_manifest_get(struct reg_repo *r, struct kn_buf *body, char **ret_digest,
			  kn_error **err)
{
	_cleanup_(reg_manifest_freep) struct reg_manifest *top = NULL;
	_cleanup_(reg_manifest_freep) struct reg_manifest *m = NULL;
	_cleanup_free_ char *digest = NULL;
	struct reg_platform host = { 0 };
	const struct reg_desc *d;
	int ret;

	if (get_manifest(r, r->ref->digest ? r->ref->digest : r->ref->tag, r->ref->digest, body,
			 &digest, &top, err) < 0)
		return -1;
	if (top->kind == REG_MANIFEST_IMAGE) {
		*ret_digest = steal_ptr(&digest);
		return 0;
	}
	reg_platform_host(&host);
	d = reg_index_select(top, &host, err);
	reg_platform_release(&host);
	if (!d)
		return kn_error_wrap(err, "'%s'", r->ref->string);
	free(digest);
	digest = NULL;
	ret = get_manifest(r, d->digest, d->digest, body, &digest, &m, err);
	if (ret == 0 && m->kind != REG_MANIFEST_IMAGE)
		return kn_error_set(err, EBADMSG, "index entry '%s' of '%s' is not a manifest",
				    d->digest, r->ref->string);
	if (ret == 0)
		*ret_digest = steal_ptr(&digest);
	return ret;
}

int reg_repo_blob_read(struct reg_repo *r, const char *digest, size_t max, struct kn_buf *out,
		       kn_error **err)
{
	_cleanup_free_ char *url = NULL, *got = NULL;

	if (!reg_digest_valid(digest))
		return kn_error_set(err, EINVAL, "invalid digest '%s'", digest);
	url = xasprintf("/v2/%s/blobs/%s", reg_client_repository(r->client), digest);
	if (reg_get_buf(r->client, url, NULL, max, out, NULL, err) < 0)
		return kn_error_wrap(err, "cannot fetch blob '%s' of '%s'", digest, r->ref->string);
	got = reg_digest_of(out->buf, out->len);
	if (strcmp(got, digest))
		return kn_error_set(err, EBADMSG, "blob '%s' of '%s' hashes to '%s'", digest,
				    r->ref->string, got);
	return 0;
}

int reg_repo_blob_fetch(struct reg_repo *r, struct store *s, const char *digest, int64_t size,
			kn_error **err)
{
	_cleanup_free_ char *source = NULL;
	char *digests[2] = { (char *)digest, NULL };
	kn_error *e = NULL;

	if (!reg_digest_valid(digest) || size < 0)
		return kn_error_set(err, EINVAL, "invalid blob descriptor '%s'", digest);
	if (reg_blob_fetch(r->client, s, digest, (uint64_t)size, NULL, err) < 0)
		return -1;
	/* A later push to another repository of this registry can mount it from here. */
	source = xasprintf("%s/%s", r->ref->domain, r->ref->path);
	if (reg_sources_record(store_root(s), source, digests, &e) < 0)
		kn_error_free(e);
	return 0;
}

int reg_repo_blob_exists(struct reg_repo *r, const char *digest, bool *ret, kn_error **err)
{
	_cleanup_free_ char *url = xasprintf("/v2/%s/blobs/%s", reg_client_repository(r->client),
					     digest);
	_cleanup_(reg_response_freep) struct reg_response *resp = NULL;
	struct reg_request req = { .method = "HEAD", .url = url, .flags = REG_REQ_ANY_STATUS };

	if (reg_request(r->client, &req, &resp, err) < 0)
		return -1;
	if (resp->status == 200 || resp->status == 404) {
		*ret = resp->status == 200;
		return 0;
	}
	return reg_response_error(resp, "cannot check blob", err);
}

int reg_repo_blobs_push(struct reg_repo *r, const struct store *s, const struct store_desc *blobs,
			size_t n, kn_error **err)
{
	if (reg_blobs_push(r->client, s, blobs, n, 0, err) < 0)
		return kn_error_wrap(err, "push to '%s'", r->ref->string);
	return 0;
}

int reg_repo_manifest_put(struct reg_repo *r, const void *data, size_t len,
			  const char *media_type, kn_error **err)
{
	struct kn_buf body = KN_BUF_INIT;
	_cleanup_free_ char *digest = reg_digest_of(data, len);
	int ret;

	kn_buf_add(&body, data, len);
	ret = reg_manifest_put(r->client, r->ref->tag ? r->ref->tag : digest, media_type, &body,
			       digest, err);
	kn_buf_release(&body);
	if (ret < 0)
		return kn_error_wrap(err, "'%s'", r->ref->string);
	return 0;
}
