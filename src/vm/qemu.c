#include <sys/stat.h>

#include "core/common.h"

#include "core/file.h"
#include "core/log.h"
#include "core/reader.h"
#include "core/sha256.h"
#include "core/spawn.h"
#include "vm/instance.h"
#include "vm/kvm.h"
#include "vm/qemu.h"
#include "vm/qmp.h"
#include "vm/vm.h"

const char *px_qemu_binary(enum px_arch arch)
{
	return arch == PX_ARCH_AARCH64 ? "qemu-system-aarch64" : "qemu-system-x86_64";
}

char *px_qemu_escape(const char *s)
{
	size_t n = 0;
	for (const char *p = s; *p; p++)
		n += *p == ',' ? 2 : 1;
	char *out = xmalloc(n + 1), *q = out;
	for (const char *p = s; *p; p++) {
		*q++ = *p;
		if (*p == ',')
			*q++ = ',';
	}
	*q = '\0';
	return out;
}

/* Adds "PREFIX" followed by the escaped path and "SUFFIX" as one argument. */
static void add_path_arg(struct px_argv *a, const char *prefix, const char *path,
                         const char *suffix)
{
	_cleanup_free_ char *esc = px_qemu_escape(path);
	px_argv_addf(a, "%s%s%s", prefix, esc, suffix);
}

int px_qemu_argv(const struct px_qemu_opts *o, char ***ret, struct px_err **err)
{
	if (!o->disk || !o->seed || !o->console_log || !o->qmp_sock)
		return px_err_set(err, PX_EXIT_FAILURE,
		                  "qemu: disk, seed, console and QMP paths "
		                  "are required");
	if (!o->vsock && !o->pep_sock)
		return px_err_set(err, PX_EXIT_FAILURE, "qemu: no channel to the PEP");
	if (!o->kernel && !o->firmware_code)
		return px_err_set(err, PX_EXIT_FAILURE,
		                  "qemu: neither firmware nor a kernel to boot");
	bool arm = o->arch == PX_ARCH_AARCH64;
	bool tcg = px_streq(o->accel, "tcg");

	struct px_argv a = {0};
	px_argv_add(&a, o->binary ? o->binary : px_qemu_binary(o->arch));
	/* Nothing QEMU would add by itself: no default NIC, no VGA, no parallel port, no
	 * user config file that could add any of them back. */
	px_argv_add(&a, "-nodefaults");
	px_argv_add(&a, "-no-user-config");
	px_argv_add(&a, "-nic");
	px_argv_add(&a, "none");
	px_argv_add(&a, "-display");
	px_argv_add(&a, "none");
	/* A guest that reboots or panics (panic=-1) ends the run instead of looping: the
	 * supervisor then reports it with the console tail. */
	px_argv_add(&a, "-no-reboot");
	if (o->name) {
		px_argv_add(&a, "-name");
		add_path_arg(&a, "", o->name, "");
	}
	px_argv_add(&a, "-machine");
	px_argv_addf(&a, "%s,accel=%s", arm ? "virt" : "q35", o->accel ? o->accel : "tcg");
	px_argv_add(&a, "-cpu");
	px_argv_add(&a, tcg ? "max" : "host");
	px_argv_add(&a, "-smp");
	px_argv_addf(&a, "%" PRIu32, o->cpus ? o->cpus : 1);
	px_argv_add(&a, "-m");
	px_argv_addf(&a, "%" PRIu64 "M", (o->memory ? o->memory : (uint64_t)1 << 30) >> 20);

	if (o->kernel) {
		px_argv_add(&a, "-kernel");
		px_argv_add(&a, o->kernel);
		if (o->initrd) {
			px_argv_add(&a, "-initrd");
			px_argv_add(&a, o->initrd);
		}
		if (o->append) {
			px_argv_add(&a, "-append");
			px_argv_add(&a, o->append);
		}
	} else {
		px_argv_add(&a, "-drive");
		add_path_arg(&a, "if=pflash,format=raw,unit=0,readonly=on,file=", o->firmware_code,
		             "");
		if (o->firmware_vars) {
			px_argv_add(&a, "-drive");
			add_path_arg(&a, "if=pflash,format=raw,unit=1,file=", o->firmware_vars, "");
		}
	}

	/* The disk first (vda), the seed second (vdb), read-only so the guest cannot change
	 * what the build sealed. */
	px_argv_add(&a, "-drive");
	add_path_arg(&a, "file=", o->disk, ",format=raw,if=virtio,cache=writeback,discard=unmap");
	px_argv_add(&a, "-drive");
	add_path_arg(&a, "file=", o->seed, ",format=raw,if=virtio,readonly=on");

	if (o->shared_dir) {
		px_argv_add(&a, "-fsdev");
		add_path_arg(&a, "local,id=workspace,security_model=none,path=", o->shared_dir, "");
		px_argv_add(&a, "-device");
		px_argv_add(&a, "virtio-9p-pci,fsdev=workspace,mount_tag=workspace");
	}

	/* The console: hvc0 and the first serial port both append to console.log, so the
	 * firmware, the boot loader and the kernel are all visible whichever the guest uses. */
	px_argv_add(&a, "-device");
	px_argv_add(&a, "virtio-serial-pci,id=vser0");
	px_argv_add(&a, "-chardev");
	add_path_arg(&a, "file,id=hvc,append=on,path=", o->console_log, "");
	px_argv_add(&a, "-device");
	px_argv_add(&a, "virtconsole,bus=vser0.0,chardev=hvc");
	px_argv_add(&a, "-chardev");
	add_path_arg(&a, "file,id=serial,append=on,path=", o->console_log, "");
	px_argv_add(&a, "-serial");
	px_argv_add(&a, "chardev:serial");

	if (o->vsock) {
		px_argv_add(&a, "-device");
		px_argv_addf(&a, "vhost-vsock-pci,guest-cid=%" PRIu32, o->guest_cid);
	} else {
		px_argv_add(&a, "-chardev");
		add_path_arg(&a, "socket,id=pep,path=", o->pep_sock, "");
		px_argv_add(&a, "-device");
		px_argv_add(&a, "virtserialport,bus=vser0.0,chardev=pep,name=pexi.pep");
	}

	/* Commands for the guest's browser agent come in on their own port, never mixed with
	 * the PEP's frames; QEMU listens and `pexi browse` connects when it needs to. */
	if (o->browser_sock) {
		px_argv_add(&a, "-chardev");
		add_path_arg(&a, "socket,id=browser,server=on,wait=off,path=", o->browser_sock, "");
		px_argv_add(&a, "-device");
		px_argv_add(&a, "virtserialport,bus=vser0.0,chardev=browser,name=pexi.browser");
	}

	/* Entropy for the guest without any host device it could reach through. */
	px_argv_add(&a, "-device");
	px_argv_add(&a, "virtio-rng-pci");
	px_argv_add(&a, "-qmp");
	add_path_arg(&a, "unix:", o->qmp_sock, ",server=on,wait=off");

	*ret = px_argv_steal(&a);
	return 0;
}

