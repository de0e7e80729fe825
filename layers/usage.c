/* How much room an image takes once unpacked: what docker shows as an image's SIZE. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "layers/layers.h"

/*
 * The bytes a layer's files take: regular files' sizes and symlinks' target lengths (what lstat
 * reports for them, as docker's DiffSize sums), each hardlinked file once, directories nothing.
 */
static int layer_unpacked_size(const struct store *s, const struct store_desc *d, int64_t *ret,
			       kn_error **err)
{
	_cleanup_close_ int fd = -1;
	struct archive *a = NULL;
	struct archive_entry *e;
	int64_t size = 0, total = 0;
	int r;

	if (store_blob_open(s, d->digest, &fd, &size, err) < 0)
		return -1;
	a = archive_read_new();
	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	if (archive_read_open_fd(a, fd, 1 << 16) != ARCHIVE_OK)
		goto fail;
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		const char *link = archive_entry_symlink(e);

		if (archive_entry_hardlink(e))
			continue;
		if (archive_entry_filetype(e) == AE_IFREG)
			total += archive_entry_size(e);
		else if (archive_entry_filetype(e) == AE_IFLNK && link)
			total += (int64_t)strlen(link);
	}
	if (r != ARCHIVE_EOF)
		goto fail;
	archive_read_free(a);
	*ret = total;
	return 0;
fail:
	kn_error_set(err, EBADMSG, "layer '%s': %s", d->digest, archive_error_string(a) ? archive_error_string(a) : "cannot be read");
	archive_read_free(a);
	return -1;
}

int store_image_unpacked_size(const struct store *s, const struct store_image *img, int64_t *ret,
			      kn_error **err)
{
	int64_t total = 0;

	for (size_t i = 0; i < img->manifest.n_layers; i++) {
		int64_t n = 0;

		if (layer_unpacked_size(s, &img->manifest.layers[i], &n, err) < 0)
			return -1;
		total += n;
	}
	*ret = total;
	return 0;
}
