/* The encrypted store: sealing, keys, migrations, failures that lose
 * nothing. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "rhs.h"

static char dir[64], db_path[128];
static char err[1024];
static uint8_t key[RHS_KEY_LEN];
static rhs_store_t *store;

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/remhsm-store-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(db_path, sizeof(db_path), "%s/store.db", dir);
	ck_assert_int_eq(rhs_key_load(dir, key, err, sizeof(err)), RHS_OK);
	ck_assert_int_eq(rhs_open(db_path, key, NULL, &store, err, sizeof(err)),
			 RHS_OK);
}

static void teardown(void)
{
	rhs_close(store);
	store = NULL;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static void reopen(void)
{
	rhs_close(store);
	ck_assert_int_eq(rhs_open(db_path, key, NULL, &store, err, sizeof(err)),
			 RHS_OK);
}

/* Runs SQL on the store file behind the store's back. */
static void raw_sql(const char *sql)
{
	sqlite3 *db;
	ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static rhs_index_t index_of(const char *cls, const char *id, const char *label)
{
	rhs_index_t ix = {{NULL}, {0}};
	const char *v[] = {cls, id, label};
	for (int k = 0; k < 3; k++) {
		ix.value[k] = (const uint8_t *)v[k];
		ix.len[k] = v[k] ? strlen(v[k]) : 0;
	}
	return ix;
}

static uint64_t create(const char *cls, const char *id, const char *label,
		       const char *record)
{
	rhs_index_t ix = index_of(cls, id, label);
	uint64_t oid = 0;
	ck_assert_int_eq(rhs_object_create(store, 0, &ix,
					   (const uint8_t *)record,
					   strlen(record), &oid),
			 RHS_OK);
	return oid;
}

static size_t find(uint32_t slot, const char *cls, const char *id,
		   const char *label, uint64_t first[4])
{
	rhs_index_t ix = index_of(cls, id, label);
	uint64_t *ids;
	size_t n;
	ck_assert_int_eq(rhs_object_find(store, slot, &ix, &ids, &n), RHS_OK);
	for (size_t i = 0; i < n && i < 4; i++)
		first[i] = ids[i];
	free(ids);
	return n;
}

START_TEST(test_store_and_key_are_created_private)
{
	struct stat st;
	ck_assert_int_eq(stat(db_path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	char key_path[128];
	snprintf(key_path, sizeof(key_path), "%s/store.key", dir);
	ck_assert_int_eq(stat(key_path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(st.st_size, RHS_KEY_LEN);
	uint8_t again[RHS_KEY_LEN];
	ck_assert_int_eq(rhs_key_load(dir, again, err, sizeof(err)), RHS_OK);
	ck_assert_mem_eq(again, key, RHS_KEY_LEN);
}
END_TEST

/* A location names its backend: a plain path and sqlite:PATH are the same
 * SQLite store; an unknown scheme is refused, named, with nothing after
 * it in the message. */
START_TEST(test_a_location_names_its_backend)
{
	uint64_t id = 0;
	rhs_index_t ix = {{NULL}, {0}};
	ck_assert_int_eq(
		rhs_object_create(store, 0, &ix, (const uint8_t *)"r", 1, &id),
		RHS_OK);
	rhs_close(store);
	char location[200];
	snprintf(location, sizeof(location), "sqlite:%s", db_path);
	ck_assert_int_eq(
		rhs_open(location, key, NULL, &store, err, sizeof(err)),
		RHS_OK);
	uint8_t *rec;
	size_t len;
	ck_assert_int_eq(rhs_object_get(store, 0, id, &rec, &len), RHS_OK);
	rhs_free(rec, len);
	rhs_store_t *other = NULL;
	ck_assert_int_eq(rhs_open("nosuch://user:secret@host/db", key, NULL,
				  &other, err, sizeof(err)),
			 RHS_EINVAL);
	ck_assert_ptr_null(other);
	ck_assert_ptr_nonnull(strstr(err, "'nosuch:...'"));
	ck_assert_ptr_null(strstr(err, "secret"));
}
END_TEST

START_TEST(test_token_record_round_trips_and_survives_reopen)
{
	uint8_t *rec;
	size_t len;
	ck_assert_int_eq(rhs_token_get(store, 3, &rec, &len), RHS_ENOTFOUND);
	ck_assert_int_eq(rhs_token_put(store, 3, (const uint8_t *)"first", 5),
			 RHS_OK);
	ck_assert_int_eq(rhs_token_put(store, 3, (const uint8_t *)"second", 6),
			 RHS_OK);
	reopen();
	ck_assert_int_eq(rhs_token_get(store, 3, &rec, &len), RHS_OK);
	ck_assert_uint_eq(len, 6);
	ck_assert_mem_eq(rec, "second", 6);
	rhs_free(rec, len);
}
END_TEST

/* Flips one bit of a token row's sealed record, behind the store's back. */
static void flip_bit(uint32_t slot, int offset)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(
				 db, "SELECT record FROM tokens WHERE slot = ?",
				 -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_int64(st, 1, slot);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	int len = sqlite3_column_bytes(st, 0);
	ck_assert_int_lt(offset, len);
	uint8_t buf[256];
	memcpy(buf, sqlite3_column_blob(st, 0), (size_t)len);
	sqlite3_finalize(st);
	buf[offset] ^= 0x01;
	ck_assert_int_eq(sqlite3_prepare_v2(
				 db,
				 "UPDATE tokens SET record = ? WHERE slot = ?",
				 -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_blob(st, 1, buf, len, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, slot);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

START_TEST(test_flipped_byte_in_a_record_is_detected)
{
	ck_assert_int_eq(
		rhs_token_put(store, 1, (const uint8_t *)"token one", 9),
		RHS_OK);
	ck_assert_int_eq(
		rhs_token_put(store, 2, (const uint8_t *)"token two", 9),
		RHS_OK);
	rhs_close(store);
	store = NULL;
	/* Every byte: nonce, ciphertext and tag. */
	for (int offset = 0; offset < 9 + RHS_SEAL_OVERHEAD; offset++) {
		flip_bit(1, offset);
		ck_assert_int_eq(
			rhs_open(db_path, key, NULL, &store, err, sizeof(err)),
			RHS_OK);
		uint8_t *rec;
		size_t len;
		ck_assert_int_eq(rhs_token_get(store, 1, &rec, &len),
				 RHS_ECORRUPT);
		ck_assert_int_eq(rhs_token_get(store, 2, &rec, &len), RHS_OK);
		rhs_free(rec, len);
		rhs_close(store);
		store = NULL;
		flip_bit(1, offset);
	}
	reopen();
}
END_TEST

START_TEST(test_record_copied_onto_another_row_does_not_open)
{
	ck_assert_int_eq(
		rhs_token_put(store, 1, (const uint8_t *)"token one", 9),
		RHS_OK);
	ck_assert_int_eq(
		rhs_token_put(store, 2, (const uint8_t *)"token two", 9),
		RHS_OK);
	uint64_t a = create("c", "i", "a", "object a");
	uint64_t b = create("c", "i", "b", "object b");
	rhs_close(store);
	store = NULL;
	raw_sql("UPDATE tokens SET record = (SELECT record FROM tokens WHERE "
		"slot = 1) "
		"WHERE slot = 2");
	char sql[256];
	snprintf(sql, sizeof(sql),
		 "UPDATE objects SET record = (SELECT record FROM objects "
		 "WHERE id = %llu) "
		 "WHERE id = %llu",
		 (unsigned long long)a, (unsigned long long)b);
	raw_sql(sql);
	reopen();
	uint8_t *rec;
	size_t len;
	ck_assert_int_eq(rhs_token_get(store, 2, &rec, &len), RHS_ECORRUPT);
	ck_assert_int_eq(rhs_object_get(store, 0, b, &rec, &len), RHS_ECORRUPT);
	ck_assert_int_eq(rhs_object_get(store, 0, a, &rec, &len), RHS_OK);
	rhs_free(rec, len);
}
END_TEST

START_TEST(test_wrong_store_key_is_refused)
{
	rhs_close(store);
	store = NULL;
	uint8_t wrong[RHS_KEY_LEN];
	memcpy(wrong, key, sizeof(wrong));
	wrong[7] ^= 1;
	ck_assert_int_eq(
		rhs_open(db_path, wrong, NULL, &store, err, sizeof(err)),
		RHS_EKEY);
	ck_assert_ptr_null(store);
	ck_assert_ptr_nonnull(strstr(err, db_path));
	ck_assert_ptr_nonnull(strstr(err, "does not open"));
	reopen();
}
END_TEST

START_TEST(test_missing_or_malformed_key_file_is_refused)
{
	char key_path[128];
	snprintf(key_path, sizeof(key_path), "%s/store.key", dir);
	uint8_t k[RHS_KEY_LEN];
	ck_assert_int_eq(unlink(key_path), 0);
	ck_assert_int_eq(rhs_key_load(dir, k, err, sizeof(err)), RHS_EKEYFILE);
	ck_assert_ptr_nonnull(strstr(err, key_path));
	ck_assert_ptr_nonnull(strstr(err, "missing"));
	int fd = open(key_path, O_WRONLY | O_CREAT, 0600);
	ck_assert_int_eq(write(fd, "short", 5), 5);
	close(fd);
	ck_assert_int_eq(rhs_key_load(dir, k, err, sizeof(err)), RHS_EKEYFILE);
	ck_assert_ptr_nonnull(strstr(err, "exactly 32 bytes"));
	chmod(key_path, 0644);
	ck_assert_int_eq(rhs_key_load(dir, k, err, sizeof(err)), RHS_EPERM);
	ck_assert_ptr_nonnull(strstr(err, "chmod 600"));
}
END_TEST

START_TEST(test_systemd_credential_is_preferred)
{
	char creds[128], path[160];
	snprintf(creds, sizeof(creds), "%s/creds", dir);
	mkdir(creds, 0700);
	snprintf(path, sizeof(path), "%s/remhsm-store-key", creds);
	int fd = open(path, O_WRONLY | O_CREAT, 0400);
	uint8_t cred[RHS_KEY_LEN];
	memset(cred, 0xab, sizeof(cred));
	ck_assert_int_eq(write(fd, cred, sizeof(cred)), (ssize_t)sizeof(cred));
	close(fd);
	setenv("CREDENTIALS_DIRECTORY", creds, 1);
	uint8_t k[RHS_KEY_LEN];
	ck_assert_int_eq(rhs_key_load(dir, k, err, sizeof(err)), RHS_OK);
	ck_assert_mem_eq(k, cred, sizeof(cred));
	unsetenv("CREDENTIALS_DIRECTORY");
}
END_TEST

START_TEST(test_store_readable_by_others_is_refused)
{
	rhs_close(store);
	store = NULL;
	chmod(db_path, 0644);
	ck_assert_int_eq(rhs_open(db_path, key, NULL, &store, err, sizeof(err)),
			 RHS_EPERM);
	ck_assert_ptr_nonnull(strstr(err, "mode 644"));
	chmod(db_path, 0600);
	reopen();
}
END_TEST

START_TEST(test_store_in_use_by_another_process_is_refused)
{
	rhs_store_t *second = NULL;
	pid_t pid = fork();
	if (pid == 0) {
		int rc =
			rhs_open(db_path, key, NULL, &second, err, sizeof(err));
		_exit(rc == RHS_EBUSY &&
				      strstr(err, "in use by another process")
			      ? 0
			      : 1);
	}
	int status;
	waitpid(pid, &status, 0);
	ck_assert_int_eq(WEXITSTATUS(status), 0);
}
END_TEST

START_TEST(test_newer_schema_is_refused_not_clobbered)
{
	rhs_close(store);
	store = NULL;
	raw_sql("PRAGMA user_version = 99");
	ck_assert_int_eq(rhs_open(db_path, key, NULL, &store, err, sizeof(err)),
			 RHS_ENEWER);
	ck_assert_ptr_nonnull(strstr(err, "newer"));
	sqlite3 *db;
	sqlite3_open(db_path, &db);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
	sqlite3_step(st);
	ck_assert_int_eq(sqlite3_column_int(st, 0), 99);
	sqlite3_finalize(st);
	sqlite3_close(db);
	raw_sql("PRAGMA user_version = 2");
	reopen();
}
END_TEST

START_TEST(test_store_of_previous_schema_version_is_migrated)
{
	rhs_close(store);
	store = NULL;
	unlink(db_path);
	rhs_open_opts_t v1 = {.max_version = 1};
	ck_assert_int_eq(rhs_open(db_path, key, &v1, &store, err, sizeof(err)),
			 RHS_OK);
	ck_assert_int_eq(
		rhs_token_put(store, 0, (const uint8_t *)"v1 token", 8),
		RHS_OK);
	reopen();
	uint8_t *rec;
	size_t len;
	ck_assert_int_eq(rhs_token_get(store, 0, &rec, &len), RHS_OK);
	ck_assert_mem_eq(rec, "v1 token", 8);
	rhs_free(rec, len);
	uint64_t id = create("c", NULL, "after migration", "record");
	ck_assert_uint_eq(id, 1);
}
END_TEST

/* The findings: with write access to the file and no key, putting back an
 * older copy of the token row reset the PIN failure counter, and an older
 * copy of a key's row undid CKA_SENSITIVE. Every such edit now leaves the
 * token's rows not adding up, which the store finds when it opens; other
 * tokens are untouched. */
static void assert_damage(int slot0, int slot1)
{
	reopen();
	ck_assert_int_eq(rhs_token_damaged(store, 0), slot0);
	ck_assert_int_eq(rhs_token_damaged(store, 1), slot1);
}

static void put_token(uint32_t slot, const char *record)
{
	ck_assert_int_eq(rhs_token_put(store, slot, (const uint8_t *)record,
				       strlen(record)),
			 RHS_OK);
}

START_TEST(test_replayed_token_row_is_damage)
{
	put_token(0, "failures=0");
	put_token(1, "other token");
	raw_sql("CREATE TABLE saved AS SELECT * FROM tokens WHERE slot = 0");
	put_token(0, "failures=5");
	assert_damage(0, 0);
	raw_sql("UPDATE tokens SET record = (SELECT record FROM saved) "
		"WHERE slot = 0");
	assert_damage(1, 0);
}
END_TEST

START_TEST(test_replayed_object_row_is_damage)
{
	put_token(1, "other token");
	uint64_t id = create("key", "01", "k", "sensitive=true");
	raw_sql("CREATE TABLE saved AS SELECT * FROM objects");
	rhs_index_t ix = index_of("key", "01", "k");
	ck_assert_int_eq(rhs_object_update(store, 0, id, &ix,
					   (const uint8_t *)"sensitive=false",
					   15),
			 RHS_OK);
	assert_damage(0, 0);
	raw_sql("UPDATE objects SET record = (SELECT record FROM saved)");
	assert_damage(1, 0);
}
END_TEST

START_TEST(test_deleted_row_and_its_copy_brought_back_are_damage)
{
	uint64_t a = create("key", "01", "a", "a");
	create("key", "02", "b", "b");
	raw_sql("CREATE TABLE saved AS SELECT * FROM objects WHERE id = 1");
	ck_assert_int_eq(rhs_object_delete(store, 0, a), RHS_OK);
	/* Ids are never used twice, even the highest one's. */
	uint64_t c = create("key", "03", "c", "c");
	ck_assert_uint_gt(c, a + 1);
	assert_damage(0, 0);
	raw_sql("INSERT INTO objects SELECT * FROM saved");
	assert_damage(1, 0);
	raw_sql("DELETE FROM saved; DROP TABLE saved;"
		"DELETE FROM objects WHERE id = 1");
	assert_damage(0, 0);
	raw_sql("DELETE FROM objects WHERE id = 2");
	assert_damage(1, 0);
}
END_TEST

START_TEST(test_edited_index_or_moved_row_is_damage)
{
	create("key", "01", "a", "a");
	create("cert", "01", "b", "b");
	raw_sql("UPDATE objects SET ix_label = (SELECT ix_label FROM objects "
		"WHERE id = 2) WHERE id = 1");
	assert_damage(1, 0);
	raw_sql("UPDATE objects SET ix_label = NULL WHERE id = 1");
	assert_damage(1, 0);
	raw_sql("UPDATE objects SET token = 1 WHERE id = 2");
	assert_damage(1, 1);
}
END_TEST

/* The same edits while the store is open: a row that is not what this
 * process wrote is neither used nor written over. */
static int get_object(uint64_t id)
{
	uint8_t *rec;
	size_t len;
	int rc = rhs_object_get(store, 0, id, &rec, &len);
	if (rc == RHS_OK)
		rhs_free(rec, len);
	return rc;
}

static int find_all(void)
{
	uint64_t *ids = NULL;
	size_t n;
	int rc = rhs_object_find(store, 0, NULL, &ids, &n);
	free(ids);
	return rc;
}

START_TEST(test_replayed_rows_under_an_open_store_are_refused)
{
	put_token(0, "failures=0");
	uint64_t id = create("key", "01", "k", "sensitive=false");
	raw_sql("CREATE TABLE saved_o AS SELECT * FROM objects;"
		"CREATE TABLE saved_t AS SELECT * FROM tokens");
	rhs_index_t ix = index_of("key", "01", "k");
	ck_assert_int_eq(rhs_object_update(store, 0, id, &ix,
					   (const uint8_t *)"sensitive=true",
					   14),
			 RHS_OK);
	put_token(0, "failures=5");
	ck_assert_int_eq(get_object(id), RHS_OK);
	raw_sql("UPDATE objects SET record = (SELECT record FROM saved_o);"
		"UPDATE tokens SET record = (SELECT record FROM saved_t)");
	ck_assert_int_eq(get_object(id), RHS_ECHANGED);
	uint8_t *rec;
	size_t len;
	ck_assert_int_eq(rhs_token_get(store, 0, &rec, &len), RHS_ECHANGED);
	ck_assert_int_eq(
		rhs_object_update(store, 0, id, &ix, (const uint8_t *)"x", 1),
		RHS_ECHANGED);
	ck_assert_int_eq(rhs_object_delete(store, 0, id), RHS_ECHANGED);
	ck_assert_int_eq(rhs_token_put(store, 0, (const uint8_t *)"y", 1),
			 RHS_ECHANGED);
}
END_TEST

START_TEST(test_rows_removed_added_or_edited_under_an_open_store)
{
	uint64_t a = create("key", "01", "a", "a");
	uint64_t b = create("key", "02", "b", "b");
	ck_assert_int_eq(find_all(), RHS_OK);
	raw_sql("CREATE TABLE saved AS SELECT * FROM objects WHERE id = 1;"
		"DELETE FROM objects WHERE id = 1");
	ck_assert_int_eq(get_object(a), RHS_ECHANGED);
	ck_assert_int_eq(find_all(), RHS_ECHANGED);
	raw_sql("INSERT INTO objects SELECT * FROM saved");
	ck_assert_int_eq(get_object(a), RHS_OK);
	ck_assert_int_eq(find_all(), RHS_OK);
	raw_sql("UPDATE saved SET id = 40; INSERT INTO objects SELECT * FROM "
		"saved");
	ck_assert_int_eq(find_all(), RHS_ECHANGED);
	raw_sql("DELETE FROM objects WHERE id = 40");
	raw_sql("UPDATE objects SET ix_label = (SELECT ix_label FROM objects "
		"WHERE id = 1) WHERE id = 2");
	ck_assert_int_eq(get_object(b), RHS_ECHANGED);
	ck_assert_int_eq(get_object(a), RHS_OK);
}
END_TEST

START_TEST(test_replayed_state_record_is_damage)
{
	put_token(0, "t0");
	put_token(1, "t1");
	uint64_t before = rhs_counter(store);
	raw_sql("CREATE TABLE saved AS SELECT * FROM meta WHERE name = "
		"'state'");
	create("key", "01", "a", "a");
	ck_assert_uint_gt(rhs_counter(store), before);
	raw_sql("UPDATE meta SET value = (SELECT value FROM saved) "
		"WHERE name = 'state'");
	assert_damage(1, 0);
	ck_assert_uint_eq(rhs_counter(store), before);
}
END_TEST

START_TEST(test_altered_state_record_does_not_open)
{
	raw_sql("UPDATE meta SET value = zeroblob(length(value)) WHERE name = "
		"'state'");
	rhs_close(store);
	store = NULL;
	ck_assert_int_eq(rhs_open(db_path, key, NULL, &store, err, sizeof(err)),
			 RHS_ECORRUPT);
	ck_assert_ptr_nonnull(strstr(err, "sealed state"));
}
END_TEST

START_TEST(test_objects_are_found_by_exact_index_values)
{
	uint64_t key1 = create("key", "01", "Device Priv TLS Key", "k1");
	uint64_t cert = create("cert", "01", "Device Cert", "c1");
	uint64_t key2 = create("key", "02", "Claim Key", "k2");
	uint64_t ids[4];
	ck_assert_uint_eq(find(0, NULL, NULL, NULL, ids), 3);
	ck_assert_uint_eq(find(0, "key", NULL, NULL, ids), 2);
	ck_assert_uint_eq(ids[0], key1);
	ck_assert_uint_eq(ids[1], key2);
	ck_assert_uint_eq(find(0, NULL, "01", NULL, ids), 2);
	ck_assert_uint_eq(find(0, "cert", "01", NULL, ids), 1);
	ck_assert_uint_eq(ids[0], cert);
	ck_assert_uint_eq(find(0, NULL, NULL, "Device Cert", ids), 1);
	ck_assert_uint_eq(find(0, NULL, NULL, "Device Cer", ids), 0);
	ck_assert_uint_eq(find(1, "key", NULL, NULL, ids), 0);
}
END_TEST

START_TEST(test_object_update_and_delete)
{
	uint64_t id = create("key", "01", "old", "v1");
	rhs_index_t ix = index_of("key", "01", "new");
	ck_assert_int_eq(
		rhs_object_update(store, 0, id, &ix, (const uint8_t *)"v2", 2),
		RHS_OK);
	uint64_t ids[4];
	ck_assert_uint_eq(find(0, NULL, NULL, "old", ids), 0);
	ck_assert_uint_eq(find(0, NULL, NULL, "new", ids), 1);
	uint8_t *rec;
	size_t len;
	ck_assert_int_eq(rhs_object_get(store, 0, id, &rec, &len), RHS_OK);
	ck_assert_mem_eq(rec, "v2", 2);
	rhs_free(rec, len);
	ck_assert_int_eq(rhs_object_delete(store, 0, id), RHS_OK);
	ck_assert_int_eq(rhs_object_delete(store, 0, id), RHS_ENOTFOUND);
	ck_assert_int_eq(rhs_object_get(store, 0, id, &rec, &len),
			 RHS_ENOTFOUND);
	ck_assert_int_eq(
		rhs_object_update(store, 0, id, &ix, (const uint8_t *)"x", 1),
		RHS_ENOTFOUND);
}
END_TEST

START_TEST(test_token_wipe_removes_only_that_tokens_objects)
{
	ck_assert_int_eq(rhs_token_put(store, 0, (const uint8_t *)"t0", 2),
			 RHS_OK);
	create("key", "01", "zero", "k");
	rhs_index_t ix = index_of("key", "01", "one");
	uint64_t other;
	ck_assert_int_eq(rhs_object_create(store, 1, &ix, (const uint8_t *)"k",
					   1, &other),
			 RHS_OK);
	ck_assert_int_eq(rhs_token_wipe(store, 0), RHS_OK);
	uint64_t ids[4];
	ck_assert_uint_eq(find(0, NULL, NULL, NULL, ids), 0);
	ck_assert_uint_eq(find(1, NULL, NULL, NULL, ids), 1);
	uint8_t *rec;
	size_t len;
	ck_assert_int_eq(rhs_token_get(store, 0, &rec, &len), RHS_ENOTFOUND);
}
END_TEST

START_TEST(test_transaction_rollback_leaves_nothing)
{
	ck_assert_int_eq(rhs_begin(store), RHS_OK);
	ck_assert_int_eq(rhs_token_put(store, 5, (const uint8_t *)"half", 4),
			 RHS_OK);
	create("key", NULL, "half", "k");
	rhs_rollback(store);
	uint8_t *rec;
	size_t len;
	uint64_t ids[4];
	ck_assert_int_eq(rhs_token_get(store, 5, &rec, &len), RHS_ENOTFOUND);
	ck_assert_uint_eq(find(0, NULL, NULL, NULL, ids), 0);
}
END_TEST

START_TEST(test_full_store_fails_cleanly_and_keeps_what_it_had)
{
	rhs_close(store);
	rhs_open_opts_t small = {.max_pages = 40};
	ck_assert_int_eq(
		rhs_open(db_path, key, &small, &store, err, sizeof(err)),
		RHS_OK);
	char record[2000];
	memset(record, 'r', sizeof(record) - 1);
	record[sizeof(record) - 1] = '\0';
	int created = 0, rc = RHS_OK;
	while (created < 1000) {
		rhs_index_t ix = index_of("key", NULL, "bulk");
		uint64_t id;
		rc = rhs_object_create(store, 0, &ix, (const uint8_t *)record,
				       strlen(record), &id);
		if (rc != RHS_OK)
			break;
		created++;
	}
	ck_assert_int_eq(rc, RHS_EFULL);
	ck_assert_int_gt(created, 0);
	uint64_t ids[4];
	ck_assert_uint_eq(find(0, NULL, NULL, "bulk", ids), (size_t)created);
	uint8_t *rec;
	size_t len;
	ck_assert_int_eq(rhs_object_get(store, 0, ids[0], &rec, &len), RHS_OK);
	rhs_free(rec, len);
}
END_TEST

START_TEST(test_read_only_state_directory_is_a_clear_error)
{
	rhs_close(store);
	store = NULL;
	char ro[128], path[160];
	snprintf(ro, sizeof(ro), "%s/ro", dir);
	mkdir(ro, 0755);
	snprintf(path, sizeof(path), "%s/store.db", ro);
	pid_t pid = fork();
	if (pid == 0) {
		/* Root ignores modes: check as an unprivileged user. */
		if (getuid() == 0 && setresuid(65534, 65534, 65534) < 0)
			_exit(3);
		uint8_t k[RHS_KEY_LEN];
		int krc = rhs_key_load(ro, k, err, sizeof(err));
		int orc = rhs_open(path, key, NULL, &store, err, sizeof(err));
		_exit(krc == RHS_EACCESS && orc == RHS_EACCESS &&
				      strstr(err, "Permission denied")
			      ? 0
			      : 1);
	}
	int status;
	waitpid(pid, &status, 0);
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	reopen();
}
END_TEST
START_TEST(test_files_reveal_no_record_or_index_value)
{
	ck_assert_int_eq(rhs_token_put(store, 0,
				       (const uint8_t *)"SECRET-TOKEN-LABEL",
				       18),
			 RHS_OK);
	create("SECRET-CLASS", "SECRET-ID-BYTES", "SECRET-OBJECT-LABEL",
	       "SECRET-KEY-MATERIAL");
	const char *suffixes[] = {"", "-wal", "-shm"};
	const char *needles[] = {"SECRET-TOKEN-LABEL", "SECRET-CLASS",
				 "SECRET-ID-BYTES", "SECRET-OBJECT-LABEL",
				 "SECRET-KEY-MATERIAL"};
	for (size_t i = 0; i < 3; i++) {
		char path[160];
		snprintf(path, sizeof(path), "%s%s", db_path, suffixes[i]);
		for (size_t j = 0; j < 5; j++)
			ck_assert_msg(!th_file_contains(path, needles[j],
							strlen(needles[j])),
				      "%s in %s", needles[j], path);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("store");
	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_store_and_key_are_created_private);
	tcase_add_test(tc, test_a_location_names_its_backend);
	tcase_add_test(tc, test_token_record_round_trips_and_survives_reopen);
	tcase_add_test(tc, test_flipped_byte_in_a_record_is_detected);
	tcase_add_test(tc, test_record_copied_onto_another_row_does_not_open);
	tcase_add_test(tc, test_wrong_store_key_is_refused);
	tcase_add_test(tc, test_missing_or_malformed_key_file_is_refused);
	tcase_add_test(tc, test_systemd_credential_is_preferred);
	tcase_add_test(tc, test_store_readable_by_others_is_refused);
	tcase_add_test(tc, test_store_in_use_by_another_process_is_refused);
	tcase_add_test(tc, test_newer_schema_is_refused_not_clobbered);
	tcase_add_test(tc, test_store_of_previous_schema_version_is_migrated);
	tcase_add_test(tc, test_replayed_token_row_is_damage);
	tcase_add_test(tc, test_replayed_object_row_is_damage);
	tcase_add_test(tc,
		       test_deleted_row_and_its_copy_brought_back_are_damage);
	tcase_add_test(tc, test_edited_index_or_moved_row_is_damage);
	tcase_add_test(tc, test_replayed_rows_under_an_open_store_are_refused);
	tcase_add_test(tc,
		       test_rows_removed_added_or_edited_under_an_open_store);
	tcase_add_test(tc, test_replayed_state_record_is_damage);
	tcase_add_test(tc, test_altered_state_record_does_not_open);
	tcase_add_test(tc, test_objects_are_found_by_exact_index_values);
	tcase_add_test(tc, test_object_update_and_delete);
	tcase_add_test(tc, test_token_wipe_removes_only_that_tokens_objects);
	tcase_add_test(tc, test_transaction_rollback_leaves_nothing);
	tcase_add_test(tc, test_full_store_fails_cleanly_and_keeps_what_it_had);
	tcase_add_test(tc, test_read_only_state_directory_is_a_clear_error);
	tcase_add_test(tc, test_files_reveal_no_record_or_index_value);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
