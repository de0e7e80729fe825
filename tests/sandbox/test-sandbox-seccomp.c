/* Unit tests for the RUN sandbox's seccomp filter (builder/seccomp.c): the program exported for
 * each kernel family (x86_64 + i386 + x32, aarch64 + arm) is run here, in a small classic-BPF
 * evaluator, over a struct seccomp_data per named syscall, and must decide what docker's default
 * profile decides for an unprivileged container. The syscall numbers are the kernel's
 * (arch/x86/entry/syscalls/syscall_{64,32}.tbl, include/uapi/asm-generic/unistd.h,
 * arch/arm/tools/syscall.tbl), written out here rather than asked of libseccomp. */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "builder/seccomp-internal.h"

/* Runs a classic BPF seccomp program over d; returns its verdict (the kernel's semantics). */
static uint32_t bpf_run(const struct sock_filter *prog, size_t len, const struct seccomp_data *d)
{
	uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = {0};
	const unsigned char *data = (const unsigned char *)d;

	for (size_t pc = 0; pc < len; pc++) {
		const struct sock_filter *f = &prog[pc];
		uint32_t src = BPF_SRC(f->code) == BPF_X ? x : f->k;

		switch (BPF_CLASS(f->code)) {
		case BPF_LD:
			if (BPF_MODE(f->code) == BPF_ABS && BPF_SIZE(f->code) == BPF_W) {
				assert_true(f->k % 4 == 0 && f->k + 4 <= sizeof(*d));
				memcpy(&a, data + f->k, 4);
			} else if (BPF_MODE(f->code) == BPF_IMM) {
				a = f->k;
			} else if (BPF_MODE(f->code) == BPF_MEM) {
				assert_true(f->k < BPF_MEMWORDS);
				a = mem[f->k];
			} else if (BPF_MODE(f->code) == BPF_LEN) {
				a = sizeof(*d);
			} else {
				fail_msg("unsupported load 0x%x at %zu", f->code, pc);
			}
			break;
		case BPF_LDX:
			if (BPF_MODE(f->code) == BPF_IMM)
				x = f->k;
			else if (BPF_MODE(f->code) == BPF_MEM && f->k < BPF_MEMWORDS)
				x = mem[f->k];
			else if (BPF_MODE(f->code) == BPF_LEN)
				x = sizeof(*d);
			else
				fail_msg("unsupported ldx 0x%x at %zu", f->code, pc);
			break;
		case BPF_ST:
			assert_true(f->k < BPF_MEMWORDS);
			mem[f->k] = a;
			break;
		case BPF_STX:
			assert_true(f->k < BPF_MEMWORDS);
			mem[f->k] = x;
			break;
		case BPF_ALU:
			switch (BPF_OP(f->code)) {
			case BPF_ADD: a += src; break;
			case BPF_SUB: a -= src; break;
			case BPF_MUL: a *= src; break;
			case BPF_DIV: assert_true(src != 0); a /= src; break;
			case BPF_MOD: assert_true(src != 0); a %= src; break;
			case BPF_AND: a &= src; break;
			case BPF_OR: a |= src; break;
			case BPF_XOR: a ^= src; break;
			case BPF_LSH: a = src < 32 ? a << src : 0; break;
			case BPF_RSH: a = src < 32 ? a >> src : 0; break;
			case BPF_NEG: a = -a; break;
			default: fail_msg("unsupported alu 0x%x at %zu", f->code, pc);
			}
			break;
		case BPF_JMP: {
			bool taken;

			if (BPF_OP(f->code) == BPF_JA) {
				pc += f->k;
				break;
			}
			switch (BPF_OP(f->code)) {
			case BPF_JEQ: taken = a == src; break;
			case BPF_JGT: taken = a > src; break;
			case BPF_JGE: taken = a >= src; break;
			case BPF_JSET: taken = (a & src) != 0; break;
			default: fail_msg("unsupported jump 0x%x at %zu", f->code, pc); return 0;
			}
			pc += taken ? f->jt : f->jf;
			break;
		}
		case BPF_RET:
			return BPF_RVAL(f->code) == BPF_A ? a : f->k;
		case BPF_MISC:
			if (BPF_MISCOP(f->code) == BPF_TAX)
				x = a;
			else
				a = x;
			break;
		default:
			fail_msg("unsupported instruction 0x%x at %zu", f->code, pc);
		}
	}
	fail_msg("the program ran off its end");
	return 0;
}

#define ALLOW SECCOMP_RET_ALLOW
#define EPERM_ (SECCOMP_RET_ERRNO | EPERM)
#define ENOSYS_ (SECCOMP_RET_ERRNO | ENOSYS)
#define NONE (-1) /* the ABI has no such syscall */

/* One ABI of a family: its audit arch and the number column to use. */
struct abi {
	const char *name;
	uint32_t arch;
	int col;
	uint32_t nr_bias; /* x32: __X32_SYSCALL_BIT */
};

/* A named syscall, its number on x86_64, i386, x32 (before the bias), aarch64, arm. */
struct sc {
	const char *name;
	int nr[5];
};
enum { X64, I386, X32, A64, ARM };

