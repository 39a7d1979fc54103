#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#if defined(__linux__)
#include <linux/kvm.h>
#endif

#include "core/common.h"

#include "core/buf.h"
#include "core/file.h"
#include "vm/instance.h"
#include "vm/kvm.h"

extern char **environ;

#define PROBE_TIMEOUT_MS 5000

/* The probe guests. x86_64: the reset vector (0xFFFF0, the last 16 bytes of a 64 KiB BIOS)
 * runs "mov al, 1; out 0xf4, al; hlt": isa-debug-exit then ends QEMU with status
 * (1 << 1) | 1 = 3. aarch64: the first words of the flash at address 0 call PSCI
 * SYSTEM_OFF (0x84000008) through hvc, which ends QEMU with status 0. */
static const uint8_t x86_code[] = {0xb0, 0x01, 0xe6, 0xf4, 0xf4};
static const uint32_t arm_code[] = {0x52800100, 0x72b08000, 0xd4000002, 0x14000000};

static int write_probe_bios(enum px_arch arch, const char *path, struct px_err **err)
{
	size_t size = arch == PX_ARCH_AARCH64 ? 64u << 20 : 64u << 10;
	_cleanup_free_ uint8_t *img = xcalloc(1, size);
	if (arch == PX_ARCH_AARCH64) {
		for (size_t i = 0; i < PX_ARRAY_SIZE(arm_code); i++) {
			uint32_t w = arm_code[i];
			for (int b = 0; b < 4; b++)
				img[i * 4 + (size_t)b] = (uint8_t)(w >> (8 * b));
		}
	} else {
		memset(img, 0xf4, size); /* hlt everywhere else */
		memcpy(img + size - 16, x86_code, sizeof(x86_code));
	}
	return px_atomic_write_file(path, img, size, 0644, err);
}

int px_kvm_probe_guest(enum px_arch arch, const char *qemu, const char *accel, const char *workdir,
                       int timeout_ms, char **ret_reason)
{
	struct px_err *e = NULL;
	_cleanup_free_ char *bios = xasprintf("%s/kvm-probe-%d.bin", workdir, (int)getpid());
	if (write_probe_bios(arch, bios, &e) < 0) {
		*ret_reason = xstrdup(e->msg);
		px_err_free(e);
		return -1;
	}
	bool arm = arch == PX_ARCH_AARCH64;
	bool tcg = strcmp(accel, "tcg") == 0;
	_cleanup_free_ char *machine = xasprintf("%s,accel=%s", arm ? "virt" : "q35", accel);
	const char *argv[] = {qemu,
	                      "-nodefaults",
	                      "-no-user-config",
	                      "-display",
	                      "none",
	                      "-nic",
	                      "none",
	                      "-machine",
	                      machine,
	                      "-cpu",
	                      tcg ? "max" : "host",
	                      "-m",
	                      "64M",
	                      "-bios",
	                      bios,
	                      arm ? NULL : "-device",
	                      "isa-debug-exit,iobase=0xf4,iosize=0x04",
	                      NULL};
	int err_pipe[2];
	if (pipe2(err_pipe, O_CLOEXEC) < 0) {
		*ret_reason = xasprintf("cannot create a pipe: %s", strerror(errno));
		unlink(bios);
		return -1;
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, err_pipe[1], STDERR_FILENO);
	pid_t pid;
	int rc = posix_spawnp(&pid, qemu, &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(err_pipe[1]);
	if (rc != 0) {
		close(err_pipe[0]);
		unlink(bios);
		*ret_reason = xasprintf("cannot run '%s': %s", qemu, strerror(rc));
		return -1;
	}

	struct px_buf errout = PX_BUF_INIT;
	errout.max = 8192;
	int64_t deadline = px_mono_ms() + timeout_ms;
	bool timed_out = false;
	for (;;) {
		int64_t left = deadline - px_mono_ms();
		if (left <= 0) {
			timed_out = true;
			break;
		}
		struct pollfd p = {err_pipe[0], POLLIN, 0};
		int n = poll(&p, 1, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			continue;
		char chunk[1024];
		ssize_t r = read(err_pipe[0], chunk, sizeof(chunk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break; /* QEMU closed stderr: it is exiting */
		px_buf_append(&errout, chunk, (size_t)r, NULL);
	}
	close(err_pipe[0]);

	int status = 0;
	pid_t w = 0;
	if (!timed_out) {
		/* stderr closed; the exit follows at once, but never wait unbounded. */
		for (int i = 0; i < 200 && (w = waitpid(pid, &status, WNOHANG)) == 0; i++)
			poll(NULL, 0, 10);
		timed_out = w == 0;
	}
	if (timed_out) {
		kill(pid, SIGKILL);
		/* A vCPU stuck in the kernel may not die at once; do not hang on it. */
		for (int i = 0; i < 200 && waitpid(pid, &status, WNOHANG) == 0; i++)
			poll(NULL, 0, 10);
	}
	unlink(bios);

	int want = arm ? 0 : 3;
	if (!timed_out && WIFEXITED(status) && WEXITSTATUS(status) == want) {
		px_buf_free(&errout);
		return 0;
	}
	/* QEMU's first line of complaint is the reason ("failed to set MSR 0x10a ..."). */
	char empty[1] = "";
	char *first = errout.data ? errout.data : empty;
	first[strcspn(first, "\r\n")] = '\0';
	if (timed_out)
		*ret_reason = xasprintf("a test guest did not finish within %d ms", timeout_ms);
	else if (WIFSIGNALED(status))
		*ret_reason = xasprintf("a test guest killed QEMU with signal %d%s%s",
		                        WTERMSIG(status), *first ? ": " : "", first);
	else
		*ret_reason = xasprintf("a test guest ended QEMU with status %d%s%s",
		                        WEXITSTATUS(status), *first ? ": " : "", first);
	px_buf_free(&errout);
	return -1;
}

bool px_kvm_usable(enum px_arch arch, const char *qemu, const char *workdir, char **ret_reason)
{
#if defined(__linux__)
	_cleanup_close_ int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		*ret_reason = xasprintf("cannot open /dev/kvm: %s", strerror(errno));
		return false;
	}
	int version = ioctl(kvm, KVM_GET_API_VERSION, 0);
	if (version != KVM_API_VERSION) {
		*ret_reason =
		        xasprintf("/dev/kvm has API version %d, not %d", version, KVM_API_VERSION);
		return false;
	}
	int vmfd = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vmfd < 0) {
		*ret_reason = xasprintf("KVM_CREATE_VM failed: %s", strerror(errno));
		return false;
	}
	close(vmfd);
	return px_kvm_probe_guest(arch, qemu, "kvm", workdir, PROBE_TIMEOUT_MS, ret_reason) == 0;
#else
	(void)arch;
	(void)qemu;
	(void)workdir;
	*ret_reason = xstrdup("KVM exists only on Linux");
	return false;
#endif
}
