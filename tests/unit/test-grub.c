/* px_grub_set_console on tricky grub.cfg texts: each case gives the input and the exact
 * output expected, byte for byte. */
#include "core/common.h"

#include "image/grub.h"
#include "manifest/manifest.h"
#include "tap.h"

static void check_extra(const char *name, const char *in, size_t in_len, const char *console,
                        const struct px_strv *extra, const char *want, size_t want_len)
{
	struct px_err *err = NULL;
	char *out = NULL;
	size_t out_len = 0;
	int r = px_grub_set_console(in, in_len, console, extra, &out, &out_len, &err);
	if (!ok(r == 0 && out && out_len == want_len && memcmp(out, want, out_len) == 0, "%s",
	        name)) {
		printf("#   r=%d err=%s\n", r, err ? err->msg : "-");
		printf("#   got:      '%s'\n#   expected: '%s'\n", out ? out : "(null)", want);
	}
	free(out);
	px_err_free(err);
}

static void check(const char *name, const char *in, const char *console, const char *want)
{
	check_extra(name, in, strlen(in), console, NULL, want, strlen(want));
}

static void refuse(const char *name, const char *in, const char *console,
                   const struct px_strv *extra, const char *fragment)
{
	struct px_err *err = NULL;
	char *out = (char *)"untouched";
	size_t out_len = 42;
	int r = px_grub_set_console(in, strlen(in), console, extra, &out, &out_len, &err);
	ok(r < 0 && px_streq(out, "untouched") && out_len == 42, "%s is refused", name);
	like(err ? err->msg : NULL, fragment, "message says why");
	px_err_free(err);
}

int main(void)
{
	check("replaces console= in place", "linux /vmlinuz root=/dev/vda ro console=ttyS0 quiet\n",
	      "hvc0", "linux /vmlinuz root=/dev/vda ro console=hvc0 quiet\n");
	check("keeps tabs and leading blanks",
	      "menuentry 'x' {\n\tlinux\t/vmlinuz\troot=x\t\tconsole=ttyS0\n}\n", "hvc0",
	      "menuentry 'x' {\n\tlinux\t/vmlinuz\troot=x\t\tconsole=hvc0\n}\n");
	check("CRLF line endings are kept, the CR stays at the end",
	      "set timeout=1\r\nlinux /vmlinuz ro\r\ninitrd /initrd\r\n", "hvc0",
	      "set timeout=1\r\nlinux /vmlinuz ro console=hvc0\r\ninitrd /initrd\r\n");
	check("console= twice becomes exactly one",
	      "  linux /k console=tty0 ro console=ttyS0,115200n8 quiet\n", "hvc0",
	      "  linux /k console=hvc0 ro quiet\n");
	check("linux16 and linuxefi are Linux command lines too",
	      "linux16 /k console=ttyS0\nlinuxefi /k ro\nlinuxfoo /k console=ttyS0\n", "hvc0",
	      "linux16 /k console=hvc0\nlinuxefi /k ro console=hvc0\nlinuxfoo /k console=ttyS0\n");
	check("no trailing newline", "linux /k root=x", "hvc0", "linux /k root=x console=hvc0");
	check("no trailing newline with CR", "linux /k root=x\r", "hvc0",
	      "linux /k root=x console=hvc0\r");
	check("comments mentioning linux are left alone",
	      "# linux /k console=ttyS0\n  #linux console=ttyS0\nlinux /k\n", "hvc0",
	      "# linux /k console=ttyS0\n  #linux console=ttyS0\nlinux /k console=hvc0\n");
	check("a trailing comment keeps its place after the arguments",
	      "linux /k ro   # console=ttyS0 here\n", "hvc0",
	      "linux /k ro console=hvc0   # console=ttyS0 here\n");
	check("xconsole= and quoted console= are other words",
	      "linux /k xconsole=ttyS0 'console=ttyS1' a#console=x\n", "hvc0",
	      "linux /k xconsole=ttyS0 'console=ttyS1' a#console=x console=hvc0\n");
	check("quoted blanks do not split words", "linux /k \"a b\" console=ttyS0 c\\ d\n", "hvc0",
	      "linux /k \"a b\" console=hvc0 c\\ d\n");
	check("trailing blanks stay after the inserted argument", "linux /k ro \t\n", "hvc0",
	      "linux /k ro console=hvc0 \t\n");
	check("a bare linux command gets the argument", "linux\n", "hvc0", "linux console=hvc0\n");
	check("NULL console leaves console= alone", "linux /k console=ttyS0 console=tty0\n", NULL,
	      "linux /k console=ttyS0 console=tty0\n");

	/* The fixture's grub.cfg shape: two menu entries. */
	check("several linux lines, everything else byte for byte",
	      "set timeout=1\n\nmenuentry 'A' {\n\techo 'Loading linux'\n"
	      "\tlinux /boot/vmlinuz-virt root=UUID=1 ro console=ttyS0 rootfstype=ext4\n"
	      "\tinitrd /boot/initramfs-virt\n}\nmenuentry 'B' {\n"
	      "\tlinux /boot/vmlinuz-virt root=UUID=1 ro single console=ttyS0\n}\n",
	      "hvc0",
	      "set timeout=1\n\nmenuentry 'A' {\n\techo 'Loading linux'\n"
	      "\tlinux /boot/vmlinuz-virt root=UUID=1 ro console=hvc0 rootfstype=ext4\n"
	      "\tinitrd /boot/initramfs-virt\n}\nmenuentry 'B' {\n"
	      "\tlinux /boot/vmlinuz-virt root=UUID=1 ro single console=hvc0\n}\n");

	char *ea[] = {(char *)"quiet", (char *)"panic=5", (char *)"quiet"};
	struct px_strv extra = {ea, 3};
	check_extra("extra arguments appended once, not duplicated",
	            "linux /k quiet console=ttyS0\nlinux /k\n",
	            strlen("linux /k quiet console=ttyS0\nlinux /k\n"), "hvc0", &extra,
	            "linux /k quiet console=hvc0 panic=5\nlinux /k console=hvc0 quiet panic=5\n",
	            strlen("linux /k quiet console=hvc0 panic=5\nlinux /k console=hvc0 quiet "
	                   "panic=5\n"));
	char *ec[] = {(char *)"console=tty0", (char *)"console=hvc0"};
	struct px_strv extra_console = {ec, 2};
	check_extra("a console= extra argument adds a second console", "linux /k console=ttyS0\n",
	            strlen("linux /k console=ttyS0\n"), "hvc0", &extra_console,
	            "linux /k console=hvc0 console=tty0\n",
	            strlen("linux /k console=hvc0 console=tty0\n"));

	static const char nul_in[] = "linux /k\0x console=ttyS0\n";
	static const char nul_out[] = "linux /k\0x console=hvc0\n";
	check_extra("NUL bytes are copied like any other", nul_in, sizeof(nul_in) - 1, "hvc0", NULL,
	            nul_out, sizeof(nul_out) - 1);

	refuse("a text without a linux line", "set timeout=1\n# linux /k\n", "hvc0", NULL,
	       "no 'linux' command found");
	refuse("an empty text", "", "hvc0", NULL, "no 'linux' command found");
	refuse("a console with a blank", "linux /k\n", "hvc0 x", NULL, "'hvc0 x' must be one word");
	refuse("an empty console", "linux /k\n", "", NULL, "console is empty");
	char *bad[] = {(char *)"a;reboot"};
	struct px_strv bad_extra = {bad, 1};
	refuse("a kernel argument with ';'", "linux /k\n", "hvc0", &bad_extra,
	       "kernel argument 'a;reboot'");
	return done_testing();
}
