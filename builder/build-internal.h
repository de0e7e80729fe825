/* kiln builder: internals of `kiln build` shared by build.c, context.c, copy.c, config.c, cache.c. */
#ifndef KILN_BUILDER_BUILD_INTERNAL_H
#define KILN_BUILDER_BUILD_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "builder/builder.h"

struct sandbox_rlimit;
/* The limits of a RUN step: the defaults overlaid by o->ulimits; at most max, returns the count. */
size_t bld_run_rlimits(const struct bld_options *o, struct sandbox_rlimit *out, size_t max);

static inline void bld_strv_freep(char ***p)
{
	kn_strv_free(*p);
}
#define _cleanup_strv_ _cleanup_(bld_strv_freep)

/* ---- the build ------------------------------------------------------------------------------ */

/** The result of one built stage: the config and layers its image would have. */
struct bld_stage_result {
	bool built;
	struct image_config *config;
	struct store_desc *layers;
	size_t n_layers;
	char *key; /* cache key (hex) of the stage's last step: names its content */
	char *base_id; /* ID of the store image the stage is built on (through FROM stages), or NULL */
	struct df_env args; /* the ARG values declared by the end of the stage (a FROM stage inherits them) */
};

struct bld_secret {
	char *id;
	char *src;  /* file path, or NULL */
	char *env;  /* environment variable, or NULL */
};

/** One image used by COPY --from=image or RUN --mount from=image, resolved once. */
struct bld_ext_image {
	char *ref;
	struct store_image *img;
};

struct bld {
	const struct bld_options *o;
	struct store *store;
	char *ctx_dir;   /* absolute, realpath'd context directory */
	int ctx_fd;      /* O_PATH|O_DIRECTORY of ctx_dir */
	struct df_ignore *ignore;
	struct df_plan *plan;
	struct df_ast *ast;
	struct bld_stage_result *stages;
	struct layer_write_opts lopts;
	bool have_epoch;
	int64_t epoch;     /* the build's timestamp (see build_epoch) */
	char time_key[32]; /* its part of every cache key: "t=<epoch>" or "t=now" */
	/* The git context's commit time (seconds since the epoch), for the timestamp rule. */
	bool have_ctx_time;
	int64_t ctx_time;
	char *extra_hosts; /* --add-host lines for /etc/hosts, NULL when none */
	struct bld_ssh *ssh; /* --ssh ids (ssh.c) */
	size_t n_ssh, alloc_ssh;
	struct bld_secret *secrets;
	size_t n_secrets, alloc_secrets;
	struct bld_ext_image *ext;
	size_t n_ext, alloc_ext;
	struct bld_statcache *statcache; /* context file digests by stat, NULL when unused */
	struct cache_writer *cache_writer; /* writes cache entries off the build's critical path */
	struct rcache *rcache; /* --cache-from / --cache-to (remote-cache.c), NULL without them */
	pthread_mutex_t lock; /* serialises progress events */
	pthread_mutex_t mu;   /* guards ext, statcache, cache_writer start between stage threads */
	unsigned step_seq;    /* names per-step temp dirs (atomic) */
};

/** A stage being built: its running config, layers and cache key. */
struct bld_state {
	struct bld *b;
	struct store *store; /* this stage thread's own store handle (borrowed) */
	const struct df_stage *stage;
	int stage_index, stage_count;
	const char *stage_name;
	int step_index, step_count;
	struct image_config *config;
	struct store_desc *layers;
	size_t n_layers, alloc_layers;
	char *chain_id;  /* chain ID of the layers so far, NULL when none */
	char *key;       /* cache key so far (hex) */
	char *base_id;   /* ID of the store image the stage is built on, NULL for scratch */
	bool cmd_set;    /* CMD given in this stage (ENTRYPOINT then keeps it) */
	struct df_stage_env se;
	const char *step_text;  /* the step being run, for error messages */
	const char *file;
	int line;
};

