/* kiln registry: the HTTP transport shared by pull.c and push.c (internal to registry/). */
#ifndef KILN_REGISTRY_TRANSPORT_INTERNAL_H
#define KILN_REGISTRY_TRANSPORT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/base.h"
#include "registry/registry.h"

/**
 * A client for one repository on one registry. It learns the registry's scheme and auth
 * challenge lazily (GET /v2/ on first use), fetches Bearer tokens for the repository scope
 * (cached per scope set and renewed when expired or refused), or sends Basic credentials, and
 * reuses connections (HTTP/2 where offered) through a shared libcurl connection/DNS/TLS cache.
 *
 * Thread safety: reg_request() may be called from several threads on the same client at once
 * (parallel blob transfers). reg_client_add_scope() must be called before concurrent use.
 */
struct reg_client;

enum reg_access {
	REG_ACCESS_PULL = 1 << 0,
	REG_ACCESS_PUSH = 1 << 1,
};

/**
 * Creates a client for ref's domain and path ("repository:<path>:pull[,push]" per access). No
 * network I/O happens here. opts may be NULL (reg_opts_init() defaults); strings in opts are
 * copied. Credentials: opts->username/password if set, else reg_credentials_lookup(), done once
 * when the registry first asks for auth (a broken config.json or helper then fails the request,
 * as with docker; registries that need no auth never trigger the lookup).
 */
int reg_client_new(const struct reg_ref *ref, const struct reg_opts *opts, unsigned access,
		   struct reg_client **ret, kn_error **err);
void reg_client_free(struct reg_client *c);
DEFINE_FREEP(struct reg_client, reg_client_free)

/**
 * Adds a scope requested with every token, e.g. "repository:team/base:pull" so that a
 * cross-repository mount (POST /v2/<repo>/blobs/uploads/?mount=<digest>&from=team/base) is
 * authorized. Duplicates are ignored. reg_request() adds "repository:<from>:pull" by itself for
 * a POST whose query has mount= and from=, so calling this is only needed for other cases.
 */
void reg_client_add_scope(struct reg_client *c, const char *scope);

/** The repository path on the registry ("library/alpine"); borrowed. */
const char *reg_client_repository(const struct reg_client *c);
/** The API host[:port] ("registry-1.docker.io", "127.0.0.1:5000"); borrowed. */
const char *reg_client_host(const struct reg_client *c);
/**
 * Pings GET /v2/ (if not done yet): decides https vs http and learns the auth challenge, and
 * verifies any credentials by getting a token. Fails with EACCES when the registry refuses them.
 * reg_request() calls it implicitly; it is public for `kiln login`.
 */
int reg_client_ping(struct reg_client *c, kn_error **err);
/** The base URL after a ping ("https://registry-1.docker.io"), NULL before; borrowed. */
const char *reg_client_base_url(const struct reg_client *c);
/**
 * Whether credentials (Basic, a refresh token) may go to url, a token realm: over https always;
 * over plain http only to the registry's own host name when the registry itself is spoken over
 * plain http (so nothing crosses the wire in clear that did not already); never to another host
 * over http, whatever the registry's scheme.
 */
bool reg_client_realm_trusted(const struct reg_client *c, const char *url);

/**
 * A request body. Exactly one source:
 *   - a buffer: data/len (fd < 0 and read NULL);
 *   - a file: fd >= 0, len bytes from fd_offset, read with pread (the fd is borrowed);
 *   - a callback: read() returns bytes written to buf (0 at end, <0 with *err set), len is the
 *     total (or -1 when unknown: chunked). rewind() (may be NULL) restarts it from the
 *     beginning; without it a request needing a second attempt fails instead of retrying.
 * Buffers and files are always rewindable. Use REG_BODY_INIT then set the fields.
 */
struct reg_body {
	const void *data;
	int64_t len;
	int fd;
	off_t fd_offset;
	ssize_t (*read)(void *ctx, void *buf, size_t n, kn_error **err);
	int (*rewind)(void *ctx, kn_error **err);
	void *ctx;
};
#define REG_BODY_INIT { .data = NULL, .len = 0, .fd = -1 }

/**
 * Where a successful (2xx) response body goes; error bodies (>= 400) are kept in the
 * reg_response instead. Either:
 *   - buf: appended to buf, failing with EFBIG past max bytes (max 0 = 16 MiB), or
 *   - write: called with each chunk as it arrives (<0 with *err set aborts the transfer).
 * restart() (may be NULL) tells the sink to discard what it received so far when a retry must
 * start from byte 0 (server ignored Range). With REG_REQ_RESUME, a GET interrupted after n bytes
 * is retried with "Range: bytes=n-" and, on 206, the sink just continues. buf sinks restart
 * automatically. With neither buf nor write, the body is discarded.
 */
struct reg_sink {
	struct kn_buf *buf;
	size_t max;
	int (*write)(void *ctx, const void *data, size_t len, kn_error **err);
	int (*restart)(void *ctx, kn_error **err);
	void *ctx;
};

enum reg_request_flags {
	/* Return any final HTTP status as success (the caller inspects resp->status); default:
	 * a status >= 400 (after auth and retries) fails with the registry's error message. */
	REG_REQ_ANY_STATUS = 1 << 0,
	/* Never retry (non-idempotent requests are never retried anyway: POST, PATCH). */
	REG_REQ_NO_RETRY = 1 << 1,
	/* Resume an interrupted GET with a Range request (see reg_sink). */
	REG_REQ_RESUME = 1 << 2,
	/* Do not follow redirects: return the 3xx with its Location header. */
	REG_REQ_NO_REDIRECT = 1 << 3,
	/* Attach no registry credentials and skip the ping (token requests; any Authorization in
	 * req->headers is still dropped on a redirect to another host). url must be absolute. */
	REG_REQ_NO_AUTH = 1 << 4,
};

