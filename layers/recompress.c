/* kiln layers: a stored layer blob re-compressed with another algorithm (same tar, same diff_id). */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "layers/layer-internal.h"

static int out_blob(void *ctx, const void *data, size_t len, kn_error **err)
{
	return store_blob_writer_write(ctx, data, len, err);
}

int layer_recompress(struct store *s, const struct store_desc *in, const char *diff_id,
		     const struct layer_write_opts *opts, struct store_desc *ret, kn_error **err)
{
	_cleanup_(layer_reader_freep) struct layer_reader *rd = NULL;
	_cleanup_(layer_pipe_freep) struct layer_pipe *pipe = NULL;
	_cleanup_free_ char *got_diff = NULL, *out_diff = NULL, *digest = NULL;
	_cleanup_free_ char *buf = xmalloc(LAYER_GZIP_CHUNK);
	_cleanup_close_ int fd = -1;
	struct store_blob_writer *bw = NULL;
	int64_t diff_size = 0, size = 0;
	ssize_t n;

	if (store_blob_open(s, in->digest, &fd, NULL, err) < 0)
		return -1;
	if (layer_reader_new(fd, &rd, err) < 0 || store_blob_writer_new(s, &bw, err) < 0)
		return kn_error_wrap(err, "layer '%s'", in->digest);
	if (layer_pipe_new(opts->compression, opts->level, opts->threads, out_blob, bw, &pipe, err) < 0)
		goto out_abort;
	while ((n = layer_reader_read(rd, buf, LAYER_GZIP_CHUNK, err)) > 0)
		if (layer_pipe_write(pipe, buf, (size_t)n, err) < 0)
			goto out_abort;
	if (n < 0 || layer_reader_finish(rd, NULL, &got_diff, err) < 0)
		goto out_abort;
	if (layer_pipe_finish(pipe, &out_diff, &diff_size, &digest, &size, err) < 0)
		goto out_abort;
	if ((diff_id && strcmp(got_diff, diff_id)) || strcmp(got_diff, out_diff)) {
		kn_error_set(err, EBADMSG, "layer '%s' unpacks to '%s', its diff_id is '%s'",
			     in->digest, got_diff, diff_id ? diff_id : out_diff);
		goto out_abort;
	}
	if (store_blob_writer_commit(bw, digest, NULL, NULL, err) < 0)
		return -1;
	memset(ret, 0, sizeof(*ret));
	ret->media_type = xstrdup(layer_media_type(opts->compression));
	ret->digest = steal_ptr(&digest);
	ret->size = size;
	return 0;
out_abort:
	store_blob_writer_abort(bw);
	return kn_error_wrap(err, "re-compressing layer '%s'", in->digest);
}
