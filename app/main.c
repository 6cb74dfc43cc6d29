/* ward: one binary, table-dispatched subcommands. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"serve", cmd_serve, "run the broker"},
    {"pub", cmd_pub, "publish messages"},
    {"sub", cmd_sub, "subscribe and print messages"},
    {"bench", cmd_bench, "load generator: throughput, latency, connects per second"},
    {"cert", cmd_cert, "certificate authority: init, server, client, revoke, crl, check ..."},
    {"check", cmd_check, "validate a configuration file"},
    {"passwd", cmd_passwd, "add, change or delete a user in a password file"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: ward COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "  %-8s %s\n", "version", "print the version");
    fprintf(out, "\n'ward COMMAND --help' describes each command.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(name, "version") == 0 || strcmp(name, "--version") == 0) {
        printf("ward %s\n", WARD_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(name, commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "ward: unknown command '%s'\n", name);
    usage(stderr);
    return 2;
}
