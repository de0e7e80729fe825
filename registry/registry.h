/* kiln registry: distribution v2 client (references, transport, auth, pull, push). */
#ifndef KILN_REGISTRY_H
#define KILN_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

#include "base/base.h"
#include "layers/layers.h"

/* ==== references, transport, auth, credentials (transport helper) ============================ */
/* KILN-REGISTRY-TRANSPORT-API */

#include <stdint.h>

/**
 * A parsed image reference, normalized the way Docker does it (distribution/reference):
 *   "alpine"                    -> domain "docker.io", path "library/alpine", tag "latest"
 *   "user/app"                  -> "docker.io", "user/app", "latest"
 *   "localhost:5000/x"          -> "localhost:5000", "x", "latest"
 *   "host.example/a/b:tag"      -> "host.example", "a/b", "tag"
 *   "name@sha256:<64 hex>"      -> tag NULL, digest set (no implicit "latest")
 *   "name:tag@sha256:<64 hex>"  -> both set
 * The first component is a domain when it contains '.' or ':', is "localhost", or has an
 * uppercase letter; "index.docker.io" becomes "docker.io". Path components are lowercase
 * [a-z0-9] separated by '.', '_', '__' or '-'+; tags match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127};
 * the whole name is at most 255 characters; digests are "algo:hex" (sha256 needs 64 lowercase
 * hex, sha512 128). All strings owned by the struct:
 *   name   = domain "/" path                ("docker.io/library/alpine")
 *   string = name [":" tag] ["@" digest]    ("docker.io/library/alpine:latest"), the form used
 *            for org.opencontainers.image.ref.name in the store
 */
struct reg_ref {
	char *domain;
	char *path;
	char *tag;
	char *digest;
	char *name;
	char *string;
};

/**
 * Parses and normalizes s. On success *ret is a new reg_ref (free with reg_ref_free). Errors
 * (EINVAL) quote the input and say what is wrong: "invalid reference 'Foo': repository name
 * must be lowercase", "... invalid tag", "... invalid digest", "... name too long".
 */
int reg_ref_parse(const char *s, struct reg_ref **ret, kn_error **err);
struct reg_ref *reg_ref_dup(const struct reg_ref *ref);
/** Replaces the tag / digest (NULL removes it) and recomputes string. Values are copied. */
void reg_ref_set_tag(struct reg_ref *ref, const char *tag);
void reg_ref_set_digest(struct reg_ref *ref, const char *digest);
/** Docker's short form for messages: "alpine:latest", "user/app:1", "localhost:5000/x:latest". */
char *reg_ref_familiar(const struct reg_ref *ref);
void reg_ref_free(struct reg_ref *ref);
DEFINE_FREEP(struct reg_ref, reg_ref_free)

/**
 * The host[:port] to talk to for a reference domain: "registry-1.docker.io" for "docker.io",
 * the domain itself otherwise. Returns a borrowed static or the argument.
 */
const char *reg_domain_api_host(const char *domain);
/**
 * Normalizes what a user types to `kiln login`/`logout` or finds as a key in config.json
 * ("https://index.docker.io/v1/", "docker.io", "http://localhost:5000/", "ghcr.io/x") to a
 * reference domain ("docker.io", "localhost:5000", "ghcr.io"). Returns an owned string.
 */
char *reg_registry_normalize(const char *registry);

/**
 * Transport options, shared by every registry operation. Initialise with reg_opts_init(), which
 * also reads the environment:
 *   KILN_INSECURE_REGISTRIES   comma list of host[:port] that may use plain HTTP or unverified TLS
 *   KILN_REGISTRY_RETRIES      retries of transient failures (default 4)
 *   KILN_REGISTRY_RETRY_DELAY_MS  first backoff delay, doubled each retry (default 500)
 *   KILN_REGISTRY_TIMEOUT      connect timeout and low-speed window in seconds (default 30)
 *   KILN_REGISTRY_CONNECT_TO   comma list of HOST:PORT:CONNECT-HOST:CONNECT-PORT (curl's
 *                              --connect-to; empty parts match any): debugging and tests
 *   KILN_CERTS_DIR             instead of /etc/docker/certs.d and /etc/containers/certs.d: per
 *                              "host[:port]" directories with *.crt CAs (trusted instead of the
 *                              system's for that host) and a client certificate (*.cert with *.key)
 * tls_verify: -1 default policy (verify; loopback hosts and insecure registries fall back to
 * plain HTTP when the server does not speak TLS), 0 = --tls-verify=false (no verification, plain
 * HTTP fallback allowed), 1 = always verify, never plain HTTP.
 * username/password: explicit credentials that win over config.json (borrowed).
 * docker_config: directory holding config.json (NULL: $DOCKER_CONFIG, else ~/.docker).
 * user_agent: NULL = "kiln/<version>".
 */
struct reg_opts {
	int tls_verify;
	const char *username;
	const char *password;
	const char *docker_config;
	const char *user_agent;
	long connect_timeout_s;
	long low_speed_time_s;
	long low_speed_limit; /* bytes/s below which low_speed_time_s aborts a transfer */
	int retries;
	long retry_delay_ms;
};
void reg_opts_init(struct reg_opts *o);

/** Credentials for one registry. All owned; password or identity_token may be NULL. */
struct reg_credentials {
	char *username;
	char *password;
	char *identity_token; /* an OAuth2 refresh token ("identitytoken" in config.json) */
};
void reg_credentials_free(struct reg_credentials *c);
DEFINE_FREEP(struct reg_credentials, reg_credentials_free)

