/* The QEMU backend: the argv (never a NIC, -nodefaults, the virtio-serial channel or
 * vhost-vsock, firmware paths, escaping), firmware lookup and the variable store, and then
 * the argv as QEMU itself takes it: booted under TCG, asked over QMP (our client) which
 * PCI devices it made, and told to quit. The KVM probe's test guest is run under TCG to
 * show it ends the way the probe expects. */
#include <cJSON.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "tap.h"
#include "test-util.h"

#include "core/file.h"
#include "vm/instance.h"
#include "vm/kvm.h"
#include "vm/qemu.h"
#include "vm/qmp.h"
#include "vm/vm.h"

extern char **environ;

static int argv_has(char **v, const char *s)
{
	for (; *v; v++)
		if (strcmp(*v, s) == 0)
			return 1;
	return 0;
}

static int argv_contains(char **v, const char *needle)
{
	for (; *v; v++)
		if (strstr(*v, needle))
			return 1;
	return 0;
}

/* The value after option 'opt', the n-th time it appears (0-based). */
static const char *argv_opt(char **v, const char *opt, int n)
{
	for (; *v && v[1]; v++)
		if (strcmp(*v, opt) == 0 && n-- == 0)
			return v[1];
	return NULL;
}

static struct px_qemu_opts base_opts(void)
{
	return (struct px_qemu_opts){
	        .arch = PX_ARCH_X86_64,
	        .name = "box",
	        .accel = "tcg",
	        .cpus = 2,
	        .memory = 512ULL << 20,
	        .firmware_code = "/fw/OVMF_CODE_4M.fd",
	        .firmware_vars = "/inst/efi-vars.fd",
	        .disk = "/inst/disk.raw",
	        .seed = "/build/seed.iso",
	        .shared_dir = "/work/share",
	        .console_log = "/inst/console.log",
	        .qmp_sock = "/inst/qmp.sock",
	        .pep_sock = "/inst/pep.sock",
	};
}

static void no_network(char **v, const char *what)
{
	static const char *const nets[] = {"-netdev", "-net", "virtio-net", "e1000",  "rtl8139",
	                                   "user,",   "tap,", "vhost-net",  "hostfwd"};
	int found = 0;
	for (size_t i = 0; i < PX_ARRAY_SIZE(nets); i++)
		if (argv_has(v, nets[i]) || argv_contains(v, nets[i]))
			found = 1;
	ok(!found, "%s: no network device or backend anywhere in the argv", what);
	const char *nic = argv_opt(v, "-nic", 0);
	ok(nic && strcmp(nic, "none") == 0 && !argv_opt(v, "-nic", 1),
	   "%s: exactly one -nic, and it is none", what);
	ok(argv_has(v, "-nodefaults"), "%s: -nodefaults", what);
	ok(argv_has(v, "-no-user-config"), "%s: -no-user-config", what);
	ok(argv_has(v, "-no-reboot"), "%s: -no-reboot (a rebooting guest ends the run)", what);
}

/* The browser agent's command port: its own virtio-serial port, QEMU listening. */
static void test_argv_browser_port(void)
{
	struct px_qemu_opts o = base_opts();
	o.browser_sock = "/inst/browser.sock";
	char **v = NULL;
	struct px_err *err = NULL;
	ok(px_qemu_argv(&o, &v, &err) == 0, "argv with a browser port builds");
	ok(argv_has(v, "socket,id=browser,server=on,wait=off,path=/inst/browser.sock"),
	   "QEMU listens on browser.sock without waiting for a client");
	ok(argv_has(v, "virtserialport,bus=vser0.0,chardev=browser,name=pexi.browser"),
	   "the guest sees the port pexi.browser");
	ok(argv_has(v, "virtserialport,bus=vser0.0,chardev=pep,name=pexi.pep"),
	   "the PEP channel is still its own port");
	no_network(v, "with a browser port");
	px_argv_free(v);
	px_err_free(err);
}