/**
 * One request. method: "GET", "HEAD", "PUT", "POST", "PATCH", "DELETE". url: a path starting
 * with "/" relative to the registry base ("/v2/library/alpine/manifests/latest"), or an
 * absolute http(s) URL (e.g. an upload Location; relative Locations are paths and work as is).
 * headers: NULL-terminated "Name: value" strings, or NULL. body/sink may be NULL.
 * Credentials are only sent to the registry's own host:port; redirects are followed by the
 * transport itself (up to 10) and never carry Authorization to another host.
 * Idempotent requests (GET, HEAD, PUT, DELETE) are retried on 5xx (except 501), 429, connection
 * resets, truncated bodies and timeouts with exponential backoff, when the body is rewindable; a
 * Retry-After up to 10 s is waited for, a longer one fails at once (rate limits).
 */
struct reg_request {
	const char *method;
	const char *url;
	const char *const *headers;
	const struct reg_body *body;
	struct reg_sink *sink;
	unsigned flags;
};

/**
 * The final response. headers: "Name: value" lines of the final response (after redirects).
 * url: the final URL (query included, never credentials). error_body: the body when
 * status >= 400 (capped at 64 KiB). content_length: -1 when unknown. received: body bytes
 * delivered to the sink (for a resumed GET, counting from byte 0).
 */
struct reg_response {
	long status;
	struct kn_strv headers;
	char *url;
	struct kn_buf error_body;
	int64_t content_length;
	uint64_t received;
};
/** Case-insensitive header lookup; returns the borrowed value (trimmed) or NULL. */
const char *reg_response_header(const struct reg_response *r, const char *name);
void reg_response_free(struct reg_response *r);
DEFINE_FREEP(struct reg_response, reg_response_free)

/**
 * Sets *err from a failed response: "<what>: <status> <reason>: <CODE>: <message>" using the
 * registry's JSON error body ({"errors":[{"code":..,"message":..}]}) when there is one, with an
 * errno-like code (ENOENT for 404 / *_UNKNOWN, EACCES for 401/403, EIO otherwise). Returns -1.
 */
int reg_response_error(const struct reg_response *r, const char *what, kn_error **err);

/**
 * Performs req. Returns 0 with *ret (owned, may be NULL when the caller does not want it) when
 * a final response arrived (status < 400, or any status with REG_REQ_ANY_STATUS); <0 with *err
 * on transport failure after retries (message names the host and libcurl's reason), on a
 * status >= 400 (see reg_response_error), or when a sink/body callback failed (its error).
 * TLS verification failures say so and mention --tls-verify=false.
 */
int reg_request(struct reg_client *c, const struct reg_request *req, struct reg_response **ret,
		kn_error **err);

/**
 * Convenience: GET url into buf (capped at max bytes, 0 = 16 MiB) with extra headers (e.g.
 * Accept). Fails on status >= 400 with the registry's error. ret may be NULL.
 */
int reg_get_buf(struct reg_client *c, const char *url, const char *const *headers, size_t max,
		struct kn_buf *buf, struct reg_response **ret, kn_error **err);

/* ---- internal to the transport (auth.c, credentials.c, http.c) ---- */

/**
 * For `kiln login`: pings the registry and checks the client's credentials (opts->username /
 * password) the way the registry wants them: a token request with them (Bearer), a GET /v2/ with
 * them (Basic), nothing when the registry needs no auth. Fails with EACCES when refused.
 * *ret_identity_token (may be NULL) receives a refresh token when the token server issued one.
 */
int reg_client_verify_login(struct reg_client *c, char **ret_identity_token, kn_error **err);

/** A parsed WWW-Authenticate challenge (first one offered); fields owned, NULL when absent. */
struct reg_challenge {
	char *scheme; /* "bearer" or "basic", lowercased */
	char *realm;
	char *service;
	char *scope;
	char *error;
};
/* Parses what `docker-credential-NAME get` printed ({"Username", "Secret"}; "<token>" as the
 * user makes Secret an identity token). *ret NULL when it holds no secret. */
int reg_helper_output_parse(const char *name, const char *out, size_t len,
			    struct reg_credentials **ret, kn_error **err);
/* Parses a WWW-Authenticate value; returns -1 when it is not a Basic or Bearer challenge. */
int reg_challenge_parse(const char *header, struct reg_challenge *ret);
void reg_challenge_release(struct reg_challenge *ch);

/**
 * Fetches a Bearer token from ch->realm for service/scopes, with creds (may be NULL:
 * anonymous): identity token -> OAuth2 POST grant_type=refresh_token; user/password -> GET with
 * Basic auth. *ret_token owned; *ret_expires_in in seconds (60 when the server says nothing).
 * A refused login fails with EACCES; the message never contains the secret.
 */
int reg_auth_fetch_token(struct reg_client *c, const struct reg_challenge *ch, char *const *scopes,
			 const struct reg_credentials *creds, char **ret_token, long *ret_expires_in,
			 kn_error **err);

/** Base64 (standard alphabet, padded) helpers. Returned strings owned. */
char *reg_base64_encode(const void *data, size_t len);
/* Decodes into out; fails (-1, EINVAL) on invalid input. */
int reg_base64_decode(const char *s, struct kn_buf *out, kn_error **err);

#endif
