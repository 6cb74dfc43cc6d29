/* `ward check -c FILE`: validate a configuration file and print what it
 * means; `ward check --print-reference`: the configuration reference. */
#include <stdio.h>
#include <string.h>

#include "auth/acl.h"
#include "auth/passwd.h"
#include "commands.h"
#include "config/config.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: ward check -c FILE        validate FILE and print the effective "
                 "configuration\n"
                 "       ward check --print-reference   print docs/configuration.md\n");
}

/* The password file and the ACL are part of the configuration: a file that
 * `ward serve` would refuse fails the check too. */
static int check_auth_files(const struct ward_config *cfg)
{
    char err[4096];
    int rc = 0;
    if (cfg->password_file) {
        struct passwd_db db;
        passwd_db_init(&db);
        if (passwd_load(&db, cfg->password_file, err, sizeof(err)) < 0) {
            fprintf(stderr, "%s\n", err);
            rc = -1;
        }
        passwd_db_free(&db);
    }
    if (cfg->acl_file) {
        struct acl acl;
        if (acl_load(&acl, cfg->acl_file, err, sizeof(err)) < 0) {
            fprintf(stderr, "%s\n", err);
            rc = -1;
        }
        acl_free(&acl);
    }
    return rc;
}

int cmd_check(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "--print-reference") == 0) {
            config_print_reference(stdout);
            return 0;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "ward check: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    struct ward_config cfg;
    struct cfg_errors errs;
    if (config_load(path, &cfg, &errs) != 0) {
        for (size_t i = 0; i < errs.count; i++)
            fprintf(stderr, "%s\n", errs.msgs[i]);
        fprintf(stderr, "ward check: %s: %zu error%s\n", path, errs.count,
                errs.count == 1 ? "" : "s");
        cfg_errors_free(&errs);
        return 1;
    }
    cfg_errors_free(&errs);
    if (check_auth_files(&cfg) < 0) {
        config_free(&cfg);
        return 1;
    }
    printf("# %s is valid; effective configuration with defaults filled in:\n", path);
    config_print(&cfg, stdout);
    config_free(&cfg);
    return 0;
}