static void test_argv_serial(void)
{
	struct px_qemu_opts o = base_opts();
	char **v = NULL;
	struct px_err *err = NULL;
	ok(px_qemu_argv(&o, &v, &err) == 0, "x86_64 argv builds");
	is_str(v[0], "qemu-system-x86_64", "the x86_64 emulator");
	no_network(v, "x86_64 serial");
	is_str(argv_opt(v, "-machine", 0), "q35,accel=tcg", "q35 under TCG");
	is_str(argv_opt(v, "-cpu", 0), "max", "TCG gets -cpu max");
	is_str(argv_opt(v, "-m", 0), "512M", "memory in MiB");
	is_str(argv_opt(v, "-smp", 0), "2", "cpus");
	is_str(argv_opt(v, "-drive", 0),
	       "if=pflash,format=raw,unit=0,readonly=on,file=/fw/OVMF_CODE_4M.fd",
	       "the firmware code is read-only pflash 0");
	is_str(argv_opt(v, "-drive", 1), "if=pflash,format=raw,unit=1,file=/inst/efi-vars.fd",
	       "the instance's variable store is pflash 1");
	like(argv_opt(v, "-drive", 2), "file=/inst/disk.raw,format=raw,if=virtio",
	     "the disk is raw virtio");
	like(argv_opt(v, "-drive", 3), "file=/build/seed.iso,format=raw,if=virtio,readonly=on",
	     "the seed is a read-only virtio drive");
	ok(argv_has(v, "socket,id=pep,path=/inst/pep.sock"),
	   "the channel chardev connects to the PEP socket");
	ok(argv_has(v, "virtserialport,bus=vser0.0,chardev=pep,name=pexi.pep"),
	   "the channel is the virtio-serial port pexi.pep");
	ok(!argv_contains(v, "pexi.browser"), "no browser port unless asked for");
	ok(!argv_contains(v, "vhost-vsock"), "no vhost-vsock without /dev/vhost-vsock");
	ok(argv_has(v, "local,id=workspace,security_model=none,path=/work/share") &&
	           argv_has(v, "virtio-9p-pci,fsdev=workspace,mount_tag=workspace"),
	   "the share is 9p with tag workspace");
	ok(argv_has(v, "file,id=hvc,append=on,path=/inst/console.log") &&
	           argv_has(v, "virtconsole,bus=vser0.0,chardev=hvc"),
	   "hvc0 appends to console.log");
	ok(argv_has(v, "file,id=serial,append=on,path=/inst/console.log") &&
	           argv_has(v, "chardev:serial"),
	   "the serial port appends to console.log too");
	is_str(argv_opt(v, "-qmp", 0), "unix:/inst/qmp.sock,server=on,wait=off", "the QMP socket");
	px_argv_free(v);
}

static void test_argv_vsock_kvm(void)
{
	struct px_qemu_opts o = base_opts();
	o.vsock = true;
	o.guest_cid = 1234;
	o.accel = "kvm";
	o.shared_dir = NULL;
	char **v = NULL;
	struct px_err *err = NULL;
	ok(px_qemu_argv(&o, &v, &err) == 0, "vsock argv builds");
	no_network(v, "vsock");
	ok(argv_has(v, "vhost-vsock-pci,guest-cid=1234"), "vhost-vsock-pci with the guest CID");
	ok(!argv_contains(v, "pexi.pep") && !argv_contains(v, "id=pep"),
	   "no virtio-serial channel when vsock is used");
	is_str(argv_opt(v, "-cpu", 0), "host", "KVM gets -cpu host");
	is_str(argv_opt(v, "-machine", 0), "q35,accel=kvm", "q35 under KVM");
	ok(!argv_contains(v, "9p") && !argv_has(v, "-fsdev"), "no share when none is configured");
	px_argv_free(v);
}

