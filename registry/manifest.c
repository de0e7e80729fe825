/* kiln registry: manifest parsing, media types, platform selection and the blob-source record. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>
#include <sys/file.h>

#include "registry/transfer-internal.h"

bool reg_digest_valid(const char *digest)
{
	if (!digest || strncmp(digest, "sha256:", 7))
		return false;
	digest += 7;
	for (int i = 0; i < 64; i++) {
		char c = digest[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	return digest[64] == '\0';
}

char *reg_digest_of(const void *data, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	struct kn_buf b = KN_BUF_INIT;

	if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL))
		abort();
	kn_buf_adds(&b, "sha256:");
	for (unsigned int i = 0; i < mdlen; i++)
		kn_buf_addf(&b, "%02x", md[i]);
	return kn_buf_detach(&b);
}

/* ---- platforms ------------------------------------------------------------------------------ */

static bool platform_word_ok(const char *s, size_t n)
{
	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
		      c == '.'))
			return false;
	}
	return true;
}

int reg_platform_parse(const char *s, struct reg_platform *ret, kn_error **err)
{
	struct reg_platform p = { 0 };
	const char *a, *v;

	a = strchr(s, '/');
	if (!a || !platform_word_ok(s, a - s))
		goto bad;
	a++;
	v = strchr(a, '/');
	if (!platform_word_ok(a, v ? (size_t)(v - a) : strlen(a)))
		goto bad;
	if (v && !platform_word_ok(v + 1, strlen(v + 1)))
		goto bad;
	p.os = xstrndup(s, strchr(s, '/') - s);
	{
		_cleanup_free_ char *raw = v ? xstrndup(a, v - a) : xstrdup(a);

		kn_arch_normalize(raw, v ? v + 1 : NULL, &p.arch, &p.variant);
	}
	*ret = p;
	return 0;
bad:
	return kn_error_set(err, EINVAL, "invalid platform '%s': expected os/arch[/variant]", s);
}

void reg_platform_host(struct reg_platform *ret)
{
	const char *arch, *variant;

	memset(ret, 0, sizeof(*ret));
	kn_platform_host(NULL, &arch, &variant);
	ret->os = xstrdup("linux");
	ret->arch = xstrdup(arch);
	ret->variant = variant ? xstrdup(variant) : NULL;
}

char *reg_platform_format(const struct reg_platform *p)
{
	if (p->variant)
		return xasprintf("%s/%s/%s", p->os, p->arch, p->variant);
	return xasprintf("%s/%s", p->os, p->arch);
}

void reg_platform_release(struct reg_platform *p)
{
	if (!p)
		return;
	free(p->os);
	free(p->arch);
	free(p->variant);
	memset(p, 0, sizeof(*p));
}

/* The variant a platform means when none is written: arm64 is v8, arm is v7. */
static const char *default_variant(const char *arch)
{
	if (!strcmp(arch, "arm64"))
		return "v8";
	if (!strcmp(arch, "arm"))
		return "v7";
	return NULL;
}

static bool variant_match(const struct reg_platform *want, const struct reg_platform *have)
{
	const char *w = want->variant ? want->variant : default_variant(want->arch);
	const char *h = have->variant ? have->variant : default_variant(have->arch);

	if (!w)
		return true; /* the caller did not ask for one */
	if (!h)
		return true;
	return !strcmp(w, h);
}

const struct reg_desc *reg_index_select(const struct reg_manifest *idx, const struct reg_platform *p,
					kn_error **err)
{
	const struct reg_desc *best = NULL;
	struct kn_buf have = KN_BUF_INIT;

	for (size_t i = 0; i < idx->n_entries; i++) {
		const struct reg_desc *d = &idx->entries[i];

		if (!d->has_platform || !d->platform.os || !d->platform.arch)
			continue;
		if (strcmp(d->platform.os, p->os) || strcmp(d->platform.arch, p->arch))
			continue;
		if (!variant_match(p, &d->platform))
			continue;
		/* An exact variant match wins over a defaulted one. */
		if (!best || (p->variant && d->platform.variant &&
			      !strcmp(p->variant, d->platform.variant)))
			best = d;
	}
	if (best)
		return best;
	for (size_t i = 0; i < idx->n_entries; i++) {
		const struct reg_desc *d = &idx->entries[i];
		_cleanup_free_ char *f = NULL;

		if (!d->has_platform || !d->platform.os || !d->platform.arch ||
		    !strcmp(d->platform.os, "unknown"))
			continue;
		f = reg_platform_format(&d->platform);
		kn_buf_addf(&have, "%s%s", have.len ? ", " : "", f);
	}
	{
		_cleanup_free_ char *want = reg_platform_format(p);

		kn_error_set(err, ENOENT, "no manifest for platform '%s' in the index (it has: %s)",
			     want, have.len ? have.buf : "none");
	}
	kn_buf_release(&have);
	return NULL;
}

