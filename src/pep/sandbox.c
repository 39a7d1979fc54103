#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#if __has_include(<linux/landlock.h>)
#include <linux/landlock.h>
#define HAVE_LANDLOCK 1
#endif
#if __has_include(<linux/seccomp.h>) && __has_include(<linux/filter.h>) && \
        __has_include(<linux/audit.h>)
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#define HAVE_SECCOMP 1
#endif

#include "core/common.h"

#include "pep/sandbox.h"

int px_sandbox_mode_parse(const char *s, enum px_sandbox_mode *ret, struct px_err **err)
{
	if (px_streq(s, "auto"))
		*ret = PX_SANDBOX_AUTO;
	else if (px_streq(s, "required"))
		*ret = PX_SANDBOX_REQUIRED;
	else if (px_streq(s, "off"))
		*ret = PX_SANDBOX_OFF;
	else
		return px_err_set(err, PX_EXIT_USAGE,
		                  "sandbox mode '%s' is not one of auto, required, off", s);
	return 0;
}

#ifdef HAVE_LANDLOCK
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif

/* Everything the first Landlock ABI can restrict on files. */
#define FS_ALL_V1                                                         \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |     \
	 LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |     \
	 LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE | \
	 LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR |     \
	 LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |     \
	 LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |   \
	 LANDLOCK_ACCESS_FS_MAKE_SYM)
#define FS_READ (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)

/* Layout of struct landlock_net_port_attr (ABI 4), declared here so older headers build. */
struct net_attr {
	uint64_t allowed_access;
	uint64_t port;
};

static int add_read_rule(int rs, const char *path, uint64_t access)
{
	int fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	struct stat st;
	if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode))
		access &= ~(uint64_t)LANDLOCK_ACCESS_FS_READ_DIR;
	struct landlock_path_beneath_attr pb = {.allowed_access = access, .parent_fd = fd};
	long rc = syscall(SYS_landlock_add_rule, rs, LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
	close(fd);
	return rc < 0 ? -1 : 0;
}

/* Read-only files for name resolution (nsswitch, hosts, resolv.conf, NSS modules), TLS
 * (CA bundles, openssl.cnf) and the caller's files; no writes and, from ABI 4, no binding
 * of TCP ports. The listeners and the audit log are open already. */
static int landlock(const char *const *paths, size_t n, const char *const *rm, size_t n_rm,
                    const char **why)
{
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	if (abi < 1) {
		*why = "landlock (not supported by this kernel)";
		return -1;
	}
	uint64_t fs = FS_ALL_V1;
	if (abi >= 2)
		fs |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		fs |= LANDLOCK_ACCESS_FS_TRUNCATE;
	struct {
		uint64_t handled_access_fs;
		uint64_t handled_access_net;
	} attr = {fs, abi >= 4 ? 1ULL /* LANDLOCK_ACCESS_NET_BIND_TCP */ : 0};
	size_t attr_size = abi >= 4 ? sizeof(attr) : sizeof(uint64_t);
	int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0);
	if (rs < 0) {
		*why = "landlock (cannot create a ruleset)";
		return -1;
	}
	static const char *const sys_ro[] = {"/etc",         "/usr",      "/lib",
	                                     "/lib64",       "/lib32",    "/proc/self",
	                                     "/dev/urandom", "/dev/null", "/run/systemd/resolve"};
	const uint64_t ro = FS_READ | LANDLOCK_ACCESS_FS_EXECUTE;
	int rc = 0;
	for (size_t i = 0; i < PX_ARRAY_SIZE(sys_ro) && rc == 0; i++)
		rc = add_read_rule(rs, sys_ro[i], ro);
	for (size_t i = 0; i < n && rc == 0; i++)
		if (paths[i])
			rc = add_read_rule(rs, paths[i], FS_READ);
	for (size_t i = 0; i < n_rm && rc == 0; i++)
		if (rm[i])
			rc = add_read_rule(rs, rm[i], LANDLOCK_ACCESS_FS_REMOVE_FILE);
	if (rc == 0 && syscall(SYS_landlock_restrict_self, rs, 0) < 0)
		rc = -1;
	close(rs);
	if (rc < 0)
		*why = "landlock (cannot apply the ruleset)";
	return rc;
}
#endif

