/* Placeholder until this command lands; replaced by its real implementation. */
#include <stdio.h>

#include "commands.h"

int cmd_sub(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "ward sub: not implemented yet\n");
    return 2;
}
