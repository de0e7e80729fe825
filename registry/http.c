/* kiln registry: the HTTP transport (libcurl): scheme choice, auth, redirects, retries. */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "registry/transport-internal.h"

#define SINK_DEFAULT_MAX (16u << 20)
#define ERROR_BODY_MAX (64u << 10)
#define MAX_REDIRECTS 10
#define MAX_AUTH_RETRIES 2
#define RETRY_DELAY_CAP_MS 10000
#define RETRY_AFTER_MAX_S 10

/* One cached Bearer token: the set of scopes it was asked for, space-joined and sorted. */
struct token_entry {
	char *key;
	char *token;
	time_t expires;
};

enum auth_scheme { AUTH_NONE, AUTH_BASIC, AUTH_BEARER };

struct reg_client {
	struct reg_opts opts; /* strings below are owned copies */
	char *username;
	char *password;
	char *docker_config;
	char *user_agent;

	char *domain;
	char *host; /* API host[:port] */
	char *repo;
	struct kn_strv scopes;
	bool insecure;	/* plain HTTP and unverified TLS allowed for this host */
	bool loopback;	/* plain HTTP allowed when the server does not speak TLS */

	pthread_mutex_t lock;
	bool pinged;
	char *base_url;
	bool tls_noverify; /* the base URL is https without verification */
	enum auth_scheme scheme;
	struct reg_challenge challenge;
	bool creds_loaded;
	struct reg_credentials *creds;
	struct token_entry *tokens;
	size_t ntokens, tokens_alloc;

	struct curl_slist *connect_to; /* KILN_REGISTRY_CONNECT_TO, as curl --connect-to */
	/* certs.d lookups, per host:port: CA bundle (may be empty = system roots), client cert/key */
	struct certs_entry {
		char *hostport;
		struct kn_buf ca;
		char *cert;
		char *key;
	} **certs; /* entries never move: requests keep pointers to them */
	size_t ncerts, certs_alloc;
	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
	pthread_mutex_t pool_lock; /* separate: token requests run with c->lock held */
	CURL **pool;
	size_t npool, pool_alloc;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *userp)
{
	struct reg_client *c = userp;

	(void)h;
	(void)access;
	if (data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_lock(&c->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *userp)
{
	struct reg_client *c = userp;

	(void)h;
	if (data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_unlock(&c->share_locks[data]);
}

static void secret_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* ---- options ---------------------------------------------------------------------------- */

static long env_long(const char *name, long def, long min, long max)
{
	const char *v = getenv(name);
	char *end;
	long n;

	if (!v || !*v)
		return def;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || *end || n < min || n > max)
		return def;
	return n;
}

void reg_opts_init(struct reg_opts *o)
{
	long t = env_long("KILN_REGISTRY_TIMEOUT", 30, 1, 3600);

	memset(o, 0, sizeof(*o));
	o->tls_verify = -1;
	o->connect_timeout_s = t;
	o->low_speed_time_s = t;
	o->low_speed_limit = 1;
	o->retries = (int)env_long("KILN_REGISTRY_RETRIES", 4, 0, 100);
	o->retry_delay_ms = env_long("KILN_REGISTRY_RETRY_DELAY_MS", 500, 0, 60000);
}

/* Is host[:port] in KILN_INSECURE_REGISTRIES (entries host or host:port)? */
static bool host_listed_insecure(const char *hostport)
{
	const char *list = getenv("KILN_INSECURE_REGISTRIES");
	const char *colon = strrchr(hostport, ':');
	size_t hostlen = colon && !strchr(colon, ']') ? (size_t)(colon - hostport) : strlen(hostport);

	if (!list)
		return false;
	for (const char *p = list; *p;) {
		size_t n = strcspn(p, ",");
		const char *e = p;

		while (n > 0 && isspace((unsigned char)*e)) {
			e++;
			n--;
		}
		while (n > 0 && isspace((unsigned char)e[n - 1]))
			n--;
		if (n > 0 && ((n == strlen(hostport) && !strncasecmp(e, hostport, n)) ||
			      (n == hostlen && !memchr(e, ':', n) && !strncasecmp(e, hostport, n))))
			return true;
		p += strcspn(p, ",");
		if (*p == ',')
			p++;
	}
	return false;
}

static bool host_is_loopback(const char *hostport)
{
	size_t n;

	if (!strncmp(hostport, "[::1]", 5))
		return true;
	n = strcspn(hostport, ":");
	if (n == 9 && !strncasecmp(hostport, "localhost", 9))
		return true;
	return n >= 4 && !strncmp(hostport, "127.", 4);
}

/* ---- client lifecycle ----------------------------------------------------------------- */

int reg_client_new(const struct reg_ref *ref, const struct reg_opts *opts, unsigned access,
		   struct reg_client **ret, kn_error **err)
{
	struct reg_client *c;
	struct reg_opts defaults;

	(void)err;
	pthread_once(&curl_once, curl_init_once);
	if (!opts) {
		reg_opts_init(&defaults);
		opts = &defaults;
	}
	c = xcalloc(1, sizeof(*c));
	c->opts = *opts;
	c->username = opts->username ? xstrdup(opts->username) : NULL;
	c->password = opts->password ? xstrdup(opts->password) : NULL;
	c->docker_config = opts->docker_config ? xstrdup(opts->docker_config) : NULL;
	c->user_agent = xstrdup(opts->user_agent ? opts->user_agent : "kiln/" KILN_VERSION);
	c->opts.username = c->username;
	c->opts.password = c->password;
	c->opts.docker_config = c->docker_config;
	c->opts.user_agent = c->user_agent;
	c->domain = xstrdup(ref->domain);
	c->host = xstrdup(reg_domain_api_host(ref->domain));
	c->repo = xstrdup(ref->path);
	c->insecure = opts->tls_verify == 0 || host_listed_insecure(c->host) ||
		      host_listed_insecure(c->domain);
	if (opts->tls_verify == 1)
		c->insecure = false;
	c->loopback = opts->tls_verify != 1 && host_is_loopback(c->host);
	kn_strv_pushf(&c->scopes, "repository:%s:%s", c->repo,
		      (access & REG_ACCESS_PUSH) ? "pull,push" : "pull");
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->pool_lock, NULL);
	{
		const char *ct = getenv("KILN_REGISTRY_CONNECT_TO");

		for (const char *p = ct; p && *p;) {
			size_t n = strcspn(p, ",");
			char *one = xstrndup(p, n);

			if (*one)
				c->connect_to = curl_slist_append(c->connect_to, one);
			free(one);
			p += n;
			if (*p == ',')
				p++;
		}
	}
	for (size_t i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&c->share_locks[i], NULL);
	c->share = curl_share_init();
	if (c->share) {
		curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock);
		curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
		curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
		curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
		curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
		curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	}
	*ret = c;
	return 0;
}

