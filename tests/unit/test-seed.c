/* The seed ISO, checked only by independent consumers: isoinfo (genisoimage), blkid
 * (util-linux), xorriso/osirrox (libisoburn), the Linux isofs driver through a loop device,
 * and Debian's cloud-init NoCloud datasource reading our instance-id and user-data back. */
#include <time.h>

#include <cJSON.h>

#include "core/common.h"

#include "core/file.h"
#include "core/sha256.h"
#include "core/spawn.h"
#include "image/cloudinit.h"
#include "image/seed.h"
#include "manifest/manifest.h"
#include "tap.h"
#include "test-util.h"

#define PYTHON "/usr/bin/python3"
#define EPOCH  1700000000 /* 2023-11-14 22:13:20 UTC */

static void skip(const char *why)
{
	tap_count++;
	printf("ok %d # SKIP %s\n", tap_count, why);
}

static bool file_equals(const char *path, const char *want)
{
	char *data = NULL;
	size_t len = 0;
	struct px_err *err = NULL;
	if (px_file_read(path, 1 << 20, &data, &len, &err) < 0) {
		printf("# %s\n", err->msg);
		px_err_free(err);
		return false;
	}
	bool same = len == strlen(want) && memcmp(data, want, len) == 0;
	free(data);
	return same;
}

static char *digest(const char *path)
{
	char hex[PX_SHA256_HEX];
	struct px_err *err = NULL;
	if (px_sha256_file_hex(path, hex, &err) < 0) {
		px_err_free(err);
		return xstrdup("(unreadable)");
	}
	return xstrdup(hex);
}

static void manifest(struct px_manifest *m)
{
	static char *keys[] = {"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG0 user@host"};
	static char *runcmd[] = {"echo 'hello: world' > /tmp/hello"};
	static struct px_write_file files[] = {
	        {"/etc/motd", "welcome\n# to the sandbox\n", "0644", NULL},
	};
	memset(m, 0, sizeof(*m));
	m->path = "pexi.yml";
	m->name = "sandbox";
	m->cloud_init.user = "pexi";
	m->cloud_init.ssh_keys.v = keys;
	m->cloud_init.ssh_keys.n = 1;
	m->cloud_init.runcmd.v = runcmd;
	m->cloud_init.runcmd.n = 1;
	m->cloud_init.write_files = files;
	m->cloud_init.n_write_files = 1;
	m->cloud_init.network_config = "version: 2\nethernets: {}\n";
	m->vm.shared_dir = "/home/me/work";
}

static int write_seed(const struct px_seed_content *c, int64_t epoch, const char *path)
{
	struct px_err *err = NULL;
	int r = px_seed_write(c, epoch, path, &err);
	if (r < 0) {
		printf("# %s\n", err->msg);
		px_err_free(err);
	}
	return r;
}

static void test_isoinfo(const char *iso, const struct px_seed_content *c)
{
	const char *d[] = {"isoinfo", "-d", "-i", iso, NULL};
	_cleanup_free_ char *out = run_out(d);
	like(out, "Volume id: cidata\n", "isoinfo: volume id is lowercase cidata");
	like(out, "Rock Ridge signatures", "isoinfo: Rock Ridge present");
	like(out, "Joliet with UCS level 3", "isoinfo: Joliet escape sequences present");

	const char *names[] = {"/meta-data", "/user-data", "/network-config"};
	const char *want[] = {c->meta_data, c->user_data, c->network_config};
	for (int i = 0; i < 3; i++) {
		_cleanup_free_ char *dst = xasprintf("%s/x%d", tmpdir, i);
		const char *x[] = {"sh", "-c",     "isoinfo -R -x \"$1\" -i \"$2\" > \"$3\"",
		                   "sh", names[i], iso,
		                   dst,  NULL};
		_cleanup_free_ char *o = run_out(x);
		ok(o && file_equals(dst, want[i]), "isoinfo -R -x %s: byte-identical", names[i]);
		const char *j[] = {"sh", "-c",     "isoinfo -J -x \"$1\" -i \"$2\" > \"$3\"",
		                   "sh", names[i], iso,
		                   dst,  NULL};
		_cleanup_free_ char *o2 = run_out(j);
		ok(o2 && file_equals(dst, want[i]), "isoinfo -J -x %s (Joliet): byte-identical",
		   names[i]);
	}

	const char *l[] = {"isoinfo", "-R", "-l", "-i", iso, NULL};
	_cleanup_free_ char *ls = run_out(l);
	like(ls, "-rw-r--r--   1    0    0", "Rock Ridge: files 0644 owned by 0:0");
	like(ls, "drwxr-xr-x   1    0    0", "Rock Ridge: directories 0755 owned by 0:0");
	like(ls, "Nov 14 2023", "file dates are the epoch");
}

