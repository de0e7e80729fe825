/* Unit tests for USER resolution (builder/user.c): runc's rules on passwd/group text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "builder/sandbox-internal.h"

static const char passwd[] = "root:x:0:0:root:/root:/bin/sh\n"
			     "# a comment\n"
			     "\n"
			     "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
			     "broken line without fields\n"
			     "app:x:1000:1000:app:/home/app:/bin/sh\n"
			     "2000:x:3000:3000::/home/numeric:/bin/sh\n"
			     "nohome:x:1001:1001::\n"
			     "nobody:x:65534:65534:nobody:/nonexistent:/bin/false";
static const char group[] = "root:x:0:\n"
			    "wheel:x:10:root\n"
			    "app:x:1000:\n"
			    "staff:x:50:app, daemon\n"
			    "dev:x:60:nohome,app\n"
			    "dup:x:60:app\n"
			    "nogroup:x:65534:";

static int resolve(const char *user, struct sandbox_user_raw *r, gid_t *gids, size_t max)
{
	return sandbox_user_resolve_raw(user, passwd, strlen(passwd), group, strlen(group), gids,
					max, r);
}

static void test_root_default(void **state)
{
	struct sandbox_user_raw r;
	gid_t g[8];

	(void)state;
	assert_int_equal(resolve(NULL, &r, g, 8), 0);
	assert_int_equal(r.uid, 0);
	assert_int_equal(r.gid, 0);
	assert_int_equal(r.n_gids, 1);
	assert_int_equal(g[0], 10);
	assert_int_equal(r.home_len, 5);
	assert_memory_equal(r.home, "/root", 5);
	assert_int_equal(resolve("", &r, g, 8), 0);
	assert_int_equal(r.uid, 0);
}

static void test_name_and_groups(void **state)
{
	struct sandbox_user_raw r;
	gid_t g[8];

	(void)state;
	assert_int_equal(resolve("app", &r, g, 8), 0);
	assert_int_equal(r.uid, 1000);
	assert_int_equal(r.gid, 1000);
	/* staff and dev list app; "dup" repeats gid 60 and is not added twice */
	assert_int_equal(r.n_gids, 2);
	assert_int_equal(g[0], 50);
	assert_int_equal(g[1], 60);
	assert_memory_equal(r.home, "/home/app", 9);
	/* members with spaces around commas */
	assert_int_equal(resolve("daemon", &r, g, 8), 0);
	assert_int_equal(r.n_gids, 1);
	assert_int_equal(g[0], 50);
}

static void test_numeric(void **state)
{
	struct sandbox_user_raw r;
	gid_t g[8];

	(void)state;
	assert_int_equal(resolve("1000", &r, g, 8), 0);
	assert_int_equal(r.uid, 1000);
	assert_int_equal(r.gid, 1000);
	assert_int_equal(r.n_gids, 2);
	/* unknown numeric uid: gid 0, home / */
	assert_int_equal(resolve("4242", &r, g, 8), 0);
	assert_int_equal(r.uid, 4242);
	assert_int_equal(r.gid, 0);
	assert_int_equal(r.n_gids, 0);
	assert_memory_equal(r.home, "/", 1);
	/* a user literally named "2000" matches by name first */
	assert_int_equal(resolve("2000", &r, g, 8), 0);
	assert_int_equal(r.uid, 3000);
	/* empty home stays "/" */
	assert_int_equal(resolve("nohome", &r, g, 8), 0);
	assert_memory_equal(r.home, "/", 1);
	assert_int_equal(r.n_gids, 1);
}

static void test_user_group(void **state)
{
	struct sandbox_user_raw r;
	gid_t g[8];

	(void)state;
	assert_int_equal(resolve("app:staff", &r, g, 8), 0);
	assert_int_equal(r.uid, 1000);
	assert_int_equal(r.gid, 50);
	assert_int_equal(r.n_gids, 0);
	assert_int_equal(resolve("1000:10", &r, g, 8), 0);
	assert_int_equal(r.gid, 10);
	assert_int_equal(resolve("5:7", &r, g, 8), 0);
	assert_int_equal(r.uid, 5);
	assert_int_equal(r.gid, 7);
	assert_int_equal(resolve("app:", &r, g, 8), 0);
	assert_int_equal(r.gid, 1000);
	assert_int_equal(r.n_gids, 2);
}

static void test_errors(void **state)
{
	struct sandbox_user_raw r;
	gid_t g[1];

	(void)state;
	assert_true(resolve("foo", &r, g, 1) < 0);
	assert_string_equal(r.msg, "unable to find user ");
	assert_int_equal(r.name_len, 3);
	assert_memory_equal(r.name, "foo", 3);
	assert_string_equal(r.msg_suffix, ": no matching entries in passwd file");
	assert_true(resolve("app:nogrp", &r, g, 1) < 0);
	assert_string_equal(r.msg, "unable to find group ");
	assert_memory_equal(r.name, "nogrp", 5);
	assert_string_equal(r.msg_suffix, ": no matching entries in group file");
	/* more groups than room */
	assert_int_equal(resolve("app", &r, g, 1), -E2BIG);
	/* ids too large or signed are names, and unknown */
	assert_true(resolve("4294967295", &r, g, 1) < 0);
	assert_true(resolve("-1", &r, g, 1) < 0);
	/* no passwd file at all: names fail, numbers work */
	assert_true(sandbox_user_resolve_raw("app", NULL, 0, NULL, 0, g, 1, &r) < 0);
	assert_int_equal(sandbox_user_resolve_raw("7:8", NULL, 0, NULL, 0, g, 1, &r), 0);
	assert_int_equal(r.uid, 7);
	assert_int_equal(r.gid, 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_root_default), cmocka_unit_test(test_name_and_groups),
	    cmocka_unit_test(test_numeric),	 cmocka_unit_test(test_user_group),
	    cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
