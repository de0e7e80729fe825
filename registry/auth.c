/* kiln registry: WWW-Authenticate challenges and Bearer token requests. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <jansson.h>

#include "registry/transport-internal.h"

#define TOKEN_RESPONSE_MAX (1u << 20)

/* ---- base64 (OpenSSL's EVP codec) ------------------------------------------------------- */

char *reg_base64_encode(const void *data, size_t len)
{
	char *out;

	if (len > INT_MAX / 4 * 3)
		abort(); /* credentials and headers: never near */
	out = xmalloc((len + 2) / 3 * 4 + 1);
	(void)EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	return out;
}

int reg_base64_decode(const char *s, struct kn_buf *out, kn_error **err)
{
	EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
	size_t len = strlen(s);
	int n = 0, tail = 0, rc;

	if (!ctx)
		abort();
	if (len > INT_MAX)
		len = INT_MAX; /* then the decoder sees no padding and fails */
	kn_buf_grow(out, len / 4 * 3 + 3);
	EVP_DecodeInit(ctx);
	/* Skips whitespace and newlines; fails on any other character outside the alphabet or
	 * on data after the padding. */
	rc = EVP_DecodeUpdate(ctx, (unsigned char *)out->buf + out->len, &n,
			      (const unsigned char *)s, (int)len);
	if (rc >= 0)
		rc = EVP_DecodeFinal(ctx, (unsigned char *)out->buf + out->len + n, &tail);
	EVP_ENCODE_CTX_free(ctx);
	if (rc < 0)
		return kn_error_set(err, EINVAL, "invalid base64 data");
	kn_buf_setlen(out, out->len + (size_t)n + (size_t)tail);
	return 0;
}

/* ---- challenges ----------------------------------------------------------------------- */

void reg_challenge_release(struct reg_challenge *ch)
{
	free(ch->scheme);
	free(ch->realm);
	free(ch->service);
	free(ch->scope);
	free(ch->error);
	memset(ch, 0, sizeof(*ch));
}

/*
 * RFC 7235: scheme SP auth-param *( "," auth-param ), auth-param = token "=" ( token /
 * quoted-string ). Only the first challenge is read (registries send one).
 */
int reg_challenge_parse(const char *header, struct reg_challenge *ret)
{
	struct reg_challenge ch = { 0 };
	const char *p = header;
	size_t n;

	while (*p == ' ' || *p == '\t')
		p++;
	n = strcspn(p, " \t,");
	if (n == 0)
		return -1;
	ch.scheme = xstrndup(p, n);
	for (char *q = ch.scheme; *q; q++)
		*q = (char)tolower((unsigned char)*q);
	if (strcmp(ch.scheme, "bearer") && strcmp(ch.scheme, "basic")) {
		reg_challenge_release(&ch);
		return -1;
	}
	p += n;
	for (;;) {
		struct kn_buf val = KN_BUF_INIT;
		_cleanup_free_ char *key = NULL;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		n = strcspn(p, "= \t,");
		if (p[n] != '=') {
			/* Another scheme starts (or junk): stop at the first challenge. */
			break;
		}
		key = xstrndup(p, n);
		p += n + 1;
		if (*p == '"') {
			p++;
			while (*p && *p != '"') {
				if (*p == '\\' && p[1])
					p++;
				kn_buf_addch(&val, *p++);
			}
			if (*p == '"')
				p++;
		} else {
			n = strcspn(p, " \t,");
			kn_buf_add(&val, p, n);
			p += n;
		}
		if (!strcasecmp(key, "realm") && !ch.realm)
			ch.realm = kn_buf_detach(&val);
		else if (!strcasecmp(key, "service") && !ch.service)
			ch.service = kn_buf_detach(&val);
		else if (!strcasecmp(key, "scope") && !ch.scope)
			ch.scope = kn_buf_detach(&val);
		else if (!strcasecmp(key, "error") && !ch.error)
			ch.error = kn_buf_detach(&val);
		kn_buf_release(&val);
	}
	*ret = ch;
	return 0;
}

/* ---- tokens --------------------------------------------------------------------------- */

static void add_query(struct kn_buf *b, const char *key, const char *value)
{
	char *esc = curl_easy_escape(NULL, value, 0);

	if (!esc)
		abort();
	kn_buf_addf(b, "%c%s=%s", strchr(b->buf, '?') ? '&' : '?', key, esc);
	curl_free(esc);
}

static void add_form(struct kn_buf *b, const char *key, const char *value)
{
	char *esc = curl_easy_escape(NULL, value, 0);

	if (!esc)
		abort();
	kn_buf_addf(b, "%s%s=%s", b->len ? "&" : "", key, esc);
	curl_free(esc);
}

static void secret_buf_release(struct kn_buf *b)
{
	if (b->alloc)
		explicit_bzero(b->buf, b->alloc);
	kn_buf_release(b);
}

