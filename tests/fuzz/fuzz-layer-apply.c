/*
 * libFuzzer target: the input is a layer stream (plain tar, gzip or zstd), applied with
 * layer_apply_fd() into a fresh temp dir, flattened and in overlay form. Besides crashes and
 * sanitizer reports, it checks the containment promise: nothing may appear next to the target.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layers/layers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void apply_once(const uint8_t *data, size_t size, unsigned flags)
{
	char base[] = "/tmp/kiln-fuzz-layer-XXXXXX";
	char *target;
	kn_error *err = NULL;
	struct layer_apply_opts ao = {
		.flags = flags,
		.max_size = 64 << 20,
		.max_entries = 10000,
	};
	int fd;
	struct stat st;

	if (!mkdtemp(base))
		abort();
	target = kn_path_join(base, "target");
	if (mkdir(target, 0755) < 0)
		abort();
	fd = memfd_create("layer", MFD_CLOEXEC);
	if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size) || lseek(fd, 0, SEEK_SET) != 0)
		abort();
	(void)layer_apply_fd(fd, target, &ao, NULL, &err);
	kn_error_free(err);
	close(fd);
	/* Containment: base must still hold only "target". */
	{
		char *probe = kn_path_join(base, "escaped");
		if (lstat(probe, &st) == 0)
			abort();
		free(probe);
	}
	if (kn_rm_rf(base, NULL) < 0)
		abort();
	free(target);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	apply_once(data, size, 0);
	apply_once(data, size, LAYER_APPLY_OVERLAY);
	return 0;
}