static void test_argv_aarch64_kernel(void)
{
	struct px_qemu_opts o = base_opts();
	o.arch = PX_ARCH_AARCH64;
	o.firmware_code = "/usr/share/AAVMF/AAVMF_CODE.fd";
	o.firmware_vars = "/inst/efi-vars.fd";
	char **v = NULL;
	struct px_err *err = NULL;
	ok(px_qemu_argv(&o, &v, &err) == 0, "aarch64 argv builds");
	is_str(v[0], "qemu-system-aarch64", "the aarch64 emulator");
	is_str(argv_opt(v, "-machine", 0), "virt,accel=tcg", "virt for aarch64");
	like(argv_opt(v, "-drive", 0), "file=/usr/share/AAVMF/AAVMF_CODE.fd", "AAVMF code");
	no_network(v, "aarch64");
	px_argv_free(v);

	o.kernel = "/k/vmlinuz";
	o.initrd = "/k/initrd";
	o.append = "console=ttyAMA0 root=/dev/vda2";
	ok(px_qemu_argv(&o, &v, &err) == 0, "direct kernel boot argv builds");
	is_str(argv_opt(v, "-kernel", 0), "/k/vmlinuz", "-kernel");
	is_str(argv_opt(v, "-initrd", 0), "/k/initrd", "-initrd");
	is_str(argv_opt(v, "-append", 0), "console=ttyAMA0 root=/dev/vda2", "-append");
	ok(!argv_contains(v, "pflash"), "no firmware with direct kernel boot");
	no_network(v, "kernel boot");
	px_argv_free(v);
}

static void test_argv_escaping(void)
{
	struct px_qemu_opts o = base_opts();
	o.disk = "/a,b/disk.raw";
	o.shared_dir = "/x,y";
	char **v = NULL;
	struct px_err *err = NULL;
	ok(px_qemu_argv(&o, &v, &err) == 0, "argv with commas in paths builds");
	like(argv_opt(v, "-drive", 2), "file=/a,,b/disk.raw,format=raw",
	     "a comma in the disk path is doubled");
	ok(argv_has(v, "local,id=workspace,security_model=none,path=/x,,y"),
	   "a comma in the share path is doubled");
	px_argv_free(v);
	o = base_opts();
	o.pep_sock = NULL;
	ok(px_qemu_argv(&o, &v, &err) < 0 && err, "no channel at all is refused");
	like(err ? err->msg : NULL, "no channel", "and says so");
	px_err_clear(&err);
}

static void touch(const char *path, size_t size)
{
	_cleanup_free_ char *dir = xstrdup(path);
	*strrchr(dir, '/') = '\0';
	px_mkdir_p(dir, 0755, NULL);
	_cleanup_free_ char *data = xcalloc(1, size + 1);
	memset(data, 'v', size);
	px_atomic_write_file(path, data, size, 0644, NULL);
}

static void test_firmware(void)
{
	struct px_err *err = NULL;
	char *code = NULL, *vars = NULL;
	_cleanup_free_ char *root = path_in("root");
	ok(px_qemu_find_firmware(PX_ARCH_X86_64, NULL, root, &code, &vars, &err) < 0,
	   "no firmware under an empty root is an error");
	like(err ? err->msg : NULL, "install ovmf", "which names the package to install");
	px_err_clear(&err);

	_cleanup_free_ char *c4 = xasprintf("%s/usr/share/OVMF/OVMF_CODE_4M.fd", root);
	_cleanup_free_ char *v4 = xasprintf("%s/usr/share/OVMF/OVMF_VARS_4M.fd", root);
	_cleanup_free_ char *c2 = xasprintf("%s/usr/share/OVMF/OVMF_CODE.fd", root);
	touch(c2, 100);
	touch(c4, 300);
	touch(v4, 200);
	ok(px_qemu_find_firmware(PX_ARCH_X86_64, NULL, root, &code, &vars, &err) == 0,
	   "OVMF found");
	is_str(code, c4, "the 4M build is preferred");
	is_str(vars, v4, "with its variable template");
	free(code);
	free(vars);

	ok(px_qemu_find_firmware(PX_ARCH_X86_64, c2, root, &code, &vars, &err) == 0,
	   "a configured firmware is used as given");
	is_str(code, c2, "the configured code file");
	ok(vars == NULL, "no OVMF_VARS.fd beside it: no template");
	free(code);
	free(vars);
	ok(px_qemu_find_firmware(PX_ARCH_X86_64, c4, root, &code, &vars, &err) == 0 &&
	           px_streq(vars, v4),
	   "a configured CODE file finds its VARS sibling");
	free(code);
	free(vars);
	ok(px_qemu_find_firmware(PX_ARCH_AARCH64, "/nonexistent/fw.fd", root, &code, &vars, &err) <
	           0,
	   "a configured firmware that does not exist is an error");
	px_err_clear(&err);

	_cleanup_free_ char *dst = path_in("vars-a.fd");
	ok(px_qemu_init_vars(dst, v4, c4, &err) == 0, "vars from the template");
	struct stat st;
	ok(stat(dst, &st) == 0 && st.st_size == 200, "the copy has the template's size");
	touch(v4, 50);
	ok(px_qemu_init_vars(dst, v4, c4, &err) == 0 && stat(dst, &st) == 0 && st.st_size == 200,
	   "an existing store is kept (firmware settings persist)");
	_cleanup_free_ char *dst2 = path_in("vars-b.fd");
	ok(px_qemu_init_vars(dst2, NULL, c4, &err) == 0 && stat(dst2, &st) == 0 &&
	           st.st_size == 300,
	   "without a template the store is empty at the code's size");
}