int reg_auth_fetch_token(struct reg_client *c, const struct reg_challenge *ch, char *const *scopes,
			 const struct reg_credentials *creds, char **ret_token, long *ret_expires_in,
			 kn_error **err)
{
	struct kn_buf url = KN_BUF_INIT;
	struct kn_buf form = KN_BUF_INIT;
	struct kn_buf resp = KN_BUF_INIT;
	_cleanup_free_ char *authz = NULL;
	_cleanup_(reg_response_freep) struct reg_response *r = NULL;
	struct reg_body body = REG_BODY_INIT;
	struct reg_sink sink = { .buf = &resp, .max = TOKEN_RESPONSE_MAX };
	struct reg_request req = { .sink = &sink, .flags = REG_REQ_NO_AUTH | REG_REQ_ANY_STATUS };
	const char *headers[3] = { NULL, NULL, NULL };
	const char *token;
	json_error_t jerr;
	json_t *root = NULL;
	bool oauth = creds && creds->identity_token && *creds->identity_token;
	int ret = -1;

	if (!ch->realm || (strncmp(ch->realm, "https://", 8) && strncmp(ch->realm, "http://", 7)))
		return kn_error_set(err, EPROTO, "registry '%s' sent an invalid token realm", reg_client_host(c));
	if (creds && !reg_client_realm_trusted(c, ch->realm))
		return kn_error_set(err, EACCES,
				    "refusing to send the credentials for '%s' to the token realm '%s' "
				    "over plain http: a realm on another host must be https",
				    reg_client_host(c), ch->realm);
	/* credentials never follow a redirect (a refresh token travels in the POST body) */
	if (creds)
		req.flags |= REG_REQ_NO_REDIRECT;

	kn_buf_adds(&url, ch->realm);
	if (oauth) {
		/* OAuth2 refresh-token grant, as docker does with an identity token. */
		add_form(&form, "grant_type", "refresh_token");
		add_form(&form, "refresh_token", creds->identity_token);
		add_form(&form, "client_id", "kiln");
		if (ch->service)
			add_form(&form, "service", ch->service);
		if (scopes && *scopes) {
			_cleanup_free_ char *joined = NULL;
			struct kn_buf j = KN_BUF_INIT;

			for (char *const *s = scopes; *s; s++)
				kn_buf_addf(&j, "%s%s", s == scopes ? "" : " ", *s);
			joined = kn_buf_detach(&j);
			add_form(&form, "scope", joined);
		}
		body.data = form.buf;
		body.len = (int64_t)form.len;
		req.method = "POST";
		req.body = &body;
		headers[0] = "Content-Type: application/x-www-form-urlencoded";
	} else {
		if (ch->service)
			add_query(&url, "service", ch->service);
		for (char *const *s = scopes; s && *s; s++)
			add_query(&url, "scope", *s);
		if (creds && creds->username && *creds->username) {
			_cleanup_free_ char *pair = xasprintf("%s:%s", creds->username,
							      creds->password ? creds->password : "");
			_cleanup_free_ char *b64 = reg_base64_encode(pair, strlen(pair));

			explicit_bzero(pair, strlen(pair));
			authz = xasprintf("Authorization: Basic %s", b64);
			explicit_bzero(b64, strlen(b64));
			headers[0] = authz;
		}
		req.method = "GET";
	}
	req.url = url.buf;
	req.headers = headers;
	/* POST is not retried by reg_request; a token request is safe to repeat, so allow it. */
	if (reg_request(c, &req, &r, err) < 0) {
		kn_error_wrap(err, "getting a token from '%s'", ch->realm);
		goto out;
	}
	if (r->status == 401 || r->status == 403) {
		if (creds)
			kn_error_set(err, EACCES, "unauthorized: the token server at '%s' refused the credentials",
				     ch->realm);
		else
			kn_error_set(err, EACCES,
				     "unauthorized: the token server at '%s' refused anonymous access (log in with "
				     "'kiln login %s')",
				     ch->realm, reg_client_host(c));
		goto out;
	}
	if (r->status < 200 || r->status >= 300) {
		reg_response_error(r, "token request", err);
		kn_error_wrap(err, "getting a token from '%s'", ch->realm);
		goto out;
	}
	root = json_loadb(resp.buf, resp.len, 0, &jerr);
	if (!root || !json_is_object(root)) {
		kn_error_set(err, EPROTO, "token server '%s' sent an invalid response", ch->realm);
		goto out;
	}
	token = json_string_value(json_object_get(root, "token"));
	if (!token || !*token)
		token = json_string_value(json_object_get(root, "access_token"));
	if (!token || !*token) {
		kn_error_set(err, EPROTO, "token server '%s' sent no token", ch->realm);
		goto out;
	}
	{
		json_t *e = json_object_get(root, "expires_in");
		long exp = json_is_integer(e) ? (long)json_integer_value(e) : 0;

		/* The token spec: when absent or too small, assume 60 seconds. */
		*ret_expires_in = exp >= 1 ? exp : 60;
	}
	*ret_token = xstrdup(token);
	ret = 0;
out:
	if (authz)
		explicit_bzero(authz, strlen(authz));
	if (root)
		json_decref(root);
	secret_buf_release(&form);
	secret_buf_release(&resp);
	kn_buf_release(&url);
	return ret;
}
