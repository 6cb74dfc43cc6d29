/* `ward apikey add FILE NAME --scope read|admin`: makes a key for the admin
 * HTTP server, stores only its salted hash in FILE and prints the key once;
 * `ward apikey list FILE`; `ward apikey remove FILE NAME`. A running broker
 * reads FILE again on SIGHUP. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "admin/apikey.h"
#include "commands.h"
#include "opts.h"

struct apikey_opts {
    unsigned scope; /* enum admin_scope; 0: not given */
};

static const struct opt_choice scopes[] = {
    {"read", ADMIN_SCOPE_READ},
    {"admin", ADMIN_SCOPE_ADMIN},
    {NULL, 0},
};

static const struct opt table[] = {
    {"scope", 's', OPT_CHOICE, "SCOPE", OPT_AT(struct apikey_opts, scope), .choices = scopes,
     .help = "add: read (GET endpoints, metrics) or admin\n(everything: kick, publish, delete, "
             "reload)"},
    {"help", 'h', OPT_HELP, .help = "this help"},
};

/* Loads FILE (absent: empty when may_create). 0 or -1 (reported). */
static int load(struct apikey_db *db, const char *file, bool may_create)
{
    char err[1024];
    apikey_db_init(db);
    if (apikey_load(db, file, may_create, err, sizeof(err)) < 0) {
        fprintf(stderr, "ward apikey: %s\n", err);
        return -1;
    }
    return 0;
}

static int save(struct apikey_db *db, const char *file)
{
    char err[1024];
    if (apikey_save(db, file, err, sizeof(err)) < 0) {
        fprintf(stderr, "ward apikey: %s\n", err);
        return -1;
    }
    return 0;
}

static int add(const char *file, const char *name, enum admin_scope scope)
{
    struct apikey_db db;
    char key[APIKEY_LEN + 1], err[1024];
    int rc = 1;
    if (load(&db, file, true) < 0)
        return 1;
    if (apikey_generate(key, sizeof(key)) < 0) {
        fprintf(stderr, "ward apikey: no random bytes\n");
        goto out;
    }
    bool replaced = apikey_find(&db, name) != NULL;
    if (apikey_add(&db, name, scope, key, err, sizeof(err)) < 0) {
        fprintf(stderr, "ward apikey: %s\n", err);
        goto out;
    }
    if (save(&db, file) < 0)
        goto out;
    /* The key on standard output alone, so `KEY=$(ward apikey add ...)` works. */
    printf("%s\n", key);
    fprintf(stderr, "%s: key '%s' (%s) %s; it is shown only this once\n", file, name,
            apikey_scope_name(scope), replaced ? "replaced" : "added");
    rc = 0;
out:
    OPENSSL_cleanse(key, sizeof(key));
    apikey_db_free(&db);
    return rc;
}

static int list(const char *file)
{
    struct apikey_db db;
    if (load(&db, file, false) < 0)
        return 1;
    for (size_t i = 0; i < db.n; i++)
        printf("%s\t%s\n", db.keys[i].name, apikey_scope_name(db.keys[i].scope));
    apikey_db_free(&db);
    return 0;
}

static int remove_key(const char *file, const char *name)
{
    struct apikey_db db;
    int rc = 1;
    if (load(&db, file, false) < 0)
        return 1;
    if (!apikey_remove(&db, name))
        fprintf(stderr, "ward apikey: %s: no key '%s'\n", file, name);
    else if (save(&db, file) == 0) {
        fprintf(stderr, "%s: key '%s' removed (a running broker drops it on SIGHUP)\n", file, name);
        rc = 0;
    }
    apikey_db_free(&db);
    return rc;
}

int cmd_apikey(int argc, char **argv)
{
    struct opts p = {
        .prog = "ward apikey",
        .table = table,
        .n = sizeof(table) / sizeof(table[0]),
        .max_pos = 3,
        .usage = "usage: ward apikey add FILE NAME --scope read|admin\n"
                 "       ward apikey list FILE\n"
                 "       ward apikey remove FILE NAME\n"
                 "  API keys for the admin HTTP server. add prints the new key once (FILE\n"
                 "  keeps only a salted hash) and creates FILE (mode 0600) if needed.\n",
        .footer = "FILE is referenced from the configuration as\n"
                  "  http { api_keys = {include \"FILE\"} }\n"
                  "Present a key as 'Authorization: Bearer KEY', or HTTP Basic with the\n"
                  "key's NAME as user and the key as password.\n"};
    struct apikey_opts o = {0};
    int npos;
    int rc = opts_parse(&p, &o, argc, argv, 1, &npos);
    if (rc)
        return rc == OPTS_HELP ? 0 : rc;
    const char *verb = npos >= 1 ? argv[1] : "";
    if (strcmp(verb, "add") == 0 && npos == 3) {
        if (!o.scope)
            return opts_fail(&p, "%s", "add needs --scope read or --scope admin");
        return add(argv[2], argv[3], (enum admin_scope)o.scope);
    }
    if (o.scope)
        return opts_fail(&p, "%s", "--scope goes with add");
    if (strcmp(verb, "list") == 0 && npos == 2)
        return list(argv[2]);
    if (strcmp(verb, "remove") == 0 && npos == 3)
        return remove_key(argv[2], argv[3]);
    return opts_fail(&p, "%s", "add FILE NAME --scope S, list FILE or remove FILE NAME");
}
