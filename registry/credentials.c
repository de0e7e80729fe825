/* kiln registry: Docker's config.json credentials, credential helpers, login and logout. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "registry/transport-internal.h"

#define CONFIG_MAX (8u << 20)
#define HELPER_OUTPUT_MAX (1u << 20)
#define HELPER_TIMEOUT_MS 30000
#define DOCKER_HUB_KEY "https://index.docker.io/v1/"

extern char **environ;

void reg_credentials_free(struct reg_credentials *c)
{
	if (!c)
		return;
	if (c->password)
		explicit_bzero(c->password, strlen(c->password));
	if (c->identity_token)
		explicit_bzero(c->identity_token, strlen(c->identity_token));
	free(c->username);
	free(c->password);
	free(c->identity_token);
	free(c);
}

static char *config_dir(const struct reg_opts *opts)
{
	const char *d = opts ? opts->docker_config : NULL;
	const char *home;

	if (d && *d)
		return xstrdup(d);
	d = getenv("DOCKER_CONFIG");
	if (d && *d)
		return xstrdup(d);
	home = getenv("HOME");
	return xasprintf("%s/.docker", home && *home ? home : ".");
}

/* Loads config.json; a missing file gives an empty object. */
static int config_load(const char *path, json_t **ret, kn_error **err)
{
	struct kn_buf b = KN_BUF_INIT;
	json_error_t jerr;
	json_t *root;
	kn_error *e = NULL;

	if (kn_read_file(path, CONFIG_MAX, &b, &e) < 0) {
		if (e->code == ENOENT) {
			kn_error_free(e);
			*ret = json_object();
			return 0;
		}
		kn_error_propagate(err, e);
		return -1;
	}
	if (b.len == 0) {
		kn_buf_release(&b);
		*ret = json_object();
		return 0;
	}
	root = json_loadb(b.buf, b.len, 0, &jerr);
	explicit_bzero(b.buf, b.len);
	kn_buf_release(&b);
	if (!root || !json_is_object(root)) {
		int line = root ? 1 : jerr.line;

		if (root)
			json_decref(root);
		/* jansson's text may quote the file's content (secrets): say only where. */
		return kn_error_set(err, EINVAL, "invalid docker config '%s': not a JSON object (line %d)", path, line);
	}
	*ret = root;
	return 0;
}

/* The server URL a credential helper knows a domain by, and the auths key docker writes. */
static const char *server_key(const char *domain)
{
	return strcmp(domain, "docker.io") ? domain : DOCKER_HUB_KEY;
}

/* The helper configured for domain (credHelpers first, then credsStore), or NULL. Borrowed. */
static const char *config_helper(json_t *root, const char *domain)
{
	json_t *helpers = json_object_get(root, "credHelpers");
	const char *key;
	json_t *v;

	if (json_is_object(helpers)) {
		json_object_foreach(helpers, key, v) {
			_cleanup_free_ char *d = reg_registry_normalize(key);

			if (!strcmp(d, domain) && json_string_value(v) && *json_string_value(v))
				return json_string_value(v);
		}
	}
	v = json_object_get(root, "credsStore");
	if (json_string_value(v) && *json_string_value(v))
		return json_string_value(v);
	return NULL;
}

