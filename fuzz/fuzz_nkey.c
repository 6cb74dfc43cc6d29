/* libFuzzer target for what a NATS client sends to authenticate and
 * authorise (src/auth/nkey.c, the subject checks of src/auth/nats_users.c).
 *
 * The input is split at the first two NULs into a public key, a signature
 * and a nonce; the key and signature go through auth_nkey_verify, and a
 * signature that verifies must belong to a valid user key. The whole input,
 * split at its first NUL, is then a subject and a queue for the publish and
 * subscribe checks against fixed permissions with wildcards, queue entries
 * and denies. A refusal of an unrestricted publish must mean a malformed
 * subject, and what restricted permissions allow, unrestricted ones allow. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/nats_users.h"
#include "fuzz_text.h"

static const char *const sub_allow[] = {"telemetry.>", "cmd.*.get", "jobs.> workers",
                                        "jobs.> pool.*"};
static const char *const sub_deny[] = {"telemetry.secret.>", "jobs.urgent workers"};
static const char *const pub_allow[] = {"orders.*", "audit.>"};
static const char *const pub_deny[] = {"orders.secret"};

static const struct auth_nats_perms perms = {
    .pub_allow = pub_allow,
    .npub_allow = 2,
    .pub_deny = pub_deny,
    .npub_deny = 1,
    .sub_allow = sub_allow,
    .nsub_allow = 4,
    .sub_deny = sub_deny,
    .nsub_deny = 2,
};

static void nkey(const uint8_t *data, size_t size)
{
    char *text = fuzz_text(data, size);
    if (!text)
        return;
    /* Missing parts are the empty string at text + size. */
    size_t klen = strlen(text);
    const char *sig = klen < size ? text + klen + 1 : text + size;
    size_t used = (size_t)(sig - text) + strlen(sig);
    const char *nonce = used < size ? text + used + 1 : text + size;
    size_t nlen = size - (size_t)(nonce - text);
    bool valid = auth_nkey_valid_user_key(text);
    if (auth_nkey_verify(text, (const uint8_t *)nonce, nlen, sig) && !valid)
        abort();
    free(text);
}

static void subjects(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t slen = nul ? (size_t)(nul - data) : size;
    const uint8_t *q = nul ? nul + 1 : NULL;
    size_t qlen = nul ? size - slen - 1 : 0;
    bool open_pub = auth_nats_may_publish(NULL, data, slen);
    if (auth_nats_may_publish(&perms, data, slen) && !open_pub)
        abort();
    bool open_sub = auth_nats_may_subscribe(NULL, data, slen, q, qlen);
    if (auth_nats_may_subscribe(&perms, data, slen, q, qlen) && !open_sub)
        abort();
    if (auth_nats_may_receive(&perms, data, slen, q, qlen) &&
        !auth_nats_may_receive(NULL, data, slen, q, qlen))
        abort();
    if (auth_nats_sub_needs_filter(&perms, data, slen) && !open_pub)
        abort(); /* only a valid filter can need filtering */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    nkey(data, size);
    subjects(data, size);
    return 0;
}