/* The Joliet supplementary volume descriptor (sector 17) carries the volume id in UCS-2
 * big-endian; AVF reads that one, so it must be lowercase too. Decoded by hand from the
 * layout in ECMA-119 8.5 rather than by pexi code. */
static void test_joliet_volume_id(const char *iso)
{
	char *data = NULL;
	size_t len = 0;
	struct px_err *err = NULL;
	if (px_file_read(iso, 16 << 20, &data, &len, &err) < 0) {
		px_err_free(err);
		ok(0, "read the image");
		return;
	}
	const unsigned char *svd = (const unsigned char *)data + 17 * 2048;
	bool is_svd = len >= 18 * 2048 && svd[0] == 2 && memcmp(svd + 1, "CD001", 5) == 0 &&
	              memcmp(svd + 88, "%/E", 3) == 0;
	ok(is_svd, "sector 17 is the Joliet descriptor (UCS-2 level 3)");
	char id[17] = "";
	for (int i = 0; is_svd && i < 16; i++)
		id[i] = svd[40 + 2 * i] == 0 ? (char)svd[41 + 2 * i] : '?';
	is_str(id, "cidata          ", "Joliet volume id is lowercase cidata");
	free(data);
}

static void test_blkid_xorriso(const char *iso, const char *iso_without_nc)
{
	const char *b[] = {"blkid", "-p", "-o", "export", iso, NULL};
	_cleanup_free_ char *out = run_out(b);
	like(out, "\nLABEL=cidata\n", "blkid: LABEL=cidata");
	like(out, "\nTYPE=iso9660\n", "blkid: TYPE=iso9660");

	const char *f[] = {"xorriso", "-indev", iso, "-find", "/", NULL};
	_cleanup_free_ char *find = run_out(f);
	like(find, "'/meta-data'\n", "xorriso -find lists /meta-data");
	like(find, "'/user-data'\n", "xorriso -find lists /user-data");
	like(find, "'/network-config'\n", "xorriso -find lists /network-config");

	const char *f2[] = {"xorriso", "-indev", iso_without_nc, "-find", "/", NULL};
	_cleanup_free_ char *find2 = run_out(f2);
	ok(find2 && strstr(find2, "'/user-data'") && !strstr(find2, "network-config"),
	   "without network-config the file is absent");

	const char *p[] = {"xorriso", "-indev", iso, "-pvd_info", NULL};
	_cleanup_free_ char *pvd = run_out(p);
	like(pvd, "Creation Time: 2023111422132000", "PVD creation time is the epoch (GMT)");
	like(pvd, "Modif. Time  : 2023111422132000", "PVD modification time is the epoch");
}

/* Debian's cloud-init NoCloud datasource, fed either a seed directory (cloud_dir/seed/
 * nocloud) or, with dev set, the block device it finds by label and mounts itself. */
static cJSON *nocloud_read(const char *cloud_dir, const char *dev)
{
	const char *script =
	        "import sys, json\n"
	        "from cloudinit import helpers\n"
	        "from cloudinit.sources.DataSourceNoCloud import DataSourceNoCloud\n"
	        "cloud_dir, dev = sys.argv[1], sys.argv[2]\n"
	        "paths = helpers.Paths({'cloud_dir': cloud_dir, 'run_dir': cloud_dir + '/run'})\n"
	        "ds = DataSourceNoCloud({}, None, paths)\n"
	        "if dev:\n"
	        "    ds._get_devices = lambda label: [dev]\n"
	        "ok = ds.get_data()\n"
	        "ud = ds.userdata_raw\n"
	        "if isinstance(ud, str): ud = ud.encode()\n"
	        "print(json.dumps({'ok': ok, 'seed': ds.seed,\n"
	        "    'instance_id': ds.get_instance_id(),\n"
	        "    'hostname': ds.metadata.get('local-hostname'),\n"
	        "    'user_data_hex': ud.hex(), 'network_config': ds.network_config}))\n";
	const char *argv[] = {PYTHON, "-c", script, cloud_dir, dev ? dev : "", NULL};
	_cleanup_free_ char *out = run_out(argv);
	return out ? cJSON_Parse(out) : NULL;
}

static char *hex(const char *s)
{
	size_t n = strlen(s);
	char *h = xmalloc(2 * n + 1);
	for (size_t i = 0; i < n; i++)
		snprintf(h + 2 * i, 3, "%02x", (unsigned char)s[i]);
	h[2 * n] = '\0';
	return h;
}

