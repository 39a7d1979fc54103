#include "core/common.h"

#include "apk/sign.h"

/* Placeholder until the implementation lands: the API compiles and fails cleanly. */

struct px_apk_keyring {
	size_t n;
};

const char *px_apk_sig_status_name(enum px_apk_sig_status s)
{
	switch (s) {
	case PX_APK_SIG_OK:
		return "ok";
	case PX_APK_SIG_UNSIGNED:
		return "unsigned";
	case PX_APK_SIG_UNKNOWN_SIGNER:
		return "unknown signer";
	case PX_APK_SIG_BAD:
		return "bad signature";
	}
	return "?";
}

struct px_apk_keyring *px_apk_keyring_new(void)
{
	return xcalloc(1, sizeof(struct px_apk_keyring));
}

void px_apk_keyring_free(struct px_apk_keyring *kr)
{
	free(kr);
}

int px_apk_keyring_add_file(struct px_apk_keyring *kr PX_UNUSED, const char *path,
                            struct px_err **err)
{
	return px_err_set(err, PX_EXIT_NOT_IMPLEMENTED, "cannot load key '%s': not implemented",
	                  path);
}

int px_apk_keyring_add_pem(struct px_apk_keyring *kr PX_UNUSED, const char *name,
                           const void *pem PX_UNUSED, size_t len PX_UNUSED, struct px_err **err)
{
	return px_err_set(err, PX_EXIT_NOT_IMPLEMENTED, "cannot load key '%s': not implemented",
	                  name);
}

int px_apk_keyring_add_dir(struct px_apk_keyring *kr PX_UNUSED, const char *dir,
                           struct px_err **err)
{
	return px_err_set(err, PX_EXIT_NOT_IMPLEMENTED, "cannot load keys '%s': not implemented",
	                  dir);
}

size_t px_apk_keyring_count(const struct px_apk_keyring *kr)
{
	return kr->n;
}

bool px_apk_keyring_has(const struct px_apk_keyring *kr PX_UNUSED, const char *name PX_UNUSED)
{
	return false;
}

int px_apk_sign_verify(const struct px_apk_keyring *kr PX_UNUSED, const char *entry_name,
                       const void *sig PX_UNUSED, size_t sig_len PX_UNUSED,
                       const void *data PX_UNUSED, size_t data_len PX_UNUSED, const char *what,
                       enum px_apk_sig_status *ret_status, struct px_err **err)
{
	*ret_status = PX_APK_SIG_UNKNOWN_SIGNER;
	return px_err_set(err, PX_EXIT_NOT_IMPLEMENTED, "'%s': cannot verify '%s': not implemented",
	                  what, entry_name);
}

int px_apk_sign_check_stream(const struct px_apk_keyring *kr PX_UNUSED, const void *buf PX_UNUSED,
                             size_t len PX_UNUSED, const char *what, bool allow_untrusted PX_UNUSED,
                             struct px_apk_signed *ret PX_UNUSED, struct px_err **err)
{
	return px_err_set(err, PX_EXIT_NOT_IMPLEMENTED, "'%s': cannot verify: not implemented",
	                  what);
}

void px_apk_signed_free(struct px_apk_signed *s)
{
	if (!s)
		return;
	free(s->members);
	free(s->signer);
	*s = (struct px_apk_signed){0};
}
