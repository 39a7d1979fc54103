#include "bake/chroot-script.h"

#include "core/buf.h"
#include "core/common.h"

void px_sh_quote(struct px_buf *b, const char *s)
{
	/* Inside single quotes every byte is literal except the quote itself, which is closed,
	 * escaped and reopened. Newlines, $, backticks and leading dashes need nothing more:
	 * the body always passes values after an option name or after "--". */
	px_buf_puts(b, "'");
	for (const char *p = s; *p; p++) {
		if (*p == '\'')
			px_buf_puts(b, "'\\''");
		else
			px_buf_append(b, p, 1, NULL);
	}
	px_buf_puts(b, "'");
}

static void assign(struct px_buf *b, const char *name, const char *value)
{
	px_buf_printf(b, "%s=", name);
	px_sh_quote(b, value);
	px_buf_puts(b, "\n");
}

/* The fixed part. It reads IMAGE WORKBASE OFFSET SIZE RESOLV and calls the generated
 * setup_repos, setup_keys and run_apk. Every mount is recorded in a flag so that cleanup
 * undoes exactly what was done, in reverse order, on success and on every failure; the
 * work dir is removed only with rmdir/rm -f, never rm -rf, so a bind that failed to unmount
 * can never lead to deleting the host's /dev. */
static const char body[] =
        "\n"
        "export PATH=/usr/sbin:/usr/bin:/sbin:/bin\n"
        "umask 022\n"
        "say() { printf 'pexi-bake: %s\\n' \"$*\" >&2; }\n"
        "die() { say \"error: $*\"; exit 1; }\n"
        "\n"
        "work= disk= mnt= loop= tmpcopy=\n"
        "M_ROOT=0 M_PROC=0 M_SYS=0 M_DEV=0 N_REPO=0 BAKEDIR=0 RESOLV_STATE=0 MADE_DIRS=\n"
        "\n"
        "unmount() { # PATH; on the failure path a busy mount is detached lazily\n"
        "\tumount \"$1\" && return 0\n"
        "\t[ \"$in_exit\" = 1 ] && umount -l \"$1\" && return 0\n"
        "\tsay \"cannot unmount '$1'\"\n"
        "\treturn 1\n"
        "}\n"
        "\n"
        "restore_resolv() {\n"
        "\tcase $RESOLV_STATE in\n"
        "\t1) rm -f \"$mnt/etc/resolv.conf\" && mv -f \"$mnt/etc/resolv.conf.pexi-orig\" "
        "\"$mnt/etc/resolv.conf\" || return 1 ;;\n"
        "\t2) rm -f \"$mnt/etc/resolv.conf\" || return 1 ;;\n"
        "\tesac\n"
        "\tRESOLV_STATE=0\n"
        "}\n"
        "\n"
        "# Undoes every step done so far, last first; fails when something stayed. A mount\n"
        "# that stays busy keeps everything beneath and before it in place.\n"
        "teardown() {\n"
        "\tbad=0 busy=0\n"
        "\tif [ \"$M_ROOT\" = 1 ]; then\n"
        "\t\trestore_resolv || { say \"cannot restore /etc/resolv.conf\"; bad=1; }\n"
        "\t\twhile [ \"$N_REPO\" -gt 0 ]; do\n"
        "\t\t\tunmount \"$mnt/.pexi-bake/repo.$N_REPO\" || { busy=1; break; }\n"
        "\t\t\tN_REPO=$((N_REPO - 1))\n"
        "\t\tdone\n"
        "\t\tif [ \"$BAKEDIR\" = 1 ] && [ \"$busy\" = 0 ]; then\n"
        "\t\t\trm -f \"$mnt/.pexi-bake/keys\"/* \"$mnt/.pexi-bake/keys\"/.[!.]*\n"
        "\t\t\trmdir \"$mnt/.pexi-bake\"/* 2>/dev/null\n"
        "\t\t\trmdir \"$mnt/.pexi-bake\" && BAKEDIR=0 || bad=1\n"
        "\t\tfi\n"
        "\t\tif [ \"$M_DEV\" = 1 ]; then unmount \"$mnt/dev\" && M_DEV=0 || busy=1; fi\n"
        "\t\tif [ \"$M_SYS\" = 1 ]; then unmount \"$mnt/sys\" && M_SYS=0 || busy=1; fi\n"
        "\t\tif [ \"$M_PROC\" = 1 ]; then unmount \"$mnt/proc\" && M_PROC=0 || busy=1; fi\n"
        "\t\tif [ \"$busy\" = 0 ]; then\n"
        "\t\t\tfor d in $MADE_DIRS; do rmdir \"$mnt/$d\" || bad=1; done\n"
        "\t\t\tMADE_DIRS=\n"
        "\t\t\tunmount \"$mnt\" && M_ROOT=0 || busy=1\n"
        "\t\tfi\n"
        "\tfi\n"
        "\tif [ -n \"$loop\" ] && [ \"$M_ROOT\" = 0 ]; then\n"
        "\t\tlosetup -d \"$loop\" && loop= || { say \"cannot detach '$loop'\"; busy=1; }\n"
        "\tfi\n"
        "\t[ \"$bad\" = 0 ] && [ \"$busy\" = 0 ]\n"
        "}\n"
        "\n"
        "ok=0 in_exit=0\n"
        "on_exit() {\n"
        "\trc=$?\n"
        "\tset +e\n"
        "\tin_exit=1\n"
        "\tteardown || rc=1\n"
        "\t[ -z \"$tmpcopy\" ] || rm -f \"$tmpcopy\"\n"
        "\tif [ -n \"$work\" ] && [ \"$M_ROOT\" = 0 ] && [ -z \"$loop\" ]; then\n"
        "\t\trm -f \"$disk\"\n"
        "\t\trmdir \"$mnt\" \"$work\" 2>/dev/null\n"
        "\telif [ -n \"$work\" ]; then\n"
        "\t\tsay \"left '$work' behind: something in it is still attached\"\n"
        "\tfi\n"
        "\t[ \"$ok\" = 1 ] || say \"failed; '$IMAGE' is unchanged\"\n"
        "\texit \"$rc\"\n"
        "}\n"
        "trap on_exit EXIT\n"
        "trap 'exit 130' INT\n"
        "trap 'exit 143' TERM\n"
        "trap 'exit 129' HUP\n"
        "\n"
        "[ \"$(id -u)\" = 0 ] || die \"the chroot method needs root\"\n"
        "[ -f \"$IMAGE\" ] || die \"no image '$IMAGE'\"\n"
        "[ -d \"$WORKBASE\" ] || die \"no work directory '$WORKBASE'\"\n"
        "# The seeds lost 16 000 files baking on a virtiofs share: the work copy must sit on a\n"
        "# local filesystem. Magic numbers: FUSE (virtiofs too), 9p, NFS, SMB, CIFS, SMB2.\n"
        "magic=$(stat -f -c %t \"$WORKBASE\") || die \"cannot stat '$WORKBASE'\"\n"
        "case $magic in\n"
        "65735546 | 1021997 | 6969 | 517b | ff534d42 | fe534d42)\n"
        "\tdie \"'$WORKBASE' is on a shared or network filesystem (magic 0x$magic); "
        "use a local directory\" ;;\n"
        "esac\n"
        "\n"
        "work=$(mktemp -d \"$WORKBASE/pexi-bake.XXXXXX\")\n"
        "disk=$work/disk.raw\n"
        "mnt=$work/root\n"
        "mkdir \"$mnt\"\n"
        "say \"copying '$IMAGE' to '$work'\"\n"
        "cp --sparse=always \"$IMAGE\" \"$disk\" 2>/dev/null || cp \"$IMAGE\" \"$disk\"\n"
        "loop=$(losetup --find --show --offset \"$OFFSET\" --sizelimit \"$SIZE\" \"$disk\")\n"
        "[ -n \"$loop\" ] || die \"losetup gave no device\"\n"
        "mount -t ext4 \"$loop\" \"$mnt\"\n"
        "M_ROOT=1\n"
        "[ ! -L \"$mnt/etc\" ] || die \"the image's /etc is a symlink\"\n"
        "for d in proc sys dev; do\n"
        "\t[ ! -L \"$mnt/$d\" ] || die \"the image's /$d is a symlink\"\n"
        "\tif [ ! -d \"$mnt/$d\" ]; then mkdir \"$mnt/$d\"; MADE_DIRS=\"$d $MADE_DIRS\"; fi\n"
        "done\n"
        "mount --bind /proc \"$mnt/proc\"; M_PROC=1\n"
        "mount --bind /sys \"$mnt/sys\"; M_SYS=1\n"
        "mount --bind /dev \"$mnt/dev\"; M_DEV=1\n"
        "mkdir \"$mnt/.pexi-bake\" \"$mnt/.pexi-bake/keys\"\n"
        "BAKEDIR=1\n"
        "\n"
        "bind_repo() { # N DIR: a file:// repository, read-only at /.pexi-bake/repo.N\n"
        "\tmkdir \"$mnt/.pexi-bake/repo.$1\"\n"
        "\tmount --bind \"$2\" \"$mnt/.pexi-bake/repo.$1\"\n"
        "\tN_REPO=$1\n"
        "\tmount -o remount,bind,ro \"$mnt/.pexi-bake/repo.$1\"\n"
        "}\n"
        "add_key() { # FILE: trusted besides the image's own /etc/apk/keys\n"
        "\tcp -- \"$1\" \"$mnt/.pexi-bake/keys/\"\n"
        "}\n"
        "if [ -d \"$mnt/etc/apk/keys\" ] && [ ! -L \"$mnt/etc/apk/keys\" ]; then\n"
        "\tfor k in \"$mnt/etc/apk/keys\"/*; do\n"
        "\t\t[ ! -e \"$k\" ] && [ ! -L \"$k\" ] || cp -P -- \"$k\" \"$mnt/.pexi-bake/keys/\"\n"
        "\tdone\n"
        "fi\n"
        "setup_repos\n"
        "setup_keys\n"
        "\n"
        "mkdir -p \"$mnt/etc\"\n"
        "if [ -e \"$mnt/etc/resolv.conf\" ] || [ -L \"$mnt/etc/resolv.conf\" ]; then\n"
        "\tmv \"$mnt/etc/resolv.conf\" \"$mnt/etc/resolv.conf.pexi-orig\"\n"
        "\tRESOLV_STATE=1\n"
        "else\n"
        "\tRESOLV_STATE=2\n"
        "fi\n"
        "if [ -e \"$RESOLV\" ]; then cp -L -- \"$RESOLV\" \"$mnt/etc/resolv.conf\"; fi\n"
        "\n"
        "say \"apk add in '$mnt'\"\n"
        "run_apk\n"
        "\n"
        "restore_resolv\n"
        "env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot \"$mnt\" /bin/sh -c "
        "'rm -rf /var/cache/apk/* /var/cache/apk/.[!.]*' 2>/dev/null ||\n"
        "\tsay \"could not clear /var/cache/apk (no /bin/sh in the image?)\"\n"
        "teardown || die \"cannot unmount everything\"\n"
        "loop=$(losetup --find --show --offset \"$OFFSET\" --sizelimit \"$SIZE\" \"$disk\")\n"
        "e2fsck -fn \"$loop\" >&2 || die \"e2fsck found errors in the baked root filesystem\"\n"
        "losetup -d \"$loop\"\n"
        "loop=\n"
        "tmpcopy=$IMAGE.pexi-bake.$$\n"
        "cp --sparse=always \"$disk\" \"$tmpcopy\" 2>/dev/null || cp \"$disk\" \"$tmpcopy\"\n"
        "mv -f \"$tmpcopy\" \"$IMAGE\"\n"
        "tmpcopy=\n"
        "ok=1\n"
        "say \"done\"\n";

