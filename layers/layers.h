/* kiln layers: the local content store (OCI image layout), images, layer tars, archives. */
#ifndef KILN_LAYERS_H
#define KILN_LAYERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/base.h"

/* ==== store, images, cache, archives (store helper) ========================================== */
/* KILN-LAYERS-STORE-API */
/*
 * The local content store is an OCI image layout at ROOT:
 *   ROOT/oci-layout, ROOT/index.json         image names (org.opencontainers.image.ref.name
 *                                            annotations holding full normalized references)
 *   ROOT/blobs/<alg>/<hex>                   content-addressed blobs (sha256 today; the code
 *                                            takes the algorithm from the digest string)
 *   ROOT/tmp/<pid>-<rand>/                   per-handle temp dir, flock'ed while the handle lives;
 *                                            unlocked leftovers are removed by the next open
 *   ROOT/snapshots/<chainid-hex>/            unpacked layer trees (written by the layer helper)
 *   ROOT/cache/<key>.json                    build cache entries
 *   ROOT/lock                                flock: shared by every STORE_WRITE handle, exclusive
 *                                            for garbage collection (prune)
 *   ROOT/index.lock                          flock held while index.json is read-modified-written
 *
 * Crash safety: every file is written to a temp file, fsynced, renamed into place, and its
 * directory fsynced; blobs are renamed into place only after their digest was checked; index.json
 * is replaced atomically. Readers take no lock and never see partial data.
 *
 * Digests are plain strings "<alg>:<hex>" ("sha256:..."). Every function below follows the base
 * error contract (kn_error **err last, set exactly once on failure, returns <0 / NULL). "Not
 * found" errors carry code ENOENT so callers can tell them apart.
 */
#include <jansson.h>

/* Media types. */
#define STORE_MT_OCI_LAYOUT_VERSION "1.0.0"
#define STORE_MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define STORE_MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define STORE_MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define STORE_MT_OCI_LAYER "application/vnd.oci.image.layer.v1.tar"
#define STORE_MT_OCI_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define STORE_MT_OCI_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"
#define STORE_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define STORE_MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define STORE_MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
#define STORE_MT_DOCKER_LAYER "application/vnd.docker.image.rootfs.diff.tar"
#define STORE_MT_DOCKER_LAYER_GZIP "application/vnd.docker.image.rootfs.diff.tar.gzip"
#define STORE_MT_DOCKER_LAYER_ZSTD "application/vnd.docker.image.rootfs.diff.tar.zstd"
#define STORE_ANNOT_REF_NAME "org.opencontainers.image.ref.name"

/* Hard limits on untrusted JSON (manifests, configs, index.json, cache entries). */
#define STORE_JSON_MAX (8u << 20)

/* ---- digests ----------------------------------------------------------------------------- */

/** A streaming hash. Algorithm names: "sha256" (default when NULL), "sha512". */
struct store_hash;
/** Returns NULL with an error for an unknown algorithm. Free with store_hash_free(). */
struct store_hash *store_hash_new(const char *algorithm, kn_error **err);
void store_hash_update(struct store_hash *h, const void *data, size_t len);
/** Finishes and returns an owned "<alg>:<hex>" string; the hash may not be updated afterwards. */
char *store_hash_final(struct store_hash *h);
void store_hash_free(struct store_hash *h);
DEFINE_FREEP(struct store_hash, store_hash_free)
/** Digest of a buffer as an owned "sha256:<hex>". */
char *store_digest_buf(const void *data, size_t len);
/**
 * Checks that s is "<alg>:<hex>" with a supported algorithm and the right hex length, lowercase.
 * Returns 0 or -1 with an error naming s. Every store function taking a digest checks it, so a
 * hostile digest can never become a path like "../x".
 */
int store_digest_check(const char *s, kn_error **err);
/** The hex part of a digest (borrowed pointer into d); d must have passed store_digest_check. */
const char *store_digest_hex(const char *d);
/** Chain ID (OCI): chain(parent, diff_id) = sha256(parent + " " + diff_id); parent NULL -> diff_id. */
char *store_chain_id(const char *parent_chain_id, const char *diff_id);

/* ---- the store handle -------------------------------------------------------------------- */

