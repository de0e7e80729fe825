/*
 * kiln layers: the compression pipeline (tar -> diff_id -> gzip/zstd/none -> digest -> sink) and
 * the decompressing reader used by apply.
 *
 * gzip: the tar stream is cut into 1 MiB chunks, each compressed by libdeflate into complete
 * gzip members on a worker thread (one member, or one per run of incompressible/compressible
 * 16 KiB blocks, see block_incompressible); members are emitted in order. Concatenated members are one
 * valid gzip file (RFC 1952 2.2) and every reader that matters (gzip -d, zlib, Go's
 * compress/gzip used by docker/containerd/skopeo, libarchive) reads them. A 1 MiB chunk loses
 * only the 32 KiB window at each boundary, so the size is within a fraction of a percent of one
 * stream. Memory: (2 * threads + 2) slots of 2 MiB.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include <libdeflate.h>
#include <zlib.h>
#include <zstd.h>

#include "layers/layer-internal.h"

#define FEED_BUFS 4

enum slot_state { SLOT_EMPTY = 0, SLOT_QUEUED, SLOT_BUSY, SLOT_DONE };

struct gz_slot {
	unsigned char *in;
	size_t in_len;
	unsigned char *out;
	size_t out_cap, out_len;
	uint64_t seq;
	enum slot_state state;
};

struct layer_pipe {
	enum layer_compression comp;
	int level;
	layer_out_fn out;
	void *ctx;
	struct store_hash *diff_hash, *blob_hash;
	int64_t diff_size, blob_size;
	bool failed;

	/* gzip */
	struct gz_slot *slots;
	size_t n_slots;
	size_t fill;     /* slot being filled by the producer */
	size_t emit;     /* oldest slot not yet emitted */
	uint64_t next_seq;
	pthread_t *workers;
	int n_workers;
	struct libdeflate_compressor *main_c, *main_c0; /* the producer's, when it helps */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	bool threads_started;

	/*
	 * zstd and none: the producer (the thread walking the tree) stages tar bytes into 1 MiB
	 * buffers; a feeder thread hashes them (diff_id), feeds libzstd (whose workers compress),
	 * hashes and writes the output. So reading files overlaps with all of that.
	 */
	struct {
		unsigned char *data;
		size_t len;
		bool full;
	} feed[FEED_BUFS];
	size_t feed_fill, feed_next;
	bool feed_end, feed_abort, feeder_started;
	pthread_t feeder;
	kn_error *feed_err;

	/* zstd */
	ZSTD_CCtx *zc;
	unsigned char *zout;
	size_t zout_cap;
};

static int emit_bytes(struct layer_pipe *p, const void *data, size_t len, kn_error **err)
{
	if (!len)
		return 0;
	/* Uncompressed, the blob is the tar: its digest is the diff_id, hashed once. */
	if (p->comp != LAYER_COMPRESSION_NONE)
		store_hash_update(p->blob_hash, data, len);
	p->blob_size += (int64_t)len;
	return p->out(p->ctx, data, len, err);
}

/*
 * Incompressible data (already compressed files, random bytes) costs libdeflate as much time as
 * text and gains nothing: a 16 KiB block whose every byte value occurs between 24 and 128 times
 * (random data: 64 +- 8 each) is stored instead (level 0, deflate's stored blocks: the size it
 * would have had anyway). Integer-only, so the choice, and the layer's digest, is the same on
 * every machine. Text and binaries have skewed histograms and are compressed at the set level.
 */
#define GZ_BLOCK ((size_t)16 << 10)

static bool block_incompressible(const unsigned char *p, size_t len)
{
	uint32_t count[256] = { 0 };

	if (len != GZ_BLOCK)
		return false;
	for (size_t i = 0; i < len; i++)
		count[p[i]]++;
	for (int i = 0; i < 256; i++)
		if (count[i] < 24 || count[i] > 128)
			return false;
	return true;
}

