/* NKey user keys and Ed25519 signatures over the INFO nonce.
 *
 * The vectors were made once with nats.go's own nkeys package (Debian's
 * golang-github-nats-io-nkeys-dev), not with our code, by this program run as
 * GO111MODULE=off GOPATH=/usr/share/gocode go run main.go:
 *
 *     raw := make([]byte, 32)
 *     for i := range raw { raw[i] = byte(i + 1) }
 *     seed, _ := nkeys.EncodeSeed(nkeys.PrefixByteUser, raw)
 *     kp, _ := nkeys.FromSeed(seed)
 *     pub, _ := kp.PublicKey()
 *     sig, _ := kp.Sign([]byte("bPc5-UG4LA1o4iPJ2E_-GA"))
 *     // printed: seed, pub, base64.RawURLEncoding and StdEncoding of sig
 *
 * The seed is those 32 raw bytes 1, 2, ..., 32: a throwaway test value, kept
 * here only as that recipe (no encoded private key is committed). OTHER_PUB
 * is the public key of raw[i] = byte(2*i + 7); ACCOUNT_PUB is from
 * nkeys.CreateAccount(). */
#include <string.h>

#include "auth/nats_users.h"
#include "test.h"

#define PUB         "UB43KVROR7TFJ6KAPCYRF2FJROTZAH4FHLTJLPWX4DRZCC5NASLGJBFE"
#define OTHER_PUB   "UDXZDLX42OF4KOBFEDZPEAPZEXHT3B5Y7BYDXHCBMEGRZASJZX2YEZED"
#define ACCOUNT_PUB "ADYLD6UK7KNWEESBXWDH6SEVFQVPLJD2OLEK3VWLKJZ3M57MEHSRD5AE"
#define NONCE       "bPc5-UG4LA1o4iPJ2E_-GA"
#define SIG_URL                                                                                    \
    "D8SnEFnk6vDhcrMlVmBdW1zH1f_1Hfi9OgwD0BeVAbjVibdlfVUEhDyKR0QAmR5ziV5La_3adA2rLV312zAtAg"
#define SIG_STD                                                                                    \
    "D8SnEFnk6vDhcrMlVmBdW1zH1f/1Hfi9OgwD0BeVAbjVibdlfVUEhDyKR0QAmR5ziV5La/3adA2rLV312zAtAg=="

static bool verify(const char *pub, const char *nonce, const char *sig)
{
    return auth_nkey_verify(pub, (const uint8_t *)nonce, strlen(nonce), sig);
}

TEST(valid_user_keys)
{
    ASSERT(auth_nkey_valid_user_key(PUB));
    ASSERT(auth_nkey_valid_user_key(OTHER_PUB));
    /* Right shape and checksum, another type: an account key. */
    ASSERT(!auth_nkey_valid_user_key(ACCOUNT_PUB));
    ASSERT(!auth_nkey_valid_user_key(NULL));
    ASSERT(!auth_nkey_valid_user_key(""));
}

TEST(bad_encodings)
{
    char k[sizeof PUB];
    memcpy(k, PUB, sizeof PUB);
    k[20] = k[20] == 'A' ? 'B' : 'A'; /* the key changes, the CRC no longer fits */
    ASSERT(!auth_nkey_valid_user_key(k));
    memcpy(k, PUB, sizeof PUB);
    k[sizeof PUB - 2] = k[sizeof PUB - 2] == 'A' ? 'B' : 'A'; /* the CRC itself */
    ASSERT(!auth_nkey_valid_user_key(k));
    const char bad_chars[] = {'1', '8', '0', '=', 'a', ' '};
    for (size_t i = 0; i < sizeof bad_chars; i++) {
        memcpy(k, PUB, sizeof PUB);
        k[30] = bad_chars[i];
        ASSERT(!auth_nkey_valid_user_key(k));
    }
    ASSERT(!auth_nkey_valid_user_key("UB43KVROR7TFJ6KAPCYRF2FJROTZAH4FHLTJLPWX4DRZCC5NASLGJBF"));
    ASSERT(!auth_nkey_valid_user_key("UB43KVROR7TFJ6KAPCYRF2FJROTZAH4FHLTJLPWX4DRZCC5NASLGJBFEA"));
    ASSERT(!auth_nkey_valid_user_key("ub43kvror7tfj6kapcyrf2fjrotzah4fhltjlpwx4drzcc5naslgjbfe"));
}

TEST(good_signatures)
{
    ASSERT(verify(PUB, NONCE, SIG_URL));
    ASSERT(verify(PUB, NONCE, SIG_STD));
    /* Standard alphabet without padding, as some clients send it. */
    char s[sizeof SIG_STD];
    memcpy(s, SIG_STD, sizeof SIG_STD);
    s[86] = 0;
    ASSERT(verify(PUB, NONCE, s));
}

TEST(wrong_signatures)
{
    ASSERT(!verify(OTHER_PUB, NONCE, SIG_URL));
    ASSERT(!verify(ACCOUNT_PUB, NONCE, SIG_URL));
    ASSERT(!verify(PUB, "bPc5-UG4LA1o4iPJ2E_-GB", SIG_URL));
    ASSERT(!verify(PUB, "bPc5-UG4LA1o4iPJ2E_-G", SIG_URL));
    ASSERT(!verify(PUB, NONCE "A", SIG_URL));
    ASSERT(!verify(PUB, "", SIG_URL));
    char s[sizeof SIG_URL];
    memcpy(s, SIG_URL, sizeof SIG_URL);
    s[10] = s[10] == 'A' ? 'B' : 'A';
    ASSERT(!verify(PUB, NONCE, s));
}

TEST(malformed_signatures)
{
    char s[sizeof SIG_STD + 2];
    ASSERT(!verify(PUB, NONCE, ""));
    ASSERT(!auth_nkey_verify(PUB, (const uint8_t *)NONCE, strlen(NONCE), NULL));
    ASSERT(!auth_nkey_verify(PUB, NULL, 3, SIG_URL));
    ASSERT(!auth_nkey_verify(NULL, (const uint8_t *)NONCE, strlen(NONCE), SIG_URL));
    /* One character short, one too many, one '=' only, three '='. */
    memcpy(s, SIG_URL, sizeof SIG_URL);
    s[85] = 0;
    ASSERT(!verify(PUB, NONCE, s));
    memcpy(s, SIG_URL "A", sizeof SIG_URL + 1);
    ASSERT(!verify(PUB, NONCE, s));
    memcpy(s, SIG_STD, sizeof SIG_STD);
    s[87] = 0;
    ASSERT(!verify(PUB, NONCE, s));
    memcpy(s, SIG_STD "=", sizeof SIG_STD + 1);
    ASSERT(!verify(PUB, NONCE, s));
    /* The last character carries 2 bits of the signature and 4 spare bits,
     * which must be zero: one signature, one spelling. */
    memcpy(s, SIG_URL, sizeof SIG_URL);
    s[85] = 'h';
    ASSERT(!verify(PUB, NONCE, s));
    memcpy(s, SIG_URL, sizeof SIG_URL);
    s[40] = '.';
    ASSERT(!verify(PUB, NONCE, s));
    memcpy(s, SIG_URL, sizeof SIG_URL);
    s[40] = '=';
    ASSERT(!verify(PUB, NONCE, s));
}

int main(void)
{
    RUN(valid_user_keys);
    RUN(bad_encodings);
    RUN(good_signatures);
    RUN(wrong_signatures);
    RUN(malformed_signatures);
    TEST_DONE();
}