struct store;
enum store_flags {
	/* Creates the layout if missing and takes ROOT/lock shared for the handle's lifetime. */
	STORE_WRITE = 1 << 0,
	/* Takes ROOT/lock exclusively (prune); waits for writers. Implies STORE_WRITE. */
	STORE_EXCLUSIVE = 1 << 1,
};
/**
 * Opens the store at root. Without STORE_WRITE the root must already be a store (ENOENT
 * otherwise); a read-only handle never writes (except removing unlocked ROOT/tmp leftovers, best
 * effort). *ret is owned by the caller: store_free().
 */
int store_open(const char *root, unsigned flags, struct store **ret, kn_error **err);
void store_free(struct store *s);
DEFINE_FREEP(struct store, store_free)
/** The root path (borrowed). */
const char *store_root(const struct store *s);
/**
 * This handle's private temp dir ROOT/tmp/<id>/ (created on first call, flock'ed, removed by
 * store_free and cleaned by the next open after a crash). Put any scratch files or half-built
 * snapshot dirs there, then rename() them into place. Borrowed; needs STORE_WRITE.
 */
const char *store_tmpdir(struct store *s, kn_error **err);
/** ROOT/snapshots/<hex of chain_id> as an owned string (whether or not it exists); NULL if bad. */
char *store_snapshot_path(const struct store *s, const char *chain_id, kn_error **err);

/* ---- blobs ------------------------------------------------------------------------------- */

/**
 * Streaming blob ingest: hashes (sha256) while writing into a temp file under store_tmpdir().
 * Several threads may each run their own writers on one handle at once (store_tmpdir and the temp
 * names are thread-safe); one writer is used by one thread at a time.
 */
struct store_blob_writer;
int store_blob_writer_new(struct store *s, struct store_blob_writer **ret, kn_error **err);
int store_blob_writer_write(struct store_blob_writer *w, const void *buf, size_t len,
			    kn_error **err);
/**
 * Finishes the blob: fsyncs, checks the digest against expected (when not NULL; mismatch ->
 * error, nothing stored), renames into blobs/ (an existing identical blob is kept) and fsyncs the
 * directory. ALWAYS consumes w (success or failure). ret_digest (owned) and ret_size may be NULL.
 */
int store_blob_writer_commit(struct store_blob_writer *w, const char *expected,
			     char **ret_digest, int64_t *ret_size, kn_error **err);
/** Drops an unfinished blob (NULL-safe); consumes w. */
void store_blob_writer_abort(struct store_blob_writer *w);
/** Stores a small in-memory blob (JSON). ret_digest: owned, may be NULL. */
int store_blob_put(struct store *s, const void *data, size_t len, char **ret_digest,
		   kn_error **err);
bool store_blob_exists(const struct store *s, const char *digest);
/** Owned path of the blob file (it may not exist); NULL with an error for a malformed digest. */
char *store_blob_path(const struct store *s, const char *digest, kn_error **err);
/** Opens a blob read-only (O_CLOEXEC); *ret_fd is the caller's. Not verified (streams are). */
int store_blob_open(const struct store *s, const char *digest, int *ret_fd, int64_t *ret_size,
		    kn_error **err);
/** Reads a whole blob (at most max bytes, EFBIG past it) and verifies its digest. */
int store_blob_read(const struct store *s, const char *digest, size_t max, struct kn_buf *out,
		    kn_error **err);
/** Re-hashes a blob file; 0 when it matches, -1 with an error (EBADMSG on mismatch) otherwise. */
int store_blob_verify(const struct store *s, const char *digest, kn_error **err);

/* ---- descriptors, references ------------------------------------------------------------- */

struct store_platform {
	char *architecture, *os, *variant, *os_version;
};
/** An OCI descriptor. Every field is owned; annotations is NULL or a JSON object reference. */
struct store_desc {
	char *media_type;
	char *digest;
	int64_t size;
	struct store_platform *platform; /* NULL when absent */
	json_t *annotations;             /* NULL when absent */
};
void store_desc_release(struct store_desc *d);
void store_desc_copy(struct store_desc *dst, const struct store_desc *src);
/** Parses a descriptor object (strictly: digest checked, size >= 0). */
int store_desc_from_json(json_t *j, struct store_desc *ret, kn_error **err);
/** Returns a new JSON object for d (mediaType, digest, size, platform, annotations). */
json_t *store_desc_to_json(const struct store_desc *d);

/**
 * Normalises a short image name: "alpine" -> "docker.io/library/alpine:latest",
 * "user/app" -> "docker.io/user/app:latest", "index.docker.io/x" -> "docker.io/library/x:latest",
 * "localhost:5000/x" and "reg.example/x:1" keep their host (a first component with '.' or ':' or
 * equal to "localhost" is a host), a missing tag becomes ":latest" unless "@<digest>" is given
 * (then the result is "name@digest", or "name:tag@digest" when both are given). Rejects
 * uppercase repository names, bad tags and bad digests (EINVAL). *ret is owned.
 * (registry/ has the full reference parser; this one is small and consistent with it.)
 */
