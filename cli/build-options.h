/* kiln build: the docker buildx flags (-o exporters, --metadata-file, --platform, ...), parsed
 * into bld_options; cmd-build.c calls these so that it stays small. */
#ifndef KILN_CLI_BUILD_OPTIONS_H
#define KILN_CLI_BUILD_OPTIONS_H

#include <stdbool.h>

#include "base/base.h"
#include "builder/builder.h"
#include "cli/cli.h"

enum {
	OPT_BX_FIRST = 0x200,
	OPT_BX_METADATA_FILE = OPT_BX_FIRST,
	OPT_BX_LOAD,
	OPT_BX_PROVENANCE,
	OPT_BX_SBOM,
	OPT_BX_PLATFORM,
	OPT_BX_ADD_HOST,
	OPT_BX_SHM_SIZE,
	OPT_BX_NO_CACHE_FILTER,
	OPT_BX_BUILD_CONTEXT,
	OPT_BX_SSH,
	OPT_BX_ULIMIT,
	OPT_BX_RUN_TIMEOUT,
	OPT_BX_LAST,
};

/* The long options of build_flags_parse(), for cmd-build.c's option table (plus "o:"). */
#define BUILD_FLAGS_OPTIONS                                                        \
	{ "output", required_argument, NULL, 'o' },                                \
	{ "metadata-file", required_argument, NULL, OPT_BX_METADATA_FILE },        \
	{ "load", no_argument, NULL, OPT_BX_LOAD },                                \
	{ "provenance", required_argument, NULL, OPT_BX_PROVENANCE },              \
	{ "sbom", required_argument, NULL, OPT_BX_SBOM },                          \
	{ "platform", required_argument, NULL, OPT_BX_PLATFORM },                  \
	{ "add-host", required_argument, NULL, OPT_BX_ADD_HOST },                  \
	{ "shm-size", required_argument, NULL, OPT_BX_SHM_SIZE },                  \
	{ "no-cache-filter", required_argument, NULL, OPT_BX_NO_CACHE_FILTER },    \
	{ "build-context", required_argument, NULL, OPT_BX_BUILD_CONTEXT },        \
	{ "ssh", required_argument, NULL, OPT_BX_SSH },                            \
	{ "ulimit", required_argument, NULL, OPT_BX_ULIMIT },                      \
	{ "run-timeout", required_argument, NULL, OPT_BX_RUN_TIMEOUT }

/* Help lines of those options (part of build_usage). */
#define BUILD_FLAGS_USAGE                                                                          \
	"  -o, --output SPEC         export the result (repeatable): type=local,dest=DIR (the files),\n" \
	"                            type=tar,dest=FILE|-, type=oci,dest=FILE|-, type=docker[,dest=FILE|-],\n" \
	"                            type=image[,name=REF][,push=true], type=registry[,name=REF],\n" \
	"                            type=cacheonly; DIR alone is type=local, '-' is type=tar to stdout\n" \
	"      --metadata-file FILE  write the result's digests as JSON (as docker buildx does)\n"          \
	"      --load                accepted: the image goes to the local store by default\n"            \
	"      --provenance=false    accepted (attestations are not made)\n"                              \
	"      --sbom=false          accepted (attestations are not made)\n"                              \
	"      --platform OS/ARCH    the host platform (the only one kiln builds for today)\n"            \
	"      --add-host HOST:IP    add a line to /etc/hosts during RUN (repeatable)\n"                  \
	"      --shm-size SIZE       size of /dev/shm during RUN (bytes, or with k, m, g; default 64m)\n" \
	"      --no-cache-filter STAGE  do not use the build cache for these stages (repeatable)\n"       \
	"      --build-context NAME=SRC  FROM NAME / COPY --from=NAME take SRC instead: a directory,\n"  \
	"                            docker-image://REF or oci-layout://DIR[:TAG|@DIGEST]\n"             \
	"      --ssh default|ID[=SOCKET|KEY[,KEY]]  an ssh-agent socket (or keys, served by a\n"   \
	"                            private agent) for RUN --mount=type=ssh (repeatable)\n"   \
	"      --ulimit NAME=SOFT[:HARD]  a resource limit for RUN (repeatable; nofile, nproc, ...;\n"    \
	"                            defaults nofile=1048576, nproc=16384)\n"                           \
	"      --run-timeout DURATION  kill a RUN step still running after DURATION (30, 90s, 10m, 2h)\n"

/* What the buildx flags asked for; the strings bld_options borrow live here. */
struct build_flags {
	struct bld_export *exports;
	size_t n_exports, alloc_exports;
	struct kn_strv strings;     /* owned storage for export dests and names */
	char ***export_names;       /* per export: owned NULL-terminated names (NULL: from -t) */
	bool store;                 /* some output (or none at all) wants the image in the store */
	bool push;                  /* type=registry or type=image,push=true */
	bool have_outputs;
	const char *metadata_file;
	struct kn_strv image_names; /* names from type=image/registry name= */
	struct kn_strv add_hosts;   /* "HOST:IP" */
	unsigned long long shm_size;
	struct kn_strv no_cache_filter;
	struct kn_strv build_contexts; /* "NAME=SRC" */
	struct kn_strv ssh;            /* "ID=SOCKET|KEY[,KEY]" */
	struct bld_ulimit *ulimits;    /* --ulimit, in order */
	size_t n_ulimits, alloc_ulimits;
	unsigned run_timeout;          /* --run-timeout, seconds */
	struct bld_result result;
};

void build_flags_init(struct build_flags *f);
void build_flags_release(struct build_flags *f);

/*
 * Refuses, before getopt sees them, the docker buildx / docker build flags kiln does not
 * implement (those not in longopts), with a usage error saying so. Returns 0 or CLI_EXIT_USAGE.
 */
int build_flags_check_unsupported(int argc, char **argv, const struct option *longopts);

/* Handles option c (one of BUILD_FLAGS_OPTIONS or 'o'). 0, or CLI_EXIT_USAGE after a message. */
int build_flags_parse(struct build_flags *f, int c, const char *arg);

/*
 * Fills o from the flags after every option was read: exports, no_store, add_hosts, ... tags
 * receives the names of type=image/registry outputs, *push is set for type=registry or
 * push=true. Returns 0 or CLI_EXIT_USAGE after a message.
 */
int build_flags_apply(struct build_flags *f, struct bld_options *o, struct kn_strv *tags, bool *push);

/* Whether an exporter writes to stdout (then the image ID is not printed there). */
bool build_flags_stdout_used(const struct build_flags *f);

/* Writes --metadata-file once the build succeeded (tags: the image's names). */
int build_flags_finish(struct build_flags *f, char *const *tags, kn_error **err);

#endif
