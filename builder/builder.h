/* kiln builder: plans and runs Dockerfile builds in namespaced sandboxes. */
#ifndef KILN_BUILDER_H
#define KILN_BUILDER_H

#include <stdbool.h>
#include <stddef.h>

#include "base/base.h"
#include "layers/layers.h"
#include "parser/parser.h"

/* KILN-BUILDER-API */

/* ==== kiln build (build engine helper) ======================================================= */

enum bld_pull_policy { BLD_PULL_MISSING = 0, BLD_PULL_ALWAYS, BLD_PULL_NEVER };
enum bld_network { BLD_NETWORK_DEFAULT = 0, BLD_NETWORK_NONE, BLD_NETWORK_HOST };
enum bld_format { BLD_FORMAT_OCI = 0, BLD_FORMAT_DOCKER };
enum bld_compression { BLD_COMPRESS_GZIP = 0, BLD_COMPRESS_ZSTD, BLD_COMPRESS_NONE };

/** What a progress event reports. */
enum bld_event_kind {
	BLD_EV_STEP_START,  /* a step begins: stage/step numbers and text set */
	BLD_EV_STEP_OUTPUT, /* bytes the step's process wrote (data/len; may hold partial lines) */
	BLD_EV_STEP_CACHED, /* the step was a cache hit: nothing ran */
	BLD_EV_STEP_DONE,   /* the step finished (duration_ns set) */
	BLD_EV_STEP_ERROR,  /* the step failed: error is the message, source the instruction */
	BLD_EV_WARNING,     /* a non-fatal warning (text) */
	BLD_EV_INFO,        /* an informational line (text), e.g. "writing image sha256:..." */
};

/**
 * One progress event. Every pointer is borrowed for the duration of the callback only.
 * stage_index/step_index are 1-based; stage_name may be NULL for an unnamed stage.
 * text is the step as shown to users ("RUN make", "COPY . /src"), or the warning/info line.
 * file/line: the step's Dockerfile location (file NULL when unknown); source: the instruction as
 * written there (STEP_START and STEP_ERROR); error: the failure (STEP_ERROR).
 */
struct bld_event {
	enum bld_event_kind kind;
	int stage_index, stage_count;
	const char *stage_name;
	int step_index, step_count;
	const char *text;
	const char *data;
	size_t len;
	unsigned long long duration_ns;
	const char *file;
	int line;
	const char *source;
	const char *error;
};

/** Receives progress events; called from the building thread(s), serialised by the engine. */
typedef void (*bld_progress_fn)(const struct bld_event *ev, void *userdata);

/**
 * Where the result goes besides (or instead of) the store (`-o`, buildx's exporters):
 * LOCAL: the final stage's files into the directory dest; TAR: those files as a tar on dest;
 * OCI / DOCKER: the image as an oci-archive / docker-archive on dest, named by names. dest "-"
 * is stdout (TAR, OCI, DOCKER).
 */
enum bld_export_type { BLD_EXPORT_LOCAL = 0, BLD_EXPORT_TAR, BLD_EXPORT_OCI, BLD_EXPORT_DOCKER };
struct bld_export {
	enum bld_export_type type;
	const char *dest;
	char *const *names; /* image names for OCI/DOCKER (NULL-terminated, may be NULL) */
};

/** What a successful build made, for --metadata-file. Owned; bld_result_release(). */
struct bld_result {
	struct store_desc manifest; /* zeroed when the image was neither stored nor archived */
	char *config_digest;
};
void bld_result_release(struct bld_result *r);

/**
 * Everything one build needs. All strings are borrowed for the duration of bld_build().
 *
 * Context: exactly one of context_dir (a directory) or context_tar_fd >= 0 (a tar stream of the
 * context, e.g. stdin; it is unpacked into a temp dir under ROOT/tmp) is used; with neither, the
 * build has an empty context (a bare Dockerfile on stdin).
 * Dockerfile: dockerfile_data (with dockerfile_len) when set, else dockerfile_path, else
 * CONTEXT/Dockerfile. dockerfile_name is the name used in error locations ("Dockerfile").
 * build_args: "K=V" or "K" (taken from the environment, ignored when unset there).
 * labels: "K=V", added to the final image's config. tags: image names to point at the result.
 * secrets: "id=ID,src=PATH" (or "id=ID,env=VAR") for RUN --mount=type=secret.
 */
