#include <dirent.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "core/common.h"

#include "apk/sign.h"
#include "apk/tarmem.h"
#include "core/file.h"

/* A key file is a few hundred bytes of PEM; anything much larger is not one. */
#define MAX_KEY_FILE  (64 * 1024)
#define MAX_SIG_ENTRY (64 * 1024)
#define MAX_KEYS      1024

struct key {
	char *name;
	EVP_PKEY *pkey;
};

struct px_apk_keyring {
	struct key *v;
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
	if (!kr)
		return;
	for (size_t i = 0; i < kr->n; i++) {
		free(kr->v[i].name);
		EVP_PKEY_free(kr->v[i].pkey);
	}
	free(kr->v);
	free(kr);
}

static const struct key *find_key(const struct px_apk_keyring *kr, const char *name)
{
	for (size_t i = 0; i < kr->n; i++)
		if (strcmp(kr->v[i].name, name) == 0)
			return &kr->v[i];
	return NULL;
}

int px_apk_keyring_add_pem(struct px_apk_keyring *kr, const char *name, const void *pem, size_t len,
                           struct px_err **err)
{
	if (!name[0] || strchr(name, '/'))
		return px_err_set(err, PX_EXIT_INPUT, "bad key name '%s'", name);
	if (len > MAX_KEY_FILE || len > INT32_MAX)
		return px_err_set(err, PX_EXIT_INPUT, "key '%s' is too large to be a public key",
		                  name);
	if (kr->n >= MAX_KEYS)
		return px_err_set(err, PX_EXIT_INPUT, "more than %d keys", MAX_KEYS);
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio)
		return px_err_set(err, PX_EXIT_FAILURE, "out of memory reading key '%s'", name);
	EVP_PKEY *pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (!pkey)
		return px_err_set(err, PX_EXIT_INPUT, "key '%s' is not a PEM public key", name);
	if (EVP_PKEY_base_id(pkey) != EVP_PKEY_RSA) {
		EVP_PKEY_free(pkey);
		return px_err_set(err, PX_EXIT_INPUT, "key '%s' is not an RSA key", name);
	}
	/* A later key of the same name replaces the earlier one, as a later file in
	 * /etc/apk/keys would shadow nothing but is what the user added last. */
	for (size_t i = 0; i < kr->n; i++)
		if (strcmp(kr->v[i].name, name) == 0) {
			EVP_PKEY_free(kr->v[i].pkey);
			kr->v[i].pkey = pkey;
			return 0;
		}
	kr->v = xreallocarray(kr->v, kr->n + 1, sizeof(*kr->v));
	kr->v[kr->n++] = (struct key){.name = xstrdup(name), .pkey = pkey};
	return 0;
}

int px_apk_keyring_add_file(struct px_apk_keyring *kr, const char *path, struct px_err **err)
{
	_cleanup_free_ char *data = NULL;
	size_t len;
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	if (px_file_read(path, MAX_KEY_FILE, &data, &len, err) < 0)
		return px_err_wrap(err, "reading apk key");
	if (px_apk_keyring_add_pem(kr, base, data, len, err) < 0)
		return px_err_wrap(err, "'%s'", path);
	return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

int px_apk_keyring_add_dir(struct px_apk_keyring *kr, const char *dir, struct px_err **err)
{
	struct dirent **names;
	int n = scandir(dir, &names, NULL, by_name);
	int r = 0;
	if (n < 0)
		return px_err_errno(err, errno, "cannot read key directory '%s'", dir);
	for (int i = 0; i < n; i++) {
		const char *nm = names[i]->d_name;
		size_t l = strlen(nm);
		if (r == 0 && nm[0] != '.' && l > 4 && strcmp(nm + l - 4, ".pub") == 0) {
			_cleanup_free_ char *path = xasprintf("%s/%s", dir, nm);
			struct stat st;
			if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
				r = px_apk_keyring_add_file(kr, path, err);
		}
		free(names[i]);
	}
	free(names);
	return r;
}

size_t px_apk_keyring_count(const struct px_apk_keyring *kr)
{
	return kr->n;
}

bool px_apk_keyring_has(const struct px_apk_keyring *kr, const char *name)
{
	return find_key(kr, name) != NULL;
}

static void md_ctx_freep(EVP_MD_CTX **c)
{
	EVP_MD_CTX_free(*c);
}

int px_apk_sign_verify(const struct px_apk_keyring *kr, const char *entry_name, const void *sig,
                       size_t sig_len, const void *data, size_t data_len, const char *what,
                       enum px_apk_sig_status *ret_status, struct px_err **err)
{
	const EVP_MD *md;
	const char *keyname;

	*ret_status = PX_APK_SIG_UNKNOWN_SIGNER;
	if (strncmp(entry_name, ".SIGN.RSA256.", 13) == 0) {
		md = EVP_sha256();
		keyname = entry_name + 13;
	} else if (strncmp(entry_name, ".SIGN.RSA.", 10) == 0) {
		md = EVP_sha1();
		keyname = entry_name + 10;
	} else {
		return px_err_set(err, PX_EXIT_INPUT,
		                  "'%s': signature '%s' is of a kind apk does not verify (only "
		                  ".SIGN.RSA and .SIGN.RSA256)",
		                  what, entry_name);
	}
	const struct key *k = find_key(kr, keyname);
	if (!k)
		return px_err_set(err, PX_EXIT_INPUT,
		                  "'%s' is signed by unknown key '%s' (add its public key to the "
		                  "trusted keys, or set allow_untrusted)",
		                  what, keyname);
	_cleanup_(md_ctx_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		return px_err_set(err, PX_EXIT_FAILURE, "out of memory verifying '%s'", what);
	if (EVP_DigestVerifyInit(ctx, NULL, md, NULL, k->pkey) != 1)
		return px_err_set(err, PX_EXIT_FAILURE, "cannot set up verification with key '%s'",
		                  keyname);
	if (EVP_DigestVerify(ctx, sig, sig_len, data, data_len) != 1) {
		*ret_status = PX_APK_SIG_BAD;
		return px_err_set(err, PX_EXIT_INPUT,
		                  "'%s': bad signature: does not verify with key '%s' (%s)", what,
		                  keyname, md == EVP_sha1() ? "RSA SHA-1" : "RSA SHA-256");
	}
	*ret_status = PX_APK_SIG_OK;
	return 0;
}

struct sig_entry {
	char *name;
	uint8_t *data;
	size_t len;
};

struct sig_list {
	struct sig_entry *v;
	size_t n;
};

static int collect_sig(void *ctx, const char *name, const uint8_t *data, size_t len,
                       struct px_err **err PX_UNUSED)
{
	struct sig_list *l = ctx;
	if (strncmp(name, ".SIGN.", 6) != 0)
		return 0;
	l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
	uint8_t *copy = xmalloc(len ? len : 1);
	memcpy(copy, data, len);
	l->v[l->n++] = (struct sig_entry){.name = xstrdup(name), .data = copy, .len = len};
	return 0;
}

static void sig_list_free(struct sig_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].name);
		free(l->v[i].data);
	}
	free(l->v);
}