static bool helper_name_ok(const char *name)
{
	if (!*name || strlen(name) > 64)
		return false;
	for (const char *p = name; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.'))
			return false;
	return true;
}

/*
 * write() to a pipe whose reader may be gone, without SIGPIPE killing the process: the signal
 * is blocked in this thread for the call and a pending one is consumed (library code must not
 * change the process's signal dispositions).
 */
static ssize_t write_nosigpipe(int fd, const void *buf, size_t len)
{
	sigset_t pipe_set, old_set, pending;
	struct timespec zero = { 0, 0 };
	bool was_pending;
	ssize_t n;
	int saved;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
	n = write(fd, buf, len);
	saved = errno;
	if (n < 0 && saved == EPIPE && !was_pending) {
		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old_set, NULL);
	errno = saved;
	return n;
}

/*
 * Runs docker-credential-<name> <action> with input on stdin; collects stdout into out.
 * Returns the exit status (>= 0), or -1 with *err when it could not run.
 */
static int helper_run(const char *name, const char *action, const char *input, struct kn_buf *out,
		      kn_error **err)
{
	_cleanup_free_ char *prog = NULL;
	int in[2] = { -1, -1 }, outp[2] = { -1, -1 };
	posix_spawn_file_actions_t fa;
	char *argv[3];
	size_t inlen = strlen(input), inpos = 0;
	pid_t pid;
	int status, r, waited_ms = 0;
	int ret = -1;

	if (!helper_name_ok(name))
		return kn_error_set(err, EINVAL, "invalid credential helper name '%s'", name);
	prog = xasprintf("docker-credential-%s", name);
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(outp, O_CLOEXEC) < 0) {
		kn_error_errno(err, "pipe");
		goto out_close;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
	argv[0] = prog;
	argv[1] = (char *)action;
	argv[2] = NULL;
	r = posix_spawnp(&pid, prog, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r != 0) {
		errno = r;
		kn_error_errno(err, "cannot run credential helper '%s'", prog);
		goto out_close;
	}
	close(in[0]);
	in[0] = -1;
	close(outp[1]);
	outp[1] = -1;
	(void)fcntl(in[1], F_SETFL, O_NONBLOCK);
	if (inlen == 0) {
		close(in[1]);
		in[1] = -1;
	}
	for (;;) {
		struct pollfd pfd[2] = { { .fd = outp[0], .events = POLLIN }, { .fd = in[1], .events = POLLOUT } };
		char buf[4096];
		ssize_t n;

		r = poll(pfd, in[1] >= 0 ? 2 : 1, 200);
		if (r < 0 && errno != EINTR) {
			kn_error_errno(err, "poll");
			break;
		}
		if (r <= 0) {
			waited_ms += 200;
			if (waited_ms >= HELPER_TIMEOUT_MS) {
				kn_error_set(err, ETIMEDOUT, "credential helper '%s' did not answer", prog);
				break;
			}
			continue;
		}
		if (in[1] >= 0 && (pfd[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
			n = write_nosigpipe(in[1], input + inpos, inlen - inpos);
			if (n > 0)
				inpos += (size_t)n;
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				inpos = inlen; /* EPIPE: the helper does not read its input */
			if (inpos >= inlen) {
				close(in[1]);
				in[1] = -1;
			}
		}
		if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			n = read(outp[0], buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				ret = 0;
				break;
			}
			if (out->len + (size_t)n > HELPER_OUTPUT_MAX) {
				kn_error_set(err, EFBIG, "credential helper '%s' printed too much", prog);
				break;
			}
			kn_buf_add(out, buf, (size_t)n);
		}
	}
	if (ret < 0)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			status = 0;
			break;
		}
	}
	if (ret == 0) {
		if (WIFEXITED(status))
			ret = WEXITSTATUS(status);
		else
			ret = 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
		if (ret == 127)
			ret = kn_error_set(err, ENOENT, "cannot run credential helper '%s'", prog);
	}
out_close:
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (outp[i] >= 0)
			close(outp[i]);
	}
	return ret;
}

/* docker-credential-<name> get: *ret NULL when the helper has nothing for the server. */
static int helper_get(const char *name, const char *domain, struct reg_credentials **ret, kn_error **err)
{
	struct kn_buf out = KN_BUF_INIT;
	_cleanup_free_ char *input = xasprintf("%s\n", server_key(domain));
	int st;

	*ret = NULL;
	st = helper_run(name, "get", input, &out, err);
	if (st < 0) {
		kn_buf_release(&out);
		return -1;
	}
	if (st != 0) {
		/* "credentials not found in native keychain": nothing stored, not an error. */
		bool notfound = strstr(out.buf, "not found") != NULL;

		explicit_bzero(out.buf, out.len);
		kn_buf_release(&out);
		if (notfound)
			return 0;
		return kn_error_set(err, EIO, "credential helper 'docker-credential-%s' failed (exit status %d)", name,
				    st);
	}
	st = reg_helper_output_parse(name, out.buf, out.len, ret, err);
	explicit_bzero(out.buf, out.len);
	kn_buf_release(&out);
	return st;
}

int reg_helper_output_parse(const char *name, const char *out, size_t len,
			    struct reg_credentials **ret, kn_error **err)
{
	json_error_t jerr;
	json_t *root;
	const char *user, *secret;

	*ret = NULL;
	root = json_loadb(out, len, 0, &jerr);
	if (!root || !json_is_object(root)) {
		if (root)
			json_decref(root);
		return kn_error_set(err, EPROTO, "credential helper 'docker-credential-%s' printed invalid JSON", name);
	}
	user = json_string_value(json_object_get(root, "Username"));
	secret = json_string_value(json_object_get(root, "Secret"));
	if (secret && *secret) {
		struct reg_credentials *c = xcalloc(1, sizeof(*c));

		if (user && !strcmp(user, "<token>")) {
			c->identity_token = xstrdup(secret);
		} else {
			c->username = xstrdup(user ? user : "");
			c->password = xstrdup(secret);
		}
		*ret = c;
	}
	json_decref(root);
	return 0;
}

