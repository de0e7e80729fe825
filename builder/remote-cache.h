/* kiln builder: the build cache exported to and imported from a registry, an image's config
 * (inline) or an OCI layout directory (--cache-to / --cache-from). Format: man/kiln-build-cache.5. */
#ifndef KILN_BUILDER_REMOTE_CACHE_H
#define KILN_BUILDER_REMOTE_CACHE_H

#include "builder/build-internal.h"

/** The config media type of a cache manifest, and the image config key of an inline cache. */
#define RCACHE_MT_CONFIG "application/vnd.kiln.build-cache.config.v1+json"
#define RCACHE_INLINE_KEY "kiln.build-cache.v1"

/**
 * Parses o->cache_from / o->cache_to into b->rcache (left NULL when neither is given), then
 * imports every --cache-from source: its manifest and cache metadata only, never a layer. A
 * source that is missing, unreachable or unreadable is a warning; so is each corrupt entry,
 * which is skipped. Fails only on a malformed spec (EINVAL).
 */
int rcache_open(struct bld *b, kn_error **err);
void rcache_free(struct rcache *rc);

/**
 * Looks key up in the imported entries (the first source holding it wins). A hit replaces the
 * state's config and layers like a local hit, without downloading anything. 1 hit, 0 miss.
 */
int rcache_lookup(struct bld_state *st, const char *key, kn_error **err);
/** Remembers the state after the step keyed key, for --cache-to (a no-op without one). */
void rcache_record(struct bld_state *st, const char *key);
/**
 * Makes sure the store holds the blobs of layers[0..n), downloading those that only an imported
 * cache has (the lazy part of the import). Needs s opened STORE_WRITE.
 */
int rcache_fetch(struct bld *b, struct store *s, const struct store_desc *layers, size_t n,
		 kn_error **err);
/**
 * With an imported cache, resolves a base image that is not in the store to its manifest and
 * config only (*ret owned, not stored): rcache_fetch downloads its layers when something needs
 * them, so a build whose steps are all cached never downloads a build stage's base. Returns 1
 * when resolved, 0 when no cache was imported (pull it instead), -1 with an error.
 */
int rcache_image(struct bld *b, const char *ref, struct store_image **ret, kn_error **err);
/** Drops an inherited inline cache from a base image's config (it describes another build). */
void rcache_strip(struct image_config *c);
/** With --cache-to type=inline: the cache of the final image's steps into its config. */
void rcache_inline(struct bld *b, struct image_config *final);
/** Writes every registry and local --cache-to (after the image is in the store). */
int rcache_export(struct bld *b, kn_error **err);

#endif