/**
 * Looks up stored credentials for a reference domain ("docker.io", "localhost:5000"), the way
 * docker does: credHelpers[domain], else credsStore (docker-credential-<name> get), else
 * auths[domain] (also "https://domain", "http://domain", and for docker.io the key
 * "https://index.docker.io/v1/"). *ret is NULL (and 0 returned) when none are stored. opts may
 * be NULL. Errors name the file or helper, never a secret.
 */
int reg_credentials_lookup(const char *domain, const struct reg_opts *opts,
			   struct reg_credentials **ret, kn_error **err);

/**
 * `kiln login`: checks username/password against `registry` (GET /v2/ through the challenge
 * flow: Basic or Bearer token with the credentials) and only then stores them: with the
 * configured credential helper (credHelpers/credsStore, "store"), else as
 * auths[<key>].auth = base64(user:pass) in config.json, written atomically with mode 0600,
 * keeping every other field. Docker Hub's key is "https://index.docker.io/v1/".
 * Wrong credentials fail with EACCES ("login to 'host' failed: unauthorized: ...") and leave
 * config.json untouched. ret_path (may be NULL) receives where they were stored: the
 * config.json path or "docker-credential-<name>".
 */
int reg_login(const char *registry, const char *username, const char *password,
	      const struct reg_opts *opts, char **ret_path, kn_error **err);
/**
 * `kiln logout`: removes stored credentials for `registry` (helper "erase" and/or the auths
 * entry). Fails with ENOENT ("not logged in to 'host'") when nothing was stored.
 */
int reg_logout(const char *registry, const struct reg_opts *opts, kn_error **err);

/**
 * Downloads an http(s) URL (a build context tarball, an ADD source) into fd through the registry
 * transport: the same TLS settings, certificates, proxies, connect and idle timeouts, retries with
 * backoff and resumed transfers, at most 10 redirects, never any registry credentials. A status
 * >= 400 fails naming the URL; more than max bytes (0: no limit) fails with EFBIG, a full disk
 * with ENOSPC. *ret_digest (may be NULL) receives "sha256:..." of the bytes, hashed as they
 * arrive; *ret_last_modified (may be NULL) the Last-Modified header or NULL. Both owned.
 */
int reg_fetch_url(const char *url, const struct reg_opts *opts, int fd, uint64_t max,
		  char **ret_digest, char **ret_last_modified,
		  kn_error **err);

/* ==== pull and push (transfer helper) ========================================================== */
/* KILN-REGISTRY-TRANSFER-API */

/**
 * A platform as in an OCI index entry. All fields owned; variant may be NULL.
 * reg_platform_parse() accepts "os/arch[/variant]" (e.g. "linux/arm64/v8"); arch and variant
 * are normalized with kn_arch_normalize() (base/platform.h), as are the platforms read from an
 * index. reg_platform_host() fills the running machine's platform (kn_platform_host()).
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
	REG_XFER_BLOB_PROGRESS, /* bytes moved so far: current of size (every MiB or so) */
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
	uint64_t current;
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
 * store: an open STORE_WRITE handle to use instead of opening root (e.g. the builder's; it is
 * borrowed; then root may be NULL). Initialise with reg_pull_opts_init().
 */
struct reg_pull_opts {
	const char *root;
	struct store *store;
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
	struct store *store;
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

/* ==== artifacts: manifests and blobs of one repository (the build cache) ===================== */

/**
 * A repository opened for artifacts that are not images to run: the build cache (see
 * man/kiln-build-cache.5). ref: any reference reg_ref accepts; its tag (or digest) is the manifest
 * the calls below read and write. tls_verify as in reg_pull_opts. push: also ask for push access.
 * No network I/O happens here. Thread-safe: several threads may fetch blobs at once.
 */
struct reg_repo;
int reg_repo_open(const char *ref, int tls_verify, bool push, struct reg_repo **ret,
		  kn_error **err);
void reg_repo_free(struct reg_repo *r);
DEFINE_FREEP(struct reg_repo, reg_repo_free)
/** The normalized reference (borrowed): "127.0.0.1:5000/team/cache:main". */
const char *reg_repo_name(const struct reg_repo *r);
/**
 * GETs the manifest the reference names; an index (or Docker manifest list) is resolved to the
 * host platform's manifest. body receives the image manifest's exact bytes (appended), checked
 * against its digest; *ret_digest (owned) is that digest. ENOENT when the registry has no such
 * manifest.
 */
int reg_repo_manifest_get(struct reg_repo *r, struct kn_buf *body, char **ret_digest,
			  kn_error **err);
/** GETs a small blob (at most max bytes) into out, checked against its digest. */
int reg_repo_blob_read(struct reg_repo *r, const char *digest, size_t max, struct kn_buf *out,
		       kn_error **err);
/** Downloads a blob into the store (size and digest checked; nothing stored on mismatch). */
int reg_repo_blob_fetch(struct reg_repo *r, struct store *s, const char *digest, int64_t size,
			kn_error **err);
/** HEADs a blob: *ret true when the repository has it. */
int reg_repo_blob_exists(struct reg_repo *r, const char *digest, bool *ret, kn_error **err);
/** Uploads the blobs (from the store) the repository lacks, several at a time. */
int reg_repo_blobs_push(struct reg_repo *r, const struct store *s, const struct store_desc *blobs,
			size_t n, kn_error **err);
/** PUTs a manifest (exact bytes, media type) under the reference's tag (or digest). */
int reg_repo_manifest_put(struct reg_repo *r, const void *data, size_t len,
			  const char *media_type, kn_error **err);

#endif
