/* The store key: a systemd credential, or a key file (apart from the state
 * folder, or in it). */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rhs.h"

static int read_key(const char *path, uint8_t key[RHS_KEY_LEN], int check_mode,
		    char *err, size_t err_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		return RHS_EKEYFILE;
	}
	struct stat st;
	uint8_t buf[RHS_KEY_LEN + 1];
	int rc = RHS_OK;
	if (fstat(fd, &st) < 0 || (check_mode && (st.st_mode & 077))) {
		snprintf(err, err_len,
			 "%s: mode %03o lets others read the store key; "
			 "chmod 600 it",
			 path, (unsigned)(st.st_mode & 0777));
		rc = RHS_EPERM;
	} else if (read(fd, buf, sizeof(buf)) != RHS_KEY_LEN) {
		snprintf(err, err_len, "%s: a store key is exactly %d bytes",
			 path, RHS_KEY_LEN);
		rc = RHS_EKEYFILE;
	} else {
		memcpy(key, buf, RHS_KEY_LEN);
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	close(fd);
	return rc;
}

static int create_key(const char *path, uint8_t key[RHS_KEY_LEN], char *err,
		      size_t err_len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		return errno == EACCES || errno == EROFS ? RHS_EACCESS
							 : RHS_EKEYFILE;
	}
	int ok = RAND_priv_bytes(key, RHS_KEY_LEN) == 1 &&
		 write(fd, key, RHS_KEY_LEN) == RHS_KEY_LEN && fsync(fd) == 0;
	close(fd);
	if (!ok) {
		unlink(path);
		snprintf(err, err_len, "%s: cannot write a new store key",
			 path);
		return RHS_EIO;
	}
	return RHS_OK;
}

int rhs_key_load_from(const char *state_dir, const char *key_file,
		      uint8_t key[RHS_KEY_LEN], char *err, size_t err_len)
{
	char path[4096];
	const char *creds = getenv("CREDENTIALS_DIRECTORY");
	if (creds && *creds) {
		snprintf(path, sizeof(path), "%s/remhsm-store-key", creds);
		if (access(path, F_OK) == 0)
			return read_key(path, key, 0, err, err_len);
	}
	if (key_file && *key_file)
		snprintf(path, sizeof(path), "%s", key_file);
	else
		snprintf(path, sizeof(path), "%s/store.key", state_dir);
	if (access(path, F_OK) == 0)
		return read_key(path, key, 1, err, err_len);
	char db[4096];
	snprintf(db, sizeof(db), "%s/store.db", state_dir);
	if (access(db, F_OK) == 0) {
		snprintf(err, err_len,
			 "%s exists but its key %s is missing; restore the key "
			 "file (a new key cannot open the store)",
			 db, path);
		return RHS_EKEYFILE;
	}
	return create_key(path, key, err, err_len);
}

int rhs_key_load(const char *state_dir, uint8_t key[RHS_KEY_LEN], char *err,
		 size_t err_len)
{
	return rhs_key_load_from(state_dir, NULL, key, err, err_len);
}