const char *px_chroot_file_url_path(const char *url)
{
	if (strncmp(url, "file://", 7) != 0)
		return NULL;
	const char *p = url + 7;
	if (strncmp(p, "localhost/", 10) == 0)
		p += 9;
	return p[0] == '/' ? p : NULL;
}

int px_chroot_script_build(const struct px_chroot_script *s, char **ret, struct px_err **err)
{
	if (!s->image || s->image[0] != '/')
		return px_err_set(err, PX_EXIT_FAILURE,
		                  "chroot bake: image path '%s' is not absolute",
		                  s->image ? s->image : "");
	if (!s->work_base || s->work_base[0] != '/')
		return px_err_set(err, PX_EXIT_FAILURE,
		                  "chroot bake: work directory '%s' is not absolute",
		                  s->work_base ? s->work_base : "");
	if (s->n_packages == 0)
		return px_err_set(err, PX_EXIT_MANIFEST, "chroot bake: no packages to add");
	for (size_t i = 0; i < s->n_keys; i++)
		if (s->keys[i][0] != '/')
			return px_err_set(err, PX_EXIT_FAILURE,
			                  "chroot bake: key path '%s' is not absolute", s->keys[i]);
	for (size_t i = 0; i < s->n_repositories; i++) {
		const char *r = s->repositories[i];
		if (!px_chroot_file_url_path(r) && strncmp(r, "http://", 7) != 0 &&
		    strncmp(r, "https://", 8) != 0)
			return px_err_set(
			        err, PX_EXIT_MANIFEST,
			        "chroot bake: repository '%s' is neither http(s):// nor file:///",
			        r);
	}

	struct px_buf b = PX_BUF_INIT;
	px_buf_puts(&b, "#!/bin/sh\n"
	                "# Generated by pexi: bakes Alpine packages into a disk image's root\n"
	                "# filesystem in a chroot (pexi build, packages.method: chroot).\n"
	                "set -eu\n");
	assign(&b, "IMAGE", s->image);
	assign(&b, "WORKBASE", s->work_base);
	px_buf_printf(&b, "OFFSET=%" PRIu64 "\nSIZE=%" PRIu64 "\n", s->root_offset, s->root_size);
	assign(&b, "RESOLV", s->resolv_conf ? s->resolv_conf : "/etc/resolv.conf");

	px_buf_puts(&b, "setup_repos() {\n\t:\n");
	size_t n_file = 0;
	for (size_t i = 0; i < s->n_repositories; i++) {
		const char *path = px_chroot_file_url_path(s->repositories[i]);
		if (!path)
			continue;
		px_buf_printf(&b, "\tbind_repo %zu ", ++n_file);
		px_sh_quote(&b, path);
		px_buf_puts(&b, "\n");
	}
	px_buf_puts(&b, "}\nsetup_keys() {\n\t:\n");
	for (size_t i = 0; i < s->n_keys; i++) {
		px_buf_puts(&b, "\tadd_key ");
		px_sh_quote(&b, s->keys[i]);
		px_buf_puts(&b, "\n");
	}

	/* apk runs with a clean environment; the manifest's repositories replace the image's
	 * /etc/apk/repositories so both bake methods install from the same place. */
	px_buf_puts(&b, "}\nrun_apk() {\n\tenv -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "
	                "chroot \"$mnt\" apk add --no-cache --keys-dir /.pexi-bake/keys");
	if (s->allow_untrusted)
		px_buf_puts(&b, " --allow-untrusted");
	if (s->n_repositories > 0)
		px_buf_puts(&b, " --repositories-file /dev/null");
	n_file = 0;
	for (size_t i = 0; i < s->n_repositories; i++) {
		px_buf_puts(&b, " \\\n\t\t--repository ");
		if (px_chroot_file_url_path(s->repositories[i]))
			px_buf_printf(&b, "/.pexi-bake/repo.%zu", ++n_file);
		else
			px_sh_quote(&b, s->repositories[i]);
	}
	px_buf_puts(&b, " \\\n\t\t--");
	for (size_t i = 0; i < s->n_packages; i++) {
		px_buf_puts(&b, " ");
		px_sh_quote(&b, s->packages[i]);
	}
	px_buf_puts(&b, "\n}\n");
	px_buf_puts(&b, body);
	*ret = px_buf_steal(&b, NULL);
	return 0;
}
