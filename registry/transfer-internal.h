/* kiln registry: internals shared by pull.c, push.c and manifest.c (not a public API). */
#ifndef KILN_REGISTRY_TRANSFER_INTERNAL_H
#define KILN_REGISTRY_TRANSFER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry/registry.h"

#define REG_MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define REG_MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define REG_MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define REG_MT_OCI_LAYER_TAR "application/vnd.oci.image.layer.v1.tar"
#define REG_MT_OCI_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define REG_MT_OCI_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"
#define REG_MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define REG_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define REG_MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
#define REG_MT_DOCKER_LAYER_GZIP "application/vnd.docker.image.rootfs.diff.tar.gzip"
#define REG_MT_DOCKER_LAYER_FOREIGN "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
#define REG_MT_DOCKER_SCHEMA1 "application/vnd.docker.distribution.manifest.v1+json"
#define REG_MT_DOCKER_SCHEMA1_SIGNED "application/vnd.docker.distribution.manifest.v1+prettyjws"

/** The Accept header value for manifest requests: all four supported types, indexes first. */
#define REG_MANIFEST_ACCEPT                                                                        \
	REG_MT_OCI_INDEX ", " REG_MT_DOCKER_LIST ", " REG_MT_OCI_MANIFEST ", " REG_MT_DOCKER_MANIFEST

/** Manifests and configs bigger than this are refused (hostile registries). */
#define REG_MANIFEST_MAX (4u * 1024 * 1024)
/** Indexes with more entries / manifests with more layers than this are refused. */
#define REG_MANIFEST_MAX_ENTRIES 4096

/** One content descriptor; strings owned. platform fields only set in index entries. */
struct reg_desc {
	char *media_type;
	char *digest;
	uint64_t size;
	struct reg_platform platform;
	bool has_platform;
	char **urls; /* foreign layers: NULL-terminated or NULL */
};

enum reg_manifest_kind {
	REG_MANIFEST_INDEX,    /* OCI index or Docker manifest list */
	REG_MANIFEST_IMAGE,    /* OCI manifest or Docker schema 2 */
};

/**
 * A parsed manifest. media_type: the type it was served/stored as (from its mediaType field,
 * else the Content-Type, else inferred). For an IMAGE, config and layers are set; for an INDEX,
 * entries. Release with reg_manifest_free().
 */
struct reg_manifest {
	enum reg_manifest_kind kind;
	char *media_type;
	struct reg_desc config;
	struct reg_desc *layers;
	size_t n_layers;
	struct reg_desc *entries;
	size_t n_entries;
};

/**
 * Parses a manifest body. content_type may be NULL. Refuses schema 1 (EPROTONOSUPPORT, with a
 * message that says so), unknown media types and malformed JSON (EBADMSG), bad digests in
 * descriptors, and too many entries.
 */
int reg_manifest_parse(const void *data, size_t len, const char *content_type,
		       struct reg_manifest **ret, kn_error **err);
void reg_manifest_free(struct reg_manifest *m);
DEFINE_FREEP(struct reg_manifest, reg_manifest_free)

/**
 * Chooses the entry of an index for platform p: exact os/arch match, variant matched with the
 * usual defaults (arm64 -> v8, arm -> v7 when unspecified); attestation entries
 * ("unknown/unknown") are never chosen. ENOENT when nothing matches, listing what the index has.
 */
const struct reg_desc *reg_index_select(const struct reg_manifest *idx, const struct reg_platform *p,
					kn_error **err);

/** True for "sha256:<64 lowercase hex>" (the only algorithm kiln accepts). */
bool reg_digest_valid(const char *digest);

/** Computes "sha256:<hex>" of data. Owned result. */
char *reg_digest_of(const void *data, size_t len);

/**
 * The store root's record of where blobs came from: ROOT/registry-sources.json, an object
 * { "<digest>": ["<registry>/<repository>", ...], ... } (most recent first, at most 8 per blob).
 * Written under the store root by pull and push; read by push to mount across repositories.
 */
int reg_sources_record(const char *root, const char *registry_repo, char *const *digests,
		       kn_error **err);
/** Returns the recorded sources of digest (owned NULL-terminated vector, maybe empty). */
char **reg_sources_lookup(const char *root, const char *digest);

/* ---- single blobs and manifests (pull.c, push.c) ---- */

struct reg_client;
/**
 * Downloads one blob of the client's repository into the store, its size and digest checked
 * while it streams (a mismatch stores nothing). stop (may be NULL) cancels it early.
 */
int reg_blob_fetch(struct reg_client *client, struct store *store, const char *digest,
		   uint64_t size, const bool *stop, kn_error **err);
/** Uploads blobs (digest and size of each) from the store unless the repository has them. */
int reg_blobs_push(struct reg_client *c, const struct store *s, const struct store_desc *blobs,
		   size_t n, unsigned jobs, kn_error **err);
/** PUTs a manifest under reference (tag or digest) with its media type; digest is checked. */
int reg_manifest_put(struct reg_client *c, const char *reference, const char *mt,
		     const struct kn_buf *body, const char *digest, kn_error **err);

/* ---- parallel transfers ---- */

/**
 * Runs fn(ctx, i, err) for i in [0, n) on up to jobs threads (jobs 0: REG_DEFAULT_JOBS). The
 * first failure stops handing out new items (running ones finish) and is returned in *err.
 * *stop (may be NULL) is set to true once an item failed so long transfers can give up early.
 */
#define REG_DEFAULT_JOBS 3
#define REG_MAX_JOBS 16
int reg_xfer_run(size_t n, unsigned jobs, int (*fn)(void *ctx, size_t i, kn_error **err),
		 void *ctx, bool *stop, kn_error **err);

/** Serialises progress callbacks coming from several threads. */
struct reg_xfer_progress {
	reg_transfer_progress_fn fn;
	void *data;
};
void reg_xfer_emit(const struct reg_xfer_progress *p, enum reg_transfer_event_kind kind,
		   const char *digest, bool is_config, uint64_t size, const char *text);
/** REG_XFER_BLOB_PROGRESS: current bytes of size moved. */
void reg_xfer_emit_progress(const struct reg_xfer_progress *p, const char *digest, bool is_config,
			    uint64_t size, uint64_t current);

#endif
