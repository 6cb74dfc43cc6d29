/* Placeholder until this command lands; replaced by its real implementation. */
#include <stdio.h>

#include "commands.h"

int cmd_pub(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "ward pub: not implemented yet\n");
    return 2;
}