struct bld_options {
	const char *root;
	const char *context_dir;
	int context_tar_fd;
	/* Instead of both: a git repository URL, REPO[#REF[:SUBDIR]] (git://, git@HOST:, ssh://,
	 * http(s)://...git), fetched with the git command, or an http(s) URL of a tar archive
	 * (plain or compressed), downloaded through the registry transport and unpacked. */
	const char *context_url;
	const char *dockerfile_path;
	const char *dockerfile_data;
	size_t dockerfile_len;
	const char *dockerfile_name;
	const char *target;
	char *const *build_args;
	char *const *labels;
	char *const *tags;
	char *const *secrets;
	bool no_cache;
	char *const *cache_from; /* --cache-from specs (buildx syntax), first hit wins */
	char *const *cache_to;   /* --cache-to specs */
	int tls_verify;          /* registry caches: -1 default, 0 off, 1 on (as reg_pull_opts) */
	enum bld_pull_policy pull;
	enum bld_network network;
	enum bld_format format;
	enum bld_compression compression;
	/* NULL: the reproducible rule (SOURCE_DATE_EPOCH, else the context's git HEAD commit time,
	 * else the base image's created); "now": the build time, file times unclamped; digits: that
	 * Unix time. See kiln-build(1). */
	const char *timestamp;
	bld_progress_fn progress;
	void *progress_data;
	/* Exporters run after the build, in order; with no_store the image is not written to the
	 * store's index (only what the exporters need is made). */
	const struct bld_export *exports;
	size_t n_exports;
	bool no_store;
	struct bld_result *result; /* filled on success when not NULL */
	/* RUN: "IP\tHOST" lines added to /etc/hosts; /dev/shm size in bytes (0: 64 MiB). */
	char *const *add_hosts;
	unsigned long long shm_size;
	/* Stage names whose steps never use the build cache (--no-cache-filter). */
	char *const *no_cache_filter;
	/* "NAME=SOURCE" named contexts: a directory, docker-image://REF or oci-layout://DIR[:TAG]. */
	char *const *build_contexts;
	/* "ID=SOCKET|KEY[,KEY]" for RUN --mount=type=ssh: an ssh-agent socket, or key files that a
	 * private ssh-agent serves for the build. */
	char *const *ssh;
	/* RUN: resource limits over the defaults (BLD_DEFAULT_NOFILE, BLD_DEFAULT_NPROC), docker's
	 * --ulimit; and a wall-clock limit per RUN step in seconds (0: none). */
	const struct bld_ulimit *ulimits;
	size_t n_ulimits;
	unsigned run_timeout;
};

/** RUN's default limits: open files (as BuildKit) and processes of the step's user. */
#define BLD_DEFAULT_NOFILE 1048576
#define BLD_DEFAULT_NPROC 16384

/** One --ulimit: resource an RLIMIT_* value, soft/hard (RLIM_INFINITY for -1). */
struct bld_ulimit {
	int resource;
	unsigned long long soft, hard;
};

/**
 * Parses docker's --ulimit "NAME=SOFT[:HARD]" (NAME: as core cpu data fsize locks memlock
 * msgqueue nice nofile nproc rss rtprio rttime sigpending stack; -1 or "unlimited" for no
 * limit; HARD defaults to SOFT). EINVAL with the reason.
 */
int bld_ulimit_parse(const char *s, struct bld_ulimit *ret, kn_error **err);

/** Whether data starts like a tar archive (ustar) or a gzip, bzip2, xz or zstd stream. */
bool bld_looks_like_archive(const void *data, size_t n);

/** Sets defaults: context_tar_fd = tls_verify = -1, everything else zero (gzip, oci, pull missing). */
void bld_options_init(struct bld_options *o);

