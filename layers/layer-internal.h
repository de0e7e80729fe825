/* kiln layers: internals shared by diff.c, compress.c, apply.c and snapshot.c (layer tars). */
#ifndef KILN_LAYERS_LAYER_INTERNAL_H
#define KILN_LAYERS_LAYER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "layers/layers.h"

/* Size of one independently compressed gzip member (and of the tar staging buffer). */
#define LAYER_GZIP_CHUNK ((size_t)1 << 20)

/** Receives compressed bytes in order (the store blob writer, a file, ...). */
typedef int (*layer_out_fn)(void *ctx, const void *data, size_t len, kn_error **err);

/*
 * The compression pipeline: tar bytes in -> sha256 (diff_id) -> compressor -> sha256 (digest)
 * -> out(). gzip runs on `threads` libdeflate worker threads, one 1 MiB member each; zstd uses
 * libzstd's own workers. Every buffer is bounded (a few MiB in total).
 */
struct layer_pipe;
/** level 0 = default; threads 0 = online CPUs (at most 8). */
int layer_pipe_new(enum layer_compression c, int level, int threads, layer_out_fn out, void *ctx,
		   struct layer_pipe **ret, kn_error **err);
int layer_pipe_write(struct layer_pipe *p, const void *data, size_t len, kn_error **err);
/** Flushes everything; owned "sha256:<hex>" digests of the tar and of the compressed stream. */
int layer_pipe_finish(struct layer_pipe *p, char **ret_diff_id, int64_t *ret_diff_size,
		      char **ret_digest, int64_t *ret_size, kn_error **err);
void layer_pipe_free(struct layer_pipe *p);
DEFINE_FREEP(struct layer_pipe, layer_pipe_free)

/*
 * The reading side: a layer stream on fd (gzip — several members allowed —, zstd or plain tar,
 * detected by magic). Hashes the raw bytes (digest) and the decompressed bytes (diff_id).
 */
struct layer_reader;
int layer_reader_new(int fd, struct layer_reader **ret, kn_error **err);
/** Reads up to len decompressed bytes; returns the count, 0 at the end, -1 with an error. */
ssize_t layer_reader_read(struct layer_reader *r, void *buf, size_t len, kn_error **err);
/**
 * Reads (and hashes) the rest of the stream, checks it ended cleanly, and returns the owned
 * digests of the raw and of the decompressed bytes (either ret may be NULL).
 */
int layer_reader_finish(struct layer_reader *r, char **ret_digest, char **ret_diff_id,
			kn_error **err);
void layer_reader_free(struct layer_reader *r);
DEFINE_FREEP(struct layer_reader, layer_reader_free)

/*
 * Writing a layer to any sink (the public functions pass the store blob writer). src is a
 * directory; overlay says whether to interpret overlay whiteouts/opaque/metacopy xattrs.
 */
struct layer_source {
	const char *dir;
	char *const *lowerdirs; /* top-first, NULL-terminated, may be NULL */
	bool overlay;
	int tar_fd; /* >= 0: re-write this tar stream instead of walking dir (import) */
};
int layer_write(const struct layer_source *src, const struct layer_write_opts *opts,
		layer_out_fn out, void *ctx, struct layer_result *ret, kn_error **err);

/** Test hook (layer-tool --walk): resolve paths by the O_NOFOLLOW walk, as without openat2. */
extern bool layer_apply_force_walk;

/**
 * Cleans a path from a tar entry: made relative, "." and empty components dropped ("" for the
 * root). A ".." component or a name over 4096 bytes is refused (NULL, EPERM/ENAMETOOLONG) with
 * a message "<what> '<path>' escapes the root ...". Returns an owned string.
 */
char *layer_clean_path(const char *p, const char *what, kn_error **err);

/** Removes name under dirfd recursively, never following symlinks (missing is fine). */
int layer_rm_rf_at(int dirfd, const char *name, kn_error **err);

#endif
