/* ward's configuration: the typed result of loading a HOCON file through the
 * schema (schema.c), with defaults filled in.
 *
 * NanoMQ's block and key names are used where NanoMQ has them, so a NanoMQ
 * file loads unchanged; ward's own keys extend the same blocks. */
#ifndef WARD_CONFIG_CONFIG_H
#define WARD_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/result.h"

enum cfg_listener_kind {
    CFG_LISTENER_TCP,
    CFG_LISTENER_SSL,
    CFG_LISTENER_WS,
    CFG_LISTENER_WSS,
    CFG_LISTENER_NATS,   /* listeners.nats: the NATS client protocol, TLS with a tls { } block */
    CFG_LISTENER_NATS_WS /* listeners.nats_ws: NATS over WebSocket (nats-server's websocket { }) */
};

/* listeners.ssl.NAME.sni = [{host, certfile, keyfile}]: more certificates
 * on one listener, chosen by the name the client asks for. */
struct cfg_sni {
    char *host;
    char *certfile;
    char *keyfile;
};

/* NATS listeners: nats-server's `permissions { }` of one user. Subject
 * lists are NULL-free arrays of n strings; absent lists have n == 0. */
struct cfg_nats_perms {
    char **pub_allow, **pub_deny, **sub_allow, **sub_deny;
    size_t npub_allow, npub_deny, nsub_allow, nsub_deny;
    bool allow_responses;
    uint32_t responses_max;        /* 0: nats-server's default (1) */
    uint32_t responses_expires_ms; /* 0: no expiry */
};

/* One entry of `authorization { users = [...] }`: a user with a bcrypt
 * password (or none, under tls.verify_and_map or as no_auth_user), or an
 * NKey public key. */
struct cfg_nats_user {
    char *user;
    char *password; /* a bcrypt hash ($2a$ $2b$ $2y$) */
    char *nkey;     /* "U..." */
    bool has_perms;
    struct cfg_nats_perms perms;
};

struct cfg_listener {
    char *name; /* "default" for an unnamed listeners.tcp block */
    enum cfg_listener_kind kind;
    bool enable;
    char *bind;
    uint32_t max_connections;
    int allow_anonymous;               /* -1: inherit auth.allow_anonymous */
    bool require_password;             /* a certificate alone does not log in */
    char *clientid_must_match;         /* none username cert_cn */
    char *overload;                    /* NULL: mqtt.overload */
    uint32_t max_output_bytes;         /* 0: mqtt.max_output_bytes */
    uint32_t slow_consumer_timeout_ms; /* K_MS with no default: 0 = inherit */
    /* TLS (ssl and wss listeners) */
    char *keyfile;
    char *certfile;
    char *cacertfile;
    char *capath;
    char *key_password;
    char *crlfile;
    bool verify_peer;
    bool fail_if_no_peer_cert;
    char *tls_version;  /* minimum: "1.2" or "1.3" */
    char *ciphers;      /* TLS 1.2 cipher list */
    char *ciphersuites; /* TLS 1.3 suites */
    char *tls_groups;   /* key exchange groups */
    uint32_t verify_depth;
    char *peer_cert_as_username; /* cn dn san_dns san_email san_uri none */
    char *peer_cert_as_clientid;
    uint32_t handshake_timeout_ms;
    struct cfg_sni *sni;
    size_t nsni;
    uint32_t expiry_warn_days;
    bool crl_strict;
    uint32_t max_handshakes;
    uint32_t handshake_queue; /* 0: 16 x max_handshakes */
    uint32_t handshake_queue_timeout_ms;
    uint32_t handshake_idle_timeout_ms; /* 0: a quarter of handshake_timeout */
    uint32_t heap_trim_after;           /* tls_server_config.trim_after; 0: never */
    bool proxy_protocol;
    char *trusted_proxies; /* comma-separated CIDR ranges */
    /* NATS listeners (listeners.nats): nats-server's option names. Their
     * tls { } block fills the TLS fields above (cert_file: certfile ...;
     * verify and verify_and_map: verify_peer and fail_if_no_peer_cert). */
    uint32_t nats_max_payload;
    uint32_t nats_max_control_line;
    uint32_t nats_ping_interval_ms;
    uint32_t nats_ping_max;
    uint32_t nats_max_subscriptions; /* 0: mqtt.max_subscriptions */
    uint32_t nats_auth_timeout_ms;   /* 0: the broker's default */
    char *nats_no_auth_user;
    char *nats_user, *nats_password, *nats_token; /* authorization { user password token } */
    struct cfg_nats_user *nats_users;
    size_t nats_nusers;
    bool nats_verify_and_map;
    bool nats_handshake_first;
    char *nats_cipher_suites; /* IANA names, comma-separated */
    /* WebSocket listeners (ws, wss, nats_ws) */
    char *ws_allowed_origins;    /* comma-separated; NULL: any Origin */
    bool ws_same_origin;         /* the Origin must be the Host the request went to */
    uint32_t ws_max_frame_size;  /* one message's payload; 0: the listener's input bound */
    uint32_t ws_max_header_size; /* the upgrade request's head */
    bool ws_compression;         /* accepted; permessage-deflate is never negotiated */
    bool ws_no_tls;              /* nats_ws: plain ws:// although a tls { } block is there */
    char *ws_host;               /* nats_ws: host and port, when bind/listen is not given */
    uint32_t ws_port;
};