int store_ref_normalize(const char *name, char **ret, kn_error **err);
/** Docker's short display form: "docker.io/library/alpine:3" -> "alpine:3". Owned. */
char *store_ref_familiar(const char *full);
/** Splits a normalized "repo:tag" / "repo@digest" into owned repo and tag (tag NULL if none). */
void store_ref_split(const char *full, char **ret_repo, char **ret_tag);

/** One entry of index.json; name is NULL for an untagged image kept alive by its entry. */
struct store_ref {
	char *name;
	struct store_desc desc;
};
void store_refs_free(struct store_ref *refs, size_t n);
/**
 * Points the (already normalized) name at desc, replacing the entry of the same name; name NULL
 * adds an untagged entry unless one for that digest exists. A named entry replaces untagged
 * entries of the same digest. Takes ROOT/index.lock; needs STORE_WRITE.
 */
int store_ref_set(struct store *s, const char *name, const struct store_desc *desc,
		  kn_error **err);
/** Looks up a normalized name; ENOENT when absent. ret is released with store_desc_release. */
int store_ref_get(const struct store *s, const char *name, struct store_desc *ret, kn_error **err);
/**
 * Removes the entry named name (ENOENT when absent). The blobs stay until store_gc().
 */
int store_ref_delete(struct store *s, const char *name, kn_error **err);
/** Removes every index entry (named or not) whose digest is digest. */
int store_ref_delete_digest(struct store *s, const char *digest, kn_error **err);
/** Removes only the untagged index.json entries whose digest is digest (none: fine). */
int store_ref_delete_untagged(struct store *s, const char *digest, kn_error **err);
/** Lists index.json entries in file order. *ret (may be NULL when *ret_n is 0) is owned. */
int store_ref_list(const struct store *s, struct store_ref **ret, size_t *ret_n, kn_error **err);

/* ---- image objects ------------------------------------------------------------------------ */

enum image_format { IMAGE_FORMAT_OCI = 0, IMAGE_FORMAT_DOCKER };

struct image_healthcheck {
	char **test;             /* NULL = no healthcheck; ["NONE"] disables an inherited one */
	int64_t interval, timeout, start_period, start_interval; /* nanoseconds, 0 = unset */
	int retries;             /* 0 = unset */
};
struct image_history {
	char *created, *created_by, *author, *comment; /* NULL = absent */
	bool empty_layer;
};
/**
 * An image config (OCI config, Docker-compatible field names). Strings NULL = absent; string
 * vectors (char **, NULL-terminated, owned) NULL = absent (JSON null / missing) vs {NULL} = [].
 * labels is "key=value" strings, kept sorted by key (image_config_set_label). exposed_ports:
 * "80/tcp" keys; volumes: paths. extra / extra_config hold every unknown top-level / config
 * key so load+dump round-trips; they are owned JSON objects (never NULL after new/parse).
 */
struct image_config {
	char *architecture, *os, *variant, *os_version, *created, *author;
	char *user, *working_dir, *stop_signal;
	char **env, **entrypoint, **cmd, **exposed_ports, **volumes, **labels, **on_build, **shell;
	bool args_escaped;
	struct image_healthcheck healthcheck;
	char *rootfs_type; /* "layers" */
	char **diff_ids;
	struct image_history *history;
	size_t n_history;
	json_t *extra, *extra_config;
};
/** A new empty config: os/architecture/variant of the host, rootfs type "layers". */
struct image_config *image_config_new(void);
void image_config_free(struct image_config *c);
DEFINE_FREEP(struct image_config, image_config_free)
/** Parses config JSON (at most STORE_JSON_MAX bytes). *ret owned. */
int image_config_parse(const char *json, size_t len, struct image_config **ret, kn_error **err);
/**
 * Canonical JSON (sorted keys, compact, no trailing newline): the same config always gives the
 * same bytes and therefore the same digest. Returns an owned NUL-terminated string, *ret_len set.
 */