static int listen_unix(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0)
		return -1;
	return fd;
}

/* Counts PCI devices of a class in a query-pci answer. */
static int count_class(cJSON *buses, int cls)
{
	int n = 0;
	cJSON *bus;
	cJSON_ArrayForEach(bus, buses)
	{
		cJSON *dev;
		cJSON_ArrayForEach(dev, cJSON_GetObjectItem(bus, "devices"))
		{
			cJSON *ci = cJSON_GetObjectItem(dev, "class_info");
			cJSON *c = ci ? cJSON_GetObjectItem(ci, "class") : NULL;
			if (cJSON_IsNumber(c) && c->valueint == cls)
				n++;
		}
	}
	return n;
}

static int count_virtio(cJSON *buses, int device_id)
{
	int n = 0;
	cJSON *bus;
	cJSON_ArrayForEach(bus, buses)
	{
		cJSON *dev;
		cJSON_ArrayForEach(dev, cJSON_GetObjectItem(bus, "devices"))
		{
			cJSON *id = cJSON_GetObjectItem(dev, "id");
			cJSON *d = id ? cJSON_GetObjectItem(id, "device") : NULL;
			if (cJSON_IsNumber(d) && d->valueint == device_id)
				n++;
		}
	}
	return n;
}

/* Boots the argv under TCG with OVMF and asks QEMU what it built. */
static void test_qemu_runs_argv(void)
{
	if (!px_have_program("qemu-system-x86_64")) {
		ok(1, "# SKIP qemu-system-x86_64 is not installed");
		return;
	}
	char *code = NULL, *vars = NULL;
	struct px_err *err = NULL;
	if (px_qemu_find_firmware(PX_ARCH_X86_64, NULL, "", &code, &vars, &err) < 0) {
		ok(1, "# SKIP %s", err->msg);
		px_err_clear(&err);
		return;
	}
	_cleanup_free_ char *disk = path_in("disk.raw"), *seed = path_in("seed.iso"),
	                    *share = path_in("share"), *con = path_in("console.log"),
	                    *qmp = path_in("qmp.sock"), *pep = path_in("pep.sock"),
	                    *efivars = path_in("efi-vars.fd");
	touch(disk, 1 << 20);
	touch(seed, 1 << 16);
	px_mkdir_p(share, 0755, NULL);
	ok(px_qemu_init_vars(efivars, vars, code, &err) == 0, "the instance's variable store");
	_cleanup_close_ int pep_fd = listen_unix(pep);
	ok(pep_fd >= 0, "a listener stands for the PEP socket");

	struct px_qemu_opts o = base_opts();
	o.firmware_code = code;
	o.firmware_vars = efivars;
	o.disk = disk;
	o.seed = seed;
	o.shared_dir = share;
	o.console_log = con;
	o.qmp_sock = qmp;
	o.pep_sock = pep;
	o.memory = 256ULL << 20;
	o.cpus = 1;
	char **v = NULL;
	ok(px_qemu_argv(&o, &v, &err) == 0, "argv for a real run");
	pid_t pid;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, STDOUT_FILENO);
	int rc = posix_spawnp(&pid, v[0], &fa, NULL, v, environ);
	posix_spawn_file_actions_destroy(&fa);
	ok(rc == 0, "QEMU started");

	/* QEMU connects to the PEP socket at start-up: the channel is wired. */
	struct pollfd p = {pep_fd, POLLIN, 0};
	ok(poll(&p, 1, 20000) == 1, "QEMU connected the pexi.pep chardev to the PEP socket");
	_cleanup_close_ int chan = accept4(pep_fd, NULL, NULL, SOCK_CLOEXEC);

	char *pci = NULL;
	for (int i = 0; i < 200 && !pci; i++) {
		if (px_qmp_command(qmp, "query-pci", 3000, &pci, &err) < 0) {
			px_err_clear(&err);
			poll(NULL, 0, 50);
		}
	}
	ok(pci != NULL, "QMP answered query-pci");
	cJSON *buses = pci ? cJSON_Parse(pci) : NULL;
	is_int(count_class(buses, 0x0200), 0, "QEMU made no Ethernet controller");
	is_int(count_class(buses, 0x0280), 0, "and no other network controller");
	/* Virtio PCI device ids: 0x1001 block (transitional), 0x1003 console (serial),
	 * 0x1005 rng, 0x1009 9p. */
	is_int(count_virtio(buses, 0x1001), 2, "two virtio block devices: disk and seed");
	is_int(count_virtio(buses, 0x1003), 1, "one virtio-serial controller");
	is_int(count_virtio(buses, 0x1009), 1, "one virtio 9p device");
	is_int(count_virtio(buses, 0x1005), 1, "one virtio rng");
	cJSON_Delete(buses);
	free(pci);

	ok(px_qmp_command(qmp, "quit", 5000, NULL, &err) == 0 || err, "QMP quit sent");
	px_err_clear(&err);
	int status = 0;
	for (int i = 0; i < 500 && waitpid(pid, &status, WNOHANG) == 0; i++)
		poll(NULL, 0, 20);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "QEMU quit on QMP's word");
	kill(pid, SIGKILL);
	waitpid(pid, NULL, WNOHANG);

	struct px_err *e2 = NULL;
	ok(px_qmp_command(qmp, "system_powerdown", 1000, NULL, &e2) < 0,
	   "QMP to a QEMU that is gone fails");
	like(e2 ? e2->msg : NULL, "cannot connect to QMP", "and says it cannot connect");
	px_err_free(e2);
	px_argv_free(v);
	free(code);
	free(vars);
}

