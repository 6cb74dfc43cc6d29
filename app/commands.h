/* The `ward` subcommands. Each takes the arguments after its own name
 * (argv[0] is the subcommand) and returns the process exit status. */
#ifndef WARD_APP_COMMANDS_H
#define WARD_APP_COMMANDS_H

int cmd_serve(int argc, char **argv);
int cmd_pub(int argc, char **argv);
int cmd_sub(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_cert(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_passwd(int argc, char **argv);
int cmd_apikey(int argc, char **argv);
int cmd_status(int argc, char **argv);

#endif
