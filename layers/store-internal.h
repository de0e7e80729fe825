/* kiln layers: internals shared by store.c, image.c, archive.c and store-gc.c. */
#ifndef KILN_LAYERS_STORE_INTERNAL_H
#define KILN_LAYERS_STORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "layers/layers.h"

/* Several threads may ingest blobs on one handle: tmp_lock guards the lazy tmp dir creation,
 * tmp_seq hands out temp file names. */
struct store {
	char *root;
	unsigned flags;
	int lock_fd;     /* ROOT/lock, shared or exclusive; -1 for readers */
	int tmp_fd;      /* our ROOT/tmp/<id> dir, flock'ed; -1 until store_tmpdir() */
	char *tmp_path;
	pthread_mutex_t tmp_lock;
	atomic_uint tmp_seq;
};

/* Parses JSON text with a size limit, rejecting duplicate keys; error names what. */
json_t *store_json_parse(const char *data, size_t len, const char *what, kn_error **err);
/* Canonical dump: sorted keys, compact. Owned. */
char *store_json_dump(const json_t *j, size_t *ret_len);
/* Reads a blob (verified, <= STORE_JSON_MAX) and parses it as JSON. */
json_t *store_blob_json(const struct store *s, const char *digest, const char *what,
			kn_error **err);
/* A fresh temp file path under the handle's tmp dir (unique even across threads). Owned. */
char *store_tmp_name(struct store *s, const char *prefix, kn_error **err);
/* Reads index.json as JSON (an empty index when missing). */
json_t *store_index_load(const struct store *s, kn_error **err);
/* Opens a temp file in the tmp dir (O_CLOEXEC|O_RDWR|O_CREAT|O_EXCL). */
int store_tmp_open(struct store *s, char **ret_path, kn_error **err);
/*
 * Early writeback for a file being streamed into the store: call after each write with the bytes
 * written so far (end) and a cursor (*started, 0 at first). Every STORE_WRITEBACK_CHUNK bytes it
 * starts writing the completed range out (sync_file_range, no waiting), so the fsync before the
 * rename only waits for the tail. Best effort: the fsync is still what makes the file durable.
 */
#define STORE_WRITEBACK_CHUNK (4 << 20)
void store_writeback(int fd, int64_t *started, int64_t end);
/* Renames an ingested temp file to the blob path of digest, fsyncing the dir. */
int store_blob_install(struct store *s, const char *tmp_path, const char *digest, kn_error **err);
/* A JSON array of strings -> owned NULL-terminated vector (NULL for null/missing). */
char **store_json_strv(json_t *a);
json_t *store_strv_json(char *const *v);

#endif
