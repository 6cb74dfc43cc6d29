/* bcrypt for NATS users and tokens. The known hashes come from three
 * independent implementations: Python's crypt module over libxcrypt
 * ($2b$, $2y$), Go's golang.org/x/crypto/bcrypt, which nats-server uses
 * ($2a$, cost 4, made once with GenerateFromPassword), and the example in
 * the NATS documentation (docs.nats.io, "Authenticating with a User and
 * Password": the hash of "password" from nats-server's mkpasswd). "U*U" is
 * the classic crypt_blowfish/OpenBSD test vector. */
#include <string.h>

#include "auth/nats_users.h"
#include "test.h"

TEST(shape)
{
    ASSERT(auth_is_bcrypt("$2b$10$abcdefghijklmnopqrstuu23JPZtHcGhwXSF41f93o/7vBdDut3Xu"));
    ASSERT(auth_is_bcrypt("$2a$04$k0qS1xEsExVJ8UYToS4yiuA2B.jrMLxRyy79XpXiD7y7F/V1YkF76"));
    ASSERT(auth_is_bcrypt("$2y$31$abcdefghijklmnopqrstuu23JPZtHcGhwXSF41f93o/7vBdDut3Xu"));
    ASSERT(!auth_is_bcrypt(NULL));
    ASSERT(!auth_is_bcrypt(""));
    ASSERT(!auth_is_bcrypt("password"));
    /* $2x$ is the buggy variant, $2$ the original: neither is taken. */
    ASSERT(!auth_is_bcrypt("$2x$10$abcdefghijklmnopqrstuu23JPZtHcGhwXSF41f93o/7vBdDut3Xu"));
    ASSERT(!auth_is_bcrypt("$2$10$abcdefghijklmnopqrstuu23JPZtHcGhwXSF41f93o/7vBdDut3Xuu"));
    ASSERT(!auth_is_bcrypt("$2b$03$abcdefghijklmnopqrstuu23JPZtHcGhwXSF41f93o/7vBdDut3Xu"));
    ASSERT(!auth_is_bcrypt("$2b$32$abcdefghijklmnopqrstuu23JPZtHcGhwXSF41f93o/7vBdDut3Xu"));
    ASSERT(!auth_is_bcrypt("$2b$1a$abcdefghijklmnopqrstuu23JPZtHcGhwXSF41f93o/7vBdDut3Xu"));
    ASSERT(!auth_is_bcrypt("$2b$10$abcdefghijklmnopqrstuu23JPZtHcGhwXSF41f93o/7vBdDut3X"));
    ASSERT(!auth_is_bcrypt("$2b$10$abcdefghijklmnopqrstuu23JPZtHcGhwXSF41f93o/7vBdDut3Xuu"));
    ASSERT(!auth_is_bcrypt("$2b$10$abcdefghijklmnopqrstuu23JPZtHcGhwXSF41f93o/7vBdDut3X+"));
    ASSERT(!auth_is_bcrypt("$2b$10$abcdefghijklmnopqrstuu23JPZtHcGhwXSF41f93o/7vBdDut3X$"));
    ASSERT(!auth_is_bcrypt("$2b$10abcdefghijklmnopqrstuu23JPZtHcGhwXSF41f93o/7vBdDut3Xu$"));
}

TEST(cost)
{
    ASSERT_EQ(auth_bcrypt_cost("$2b$10$abcdefghijklmnopqrstuu23JPZtHcGhwXSF41f93o/7vBdDut3Xu"), 10);
    ASSERT_EQ(auth_bcrypt_cost("$2a$04$k0qS1xEsExVJ8UYToS4yiuA2B.jrMLxRyy79XpXiD7y7F/V1YkF76"), 4);
    ASSERT_EQ(auth_bcrypt_cost("$2y$31$abcdefghijklmnopqrstuu23JPZtHcGhwXSF41f93o/7vBdDut3Xu"), 31);
    ASSERT_EQ(auth_bcrypt_cost("$2b$10$short"), 0);
    ASSERT_EQ(auth_bcrypt_cost(NULL), 0);
}

