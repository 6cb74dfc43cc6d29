/* `ward passwd FILE USER`: adds or changes a user in a password file (the
 * password from a prompt on a terminal, else the first line of standard
 * input); `-D` deletes the user; `-c FILE` hashes the plaintext passwords
 * of a NanoMQ password file in place.
 * `ward passwd --bcrypt`: prints a bcrypt hash of the password, for the
 * users of a NATS listener's authorization { } block (nats-server's form). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "auth/nats_users.h"
#include "auth/passwd.h"
#include "commands.h"
#include "opts.h"
#include "secret.h"

static int get_password(char *pw, size_t cap)
{
    if (secret_read("Password: ", pw, cap) < 0) {
        fprintf(stderr, "ward passwd: no password given on standard input\n");
        return -1;
    }
    if (isatty(STDIN_FILENO)) {
        char again[1024];
        int rc = secret_read("Password again: ", again, sizeof(again));
        bool same = rc == 0 && strcmp(pw, again) == 0;
        OPENSSL_cleanse(again, sizeof(again));
        if (!same) {
            fprintf(stderr, "ward passwd: the passwords differ; nothing changed\n");
            return -1;
        }
    }
    if (!*pw) {
        fprintf(stderr, "ward passwd: empty password refused\n");
        return -1;
    }
    return 0;
}

struct passwd_opts {
    bool del;
    bool convert;
    bool bcrypt;
    unsigned cost;
};

static const struct opt table[] = {
    {NULL, 'D', OPT_SET, NULL, OPT_AT(struct passwd_opts, del), .help = "delete USER from FILE"},
    {NULL, 'c', OPT_SET, NULL, OPT_AT(struct passwd_opts, convert),
     .help = "hash the plaintext passwords of FILE (NanoMQ's\npassword file) in place; no USER"},
    {"bcrypt", 0, OPT_SET, NULL, OPT_AT(struct passwd_opts, bcrypt),
     .help = "print a bcrypt hash of the password instead\n(no FILE or USER), for a NATS "
             "listener's\nauthorization { users = [...] }"},
    {"cost", 0, OPT_UINT, "N", OPT_AT(struct passwd_opts, cost), .lo = 4,
     .hi = AUTH_BCRYPT_MAX_COST, .help = "with --bcrypt: the cost (default 11)"},
    {"help", 'h', OPT_HELP, .help = "this help"},
};

/* --bcrypt: the hash on standard output, nothing written anywhere else. */
static int print_bcrypt(unsigned cost)
{
    char pw[1024] = "", hash[AUTH_BCRYPT_HASH_LEN + 1];
    int rc = 1;
    if (get_password(pw, sizeof(pw)) < 0)
        goto out;
    if (auth_bcrypt_hash(pw, cost, hash, sizeof(hash)) < 0) {
        fprintf(stderr, "ward passwd: cannot make a bcrypt hash\n");
        goto out;
    }
    printf("%s\n", hash);
    rc = 0;
out:
    OPENSSL_cleanse(pw, sizeof(pw));
    return rc;
}

/* -c: every plaintext password of file hashed, the file rewritten (only
 * if there was one). Returns the exit status. */
static int convert(const char *file)
{
    struct passwd_db db;
    char err[1024];
    size_t n = 0;
    passwd_db_init(&db);
    int rc = passwd_convert(&db, file, &n, err, sizeof(err));
    if (rc == 0 && n)
        rc = passwd_save(&db, file, err, sizeof(err));
    passwd_db_free(&db);
    if (rc < 0) {
        fprintf(stderr, "ward passwd: %s\n", err);
        return 1;
    }
    fprintf(stderr, "%s: %zu plaintext password%s hashed\n", file, n, n == 1 ? "" : "s");
    return 0;
}

/* Sets (or with del, deletes) user in file. Returns the exit status. */
static int update(const char *file, const char *user, bool del)
{
    int rc = 1;
    struct passwd_db db;
    char err[1024] = "", pw[1024] = "";
    passwd_db_init(&db);
    if (access(file, F_OK) == 0 && passwd_load(&db, file, err, sizeof(err)) < 0) {
        fprintf(stderr, "ward passwd: %s\n", err);
        goto out;
    }
    if (del) {
        if (!passwd_delete(&db, user)) {
            fprintf(stderr, "ward passwd: %s: no user '%s'\n", file, user);
            goto out;
        }
    } else if (get_password(pw, sizeof(pw)) < 0 ||
               passwd_set(&db, user, pw, strlen(pw), err, sizeof(err)) < 0) {
        if (*err)
            fprintf(stderr, "ward passwd: %s\n", err);
        goto out;
    }
    if (passwd_save(&db, file, err, sizeof(err)) < 0) {
        fprintf(stderr, "ward passwd: %s\n", err);
        goto out;
    }
    fprintf(stderr, "%s: user '%s' %s\n", file, user, del ? "deleted" : "set");
    rc = 0;
out:
    OPENSSL_cleanse(pw, sizeof(pw));
    passwd_db_free(&db);
    return rc;
}

int cmd_passwd(int argc, char **argv)
{
    struct opts p = {
        .prog = "ward passwd",
        .table = table,
        .n = sizeof(table) / sizeof(table[0]),
        .max_pos = 2,
        .usage = "usage: ward passwd [-D] FILE USER\n"
                 "       ward passwd -c FILE\n"
                 "       ward passwd --bcrypt [--cost N]\n"
                 "  Adds USER to FILE or changes their password; FILE is created if needed.\n"
                 "  The password is prompted for on a terminal, otherwise read as the first\n"
                 "  line of standard input.\n",
        .footer = "FILE is referenced from the configuration as\n"
                  "  auth { password = {include \"FILE\"} }\n"};
    struct passwd_opts o = {0};
    int npos;
    int rc = opts_parse(&p, &o, argc, argv, 1, &npos);
    if (rc)
        return rc == OPTS_HELP ? 0 : rc;
    if (o.bcrypt && (npos != 0 || o.del || o.convert))
        return opts_fail(&p, "%s", "--bcrypt takes no FILE, USER, -D or -c");
    if (o.cost && !o.bcrypt)
        return opts_fail(&p, "%s", "--cost goes with --bcrypt");
    if (o.bcrypt)
        return print_bcrypt(o.cost);
    if (o.convert && (npos != 1 || o.del))
        return opts_fail(&p, "%s", "-c takes FILE alone (no USER or -D)");
    if (o.convert)
        return convert(argv[1]);
    if (npos != 2)
        return opts_fail(&p, "%s", "FILE and USER are needed");
    return update(argv[1], argv[2], o.del);
}