void reg_client_free(struct reg_client *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->npool; i++)
		curl_easy_cleanup(c->pool[i]);
	free(c->pool);
	curl_slist_free_all(c->connect_to);
	for (size_t i = 0; i < c->ncerts; i++) {
		free(c->certs[i]->hostport);
		kn_buf_release(&c->certs[i]->ca);
		free(c->certs[i]->cert);
		free(c->certs[i]->key);
		free(c->certs[i]);
	}
	free(c->certs);
	if (c->share)
		curl_share_cleanup(c->share);
	for (size_t i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&c->share_locks[i]);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->pool_lock);
	for (size_t i = 0; i < c->ntokens; i++) {
		free(c->tokens[i].key);
		secret_free(c->tokens[i].token);
	}
	free(c->tokens);
	reg_credentials_free(c->creds);
	reg_challenge_release(&c->challenge);
	free(c->base_url);
	kn_strv_release(&c->scopes);
	free(c->domain);
	free(c->host);
	free(c->repo);
	secret_free(c->username);
	secret_free(c->password);
	free(c->docker_config);
	free(c->user_agent);
	free(c);
}

void reg_client_add_scope(struct reg_client *c, const char *scope)
{
	pthread_mutex_lock(&c->lock);
	if (!kn_strv_contains(&c->scopes, scope))
		kn_strv_push(&c->scopes, scope);
	pthread_mutex_unlock(&c->lock);
}

const char *reg_client_repository(const struct reg_client *c)
{
	return c->repo;
}

const char *reg_client_host(const struct reg_client *c)
{
	return c->host;
}

const char *reg_client_base_url(const struct reg_client *c)
{
	return c->base_url;
}

/* The host name of an absolute URL, lowercased, without port; NULL when invalid. */
static char *url_hostname(const char *url)
{
	CURLU *u = curl_url();
	char *host = NULL, *res = NULL;

	if (!u)
		abort();
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
		for (char *p = host; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		res = xstrdup(host);
	}
	curl_free(host);
	curl_url_cleanup(u);
	return res;
}

bool reg_client_realm_trusted(const struct reg_client *c, const char *url)
{
	_cleanup_free_ char *a = NULL, *b = NULL;

	if (!strncmp(url, "https://", 8))
		return true;
	if (strncmp(url, "http://", 7) || !c->base_url || strncmp(c->base_url, "http://", 7))
		return false;
	a = url_hostname(url);
	b = url_hostname(c->base_url);
	return a && b && !strcmp(a, b);
}

static CURL *handle_get(struct reg_client *c)
{
	CURL *h = NULL;

	pthread_mutex_lock(&c->pool_lock);
	if (c->npool > 0)
		h = c->pool[--c->npool];
	pthread_mutex_unlock(&c->pool_lock);
	if (!h) {
		h = curl_easy_init();
		if (!h)
			abort();
	}
	curl_easy_reset(h);
	return h;
}

static void handle_put(struct reg_client *c, CURL *h)
{
	pthread_mutex_lock(&c->pool_lock);
	KN_GROW(c->pool, c->pool_alloc, c->npool + 1);
	c->pool[c->npool++] = h;
	pthread_mutex_unlock(&c->pool_lock);
}

/* ---- URLs ----------------------------------------------------------------------------- */

/* Returns "host:port" (port always present, host lowercased) of an absolute URL, or NULL. */
static char *url_hostport(const char *url)
{
	CURLU *u = curl_url();
	char *host = NULL, *port = NULL, *res = NULL;

	if (!u)
		abort();
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
		for (char *p = host; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		res = xasprintf("%s:%s", host, port);
	}
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return res;
}

/* Resolves ref (absolute URL, absolute path or relative) against base; NULL when invalid. */
static char *url_resolve(const char *base, const char *ref)
{
	CURLU *u = curl_url();
	char *out = NULL, *res = NULL;

	if (!u)
		abort();
	if (curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK &&
	    curl_url_set(u, CURLUPART_URL, ref, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_URL, &out, 0) == CURLUE_OK)
		res = xstrdup(out);
	curl_free(out);
	curl_url_cleanup(u);
	if (res && strncmp(res, "http://", 7) && strncmp(res, "https://", 8)) {
		free(res);
		res = NULL;
	}
	return res;
}

/* The URL for messages: no query string or fragment (signed URLs carry secrets there). */
static char *url_for_message(const char *url)
{
	size_t n = strcspn(url, "?#");

	return xstrndup(url, n);
}

static bool url_same_host(const struct reg_client *c, const char *url)
{
	_cleanup_free_ char *a = url_hostport(url);
	_cleanup_free_ char *b = NULL;

	if (!a || !c->base_url)
		return false;
	b = url_hostport(c->base_url);
	return b && !strcmp(a, b);
}

/* ---- one HTTP exchange ---------------------------------------------------------------- */

struct xfer {
	struct reg_sink *sink;
	size_t sink_base; /* buf sink: length before this request */
	size_t sink_max;
	bool is_head;
	bool resume;
	uint64_t range_from; /* Range asked for in this attempt (0: none) */
	uint64_t received;   /* body bytes delivered to the sink, from byte 0 */
	bool body_started;

	long status;
	struct kn_strv headers;
	struct kn_buf error_body;
	kn_error *cb_err;

	const struct reg_body *body;
	uint64_t body_pos;
};

static const char *status_reason(long s)
{
	switch (s) {
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 416: return "Range Not Satisfiable";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "";
	}
}

static size_t on_header(char *data, size_t size, size_t n, void *userp)
{
	struct xfer *x = userp;
	size_t len = size * n;
	_cleanup_free_ char *line = xstrndup(data, len);
	size_t l = strlen(line);

	while (l > 0 && (line[l - 1] == '\r' || line[l - 1] == '\n'))
		line[--l] = 0;
	if (!strncmp(line, "HTTP/", 5)) {
		const char *sp = strchr(line, ' ');

		kn_strv_release(&x->headers);
		x->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		return len;
	}
	if (l > 0 && strchr(line, ':') && x->headers.n < 200)
		kn_strv_push_owned(&x->headers, steal_ptr(&line));
	return len;
}

static const char *hdr_lookup(const struct kn_strv *h, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < h->n; i++) {
		const char *l = h->v[i];

		if (!strncasecmp(l, name, n) && l[n] == ':') {
			l += n + 1;
			while (*l == ' ' || *l == '\t')
				l++;
			return l;
		}
	}
	return NULL;
}