static void check_nocloud(cJSON *j, const struct px_seed_content *c, const char *how)
{
	_cleanup_free_ char *ud_hex = hex(c->user_data);
	ok(cJSON_IsTrue(cJSON_GetObjectItem(j, "ok")), "%s: NoCloud found the seed", how);
	const cJSON *iid = cJSON_GetObjectItem(j, "instance_id");
	is_str(cJSON_IsString(iid) ? iid->valuestring : NULL, c->instance_id,
	       "NoCloud returns our instance-id");
	const cJSON *host = cJSON_GetObjectItem(j, "hostname");
	is_str(cJSON_IsString(host) ? host->valuestring : NULL, "sandbox",
	       "NoCloud returns our local-hostname");
	const cJSON *ud = cJSON_GetObjectItem(j, "user_data_hex");
	ok(cJSON_IsString(ud) && strcmp(ud->valuestring, ud_hex) == 0,
	   "NoCloud returns our user-data byte for byte");
	const cJSON *nc = cJSON_GetObjectItem(j, "network_config");
	const cJSON *v = cJSON_GetObjectItem(nc, "version");
	ok(cJSON_IsNumber(v) && v->valueint == 2, "NoCloud returns our network-config");
}

static void test_nocloud_extracted(const char *iso, const struct px_seed_content *c)
{
	_cleanup_free_ char *cloud_dir = xasprintf("%s/cloud", tmpdir);
	_cleanup_free_ char *seed_dir = xasprintf("%s/seed/nocloud", cloud_dir);
	struct px_err *err = NULL;
	if (px_mkdir_p(cloud_dir, 0755, &err) < 0) {
		px_err_free(err);
		ok(0, "create %s", cloud_dir);
		return;
	}
	const char *x[] = {"osirrox", "-indev", iso, "-extract", "/", seed_dir, NULL};
	_cleanup_free_ char *out = run_out(x);
	ok(out != NULL, "osirrox extracts the image");

	/* Rock Ridge times came through: the epoch, not the time of writing. */
	_cleanup_free_ char *ud = xasprintf("%s/user-data", seed_dir);
	struct stat st;
	ok(stat(ud, &st) == 0 && st.st_mtime == EPOCH, "extracted user-data mtime is the epoch");

	cJSON *j = nocloud_read(cloud_dir, NULL);
	check_nocloud(j, c, "seed directory");
	cJSON_Delete(j);
}

static bool kernel_has_iso9660(void)
{
	char *data = NULL;
	struct px_err *err = NULL;
	if (px_file_read("/proc/filesystems", 1 << 20, &data, NULL, &err) < 0) {
		px_err_free(err);
		return false;
	}
	bool yes = strstr(data, "\tiso9660\n") != NULL;
	free(data);
	return yes;
}

/* cloud-init's own device discovery: blkid finds the loop device by TYPE and LABEL. */
static void test_nocloud_label(const char *dev)
{
	const char *script =
	        "import sys\n"
	        "from cloudinit import helpers\n"
	        "from cloudinit.sources.DataSourceNoCloud import DataSourceNoCloud\n"
	        "ds = DataSourceNoCloud({}, None, helpers.Paths({}))\n"
	        "print('found' if sys.argv[1] in ds._get_devices('cidata') else 'missing')\n";
	const char *argv[] = {PYTHON, "-c", script, dev, NULL};
	_cleanup_free_ char *out = run_out(argv);
	is_str(out, "found\n", "NoCloud's device discovery finds the loop device by label");
}

static void test_nocloud_loop(const char *iso, const struct px_seed_content *c)
{
	if (geteuid() != 0) {
		skip("loop device tests need root");
		return;
	}
	const char *lo[] = {"losetup", "--find", "--show", "--read-only", iso, NULL};
	_cleanup_free_ char *dev = run_out(lo);
	if (!dev) {
		skip("no loop device available (losetup failed)");
		return;
	}
	dev[strcspn(dev, "\n")] = '\0';
	test_nocloud_label(dev);

	if (kernel_has_iso9660()) {
		_cleanup_free_ char *cloud_dir = xasprintf("%s/cloud-loop", tmpdir);
		struct px_err *err = NULL;
		px_mkdir_p(cloud_dir, 0755, &err);
		px_err_free(err);
		cJSON *j = nocloud_read(cloud_dir, dev);
		const cJSON *seed = cJSON_GetObjectItem(j, "seed");
		is_str(cJSON_IsString(seed) ? seed->valuestring : NULL, dev,
		       "NoCloud mounted and read the loop device");
		check_nocloud(j, c, "loop device (Linux isofs)");
		cJSON_Delete(j);
	}
	/* Without iso9660 in this kernel nothing is skipped here: the Linux isofs read-back of
	 * the seed lives in tests/cli/t0600-seed-isofs.sh, which boots a kernel that has it. */

	const char *detach[] = {"losetup", "-d", dev, NULL};
	_cleanup_free_ char *o = run_out(detach);
}

