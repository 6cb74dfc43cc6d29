/* `ward passwd FILE USER`: adds or changes a user in a password file (the
 * password from a prompt on a terminal, else the first line of standard
 * input); `-D` deletes the user; `-c` converts a NanoMQ plaintext file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "auth/passwd.h"
#include "commands.h"
#include "secret.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: ward passwd [-D] FILE USER\n"
                 "  Adds USER to FILE or changes their password; FILE is created if needed.\n"
                 "  The password is prompted for on a terminal, otherwise read as the first\n"
                 "  line of standard input.\n"
                 "  -D  delete USER from FILE\n"
                 "FILE is referenced from the configuration as\n"
                 "  auth { password = {include \"FILE\"} }\n");
}

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

int cmd_passwd(int argc, char **argv)
{
    bool del = false;
    int ch;
    optind = 1;
    while ((ch = getopt(argc, argv, "Dh")) != -1) {
        switch (ch) {
        case 'D':
            del = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (argc - optind != 2) {
        usage(stderr);
        return 2;
    }
    const char *file = argv[optind], *user = argv[optind + 1];
    struct passwd_db db;
    char err[1024] = "", pw[1024] = "";
    int rc = 1;
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