static const struct sc sc_read = {"read", {0, 3, 0, 63, 3}};
static const struct sc sc_openat = {"openat", {257, 295, 257, 56, 322}};
static const struct sc sc_execve = {"execve", {59, 11, 520, 221, 11}};
static const struct sc sc_pipe = {"pipe", {22, 42, 22, NONE, 42}};
static const struct sc sc_pipe2 = {"pipe2", {293, 331, 293, 59, 359}};
static const struct sc sc_chroot = {"chroot", {161, 61, 161, 51, 61}};
static const struct sc sc_ptrace = {"ptrace", {101, 26, 521, 117, 26}};
static const struct sc sc_fchmodat2 = {"fchmodat2", {452, 452, 452, 452, 452}};
static const struct sc sc_clone = {"clone", {56, 120, 56, 220, 120}};
static const struct sc sc_clone3 = {"clone3", {435, 435, 435, 435, 435}};
static const struct sc sc_socket = {"socket", {41, 359, 41, 198, 281}};
static const struct sc sc_socketcall = {"socketcall", {NONE, 102, NONE, NONE, NONE}};
static const struct sc sc_personality = {"personality", {135, 136, 135, 92, 136}};
static const struct sc sc_arch_prctl = {"arch_prctl", {158, 384, 158, NONE, NONE}};
static const struct sc sc_modify_ldt = {"modify_ldt", {154, 123, 154, NONE, NONE}};
static const struct sc sc_cacheflush = {"cacheflush", {NONE, NONE, NONE, NONE, 0xf0002}};
static const struct sc sc_set_tls = {"set_tls", {NONE, NONE, NONE, NONE, 0xf0005}};

/* Refused whatever the arguments. */
static const struct sc refused[] = {
    {"mount", {165, 21, 165, 40, 21}},
    {"umount2", {166, 52, 166, 39, 52}},
    {"pivot_root", {155, 217, 155, 41, 218}},
    {"unshare", {272, 310, 272, 97, 337}},
    {"setns", {308, 346, 308, 268, 375}},
    {"keyctl", {250, 288, 250, 219, 311}},
    {"add_key", {248, 286, 248, 217, 309}},
    {"bpf", {321, 357, 321, 280, 386}},
    {"perf_event_open", {298, 336, 298, 241, 364}},
    {"kexec_load", {246, 283, 528, 104, 347}},
    {"init_module", {175, 128, 175, 105, 128}},
    {"reboot", {169, 88, 169, 142, 88}},
    {"sethostname", {170, 74, 170, 161, 74}},
    {"settimeofday", {164, 79, 164, 170, 79}},
    {"io_uring_setup", {425, 425, 425, 425, 425}},
    {"open_tree", {428, 428, 428, 428, 428}},
    {"fsopen", {430, 430, 430, 430, 430}},
    {"userfaultfd", {323, 374, 323, 282, 388}},
    {"vhangup", {153, 111, 153, 58, 111}},
    {"not a syscall", {1000, 1000, 1000, 1000, 1000}},
};

/* Allowed whatever the arguments. */
static const struct sc *const allowed[] = {
    &sc_read, &sc_openat, &sc_execve, &sc_pipe, &sc_pipe2, &sc_chroot, &sc_ptrace, &sc_fchmodat2,
};

static const struct abi x86_family[] = {
    {"x86_64", AUDIT_ARCH_X86_64, X64, 0},
    {"i386", AUDIT_ARCH_I386, I386, 0},
    {"x32", AUDIT_ARCH_X86_64, X32, 0x40000000},
};
static const struct abi arm_family[] = {
    {"aarch64", AUDIT_ARCH_AARCH64, A64, 0},
    {"arm", AUDIT_ARCH_ARM, ARM, 0},
};

struct prog {
	struct sock_filter *insns;
	size_t len;
};

static uint32_t decide(const struct prog *p, const struct abi *abi, const struct sc *sc,
		       uint64_t arg0)
{
	struct seccomp_data d;

	memset(&d, 0, sizeof(d));
	d.arch = abi->arch;
	d.nr = (int)((uint32_t)sc->nr[abi->col] | abi->nr_bias);
	d.args[0] = arg0;
	d.args[1] = 0x1234;
	return bpf_run(p->insns, p->len, &d);
}

static void expect(const struct prog *p, const struct abi *abi, const struct sc *sc,
		   uint64_t arg0, uint32_t want)
{
	uint32_t got;

	if (sc->nr[abi->col] == NONE)
		return;
	got = decide(p, abi, sc, arg0);
	if (got != want)
		fail_msg("%s on %s (nr %d, arg0 %#llx): got %#x, want %#x", sc->name, abi->name,
			 sc->nr[abi->col], (unsigned long long)arg0, got, want);
}

