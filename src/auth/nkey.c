/* NKey user keys and their Ed25519 signatures over the INFO nonce: see
 * auth/nats_users.h.
 *
 * An NKey public key is RFC 4648 base32 without padding of: one prefix byte
 * (the key type in its top five bits, 'U' for users), the 32-byte Ed25519
 * public key, and a CRC-16/XMODEM of those 33 bytes, little-endian. */
#include <string.h>

#include <openssl/evp.h>

#include "auth/nats_users.h"

#define NKEY_RAW_LEN    35u /* prefix + key + crc */
#define NKEY_TEXT_LEN   56u /* ceil(35 * 8 / 5) */
#define NKEY_PREFIX_USR (20u << 3)
#define ED25519_KEY_LEN 32u
#define ED25519_SIG_LEN 64u
/* 64 bytes as base64: 86 characters bare, 88 padded. */
#define SIG_TEXT_MAX 88u

static int base32_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= '2' && c <= '7')
        return c - '2' + 26;
    return -1;
}

/* Decodes exactly NKEY_TEXT_LEN characters into NKEY_RAW_LEN bytes; the
 * bits left over at the end must be zero, so one key has one spelling. */
static bool base32_decode_key(const char *s, uint8_t out[NKEY_RAW_LEN])
{
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < NKEY_TEXT_LEN; i++) {
        int v = base32_value(s[i]);
        if (v < 0)
            return false;
        acc = (acc << 5) | (uint32_t)v;
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1u;
        }
    }
    return n == NKEY_RAW_LEN && acc == 0;
}

/* CRC-16/XMODEM: polynomial 0x1021, initial value 0, no reflection. */
static uint16_t crc16_xmodem(const uint8_t *p, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
    }
    return crc;
}

static bool decode_user_key(const char *pubkey, uint8_t key[ED25519_KEY_LEN])
{
    uint8_t raw[NKEY_RAW_LEN];
    if (!pubkey || strlen(pubkey) != NKEY_TEXT_LEN || !base32_decode_key(pubkey, raw))
        return false;
    if (raw[0] != NKEY_PREFIX_USR)
        return false;
    uint16_t want = (uint16_t)(raw[NKEY_RAW_LEN - 2] | (raw[NKEY_RAW_LEN - 1] << 8));
    if (crc16_xmodem(raw, NKEY_RAW_LEN - 2) != want)
        return false;
    memcpy(key, raw + 1, ED25519_KEY_LEN);
    return true;
}

/* see nats_users.h */
bool auth_nkey_valid_user_key(const char *pubkey)
{
    uint8_t key[ED25519_KEY_LEN];
    return decode_user_key(pubkey, key);
}

/* Both alphabets: clients send base64url; some send standard base64. */
static int base64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-' || c == '+')
        return 62;
    if (c == '_' || c == '/')
        return 63;
    return -1;
}

/* Exactly ED25519_SIG_LEN bytes, with or without "==" padding, and zero
 * leftover bits. */
static bool base64_decode_sig(const char *s, uint8_t out[ED25519_SIG_LEN])
{
    size_t len = strnlen(s, SIG_TEXT_MAX + 1);
    if (len == SIG_TEXT_MAX && s[86] == '=' && s[87] == '=')
        len = 86;
    if (len != 86)
        return false;
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int v = base64_value(s[i]);
        if (v < 0)
            return false;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1u;
        }
    }
    return n == ED25519_SIG_LEN && acc == 0;
}

static bool ed25519_verify(const uint8_t key[ED25519_KEY_LEN], const uint8_t *msg, size_t len,
                           const uint8_t sig[ED25519_SIG_LEN])
{
    EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, key, ED25519_KEY_LEN);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = pk && ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk) == 1 &&
              EVP_DigestVerify(ctx, sig, ED25519_SIG_LEN, msg, len) == 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pk);
    return ok;
}

/* see nats_users.h */
bool auth_nkey_verify(const char *pubkey, const uint8_t *nonce, size_t nonce_len, const char *sig)
{
    uint8_t key[ED25519_KEY_LEN], raw[ED25519_SIG_LEN];
    if (!sig || (!nonce && nonce_len) || !decode_user_key(pubkey, key))
        return false;
    if (!base64_decode_sig(sig, raw))
        return false;
    return ed25519_verify(key, nonce ? nonce : (const uint8_t *)"", nonce_len, raw);
}