/* Ranks statuses so that the most telling failure is the one reported. */
static int severity(enum px_apk_sig_status s)
{
	return s == PX_APK_SIG_BAD ? 2 : s == PX_APK_SIG_UNKNOWN_SIGNER ? 1 : 0;
}

int px_apk_sign_check_stream(const struct px_apk_keyring *kr, const void *buf, size_t len,
                             const char *what, bool allow_untrusted, struct px_apk_signed *ret,
                             struct px_err **err)
{
	struct px_apk_signed s = {0};
	_cleanup_free_ uint8_t *sigtar = NULL;
	size_t sigtar_len;
	struct sig_list sigs = {0};
	_cleanup_err_ struct px_err *first = NULL;
	const uint8_t *p = buf;

	if (px_gzstream_split(buf, len, what, 0, &s.members, &s.n_members, err) < 0)
		return -1;
	/* The signature tar is a few KiB; a larger first member is the control member of an
	 * unsigned stream, which need not be inflated here. */
	if (s.members[0].inflated <= MAX_SIG_ENTRY * 4) {
		if (px_gzstream_inflate(buf, &s.members[0], what, 0, &sigtar, &sigtar_len, err) < 0)
			goto fail;
		if (px_tarmem_each(sigtar, sigtar_len, what, MAX_SIG_ENTRY, collect_sig, &sigs,
		                   err) < 0) {
			/* A first member that is not a tar at all cannot be a signature. */
			if (sigs.n == 0) {
				px_err_clear(err);
			} else {
				goto fail;
			}
		}
	}
	if (sigs.n == 0) {
		s.control = 0;
		s.status = PX_APK_SIG_UNSIGNED;
		if (!allow_untrusted) {
			px_err_set(err, PX_EXIT_INPUT,
			           "'%s' is not signed (set allow_untrusted to accept it)", what);
			goto fail;
		}
		*ret = s;
		return 0;
	}
	if (s.n_members < 2) {
		px_err_set(err, PX_EXIT_INPUT, "'%s': a signature but no control stream after it",
		           what);
		goto fail;
	}
	s.control = 1;
	s.status = PX_APK_SIG_UNKNOWN_SIGNER;
	for (size_t i = 0; i < sigs.n; i++) {
		enum px_apk_sig_status st;
		struct px_err *e = NULL;
		const char *keyname = strchr(sigs.v[i].name + 6, '.');
		keyname = keyname ? keyname + 1 : sigs.v[i].name;
		if (px_apk_sign_verify(kr, sigs.v[i].name, sigs.v[i].data, sigs.v[i].len,
		                       p + s.members[1].offset, s.members[1].len, what, &st,
		                       &e) == 0) {
			free(s.signer);
			s.signer = xstrdup(keyname);
			s.status = PX_APK_SIG_OK;
			break;
		}
		if (!s.signer || severity(st) > severity(s.status)) {
			free(s.signer);
			s.signer = xstrdup(keyname);
			px_err_free(first);
			first = steal_ptr(&e);
			s.status = st;
		}
		px_err_free(e);
	}
	if (s.status != PX_APK_SIG_OK && !allow_untrusted) {
		if (err)
			*err = steal_ptr(&first);
		goto fail;
	}
	sig_list_free(&sigs);
	*ret = s;
	return 0;
fail:
	sig_list_free(&sigs);
	px_apk_signed_free(&s);
	return -1;
}

void px_apk_signed_free(struct px_apk_signed *s)
{
	if (!s)
		return;
	free(s->members);
	free(s->signer);
	*s = (struct px_apk_signed){0};
}
