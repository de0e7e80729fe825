/*
 * Registry parsing on hostile input: image references (with the invariant that a normalized
 * reference parses to itself), WWW-Authenticate challenges and base64 (config.json "auth").
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "registry/transport-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = xstrndup((const char *)data, size);
	struct reg_ref *r = NULL, *r2 = NULL;
	struct reg_challenge ch;
	struct kn_buf b = KN_BUF_INIT;
	kn_error *err = NULL;

	if (reg_ref_parse(s, &r, &err) == 0) {
		char *fam = reg_ref_familiar(r);

		if (reg_ref_parse(r->string, &r2, NULL) < 0 || strcmp(r2->string, r->string))
			abort();
		free(fam);
		reg_ref_free(r2);
		reg_ref_free(r);
	} else {
		kn_error_free(err);
	}
	if (reg_challenge_parse(s, &ch) == 0)
		reg_challenge_release(&ch);
	(void)reg_base64_decode(s, &b, NULL);
	kn_buf_release(&b);
	free(reg_registry_normalize(s));
	free(s);
	return 0;
}
