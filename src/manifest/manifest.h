/* The manifest (pexi.yml) as a typed structure. Parsing, recipe merging and validation
 * live in this folder; every other subsystem reads only this structure. All strings are
 * owned by the manifest; optional strings are NULL when absent. */
#ifndef PX_MANIFEST_H
#define PX_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct px_err;

struct px_strv {
	char **v;
	size_t n;
};

enum px_arch { PX_ARCH_X86_64, PX_ARCH_AARCH64 };
enum px_base_format { PX_FORMAT_AUTO, PX_FORMAT_VHD, PX_FORMAT_RAW };
enum px_pkg_method { PX_PKG_OFFLINE, PX_PKG_CHROOT };
enum px_pkg_executor { PX_EXEC_LOCAL, PX_EXEC_LIMA, PX_EXEC_GUESTFS };
enum px_vm_backend { PX_BACKEND_AUTO, PX_BACKEND_QEMU, PX_BACKEND_AVF };
enum px_vm_accel { PX_ACCEL_AUTO, PX_ACCEL_KVM, PX_ACCEL_HVF, PX_ACCEL_TCG };
enum px_pep_mode { PX_PEP_ENFORCE, PX_PEP_REPORT };

/* One cloud-init write_files entry, passed through to user-data. */
struct px_write_file {
	char *path;
	char *content;
	char *permissions; /* octal string as cloud-init wants it, e.g. "0644"; NULL: default */
	char *owner;       /* "user:group"; NULL: default */
};

/* One `files:` entry written into the image by the patch stage. Exactly one of content,
 * source, template and symlink is set. source and template are resolved to absolute paths
 * (source relative to the manifest's directory, template to templates/). */
struct px_file_entry {
	char *path; /* absolute path inside the guest */
	char *content;
	char *source;
	char *template;
	char *symlink; /* target of a symbolic link at path (e.g. an OpenRC runlevel entry) */
	uint32_t mode; /* permission bits; default 0644 */
	uint32_t uid;
	uint32_t gid;
	int line; /* where it was declared, for error messages */
};

struct px_manifest {
	char *path; /* the manifest file it came from */
	char *dir;  /* its directory: relative paths in the manifest resolve here */
	struct px_strv recipes;

	char *name;
	enum px_arch arch;

	struct {
		char *url;
		char *sha256; /* 64 lowercase hex digits, mandatory */
		enum px_base_format format;
	} base;

	struct {
		uint64_t size;      /* bytes */
		int root_partition; /* 0: auto (the Linux filesystem partition), else 1-based */
	} disk;

	struct {
		char *console;              /* e.g. "hvc0"; NULL: leave grub.cfg's console alone */
		struct px_strv kernel_args; /* appended to every linux line */
	} boot;

	struct {
		char *datasource; /* "nocloud" */
		char *user;       /* default user created with a locked password */
		struct px_strv ssh_keys;
		struct px_strv runcmd;
		struct px_write_file *write_files;
		size_t n_write_files;
		char *instance_id;    /* NULL: auto (derived from the seed content) */
		char *network_config; /* raw YAML text, NULL: none (the guest has no network) */
	} cloud_init;

	struct {
		enum px_pkg_method method;
		enum px_pkg_executor executor;
		struct px_strv repositories;
		struct px_strv keys;
		struct px_strv add;
		bool allow_untrusted;
	} packages;

	struct px_file_entry *files;
	size_t n_files;

	struct {
		enum px_vm_backend backend;
		uint32_t cpus;
		uint64_t memory; /* bytes */
		char *shared_dir;
		uint32_t vsock_port;
		enum px_vm_accel accel;
		char *firmware; /* NULL: the backend's default UEFI firmware */
		/* Direct kernel boot (qemu backend): kernel and initrd paths resolve beside the
		 * manifest; NULL kernel: boot the disk through the firmware. */
		char *kernel;
		char *initrd;
		char *cmdline;
	} vm;

	struct {
		struct px_strv allow;
		struct px_strv deny;
		struct px_strv allow_addresses;
		struct px_strv methods;
		uint64_t max_request_bytes;
		uint64_t max_response_bytes;
		uint32_t connect_timeout_ms;
		uint32_t total_timeout_ms;
		char *audit_log;
		enum px_pep_mode mode;
	} pep;

	struct {
		char *dir;                 /* default ".pexi/build", relative to the manifest */
		int64_t source_date_epoch; /* -1: not set (derive from the inputs) */
	} build;
};

/* Loads, merges recipes beneath, and validates the manifest at 'path'. Errors name
 * file:line:col. */
int px_manifest_load(const char *path, struct px_manifest **ret, struct px_err **err);
/* The same from a buffer; 'name' stands for the file in messages, 'dir' resolves relative
 * paths and recipes (NULL: the current directory). Used by the fuzzer and tests. */
int px_manifest_parse(const char *buf, size_t len, const char *name, const char *dir,
                      struct px_manifest **ret, struct px_err **err);
void px_manifest_free(struct px_manifest *m);
/* Loads a standalone PEP policy file (`pexi pep --policy F`): YAML whose top level holds
 * the keys of the manifest's pep section (allow, deny, ..., timeouts, audit_log, mode).
 * Returns a manifest whose pep section is filled in and checked exactly as in a manifest;
 * every other section holds defaults and base is unset. Errors read "policy 'F':L:C: ...". */
int px_manifest_load_pep(const char *path, struct px_manifest **ret, struct px_err **err);

const char *px_arch_name(enum px_arch arch);

/* The resolved manifest (recipes merged, defaults filled in) as JSON text, keys in a fixed
 * order, integers exact: for `pexi build --plan --json` and for hashing stage inputs.
 * The caller frees *ret_json. */
int px_manifest_dump_json(const struct px_manifest *m, char **ret_json, struct px_err **err);
/* The resolved manifest as readable YAML-like text. */
void px_manifest_dump_text(const struct px_manifest *m, FILE *out);

#endif