static int sink_restart(struct xfer *x, kn_error **err)
{
	struct reg_sink *s = x->sink;

	x->received = 0;
	if (!s || (!s->buf && !s->write))
		return 0;
	if (s->buf) {
		kn_buf_setlen(s->buf, x->sink_base);
		return 0;
	}
	if (!s->restart)
		return kn_error_set(err, EIO, "the download cannot be restarted");
	return s->restart(s->ctx, err);
}

/* First body bytes of a 2xx response: checks a resumed download continues where it stopped. */
static int body_start(struct xfer *x, kn_error **err)
{
	x->body_started = true;
	if (x->range_from == 0)
		return 0;
	if (x->status == 206) {
		const char *cr = hdr_lookup(&x->headers, "Content-Range");
		unsigned long long from;

		if (!cr || sscanf(cr, "bytes %llu-", &from) != 1 || from != x->range_from)
			return kn_error_set(err, EIO, "server answered a range request with the wrong range");
		return 0;
	}
	/* 200: the server ignored Range and sends everything again. */
	return sink_restart(x, err);
}

static size_t on_write(char *data, size_t size, size_t n, void *userp)
{
	struct xfer *x = userp;
	size_t len = size * n;

	if (x->status < 200 || x->status >= 300) {
		if (x->error_body.len < ERROR_BODY_MAX)
			kn_buf_add(&x->error_body, data,
				   len < ERROR_BODY_MAX - x->error_body.len ? len : ERROR_BODY_MAX - x->error_body.len);
		return len;
	}
	if (!x->body_started && body_start(x, &x->cb_err) < 0)
		return 0;
	if (x->sink && x->sink->buf) {
		if (x->sink->buf->len - x->sink_base + len > x->sink_max) {
			kn_error_set(&x->cb_err, EFBIG, "response larger than %zu bytes", x->sink_max);
			return 0;
		}
		kn_buf_add(x->sink->buf, data, len);
	} else if (x->sink && x->sink->write) {
		if (x->sink->write(x->sink->ctx, data, len, &x->cb_err) < 0) {
			if (!x->cb_err)
				kn_error_set(&x->cb_err, EIO, "write failed");
			return 0;
		}
	}
	x->received += len;
	return len;
}

static size_t on_read(char *buf, size_t size, size_t n, void *userp)
{
	struct xfer *x = userp;
	const struct reg_body *b = x->body;
	size_t want = size * n;

	if (b->read) {
		ssize_t r = b->read(b->ctx, buf, want, &x->cb_err);

		if (r < 0) {
			if (!x->cb_err)
				kn_error_set(&x->cb_err, EIO, "reading the request body failed");
			return CURL_READFUNC_ABORT;
		}
		x->body_pos += (uint64_t)r;
		return (size_t)r;
	}
	if (b->len >= 0 && x->body_pos >= (uint64_t)b->len)
		return 0;
	if (b->len >= 0 && want > (uint64_t)b->len - x->body_pos)
		want = (size_t)((uint64_t)b->len - x->body_pos);
	if (b->fd >= 0) {
		ssize_t r;

		do
			r = pread(b->fd, buf, want, b->fd_offset + (off_t)x->body_pos);
		while (r < 0 && errno == EINTR);
		if (r < 0) {
			kn_error_errno(&x->cb_err, "reading the request body");
			return CURL_READFUNC_ABORT;
		}
		if (r == 0) {
			kn_error_set(&x->cb_err, EIO, "request body file is shorter than expected");
			return CURL_READFUNC_ABORT;
		}
		x->body_pos += (uint64_t)r;
		return (size_t)r;
	}
	memcpy(buf, (const char *)b->data + x->body_pos, want);
	x->body_pos += want;
	return want;
}

static bool body_rewindable(const struct reg_body *b)
{
	return !b || !b->read || b->rewind;
}

static int body_rewind(struct xfer *x, kn_error **err)
{
	x->body_pos = 0;
	if (x->body && x->body->read) {
		if (!x->body->rewind)
			return kn_error_set(err, EIO, "the request body cannot be sent again");
		return x->body->rewind(x->body->ctx, err);
	}
	return 0;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

/* Reads DIR's *.crt (CAs), *.cert and *.key (client certificate) as docker's certs.d does. */
static void certs_load_dir(const char *dir, struct certs_entry *e)
{
	_cleanup_closedir_ DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		_cleanup_free_ char *path = NULL;

		if (de->d_name[0] == '.')
			continue;
		path = kn_path_join(dir, de->d_name);
		if (has_suffix(de->d_name, ".crt")) {
			(void)kn_read_file(path, 4u << 20, &e->ca, NULL);
			kn_buf_addch(&e->ca, '\n');
		} else if (has_suffix(de->d_name, ".cert") && !e->cert) {
			e->cert = steal_ptr(&path);
		} else if (has_suffix(de->d_name, ".key") && !e->key) {
			e->key = steal_ptr(&path);
		}
	}
}

/*
 * The certs.d entry for url's host: KILN_CERTS_DIR (else /etc/docker/certs.d and
 * /etc/containers/certs.d), subdirectory "host:port", or "host" for the default port.
 */
static const struct certs_entry *certs_for(struct reg_client *c, const char *url)
{
	_cleanup_free_ char *hp = url_hostport(url);
	const struct certs_entry *found = NULL;
	const char *env = getenv("KILN_CERTS_DIR");
	const char *const defaults[] = { "/etc/docker/certs.d", "/etc/containers/certs.d", NULL };
	const char *one[] = { env, NULL };
	const char *const *roots = env && *env ? one : defaults;
	struct certs_entry e = { .ca = KN_BUF_INIT };
	bool https = !strncmp(url, "https://", 8);

	if (!hp || !https)
		return NULL;
	pthread_mutex_lock(&c->pool_lock);
	for (size_t i = 0; i < c->ncerts; i++)
		if (!strcmp(c->certs[i]->hostport, hp))
			found = c->certs[i];
	pthread_mutex_unlock(&c->pool_lock);
	if (found)
		return found->ca.len || found->cert ? found : NULL;

	for (size_t r = 0; roots[r]; r++) {
		_cleanup_free_ char *d1 = kn_path_join(roots[r], hp);

		certs_load_dir(d1, &e);
		if (has_suffix(hp, ":443")) {
			_cleanup_free_ char *host = xstrndup(hp, strlen(hp) - 4);
			_cleanup_free_ char *d2 = kn_path_join(roots[r], host);

			certs_load_dir(d2, &e);
		}
	}
	{
		struct certs_entry *n = xmalloc(sizeof(*n));

		e.hostport = steal_ptr(&hp);
		*n = e;
		pthread_mutex_lock(&c->pool_lock);
		KN_GROW(c->certs, c->certs_alloc, c->ncerts + 1);
		c->certs[c->ncerts++] = n;
		found = n;
		pthread_mutex_unlock(&c->pool_lock);
	}
	return found->ca.len || found->cert ? found : NULL;
}