struct cfg_bridge_topic {
    char *remote_topic;
    char *local_topic;
    uint32_t qos;
    int retain; /* -1: as published */
    char *prefix;
    char *suffix;
    bool retain_as_published;
    uint32_t retain_handling;
};

struct cfg_bridge_ssl {
    bool enable;
    char *keyfile;
    char *certfile;
    char *cacertfile;
    char *key_password;
    bool verify;
    char *server_name;
    char *alpn;
    char *tls_version;
    char *ciphers;
};

struct cfg_bridge {
    char *name;
    bool enable;
    char *server;
    uint32_t proto_ver;
    char *clientid;
    uint32_t keepalive_s;
    bool clean_start;
    char *username;
    char *password;
    uint32_t backoff_max_ms;
    uint32_t max_send_queue_len;
    uint32_t max_inflight;
    bool try_private;
    uint32_t connect_timeout_ms;
    struct cfg_bridge_ssl ssl;
    struct cfg_bridge_topic *forwards;
    size_t nforwards;
    struct cfg_bridge_topic *subscriptions;
    size_t nsubscriptions;
};

/* http { }: the admin HTTP server (docs/http-api.md), and NanoMQ's
 * http_server { } mapped onto it. */
struct cfg_http {
    bool enable;
    char *bind; /* NULL: off (unless http_server.port is set) */
    uint32_t max_connections;
    uint32_t max_head; /* request line and headers, bytes */
    uint32_t max_headers;
    uint32_t max_body;
    uint32_t max_output;
    uint32_t idle_timeout_ms;
    uint32_t request_timeout_ms;
    bool open_metrics, open_health;
    char *api_keys_file; /* http.api_keys = {include "FILE"} */
    char *admin_ou, *read_ou;
    /* HTTPS: the ssl listeners' keys */
    char *keyfile, *certfile, *cacertfile, *capath, *key_password, *crlfile;
    bool verify_peer, fail_if_no_peer_cert;
    char *tls_version, *ciphers, *ciphersuites;
    /* NanoMQ's http_server { } */
    uint32_t nanomq_port;
    char *nanomq_ip_addr;
    uint32_t nanomq_limit_conn;
    uint32_t nanomq_max_body;
    char *nanomq_username, *nanomq_password, *nanomq_auth_type;
};