struct fw_pair {
	const char *code;
	const char *vars;
};

static const struct fw_pair fw_x86_64[] = {
        {"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"},
        {"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"},
        {"/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd"},
        {"/usr/share/edk2/x64/OVMF_CODE.4m.fd", "/usr/share/edk2/x64/OVMF_VARS.4m.fd"},
        {"/opt/homebrew/share/qemu/edk2-x86_64-code.fd",
         "/opt/homebrew/share/qemu/edk2-i386-vars.fd"},
        {"/usr/local/share/qemu/edk2-x86_64-code.fd", "/usr/local/share/qemu/edk2-i386-vars.fd"},
        {"/usr/share/qemu/edk2-x86_64-code.fd", "/usr/share/qemu/edk2-i386-vars.fd"},
};

static const struct fw_pair fw_aarch64[] = {
        {"/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd"},
        {"/usr/share/edk2/aarch64/QEMU_EFI-pflash.raw",
         "/usr/share/edk2/aarch64/vars-template-pflash.raw"},
        {"/opt/homebrew/share/qemu/edk2-aarch64-code.fd",
         "/opt/homebrew/share/qemu/edk2-arm-vars.fd"},
        {"/usr/local/share/qemu/edk2-aarch64-code.fd", "/usr/local/share/qemu/edk2-arm-vars.fd"},
        {"/usr/share/qemu/edk2-aarch64-code.fd", "/usr/share/qemu/edk2-arm-vars.fd"},
};

static bool is_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The variable store that ships beside a configured code file: the same name with CODE
 * (or code) replaced by VARS (or vars), as OVMF, AAVMF and QEMU's edk2 builds name them. */
