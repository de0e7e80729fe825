/* kiln registry: distribution v2 client (references, transport, auth, pull, push). */
#ifndef KILN_REGISTRY_H
#define KILN_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

#include "base/base.h"
#include "layers/layers.h"

/* ==== references, transport, auth, credentials (transport helper) ============================ */
/* KILN-REGISTRY-TRANSPORT-API */

/* ==== pull and push (transfer helper) ========================================================== */
/* KILN-REGISTRY-TRANSFER-API */

/**
 * A platform as in an OCI index entry. All fields owned; variant may be NULL.
 * reg_platform_parse() accepts "os/arch[/variant]" (e.g. "linux/arm64/v8"); the arch aliases
 * x86_64 -> amd64 and aarch64 -> arm64 are normalized. reg_platform_host() fills the running
 * machine's platform (linux, uname(2) machine mapped to GOARCH names, arm variants).
 * reg_platform_format() returns an owned "os/arch[/variant]".
 */
struct reg_platform {
	char *os;
	char *arch;
	char *variant;
};
int reg_platform_parse(const char *s, struct reg_platform *ret, kn_error **err);
void reg_platform_host(struct reg_platform *ret);
char *reg_platform_format(const struct reg_platform *p);
void reg_platform_release(struct reg_platform *p);

/** What a transfer progress event reports. */
enum reg_transfer_event_kind {
	REG_XFER_RESOLVED,     /* the manifest was resolved: digest = manifest digest, text = name */
	REG_XFER_BLOB_EXISTS,  /* pull: blob already in the store; push: already in the registry */
	REG_XFER_BLOB_START,   /* a blob transfer starts */
	REG_XFER_BLOB_DONE,    /* pull: "Pull complete"; push: "Pushed" */
	REG_XFER_BLOB_MOUNTED, /* push: blob mounted from another repository (text = that repo) */
	REG_XFER_RETRY,        /* a transient failure; text says what failed, the transfer retries */
};

/**
 * One event. Pointers are borrowed for the duration of the callback. digest is the blob's
 * "sha256:<hex>" (NULL for RESOLVED's blob fields); is_config tells the config blob from layers.
 */
struct reg_transfer_event {
	enum reg_transfer_event_kind kind;
	const char *digest;
	bool is_config;
	uint64_t size;
	const char *text;
};

/** Receives events. Calls are serialised (never concurrent) even though blobs move in parallel. */
typedef void (*reg_transfer_progress_fn)(const struct reg_transfer_event *ev, void *userdata);

/** When reg_pull() contacts the registry at all (FROM --pull semantics). */
enum reg_pull_policy {
	REG_PULL_ALWAYS = 0, /* always resolve the reference remotely (kiln pull, FROM with --pull) */
	REG_PULL_MISSING,    /* use the local image when the store has the name, else pull */
	REG_PULL_NEVER,      /* never contact the registry: fail with ENOENT when not local */
};

/**
 * Options of reg_pull(). Strings are borrowed for the call. root: the store root (required).
 * platform: "os/arch[/variant]" to pick from an index (NULL: the host's). tls_verify: -1 uses
 * the transport's default (verify, except plain-HTTP loopback/insecure registries), 0 disables
 * verification and allows plain HTTP, 1 forces it. jobs: parallel blob transfers (0: 3).
 * Initialise with reg_pull_opts_init().
 */
struct reg_pull_opts {
	const char *root;
	const char *platform;
	int tls_verify;
	unsigned jobs;
	enum reg_pull_policy policy;
	reg_transfer_progress_fn progress;
	void *progress_data;
};
void reg_pull_opts_init(struct reg_pull_opts *o);

/**
 * What reg_pull() did; every string owned, release with reg_pull_result_release().
 * name: the normalized reference the image is stored under ("docker.io/library/alpine:3.20",
 * or "host/repo@sha256:..." for a digest reference). digest: the digest of what the reference
 * names (the index when the tag points at one, as docker prints it). manifest_digest: the
 * platform manifest stored under the name. config_digest: the image ID. updated: false when the
 * store already held exactly this image under the name (docker's "Image is up to date").
 */
struct reg_pull_result {
	char *name;
	char *digest;
	char *manifest_digest;
	char *config_digest;
	bool updated;
};
void reg_pull_result_release(struct reg_pull_result *r);

/**
 * Pulls ref (any reference form reg_ref accepts) into the store. Negotiates every manifest type
 * (OCI index, Docker manifest list, OCI manifest, Docker schema 2; schema 1 is refused with
 * EPROTONOSUPPORT), chooses the platform from an index, verifies the manifest digest when ref
 * names one, streams missing blobs into the store (digest checked while they arrive; a
 * mismatching blob is never stored) several at a time, retries transient failures with backoff
 * and resumes interrupted downloads with Range requests. The platform manifest, its config and
 * layers are stored and the name points at the platform manifest; the index itself is kept as a
 * blob. Errors carry the registry's error code and message (e.g. "MANIFEST_UNKNOWN").
 * Records each blob's source repository for cross-repository mounts (see reg_push()).
 */
int reg_pull(const char *ref, const struct reg_pull_opts *opts, struct reg_pull_result *ret,
	     kn_error **err);

enum reg_push_format {
	REG_PUSH_FORMAT_KEEP = 0, /* push the manifest as stored */
	REG_PUSH_FORMAT_OCI,      /* convert a Docker schema 2 manifest to OCI media types */
	REG_PUSH_FORMAT_DOCKER,   /* convert an OCI manifest to Docker schema 2 (gzip/tar layers only) */
};

/** Options of reg_push(); same conventions as reg_pull_opts. Initialise with reg_push_opts_init(). */
struct reg_push_opts {
	const char *root;
	int tls_verify;
	unsigned jobs;
	enum reg_push_format format;
	reg_transfer_progress_fn progress;
	void *progress_data;
};
void reg_push_opts_init(struct reg_push_opts *o);

/**
 * What reg_push() did; strings owned, release with reg_push_result_release(). dest: the
 * normalized destination; tag: the tag pushed (NULL when dest named a digest); digest and size:
 * of the manifest as pushed. The counters say how each blob got there.
 */
struct reg_push_result {
	char *dest;
	char *tag;
	char *digest;
	uint64_t size;
	unsigned blobs_uploaded;
	unsigned blobs_mounted;
	unsigned blobs_present;
};
void reg_push_result_release(struct reg_push_result *r);

/**
 * Pushes the local image `image` (a name in the store, or a config/manifest digest prefix) to
 * dest (a reference; NULL: image's own name). Each blob is HEADed and skipped when present,
 * mounted from another repository of the same registry when the store recorded it came from
 * one, else uploaded (one PUT below 32 MiB, chunked PATCH uploads above), several at a time;
 * then the manifest is PUT with its exact media type, by tag (or by digest).
 */
int reg_push(const char *image, const char *dest, const struct reg_push_opts *opts,
	     struct reg_push_result *ret, kn_error **err);

#endif