/* Performs one exchange on url. Returns the CURLcode; libcurl's detail goes to errbuf. */
static CURLcode perform_once(struct reg_client *c, const char *method, const char *url,
			     struct curl_slist *hdrs, struct xfer *x, bool tls_noverify, char *errbuf)
{
	CURL *h = handle_get(c);
	CURLcode rc;

	errbuf[0] = 0;
	x->status = 0;
	kn_strv_release(&x->headers);
	kn_buf_reset(&x->error_body);
	x->body_started = false;
	x->body_pos = 0;

	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_SHARE, c->share);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, c->user_agent);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, c->opts.connect_timeout_s);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, c->opts.low_speed_limit);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, c->opts.low_speed_time_s);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	/* Larger buffers: fewer callbacks into the digest/store writers on multi-GB layers. */
	curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 256L * 1024);
	curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 1024L * 1024);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, NULL);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, tls_noverify ? 0L : 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, tls_noverify ? 0L : 2L);
	{
		const struct certs_entry *ce = certs_for(c, url);

		if (ce && ce->ca.len) {
			struct curl_blob blob = { .data = ce->ca.buf, .len = ce->ca.len, .flags = CURL_BLOB_COPY };

			curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
		}
		if (ce && ce->cert && ce->key) {
			curl_easy_setopt(h, CURLOPT_SSLCERT, ce->cert);
			curl_easy_setopt(h, CURLOPT_SSLKEY, ce->key);
		}
	}
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	if (c->connect_to)
		curl_easy_setopt(h, CURLOPT_CONNECT_TO, c->connect_to);

	if (!strcmp(method, "HEAD")) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (x->body) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, x);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x->body->len);
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	} else if (!strcmp(method, "POST")) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
	} else if (!strcmp(method, "PUT") || !strcmp(method, "PATCH")) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)0);
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	} else if (strcmp(method, "GET")) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	}
	rc = curl_easy_perform(h);
	if (rc == CURLE_OK) {
		long code = 0;

		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
		x->status = code;
		/* A 2xx with an empty body still counts as started (no restart needed). */
		if (x->status >= 200 && x->status < 300 && !x->body_started && !x->is_head) {
			if (body_start(x, &x->cb_err) < 0)
				rc = CURLE_WRITE_ERROR;
		}
	}
	handle_put(c, h);
	return rc;
}

static bool curl_transient(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_COULDNT_RESOLVE_HOST:
		return true;
	default:
		return false;
	}
}

static bool status_transient(long s)
{
	return s == 408 || s == 429 || (s >= 500 && s != 501 && s != 505);
}

static bool method_idempotent(const char *m)
{
	return !strcmp(m, "GET") || !strcmp(m, "HEAD") || !strcmp(m, "PUT") || !strcmp(m, "DELETE");
}

static void backoff_sleep(const struct reg_client *c, int attempt)
{
	long ms = c->opts.retry_delay_ms;
	struct timespec ts;

	for (int i = 0; i < attempt && ms < RETRY_DELAY_CAP_MS; i++)
		ms *= 2;
	if (ms > RETRY_DELAY_CAP_MS)
		ms = RETRY_DELAY_CAP_MS;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int curl_error(const char *url, CURLcode rc, const char *errbuf, kn_error **err)
{
	_cleanup_free_ char *u = url_for_message(url);
	_cleanup_free_ char *hp = url_hostport(url);
	const char *detail = errbuf && *errbuf ? errbuf : curl_easy_strerror(rc);

	if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
	    rc == CURLE_SSL_ISSUER_ERROR || rc == CURLE_SSL_PINNEDPUBKEYNOTMATCH)
		return kn_error_set(err, EPROTO,
				    "tls certificate verification failed for '%s': %s (use --tls-verify=false or "
				    "KILN_INSECURE_REGISTRIES to connect anyway)",
				    hp ? hp : u, detail);
	if (rc == CURLE_SSL_CONNECT_ERROR)
		return kn_error_set(err, EPROTO,
				    "tls handshake with '%s' failed: %s (a registry speaking plain HTTP needs "
				    "KILN_INSECURE_REGISTRIES or --tls-verify=false)",
				    hp ? hp : u, detail);
	if (rc == CURLE_OPERATION_TIMEDOUT)
		return kn_error_set(err, ETIMEDOUT, "'%s': timed out: %s", u, detail);
	if (rc == CURLE_COULDNT_CONNECT)
		return kn_error_set(err, ECONNREFUSED, "cannot connect to '%s': %s", hp ? hp : u, detail);
	if (rc == CURLE_COULDNT_RESOLVE_HOST)
		return kn_error_set(err, EHOSTUNREACH, "cannot resolve '%s': %s", hp ? hp : u, detail);
	return kn_error_set(err, EIO, "'%s': %s", u, detail);
}

/* ---- error bodies --------------------------------------------------------------------- */

/* Appends ": CODE: message; ..." from a registry JSON error body; *ret_code: the first code. */
static void format_registry_errors(const struct kn_buf *body, struct kn_buf *out, char **ret_code)
{
	json_error_t jerr;
	json_t *root, *errors, *e;
	size_t i;

	*ret_code = NULL;
	if (body->len == 0)
		return;
	root = json_loadb(body->buf, body->len, 0, &jerr);
	if (!root) {
		/* not JSON: quote the text itself, one line, printable bytes only */
		kn_buf_adds(out, ": ");
		for (size_t k = 0; k < body->len && k < 300; k++) {
			unsigned char ch = (unsigned char)body->buf[k];

			kn_buf_addch(out, ch >= 0x20 && ch < 0x7f ? (char)ch : ' ');
		}
		while (out->len && out->buf[out->len - 1] == ' ')
			kn_buf_setlen(out, out->len - 1);
		return;
	}
	errors = json_object_get(root, "errors");
	if (json_is_array(errors)) {
		json_array_foreach(errors, i, e) {
			const char *code = json_string_value(json_object_get(e, "code"));
			const char *msg = json_string_value(json_object_get(e, "message"));

			if (i >= 4)
				break;
			kn_buf_adds(out, i ? "; " : ": ");
			if (code) {
				kn_buf_addf(out, "%.64s", code);
				if (!*ret_code)
					*ret_code = xstrndup(code, 64);
			}
			if (msg)
				kn_buf_addf(out, "%s%.300s", code ? ": " : "", msg);
			/* distribution puts what is wrong in detail (MANIFEST_INVALID, ...) */
			if (json_object_get(e, "detail") && !json_is_null(json_object_get(e, "detail"))) {
				char *d = json_dumps(json_object_get(e, "detail"),
						     JSON_COMPACT | JSON_ENCODE_ANY);

				if (d && strcmp(d, "{}") && strcmp(d, "[]") && strcmp(d, "\"\""))
					kn_buf_addf(out, " (detail: %.300s)", d);
				free(d);
			}
		}
	} else {
		const char *d = json_string_value(json_object_get(root, "details"));
		const char *m = json_string_value(json_object_get(root, "error"));

		if (m)
			kn_buf_addf(out, ": %.300s", m);
		if (d)
			kn_buf_addf(out, ": %.300s", d);
	}
	json_decref(root);
}