#ifdef HAVE_SECCOMP
#if defined(__x86_64__)
#define SC_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SC_ARCH AUDIT_ARCH_AARCH64
#endif
#endif

#ifdef SC_ARCH
/* LeakSanitizer stops the process's threads with ptrace at exit, so sanitizer builds
 * (make check) keep ptrace; every other build refuses it. */
#if defined(__SANITIZE_ADDRESS__)
#define PTRACE_NR
#else
#define PTRACE_NR SYS_ptrace,
#endif

/* System calls the PEP never makes; a compromised worker should not either. */
static const int denied_syscalls[] = {
        SYS_execve,
        SYS_execveat,
        PTRACE_NR SYS_process_vm_readv,
        SYS_process_vm_writev,
        SYS_mount,
        SYS_umount2,
        SYS_pivot_root,
        SYS_chroot,
        SYS_init_module,
        SYS_finit_module,
        SYS_delete_module,
        SYS_kexec_load,
        SYS_kexec_file_load,
        SYS_bpf,
        SYS_unshare,
        SYS_setns,
        SYS_keyctl,
        SYS_add_key,
        SYS_request_key,
        SYS_perf_event_open,
        SYS_userfaultfd,
        SYS_swapon,
        SYS_swapoff,
        SYS_reboot,
        SYS_acct,
        SYS_open_by_handle_at,
        SYS_name_to_handle_at,
        SYS_settimeofday,
        SYS_clock_settime,
        SYS_personality,
#ifdef SYS_iopl
        SYS_iopl,
        SYS_ioperm,
#endif
};

static int seccomp(const char **why)
{
	size_t nd = PX_ARRAY_SIZE(denied_syscalls);
	size_t len = 4 + nd * 2 + 1;
	struct sock_filter *f = xcalloc(len, sizeof(*f));
	size_t k = 0;
	f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	                                      offsetof(struct seccomp_data, arch));
	f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SC_ARCH, 1, 0);
	f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
	f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	                                      offsetof(struct seccomp_data, nr));
	for (size_t i = 0; i < nd; i++) {
		f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
		                                      (uint32_t)denied_syscalls[i], 0, 1);
		f[k++] = (struct sock_filter)BPF_STMT(
		        BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA));
	}
	f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	struct sock_fprog prog = {.len = (unsigned short)k, .filter = f};
	int rc = prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
	free(f);
	if (rc < 0) {
		*why = "seccomp (the kernel refused the filter)";
		return -1;
	}
	return 0;
}
#endif

int px_sandbox_apply(enum px_sandbox_mode mode, const char *const *read_paths, size_t n_paths,
                     const char *const *remove_dirs, size_t n_remove, const char **ret_missing,
                     struct px_err **err)
{
	*ret_missing = NULL;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return px_err_errno(err, errno, "cannot set no_new_privs");
	if (mode == PX_SANDBOX_OFF)
		return 0;
	const char *why = NULL;
#ifdef HAVE_LANDLOCK
	if (landlock(read_paths, n_paths, remove_dirs, n_remove, &why) < 0 &&
	    mode == PX_SANDBOX_REQUIRED)
		return px_err_set(err, PX_EXIT_FAILURE, "sandbox required but %s", why);
#else
	(void)read_paths;
	(void)n_paths;
	(void)remove_dirs;
	(void)n_remove;
	why = "landlock (not built in)";
	if (mode == PX_SANDBOX_REQUIRED)
		return px_err_set(err, PX_EXIT_FAILURE, "sandbox required but %s", why);
#endif
	const char *why2 = NULL;
#ifdef SC_ARCH
	if (seccomp(&why2) < 0 && mode == PX_SANDBOX_REQUIRED)
		return px_err_set(err, PX_EXIT_FAILURE, "sandbox required but %s", why2);
#else
	why2 = "seccomp (not built for this architecture)";
	if (mode == PX_SANDBOX_REQUIRED)
		return px_err_set(err, PX_EXIT_FAILURE, "sandbox required but %s", why2);
#endif
	*ret_missing = why ? why : why2;
	return 0;
}
