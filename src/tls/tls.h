/* TLS for ward: server contexts built from files with every failure named,
 * reloadable while connections are open; the TLS transport (the same table
 * as TCP, src/core/transport.h); peer identities from certificates; the
 * specific cause of every failed handshake; client contexts with hostname
 * verification on by default. OpenSSL 3, TLS 1.2 and 1.3.
 *
 * Threading: a tls_server is shared by every worker. The current SSL_CTX
 * is swapped under a lock on reload; each SSL holds a reference to the
 * context it was made from, so established connections keep theirs. */
#ifndef WARD_TLS_TLS_H
#define WARD_TLS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/result.h"
#include "core/transport.h"

#define TLS_TRIM_AFTER_DEFAULT 256

enum tls_verify { TLS_VERIFY_NONE, TLS_VERIFY_OPTIONAL, TLS_VERIFY_REQUIRED };

/* Which certificate field becomes the MQTT user name or client id. */
enum tls_id_field {
    TLS_ID_NONE,
    TLS_ID_CN,
    TLS_ID_DN,
    TLS_ID_SAN_DNS,
    TLS_ID_SAN_EMAIL,
    TLS_ID_SAN_URI
};

#define TLS_MAX_SNI 8

/* A certificate chosen by the name the client asks for (SNI). */
struct tls_sni {
    const char *host; /* "broker.example.com" or "*.example.com" */
    const char *certfile, *keyfile;
};

struct tls_server_config {
    const char *certfile; /* the server certificate, chain after it */
    const char *keyfile;
    const char *key_password;
    const char *cafile; /* trusted CAs for client certificates */
    const char *capath;
    const char *crlfile; /* one PEM file, may hold several CRLs */
    enum tls_verify verify;
    const char *min_version;  /* "1.2" (default) or "1.3" */
    const char *ciphers;      /* TLS 1.2 cipher list, NULL: OpenSSL's default */
    const char *ciphersuites; /* TLS 1.3 */
    const char *groups;       /* key exchange groups ("X25519:P-256"), NULL: default */
    uint32_t verify_depth;    /* 1 + most intermediate CAs above a client's; 0: default */
    bool crl_strict;          /* refuse everyone when the CRL is past next update */
    uint32_t handshake_timeout_ms;
    uint32_t max_handshakes;   /* in progress at once; 0: 1000 */
    uint32_t expiry_warn_days; /* 0: 30 */
    /* Once no handshake is running and this many have ended since the last
     * time, and a quarter as many as there are connections open (at most
     * once a second), the allocator gives the memory they freed back to the
     * kernel (glibc's malloc_trim). 0: TLS_TRIM_AFTER_DEFAULT; UINT32_MAX:
     * never. */
    uint32_t trim_after;
    struct tls_sni sni[TLS_MAX_SNI]; /* extra certificates by server name */
    unsigned nsni;
    enum tls_id_field as_username, as_clientid;
};

/* Causes of a failed handshake, counted per listener. */
enum tls_cause {
    TLS_CAUSE_NO_CERT,
    TLS_CAUSE_UNKNOWN_CA,
    TLS_CAUSE_EXPIRED,
    TLS_CAUSE_NOT_YET_VALID,
    TLS_CAUSE_REVOKED,
    TLS_CAUSE_BAD_USAGE,
    TLS_CAUSE_PROTOCOL_VERSION,
    TLS_CAUSE_NO_SHARED_CIPHER,
    TLS_CAUSE_TIMEOUT,
    TLS_CAUSE_PLAINTEXT,
    TLS_CAUSE_BAD_CERT,
    TLS_CAUSE_BUSY,
    TLS_CAUSE_PEER_CLOSED, /* the peer closed before finishing (port probes, health checks) */
    TLS_CAUSE_OTHER,
    TLS_NCAUSES
};
const char *tls_cause_name(enum tls_cause c);

struct tls_server;

/* Builds the listener's TLS state. Returns NULL with "file: cause" in err
 * (a key that cannot be read or decrypted, a key that does not match its
 * certificate, an expired server certificate, an unreadable CA or CRL). */
