/* Unit tests of the transport's parsers: auth challenges, base64, registry names, ref editing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "registry/transport-internal.h"

static void test_challenge_bearer(void **state)
{
	struct reg_challenge ch;

	(void)state;
	assert_int_equal(reg_challenge_parse("Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
					     "scope=\"repository:samalba/my-app:pull,push\"",
					     &ch),
			 0);
	assert_string_equal(ch.scheme, "bearer");
	assert_string_equal(ch.realm, "https://auth.docker.io/token");
	assert_string_equal(ch.service, "registry.docker.io");
	assert_string_equal(ch.scope, "repository:samalba/my-app:pull,push");
	assert_null(ch.error);
	reg_challenge_release(&ch);

	assert_int_equal(reg_challenge_parse("bearer realm=http://x/t, error=\"insufficient_scope\" ,service=s", &ch), 0);
	assert_string_equal(ch.realm, "http://x/t");
	assert_string_equal(ch.error, "insufficient_scope");
	assert_string_equal(ch.service, "s");
	reg_challenge_release(&ch);

	assert_int_equal(reg_challenge_parse("Bearer realm=\"a\\\"b\"", &ch), 0);
	assert_string_equal(ch.realm, "a\"b");
	reg_challenge_release(&ch);
}

static void test_challenge_other(void **state)
{
	struct reg_challenge ch;

	(void)state;
	assert_int_equal(reg_challenge_parse("Basic realm=\"Registry Realm\"", &ch), 0);
	assert_string_equal(ch.scheme, "basic");
	assert_string_equal(ch.realm, "Registry Realm");
	reg_challenge_release(&ch);

	/* Only the first challenge counts. */
	assert_int_equal(reg_challenge_parse("Bearer realm=\"a\", Basic realm=\"b\"", &ch), 0);
	assert_string_equal(ch.realm, "a");
	reg_challenge_release(&ch);

	assert_int_equal(reg_challenge_parse("Negotiate abc", &ch), -1);
	assert_int_equal(reg_challenge_parse("", &ch), -1);
	assert_int_equal(reg_challenge_parse("Bearer realm=\"unterminated", &ch), 0);
	assert_string_equal(ch.realm, "unterminated");
	reg_challenge_release(&ch);
}

static void test_base64(void **state)
{
	static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar", "user:p@ss:wörd" };
	static const char *const enc[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy",
					   "dXNlcjpwQHNzOnfDtnJk" };

	(void)state;
	for (size_t i = 0; i < KN_ARRAY_SIZE(plain); i++) {
		char *e = reg_base64_encode(plain[i], strlen(plain[i]));
		struct kn_buf b = KN_BUF_INIT;

		assert_string_equal(e, enc[i]);
		assert_int_equal(reg_base64_decode(e, &b, NULL), 0);
		assert_string_equal(b.buf, plain[i]);
		kn_buf_release(&b);
		free(e);
	}
	{
		struct kn_buf b = KN_BUF_INIT;
		kn_error *err = NULL;

		assert_int_equal(reg_base64_decode("Zm9v!", &b, &err), -1);
		assert_non_null(err);
		kn_error_free(err);
		assert_int_equal(reg_base64_decode("Zg==x", &b, NULL), -1);
		assert_int_equal(reg_base64_decode("Zm9vY", &b, NULL), -1); /* truncated */
		kn_buf_reset(&b);
		/* line breaks and blanks between groups are skipped, as base64 -d does */
		assert_int_equal(reg_base64_decode("Zm9v\nYmFy\n", &b, NULL), 0);
		assert_int_equal(b.len, 6);
		assert_memory_equal(b.buf, "foobar", 6);
		kn_buf_release(&b);
	}
}

static void test_registry_normalize(void **state)
{
	static const char *const cases[][2] = {
		{ "https://index.docker.io/v1/", "docker.io" },
		{ "index.docker.io", "docker.io" },
		{ "registry-1.docker.io", "docker.io" },
		{ "docker.io", "docker.io" },
		{ "http://localhost:5000/", "localhost:5000" },
		{ "GHCR.io/owner/x", "ghcr.io" },
		{ "127.0.0.1:5000", "127.0.0.1:5000" },
	};

	(void)state;
	for (size_t i = 0; i < KN_ARRAY_SIZE(cases); i++) {
		char *d = reg_registry_normalize(cases[i][0]);

		assert_string_equal(d, cases[i][1]);
		free(d);
	}
	assert_string_equal(reg_domain_api_host("docker.io"), "registry-1.docker.io");
	assert_string_equal(reg_domain_api_host("ghcr.io"), "ghcr.io");
}

static void test_ref_edit(void **state)
{
	struct reg_ref *r = NULL, *d;
	const char *dg = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

	(void)state;
	assert_int_equal(reg_ref_parse("localhost:5000/team/app", &r, NULL), 0);
	assert_string_equal(r->string, "localhost:5000/team/app:latest");
	reg_ref_set_tag(r, "v2");
	assert_string_equal(r->string, "localhost:5000/team/app:v2");
	reg_ref_set_digest(r, dg);
	assert_string_equal(r->string, "localhost:5000/team/app:v2@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	reg_ref_set_tag(r, NULL);
	d = reg_ref_dup(r);
	assert_string_equal(d->string, "localhost:5000/team/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	assert_string_equal(d->name, "localhost:5000/team/app");
	assert_null(d->tag);
	reg_ref_free(d);
	reg_ref_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_challenge_bearer),
		cmocka_unit_test(test_challenge_other),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_registry_normalize),
		cmocka_unit_test(test_ref_edit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