static char *sibling_vars(const char *code)
{
	const char *base = strrchr(code, '/');
	base = base ? base + 1 : code;
	const char *pairs[][2] = {{"CODE", "VARS"}, {"code", "vars"}};
	for (size_t i = 0; i < PX_ARRAY_SIZE(pairs); i++) {
		const char *hit = strstr(base, pairs[i][0]);
		if (!hit)
			continue;
		char *v = xasprintf("%.*s%s%s", (int)(hit - code), code, pairs[i][1], hit + 4);
		if (is_file(v))
			return v;
		free(v);
	}
	return NULL;
}

int px_qemu_find_firmware(enum px_arch arch, const char *configured, const char *root,
                          char **ret_code, char **ret_vars, struct px_err **err)
{
	if (configured) {
		if (!is_file(configured))
			return px_err_set(err, PX_EXIT_FAILURE,
			                  "vm.firmware '%s' is not a readable file", configured);
		*ret_vars = sibling_vars(configured);
		*ret_code = xstrdup(configured);
		return 0;
	}
	const struct fw_pair *pairs = arch == PX_ARCH_AARCH64 ? fw_aarch64 : fw_x86_64;
	size_t n = arch == PX_ARCH_AARCH64 ? PX_ARRAY_SIZE(fw_aarch64) : PX_ARRAY_SIZE(fw_x86_64);
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *code = xasprintf("%s%s", root ? root : "", pairs[i].code);
		if (!is_file(code))
			continue;
		char *vars = xasprintf("%s%s", root ? root : "", pairs[i].vars);
		if (!is_file(vars)) {
			free(vars);
			vars = NULL;
		}
		*ret_code = steal_ptr(&code);
		*ret_vars = vars;
		return 0;
	}
	return px_err_set(err, PX_EXIT_FAILURE,
	                  "no UEFI firmware for %s found (install %s, or set vm.firmware)",
	                  px_arch_name(arch),
	                  arch == PX_ARCH_AARCH64 ? "qemu-efi-aarch64" : "ovmf");
}

int px_qemu_init_vars(const char *dst, const char *tmpl, const char *code, struct px_err **err)
{
	if (is_file(dst))
		return 0;
	if (tmpl) {
		_cleanup_free_ char *data = NULL;
		size_t len;
		if (px_file_read(tmpl, 256u << 20, &data, &len, err) < 0)
			return px_err_wrap(err, "firmware variables template");
		return px_atomic_write_file(dst, data, len, 0644, err);
	}
	/* No template: pflash wants the store at the size the code file has. */
	if (!code)
		return px_err_set(err, PX_EXIT_FAILURE, "no firmware code file to size '%s' by",
		                  dst);
	struct stat st;
	if (stat(code, &st) < 0)
		return px_err_errno(err, errno, "cannot stat '%s'", code);
	_cleanup_close_ int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return px_err_errno(err, errno, "cannot create '%s'", dst);
	if (ftruncate(fd, st.st_size) < 0)
		return px_err_errno(err, errno, "cannot size '%s'", dst);
	return 0;
}