static void test_probe_guest(void)
{
	char *why = NULL;
	if (px_have_program("qemu-system-x86_64")) {
		int rc = px_kvm_probe_guest(PX_ARCH_X86_64, "qemu-system-x86_64", "tcg", tmpdir,
		                            20000, &why);
		ok(rc == 0, "the x86_64 probe guest ends QEMU as the probe expects (TCG)");
		if (why)
			printf("# %s\n", why);
		free(why);
		why = NULL;
	} else {
		ok(1, "# SKIP qemu-system-x86_64 is not installed");
	}
	if (px_have_program("qemu-system-aarch64")) {
		int rc = px_kvm_probe_guest(PX_ARCH_AARCH64, "qemu-system-aarch64", "tcg", tmpdir,
		                            20000, &why);
		ok(rc == 0, "the aarch64 probe guest powers off through PSCI (TCG)");
		if (why)
			printf("# %s\n", why);
		free(why);
		why = NULL;
	} else {
		ok(1, "# SKIP qemu-system-aarch64 is not installed");
	}
	/* Whatever this host says about KVM, the answer comes with a reason when negative,
	 * and the probe does not hang. */
	int64_t t0 = px_mono_ms();
	bool usable = px_kvm_usable(PX_ARCH_X86_64, "qemu-system-x86_64", tmpdir, &why);
	ok(px_mono_ms() - t0 < 15000, "the KVM probe answers within its timeout");
	ok(usable || (why && *why), "an unusable KVM comes with a reason");
	printf("# KVM here: %s%s%s\n", usable ? "usable" : "not usable", why ? ": " : "",
	       why ? why : "");
	free(why);
}

int main(void)
{
	tu_mkdtemp("test-vm-qemu");
	test_argv_serial();
	test_argv_browser_port();
	test_argv_vsock_kvm();
	test_argv_aarch64_kernel();
	test_argv_escaping();
	test_firmware();
	test_qemu_runs_argv();
	test_probe_guest();
	tu_rm_tmpdir();
	return done_testing();
}