char *image_config_dump(const struct image_config *c, size_t *ret_len);
/** Sets/replaces (value != NULL) or removes (value NULL) a label. */
void image_config_set_label(struct image_config *c, const char *key, const char *value);
/** Sets/replaces an env entry "KEY=value" by key. */
void image_config_set_env(struct image_config *c, const char *key, const char *value);
/** Appends a diff_id and a history entry (history may be NULL: none added). */
void image_config_add_layer(struct image_config *c, const char *diff_id);
void image_config_add_history(struct image_config *c, const struct image_history *h);
/** A deep copy. */
struct image_config *image_config_dup(const struct image_config *c);

/** A manifest (OCI or Docker v2 schema 2; media_type says which). */
struct image_manifest {
	char *media_type;
	struct store_desc config;
	struct store_desc *layers;
	size_t n_layers;
	json_t *annotations; /* NULL when absent */
};
void image_manifest_release(struct image_manifest *m);
int image_manifest_parse(const char *json, size_t len, struct image_manifest *ret,
			 kn_error **err);
/** Canonical JSON (schemaVersion 2, sorted keys, compact). Owned string. */
char *image_manifest_dump(const struct image_manifest *m, size_t *ret_len);

/** An OCI index or Docker manifest list. */
struct image_index {
	char *media_type;
	struct store_desc *manifests;
	size_t n_manifests;
	json_t *annotations;
};
void image_index_release(struct image_index *ix);
int image_index_parse(const char *json, size_t len, struct image_index *ret, kn_error **err);

/**
 * Refuses a manifest document that can be read two ways (the class of CVE-2021-41190), as
 * containerd does: one with both 'manifests' and 'layers' or 'config'; one whose mediaType field
 * says index but has 'layers'/'config', or says image manifest but has 'manifests'; and one whose
 * mediaType field, or (when it has none) its shape, disagrees with declared, the type it was
 * served or referenced as (HTTP Content-Type, the descriptor that points at it; NULL, "" and the
 * generic application/json, text/plain and application/octet-stream declare nothing).
 * image_manifest_parse() and image_index_parse() apply it with no declared type. EBADMSG.
 */
int image_doc_check(const char *json, size_t len, const char *declared, kn_error **err);
char *image_index_dump(const struct image_index *ix, size_t *ret_len);
/** Index of the manifest matching the host platform (or arch/os given), -1 with ENOENT. */
int image_index_choose(const struct image_index *ix, const char *arch, const char *os,
		       const char *variant, kn_error **err);

/** Maps a layer media type to the format's flavour (OCI gzip <-> Docker gzip, ...). Static. */
const char *image_layer_media_type(const char *media_type, enum image_format fmt);

/**
 * A resolved image: the top descriptor (manifest or index), the chosen platform manifest, the
 * raw config bytes and the parsed config. id is the config digest ("sha256:<hex>").
 */
struct store_image {
	char *name;                    /* the matched normalized name or NULL (looked up by ID) */
	struct store_desc top;         /* the index.json entry (manifest or index) */
	struct store_desc manifest_desc;
	struct image_manifest manifest;
	char *config_json;
	size_t config_len;
	struct image_config *config;
	char *id;
};
void store_image_free(struct store_image *img);
DEFINE_FREEP(struct store_image, store_image_free)
/**
 * Finds an image by name (normalized first: "alpine" finds docker.io/library/alpine:latest),
 * "name@sha256:..." (manifest digest), full ID "sha256:<hex>" or an unambiguous hex prefix of an
 * image ID or manifest digest (>= 4 chars, with or without "sha256:"). An index is resolved to the
 * host platform. Verifies the manifest and config digests. ENOENT when nothing matches, EINVAL
 * when a prefix is ambiguous.
 */
int store_image_resolve(const struct store *s, const char *name, struct store_image **ret,
			kn_error **err);
/**
 * Writes an image: canonical config blob, manifest (fmt picks OCI or Docker media types; layer
 * media types are mapped with image_layer_media_type), and, when name != NULL, the reference
 * (normalized here); name NULL leaves an untagged entry. layers[i] are descriptors of blobs
 * already in the store, in order (config->diff_ids must match them one to one).
 * ret_manifest (may be NULL) receives the manifest descriptor; ret_id (may be NULL) the config
 * digest. Both owned.
 */
int store_image_write(struct store *s, const struct image_config *config,
		      const struct store_desc *layers, size_t n_layers, enum image_format fmt,
		      const char *name, struct store_desc *ret_manifest, char **ret_id,
		      kn_error **err);
/**
 * store_image_write without the reference: the config and manifest blobs only, so the image can
 * be exported (store_archive_save_manifest) without appearing in index.json. Blobs nothing
 * references are removed by the next store_gc; hold the STORE_WRITE handle while using them.
 */