static int response_error_from(long status, const struct kn_buf *body, const char *method, const char *url,
			       const char *what, kn_error **err)
{
	struct kn_buf msg = KN_BUF_INIT;
	_cleanup_free_ char *u = url ? url_for_message(url) : NULL;
	_cleanup_free_ char *code = NULL;
	int e;

	if (what)
		kn_buf_adds(&msg, what);
	else
		kn_buf_addf(&msg, "%s '%s'", method ? method : "request", u ? u : "");
	kn_buf_addf(&msg, ": %ld", status);
	if (*status_reason(status))
		kn_buf_addf(&msg, " %s", status_reason(status));
	format_registry_errors(body, &msg, &code);
	/* the errno tells callers what may be retried: EIO only (5xx, 408, 429); any other 4xx
	 * is the registry's final answer (reg_error_final) */
	if (status == 401 || status == 403)
		e = EACCES;
	else if (status == 404 || (code && strstr(code, "_UNKNOWN")))
		e = ENOENT;
	else if (status >= 400 && status < 500 && status != 408 && status != 429)
		e = status == 400 ? EINVAL : status == 413 ? EFBIG : status == 416 ? ERANGE : EPROTO;
	else
		e = EIO;
	kn_error_set(err, e, "%s", msg.buf);
	kn_buf_release(&msg);
	return -1;
}

int reg_response_error(const struct reg_response *r, const char *what, kn_error **err)
{
	return response_error_from(r->status, &r->error_body, NULL, r->url, what, err);
}

const char *reg_response_header(const struct reg_response *r, const char *name)
{
	return hdr_lookup(&r->headers, name);
}

void reg_response_free(struct reg_response *r)
{
	if (!r)
		return;
	kn_strv_release(&r->headers);
	free(r->url);
	kn_buf_release(&r->error_body);
	free(r);
}

/* ---- credentials and tokens ------------------------------------------------------------ */

/*
 * Loads the credentials once, when the registry first asks for auth. A broken config.json or
 * credential helper is an error (as with docker), not a silent fall back to anonymous access.
 */
static int ensure_creds_locked(struct reg_client *c, kn_error **err)
{
	if (c->creds_loaded)
		return 0;
	if (c->username) {
		c->creds = xcalloc(1, sizeof(*c->creds));
		c->creds->username = xstrdup(c->username);
		c->creds->password = xstrdup(c->password ? c->password : "");
	} else if (reg_credentials_lookup(c->domain, &c->opts, &c->creds, err) < 0) {
		kn_error_wrap(err, "getting the credentials for '%s'", c->domain);
		return -1;
	}
	c->creds_loaded = true;
	return 0;
}

static char *scopes_key(char *const *scopes)
{
	struct kn_buf b = KN_BUF_INIT;
	size_t n = kn_strv_len(scopes);
	char **sorted = kn_strv_dup(scopes);

	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && strcmp(sorted[j - 1], sorted[j]) > 0; j--) {
			char *t = sorted[j];

			sorted[j] = sorted[j - 1];
			sorted[j - 1] = t;
		}
	for (size_t i = 0; i < n; i++)
		kn_buf_addf(&b, "%s%s", i ? " " : "", sorted[i]);
	kn_strv_free(sorted);
	return kn_buf_detach(&b);
}

/*
 * Returns an owned Bearer token for scopes (the client's plus extra), from the cache or newly
 * fetched. Called with c->lock held; token requests of parallel transfers wait here.
 */
static int bearer_token_locked(struct reg_client *c, const char *extra_scope, bool force, char **ret,
			       kn_error **err)
{
	struct kn_strv scopes = KN_STRV_INIT;
	_cleanup_free_ char *key = NULL;
	char *token = NULL;
	long expires_in = 0;
	time_t now = time(NULL);
	int r;

	for (size_t i = 0; i < c->scopes.n; i++)
		kn_strv_push(&scopes, c->scopes.v[i]);
	/* A challenge's scope may list several, space-separated: one scope parameter each. */
	for (const char *p = extra_scope; p && *p;) {
		size_t n = strcspn(p, " ");
		char *one = xstrndup(p, n);

		if (*one && !kn_strv_contains(&scopes, one))
			kn_strv_push_owned(&scopes, steal_ptr(&one));
		free(one);
		p += n;
		while (*p == ' ')
			p++;
	}
	key = scopes_key(scopes.v);
	for (size_t i = 0; i < c->ntokens; i++) {
		if (strcmp(c->tokens[i].key, key))
			continue;
		if (!force && c->tokens[i].expires > now) {
			*ret = xstrdup(c->tokens[i].token);
			kn_strv_release(&scopes);
			return 0;
		}
	}
	if (ensure_creds_locked(c, err) < 0) {
		kn_strv_release(&scopes);
		return -1;
	}
	r = reg_auth_fetch_token(c, &c->challenge, scopes.v, c->creds, &token, &expires_in, err);
	kn_strv_release(&scopes);
	if (r < 0)
		return r;
	{
		long margin = expires_in >= 20 ? 10 : expires_in / 2;
		size_t i;

		for (i = 0; i < c->ntokens; i++)
			if (!strcmp(c->tokens[i].key, key))
				break;
		if (i == c->ntokens) {
			KN_GROW(c->tokens, c->tokens_alloc, c->ntokens + 1);
			c->tokens[i].key = xstrdup(key);
			c->tokens[i].token = NULL;
			c->ntokens++;
		}
		secret_free(c->tokens[i].token);
		c->tokens[i].token = xstrdup(token);
		c->tokens[i].expires = now + expires_in - margin;
	}
	*ret = token;
	return 0;
}