/* Decodes an auths entry; *ret NULL when it holds nothing usable. */
static int auth_entry_decode(json_t *entry, const char *path, struct reg_credentials **ret, kn_error **err)
{
	const char *auth = json_string_value(json_object_get(entry, "auth"));
	const char *user = json_string_value(json_object_get(entry, "username"));
	const char *pass = json_string_value(json_object_get(entry, "password"));
	const char *idt = json_string_value(json_object_get(entry, "identitytoken"));
	struct reg_credentials *c = xcalloc(1, sizeof(*c));

	*ret = NULL;
	if (auth && *auth) {
		struct kn_buf dec = KN_BUF_INIT;
		char *colon;

		if (reg_base64_decode(auth, &dec, NULL) < 0 || !(colon = memchr(dec.buf, ':', dec.len))) {
			explicit_bzero(dec.buf, dec.len);
			kn_buf_release(&dec);
			reg_credentials_free(c);
			return kn_error_set(err, EINVAL, "invalid 'auth' entry in '%s'", path);
		}
		c->username = xstrndup(dec.buf, (size_t)(colon - dec.buf));
		c->password = xstrdup(colon + 1);
		explicit_bzero(dec.buf, dec.len);
		kn_buf_release(&dec);
	} else if (user && pass) {
		c->username = xstrdup(user);
		c->password = xstrdup(pass);
	}
	if (idt && *idt)
		c->identity_token = xstrdup(idt);
	if (!c->username && !c->identity_token) {
		reg_credentials_free(c);
		return 0;
	}
	*ret = c;
	return 0;
}

/* Finds the auths entry for domain: an exact key first, then any key normalizing to it. */
static const char *auths_find(json_t *auths, const char *domain, json_t **ret)
{
	const char *key;
	json_t *v;

	*ret = NULL;
	if (!json_is_object(auths))
		return NULL;
	v = json_object_get(auths, server_key(domain));
	if (json_is_object(v)) {
		*ret = v;
		return server_key(domain);
	}
	json_object_foreach(auths, key, v) {
		_cleanup_free_ char *d = reg_registry_normalize(key);

		if (json_is_object(v) && !strcmp(d, domain)) {
			*ret = v;
			return key;
		}
	}
	return NULL;
}

int reg_credentials_lookup(const char *domain, const struct reg_opts *opts, struct reg_credentials **ret,
			   kn_error **err)
{
	_cleanup_free_ char *dir = config_dir(opts);
	_cleanup_free_ char *path = kn_path_join(dir, "config.json");
	json_t *root = NULL, *entry;
	const char *helper;
	int r = 0;

	*ret = NULL;
	if (config_load(path, &root, err) < 0)
		return -1;
	helper = config_helper(root, domain);
	if (helper) {
		r = helper_get(helper, domain, ret, err);
		if (r < 0 || *ret) {
			json_decref(root);
			return r;
		}
	}
	auths_find(json_object_get(root, "auths"), domain, &entry);
	if (entry)
		r = auth_entry_decode(entry, path, ret, err);
	json_decref(root);
	return r;
}

static int config_save(const char *dir, const char *path, json_t *root, kn_error **err)
{
	_cleanup_free_ char *resolved = NULL;
	struct stat st;
	char *text;
	int r;

	if (kn_mkdir_p(dir, 0700, err) < 0)
		return -1;
	/* A symlinked config.json (dotfile managers) is updated where it points, as docker does. */
	if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
		resolved = realpath(path, NULL);
		if (!resolved)
			return kn_error_errno(err, "resolve '%s'", path);
		path = resolved;
	}
	text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	if (!text)
		return kn_error_set(err, ENOMEM, "cannot serialize '%s'", path);
	{
		size_t n = strlen(text);
		char *withnl = xmalloc(n + 2);

		memcpy(withnl, text, n);
		withnl[n] = '\n';
		withnl[n + 1] = 0;
		explicit_bzero(text, n);
		free(text);
		r = kn_write_file_atomic(path, withnl, n + 1, 0600, err);
		explicit_bzero(withnl, n + 1);
		free(withnl);
	}
	if (r == 0 && chmod(path, 0600) < 0)
		return kn_error_errno(err, "chmod '%s'", path);
	return r;
}

static struct reg_ref *login_ref(const char *domain)
{
	struct reg_ref *ref = xcalloc(1, sizeof(*ref));

	ref->domain = xstrdup(domain);
	ref->path = xstrdup("kiln-login");
	ref->tag = xstrdup("latest");
	ref->name = xasprintf("%s/%s", ref->domain, ref->path);
	ref->string = xasprintf("%s:latest", ref->name);
	return ref;
}