TEST(known_vectors)
{
    ASSERT(auth_bcrypt_verify("$2b$10$abcdefghijklmnopqrstuu23JPZtHcGhwXSF41f93o/7vBdDut3Xu",
                              "correct horse"));
    ASSERT(auth_bcrypt_verify("$2b$04$abcdefghijklmnopqrstuubyCG3zY1GIXMyxfivm.ClDiInHzxjiq", ""));
    ASSERT(
        auth_bcrypt_verify("$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U"));
    ASSERT(
        auth_bcrypt_verify("$2y$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U"));
    ASSERT(auth_bcrypt_verify("$2y$04$0123456789abcdefghijkekG8PZgjiL/Z03eVCM6EdnnygpbIBIYm",
                              "tok-en"));
    ASSERT(auth_bcrypt_verify("$2a$04$k0qS1xEsExVJ8UYToS4yiuA2B.jrMLxRyy79XpXiD7y7F/V1YkF76",
                              "s3cr3t-ward"));
    ASSERT(auth_bcrypt_verify("$2a$11$1oJy/wZYNTxr9jNwMNwS3eUGhBpHT3On8CL9o7ey89mpgo88VG6ba",
                              "password"));
}

TEST(wrong_inputs)
{
    const char *h = "$2b$10$abcdefghijklmnopqrstuu23JPZtHcGhwXSF41f93o/7vBdDut3Xu";
    ASSERT(!auth_bcrypt_verify(h, "correct horsE"));
    ASSERT(!auth_bcrypt_verify(h, "correct hors"));
    ASSERT(!auth_bcrypt_verify(h, ""));
    ASSERT(!auth_bcrypt_verify(h, NULL));
    ASSERT(!auth_bcrypt_verify(NULL, "correct horse"));
    /* One character of the digest changed; then a plaintext "hash" equal to
     * the password, which must never pass. */
    ASSERT(!auth_bcrypt_verify("$2b$10$abcdefghijklmnopqrstuu23JPZtHcGhwXSF41f93o/7vBdDut3Xv",
                               "correct horse"));
    ASSERT(!auth_bcrypt_verify("correct horse", "correct horse"));
    ASSERT(
        !auth_bcrypt_verify("$2x$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U"));
}

TEST(long_passwords)
{
    char pw[300];
    memset(pw, 'p', sizeof pw - 1);
    pw[sizeof pw - 1] = 0;
    char h[AUTH_BCRYPT_HASH_LEN + 1];
    ASSERT_EQ(auth_bcrypt_hash(pw, 4, h, sizeof h), 0);
    ASSERT(auth_bcrypt_verify(h, pw));
    /* bcrypt reads 72 bytes: a difference after them is not seen. */
    pw[100] = 'q';
    ASSERT(auth_bcrypt_verify(h, pw));
    pw[10] = 'q';
    ASSERT(!auth_bcrypt_verify(h, pw));
    /* Mapped variants refuse what $2a$ implementations disagree on. */
    h[2] = 'a';
    pw[10] = 'p';
    ASSERT(!auth_bcrypt_verify(h, pw));
    pw[255] = 0;
    ASSERT(auth_bcrypt_verify(h, pw));
}

TEST(hash_roundtrip)
{
    char a[AUTH_BCRYPT_HASH_LEN + 1], b[AUTH_BCRYPT_HASH_LEN + 1];
    ASSERT_EQ(auth_bcrypt_hash("hunter2", 4, a, sizeof a), 0);
    ASSERT_EQ(auth_bcrypt_hash("hunter2", 4, b, sizeof b), 0);
    ASSERT(auth_is_bcrypt(a));
    ASSERT_EQ(strncmp(a, "$2b$04$", 7), 0);
    ASSERT(strcmp(a, b) != 0); /* a fresh salt each time */
    ASSERT(auth_bcrypt_verify(a, "hunter2"));
    ASSERT(auth_bcrypt_verify(b, "hunter2"));
    ASSERT(!auth_bcrypt_verify(a, "hunter3"));
    ASSERT_EQ(auth_bcrypt_hash("hunter2", 0, a, sizeof a), 0);
    ASSERT_EQ(strncmp(a, "$2b$11$", 7), 0);
    ASSERT(auth_bcrypt_verify(a, "hunter2"));
}

TEST(hash_refusals)
{
    char h[AUTH_BCRYPT_HASH_LEN + 1];
    ASSERT_EQ(auth_bcrypt_hash("x", 3, h, sizeof h), -1);
    ASSERT_EQ(auth_bcrypt_hash("x", 32, h, sizeof h), -1);
    ASSERT_EQ(auth_bcrypt_hash("x", 4, h, sizeof h - 1), -1);
    ASSERT_EQ(auth_bcrypt_hash(NULL, 4, h, sizeof h), -1);
}

int main(void)
{
    RUN(shape);
    RUN(cost);
    RUN(known_vectors);
    RUN(wrong_inputs);
    RUN(long_passwords);
    RUN(hash_roundtrip);
    RUN(hash_refusals);
    TEST_DONE();
}
