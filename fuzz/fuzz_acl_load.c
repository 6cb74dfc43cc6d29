/* libFuzzer target for ACL files: the HOCON parser, the rule loader and the
 * rule matcher. A loaded rule set is exercised with identities that have and
 * lack each field, for both actions, on a few topics and filters. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/acl.h"
#include "config/hocon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const topics[] = {"a/b", "#", "devices/dev-1/t", "$SYS/x", "a/+/c", ""};
    static const struct acl_identity ids[] = {
        {.client_id = "c"},
        {.username = "u", .client_id = "c", .cert_cn = "dev-1", .cert_ou = "Devices"},
        {.username = "a/#", .client_id = "+"},
    };
    struct hocon_doc doc;
    char err[2048];
    if (hocon_parse_string("fuzz.acl", (const char *)data, size, &doc, err, sizeof(err)) != 0)
        return 0;
    struct acl acl;
    if (acl_load_value(&acl, doc.root, err, sizeof(err)) == 0) {
        for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
            for (size_t t = 0; t < sizeof(topics) / sizeof(topics[0]); t++) {
                /* 1 allow, 0 deny, -1 no rule: anything else is a bug */
                int p = acl_check(&acl, &ids[i], ACL_PUBLISH, topics[t], strlen(topics[t]));
                int s = acl_check(&acl, &ids[i], ACL_SUBSCRIBE, topics[t], strlen(topics[t]));
                if (p < -1 || p > 1 || s < -1 || s > 1)
                    abort();
            }
        acl_free(&acl);
    }
    hocon_doc_free(&doc);
    return 0;
}