/* ---- manifests ------------------------------------------------------------------------------ */

static void desc_release(struct reg_desc *d)
{
	free(d->media_type);
	free(d->digest);
	reg_platform_release(&d->platform);
	kn_strv_free(d->urls);
	memset(d, 0, sizeof(*d));
}

void reg_manifest_free(struct reg_manifest *m)
{
	if (!m)
		return;
	free(m->media_type);
	desc_release(&m->config);
	for (size_t i = 0; i < m->n_layers; i++)
		desc_release(&m->layers[i]);
	free(m->layers);
	for (size_t i = 0; i < m->n_entries; i++)
		desc_release(&m->entries[i]);
	free(m->entries);
	free(m);
}

static const char *jstr(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static int desc_parse(json_t *o, const char *what, bool want_platform, struct reg_desc *d,
		      kn_error **err)
{
	const char *mt = jstr(o, "mediaType");
	const char *dg = jstr(o, "digest");
	json_t *sz = json_object_get(o, "size");
	json_t *urls = json_object_get(o, "urls");

	if (!json_is_object(o))
		return kn_error_set(err, EBADMSG, "malformed manifest: %s is not an object", what);
	if (!reg_digest_valid(dg))
		return kn_error_set(err, EBADMSG, "malformed manifest: %s has an invalid digest '%s'",
				    what, dg ? dg : "");
	if (!json_is_integer(sz) || json_integer_value(sz) < 0)
		return kn_error_set(err, EBADMSG, "malformed manifest: %s has no valid size", what);
	d->media_type = xstrdup(mt ? mt : "");
	d->digest = xstrdup(dg);
	d->size = (uint64_t)json_integer_value(sz);
	if (json_is_array(urls) && json_array_size(urls) > 0) {
		struct kn_strv sv = KN_STRV_INIT;
		size_t i;
		json_t *u;

		json_array_foreach (urls, i, u)
			if (json_is_string(u))
				kn_strv_push(&sv, json_string_value(u));
		if (sv.n)
			d->urls = kn_strv_detach(&sv);
	}
	if (want_platform) {
		json_t *p = json_object_get(o, "platform");

		if (json_is_object(p) && jstr(p, "os") && jstr(p, "architecture")) {
			d->has_platform = true;
			d->platform.os = xstrdup(jstr(p, "os"));
			kn_arch_normalize(jstr(p, "architecture"), jstr(p, "variant"),
					  &d->platform.arch, &d->platform.variant);
		}
	}
	return 0;
}

static bool is_index_type(const char *mt)
{
	return !strcmp(mt, REG_MT_OCI_INDEX) || !strcmp(mt, REG_MT_DOCKER_LIST);
}

static bool is_image_type(const char *mt)
{
	return !strcmp(mt, REG_MT_OCI_MANIFEST) || !strcmp(mt, REG_MT_DOCKER_MANIFEST);
}

static bool is_schema1_type(const char *mt)
{
	return !strcmp(mt, REG_MT_DOCKER_SCHEMA1) || !strcmp(mt, REG_MT_DOCKER_SCHEMA1_SIGNED) ||
	       !strcmp(mt, "application/json");
}

/* Content-Type without parameters ("; charset=utf-8"), owned. */
static char *bare_type(const char *ct)
{
	size_t n;

	if (!ct)
		return NULL;
	while (*ct == ' ')
		ct++;
	n = strcspn(ct, "; \t");
	return n ? xstrndup(ct, n) : NULL;
}

int reg_manifest_parse(const void *data, size_t len, const char *content_type,
		       struct reg_manifest **ret, kn_error **err)
{
	_cleanup_(reg_manifest_freep) struct reg_manifest *m = NULL;
	_cleanup_free_ char *ct = bare_type(content_type);
	json_error_t jerr;
	json_t *root, *sv, *arr;
	const char *mt;
	int r = -1;

	if (len > REG_MANIFEST_MAX)
		return kn_error_set(err, EFBIG, "manifest too large (%zu bytes, limit %u)", len,
				    REG_MANIFEST_MAX);
	if (ct && (!strcmp(ct, REG_MT_DOCKER_SCHEMA1) || !strcmp(ct, REG_MT_DOCKER_SCHEMA1_SIGNED)))
		return kn_error_set(err, EPROTONOSUPPORT,
				    "image manifest uses Docker schema 1 ('%s'), which kiln does "
				    "not support: push it again with a current client",
				    ct);
	root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root || !json_is_object(root)) {
		json_decref(root);
		return kn_error_set(err, EBADMSG, "malformed manifest: %s",
				    root ? "not a JSON object" : jerr.text);
	}
	sv = json_object_get(root, "schemaVersion");
	if (json_is_integer(sv) && json_integer_value(sv) == 1) {
		r = kn_error_set(err, EPROTONOSUPPORT,
				 "image manifest uses Docker schema 1, which kiln does not support: "
				 "push it again with a current client");
		goto out;
	}
	if (!json_is_integer(sv) || json_integer_value(sv) != 2) {
		r = kn_error_set(err, EBADMSG, "malformed manifest: schemaVersion is not 2");
		goto out;
	}
	/* one document, one reading: field, Content-Type and shape must agree (CVE-2021-41190) */
	if (image_doc_check(data, len, content_type, err) < 0)
		goto out;
	mt = jstr(root, "mediaType");
	if (!mt || !*mt)
		mt = ct;
	if (!mt || !strcmp(mt, "application/json") || !strcmp(mt, "text/plain") ||
	    !strcmp(mt, "application/octet-stream")) {
		/* OCI allows omitting mediaType: infer from the shape. */
		mt = json_is_array(json_object_get(root, "manifests")) ? REG_MT_OCI_INDEX
								       : REG_MT_OCI_MANIFEST;
	}
	if (is_schema1_type(mt)) {
		r = kn_error_set(err, EPROTONOSUPPORT,
				 "image manifest uses Docker schema 1 ('%s'), which kiln does not "
				 "support: push it again with a current client",
				 mt);
		goto out;
	}
	m = xcalloc(1, sizeof(*m));
	m->media_type = xstrdup(mt);
	if (is_index_type(mt)) {
		size_t i;
		json_t *e;

		m->kind = REG_MANIFEST_INDEX;
		arr = json_object_get(root, "manifests");
		if (!json_is_array(arr)) {
			r = kn_error_set(err, EBADMSG, "malformed index: no 'manifests' array");
			goto out;
		}
		if (json_array_size(arr) > REG_MANIFEST_MAX_ENTRIES) {
			r = kn_error_set(err, EFBIG, "index has too many entries (%zu)",
					 json_array_size(arr));
			goto out;
		}
		m->entries = xcalloc(json_array_size(arr) + 1, sizeof(*m->entries));
		json_array_foreach (arr, i, e) {
			_cleanup_free_ char *what = xasprintf("manifests[%zu]", i);

			m->n_entries = i + 1;
			if (desc_parse(e, what, true, &m->entries[i], err) < 0)
				goto out;
		}
	} else if (is_image_type(mt)) {
		size_t i;
		json_t *e;

		m->kind = REG_MANIFEST_IMAGE;
		if (desc_parse(json_object_get(root, "config"), "config", false, &m->config, err) < 0)
			goto out;
		arr = json_object_get(root, "layers");
		if (!json_is_array(arr)) {
			r = kn_error_set(err, EBADMSG, "malformed manifest: no 'layers' array");
			goto out;
		}
		if (json_array_size(arr) > REG_MANIFEST_MAX_ENTRIES) {
			r = kn_error_set(err, EFBIG, "manifest has too many layers (%zu)",
					 json_array_size(arr));
			goto out;
		}
		m->layers = xcalloc(json_array_size(arr) + 1, sizeof(*m->layers));
		json_array_foreach (arr, i, e) {
			_cleanup_free_ char *what = xasprintf("layers[%zu]", i);

			m->n_layers = i + 1;
			if (desc_parse(e, what, false, &m->layers[i], err) < 0)
				goto out;
		}
	} else {
		r = kn_error_set(err, EPROTONOSUPPORT, "unsupported manifest media type '%s'", mt);
		goto out;
	}
	*ret = steal_ptr(&m);
	r = 0;
out:
	json_decref(root);
	return r;
}

