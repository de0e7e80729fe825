/* kiln layers: streaming digests (OpenSSL EVP) and digest string checks. */
#include <errno.h>
#include <string.h>

#include <openssl/evp.h>

#include "layers/store-internal.h"

struct store_hash {
	EVP_MD_CTX *ctx;
	const char *alg;
};

static const EVP_MD *md_for(const char *alg, size_t *ret_hexlen)
{
	if (!strcmp(alg, "sha256")) {
		if (ret_hexlen)
			*ret_hexlen = 64;
		return EVP_sha256();
	}
	if (!strcmp(alg, "sha512")) {
		if (ret_hexlen)
			*ret_hexlen = 128;
		return EVP_sha512();
	}
	return NULL;
}

struct store_hash *store_hash_new(const char *algorithm, kn_error **err)
{
	const char *alg = algorithm ? algorithm : "sha256";
	const EVP_MD *md = md_for(alg, NULL);
	struct store_hash *h;

	if (!md) {
		kn_error_set(err, EINVAL, "unsupported digest algorithm '%s'", alg);
		return NULL;
	}
	h = xcalloc(1, sizeof(*h));
	h->alg = !strcmp(alg, "sha256") ? "sha256" : "sha512";
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx || EVP_DigestInit_ex(h->ctx, md, NULL) != 1)
		abort(); /* OpenSSL only fails here on OOM */
	return h;
}

void store_hash_update(struct store_hash *h, const void *data, size_t len)
{
	if (len)
		EVP_DigestUpdate(h->ctx, data, len);
}

char *store_hash_final(struct store_hash *h)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	static const char hex[] = "0123456789abcdef";
	size_t alen = strlen(h->alg);
	char *out;

	EVP_DigestFinal_ex(h->ctx, md, &n);
	out = xmalloc(alen + 1 + 2 * n + 1);
	memcpy(out, h->alg, alen);
	out[alen] = ':';
	for (unsigned int i = 0; i < n; i++) {
		out[alen + 1 + 2 * i] = hex[md[i] >> 4];
		out[alen + 2 + 2 * i] = hex[md[i] & 15];
	}
	out[alen + 1 + 2 * n] = 0;
	return out;
}

void store_hash_free(struct store_hash *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

char *store_digest_buf(const void *data, size_t len)
{
	struct store_hash *h = store_hash_new("sha256", NULL);
	char *d;

	store_hash_update(h, data, len);
	d = store_hash_final(h);
	store_hash_free(h);
	return d;
}

int store_digest_check(const char *s, kn_error **err)
{
	const char *colon;
	size_t hexlen = 0;
	_cleanup_free_ char *alg = NULL;

	if (!s)
		return kn_error_set(err, EINVAL, "missing digest");
	colon = strchr(s, ':');
	if (!colon || colon == s || colon - s > 16)
		return kn_error_set(err, EINVAL, "invalid digest '%.80s'", s);
	alg = xstrndup(s, colon - s);
	if (!md_for(alg, &hexlen))
		return kn_error_set(err, EINVAL, "unsupported digest algorithm in '%.80s'", s);
	if (strlen(colon + 1) != hexlen)
		return kn_error_set(err, EINVAL, "invalid digest '%.80s'", s);
	for (const char *p = colon + 1; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return kn_error_set(err, EINVAL, "invalid digest '%.80s'", s);
	return 0;
}

const char *store_digest_hex(const char *d)
{
	const char *c = strchr(d, ':');

	return c ? c + 1 : d;
}

char *store_chain_id(const char *parent_chain_id, const char *diff_id)
{
	_cleanup_free_ char *s = NULL;

	if (!parent_chain_id)
		return xstrdup(diff_id);
	s = xasprintf("%s %s", parent_chain_id, diff_id);
	return store_digest_buf(s, strlen(s));
}
