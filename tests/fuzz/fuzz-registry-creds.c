/*
 * libFuzzer target for stored credentials: arbitrary bytes as Docker's config.json (auths with
 * base64 "auth", identity tokens, credsStore/credHelpers naming helpers that cannot run here:
 * PATH is empty) looked up for a few registries, and as a credential helper's `get` output.
 * Never a crash, a leak or a read past the input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "registry/transport-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[] = "/tmp/kiln-fuzz-creds-XXXXXX";
static char *config;

static void cleanup(void)
{
	unlink(config);
	rmdir(dir);
	free(config);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const domains[] = { "docker.io", "localhost:5000", "127.0.0.1:1", "ghcr.io" };
	struct reg_opts opts;
	struct reg_credentials *c = NULL;
	FILE *f;

	if (!config) {
		if (!mkdtemp(dir))
			abort();
		config = xasprintf("%s/config.json", dir);
		setenv("PATH", dir, 1); /* no docker-credential-* helper can be found */
		atexit(cleanup);
	}
	f = fopen(config, "wb");
	if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
		abort();
	reg_opts_init(&opts);
	opts.docker_config = dir;
	for (size_t i = 0; i < sizeof(domains) / sizeof(domains[0]); i++) {
		kn_error *err = NULL;

		if (reg_credentials_lookup(domains[i], &opts, &c, &err) == 0)
			reg_credentials_free(c);
		kn_error_free(err);
		c = NULL;
	}
	{
		kn_error *err = NULL;

		if (reg_helper_output_parse("fuzz", (const char *)data, size, &c, &err) == 0)
			reg_credentials_free(c);
		kn_error_free(err);
	}
	return 0;
}