/* ---- blob sources --------------------------------------------------------------------------- */

#define SOURCES_FILE "registry-sources.json"
#define SOURCES_PER_BLOB 8

/* Reads the sources file into a JSON object (a fresh empty one when missing or unreadable). */
static json_t *sources_load(const char *path)
{
	struct kn_buf b = KN_BUF_INIT;
	json_t *j = NULL;
	kn_error *e = NULL;

	if (kn_read_file(path, 64u * 1024 * 1024, &b, &e) == 0)
		j = json_loadb(b.buf, b.len, 0, NULL);
	kn_error_free(e);
	kn_buf_release(&b);
	if (!json_is_object(j)) {
		json_decref(j);
		j = json_object();
	}
	return j;
}

int reg_sources_record(const char *root, const char *registry_repo, char *const *digests,
		       kn_error **err)
{
	_cleanup_free_ char *path = kn_path_join(root, SOURCES_FILE);
	_cleanup_free_ char *lockpath = kn_path_join(root, SOURCES_FILE ".lock");
	_cleanup_close_ int lfd = -1;
	_cleanup_free_ char *text = NULL;
	json_t *j;
	int r;

	lfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lfd < 0)
		return kn_error_errno(err, "cannot open '%s'", lockpath);
	if (flock(lfd, LOCK_EX) < 0)
		return kn_error_errno(err, "cannot lock '%s'", lockpath);
	j = sources_load(path);
	for (size_t i = 0; digests && digests[i]; i++) {
		json_t *arr = json_object_get(j, digests[i]);
		json_t *n = json_array();
		size_t k;
		json_t *v;

		json_array_append_new(n, json_string(registry_repo));
		json_array_foreach (arr, k, v) {
			if (json_array_size(n) >= SOURCES_PER_BLOB)
				break;
			if (json_is_string(v) && strcmp(json_string_value(v), registry_repo))
				json_array_append(n, v);
		}
		json_object_set_new(j, digests[i], n);
	}
	text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j);
	r = kn_write_file_atomic(path, text, strlen(text), 0644, err);
	return r < 0 ? kn_error_wrap(err, "cannot record blob sources") : 0;
}