/**
 * Builds the target stage of the Dockerfile into the store at o->root, tags the result with
 * every o->tags name and returns the image ID ("sha256:<hex>", the config digest) in
 * *ret_image_id (owned by the caller, free()). Errors name the Dockerfile location
 * ("Dockerfile:12: ...") or the failing step (its command and exit code). On failure nothing is
 * tagged; layers and cache entries already made stay in the store for the next attempt.
 */
int bld_build(const struct bld_options *o, char **ret_image_id, kn_error **err);

/**
 * Checks one --cache-from (to false) or --cache-to (to true) value, buildx syntax:
 * "type=registry,ref=REPO:TAG[,mode=min|max][,compression=gzip|zstd]" (or a bare REPO:TAG),
 * "type=inline" (to only), "type=local,dest=DIR" / "type=local,src=DIR" [,tag=NAME].
 * EINVAL with a message naming the value and the field at fault.
 */
int bld_cache_spec_check(const char *spec, bool to, kn_error **err);

/* ==== kiln run ================================================================================ */

enum run_network { RUN_NETWORK_HOST = 0, RUN_NETWORK_NONE };

/**
 * One `kiln run`: an image's command in the foreground, in the sandbox RUN steps use, with
 * docker run's meaning for every field. Every string is borrowed for the duration of
 * run_container().
 *
 * args: COMMAND [ARG...] (NULL or empty: the image's Cmd). entrypoint: --entrypoint (NULL: the
 * image's; "" clears it); when set, the image's Cmd is not used either (docker).
 * env: "K=V" (set or replace) or "K" (remove, as docker's -e K when K is unset on the host),
 * --env-file entries first then -e, already resolved by the caller.
 * volumes: "HOST:CTR[:ro|rw]" (-v; HOST absolute, created as a directory when missing).
 * tmpfs: "CTR[:OPTS]" (--tmpfs; OPTS as docker: size=, mode=, exec/noexec, ro/rw; noexec,
 * nosuid and nodev by default).
 * workdir, user, hostname, stop_signal: NULL = the image's (or docker's default).
 * name: --name (NULL: none): at most one running container of that name per store.
 * init: kiln's reaper is PID 1 and the command its child (--init); else the command is PID 1.
 * interactive: the command's stdin is the caller's (else /dev/null). tty: a pseudo-terminal.
 * stop_timeout: seconds between the stop signal and SIGKILL (negative: never).
 */
struct run_options {
	const char *root;
	const char *image;
	char *const *args;
	const char *entrypoint;
	char *const *env;
	char *const *volumes;
	char *const *tmpfs;
	const char *workdir;
	const char *user;
	const char *hostname;
	const char *name;
	const char *stop_signal;
	int stop_timeout;
	enum run_network network;
	bool read_only;
	bool init;
	bool interactive;
	bool tty;
};

/** Sets defaults: stop_timeout 10, everything else zero (host network). */
void run_options_init(struct run_options *o);

/**
 * Runs the container in the foreground and returns 0 with *ret_exit_status the container's exit
 * status (128+N when killed by signal N). SIGTERM, SIGINT and SIGHUP sent to the calling process
 * go to the container's PID 1 (SIGTERM as the stop signal: stop_signal, else the image's
 * StopSignal, else SIGTERM); SIGQUIT, SIGUSR1 and SIGUSR2 are passed on as they are. When PID 1
 * has not exited stop_timeout seconds after the first of SIGTERM/SIGINT/SIGHUP, it is killed
 * (137). The container's writable layer and its anonymous volumes live in the store's temp dir
 * and are removed when it exits, always (there is no container store: --rm is the only mode).
 *
 * Returns -1 with *err set when the container could not be started; *ret_exit_status is then
 * docker run's status for it: 127 when the command was not found, 126 when it could not be
 * executed, 125 for any other failure. Call from the main thread of a single-threaded process:
 * it blocks signals and uses the caller's terminal.
 */
int run_container(const struct run_options *o, int *ret_exit_status, kn_error **err);

/**
 * Reads a docker --env-file: one "K=V" or "K" per line (appended to *out as is), lines starting
 * with '#' and blank lines skipped, leading whitespace dropped. A name with whitespace is an
 * error naming the file and line.
 */
int run_env_file_read(const char *path, struct kn_strv *out, kn_error **err);

#endif