WARD_WUR struct tls_server *tls_server_new(const struct tls_server_config *cfg, char *err,
                                           size_t errlen);
/* Re-reads the files; swaps only if they all load. Returns 0 or -1 (the
 * running material stays). */
WARD_WUR int tls_server_reload(struct tls_server *s, char *err, size_t errlen);
/* True if any file changed (mtime, size, inode) since the last load. */
bool tls_server_files_changed(struct tls_server *s);
void tls_server_free(struct tls_server *s);
const struct tls_server_config *tls_server_config(const struct tls_server *s);
void tls_server_counters(const struct tls_server *s, uint64_t out[TLS_NCAUSES]);
/* Whether to trim once no handshake is running: ended handshakes since the
 * last trim, connections open, trim_after (UINT32_MAX: never), ms since the
 * last trim. Exposed for its test. */
bool tls_trim_due(uint32_t ended, uint32_t conns, uint32_t after, int64_t since_ms);
/* How many times the heap was trimmed after a burst of handshakes (trim_after). */
uint64_t tls_server_trims(const struct tls_server *s);
/* Days until the server certificate expires. */
long tls_server_days_left(const struct tls_server *s);

/* Everything in use that can expire: the server certificate and its chain,
 * the trusted CAs, each CRL's next update. */
struct tls_expiry {
    char what[300]; /* "server certificate CN=broker (server.crt)" */
    long days;      /* days left; negative: past */
};
/* Fills up to max entries; returns how many. */
WARD_WUR int tls_server_expiries(struct tls_server *s, struct tls_expiry *out, int max);
/* Counts a connection refused before its handshake (too many at once). */
void tls_server_count(struct tls_server *s, enum tls_cause c);

/* The peer as its certificate names it. */
struct tls_identity {
    bool verified;  /* a client certificate was presented and verified */
    bool ambiguous; /* its names hold a NUL or control character, repeat the CN or OU,
                       use a type that is not text, or do not fit: no identity */
    char cn[256], ou[128], dn[512], san_dns[256], san_email[256], san_uri[256];
    char serial[64];
};
const char *tls_identity_get(const struct tls_identity *id, enum tls_id_field f);
/* Parses "cn", "dn", "san_dns", "san_email", "san_uri", "none". -1 if unknown. */
WARD_WUR int tls_id_field_parse(const char *s);

/* The transport. tls_transport_new takes over nothing: net still owns fd. */
extern const struct transport_ops tls_transport_ops;
WARD_WUR void *tls_transport_new(struct tls_server *s, int fd, const char *peer);
/* After the handshake, the peer's identity worked out from its certificate
 * (kept by the session, not copied per connection) into the calling
 * thread's storage: valid until this thread's next call (copy what you
 * keep). NULL before the handshake. */
const struct tls_identity *tls_transport_identity(void *t);
/* The protocol and cipher negotiated, for logs ("TLSv1.3 TLS_AES_128_GCM_SHA256"),
 * in the calling thread's storage until its next call; "" before the handshake. */
const char *tls_transport_describe(void *t);
/* True once the handshake is done. */
bool tls_transport_ready(void *t);
/* Whether the peer's certificate is on the server's current CRL (after a
 * reload revoked it). */
bool tls_transport_revoked(void *t, struct tls_server *s);

/* ---- clients ---- */
struct tls_client_config {
    const char *cafile, *capath;
    const char *certfile, *keyfile, *key_password;
    const char *min_version, *ciphers;
    const char *servername; /* SNI and the name verified; default: the host */
    const char *alpn;
    bool insecure; /* skip the host name check only (the chain is still verified) */
    bool resume;   /* offer the last session again (resumed handshakes) */
};
struct tls_client;
WARD_WUR struct tls_client *tls_client_new(const struct tls_client_config *cfg, char *err,
                                           size_t errlen);
void tls_client_free(struct tls_client *c);
/* A client transport over a connected socket: handshake() drives it. The
 * host is what the certificate must name (DNS SAN or IP SAN). */
WARD_WUR void *tls_client_transport_new(struct tls_client *c, int fd, const char *host);

#endif
