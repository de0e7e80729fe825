/* kiln layers: image configs, manifests, indexes (canonical JSON), and image resolution. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "layers/store-internal.h"

/* ---- image config -------------------------------------------------------------------------- */

static char *jdup(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_string(v) ? xstrdup(json_string_value(v)) : NULL;
}

static char *xdup0(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

struct image_config *image_config_new(void)
{
	struct image_config *c = xcalloc(1, sizeof(*c));
	const char *arch, *os, *variant;

	kn_platform_host(&os, &arch, &variant);
	c->architecture = xstrdup(arch);
	c->os = xstrdup(os);
	/* arm64's "v8" is the default and usually omitted from configs. */
	c->variant = variant && strcmp(arch, "arm64") ? xstrdup(variant) : NULL;
	c->rootfs_type = xstrdup("layers");
	c->diff_ids = xcalloc(1, sizeof(char *));
	c->extra = json_object();
	c->extra_config = json_object();
	return c;
}

static void history_release(struct image_history *h)
{
	free(h->created);
	free(h->created_by);
	free(h->author);
	free(h->comment);
}

void image_config_free(struct image_config *c)
{
	if (!c)
		return;
	free(c->architecture);
	free(c->os);
	free(c->variant);
	free(c->os_version);
	free(c->created);
	free(c->author);
	free(c->user);
	free(c->working_dir);
	free(c->stop_signal);
	kn_strv_free(c->env);
	kn_strv_free(c->entrypoint);
	kn_strv_free(c->cmd);
	kn_strv_free(c->exposed_ports);
	kn_strv_free(c->volumes);
	kn_strv_free(c->labels);
	kn_strv_free(c->on_build);
	kn_strv_free(c->shell);
	kn_strv_free(c->healthcheck.test);
	free(c->rootfs_type);
	kn_strv_free(c->diff_ids);
	for (size_t i = 0; i < c->n_history; i++)
		history_release(&c->history[i]);
	free(c->history);
	if (c->extra)
		json_decref(c->extra);
	if (c->extra_config)
		json_decref(c->extra_config);
	free(c);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Object keys -> sorted vector (for ExposedPorts, Volumes). NULL when not an object. */
static char **keys_strv(json_t *o)
{
	struct kn_strv v = KN_STRV_INIT;
	const char *k;
	json_t *val;
	char **r;

	if (!json_is_object(o))
		return NULL;
	json_object_foreach(o, k, val)
		kn_strv_push(&v, k);
	r = kn_strv_detach(&v);
	qsort(r, kn_strv_len(r), sizeof(char *), cmp_str);
	return r;
}

static int64_t jint(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? json_integer_value(v) : 0;
}

static const char *const known_top[] = { "architecture", "os",	   "variant", "os.version",
					  "created",	  "author", "config",  "rootfs",
					  "history" };
static const char *const known_cfg[] = { "User",       "ExposedPorts", "Env",	      "Entrypoint",
					  "Cmd",	"Volumes",	"WorkingDir", "Labels",
					  "StopSignal", "Healthcheck",	"OnBuild",    "Shell",
					  "ArgsEscaped" };

static json_t *unknown_keys(json_t *o, const char *const *known, size_t n)
{
	json_t *r = json_object();
	const char *k;
	json_t *v;

	json_object_foreach(o, k, v) {
		bool is_known = false;

		for (size_t i = 0; i < n; i++)
			if (!strcmp(k, known[i]))
				is_known = true;
		if (!is_known)
			json_object_set(r, k, v);
	}
	return r;
}

int image_config_parse(const char *json, size_t len, struct image_config **ret, kn_error **err)
{
	_cleanup_(image_config_freep) struct image_config *c = NULL;
	json_t *j = store_json_parse(json, len, "image config", err), *cfg, *rootfs, *hist, *e;
	size_t i;

	if (!j)
		return -1;
	if (!json_is_object(j)) {
		json_decref(j);
		return kn_error_set(err, EINVAL, "image config is not a JSON object");
	}
	c = xcalloc(1, sizeof(*c));
	c->architecture = jdup(j, "architecture");
	c->os = jdup(j, "os");
	c->variant = jdup(j, "variant");
	c->os_version = jdup(j, "os.version");
	c->created = jdup(j, "created");
	c->author = jdup(j, "author");
	c->extra = unknown_keys(j, known_top, KN_ARRAY_SIZE(known_top));
	cfg = json_object_get(j, "config");
	if (json_is_object(cfg)) {
		json_t *labels = json_object_get(cfg, "Labels"), *hc = json_object_get(cfg, "Healthcheck");

		c->user = jdup(cfg, "User");
		c->working_dir = jdup(cfg, "WorkingDir");
		c->stop_signal = jdup(cfg, "StopSignal");
		c->env = store_json_strv(json_object_get(cfg, "Env"));
		c->entrypoint = store_json_strv(json_object_get(cfg, "Entrypoint"));
		c->cmd = store_json_strv(json_object_get(cfg, "Cmd"));
		c->on_build = store_json_strv(json_object_get(cfg, "OnBuild"));
		c->shell = store_json_strv(json_object_get(cfg, "Shell"));
		c->exposed_ports = keys_strv(json_object_get(cfg, "ExposedPorts"));
		c->volumes = keys_strv(json_object_get(cfg, "Volumes"));
		c->args_escaped = json_is_true(json_object_get(cfg, "ArgsEscaped"));
		if (json_is_object(labels)) {
			const char *k;
			json_t *v;

			json_object_foreach(labels, k, v)
				if (json_is_string(v))
					image_config_set_label(c, k, json_string_value(v));
		}
		if (json_is_object(hc)) {
			c->healthcheck.test = store_json_strv(json_object_get(hc, "Test"));
			c->healthcheck.interval = jint(hc, "Interval");
			c->healthcheck.timeout = jint(hc, "Timeout");
			c->healthcheck.start_period = jint(hc, "StartPeriod");
			c->healthcheck.start_interval = jint(hc, "StartInterval");
			c->healthcheck.retries = (int)jint(hc, "Retries");
		}
		c->extra_config = unknown_keys(cfg, known_cfg, KN_ARRAY_SIZE(known_cfg));
	} else {
		c->extra_config = json_object();
	}
	rootfs = json_object_get(j, "rootfs");
	c->rootfs_type = jdup(rootfs, "type");
	c->diff_ids = store_json_strv(json_object_get(rootfs, "diff_ids"));
	if (!c->diff_ids)
		c->diff_ids = xcalloc(1, sizeof(char *));
	for (i = 0; c->diff_ids[i]; i++) {
		if (store_digest_check(c->diff_ids[i], err) < 0) {
			json_decref(j);
			return kn_error_wrap(err, "image config rootfs.diff_ids[%zu]", i);
		}
	}
	hist = json_object_get(j, "history");
	if (json_is_array(hist)) {
		c->history = xcalloc(json_array_size(hist) + 1, sizeof(*c->history));
		json_array_foreach(hist, i, e) {
			struct image_history *h = &c->history[c->n_history++];

			h->created = jdup(e, "created");
			h->created_by = jdup(e, "created_by");
			h->author = jdup(e, "author");
			h->comment = jdup(e, "comment");
			h->empty_layer = json_is_true(json_object_get(e, "empty_layer"));
		}
	}
	json_decref(j);
	*ret = steal_ptr(&c);
	return 0;
}

static void set_str(json_t *o, const char *k, const char *v)
{
	if (v)
		json_object_set_new(o, k, json_string(v));
}

static json_t *keys_object(char *const *v)
{
	json_t *o = json_object();

	for (size_t i = 0; v && v[i]; i++)
		json_object_set_new(o, v[i], json_object());
	return o;
}

static json_t *config_to_json(const struct image_config *c)
{
	json_t *j = c->extra ? json_deep_copy(c->extra) : json_object();
	json_t *cfg = c->extra_config ? json_deep_copy(c->extra_config) : json_object();
	json_t *rootfs = json_object();

	set_str(j, "architecture", c->architecture);
	set_str(j, "os", c->os);
	set_str(j, "variant", c->variant);
	set_str(j, "os.version", c->os_version);
	set_str(j, "created", c->created);
	set_str(j, "author", c->author);
	set_str(cfg, "User", c->user);
	set_str(cfg, "WorkingDir", c->working_dir);
	set_str(cfg, "StopSignal", c->stop_signal);
	if (c->env)
		json_object_set_new(cfg, "Env", store_strv_json(c->env));
	if (c->entrypoint)
		json_object_set_new(cfg, "Entrypoint", store_strv_json(c->entrypoint));
	if (c->cmd)
		json_object_set_new(cfg, "Cmd", store_strv_json(c->cmd));
	if (c->on_build)
		json_object_set_new(cfg, "OnBuild", store_strv_json(c->on_build));
	if (c->shell)
		json_object_set_new(cfg, "Shell", store_strv_json(c->shell));
	if (c->exposed_ports)
		json_object_set_new(cfg, "ExposedPorts", keys_object(c->exposed_ports));
	if (c->volumes)
		json_object_set_new(cfg, "Volumes", keys_object(c->volumes));
	if (c->args_escaped)
		json_object_set_new(cfg, "ArgsEscaped", json_true());
	if (c->labels) {
		json_t *l = json_object();

		for (size_t i = 0; c->labels[i]; i++) {
			const char *eq = strchr(c->labels[i], '=');
			_cleanup_free_ char *k = xstrndup(c->labels[i], eq - c->labels[i]);

			json_object_set_new(l, k, json_string(eq + 1));
		}
		json_object_set_new(cfg, "Labels", l);
	}
	if (c->healthcheck.test) {
		json_t *hc = json_object();

		json_object_set_new(hc, "Test", store_strv_json(c->healthcheck.test));
		if (c->healthcheck.interval)
			json_object_set_new(hc, "Interval", json_integer(c->healthcheck.interval));
		if (c->healthcheck.timeout)
			json_object_set_new(hc, "Timeout", json_integer(c->healthcheck.timeout));
		if (c->healthcheck.start_period)
			json_object_set_new(hc, "StartPeriod",
					    json_integer(c->healthcheck.start_period));
		if (c->healthcheck.start_interval)
			json_object_set_new(hc, "StartInterval",
					    json_integer(c->healthcheck.start_interval));
		if (c->healthcheck.retries)
			json_object_set_new(hc, "Retries", json_integer(c->healthcheck.retries));
		json_object_set_new(cfg, "Healthcheck", hc);
	}
	json_object_set_new(j, "config", cfg);
	json_object_set_new(rootfs, "type", json_string(c->rootfs_type ? c->rootfs_type : "layers"));
	json_object_set_new(rootfs, "diff_ids", store_strv_json(c->diff_ids));
	json_object_set_new(j, "rootfs", rootfs);
	if (c->n_history) {
		json_t *h = json_array();

		for (size_t i = 0; i < c->n_history; i++) {
			const struct image_history *e = &c->history[i];
			json_t *o = json_object();

			set_str(o, "created", e->created);
			set_str(o, "created_by", e->created_by);
			set_str(o, "author", e->author);
			set_str(o, "comment", e->comment);
			if (e->empty_layer)
				json_object_set_new(o, "empty_layer", json_true());
			json_array_append_new(h, o);
		}
		json_object_set_new(j, "history", h);
	}
	return j;
}

char *image_config_dump(const struct image_config *c, size_t *ret_len)
{
	json_t *j = config_to_json(c);
	char *s = store_json_dump(j, ret_len);

	json_decref(j);
	return s;
}

static void kv_set(char ***vp, const char *key, const char *value, bool sorted)
{
	struct kn_strv v = KN_STRV_INIT;
	size_t klen = strlen(key);
	bool replaced = false;

	for (size_t i = 0; *vp && (*vp)[i]; i++) {
		const char *e = (*vp)[i];

		if (!strncmp(e, key, klen) && (e[klen] == '=' || e[klen] == 0)) {
			if (value && !replaced)
				kn_strv_pushf(&v, "%s=%s", key, value);
			replaced = true;
			continue;
		}
		kn_strv_push(&v, e);
	}
	if (value && !replaced)
		kn_strv_pushf(&v, "%s=%s", key, value);
	kn_strv_free(*vp);
	*vp = kn_strv_detach(&v);
	if (sorted)
		qsort(*vp, kn_strv_len(*vp), sizeof(char *), cmp_str);
}

void image_config_set_label(struct image_config *c, const char *key, const char *value)
{
	kv_set(&c->labels, key, value, true);
}

void image_config_set_env(struct image_config *c, const char *key, const char *value)
{
	kv_set(&c->env, key, value, false);
}

void image_config_add_layer(struct image_config *c, const char *diff_id)
{
	size_t n = kn_strv_len(c->diff_ids);

	c->diff_ids = xreallocarray(c->diff_ids, n + 2, sizeof(char *));
	c->diff_ids[n] = xstrdup(diff_id);
	c->diff_ids[n + 1] = NULL;
}

void image_config_add_history(struct image_config *c, const struct image_history *h)
{
	struct image_history *e;

	c->history = xreallocarray(c->history, c->n_history + 1, sizeof(*c->history));
	e = &c->history[c->n_history++];
	e->created = xdup0(h->created);
	e->created_by = xdup0(h->created_by);
	e->author = xdup0(h->author);
	e->comment = xdup0(h->comment);
	e->empty_layer = h->empty_layer;
}

struct image_config *image_config_dup(const struct image_config *c)
{
	size_t len;
	_cleanup_free_ char *s = image_config_dump(c, &len);
	struct image_config *r = NULL;

	if (image_config_parse(s, len, &r, NULL) < 0)
		abort(); /* our own canonical output always parses */
	return r;
}

/* ---- manifests and indexes ----------------------------------------------------------------- */

void image_manifest_release(struct image_manifest *m)
{
	if (!m)
		return;
	free(m->media_type);
	store_desc_release(&m->config);
	for (size_t i = 0; i < m->n_layers; i++)
		store_desc_release(&m->layers[i]);
	free(m->layers);
	if (m->annotations)
		json_decref(m->annotations);
	memset(m, 0, sizeof(*m));
}

static bool mt_is_index(const char *mt)
{
	return !strcmp(mt, STORE_MT_OCI_INDEX) || !strcmp(mt, STORE_MT_DOCKER_LIST);
}

static bool mt_is_manifest(const char *mt)
{
	return !strcmp(mt, STORE_MT_OCI_MANIFEST) || !strcmp(mt, STORE_MT_DOCKER_MANIFEST);
}

/* A declared type that says something: not absent and not one of the generic JSON types. The
 * Content-Type's parameters ("; charset=utf-8") are dropped. Owned, NULL when it says nothing. */
static char *mt_meaningful(const char *mt)
{
	size_t n;

	if (!mt)
		return NULL;
	while (*mt == ' ' || *mt == '\t')
		mt++;
	n = strcspn(mt, "; \t");
	if (!n || (n == 16 && !strncmp(mt, "application/json", n)) ||
	    (n == 10 && !strncmp(mt, "text/plain", n)) ||
	    (n == 24 && !strncmp(mt, "application/octet-stream", n)))
		return NULL;
	return xstrndup(mt, n);
}

static int doc_check(json_t *j, const char *declared, kn_error **err)
{
	_cleanup_free_ char *decl = mt_meaningful(declared);
	json_t *mtj = json_object_get(j, "mediaType");
	const char *field = json_is_string(mtj) ? json_string_value(mtj) : NULL;
	bool has_manifests = json_object_get(j, "manifests") != NULL;
	bool has_image = json_object_get(j, "layers") || json_object_get(j, "config");
	const char *shape = has_manifests ? "an index" : "an image manifest";

	if (!json_is_object(j))
		return 0;
	if (has_manifests && has_image)
		return kn_error_set(err, EBADMSG,
				    "ambiguous manifest: it has both 'manifests' and '%s', so it reads "
				    "as an index and as an image manifest",
				    json_object_get(j, "layers") ? "layers" : "config");
	if (field && *field) {
		if ((mt_is_index(field) && has_image) || (mt_is_manifest(field) && has_manifests))
			return kn_error_set(err, EBADMSG,
					    "ambiguous manifest: its mediaType is '%.100s' but it is "
					    "shaped as %s",
					    field, has_image ? "an image manifest" : "an index");
		if (decl && strcmp(decl, field))
			return kn_error_set(err, EBADMSG,
					    "ambiguous manifest: its mediaType is '%.100s' but it was "
					    "served or referenced as '%.100s'",
					    field, decl);
	} else if (decl && ((mt_is_index(decl) && !has_manifests) ||
			    (mt_is_manifest(decl) && has_manifests))) {
		return kn_error_set(err, EBADMSG,
				    "ambiguous manifest: it was served or referenced as '%.100s' but "
				    "it is shaped as %s",
				    decl, shape);
	}
	return 0;
}

int image_doc_check(const char *json, size_t len, const char *declared, kn_error **err)
{
	json_t *j = store_json_parse(json, len, "manifest", err);
	int r;

	if (!j)
		return -1;
	r = doc_check(j, declared, err);
	json_decref(j);
	return r;
}

int image_manifest_parse(const char *json, size_t len, struct image_manifest *ret, kn_error **err)
{
	struct image_manifest m = { 0 };
	json_t *j = store_json_parse(json, len, "manifest", err), *layers, *e, *ann;
	size_t i;

	if (!j)
		return -1;
	if (!json_is_object(j) || json_integer_value(json_object_get(j, "schemaVersion")) != 2) {
		json_decref(j);
		return kn_error_set(err, EINVAL, "manifest is not an image manifest (schemaVersion 2)");
	}
	if (doc_check(j, NULL, err) < 0) {
		json_decref(j);
		return -1;
	}
	if (json_object_get(j, "manifests") || !json_object_get(j, "config")) {
		json_decref(j);
		return kn_error_set(err, EINVAL, "manifest has no config (is it an index?)");
	}
	m.media_type = jdup(j, "mediaType");
	if (!m.media_type)
		m.media_type = xstrdup(STORE_MT_OCI_MANIFEST);
	if (strcmp(m.media_type, STORE_MT_OCI_MANIFEST) && strcmp(m.media_type, STORE_MT_DOCKER_MANIFEST)) {
		kn_error_set(err, EINVAL, "unsupported manifest media type '%.100s'", m.media_type);
		goto fail;
	}
	if (store_desc_from_json(json_object_get(j, "config"), &m.config, err) < 0) {
		kn_error_wrap(err, "manifest config");
		goto fail;
	}
	layers = json_object_get(j, "layers");
	if (!json_is_array(layers)) {
		kn_error_set(err, EINVAL, "manifest has no layers array");
		goto fail;
	}
	m.layers = xcalloc(json_array_size(layers) + 1, sizeof(*m.layers));
	json_array_foreach(layers, i, e) {
		if (store_desc_from_json(e, &m.layers[i], err) < 0) {
			kn_error_wrap(err, "manifest layer %zu", i);
			goto fail;
		}
		m.n_layers++;
	}
	ann = json_object_get(j, "annotations");
	if (json_is_object(ann))
		m.annotations = json_deep_copy(ann);
	json_decref(j);
	*ret = m;
	return 0;
fail:
	json_decref(j);
	image_manifest_release(&m);
	return -1;
}

char *image_manifest_dump(const struct image_manifest *m, size_t *ret_len)
{
	json_t *j = json_object(), *layers = json_array();
	char *s;

	json_object_set_new(j, "schemaVersion", json_integer(2));
	json_object_set_new(j, "mediaType", json_string(m->media_type ? m->media_type : STORE_MT_OCI_MANIFEST));
	json_object_set_new(j, "config", store_desc_to_json(&m->config));
	for (size_t i = 0; i < m->n_layers; i++)
		json_array_append_new(layers, store_desc_to_json(&m->layers[i]));
	json_object_set_new(j, "layers", layers);
	if (m->annotations && json_object_size(m->annotations))
		json_object_set(j, "annotations", m->annotations);
	s = store_json_dump(j, ret_len);
	json_decref(j);
	return s;
}

void image_index_release(struct image_index *ix)
{
	if (!ix)
		return;
	free(ix->media_type);
	for (size_t i = 0; i < ix->n_manifests; i++)
		store_desc_release(&ix->manifests[i]);
	free(ix->manifests);
	if (ix->annotations)
		json_decref(ix->annotations);
	memset(ix, 0, sizeof(*ix));
}

int image_index_parse(const char *json, size_t len, struct image_index *ret, kn_error **err)
{
	struct image_index ix = { 0 };
	json_t *j = store_json_parse(json, len, "image index", err), *arr, *e, *ann;
	size_t i;

	if (!j)
		return -1;
	arr = json_object_get(j, "manifests");
	if (!json_is_object(j) || !json_is_array(arr)) {
		json_decref(j);
		return kn_error_set(err, EINVAL, "not an image index (no manifests array)");
	}
	if (doc_check(j, NULL, err) < 0) {
		json_decref(j);
		return -1;
	}
	ix.media_type = jdup(j, "mediaType");
	if (!ix.media_type)
		ix.media_type = xstrdup(STORE_MT_OCI_INDEX);
	ix.manifests = xcalloc(json_array_size(arr) + 1, sizeof(*ix.manifests));
	json_array_foreach(arr, i, e) {
		if (store_desc_from_json(e, &ix.manifests[i], err) < 0) {
			json_decref(j);
			image_index_release(&ix);
			return kn_error_wrap(err, "image index entry %zu", i);
		}
		ix.n_manifests++;
	}
	ann = json_object_get(j, "annotations");
	if (json_is_object(ann))
		ix.annotations = json_deep_copy(ann);
	json_decref(j);
	*ret = ix;
	return 0;
}

char *image_index_dump(const struct image_index *ix, size_t *ret_len)
{
	json_t *j = json_object(), *arr = json_array();
	char *s;

	json_object_set_new(j, "schemaVersion", json_integer(2));
	json_object_set_new(j, "mediaType", json_string(ix->media_type ? ix->media_type : STORE_MT_OCI_INDEX));
	for (size_t i = 0; i < ix->n_manifests; i++)
		json_array_append_new(arr, store_desc_to_json(&ix->manifests[i]));
	json_object_set_new(j, "manifests", arr);
	if (ix->annotations && json_object_size(ix->annotations))
		json_object_set(j, "annotations", ix->annotations);
	s = store_json_dump(j, ret_len);
	json_decref(j);
	return s;
}

int image_index_choose(const struct image_index *ix, const char *arch, const char *os,
		       const char *variant, kn_error **err)
{
	const char *harch, *hos, *hvariant;
	int best = -1;

	kn_platform_host(&hos, &harch, &hvariant);
	if (!arch) {
		arch = harch;
		variant = hvariant;
	}
	if (!os)
		os = hos;
	for (size_t i = 0; i < ix->n_manifests; i++) {
		const struct store_platform *p = ix->manifests[i].platform;

		if (!p || !p->architecture || !p->os)
			continue;
		if (strcmp(p->architecture, arch) || strcmp(p->os, os))
			continue;
		if (variant && p->variant && strcmp(p->variant, variant))
			continue;
		if (best < 0 || (variant && p->variant))
			best = (int)i;
	}
	if (best < 0 && ix->n_manifests == 1 && !ix->manifests[0].platform)
		best = 0;
	if (best < 0)
		return kn_error_set(err, ENOENT, "no manifest for platform '%s/%s%s%s' in the index",
				    os, arch, variant ? "/" : "", variant ? variant : "");
	return best;
}

const char *image_layer_media_type(const char *mt, enum image_format fmt)
{
	static const char *const pairs[][2] = {
		{ STORE_MT_OCI_LAYER, STORE_MT_DOCKER_LAYER },
		{ STORE_MT_OCI_LAYER_GZIP, STORE_MT_DOCKER_LAYER_GZIP },
		{ STORE_MT_OCI_LAYER_ZSTD, STORE_MT_DOCKER_LAYER_ZSTD },
	};

	if (!mt)
		return fmt == IMAGE_FORMAT_DOCKER ? STORE_MT_DOCKER_LAYER_GZIP : STORE_MT_OCI_LAYER_GZIP;
	for (size_t i = 0; i < KN_ARRAY_SIZE(pairs); i++) {
		if (!strcmp(mt, pairs[i][0]) || !strcmp(mt, pairs[i][1]))
			return pairs[i][fmt == IMAGE_FORMAT_DOCKER ? 1 : 0];
	}
	return mt;
}

/* ---- resolving images ---------------------------------------------------------------------- */

void store_image_free(struct store_image *img)
{
	if (!img)
		return;
	free(img->name);
	store_desc_release(&img->top);
	store_desc_release(&img->manifest_desc);
	image_manifest_release(&img->manifest);
	free(img->config_json);
	image_config_free(img->config);
	free(img->id);
	free(img);
}

static bool is_index_type(const char *mt)
{
	return mt && (!strcmp(mt, STORE_MT_OCI_INDEX) || !strcmp(mt, STORE_MT_DOCKER_LIST));
}

static int image_load(const struct store *s, const struct store_desc *top, const char *name,
		      struct store_image **ret, kn_error **err)
{
	_cleanup_(store_image_freep) struct store_image *img = xcalloc(1, sizeof(*img));
	struct kn_buf b = KN_BUF_INIT;
	int r;

	img->name = name ? xstrdup(name) : NULL;
	store_desc_copy(&img->top, top);
	if (store_blob_read(s, top->digest, STORE_JSON_MAX, &b, err) < 0)
		goto fail;
	if (is_index_type(top->media_type) || strstr(b.buf, "\"manifests\"")) {
		struct image_index ix;
		int i;

		if (image_index_parse(b.buf, b.len, &ix, err) < 0)
			goto fail;
		i = image_index_choose(&ix, NULL, NULL, NULL, err);
		if (i < 0) {
			image_index_release(&ix);
			goto fail;
		}
		store_desc_copy(&img->manifest_desc, &ix.manifests[i]);
		image_index_release(&ix);
		kn_buf_reset(&b);
		if (store_blob_read(s, img->manifest_desc.digest, STORE_JSON_MAX, &b, err) < 0)
			goto fail;
	} else {
		store_desc_copy(&img->manifest_desc, top);
	}
	if (image_manifest_parse(b.buf, b.len, &img->manifest, err) < 0)
		goto fail;
	kn_buf_reset(&b);
	if (store_blob_read(s, img->manifest.config.digest, STORE_JSON_MAX, &b, err) < 0)
		goto fail;
	r = image_config_parse(b.buf, b.len, &img->config, err);
	if (r < 0)
		goto fail;
	img->config_len = b.len;
	img->config_json = kn_buf_detach(&b);
	img->id = xstrdup(img->manifest.config.digest);
	*ret = steal_ptr(&img);
	return 0;
fail:
	kn_buf_release(&b);
	return kn_error_wrap(err, "image '%s'", name ? name : top->digest);
}

static bool hex_prefix(const char *p)
{
	size_t n = strlen(p);

	if (n < 4 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return false;
	return true;
}

int store_image_resolve(const struct store *s, const char *name, struct store_image **ret,
			kn_error **err)
{
	struct store_ref *refs = NULL;
	size_t n = 0;
	_cleanup_free_ char *norm = NULL;
	const char *prefix = NULL;
	int r = -1;

	if (store_ref_list(s, &refs, &n, err) < 0)
		return -1;
	if (store_ref_normalize(name, &norm, NULL) == 0) {
		const char *at = strchr(norm, '@');

		for (size_t i = 0; i < n; i++) {
			bool match = refs[i].name && !strcmp(refs[i].name, norm);

			if (!match && at && !strcmp(refs[i].desc.digest, at + 1))
				match = true;
			if (match) {
				r = image_load(s, &refs[i].desc, refs[i].name, ret, err);
				goto out;
			}
		}
	}
	prefix = !strncmp(name, "sha256:", 7) ? name + 7 : name;
	if (hex_prefix(prefix)) {
		size_t plen = strlen(prefix);
		struct store_image *found = NULL;

		for (size_t i = 0; i < n; i++) {
			struct store_image *img = NULL;
			bool top_match = !strncmp(store_digest_hex(refs[i].desc.digest), prefix, plen);

			if (image_load(s, &refs[i].desc, refs[i].name, &img, NULL) < 0)
				continue;
			if (!top_match && strncmp(store_digest_hex(img->id), prefix, plen)) {
				store_image_free(img);
				continue;
			}
			if (found && strcmp(found->id, img->id)) {
				store_image_free(img);
				store_image_free(found);
				r = kn_error_set(err, EINVAL, "image ID prefix '%s' is ambiguous", name);
				goto out;
			}
			if (found) {
				store_image_free(img);
				continue;
			}
			found = img;
		}
		if (found) {
			/* Found by ID: no name was matched. */
			free(found->name);
			found->name = NULL;
			*ret = found;
			r = 0;
			goto out;
		}
	}
	r = kn_error_set(err, ENOENT, "image '%s' not found", name);
out:
	store_refs_free(refs, n);
	return r;
}

int64_t store_image_size(const struct store_image *img)
{
	int64_t total = img->manifest.config.size;

	for (size_t i = 0; i < img->manifest.n_layers; i++)
		total += img->manifest.layers[i].size;
	return total;
}

int store_image_load(const struct store *s, const struct store_desc *top, const char *name,
		     struct store_image **ret, kn_error **err)
{
	return image_load(s, top, name, ret, err);
}

int store_image_write(struct store *s, const struct image_config *config,
		      const struct store_desc *layers, size_t n_layers, enum image_format fmt,
		      const char *name, struct store_desc *ret_manifest, char **ret_id,
		      kn_error **err)
{
	_cleanup_free_ char *norm = NULL;
	struct store_desc md = { 0 };

	if (name && store_ref_normalize(name, &norm, err) < 0)
		return -1;
	if (store_image_put(s, config, layers, n_layers, fmt, &md, ret_id, err) < 0)
		return -1;
	if (store_ref_set(s, norm, &md, err) < 0) {
		store_desc_release(&md);
		if (ret_id) {
			free(*ret_id);
			*ret_id = NULL;
		}
		return -1;
	}
	if (ret_manifest)
		*ret_manifest = md;
	else
		store_desc_release(&md);
	return 0;
}

int store_image_put(struct store *s, const struct image_config *config,
		    const struct store_desc *layers, size_t n_layers, enum image_format fmt,
		    struct store_desc *ret_manifest, char **ret_id, kn_error **err)
{
	_cleanup_free_ char *cfg_json = NULL, *cfg_digest = NULL, *man_json = NULL;
	_cleanup_free_ char *man_digest = NULL;
	struct image_manifest m = { 0 };
	struct store_desc md = { 0 };
	size_t cfg_len, man_len;
	int r = -1;

	if (kn_strv_len(config->diff_ids) != n_layers)
		return kn_error_set(err, EINVAL, "image has %zu layers but %zu diff_ids", n_layers,
				    kn_strv_len(config->diff_ids));
	for (size_t i = 0; i < n_layers; i++)
		if (!store_blob_exists(s, layers[i].digest))
			return kn_error_set(err, ENOENT, "layer blob '%s' is not in the store",
					    layers[i].digest);
	cfg_json = image_config_dump(config, &cfg_len);
	if (store_blob_put(s, cfg_json, cfg_len, &cfg_digest, err) < 0)
		return -1;
	m.media_type = xstrdup(fmt == IMAGE_FORMAT_DOCKER ? STORE_MT_DOCKER_MANIFEST : STORE_MT_OCI_MANIFEST);
	m.config.media_type = xstrdup(fmt == IMAGE_FORMAT_DOCKER ? STORE_MT_DOCKER_CONFIG : STORE_MT_OCI_CONFIG);
	m.config.digest = xstrdup(cfg_digest);
	m.config.size = (int64_t)cfg_len;
	m.layers = xcalloc(n_layers + 1, sizeof(*m.layers));
	for (size_t i = 0; i < n_layers; i++) {
		store_desc_copy(&m.layers[i], &layers[i]);
		free(m.layers[i].media_type);
		m.layers[i].media_type = xstrdup(image_layer_media_type(layers[i].media_type, fmt));
	}
	m.n_layers = n_layers;
	man_json = image_manifest_dump(&m, &man_len);
	if (store_blob_put(s, man_json, man_len, &man_digest, err) < 0)
		goto out;
	md.media_type = xstrdup(m.media_type);
	md.digest = xstrdup(man_digest);
	md.size = (int64_t)man_len;
	if (ret_manifest) {
		*ret_manifest = md;
		memset(&md, 0, sizeof(md));
	}
	if (ret_id)
		*ret_id = steal_ptr(&cfg_digest);
	r = 0;
out:
	store_desc_release(&md);
	image_manifest_release(&m);
	return r;
}

int store_index_write(struct store *s, const struct store_desc *manifests, size_t n,
		      enum image_format fmt, const char *name, struct store_desc *ret_index,
		      kn_error **err)
{
	struct image_index ix = { 0 };
	struct store_desc d = { 0 };
	_cleanup_free_ char *norm = NULL, *json = NULL, *digest = NULL;
	size_t len;
	int r = -1;

	if (!n)
		return kn_error_set(err, EINVAL, "an image index needs at least one manifest");
	if (name && store_ref_normalize(name, &norm, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!manifests[i].platform || !manifests[i].platform->os ||
		    !manifests[i].platform->architecture)
			return kn_error_set(err, EINVAL, "index manifest '%s' has no platform",
					    manifests[i].digest);
		if (!store_blob_exists(s, manifests[i].digest))
			return kn_error_set(err, ENOENT, "manifest blob '%s' is not in the store",
					    manifests[i].digest);
	}
	ix.media_type = xstrdup(fmt == IMAGE_FORMAT_DOCKER ? STORE_MT_DOCKER_LIST : STORE_MT_OCI_INDEX);
	ix.manifests = xcalloc(n, sizeof(*ix.manifests));
	for (size_t i = 0; i < n; i++) {
		store_desc_copy(&ix.manifests[i], &manifests[i]);
		if (ix.manifests[i].annotations) {
			json_object_del(ix.manifests[i].annotations, STORE_ANNOT_REF_NAME);
			if (!json_object_size(ix.manifests[i].annotations)) {
				json_decref(ix.manifests[i].annotations);
				ix.manifests[i].annotations = NULL;
			}
		}
		ix.n_manifests++;
	}
	json = image_index_dump(&ix, &len);
	if (store_blob_put(s, json, len, &digest, err) < 0)
		goto out;
	d.media_type = xstrdup(ix.media_type);
	d.digest = steal_ptr(&digest);
	d.size = (int64_t)len;
	if (store_ref_set(s, norm, &d, err) < 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (store_ref_delete_untagged(s, manifests[i].digest, err) < 0)
			goto out;
	if (ret_index) {
		*ret_index = d;
		memset(&d, 0, sizeof(d));
	}
	r = 0;
out:
	store_desc_release(&d);
	image_index_release(&ix);
	return r;
}