int store_image_put(struct store *s, const struct image_config *config,
		    const struct store_desc *layers, size_t n_layers, enum image_format fmt,
		    struct store_desc *ret_manifest, char **ret_id, kn_error **err);
/**
 * Loads the image whose top descriptor (manifest or index) is top, as store_image_resolve does
 * for an index.json entry; name (may be NULL) is copied into the result.
 */
int store_image_load(const struct store *s, const struct store_desc *top, const char *name,
		     struct store_image **ret, kn_error **err);
/**
 * Writes a multi-platform image: an OCI index (IMAGE_FORMAT_OCI) or Docker manifest list over
 * manifests[] (descriptors of manifests already in the store, each with its platform set, e.g.
 * from store_image_write + the config's os/architecture), and points name (normalized here; NULL:
 * untagged) at it; the untagged entries store_image_write(name NULL) left for those manifests
 * are removed. ret_index (may be NULL) receives the index descriptor (owned).
 */
int store_index_write(struct store *s, const struct store_desc *manifests, size_t n,
		      enum image_format fmt, const char *name, struct store_desc *ret_index,
		      kn_error **err);
/** The compressed size of an image: config + compressed layers, as stored and pushed. */
int64_t store_image_size(const struct store_image *img);
/**
 * The unpacked size, what docker shows as SIZE: the bytes of the layers' files (regular files'
 * sizes, symlink target lengths, a hardlinked file once). Reads (decompresses) every layer.
 */
int store_image_unpacked_size(const struct store *s, const struct store_image *img, int64_t *ret,
			      kn_error **err);

/* ---- build cache --------------------------------------------------------------------------- */

/**
 * Cache entries are small JSON objects stored in ROOT/cache/<key>.json (key: 1..128 lowercase hex
 * chars). A "blobs" array of digests keeps those blobs alive through prune/fsck, an "images"
 * array of image IDs or names makes `kiln rmi` refuse those images without -f, and a
 * "snapshots" array of chain IDs keeps those snapshot dirs alive.
 */
int store_cache_put(struct store *s, const char *key, const char *json, kn_error **err);
/** *ret owned (free()); ENOENT when absent. */
int store_cache_get(const struct store *s, const char *key, char **ret, kn_error **err);
int store_cache_delete(struct store *s, const char *key, kn_error **err);
/** Every cache key (owned NULL-terminated vector, kn_strv_free). */
int store_cache_list(const struct store *s, char ***ret, kn_error **err);

/* ---- garbage collection, checking ---------------------------------------------------------- */

enum store_gc_flags {
	STORE_GC_CACHE = 1 << 0,    /* drop every build cache entry first */
	STORE_GC_DRY_RUN = 1 << 1,  /* compute, delete nothing */
	STORE_GC_DANGLING = 1 << 2, /* also remove dangling images (see store_gc_images) */
};
/**
 * Removes blobs and snapshots that no index.json entry (through its index/manifests/config/layers
 * and chain IDs) nor cache entry reaches. Needs a STORE_EXCLUSIVE handle.
 * *ret_reclaimed: bytes freed (blob sizes + snapshot file sizes).
 */
int store_gc(struct store *s, unsigned flags, int64_t *ret_reclaimed, kn_error **err);
/** Receives the ID of each dangling image store_gc_images removes (or would, in a dry run). */
typedef void (*store_gc_image_fn)(const char *image_id, void *userdata);
/**
 * store_gc that, with STORE_GC_DANGLING, first removes the dangling images (docker's
 * <none>:<none>): the untagged index.json entries of images without a name that no cache entry
 * names in its "images" list (after STORE_GC_CACHE dropped the cache, none does), then the blobs
 * only they used. fn (may be NULL) receives each one's image ID (the index digest for an index
 * without an image for this host).
 */
int store_gc_images(struct store *s, unsigned flags, store_gc_image_fn fn, void *userdata,
		    int64_t *ret_reclaimed, kn_error **err);

/** Receives one problem line found by store_fsck ("blob sha256:... digest mismatch"). */
typedef void (*store_problem_fn)(const char *problem, void *userdata);
/**
 * Verifies every blob's digest, that every reference's manifest/config/layers are present and
 * well-formed, and every cache entry's blobs. Returns the number of problems (>= 0), or -1 with
 * an error when the store cannot be read at all.
 */