/* Returns an owned "Authorization: ..." header line for the registry host, or NULL. */
static int auth_header(struct reg_client *c, const char *extra_scope, bool force, char **ret, kn_error **err)
{
	int r = 0;

	*ret = NULL;
	pthread_mutex_lock(&c->lock);
	if (c->scheme == AUTH_BEARER) {
		char *token = NULL;

		r = bearer_token_locked(c, extra_scope, force, &token, err);
		if (r == 0) {
			*ret = xasprintf("Authorization: Bearer %s", token);
			secret_free(token);
		}
	} else if (c->scheme == AUTH_BASIC) {
		r = ensure_creds_locked(c, err);
		if (r == 0 && c->creds && c->creds->username) {
			_cleanup_free_ char *pair = xasprintf("%s:%s", c->creds->username,
							      c->creds->password ? c->creds->password : "");
			char *b64 = reg_base64_encode(pair, strlen(pair));

			explicit_bzero(pair, strlen(pair));
			*ret = xasprintf("Authorization: Basic %s", b64);
			secret_free(b64);
		}
	}
	pthread_mutex_unlock(&c->lock);
	return r;
}

/* Records the challenge of a 401 response (under the lock). Returns true when it is usable. */
static bool learn_challenge(struct reg_client *c, const struct kn_strv *headers, char **ret_scope)
{
	struct reg_challenge ch = { 0 };
	bool ok = false;

	*ret_scope = NULL;
	for (size_t i = 0; i < headers->n; i++) {
		const char *l = headers->v[i];

		if (strncasecmp(l, "WWW-Authenticate:", 17))
			continue;
		l += 17;
		while (*l == ' ')
			l++;
		if (reg_challenge_parse(l, &ch) == 0)
			break;
	}
	if (!ch.scheme)
		return false;
	pthread_mutex_lock(&c->lock);
	if (!strcmp(ch.scheme, "bearer") && ch.realm) {
		c->scheme = AUTH_BEARER;
		ok = true;
	} else if (!strcmp(ch.scheme, "basic")) {
		c->scheme = AUTH_BASIC;
		ok = true;
	}
	if (ok) {
		if (ch.scope)
			*ret_scope = xstrdup(ch.scope);
		reg_challenge_release(&c->challenge);
		c->challenge = ch;
		memset(&ch, 0, sizeof(ch));
	}
	pthread_mutex_unlock(&c->lock);
	reg_challenge_release(&ch);
	return ok;
}

/* ---- ping ----------------------------------------------------------------------------- */

static int ping_url(struct reg_client *c, const char *base, bool noverify, long *ret_status,
		    struct kn_strv *ret_headers, CURLcode *ret_rc, char *errbuf)
{
	_cleanup_free_ char *url = xasprintf("%s/v2/", base);
	struct xfer x = { 0 };
	CURLcode rc;

	x.sink_max = SINK_DEFAULT_MAX;
	x.error_body = (struct kn_buf)KN_BUF_INIT;
	rc = perform_once(c, "GET", url, NULL, &x, noverify, errbuf);
	*ret_rc = rc;
	*ret_status = x.status;
	*ret_headers = x.headers;
	kn_buf_release(&x.error_body);
	kn_error_free(x.cb_err);
	return rc == CURLE_OK ? 0 : -1;
}