bool px_qemu_vhost_vsock_usable(void)
{
	int fd = open("/dev/vhost-vsock", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* A guest CID per instance directory, stable across runs and unlikely to collide with
 * another instance on the same host (CIDs 0-2 are reserved). */
static uint32_t guest_cid(const char *dir)
{
	uint8_t d[PX_SHA256_LEN];
	px_sha256_buf(dir, strlen(dir), d);
	return 3 + (px_get_be32(d) % 0x7ffffff0u);
}

static bool host_is(enum px_arch arch)
{
#if defined(__x86_64__)
	return arch == PX_ARCH_X86_64;
#elif defined(__aarch64__)
	return arch == PX_ARCH_AARCH64;
#else
	(void)arch;
	return false;
#endif
}

static char *beside_manifest(const struct px_manifest *m, const char *path)
{
	return path[0] == '/' ? xstrdup(path) : xasprintf("%s/%s", m->dir, path);
}

/* Chooses the accelerator: what vm.accel asks for, or on auto the fastest that works here. */
static int choose_accel(struct px_vm *vm, const char *qemu, struct px_err **err)
{
	enum px_vm_accel want = vm->m->vm.accel;
	enum px_arch arch = vm->m->arch;
	if (want == PX_ACCEL_TCG) {
		vm->accel = xstrdup("tcg");
		return 0;
	}
#if defined(__APPLE__)
	if (want == PX_ACCEL_KVM)
		return px_err_set(err, PX_EXIT_MANIFEST,
		                  "vm.accel 'kvm' is not available on macOS");
	if (host_is(arch)) {
		vm->accel = xstrdup("hvf");
		return 0;
	}
	if (want == PX_ACCEL_HVF)
		return px_err_set(err, PX_EXIT_MANIFEST,
		                  "vm.accel 'hvf' cannot run a %s guest on this host",
		                  px_arch_name(arch));
	vm->accel = xstrdup("tcg");
	return 0;
#else
	if (want == PX_ACCEL_HVF)
		return px_err_set(err, PX_EXIT_MANIFEST,
		                  "vm.accel 'hvf' is only available on macOS");
	_cleanup_free_ char *why = NULL;
	if (!host_is(arch))
		why = xasprintf("the host cannot run %s guests natively", px_arch_name(arch));
	else if (px_kvm_usable(arch, qemu, vm->inst->dir, &why)) {
		vm->accel = xstrdup("kvm");
		return 0;
	}
	if (want == PX_ACCEL_KVM)
		return px_err_set(err, PX_EXIT_FAILURE,
		                  "vm.accel is 'kvm' but KVM does not work here: %s", why);
	vm->accel = xstrdup("tcg");
	vm->warning =
	        xasprintf("KVM is not usable (%s): falling back to TCG, which is much slower", why);
	return 0;
#endif
}

static int qemu_prepare(struct px_vm *vm, struct px_err **err)
{
	const struct px_manifest *m = vm->m;
	const struct px_instance *in = vm->inst;
	const char *qemu = px_qemu_binary(m->arch);
	if (!px_have_program(qemu))
		return px_err_set(err, PX_EXIT_FAILURE, "'%s' is not installed (vm.backend qemu)",
		                  qemu);
	if (choose_accel(vm, qemu, err) < 0)
		return -1;

	_cleanup_free_ char *code = NULL, *vars = NULL, *kernel = NULL, *initrd = NULL;
	if (m->vm.kernel) {
		kernel = beside_manifest(m, m->vm.kernel);
		initrd = m->vm.initrd ? beside_manifest(m, m->vm.initrd) : NULL;
		const char *files[] = {kernel, initrd};
		for (size_t i = 0; i < PX_ARRAY_SIZE(files); i++) {
			struct stat st;
			if (files[i] && (stat(files[i], &st) < 0 || !S_ISREG(st.st_mode)))
				return px_err_set(err, PX_EXIT_FAILURE,
				                  "vm.%s '%s' is not a readable file",
				                  i == 0 ? "kernel" : "initrd", files[i]);
		}
	} else if (px_qemu_find_firmware(m->arch, m->vm.firmware, "", &code, &vars, err) < 0 ||
	           px_qemu_init_vars(in->efi_vars, vars, code, err) < 0) {
		return -1;
	}

	vm->vsock = px_qemu_vhost_vsock_usable();
	struct px_qemu_opts o = {
	        .arch = m->arch,
	        .binary = qemu,
	        .name = in->name,
	        .accel = vm->accel,
	        .cpus = m->vm.cpus,
	        .memory = m->vm.memory,
	        .firmware_code = code,
	        .firmware_vars = code ? in->efi_vars : NULL,
	        .kernel = kernel,
	        .initrd = initrd,
	        .append = m->vm.cmdline,
	        .disk = vm->disk,
	        .seed = vm->seed,
	        .shared_dir = vm->shared_dir,
	        .console_log = in->console_log,
	        .qmp_sock = in->qmp_sock,
	        .vsock = vm->vsock,
	        .guest_cid = guest_cid(in->dir),
	        .pep_sock = in->pep_sock,
	        .browser_sock = in->browser_sock,
	};
	return px_qemu_argv(&o, &vm->argv, err);
}

static int qemu_powerdown(const struct px_vm *vm, pid_t pid, struct px_err **err)
{
	(void)pid;
	return px_qmp_command(vm->inst->qmp_sock, "system_powerdown", 3000, NULL, err);
}

const struct px_vm_ops px_vm_qemu_ops = {
        .name = "qemu",
        .prepare = qemu_prepare,
        .powerdown = qemu_powerdown,
};