char **reg_sources_lookup(const char *root, const char *digest)
{
	_cleanup_free_ char *path = kn_path_join(root, SOURCES_FILE);
	struct kn_strv sv = KN_STRV_INIT;
	json_t *j = sources_load(path);
	json_t *arr = json_object_get(j, digest);
	size_t i;
	json_t *v;

	json_array_foreach (arr, i, v)
		if (json_is_string(v))
			kn_strv_push(&sv, json_string_value(v));
	json_decref(j);
	return kn_strv_detach(&sv);
}

/* ---- parallel transfers --------------------------------------------------------------------- */

static pthread_mutex_t emit_lock = PTHREAD_MUTEX_INITIALIZER;

void reg_xfer_emit(const struct reg_xfer_progress *p, enum reg_transfer_event_kind kind,
		   const char *digest, bool is_config, uint64_t size, const char *text)
{
	struct reg_transfer_event ev = {
		.kind = kind, .digest = digest, .is_config = is_config, .size = size, .text = text,
	};

	if (!p || !p->fn)
		return;
	pthread_mutex_lock(&emit_lock);
	p->fn(&ev, p->data);
	pthread_mutex_unlock(&emit_lock);
}

void reg_xfer_emit_progress(const struct reg_xfer_progress *p, const char *digest, bool is_config,
			    uint64_t size, uint64_t current)
{
	struct reg_transfer_event ev = {
		.kind = REG_XFER_BLOB_PROGRESS, .digest = digest, .is_config = is_config,
		.size = size, .current = current,
	};

	if (!p || !p->fn)
		return;
	pthread_mutex_lock(&emit_lock);
	p->fn(&ev, p->data);
	pthread_mutex_unlock(&emit_lock);
}

struct pool {
	pthread_mutex_t lock;
	size_t next, n;
	int (*fn)(void *ctx, size_t i, kn_error **err);
	void *ctx;
	bool *stop;
	bool failed;
	kn_error *first;
};

static void *pool_worker(void *arg)
{
	struct pool *p = arg;

	for (;;) {
		kn_error *e = NULL;
		size_t i;

		pthread_mutex_lock(&p->lock);
		if (p->failed || p->next >= p->n) {
			pthread_mutex_unlock(&p->lock);
			return NULL;
		}
		i = p->next++;
		pthread_mutex_unlock(&p->lock);
		if (p->fn(p->ctx, i, &e) < 0) {
			pthread_mutex_lock(&p->lock);
			if (!p->failed) {
				p->failed = true;
				if (p->stop)
					__atomic_store_n(p->stop, true, __ATOMIC_RELAXED);
				p->first = e;
				e = NULL;
			}
			pthread_mutex_unlock(&p->lock);
			kn_error_free(e);
		}
	}
}

int reg_xfer_run(size_t n, unsigned jobs, int (*fn)(void *ctx, size_t i, kn_error **err),
		 void *ctx, bool *stop, kn_error **err)
{
	struct pool p = { .n = n, .fn = fn, .ctx = ctx, .stop = stop };
	pthread_t th[REG_MAX_JOBS];
	unsigned started = 0;

	if (jobs == 0)
		jobs = REG_DEFAULT_JOBS;
	if (jobs > REG_MAX_JOBS)
		jobs = REG_MAX_JOBS;
	if (jobs > n)
		jobs = n;
	pthread_mutex_init(&p.lock, NULL);
	/* The calling thread is worker 0: one job needs no thread at all. */
	for (unsigned t = 1; t < jobs; t++) {
		if (pthread_create(&th[started], NULL, pool_worker, &p) != 0)
			break; /* fewer threads still finish the work */
		started++;
	}
	pool_worker(&p);
	for (unsigned t = 0; t < started; t++)
		pthread_join(th[t], NULL);
	pthread_mutex_destroy(&p.lock);
	if (p.failed) {
		kn_error_propagate(err, p.first);
		return -1;
	}
	return 0;
}