static void test_determinism(const struct px_seed_content *c, const char *iso)
{
	_cleanup_free_ char *again = xasprintf("%s/again.iso", tmpdir);
	_cleanup_free_ char *later = xasprintf("%s/later.iso", tmpdir);
	/* A second later, so any wall-clock time that leaked into the image would differ. */
	usleep(1100 * 1000);
	ok(write_seed(c, EPOCH, again) == 0, "write the same seed again");
	_cleanup_free_ char *d1 = digest(iso), *d2 = digest(again);
	is_str(d2, d1, "same content and epoch: identical sha256");
	/* Another time zone on the build machine changes nothing either. */
	_cleanup_free_ char *tz = xasprintf("%s/tz.iso", tmpdir);
	setenv("TZ", "America/St_Johns", 1); /* UTC-3:30, not a whole hour */
	tzset();
	ok(write_seed(c, EPOCH, tz) == 0, "write under another TZ");
	unsetenv("TZ");
	tzset();
	_cleanup_free_ char *d4 = digest(tz);
	is_str(d4, d1, "the time zone does not leak into the image");
	ok(write_seed(c, EPOCH + 86400, later) == 0, "write with another epoch");
	_cleanup_free_ char *d3 = digest(later);
	ok(!px_streq(d1, d3), "another epoch gives other bytes");
	printf("# seed sha256 %s\n", d1);
}

static void test_errors(const struct px_seed_content *c, const char *iso)
{
	struct px_err *err = NULL;
	_cleanup_free_ char *before = digest(iso);
	ok(px_seed_write(c, -5, iso, &err) < 0, "a negative epoch is refused");
	like(err ? err->msg : NULL, iso, "the error names the output");
	px_err_clear(&err);
	_cleanup_free_ char *after = digest(iso);
	is_str(after, before, "the earlier seed is left intact");

	_cleanup_free_ char *missing = xasprintf("%s/no/such/dir/seed.iso", tmpdir);
	ok(px_seed_write(c, EPOCH, missing, &err) < 0, "a missing directory fails");
	like(err ? err->msg : NULL, "seed.iso", "naming the file");
	px_err_free(err);

	const char *ls[] = {"ls", "-A", tmpdir, NULL};
	_cleanup_free_ char *out = run_out(ls);
	ok(out && !strstr(out, ".tmp"), "no temporary file is left behind");
}

int main(void)
{
	const char *tools[] = {"isoinfo", "blkid", "xorriso", "osirrox"};
	for (size_t i = 0; i < PX_ARRAY_SIZE(tools); i++)
		tu_require(tools[i]);
	const char *probe[] = {PYTHON, "-c", "import cloudinit.sources.DataSourceNoCloud", NULL};
	struct px_err *err = NULL;
	if (access(PYTHON, X_OK) != 0 || px_run(probe, NULL, &err) < 0) {
		px_err_free(err);
		printf("# needs Debian's cloud-init for %s\n", PYTHON);
		return 77;
	}
	tu_mkdtemp("pexi-seed");

	struct px_manifest m;
	manifest(&m);
	struct px_seed_content c = {0}, c2 = {0};
	if (px_cloudinit_render(&m, NULL, &c, &err) < 0) {
		printf("# %s\n", err->msg);
		return 1;
	}
	m.cloud_init.network_config = NULL;
	if (px_cloudinit_render(&m, NULL, &c2, &err) < 0) {
		printf("# %s\n", err->msg);
		return 1;
	}
	_cleanup_free_ char *iso = xasprintf("%s/seed.iso", tmpdir);
	_cleanup_free_ char *iso2 = xasprintf("%s/seed-no-nc.iso", tmpdir);
	ok(write_seed(&c, EPOCH, iso) == 0, "px_seed_write");
	ok(write_seed(&c2, EPOCH, iso2) == 0, "px_seed_write without network-config");

	test_isoinfo(iso, &c);
	test_joliet_volume_id(iso);
	test_blkid_xorriso(iso, iso2);
	test_nocloud_extracted(iso, &c);
	test_nocloud_loop(iso, &c);
	test_determinism(&c, iso);
	test_errors(&c, iso);

	px_seed_content_free(&c);
	px_seed_content_free(&c2);
	tu_rm_tmpdir();
	return done_testing();
}
