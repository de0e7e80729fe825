/* kiln builder: the build cache. A step's key names everything its result depends on; an entry
 * holds the whole image config after the step plus the layer descriptors, so a hit restores the
 * exact state (same history times, hence the same image ID) without running anything. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "builder/build-internal.h"
#include "builder/remote-cache.h"

char *cache_key(const char *parent, const char *text, const void *extra, size_t extra_len)
{
	struct store_hash *h = store_hash_new("sha256", NULL);
	_cleanup_free_ char *d = NULL;
	static const char zero = 0;

	store_hash_update(h, "kiln-step-v1", 12);
	store_hash_update(h, &zero, 1);
	store_hash_update(h, parent ? parent : "", parent ? strlen(parent) : 0);
	store_hash_update(h, &zero, 1);
	store_hash_update(h, text, strlen(text));
	store_hash_update(h, &zero, 1);
	if (extra_len)
		store_hash_update(h, extra, extra_len);
	d = store_hash_final(h);
	store_hash_free(h);
	return xstrdup(store_digest_hex(d));
}

int cache_lookup(struct bld_state *st, const char *key, kn_error **err)
{
	_cleanup_free_ char *text = NULL;
	kn_error *e = NULL;
	json_t *root = NULL, *layers, *cfg;
	struct image_config *config = NULL;
	struct store_desc *descs = NULL;
	size_t n = 0, i;
	int ret = 0;

	if (store_cache_get(st->store, key, &text, &e) < 0) {
		bool missing = e->code == ENOENT;

		if (missing) {
			kn_error_free(e);
			goto out;
		}
		kn_error_propagate(err, e);
		return -1;
	}
	root = json_loads(text, 0, NULL);
	if (!root)
		goto out; /* a damaged entry is a miss; the step reruns and rewrites it */
	cfg = json_object_get(root, "config");
	layers = json_object_get(root, "layers");
	if (!json_is_string(cfg) || !json_is_array(layers))
		goto out;
	if (image_config_parse(json_string_value(cfg), json_string_length(cfg), &config, &e) < 0) {
		kn_error_free(e);
		goto out;
	}
	n = json_array_size(layers);
	descs = xcalloc(n ? n : 1, sizeof(*descs));
	for (i = 0; i < n; i++) {
		if (store_desc_from_json(json_array_get(layers, i), &descs[i], &e) < 0) {
			kn_error_free(e);
			goto out;
		}
		/* A pruned blob makes the entry useless. */
		if (!store_blob_exists(st->store, descs[i].digest))
			goto out;
	}
	ret = cache_entry_apply(st, steal_ptr(&config), descs, n, key, err);
out:
	if (descs) {
		for (size_t j = 0; j < n; j++)
			store_desc_release(&descs[j]);
		free(descs);
	}
	image_config_free(config);
	json_decref(root);
	if (ret == 0)
		ret = rcache_lookup(st, key, err);
	if (ret == 1)
		rcache_record(st, key);
	return ret;
}

int cache_entry_apply(struct bld_state *st, struct image_config *config, const struct store_desc *descs,
		      size_t n, const char *key, kn_error **err)
{
	image_config_free(st->config);
	st->config = config;
	for (size_t i = 0; i < st->n_layers; i++)
		store_desc_release(&st->layers[i]);
	st->n_layers = 0;
	free(st->chain_id);
	st->chain_id = NULL;
	for (size_t i = 0; i < n; i++) {
		const char *diff_id = st->config->diff_ids && i < kn_strv_len(st->config->diff_ids)
					      ? st->config->diff_ids[i]
					      : NULL;
		if (!diff_id)
			return kn_error_set(err, EBADMSG, "cache entry %s: diff_ids do not match layers", key);
		bld_state_add_layer(st, &descs[i], diff_id);
	}
	return 1;
}

