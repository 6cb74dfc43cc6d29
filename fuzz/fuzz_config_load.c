/* libFuzzer target for the configuration loader: the HOCON-subset parser and
 * the schema checks behind it. Any text must give either a configuration or
 * a list of errors, never a crash or a leak. Environment substitution and
 * includes are exercised too (includes of paths that do not exist must fail
 * cleanly). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "fuzz_text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_text(data, size);
    if (!text)
        return 0;

    struct ward_config cfg;
    struct cfg_errors errs;
    memset(&cfg, 0, sizeof cfg);
    memset(&errs, 0, sizeof errs);
    if (config_load_string("fuzz.conf", text, &cfg, &errs) == 0)
        config_free(&cfg);
    cfg_errors_free(&errs);
    free(text);
    return 0;
}