static void check_family(enum sbx_seccomp_abis abis, const struct abi *family, size_t n,
			 uint32_t foreign_arch)
{
	struct prog p = {NULL, 0};
	kn_error *err = NULL;

	if (sbx_seccomp_build(abis, &p.insns, &p.len, &err) < 0)
		fail_msg("build: %s (%d)", err->msg, err->code);
	assert_true(p.len > 10 && p.len <= BPF_MAXINSNS);

	for (size_t i = 0; i < n; i++) {
		const struct abi *abi = &family[i];
		bool x86 = abi->arch != AUDIT_ARCH_AARCH64 && abi->arch != AUDIT_ARCH_ARM;

		for (size_t j = 0; j < sizeof(allowed) / sizeof(allowed[0]); j++)
			expect(&p, abi, allowed[j], 0, ALLOW);
		for (size_t j = 0; j < sizeof(refused) / sizeof(refused[0]); j++) {
			expect(&p, abi, &refused[j], 0, EPERM_);
			expect(&p, abi, &refused[j], 0xffffffff, EPERM_);
		}
		/* clone: a thread or a fork, never a new namespace */
		expect(&p, abi, &sc_clone, 17 /* SIGCHLD */, ALLOW);
		expect(&p, abi, &sc_clone, 0x003d0f00 /* pthread_create's flags */, ALLOW);
		expect(&p, abi, &sc_clone, 0x10000000 | 17 /* CLONE_NEWUSER */, EPERM_);
		expect(&p, abi, &sc_clone, 0x00020000 /* CLONE_NEWNS */, EPERM_);
		expect(&p, abi, &sc_clone, 0x40000000 /* CLONE_NEWNET */, EPERM_);
		expect(&p, abi, &sc_clone, 0x02000000 /* CLONE_NEWCGROUP */, EPERM_);
		expect(&p, abi, &sc_clone3, 0, ENOSYS_);
		/* socket: any family but AF_VSOCK (socketcall's arguments are in memory) */
		expect(&p, abi, &sc_socket, 2 /* AF_INET */, ALLOW);
		expect(&p, abi, &sc_socket, 1 /* AF_UNIX */, ALLOW);
		expect(&p, abi, &sc_socket, 16 /* AF_NETLINK */, ALLOW);
		expect(&p, abi, &sc_socket, 40 /* AF_VSOCK */, EPERM_);
		expect(&p, abi, &sc_socketcall, 1, ALLOW);
		/* personality: the five personas docker allows */
		expect(&p, abi, &sc_personality, 0, ALLOW);
		expect(&p, abi, &sc_personality, 8, ALLOW);
		expect(&p, abi, &sc_personality, 0x20000, ALLOW);
		expect(&p, abi, &sc_personality, 0x20008, ALLOW);
		expect(&p, abi, &sc_personality, 0xffffffff, ALLOW);
		expect(&p, abi, &sc_personality, 0x0040000 /* ADDR_NO_RANDOMIZE */, EPERM_);
		/* per-architecture calls */
		expect(&p, abi, &sc_arch_prctl, 0x1002, ALLOW);
		expect(&p, abi, &sc_modify_ldt, 0, ALLOW);
		expect(&p, abi, &sc_cacheflush, 0, ALLOW);
		expect(&p, abi, &sc_set_tls, 0, ALLOW);
		if (!x86) /* arm's calls are not x86's */
			assert_int_equal(decide(&p, &family[i], &sc_read, 0), ALLOW);
	}
	/* an ABI the family does not have */
	{
		struct abi other = {"foreign", foreign_arch, X64, 0};

		expect(&p, &other, &sc_read, 0, ENOSYS_);
	}
	free(p.insns);
}

static void test_x86_family(void **state)
{
	(void)state;
	check_family(SBX_SECCOMP_X86_64, x86_family, sizeof(x86_family) / sizeof(x86_family[0]),
		     AUDIT_ARCH_AARCH64);
}

static void test_arm_family(void **state)
{
	(void)state;
	check_family(SBX_SECCOMP_AARCH64, arm_family, sizeof(arm_family) / sizeof(arm_family[0]),
		     AUDIT_ARCH_X86_64);
}

/* The x32 ABI's own numbers (512 and up) are x32 calls; x86_64's execve number is not x32's. */
static void test_x32_numbers(void **state)
{
	struct prog p = {NULL, 0};
	struct seccomp_data d;

	(void)state;
	assert_int_equal(sbx_seccomp_build(SBX_SECCOMP_X86_64, &p.insns, &p.len, NULL), 0);
	memset(&d, 0, sizeof(d));
	d.arch = AUDIT_ARCH_X86_64;
	d.nr = 0x40000000 | 59; /* x32 has no syscall 59: execve is 520 */
	assert_int_equal(bpf_run(p.insns, p.len, &d), EPERM_);
	free(p.insns);
}

/* The host's program is built once and shared. */
static void test_default_is_shared(void **state)
{
	const struct sock_filter *a = NULL, *b = NULL;
	size_t na = 0, nb = 0;

	(void)state;
	assert_int_equal(sbx_seccomp_default(&a, &na, NULL), 0);
	assert_int_equal(sbx_seccomp_default(&b, &nb, NULL), 0);
	assert_non_null(a);
	assert_ptr_equal(a, b);
	assert_int_equal(na, nb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_x86_family),
	    cmocka_unit_test(test_arm_family),
	    cmocka_unit_test(test_x32_numbers),
	    cmocka_unit_test(test_default_is_shared),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
