/*
 * Manifest parsing on hostile input (what a registry sends): the parser must never crash, every
 * descriptor it accepts has a valid sha256 digest, and platform selection over any index it
 * accepts either finds an entry or fails cleanly. The first byte picks a Content-Type.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "registry/transfer-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const content_types[] = {
	NULL,
	REG_MT_OCI_INDEX,
	REG_MT_DOCKER_LIST,
	REG_MT_OCI_MANIFEST,
	REG_MT_DOCKER_MANIFEST "; charset=utf-8",
	REG_MT_DOCKER_SCHEMA1_SIGNED,
	"application/json",
	"text/plain",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const plats[] = { "linux/amd64", "linux/arm64", "linux/arm/v7", "windows/amd64" };
	struct reg_manifest *m = NULL;
	kn_error *err = NULL;
	const char *ct;

	if (size < 1)
		return 0;
	ct = content_types[data[0] % (sizeof(content_types) / sizeof(content_types[0]))];
	if (reg_manifest_parse(data + 1, size - 1, ct, &m, &err) < 0) {
		if (!err || !err->msg)
			abort();
		kn_error_free(err);
		return 0;
	}
	if (m->kind == REG_MANIFEST_IMAGE) {
		if (!reg_digest_valid(m->config.digest))
			abort();
		for (size_t i = 0; i < m->n_layers; i++)
			if (!reg_digest_valid(m->layers[i].digest))
				abort();
	} else {
		for (size_t p = 0; p < sizeof(plats) / sizeof(plats[0]); p++) {
			struct reg_platform want;
			const struct reg_desc *d;

			if (reg_platform_parse(plats[p], &want, NULL) < 0)
				abort();
			d = reg_index_select(m, &want, &err);
			if (!d) {
				kn_error_free(err);
				err = NULL;
			} else if (!reg_digest_valid(d->digest)) {
				abort();
			}
			reg_platform_release(&want);
		}
	}
	reg_manifest_free(m);
	return 0;
}