/* Progress (build.c). */
void bld_emit(struct bld *b, const struct bld_event *ev);
void bld_warn(struct bld *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bld_info(struct bld *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bld_step_output(const char *data, size_t len, void *st);

/** Whether the step's stage skips the build cache (--no-cache, --no-cache-filter). */
bool bld_no_cache(const struct bld_state *st);

/** The created timestamp for a new history entry / image (RFC 3339, UTC). Owned. */
char *bld_now(const struct bld *b);

/** Makes a fresh per-step scratch dir under the store's tmp dir. Owned path. */
char *bld_step_tmpdir(struct bld_state *st, kn_error **err);

/** Appends a layer to the state (desc copied) and advances the chain ID. */
void bld_state_add_layer(struct bld_state *st, const struct store_desc *desc, const char *diff_id);

/** Lowerdirs (top first, owned, kn_strv_free) of the state's layers (unpacked when needed). */
int bld_state_lowerdirs(struct bld_state *st, char ***ret, kn_error **err);

/**
 * Commits the upper dir of a step (overlay form) as a layer: diffs it (against lowerdirs when
 * overlay is set, else as a plain dir), adds the layer to the state's config with a history entry
 * created_by and makes upper the new snapshot. An empty diff is still a layer (an empty tar), as
 * BuildKit writes one for every RUN, COPY and ADD. upper is consumed (moved or removed).
 */
int bld_commit_upper(struct bld_state *st, const char *upper, char *const *lowerdirs, bool overlay,
		     const char *created_by, kn_error **err);

/* ---- exporters (export.c) ---------------------------------------------------------------------- */

/** Runs b->o->exports for the final image; mdesc: its manifest in the store (for oci/docker). */
int bld_export_run(struct bld *b, const struct image_config *config, const struct store_desc *layers,
		   size_t n, const struct store_desc *mdesc, kn_error **err);
/** Whether an exporter needs the image's manifest and config blobs (oci, docker). */
bool bld_export_needs_image(const struct bld_options *o);

/* ---- --ssh (ssh.c) -------------------------------------------------------------------------------- */

struct bld_ssh;
/** Sets up b->o->ssh: sockets as given, key files in a private ssh-agent started here. */
int bld_ssh_setup(struct bld *b, kn_error **err);
/** The agent socket forwarded as id, or NULL. */
const char *bld_ssh_socket(const struct bld *b, const char *id);
/** Stops the private agents and frees everything. */
void bld_ssh_release(struct bld *b);

/* ---- named contexts (named-context.c) ------------------------------------------------------------ */

/**
 * Looks ref (a FROM image or --from name) up in --build-context. Returns 0 when it is not a named
 * context; 1 with *ret_img (owned) for a directory (one layer of its files) or an OCI layout's
 * image (its blobs copied into the store); 2 with *ret_alias (borrowed) for docker-image://REF,
 * the reference to use instead; -1 with an error.
 */
int bld_named_context(struct bld *b, const char *ref, struct store_image **ret_img, const char **ret_alias,
		      kn_error **err);

/* ---- context (context.c) --------------------------------------------------------------------- */

/** Loads the context (directory, or tar on fd unpacked into the store's tmp dir). */
int ctx_open(struct bld *b, kn_error **err);
/**
 * Runs argv (argv[0] searched in PATH) in dir (NULL: here) with stdin /dev/null and the
 * environment plus extra_env ("K=V", replacing; may be NULL); waits for it. Its stdout (trailing
 * newlines trimmed) goes to *ret_out when not NULL; a failure's error holds its stderr.
 */
int bld_exec(const char *dir, const char *const *argv, const char *const *extra_env, char **ret_out,
	     kn_error **err);
/** Whether a context argument is a git repository URL (git://, git@, ssh://, http(s)://...git). */
bool ctx_is_git_url(const char *s);
/**
 * Fetches the git context url ("REPO#REF:SUBDIR") with the git command: a shallow fetch of REF
 * (default HEAD) into the store's tmp dir, submodules too, .git removed unless the build arg
 * BUILDKIT_CONTEXT_KEEP_GIT_DIR=1 is given (as BuildKit). Sets b->ctx_time to the commit time.
 * *ret_dir (owned) is the checkout or its SUBDIR.
 */
int ctx_fetch_git(struct bld *b, const char *url, char **ret_dir, kn_error **err);
/** Reads the .dockerignore that applies (dockerfile_path may be NULL). */
int ctx_load_ignore(struct bld *b, const char *dockerfile_path, kn_error **err);
/** The commit time of HEAD when the context directory is in a git work tree: 0, else -1. */
int ctx_git_time(const struct bld *b, int64_t *ret);

/* ---- COPY / ADD / WORKDIR file operations (copy.c) ------------------------------------------- */

enum cp_kind {
	CP_FILE,     /* regular file (or a symlink, device, fifo as lstat says) */
	CP_DIR,      /* a directory: created, metadata from the source */
	CP_SYMLINK,
	CP_SPECIAL,  /* fifo, device */
	CP_ARCHIVE,  /* ADD: a local tar to extract into dst */
	CP_DATA,     /* heredoc: data bytes */
	CP_FD,       /* ADD URL: a downloaded file open on fd */
	CP_MKDIR,    /* WORKDIR / dest dir: mkdir -p, owned by chown */
};

struct cp_entry {
	enum cp_kind kind;
	char *src;           /* path relative to the source root ("." = the root) */
	char *dst;           /* absolute path in the image */
	bool dst_maybe_dir;  /* single file to a dest without '/': if dst is a dir, go inside */
	struct stat st;      /* the source's lstat (CP_FILE/DIR/SYMLINK/SPECIAL/ARCHIVE) */
	char *data;          /* CP_DATA bytes / CP_SYMLINK target */
	size_t len;
	int fd;              /* CP_FD */
	int64_t mtime;       /* CP_FD / CP_DATA: mtime to set (0 = now) */
	mode_t mode;         /* CP_FD / CP_DATA: mode */
};

struct cp_list {
	struct cp_entry *v;
	size_t n, alloc;
};
void cp_list_release(struct cp_list *l);

/** Options of one COPY/ADD after expansion. */
struct cp_opts {
	bool add;
	bool have_chown;
	uid_t uid;
	gid_t gid;
	bool have_chmod;
	struct df_chmod chmod;
	char *const *excludes;
	bool parents;
	bool link;
	bool ctx_strict;     /* sources come from the context: refuse escapes */
	const struct df_ignore *ignore;
	const char *what;    /* "COPY" or "ADD" for messages */
};

/**
 * Resolves the COPY/ADD sources (patterns relative to root_fd) into the list of entries to write
 * under dest (absolute, its trailing '/' meaningful). Wildcards, directory contents, --parents,
 * --exclude, .dockerignore (ctx_strict). Errors: missing sources, escapes from the context.
 */
int cp_resolve(int root_fd, char *const *sources, size_t n_sources, const char *dest,
	       const struct cp_opts *co, struct cp_list *out, kn_error **err);

/**
 * The stat fast path for context files: the content digest of a file is reused when its inode,
 * size, mtime and ctime (nanoseconds) are unchanged since it was hashed. An entry is only
 * recorded when the file's ctime is older than the hashing by 2 s, so a file changed in the same
 * clock tick as its hashing is always re-read (git's racy-clean rule): never wrong.
 */
struct bld_statcache;
struct bld_statcache *statcache_load(struct store *s, const char *ctx_dir);
int statcache_save(struct bld_statcache *c, kn_error **err);
void statcache_free(struct bld_statcache *c);

/** Hashes the resolved sources' paths, types, modes, owners, sizes and contents into h. */
int cp_digest(int root_fd, const struct cp_list *l, struct bld_statcache *sc, struct store_hash *h,
	      kn_error **err);

/**
 * What the child process writes: the entries of list (sources on src_fd, or resolved in the
 * child from src_lowerdirs for --from), under an overlay of lowerdirs + upper (or into upper
 * alone when lowerdirs is empty or co->link).
 */
struct cp_job {
	const struct cp_opts *co;
	struct cp_list *list;           /* pre-resolved entries, or NULL: resolve in the child */
	char *const *sources;           /* for resolution in the child */
	size_t n_sources;
	const char *dest;
	int src_fd;                     /* source root (context) or -1 */
	char *const *src_lowerdirs;     /* --from: the source rootfs layers (top first) */
	const char *src_rootfs;         /* --from: a plain source dir */
	char *const *lowerdirs;         /* the stage's layers (top first) */
	const char *upper, *work, *mnt, *src_mnt;
};
/** Runs the job in a child process (own mount namespace, chroot into the target root). */
int cp_run(const struct cp_job *job, kn_error **err);

/** Copies the rest of in to out (copy_file_range, else read/write); what names in in errors. */
int copy_fd_data(int in, int out, const char *what, kn_error **err);

/** ADD URL: downloads url into a temp file; checksum "sha256:..." verified when given. */
/* ADD <url> downloads at most this many bytes (8 GiB). */
#define CP_DOWNLOAD_MAX (8ull << 30)
int cp_download(struct store *s, const char *url, const char *checksum, int *ret_fd,
		char **ret_name, int64_t *ret_mtime, char **ret_digest, kn_error **err);

/* ---- config and history (config.c) ----------------------------------------------------------- */

/**
 * Applies a metadata instruction (already expanded) to the state's config and adds its history
 * entry. WORKDIR's directory creation and the ONBUILD triggers are done by the caller.
 */
int cfg_apply(struct bld_state *st, const struct df_instr *x, kn_error **err);
/** The BuildKit-style created_by text of an instruction ("RUN /bin/sh -c make # buildkit"). */
char *cfg_created_by(struct bld_state *st, const struct df_instr *x, char *const *run_argv);
/** Adds a history entry to the state's config (empty_layer as given). */
void cfg_add_history(struct bld_state *st, const char *created_by, bool empty_layer);
/** The argv of a RUN/CMD/ENTRYPOINT: exec form as is, shell form prefixed with SHELL. */
char **cfg_command_argv(const struct image_config *c, const struct df_cmdline *cl);
/** Short description of a step for progress ("RUN make", "COPY . /src"). */
char *cfg_step_text(const struct df_instr *x);

/* ---- cache (cache.c) ---------------------------------------------------------------------------- */

/** key = sha256(parent key, the step's description, extra bytes); owned hex string. */
char *cache_key(const char *parent, const char *text, const void *extra, size_t extra_len);
/** Looks a step up: on a hit replaces the state's config and layers. Returns 1 hit, 0 miss. */
int cache_lookup(struct bld_state *st, const char *key, kn_error **err);
/**
 * Makes a cache entry (config, consumed, and layers descs[0..n), copied) the state's; the entry
 * of key came from the local or an imported cache. Returns 1 (a hit) or -1.
 */
int cache_entry_apply(struct bld_state *st, struct image_config *config, const struct store_desc *descs,
		      size_t n, const char *key, kn_error **err);
/**
 * Stores the state's config and layers under key (through the writer thread when running). The
 * entry's "images" lists the base image ID, so `kiln rmi` refuses that image without -f.
 */
int cache_store(struct bld_state *st, const char *key, kn_error **err);

/**
 * The cache writer: a thread with its own store handle that writes (and fsyncs) cache entries
 * while the build goes on, so the fsyncs of step N overlap step N+1. Entries are only hints: one
 * lost in a crash means a step runs again, never a wrong result. cache_writer_finish() waits for
 * every queued entry; it returns -1 with the first write error.
 */
struct cache_writer;
int cache_writer_start(struct bld *b, kn_error **err);
/** Queues an entry (json is consumed). */
int cache_writer_queue(struct cache_writer *w, const char *key, char *json);
int cache_writer_finish(struct bld *b, kn_error **err);

#endif