int cache_store(struct bld_state *st, const char *key, kn_error **err)
{
	_cleanup_free_ char *cfg = NULL, *text = NULL;
	size_t len = 0;
	json_t *root = json_object(), *layers = json_array(), *blobs = json_array();
	int r;

	cfg = image_config_dump(st->config, &len);
	json_object_set_new(root, "v", json_integer(1));
	json_object_set_new(root, "config", json_stringn(cfg, len));
	for (size_t i = 0; i < st->n_layers; i++) {
		json_array_append_new(layers, store_desc_to_json(&st->layers[i]));
		json_array_append_new(blobs, json_string(st->layers[i].digest));
	}
	json_object_set_new(root, "layers", layers);
	json_object_set_new(root, "blobs", blobs);
	if (st->base_id) {
		json_t *images = json_array();

		json_array_append_new(images, json_string(st->base_id));
		json_object_set_new(root, "images", images);
	}
	if (st->chain_id) {
		json_t *snaps = json_array();

		json_array_append_new(snaps, json_string(st->chain_id));
		json_object_set_new(root, "snapshots", snaps);
	}
	text = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(root);
	rcache_record(st, key);
	/* After a hit on an imported cache, a layer may not be here yet: no local entry then. */
	for (size_t i = 0; st->b->rcache && i < st->n_layers; i++)
		if (!store_blob_exists(st->store, st->layers[i].digest))
			return 0;
	/* Started on the first miss: a fully cached build never pays for the second handle. */
	pthread_mutex_lock(&st->b->mu);
	if (!st->b->cache_writer) {
		kn_error *e = NULL;

		if (cache_writer_start(st->b, &e) < 0)
			kn_error_free(e); /* then write synchronously */
	}
	pthread_mutex_unlock(&st->b->mu);
	if (st->b->cache_writer)
		return cache_writer_queue(st->b->cache_writer, key, steal_ptr(&text));
	r = store_cache_put(st->store, key, text, err);
	return r < 0 ? -1 : 0;
}

struct cache_item {
	char *key, *json;
	struct cache_item *next;
};

struct cache_writer {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct cache_item *head, *tail;
	bool done;
	struct store *store;
	kn_error *error;
};

static void *cache_writer_main(void *arg)
{
	struct cache_writer *w = arg;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		struct cache_item *it;

		while (!w->head && !w->done)
			pthread_cond_wait(&w->cv, &w->mu);
		it = w->head;
		if (!it)
			break;
		w->head = it->next;
		if (!w->head)
			w->tail = NULL;
		pthread_mutex_unlock(&w->mu);
		if (!w->error)
			(void)store_cache_put(w->store, it->key, it->json, &w->error);
		free(it->key);
		free(it->json);
		free(it);
		pthread_mutex_lock(&w->mu);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int cache_writer_queue(struct cache_writer *w, const char *key, char *json)
{
	struct cache_item *it = xcalloc(1, sizeof(*it));

	it->key = xstrdup(key);
	it->json = json;
	pthread_mutex_lock(&w->mu);
	if (w->tail)
		w->tail->next = it;
	else
		w->head = it;
	w->tail = it;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	return 0;
}

int cache_writer_start(struct bld *b, kn_error **err)
{
	struct cache_writer *w = xcalloc(1, sizeof(*w));
	int r;

	if (store_open(b->o->root, STORE_WRITE, &w->store, err) < 0) {
		free(w);
		return -1;
	}
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	r = pthread_create(&w->thread, NULL, cache_writer_main, w);
	if (r) {
		store_free(w->store);
		pthread_mutex_destroy(&w->mu);
		pthread_cond_destroy(&w->cv);
		free(w);
		errno = r;
		return kn_error_errno(err, "cannot start the cache writer");
	}
	b->cache_writer = w;
	return 0;
}

int cache_writer_finish(struct bld *b, kn_error **err)
{
	struct cache_writer *w = b->cache_writer;
	int ret = 0;

	if (!w)
		return 0;
	b->cache_writer = NULL;
	pthread_mutex_lock(&w->mu);
	w->done = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	if (w->error) {
		kn_error_propagate(err, w->error);
		ret = -1;
	}
	store_free(w->store);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free(w);
	return ret;
}