int reg_login(const char *registry, const char *username, const char *password, const struct reg_opts *opts,
	      char **ret_path, kn_error **err)
{
	_cleanup_free_ char *domain = reg_registry_normalize(registry);
	_cleanup_free_ char *dir = config_dir(opts);
	_cleanup_free_ char *path = kn_path_join(dir, "config.json");
	_cleanup_(reg_ref_freep) struct reg_ref *ref = NULL;
	_cleanup_(reg_client_freep) struct reg_client *c = NULL;
	_cleanup_free_ char *idtoken = NULL;
	struct reg_opts o;
	json_t *root = NULL, *auths;
	const char *helper;
	int r = -1;

	if (!username || !*username)
		return kn_error_set(err, EINVAL, "a username is required to log in to '%s'", domain);
	if (!password || !*password)
		return kn_error_set(err, EINVAL, "a password is required to log in to '%s'", domain);
	if (strchr(username, ':'))
		return kn_error_set(err, EINVAL, "a username must not contain ':'");
	/* Read the config first: a broken one fails before any network traffic. */
	if (config_load(path, &root, err) < 0)
		return -1;
	if (opts)
		o = *opts;
	else
		reg_opts_init(&o);
	o.username = username;
	o.password = password;
	ref = login_ref(domain);
	reg_client_new(ref, &o, REG_ACCESS_PULL, &c, NULL);
	if (reg_client_verify_login(c, &idtoken, err) < 0) {
		kn_error_wrap(err, "login to '%s' failed", domain);
		goto out;
	}
	helper = config_helper(root, domain);
	if (helper) {
		struct kn_buf out = KN_BUF_INIT;
		json_t *msg = json_pack("{s:s, s:s, s:s}", "ServerURL", server_key(domain), "Username", username,
					"Secret", password);
		char *input = json_dumps(msg, JSON_COMPACT);
		int st;

		json_decref(msg);
		st = helper_run(helper, "store", input, &out, err);
		explicit_bzero(input, strlen(input));
		free(input);
		kn_buf_release(&out);
		if (st < 0)
			goto out;
		if (st != 0) {
			kn_error_set(err, EIO, "credential helper 'docker-credential-%s' could not store the credentials",
				     helper);
			goto out;
		}
		if (ret_path)
			*ret_path = xasprintf("docker-credential-%s", helper);
		r = 0;
		goto out;
	}
	auths = json_object_get(root, "auths");
	if (!json_is_object(auths)) {
		auths = json_object();
		json_object_set_new(root, "auths", auths);
	}
	{
		_cleanup_free_ char *pair = xasprintf("%s:%s", username, password);
		char *b64 = reg_base64_encode(pair, strlen(pair));
		json_t *entry = json_object();
		json_t *old;
		const char *oldkey = auths_find(auths, domain, &old);

		explicit_bzero(pair, strlen(pair));
		/* One entry per registry: drop other spellings of the same host. */
		if (oldkey && strcmp(oldkey, server_key(domain))) {
			_cleanup_free_ char *k = xstrdup(oldkey);

			json_object_del(auths, k);
		}
		json_object_set_new(entry, "auth", json_string(b64));
		explicit_bzero(b64, strlen(b64));
		free(b64);
		json_object_set_new(auths, server_key(domain), entry);
	}
	if (config_save(dir, path, root, err) < 0)
		goto out;
	if (ret_path)
		*ret_path = xstrdup(path);
	r = 0;
out:
	json_decref(root);
	return r;
}

int reg_logout(const char *registry, const struct reg_opts *opts, kn_error **err)
{
	_cleanup_free_ char *domain = reg_registry_normalize(registry);
	_cleanup_free_ char *dir = config_dir(opts);
	_cleanup_free_ char *path = kn_path_join(dir, "config.json");
	json_t *root = NULL, *auths, *entry;
	const char *helper;
	bool removed = false;
	int r = -1;

	if (config_load(path, &root, err) < 0)
		return -1;
	helper = config_helper(root, domain);
	if (helper) {
		struct kn_buf out = KN_BUF_INIT;
		_cleanup_free_ char *input = xasprintf("%s\n", server_key(domain));
		int st = helper_run(helper, "erase", input, &out, err);

		kn_buf_release(&out);
		if (st < 0)
			goto out;
		if (st == 0)
			removed = true;
	}
	auths = json_object_get(root, "auths");
	for (;;) {
		const char *key = auths_find(auths, domain, &entry);
		_cleanup_free_ char *k = NULL;

		if (!key)
			break;
		k = xstrdup(key);
		json_object_del(auths, k);
		removed = true;
		if (config_save(dir, path, root, err) < 0)
			goto out;
	}
	if (!removed) {
		kn_error_set(err, ENOENT, "not logged in to '%s'", domain);
		goto out;
	}
	r = 0;
out:
	json_decref(root);
	return r;
}
