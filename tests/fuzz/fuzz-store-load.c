/*
 * The store on hostile input: arbitrary bytes as a docker-archive/oci-archive for `kiln load`
 * (the store must stay consistent whatever happens), and as image config / manifest / index JSON
 * (with the invariant that the canonical dump is a fixed point) and image names.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "layers/layers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct store *store;
static char store_dir[] = "/tmp/kiln-fuzz-store-XXXXXX";

static void cleanup(void)
{
	store_free(store);
	(void)kn_rm_rf(store_dir, NULL);
}

static void json_checks(const char *s, size_t n)
{
	struct image_config *c = NULL, *c2 = NULL;
	struct image_manifest m;
	struct image_index ix;
	char *out = NULL, *norm = NULL;

	if (image_config_parse(s, n, &c, NULL) == 0) {
		size_t l1, l2;
		char *a = image_config_dump(c, &l1), *b;

		if (image_config_parse(a, l1, &c2, NULL) < 0)
			abort();
		b = image_config_dump(c2, &l2);
		if (l1 != l2 || memcmp(a, b, l1))
			abort();
		free(a);
		free(b);
		image_config_free(c2);
		image_config_free(c);
	}
	if (image_manifest_parse(s, n, &m, NULL) == 0) {
		out = image_manifest_dump(&m, NULL);
		free(out);
		image_manifest_release(&m);
	}
	if (image_index_parse(s, n, &ix, NULL) == 0) {
		out = image_index_dump(&ix, NULL);
		free(out);
		(void)image_index_choose(&ix, NULL, NULL, NULL, NULL);
		image_index_release(&ix);
	}
	if (n < 512 && !memchr(s, 0, n)) {
		char *z = xstrndup(s, n);

		if (store_ref_normalize(z, &norm, NULL) == 0) {
			char *again = NULL;

			if (store_ref_normalize(norm, &again, NULL) < 0 || strcmp(again, norm))
				abort();
			free(again);
			free(norm);
		}
		free(z);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd;

	if (!store) {
		if (!mkdtemp(store_dir) || store_open(store_dir, STORE_WRITE, &store, NULL) < 0)
			abort();
		atexit(cleanup);
	}
	json_checks((const char *)data, size);
	fd = memfd_create("archive", MFD_CLOEXEC);
	if (fd < 0)
		abort();
	if (write(fd, data, size) == (ssize_t)size && lseek(fd, 0, SEEK_SET) == 0) {
		kn_error *err = NULL;

		if (store_archive_load(store, fd, NULL, NULL, &err) < 0)
			kn_error_free(err);
		if (store_fsck(store, NULL, NULL, NULL) != 0)
			abort();
	}
	close(fd);
	return 0;
}