int store_fsck(const struct store *s, store_problem_fn fn, void *userdata, kn_error **err);

/* ---- archives -------------------------------------------------------------------------------- */

enum store_archive_format { STORE_ARCHIVE_DOCKER = 0, STORE_ARCHIVE_OCI };
/**
 * Writes the images (names/IDs, resolved with store_image_resolve) as a tar to fd: docker-archive
 * (manifest.json, repositories, blobs/sha256/<hex> layout as docker 25+) or oci-archive (an OCI
 * layout). Shared layers are written once. Streams; never holds a layer in memory. An image
 * stored as an index: docker-archive holds the host platform's manifest, oci-archive the index
 * with every platform manifest present in the store.
 */
int store_archive_save(const struct store *s, char *const *images,
		       enum store_archive_format fmt, int fd, kn_error **err);
/**
 * store_archive_save for one image given by its manifest descriptor (it need not be in
 * index.json, e.g. written by store_image_put), named by names (normalized references, may be
 * NULL or empty: an unnamed image).
 */
int store_archive_save_manifest(const struct store *s, const struct store_desc *manifest,
				char *const *names, enum store_archive_format fmt, int fd,
				kn_error **err);
/** Called once per loaded image: name (normalized) or NULL with id ("sha256:..."). */
typedef void (*store_loaded_fn)(const char *name, const char *id, void *userdata);
/**
 * Reads a docker-archive (legacy <id>/layer.tar or OCI-layout-inside) or oci-archive tar from fd,
 * compressed (gzip/zstd/xz/bzip2) or not, verifying every digest and the config's diff_ids, then
 * stores blobs and tags atomically at the end (a failure leaves no new reference). Needs
 * STORE_WRITE.
 */
int store_archive_load(struct store *s, int fd, store_loaded_fn fn, void *userdata,
		       kn_error **err);

/* ==== layer tars: diff, compression, apply, snapshots (layer helper) ========================= */
/* KILN-LAYERS-LAYER-API */
/*
 * Layer tars. A layer is written in one streaming pass:
 *   tar (libarchive, pax_restricted) -> sha256 (diff_id) -> gzip | zstd | none -> sha256 (digest)
 *   -> store blob writer.
 * Memory is bounded (a few MiB of buffers whatever the layer size). gzip output is a series of
 * independently compressed gzip members (one per 1 MiB of tar, RFC 1952 §2.2 allows concatenated
 * members; gzip -d, Go's compress/gzip, zlib, libarchive and every registry read it), compressed
 * by libdeflate on `threads` worker threads; zstd uses libzstd with nbWorkers = threads.
 *
 * Determinism: entries are written in name order, sorted bytewise within each directory like
 * `tar --sort=name` (a directory before its children; an opaque marker right after its
 * directory), no uname/gname, no atime/ctime, mtimes truncated to seconds (and clamped to
 * source_date_epoch when clamp_mtime is set), xattrs sorted by name as SCHILY.xattr PAX records.
 * PAX headers appear only when an entry needs one (long names, xattrs, large ids/sizes).
 * Whiteouts and opaque markers are empty regular files, mode 0, uid/gid 0, mtime 0.
 */
enum layer_compression {
	LAYER_COMPRESSION_GZIP = 0, /* default */
	LAYER_COMPRESSION_ZSTD,
	LAYER_COMPRESSION_NONE,
};
/** "gzip", "zstd", "none" (also "uncompressed") -> *ret; EINVAL naming the value otherwise. */
int layer_compression_parse(const char *name, enum layer_compression *ret, kn_error **err);
/** "gzip", "zstd", "none". Static string. */
const char *layer_compression_name(enum layer_compression c);
/** The OCI layer media type for c (STORE_MT_OCI_LAYER_GZIP, ...). Static string. */
const char *layer_media_type(enum layer_compression c);

enum layer_write_flags {
	/*
	 * For directories of the source tree that also exist as directories in a lowerdir (the first
	 * one, top-first, wins): write the lower's mode/owner/mtime/xattrs instead of the source's.
	 * For COPY staging trees whose parent directories were made with mkdir -p: pass the
	 * staging dir to layer_diff_overlay() with the lowerdirs (a tree without overlay markers
	 * reads the same in both functions).
	 */
	LAYER_PARENTS_FROM_LOWER = 1 << 0,
};