int reg_client_ping(struct reg_client *c, kn_error **err)
{
	_cleanup_free_ char *https = NULL;
	_cleanup_free_ char *http = NULL;
	struct kn_strv headers = KN_STRV_INIT;
	char errbuf[CURL_ERROR_SIZE];
	char errbuf2[CURL_ERROR_SIZE];
	long status = 0;
	CURLcode rc = CURLE_OK, rc2;
	bool noverify = c->insecure;
	const char *base = NULL;
	char *scope = NULL;
	int attempt;

	pthread_mutex_lock(&c->lock);
	if (c->pinged) {
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	pthread_mutex_unlock(&c->lock);

	https = xasprintf("https://%s", c->host);
	http = xasprintf("http://%s", c->host);
	for (attempt = 0;; attempt++) {
		kn_strv_release(&headers);
		base = https;
		if (ping_url(c, https, noverify, &status, &headers, &rc, errbuf) < 0 &&
		    (c->insecure || c->loopback) &&
		    (rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_COULDNT_CONNECT || rc == CURLE_RECV_ERROR ||
		     rc == CURLE_GOT_NOTHING || rc == CURLE_WEIRD_SERVER_REPLY)) {
			kn_strv_release(&headers);
			/* The server does not speak TLS here: plain HTTP is allowed for this host. */
			if (ping_url(c, http, false, &status, &headers, &rc2, errbuf2) == 0) {
				base = http;
				rc = CURLE_OK;
			} else if (rc2 != CURLE_COULDNT_CONNECT) {
				rc = rc2;
				memcpy(errbuf, errbuf2, sizeof(errbuf));
				base = http;
			}
		}
		if (rc == CURLE_OK && status_transient(status) && attempt < c->opts.retries) {
			backoff_sleep(c, attempt);
			continue;
		}
		if (rc != CURLE_OK && curl_transient(rc) && rc != CURLE_SSL_CONNECT_ERROR &&
		    attempt < c->opts.retries) {
			backoff_sleep(c, attempt);
			continue;
		}
		break;
	}
	if (rc != CURLE_OK) {
		_cleanup_free_ char *u = xasprintf("%s/v2/", base);

		kn_strv_release(&headers);
		return curl_error(u, rc, errbuf, err);
	}
	if (status == 401) {
		if (!learn_challenge(c, &headers, &scope)) {
			kn_strv_release(&headers);
			return kn_error_set(err, EACCES, "registry '%s' requires an unsupported authentication method",
					    c->host);
		}
		free(scope);
	} else if (status >= 300 && status != 404) {
		/* 404 and friends: not all registries serve /v2/ (docker tolerates it), carry on. */
		kn_strv_release(&headers);
		return kn_error_set(err, EIO, "registry '%s' answered GET /v2/ with %ld %s", c->host, status,
				    status_reason(status));
	}
	kn_strv_release(&headers);
	pthread_mutex_lock(&c->lock);
	if (!c->pinged) {
		c->base_url = xstrdup(base);
		c->tls_noverify = noverify;
		c->pinged = true;
	}
	pthread_mutex_unlock(&c->lock);
	return 0;
}

/* ---- requests ------------------------------------------------------------------------- */

/*
 * A cross-repository mount (POST .../blobs/uploads/?mount=D&from=REPO) needs pull access to
 * REPO in the token too, or the registry silently starts an upload instead: returns that scope.
 */
static char *mount_scope(const char *method, const char *url)
{
	const char *q = strchr(url, '?');
	char *from = NULL, *scope = NULL;

	if (strcmp(method, "POST") || !q || !strstr(q, "mount="))
		return NULL;
	for (const char *p = q + 1; *p;) {
		size_t n = strcspn(p, "&#");

		if (n > 5 && !strncmp(p, "from=", 5)) {
			int len = 0;

			from = curl_easy_unescape(NULL, p + 5, (int)(n - 5), &len);
			break;
		}
		p += n;
		if (*p != '&')
			break;
		p++;
	}
	if (from && *from && !strpbrk(from, " :"))
		scope = xasprintf("repository:%s:pull", from);
	curl_free(from);
	return scope;
}

static bool is_auth_header(const char *h)
{
	return !strncasecmp(h, "Authorization:", 14);
}

int reg_request(struct reg_client *c, const struct reg_request *req, struct reg_response **ret,
		kn_error **err)
{
	_cleanup_free_ char *url = NULL;
	_cleanup_free_ char *auth = NULL;
	_cleanup_free_ char *extra_scope = NULL;
	struct xfer x = { 0 };
	const char *method = req->method ? req->method : "GET";
	bool idempotent = method_idempotent(method) && !(req->flags & REG_REQ_NO_RETRY);
	bool cross_host = false, force_token = false;
	int attempt = 0, auth_tries = 0, redirects = 0;
	char errbuf[CURL_ERROR_SIZE];
	int r = -1;

	x.error_body = (struct kn_buf)KN_BUF_INIT;
	x.sink = req->sink;
	x.body = req->body;
	x.is_head = !strcmp(method, "HEAD");
	x.resume = (req->flags & REG_REQ_RESUME) && !strcmp(method, "GET");
	if (req->sink && req->sink->buf)
		x.sink_base = req->sink->buf->len;
	x.sink_max = req->sink && req->sink->max ? req->sink->max : SINK_DEFAULT_MAX;

	if (!(req->flags & REG_REQ_NO_AUTH) && reg_client_ping(c, err) < 0)
		return -1;
	if (!strncmp(req->url, "http://", 7) || !strncmp(req->url, "https://", 8))
		url = xstrdup(req->url);
	else if (c->base_url)
		url = url_resolve(c->base_url, req->url);
	if (!url)
		return kn_error_set(err, EINVAL, "invalid request URL '%s'", req->url);
	extra_scope = mount_scope(method, url);

	for (;;) {
		struct curl_slist *hdrs = NULL;
		bool same_host = !cross_host && url_same_host(c, url);
		bool noverify;
		CURLcode rc;

		kn_error_free(steal_ptr(&x.cb_err));
		free(steal_ptr(&auth));
		if (same_host && !(req->flags & REG_REQ_NO_AUTH)) {
			if (auth_header(c, extra_scope, force_token, &auth, err) < 0)
				goto out;
			force_token = false;
		}
		for (const char *const *h = req->headers; h && *h; h++)
			if (!(cross_host && is_auth_header(*h)))
				hdrs = curl_slist_append(hdrs, *h);
		if (auth)
			hdrs = curl_slist_append(hdrs, auth);
		hdrs = curl_slist_append(hdrs, "Expect:");
		x.range_from = 0;
		if (x.resume && x.received > 0) {
			char range[64];

			x.range_from = x.received;
			snprintf(range, sizeof(range), "Range: bytes=%llu-", (unsigned long long)x.received);
			hdrs = curl_slist_append(hdrs, range);
		}
		noverify = c->opts.tls_verify == 0 || (same_host && c->tls_noverify);
		if (!noverify && c->opts.tls_verify != 1) {
			_cleanup_free_ char *hp = url_hostport(url);

			noverify = hp && host_listed_insecure(hp);
		}
		rc = perform_once(c, method, url, hdrs, &x, noverify, errbuf);
		if (auth)
			explicit_bzero(auth, strlen(auth));
		curl_slist_free_all(hdrs);

		if (rc != CURLE_OK) {
			if (x.cb_err) {
				kn_error_propagate(err, steal_ptr(&x.cb_err));
				goto out;
			}
			if (curl_transient(rc) && idempotent && attempt < c->opts.retries &&
			    body_rewindable(req->body) && !(rc == CURLE_SSL_CONNECT_ERROR && attempt > 0)) {
				if (!x.resume && x.received > 0 && sink_restart(&x, err) < 0)
					goto out;
				if (body_rewind(&x, err) < 0)
					goto out;
				backoff_sleep(c, attempt++);
				continue;
			}
			curl_error(url, rc, errbuf, err);
			goto out;
		}

		if (x.status == 401 && same_host && !(req->flags & REG_REQ_NO_AUTH) &&
		    auth_tries < MAX_AUTH_RETRIES && body_rewindable(req->body)) {
			char *scope = NULL;

			if (learn_challenge(c, &x.headers, &scope)) {
				bool basic_without_creds;
				int cr;

				pthread_mutex_lock(&c->lock);
				cr = ensure_creds_locked(c, err);
				basic_without_creds = c->scheme == AUTH_BASIC && (!c->creds || !c->creds->username);
				pthread_mutex_unlock(&c->lock);
				if (cr < 0) {
					free(scope);
					goto out;
				}
				if (basic_without_creds) {
					free(scope);
					goto done;
				}
				auth_tries++;
				free(extra_scope);
				extra_scope = scope;
				force_token = auth != NULL;
				if (x.received > 0 && sink_restart(&x, err) < 0)
					goto out;
				if (body_rewind(&x, err) < 0)
					goto out;
				continue;
			}
		}

		if (x.status >= 300 && x.status < 400 && x.status != 304 && !(req->flags & REG_REQ_NO_REDIRECT)) {
			const char *loc = hdr_lookup(&x.headers, "Location");
			char *next;

			if (!loc || !*loc)
				goto done;
			if (++redirects > MAX_REDIRECTS) {
				kn_error_set(err, ELOOP, "too many redirects for '%s'", req->url);
				goto out;
			}
			next = url_resolve(url, loc);
			if (!next) {
				kn_error_set(err, EPROTO, "invalid redirect location from '%s'", c->host);
				goto out;
			}
			/* Once off the registry's host, credentials never follow, even back. */
			{
				_cleanup_free_ char *a = url_hostport(url);
				_cleanup_free_ char *b = url_hostport(next);

				if (!a || !b || strcmp(a, b))
					cross_host = true;
			}
			free(url);
			url = next;
			if (x.status == 303) {
				method = x.is_head ? "HEAD" : "GET";
				x.body = NULL;
			} else if (body_rewind(&x, err) < 0) {
				goto out;
			}
			continue;
		}

		if (status_transient(x.status) && idempotent && attempt < c->opts.retries &&
		    body_rewindable(req->body)) {
			const char *ra = hdr_lookup(&x.headers, "Retry-After");
			long wait_s = ra && *ra >= '0' && *ra <= '9' ? strtol(ra, NULL, 10) : -1;

			/* A long Retry-After (rate limits) will not pass during our retries: fail now. */
			if (wait_s > RETRY_AFTER_MAX_S)
				goto done;
			if (body_rewind(&x, err) < 0)
				goto out;
			if (wait_s > 0) {
				struct timespec ts = { wait_s, 0 };

				while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
					;
				attempt++;
			} else {
				backoff_sleep(c, attempt++);
			}
			continue;
		}
	done:
		break;
	}

	if (x.status >= 400 && !(req->flags & REG_REQ_ANY_STATUS)) {
		response_error_from(x.status, &x.error_body, method, url, NULL, err);
		if (x.status == 401 && err && *err && !(req->flags & REG_REQ_NO_AUTH)) {
			bool have;

			pthread_mutex_lock(&c->lock);
			have = c->creds != NULL;
			pthread_mutex_unlock(&c->lock);
			if (!have)
				kn_error_wrap(err, "not logged in to '%s' (kiln login %s)", c->domain, c->domain);
		}
		goto out;
	}
	if (ret) {
		struct reg_response *resp = xcalloc(1, sizeof(*resp));
		const char *cl = hdr_lookup(&x.headers, "Content-Length");

		resp->status = x.status;
		resp->headers = x.headers;
		x.headers = (struct kn_strv)KN_STRV_INIT;
		resp->url = xstrdup(url);
		resp->error_body = x.error_body;
		x.error_body = (struct kn_buf)KN_BUF_INIT;
		resp->content_length = cl ? strtoll(cl, NULL, 10) : -1;
		resp->received = x.received;
		*ret = resp;
	}
	r = 0;
out:
	if (auth)
		explicit_bzero(auth, strlen(auth));
	kn_error_free(x.cb_err);
	kn_strv_release(&x.headers);
	kn_buf_release(&x.error_body);
	return r;
}

int reg_get_buf(struct reg_client *c, const char *url, const char *const *headers, size_t max,
		struct kn_buf *buf, struct reg_response **ret, kn_error **err)
{
	struct reg_sink sink = { .buf = buf, .max = max };
	struct reg_request req = { .method = "GET", .url = url, .headers = headers, .sink = &sink };

	return reg_request(c, &req, ret, err);
}

int reg_client_verify_login(struct reg_client *c, char **ret_identity_token, kn_error **err)
{
	enum auth_scheme scheme;
	int r = 0;

	if (ret_identity_token)
		*ret_identity_token = NULL;
	if (reg_client_ping(c, err) < 0)
		return -1;
	pthread_mutex_lock(&c->lock);
	scheme = c->scheme;
	r = ensure_creds_locked(c, err);
	if (r == 0 && scheme == AUTH_BEARER) {
		char *token = NULL;
		long expires_in = 0;
		char *const noscopes[] = { NULL };

		r = reg_auth_fetch_token(c, &c->challenge, noscopes, c->creds, &token, &expires_in, err);
		secret_free(token);
	}
	pthread_mutex_unlock(&c->lock);
	if (r < 0)
		return r;
	if (scheme == AUTH_BASIC) {
		_cleanup_(reg_response_freep) struct reg_response *resp = NULL;
		struct reg_request req = { .method = "GET", .url = "/v2/", .flags = REG_REQ_ANY_STATUS };

		if (reg_request(c, &req, &resp, err) < 0)
			return -1;
		if (resp->status == 401 || resp->status == 403)
			return kn_error_set(err, EACCES, "unauthorized: '%s' refused the username or password", c->host);
		if (resp->status >= 400)
			return reg_response_error(resp, "GET /v2/", err);
	}
	return 0;
}

/* ---- plain URLs (build contexts, ADD) ------------------------------------------------------------ */

struct fd_sink {
	int fd;
	const char *url;
	uint64_t written, max;
	EVP_MD_CTX *md; /* sha256 of what was written, kept in step with the file */
};

static int fd_sink_write(void *ctx, const void *data, size_t len, kn_error **err)
{
	struct fd_sink *f = ctx;

	if (f->max && len > f->max - f->written)
		return kn_error_set(err, EFBIG, "'%s' is larger than the limit of %llu bytes", f->url,
				    (unsigned long long)f->max);
	if (kn_write_all(f->fd, data, len, err) < 0)
		return kn_error_wrap(err, "cannot store the download of '%s'", f->url);
	if (!EVP_DigestUpdate(f->md, data, len))
		abort();
	f->written += len;
	return 0;
}

static int fd_sink_restart(void *ctx, kn_error **err)
{
	struct fd_sink *f = ctx;

	if (ftruncate(f->fd, 0) < 0 || lseek(f->fd, 0, SEEK_SET) < 0)
		return kn_error_errno(err, "cannot restart the download");
	if (!EVP_DigestInit_ex(f->md, EVP_sha256(), NULL))
		abort();
	f->written = 0;
	return 0;
}

static void md_freep(EVP_MD_CTX **p)
{
	EVP_MD_CTX_free(*p);
}

int reg_fetch_url(const char *url, const struct reg_opts *opts, int fd, uint64_t max,
		  char **ret_digest, char **ret_last_modified, kn_error **err)
{
	_cleanup_(reg_client_freep) struct reg_client *c = NULL;
	_cleanup_(reg_response_freep) struct reg_response *resp = NULL;
	_cleanup_free_ char *hostport = NULL;
	_cleanup_(md_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
	struct reg_ref ref = { 0 };
	struct fd_sink fs = { .fd = fd, .url = url, .max = max, .md = md };
	struct reg_sink sink = { .write = fd_sink_write, .restart = fd_sink_restart, .ctx = &fs };
	struct reg_request req = { .method = "GET", .url = url, .sink = &sink,
				   .flags = REG_REQ_NO_AUTH | REG_REQ_RESUME };
	const char *lm;

	if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL))
		abort();
	if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
		return kn_error_set(err, EINVAL, "'%s' is not an http(s) URL", url);
	hostport = url_hostport(url);
	if (!hostport || !*hostport)
		return kn_error_set(err, EINVAL, "invalid URL '%s'", url);
	/* A client for the URL's host only: no registry credentials ever go with the request. */
	ref.domain = hostport;
	ref.path = (char *)"-";
	if (reg_client_new(&ref, opts, REG_ACCESS_PULL, &c, err) < 0)
		return -1;
	if (reg_request(c, &req, &resp, err) < 0)
		return -1;
	if (ret_digest) {
		unsigned char d[EVP_MAX_MD_SIZE];
		unsigned int n = 0;
		struct kn_buf b = KN_BUF_INIT;

		if (!EVP_DigestFinal_ex(md, d, &n))
			abort();
		kn_buf_adds(&b, "sha256:");
		for (unsigned int i = 0; i < n; i++)
			kn_buf_addf(&b, "%02x", d[i]);
		*ret_digest = kn_buf_detach(&b);
	}
	if (ret_last_modified) {
		lm = reg_response_header(resp, "Last-Modified");
		*ret_last_modified = lm ? xstrdup(lm) : NULL;
	}
	return 0;
}