/* Compresses one chunk as one or more gzip members: runs of stored and of compressed blocks. */
static size_t gz_compress_chunk(struct libdeflate_compressor *c, struct libdeflate_compressor *c0,
				const unsigned char *in, size_t len, unsigned char *out, size_t cap)
{
	size_t pos = 0, out_len = 0;

	if (!len)
		return libdeflate_gzip_compress(c, in, 0, out, cap);
	while (pos < len) {
		size_t n = len - pos < GZ_BLOCK ? len - pos : GZ_BLOCK;
		bool stored = block_incompressible(in + pos, n);
		size_t end = pos + n, w;

		while (end < len) {
			size_t m = len - end < GZ_BLOCK ? len - end : GZ_BLOCK;
			if (block_incompressible(in + end, m) != stored)
				break;
			end += m;
		}
		w = libdeflate_gzip_compress(stored ? c0 : c, in + pos, end - pos, out + out_len,
					     cap - out_len);
		if (!w)
			return 0;
		out_len += w;
		pos = end;
	}
	return out_len;
}

static void *gz_worker(void *arg)
{
	struct layer_pipe *p = arg;
	struct libdeflate_compressor *c = libdeflate_alloc_compressor(p->level);
	struct libdeflate_compressor *c0 = libdeflate_alloc_compressor(0);

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct gz_slot *best = NULL;

		for (size_t i = 0; i < p->n_slots; i++) {
			struct gz_slot *s = &p->slots[i];
			if (s->state == SLOT_QUEUED && (!best || s->seq < best->seq))
				best = s;
		}
		if (!best) {
			if (p->stop)
				break;
			pthread_cond_wait(&p->cond, &p->lock);
			continue;
		}
		best->state = SLOT_BUSY;
		pthread_mutex_unlock(&p->lock);
		/* out_cap leaves room for every member's header and bound: 0 only on ENOMEM. */
		best->out_len = c && c0 ? gz_compress_chunk(c, c0, best->in, best->in_len, best->out,
							    best->out_cap)
				       : 0;
		pthread_mutex_lock(&p->lock);
		best->state = SLOT_DONE;
		pthread_cond_broadcast(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
	libdeflate_free_compressor(c);
	libdeflate_free_compressor(c0);
	return NULL;
}

/* Waits for the oldest slot to be compressed and writes it out. */
static int gz_emit_oldest(struct layer_pipe *p, kn_error **err)
{
	struct gz_slot *s = &p->slots[p->emit];

	pthread_mutex_lock(&p->lock);
	while (s->state == SLOT_QUEUED || s->state == SLOT_BUSY) {
		struct gz_slot *q = NULL;

		/*
		 * Rather than sleep, the producer compresses queued work itself (the oldest
		 * first): the pipeline keeps every CPU it is given busy.
		 */
		if (p->main_c && p->main_c0) {
			for (size_t i = 0; i < p->n_slots; i++) {
				struct gz_slot *c = &p->slots[i];
				if (c->state == SLOT_QUEUED && (!q || c->seq < q->seq))
					q = c;
			}
		}
		if (!q) {
			pthread_cond_wait(&p->cond, &p->lock);
			continue;
		}
		q->state = SLOT_BUSY;
		pthread_mutex_unlock(&p->lock);
		q->out_len = gz_compress_chunk(p->main_c, p->main_c0, q->in, q->in_len, q->out,
					       q->out_cap);
		pthread_mutex_lock(&p->lock);
		q->state = SLOT_DONE;
		pthread_cond_broadcast(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
	if (s->state == SLOT_DONE) {
		if (s->out_len == 0)
			return kn_error_set(err, ENOMEM, "gzip compression failed");
		if (emit_bytes(p, s->out, s->out_len, err) < 0)
			return -1;
	}
	pthread_mutex_lock(&p->lock);
	s->state = SLOT_EMPTY;
	pthread_mutex_unlock(&p->lock);
	s->in_len = 0;
	p->emit = (p->emit + 1) % p->n_slots;
	return 0;
}

static int gz_submit(struct layer_pipe *p, kn_error **err)
{
	struct gz_slot *s = &p->slots[p->fill];

	pthread_mutex_lock(&p->lock);
	s->seq = p->next_seq++;
	s->state = SLOT_QUEUED;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	p->fill = (p->fill + 1) % p->n_slots;
	/* The next slot to fill is the oldest one still in flight: emit it first. */
	if (p->fill == p->emit)
		return gz_emit_oldest(p, err);
	return 0;
}

static int gz_write(struct layer_pipe *p, const unsigned char *data, size_t len, kn_error **err)
{
	while (len) {
		struct gz_slot *s = &p->slots[p->fill];
		size_t n = LAYER_GZIP_CHUNK - s->in_len;

		if (n > len)
			n = len;
		memcpy(s->in + s->in_len, data, n);
		s->in_len += n;
		data += n;
		len -= n;
		if (s->in_len == LAYER_GZIP_CHUNK && gz_submit(p, err) < 0)
			return -1;
	}
	return 0;
}

static int gz_finish(struct layer_pipe *p, kn_error **err)
{
	/* An empty input still becomes one (empty) gzip member: a valid gzip file. */
	if (p->slots[p->fill].in_len > 0 || p->next_seq == 0) {
		if (gz_submit(p, err) < 0)
			return -1;
	}
	/* emit == fill means nothing is in flight (gz_submit never leaves them equal otherwise). */
	while (p->emit != p->fill) {
		if (gz_emit_oldest(p, err) < 0)
			return -1;
	}
	return 0;
}

static int zstd_run(struct layer_pipe *p, const void *data, size_t len, ZSTD_EndDirective mode,
		    kn_error **err)
{
	ZSTD_inBuffer in = { data, len, 0 };

	for (;;) {
		ZSTD_outBuffer out = { p->zout, p->zout_cap, 0 };
		size_t r = ZSTD_compressStream2(p->zc, &out, &in, mode);

		if (ZSTD_isError(r))
			return kn_error_set(err, EIO, "zstd compression failed: %s",
					    ZSTD_getErrorName(r));
		if (emit_bytes(p, p->zout, out.pos, err) < 0)
			return -1;
		if (mode == ZSTD_e_continue ? in.pos == in.size : r == 0)
			return 0;
	}
}

/* The feeder: hashes, compresses (zstd) and writes the producer's buffers, in order. */
static void *feeder_main(void *arg)
{
	struct layer_pipe *p = arg;
	kn_error *e = NULL;
	int r = 0;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		size_t i = p->feed_next;

		while (!p->feed[i].full && !p->feed_end && !p->feed_abort)
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->feed_abort || !p->feed[i].full)
			break; /* aborted, or the end with everything consumed */
		pthread_mutex_unlock(&p->lock);
		store_hash_update(p->diff_hash, p->feed[i].data, p->feed[i].len);
		if (p->comp == LAYER_COMPRESSION_ZSTD)
			r = zstd_run(p, p->feed[i].data, p->feed[i].len, ZSTD_e_continue, &e);
		else
			r = emit_bytes(p, p->feed[i].data, p->feed[i].len, &e);
		pthread_mutex_lock(&p->lock);
		p->feed[i].full = false;
		p->feed[i].len = 0;
		p->feed_next = (i + 1) % FEED_BUFS;
		pthread_cond_broadcast(&p->cond);
		if (r < 0)
			break;
	}
	if (r == 0 && !p->feed_abort && p->comp == LAYER_COMPRESSION_ZSTD) {
		pthread_mutex_unlock(&p->lock);
		r = zstd_run(p, NULL, 0, ZSTD_e_end, &e);
		pthread_mutex_lock(&p->lock);
	}
	if (r < 0) {
		p->feed_err = e;
		pthread_cond_broadcast(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Hands the filled buffer to the feeder and waits until the next one is free. */
static int feed_submit(struct layer_pipe *p, kn_error **err)
{
	pthread_mutex_lock(&p->lock);
	p->feed[p->feed_fill].full = true;
	pthread_cond_broadcast(&p->cond);
	p->feed_fill = (p->feed_fill + 1) % FEED_BUFS;
	while (p->feed[p->feed_fill].full && !p->feed_err)
		pthread_cond_wait(&p->cond, &p->lock);
	if (p->feed_err) {
		kn_error *e = steal_ptr(&p->feed_err);
		pthread_mutex_unlock(&p->lock);
		kn_error_propagate(err, e);
		return -1;
	}
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static int online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		return 1;
	return n > 8 ? 8 : (int)n;
}

int layer_pipe_new(enum layer_compression c, int level, int threads, layer_out_fn out, void *ctx,
		   struct layer_pipe **ret, kn_error **err)
{
	_cleanup_(layer_pipe_freep) struct layer_pipe *p = xcalloc(1, sizeof(*p));

	if (threads <= 0)
		threads = online_cpus();
	if (threads > 64)
		threads = 64;
	p->comp = c;
	p->out = out;
	p->ctx = ctx;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->diff_hash = store_hash_new("sha256", err);
	if (!p->diff_hash)
		return -1;
	p->blob_hash = store_hash_new("sha256", err);
	if (!p->blob_hash)
		return -1;

	switch (c) {
	case LAYER_COMPRESSION_GZIP: {
		struct libdeflate_compressor *probe;
		size_t bound;

		p->level = level ? level : 6;
		if (p->level < 1 || p->level > 12)
			return kn_error_set(err, EINVAL, "gzip level '%d' out of range 1..12", level);
		probe = libdeflate_alloc_compressor(p->level);
		if (!probe)
			return kn_error_set(err, ENOMEM, "cannot allocate a gzip compressor");
		/* Worst case: one member per 16 KiB block, each with its own bound. */
		bound = (LAYER_GZIP_CHUNK / GZ_BLOCK) * libdeflate_gzip_compress_bound(probe, GZ_BLOCK);
		p->main_c = probe;
		p->main_c0 = libdeflate_alloc_compressor(0);
		p->n_slots = 2 * (size_t)threads + 2;
		p->slots = xcalloc(p->n_slots, sizeof(*p->slots));
		for (size_t i = 0; i < p->n_slots; i++) {
			p->slots[i].in = xmalloc(LAYER_GZIP_CHUNK);
			p->slots[i].out = xmalloc(bound);
			p->slots[i].out_cap = bound;
		}
		p->workers = xcalloc((size_t)threads, sizeof(*p->workers));
		for (int i = 0; i < threads; i++) {
			int r = pthread_create(&p->workers[i], NULL, gz_worker, p);
			if (r != 0) {
				errno = r;
				return kn_error_errno(err, "cannot start a compression thread");
			}
			p->n_workers++;
		}
		p->threads_started = true;
		break;
	}
	case LAYER_COMPRESSION_ZSTD: {
		size_t r;

		p->level = level ? level : 3;
		if (p->level < 1 || p->level > ZSTD_maxCLevel())
			return kn_error_set(err, EINVAL, "zstd level '%d' out of range 1..%d", level,
					    ZSTD_maxCLevel());
		p->zc = ZSTD_createCCtx();
		if (!p->zc)
			return kn_error_set(err, ENOMEM, "cannot allocate a zstd compressor");
		(void)ZSTD_CCtx_setParameter(p->zc, ZSTD_c_compressionLevel, p->level);
		(void)ZSTD_CCtx_setParameter(p->zc, ZSTD_c_checksumFlag, 1);
		/*
		 * Always use the multithreaded mode (even with one worker): its output depends only
		 * on the level, not on the worker count, so layers are identical on every machine.
		 */
		r = ZSTD_CCtx_setParameter(p->zc, ZSTD_c_nbWorkers, threads);
		if (ZSTD_isError(r))
			return kn_error_set(err, ENOTSUP, "libzstd without thread support: %s",
					    ZSTD_getErrorName(r));
		/*
		 * Jobs of 2 MiB (the default at level 3 is 8 MiB) keep libzstd's buffers at ~20 MiB
		 * with two workers, for the 64 MiB peak RSS budget; the ratio barely moves.
		 */
		r = ZSTD_CCtx_setParameter(p->zc, ZSTD_c_jobSize, 2u << 20);
		(void)r;
		p->zout_cap = ZSTD_CStreamOutSize();
		p->zout = xmalloc(p->zout_cap);
		break;
	}
	case LAYER_COMPRESSION_NONE:
		break;
	default:
		return kn_error_set(err, EINVAL, "unknown compression %d", (int)c);
	}
	if (c != LAYER_COMPRESSION_GZIP) {
		int r;

		for (size_t i = 0; i < FEED_BUFS; i++)
			p->feed[i].data = xmalloc(LAYER_GZIP_CHUNK);
		r = pthread_create(&p->feeder, NULL, feeder_main, p);
		if (r != 0) {
			errno = r;
			return kn_error_errno(err, "cannot start the compression feeder thread");
		}
		p->feeder_started = true;
	}
	*ret = steal_ptr(&p);
	return 0;
}

int layer_pipe_write(struct layer_pipe *p, const void *data, size_t len, kn_error **err)
{
	const unsigned char *d = data;

	if (p->failed)
		return kn_error_set(err, EIO, "layer stream already failed");
	if (!len)
		return 0;
	p->diff_size += (int64_t)len;
	if (p->comp == LAYER_COMPRESSION_GZIP) {
		store_hash_update(p->diff_hash, data, len);
		if (gz_write(p, data, len, err) < 0) {
			p->failed = true;
			return -1;
		}
		return 0;
	}
	while (len) {
		size_t n = LAYER_GZIP_CHUNK - p->feed[p->feed_fill].len;

		if (n > len)
			n = len;
		memcpy(p->feed[p->feed_fill].data + p->feed[p->feed_fill].len, d, n);
		p->feed[p->feed_fill].len += n;
		d += n;
		len -= n;
		if (p->feed[p->feed_fill].len == LAYER_GZIP_CHUNK && feed_submit(p, err) < 0) {
			p->failed = true;
			return -1;
		}
	}
	return 0;
}

int layer_pipe_finish(struct layer_pipe *p, char **ret_diff_id, int64_t *ret_diff_size,
		      char **ret_digest, int64_t *ret_size, kn_error **err)
{
	int r = 0;

	if (p->failed)
		return kn_error_set(err, EIO, "layer stream already failed");
	if (p->comp == LAYER_COMPRESSION_GZIP) {
		r = gz_finish(p, err);
	} else {
		if (p->feed[p->feed_fill].len)
			r = feed_submit(p, err);
		pthread_mutex_lock(&p->lock);
		p->feed_end = true;
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
		pthread_join(p->feeder, NULL);
		p->feeder_started = false;
		if (r == 0 && p->feed_err) {
			kn_error_propagate(err, steal_ptr(&p->feed_err));
			r = -1;
		}
	}
	if (r < 0) {
		p->failed = true;
		return -1;
	}
	p->failed = true; /* finished: no more writes */
	*ret_diff_id = store_hash_final(p->diff_hash);
	*ret_digest = p->comp == LAYER_COMPRESSION_NONE ? xstrdup(*ret_diff_id)
							: store_hash_final(p->blob_hash);
	if (ret_diff_size)
		*ret_diff_size = p->diff_size;
	if (ret_size)
		*ret_size = p->blob_size;
	return 0;
}

void layer_pipe_free(struct layer_pipe *p)
{
	if (!p)
		return;
	if (p->threads_started || p->n_workers) {
		pthread_mutex_lock(&p->lock);
		p->stop = true;
		/* Drop queued work: an aborted pipe does not need it. */
		for (size_t i = 0; i < p->n_slots; i++)
			if (p->slots[i].state == SLOT_QUEUED)
				p->slots[i].state = SLOT_EMPTY;
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
		for (int i = 0; i < p->n_workers; i++)
			pthread_join(p->workers[i], NULL);
	}
	for (size_t i = 0; i < p->n_slots; i++) {
		free(p->slots[i].in);
		free(p->slots[i].out);
	}
	if (p->feeder_started) {
		pthread_mutex_lock(&p->lock);
		p->feed_abort = true;
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
		pthread_join(p->feeder, NULL);
	}
	for (size_t i = 0; i < FEED_BUFS; i++)
		free(p->feed[i].data);
	kn_error_free(p->feed_err);
	free(p->slots);
	free(p->workers);
	libdeflate_free_compressor(p->main_c);
	libdeflate_free_compressor(p->main_c0);
	ZSTD_freeCCtx(p->zc);
	free(p->zout);
	store_hash_free(p->diff_hash);
	store_hash_free(p->blob_hash);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p);
}

/* ---- reading --------------------------------------------------------------------------------- */

#define READ_BUF ((size_t)256 << 10)

struct layer_reader {
	int fd;
	enum layer_compression comp;
	struct store_hash *raw_hash, *tar_hash;
	unsigned char *in;
	size_t in_pos, in_len;
	bool in_eof;
	bool stream_end; /* the compressed stream ended cleanly (and nothing but members follow) */
	bool member_open;
	z_stream zs;
	bool zs_init;
	ZSTD_DCtx *zd;
	bool done;
};

static int fill_input(struct layer_reader *r, kn_error **err)
{
	ssize_t n;

	if (r->in_pos < r->in_len || r->in_eof)
		return 0;
	do
		n = read(r->fd, r->in, READ_BUF);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return kn_error_errno(err, "cannot read layer stream");
	r->in_pos = 0;
	r->in_len = (size_t)n;
	if (n == 0)
		r->in_eof = true;
	else
		store_hash_update(r->raw_hash, r->in, (size_t)n);
	return 0;
}

int layer_reader_new(int fd, struct layer_reader **ret, kn_error **err)
{
	_cleanup_(layer_reader_freep) struct layer_reader *r = xcalloc(1, sizeof(*r));
	static const unsigned char zstd_magic[4] = { 0x28, 0xb5, 0x2f, 0xfd };

	r->fd = fd;
	r->in = xmalloc(READ_BUF);
	r->raw_hash = store_hash_new("sha256", err);
	if (!r->raw_hash)
		return -1;
	r->tar_hash = store_hash_new("sha256", err);
	if (!r->tar_hash)
		return -1;
	/* Read until at least 4 bytes are there (or EOF) to look at the magic. */
	while (r->in_len < 4 && !r->in_eof) {
		ssize_t n = read(fd, r->in + r->in_len, READ_BUF - r->in_len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return kn_error_errno(err, "cannot read layer stream");
		if (n == 0)
			r->in_eof = true;
		store_hash_update(r->raw_hash, r->in + r->in_len, (size_t)n);
		r->in_len += (size_t)n;
	}
	if (r->in_len >= 2 && r->in[0] == 0x1f && r->in[1] == 0x8b) {
		r->comp = LAYER_COMPRESSION_GZIP;
		if (inflateInit2(&r->zs, 15 + 16) != Z_OK)
			return kn_error_set(err, ENOMEM, "cannot initialise gzip decompression");
		r->zs_init = true;
		r->member_open = true;
	} else if (r->in_len >= 4 && !memcmp(r->in, zstd_magic, 4)) {
		r->comp = LAYER_COMPRESSION_ZSTD;
		r->zd = ZSTD_createDCtx();
		if (!r->zd)
			return kn_error_set(err, ENOMEM, "cannot initialise zstd decompression");
		/* Bound the decoder's window (zstd's own default limit is 128 MiB; keep it). */
		(void)ZSTD_DCtx_setParameter(r->zd, ZSTD_d_windowLogMax, 27);
		r->member_open = true;
	} else {
		r->comp = LAYER_COMPRESSION_NONE;
	}
	*ret = steal_ptr(&r);
	return 0;
}

static ssize_t read_gzip(struct layer_reader *r, unsigned char *buf, size_t len, kn_error **err)
{
	for (;;) {
		int zr;
		size_t produced;

		if (fill_input(r, err) < 0)
			return -1;
		if (!r->member_open) {
			/* Between members: another member, or the end. */
			if (r->in_pos == r->in_len && r->in_eof) {
				r->stream_end = true;
				return 0;
			}
			if (r->in[r->in_pos] != 0x1f)
				return kn_error_set(err, EBADMSG, "trailing garbage after gzip data");
			if (inflateReset(&r->zs) != Z_OK)
				return kn_error_set(err, EBADMSG, "corrupt gzip stream");
			r->member_open = true;
		}
		if (r->in_pos == r->in_len && r->in_eof)
			return kn_error_set(err, EBADMSG, "unexpected end of gzip stream (truncated layer)");
		r->zs.next_in = r->in + r->in_pos;
		r->zs.avail_in = (uInt)(r->in_len - r->in_pos);
		r->zs.next_out = buf;
		r->zs.avail_out = (uInt)len;
		zr = inflate(&r->zs, Z_NO_FLUSH);
		r->in_pos = r->in_len - r->zs.avail_in;
		produced = len - r->zs.avail_out;
		if (zr == Z_STREAM_END)
			r->member_open = false;
		else if (zr != Z_OK && !(zr == Z_BUF_ERROR && produced == 0 && r->zs.avail_in == 0))
			return kn_error_set(err, EBADMSG, "corrupt gzip stream: %s",
					    r->zs.msg ? r->zs.msg : "inflate failed");
		if (produced)
			return (ssize_t)produced;
	}
}

static ssize_t read_zstd(struct layer_reader *r, unsigned char *buf, size_t len, kn_error **err)
{
	for (;;) {
		ZSTD_inBuffer in;
		ZSTD_outBuffer out = { buf, len, 0 };
		size_t zr;

		if (fill_input(r, err) < 0)
			return -1;
		if (r->in_pos == r->in_len && r->in_eof) {
			if (r->member_open)
				return kn_error_set(err, EBADMSG,
						    "unexpected end of zstd stream (truncated layer)");
			r->stream_end = true;
			return 0;
		}
		in.src = r->in + r->in_pos;
		in.size = r->in_len - r->in_pos;
		in.pos = 0;
		zr = ZSTD_decompressStream(r->zd, &out, &in);
		r->in_pos += in.pos;
		if (ZSTD_isError(zr))
			return kn_error_set(err, EBADMSG, "corrupt zstd stream: %s", ZSTD_getErrorName(zr));
		r->member_open = zr != 0;
		if (out.pos)
			return (ssize_t)out.pos;
	}
}

ssize_t layer_reader_read(struct layer_reader *r, void *buf, size_t len, kn_error **err)
{
	ssize_t n;

	if (r->done || !len)
		return 0;
	if (len > UINT32_MAX)
		len = UINT32_MAX;
	switch (r->comp) {
	case LAYER_COMPRESSION_GZIP:
		n = read_gzip(r, buf, len, err);
		break;
	case LAYER_COMPRESSION_ZSTD:
		n = read_zstd(r, buf, len, err);
		break;
	case LAYER_COMPRESSION_NONE:
	default:
		if (fill_input(r, err) < 0)
			return -1;
		n = (ssize_t)(r->in_len - r->in_pos);
		if ((size_t)n > len)
			n = (ssize_t)len;
		memcpy(buf, r->in + r->in_pos, (size_t)n);
		r->in_pos += (size_t)n;
		if (n == 0)
			r->stream_end = true;
		break;
	}
	if (n > 0)
		store_hash_update(r->tar_hash, buf, (size_t)n);
	else if (n == 0)
		r->done = true;
	return n;
}

int layer_reader_finish(struct layer_reader *r, char **ret_digest, char **ret_diff_id,
			kn_error **err)
{
	_cleanup_free_ unsigned char *buf = xmalloc(READ_BUF);

	/* The tar reader stops at the end-of-archive marker: hash whatever follows too. */
	for (;;) {
		ssize_t n = layer_reader_read(r, buf, READ_BUF, err);
		if (n < 0)
			return -1;
		if (n == 0)
			break;
	}
	if (!r->stream_end)
		return kn_error_set(err, EBADMSG, "layer stream did not end cleanly");
	if (ret_digest)
		*ret_digest = store_hash_final(r->raw_hash);
	if (ret_diff_id)
		*ret_diff_id = store_hash_final(r->tar_hash);
	return 0;
}

void layer_reader_free(struct layer_reader *r)
{
	if (!r)
		return;
	if (r->zs_init)
		inflateEnd(&r->zs);
	ZSTD_freeDCtx(r->zd);
	store_hash_free(r->raw_hash);
	store_hash_free(r->tar_hash);
	free(r->in);
	free(r);
}

/* ---- small public helpers ----------------------------------------------------------------- */

int layer_compression_parse(const char *name, enum layer_compression *ret, kn_error **err)
{
	if (!strcmp(name, "gzip"))
		*ret = LAYER_COMPRESSION_GZIP;
	else if (!strcmp(name, "zstd"))
		*ret = LAYER_COMPRESSION_ZSTD;
	else if (!strcmp(name, "none") || !strcmp(name, "uncompressed"))
		*ret = LAYER_COMPRESSION_NONE;
	else
		return kn_error_set(err, EINVAL, "unknown compression '%s' (use gzip, zstd or none)",
				    name);
	return 0;
}

const char *layer_compression_name(enum layer_compression c)
{
	switch (c) {
	case LAYER_COMPRESSION_ZSTD:
		return "zstd";
	case LAYER_COMPRESSION_NONE:
		return "none";
	case LAYER_COMPRESSION_GZIP:
	default:
		return "gzip";
	}
}

const char *layer_media_type(enum layer_compression c)
{
	switch (c) {
	case LAYER_COMPRESSION_ZSTD:
		return STORE_MT_OCI_LAYER_ZSTD;
	case LAYER_COMPRESSION_NONE:
		return STORE_MT_OCI_LAYER;
	case LAYER_COMPRESSION_GZIP:
	default:
		return STORE_MT_OCI_LAYER_GZIP;
	}
}