/** Options for writing a layer. Zero-initialised (or LAYER_WRITE_OPTS_INIT) = gzip, defaults. */
struct layer_write_opts {
	enum layer_compression compression;
	int level;                 /* 0 = default: gzip 6 (1..12, libdeflate), zstd 3 (1..22) */
	int threads;               /* compression threads; 0 = online CPUs (at most 8) */
	bool clamp_mtime;          /* set by callers when SOURCE_DATE_EPOCH is set */
	int64_t source_date_epoch; /* every mtime newer than this becomes this (when clamp_mtime) */
	unsigned flags;            /* enum layer_write_flags */
};
#define LAYER_WRITE_OPTS_INIT { LAYER_COMPRESSION_GZIP, 0, 0, false, 0, 0 }
/**
 * Reads SOURCE_DATE_EPOCH from the environment into opts (clamp_mtime + source_date_epoch).
 * Unset or empty: opts unchanged, returns 0. Not a non-negative integer: EINVAL.
 * (For cli/ and builder/: the library itself never reads the environment.)
 */
int layer_write_opts_from_env(struct layer_write_opts *opts, kn_error **err);

/** What a written layer is. All owned; release with layer_result_release(). */
struct layer_result {
	struct store_desc desc; /* media_type (OCI layer type), digest ("sha256:..") and size of the blob */
	char *diff_id;          /* "sha256:<hex>" of the uncompressed tar */
	int64_t diff_size;      /* uncompressed tar bytes */
	int64_t n_entries;      /* tar entries written (0: an empty layer, still a valid tar) */
};
void layer_result_release(struct layer_result *r);

/**
 * Writes the layer of an overlayfs upper dir into the store: added and changed files, overlay
 * whiteouts (char 0/0, or a file with a trusted./user.overlay.whiteout xattr) as `.wh.<name>`,
 * opaque directories (trusted./user.overlay.opaque = "y") as `<dir>/.wh..wh..opq`, hardlinks
 * within the layer as tar hardlinks, symlinks, devices, fifos, xattrs (security.capability
 * included; never trusted.overlay.* / user.overlay.*, nor the host's security.selinux).
 * lowerdirs (NULL-terminated, top-first like overlay's lowerdir=, may be NULL) supply the data
 * of metacopy-only upper files and, with LAYER_PARENTS_FROM_LOWER, parent metadata. Mount the
 * overlay with redirect_dir=off (a redirected directory is an error: ENOTSUP). The upper dir
 * must not change during the call. Needs a STORE_WRITE store. On failure nothing is stored.
 */
int layer_diff_overlay(struct store *s, const char *upperdir, char *const *lowerdirs,
		       const struct layer_write_opts *opts, struct layer_result *ret, kn_error **err);
/** A plain directory (FROM scratch, COPY results, import) as a layer: every entry under dir. */
int layer_from_dir(struct store *s, const char *dir, const struct layer_write_opts *opts,
		   struct layer_result *ret, kn_error **err);
/**
 * A tar stream on fd (gzip, zstd, xz, bzip2 or none; detected) re-written as a normalised
 * layer (entry order kept, uname/gname dropped, mtimes truncated/clamped, paths made relative;
 * `..` components are an error). For `kiln import`.
 */
int layer_from_tar(struct store *s, int fd, const struct layer_write_opts *opts,
		   struct layer_result *ret, kn_error **err);

/**
 * Writes the layer blob in (in the store) again with opts->compression (level, threads as
 * given): the same tar bytes, so the same diff_id (checked against diff_id when not NULL).
 * *ret (owned, store_desc_release) describes the new blob. On failure nothing is stored.
 */
int layer_recompress(struct store *s, const struct store_desc *in, const char *diff_id,
		     const struct layer_write_opts *opts, struct store_desc *ret, kn_error **err);
/**
 * The tree at dir as a plain tar on fd (the tar exporter), normalised like a layer (name order,
 * no uname/gname, mtimes clamped when opts says so; opts->compression is ignored). Streams.
 */
int layer_tar_dir(const char *dir, const struct layer_write_opts *opts, int fd, kn_error **err);

/* ---- apply -------------------------------------------------------------------------------- */