struct ward_config {
    /* mqtt { } */
    uint32_t max_packet_size;
    uint32_t max_mqueue_len;      /* offline queue per session */
    uint32_t max_inflight_window; /* towards subscribers */
    uint32_t receive_maximum;     /* granted to publishers */
    char *overload;               /* backpressure drop reject */
    uint32_t max_output_bytes;
    uint32_t slow_consumer_timeout_ms;
    uint32_t retry_interval_ms;
    double keepalive_multiplier;
    uint32_t property_size;
    uint32_t max_topic_levels;
    uint32_t max_keepalive;
    uint32_t topic_alias_max;
    uint32_t max_qos;
    bool retain_available;
    uint32_t max_connections;
    uint32_t sys_interval_s;
    uint32_t max_filters_per_subscribe;
    uint32_t max_subscriptions;  /* per session */
    uint32_t max_session_expiry; /* seconds, 0: no maximum */
    uint32_t max_sessions;
    uint32_t packet_timeout_ms;
    uint32_t max_retained_messages; /* 0: unlimited */
    uint32_t max_retained_bytes;    /* 0: unlimited */
    char *queue_full_policy;        /* drop_newest drop_oldest */
    /* persistence { } and NanoMQ's sqlite { } (the latter mapped onto it) */
    char *persistence_mode;        /* process fsync off */
    char *persistence_dir;         /* NULL: memory only */
    uint32_t persistence_max_size; /* bytes */
    char *persistence_on_damage;   /* move_aside refuse */
    bool sqlite_enable;
    char *sqlite_path; /* sqlite.mounted_file_path */
    /* system { } */
    uint32_t workers;      /* 0: one per CPU */
    uint32_t memory_limit; /* bytes, 0: automatic */

    uint32_t shutdown_timeout_ms; /* SIGTERM: most time to wait for clients and the store */
    char *user;                   /* run as this user after binding (NULL: stay) */
    char *group;                  /* with user; NULL: the user's primary group */
    /* log { } */
    char *log_level;
    char *log_to;
    char *log_dir;
    char *log_file;
    uint32_t log_rotation_size; /* bytes, 0: never rotated */
    uint32_t log_rotation_count;
    char *log_format; /* text | json */
    char *log_syslog_facility;
    char *log_syslog_socket;
    uint32_t log_queue_size; /* bytes */
    uint32_t log_flush_timeout_ms;
    /* auth { } */
    bool allow_anonymous;
    char *no_match;    /* allow | deny */
    char *deny_action; /* ignore | disconnect */
    char *password_file;
    char *acl_file;
    uint32_t hash_threads; /* password-checking threads, >= 1 */
    uint32_t max_pending;  /* password checks waiting or running at once */
    struct cfg_http http;
    /* listeners and bridges */
    struct cfg_listener *listeners;
    size_t nlisteners;
    struct cfg_bridge *bridges;
    size_t nbridges;
};

/* Collected validation errors, each "file:line: key: cause". */
struct cfg_errors {
    char **msgs;
    size_t count;
};

/* Loads and validates `path`. Returns 0 with *cfg filled (defaults for what
 * the file leaves out), or -1 with every error found in *errs (and *cfg left
 * empty). Either way, call cfg_errors_free and, on success, config_free. */
WARD_WUR int config_load(const char *path, struct ward_config *cfg, struct cfg_errors *errs);
/* The same from text in memory (`name` is used in messages). */
WARD_WUR int config_load_string(const char *name, const char *text, struct ward_config *cfg,
                                struct cfg_errors *errs);
/* Defaults only (what `ward serve` uses without -c). */
WARD_WUR int config_defaults(struct ward_config *cfg);
void config_free(struct ward_config *cfg);
void cfg_errors_free(struct cfg_errors *errs);

/* Prints the effective configuration as HOCON. */
void config_print(const struct ward_config *cfg, FILE *out);
/* Prints docs/configuration.md: every key, type, default and meaning. */
void config_print_reference(FILE *out);
/* The same as the ward.conf(5) man page (roff), made from what
 * config_print_reference() prints. Returns 0, or -1 out of memory. */
int config_print_reference_man(FILE *out);
/* Renders md, Markdown as config_print_reference() writes it, as
 * ward.conf(5); text is escaped for roff (a line starting with '.' or
 * '\'', a backslash). Exposed for the tests. */
void config_reference_man(const char *md, FILE *out);

/* "256KB", "1MB", "1024" -> bytes. Returns 0, or -1 if malformed/out of range. */
WARD_WUR int config_parse_size(const char *s, uint64_t *out);
/* "10s", "500ms", "2m", "1h", "60" (seconds) -> milliseconds. */
WARD_WUR int config_parse_duration_ms(const char *s, uint64_t *out);

#endif
