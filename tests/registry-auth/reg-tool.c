/*
 * kiln-reg-tool: exposes registry/ internals to the registry-auth tests (after git's test-tool).
 *   kiln-reg-tool ref STRING...            parse references, one result line each
 *   kiln-reg-tool get [OPTS] REF URL       GET through reg_request, print status/bytes/sha256
 *   kiln-reg-tool head [OPTS] REF URL      HEAD, print status and headers
 *   kiln-reg-tool req METHOD [OPTS] REF URL any method, without a body
 * OPTS: --tls-verify=false|true, --push (pull,push scope), --resume (REG_REQ_RESUME),
 *       --scope SCOPE (extra token scope), --out FILE (write the body there),
 *       --any-status (REG_REQ_ANY_STATUS), --header "Name: value" (repeatable),
 *       --repeat N --sleep-ms MS (N requests on one client, MS apart; the last one is printed),
 *       --parallel N (first N concurrent requests on the same client: "parallel STATUS SHA256")
 * Credentials come from config.json ($DOCKER_CONFIG) or KILN_TEST_USER/KILN_TEST_PASS.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <pthread.h>

#include <openssl/evp.h>

#include "registry/transport-internal.h"

struct hash_sink {
	EVP_MD_CTX *md;
	int fd;
	uint64_t n;
};

static int hs_write(void *ctx, const void *data, size_t len, kn_error **err)
{
	struct hash_sink *h = ctx;

	EVP_DigestUpdate(h->md, data, len);
	h->n += len;
	if (h->fd >= 0 && kn_write_all(h->fd, data, len, err) < 0)
		return -1;
	return 0;
}

static int hs_restart(void *ctx, kn_error **err)
{
	struct hash_sink *h = ctx;

	EVP_DigestInit_ex(h->md, EVP_sha256(), NULL);
	h->n = 0;
	if (h->fd >= 0 && (ftruncate(h->fd, 0) < 0 || lseek(h->fd, 0, SEEK_SET) < 0))
		return kn_error_errno(err, "truncate");
	return 0;
}

struct par {
	struct reg_client *c;
	const struct reg_request *tmpl;
	long status;
	char sha[2 * EVP_MAX_MD_SIZE + 1];
	char *errmsg;
};

static void *par_run(void *arg)
{
	struct par *p = arg;
	struct hash_sink hs = { .fd = -1, .md = EVP_MD_CTX_new() };
	struct reg_sink sink = { .write = hs_write, .restart = hs_restart, .ctx = &hs };
	struct reg_request req = *p->tmpl;
	struct reg_response *resp = NULL;
	kn_error *err = NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;

	EVP_DigestInit_ex(hs.md, EVP_sha256(), NULL);
	req.sink = &sink;
	if (reg_request(p->c, &req, &resp, &err) < 0) {
		p->errmsg = kn_error_format(err);
		kn_error_free(err);
	} else {
		p->status = resp->status;
		EVP_DigestFinal_ex(hs.md, md, &mdlen);
		for (unsigned k = 0; k < mdlen; k++)
			snprintf(p->sha + 2 * k, 3, "%02x", md[k]);
	}
	reg_response_free(resp);
	EVP_MD_CTX_free(hs.md);
	return NULL;
}

static int fail(kn_error *err)
{
	char *m = kn_error_format(err);

	fprintf(stderr, "kiln-reg-tool: %s\n", m);
	free(m);
	kn_error_free(err);
	return 1;
}

static int cmd_ref(int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		struct reg_ref *r = NULL;
		kn_error *err = NULL;

		if (reg_ref_parse(argv[i], &r, &err) < 0) {
			printf("ERR %s\n", err->msg);
			kn_error_free(err);
			continue;
		}
		{
			char *fam = reg_ref_familiar(r);

			printf("OK %s domain=%s path=%s tag=%s digest=%s familiar=%s api=%s\n", r->string, r->domain,
			       r->path, r->tag ? r->tag : "-", r->digest ? r->digest : "-", fam,
			       reg_domain_api_host(r->domain));
			free(fam);
		}
		reg_ref_free(r);
	}
	return 0;
}

static int cmd_http(const char *method, int argc, char **argv)
{
	struct reg_opts opts;
	struct reg_ref *ref = NULL;
	struct reg_client *c = NULL;
	struct reg_response *resp = NULL;
	struct kn_strv headers = KN_STRV_INIT;
	struct kn_strv scopes = KN_STRV_INIT;
	struct hash_sink hs = { .fd = -1 };
	struct reg_sink sink = { .write = hs_write, .restart = hs_restart, .ctx = &hs };
	struct reg_request req = { .method = method, .sink = &sink };
	unsigned access = REG_ACCESS_PULL;
	long repeat = 1, sleep_ms = 0, parallel = 0;
	kn_error *err = NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	int i, rc = 1;

	reg_opts_init(&opts);
	opts.username = getenv("KILN_TEST_USER");
	opts.password = getenv("KILN_TEST_PASS");
	for (i = 0; i < argc && !strncmp(argv[i], "--", 2); i++) {
		if (!strcmp(argv[i], "--tls-verify=false"))
			opts.tls_verify = 0;
		else if (!strcmp(argv[i], "--tls-verify=true"))
			opts.tls_verify = 1;
		else if (!strcmp(argv[i], "--push"))
			access |= REG_ACCESS_PUSH;
		else if (!strcmp(argv[i], "--resume"))
			req.flags |= REG_REQ_RESUME;
		else if (!strcmp(argv[i], "--any-status"))
			req.flags |= REG_REQ_ANY_STATUS;
		else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
			repeat = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--parallel") && i + 1 < argc)
			parallel = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--sleep-ms") && i + 1 < argc)
			sleep_ms = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--scope") && i + 1 < argc)
			kn_strv_push(&scopes, argv[++i]);
		else if (!strcmp(argv[i], "--header") && i + 1 < argc)
			kn_strv_push(&headers, argv[++i]);
		else if (!strcmp(argv[i], "--out") && i + 1 < argc) {
			hs.fd = open(argv[++i], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
			if (hs.fd < 0) {
				perror(argv[i]);
				return 1;
			}
		} else {
			fprintf(stderr, "kiln-reg-tool: unknown option '%s'\n", argv[i]);
			return 2;
		}
	}
	if (argc - i != 2) {
		fprintf(stderr, "kiln-reg-tool: %s needs REF URL\n", method);
		return 2;
	}
	hs.md = EVP_MD_CTX_new();
	EVP_DigestInit_ex(hs.md, EVP_sha256(), NULL);
	if (reg_ref_parse(argv[i], &ref, &err) < 0 || reg_client_new(ref, &opts, access, &c, &err) < 0) {
		rc = fail(err);
		goto out;
	}
	for (size_t k = 0; k < scopes.n; k++)
		reg_client_add_scope(c, scopes.v[k]);
	req.url = argv[i + 1];
	req.headers = (const char *const *)headers.v;
	if (parallel > 0 && parallel <= 64) {
		struct par ps[64];
		pthread_t th[64];
		bool failed = false;

		memset(ps, 0, sizeof(ps));
		for (long k = 0; k < parallel; k++) {
			ps[k].c = c;
			ps[k].tmpl = &req;
			pthread_create(&th[k], NULL, par_run, &ps[k]);
		}
		for (long k = 0; k < parallel; k++) {
			pthread_join(th[k], NULL);
			if (ps[k].errmsg) {
				fprintf(stderr, "kiln-reg-tool: %s\n", ps[k].errmsg);
				free(ps[k].errmsg);
				failed = true;
			} else {
				printf("parallel %ld %s\n", ps[k].status, ps[k].sha);
			}
		}
		if (failed)
			goto out;
	}
	for (long k = 0; k < repeat; k++) {
		if (k > 0) {
			struct timespec ts = { sleep_ms / 1000, (sleep_ms % 1000) * 1000000L };

			nanosleep(&ts, NULL);
			reg_response_free(steal_ptr(&resp));
			hs_restart(&hs, NULL);
		}
		if (reg_request(c, &req, &resp, &err) < 0) {
			rc = fail(err);
			goto out;
		}
	}
	EVP_DigestFinal_ex(hs.md, md, &mdlen);
	printf("status %ld\nreceived %llu\nsha256 ", resp->status, (unsigned long long)hs.n);
	for (unsigned k = 0; k < mdlen; k++)
		printf("%02x", md[k]);
	printf("\nbase %s\n", reg_client_base_url(c) ? reg_client_base_url(c) : "-");
	for (size_t k = 0; k < resp->headers.n; k++)
		printf("header %s\n", resp->headers.v[k]);
	rc = 0;
out:
	if (hs.fd >= 0)
		close(hs.fd);
	EVP_MD_CTX_free(hs.md);
	reg_response_free(resp);
	reg_client_free(c);
	reg_ref_free(ref);
	kn_strv_release(&headers);
	kn_strv_release(&scopes);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "ref"))
		return cmd_ref(argc - 2, argv + 2);
	if (argc >= 2 && !strcmp(argv[1], "get"))
		return cmd_http("GET", argc - 2, argv + 2);
	if (argc >= 2 && !strcmp(argv[1], "head"))
		return cmd_http("HEAD", argc - 2, argv + 2);
	if (argc >= 3 && !strcmp(argv[1], "req"))
		return cmd_http(argv[2], argc - 3, argv + 3);
	fprintf(stderr, "usage: kiln-reg-tool ref STRING... | get|head [OPTS] REF URL | req METHOD [OPTS] REF URL\n");
	return 2;
}