enum layer_apply_flags {
	/*
	 * Snapshot form (target is an empty dir, to be stacked as an overlay lowerdir): `.wh.x`
	 * becomes a char 0/0 device x, `.wh..wh..opq` sets trusted.overlay.opaque=y on its dir.
	 * Without it (flattened form), whiteouts delete from target and an opaque marker deletes
	 * every child of its dir that this layer did not write.
	 */
	LAYER_APPLY_OVERLAY = 1 << 0,
};
#define LAYER_APPLY_MAX_SIZE_DEFAULT ((int64_t)64 << 30) /* 64 GiB of file data per layer */
#define LAYER_APPLY_MAX_ENTRIES_DEFAULT ((int64_t)4 << 20)
struct layer_apply_opts {
	unsigned flags;               /* enum layer_apply_flags */
	int64_t max_size;             /* total file sizes (as the tar says); 0 = default; EFBIG past it */
	int64_t max_entries;          /* 0 = default; EFBIG past it */
	const char *expected_digest;  /* digest of the bytes read from fd; NULL = not checked */
	const char *expected_diff_id; /* digest of the uncompressed tar; NULL = not checked */
};
/**
 * Unpacks a layer stream (gzip, zstd or plain tar, detected by magic) from fd into the existing
 * directory target. Every path is resolved inside target (openat2 RESOLVE_IN_ROOT |
 * RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, or an O_NOFOLLOW walk without openat2): entries
 * with `..` components, writes through a symlink, hardlinks whose target is outside the layer's
 * tree, whiteouts of `.`/`..`, and device nodes when not root are errors (EPERM / EINVAL), as
 * are corrupt/truncated streams and digest mismatches (EBADMSG). Leading `/` and `./` are
 * stripped. Owners, modes (incl. setuid), mtimes and xattrs are set; runs of zeros become holes.
 * On failure target is left partially written: callers unpack into a scratch dir (snapshots
 * do). ret_diff_id (may be NULL): owned "sha256:<hex>" of the tar.
 */
int layer_apply_fd(int fd, const char *target, const struct layer_apply_opts *opts,
		   char **ret_diff_id, kn_error **err);

/* ---- snapshots ---------------------------------------------------------------------------- */

/**
 * Unpacked layers live in ROOT/snapshots/<chain-id hex>/, each holding ONLY its own layer's files
 * in overlay form (LAYER_APPLY_OVERLAY), so they stack as overlay lowerdirs. Chain IDs follow the
 * OCI spec (store_chain_id). A snapshot is unpacked into store_tmpdir(), checked against the
 * layer's digest and diff_id, and renamed into place; a concurrent build unpacking the same layer
 * loses the rename race harmlessly (its copy is removed), so readers only ever see complete
 * snapshots.
 *
 * snapshot_prepare: layers[i] (blobs in the store, bottom-first as in a manifest) with their
 * diff_ids[i] (from the config). Unpacks missing snapshots, reuses existing ones, and returns in
 * *ret_lowerdirs an owned NULL-terminated vector (kn_strv_free) of the n snapshot paths ordered
 * TOP-FIRST, ready for overlay's lowerdir= (n == 0: an empty vector). ret_chain_id (may be NULL)
 * receives the top chain ID (owned; NULL when n == 0). Needs a STORE_WRITE store.
 *
 * Overlay limits: at most 500 lower layers (kernel OVL_MAX_STACK); with mount(2) the whole option
 * string must fit in one page (4096 bytes: ~45 absolute snapshot paths), so stack many layers
 * with layer_overlay_mount() (fsconfig "lowerdir+", one layer per call, kernel >= 6.8).
 */
int snapshot_prepare(struct store *s, const struct store_desc *layers, char *const *diff_ids,
		     size_t n, char ***ret_lowerdirs, char **ret_chain_id, kn_error **err);
/**
 * Makes dir (an overlay upper dir already in overlay form, on the store's file system, e.g. under
 * store_tmpdir()) the snapshot of chain_id by renaming it into place; when that snapshot already
 * exists dir is removed instead. On success dir no longer exists. The snapshot root is made mode 0755.
 */
int snapshot_commit(struct store *s, const char *chain_id, const char *dir, kn_error **err);
/** Owned path of chain_id's snapshot if it exists, else NULL with ENOENT. */
char *snapshot_lookup(struct store *s, const char *chain_id, kn_error **err);

/**
 * Mounts overlayfs at target: lowerdirs top-first (NULL-terminated, at least one), upperdir and
 * workdir may both be NULL (read-only mount). Uses fsopen/fsconfig with one "lowerdir+" per layer
 * (no page-size limit) and falls back to mount(2) when the kernel lacks it. Adds
 * redirect_dir=off and metacopy=off so layer_diff_overlay() can read the upper dir, and
 * userxattr when not root.
 */
int layer_overlay_mount(const char *target, char *const *lowerdirs, const char *upperdir,
			const char *workdir, kn_error **err);

#endif
