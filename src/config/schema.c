/* The configuration schema: tables of (key, type, default, range, doc) from
 * which loading, validation, "did you mean", the effective-configuration
 * printout and docs/configuration.md all come. */
#include "config/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/hocon.h"
#include "core/log.h"
#include "core/vec.h"

enum kind {
    K_BOOL,
    K_U32,
    K_SIZE,
    K_MS,
    K_SECONDS,
    K_DOUBLE,
    K_STRING,
    K_ENUM,
    K_TRISTATE,
    K_LIST
};

struct key_spec {
    const char *key; /* path relative to the block */
    enum kind kind;
    size_t off;
    const char *def;     /* as it would be written in the file; NULL = unset */
    double min, max;     /* K_U32 K_SIZE K_MS K_SECONDS K_DOUBLE */
    const char *choices; /* K_ENUM: space-separated */
    const char *doc;
};

#define G(f)   offsetof(struct ward_config, f)
#define L(f)   offsetof(struct cfg_listener, f)
#define B(f)   offsetof(struct cfg_bridge, f)
#define T(f)   offsetof(struct cfg_bridge_topic, f)
#define S(f)   offsetof(struct cfg_sni, f)
#define U32MAX 4294967295.0

static const struct key_spec global_keys[] = {
    {"mqtt.max_packet_size", K_SIZE, G(max_packet_size), "1MB", 64, 272629760.0, NULL,
     "Largest packet accepted or sent, fixed header included (MQTT 5 Maximum Packet Size); "
     "up to 260MB as in NanoMQ, announced as at most the protocol limit."},
    {"mqtt.max_mqueue_len", K_U32, G(max_mqueue_len), "1000", 1, U32MAX, NULL,
     "QoS 1/2 messages queued per session beyond the inflight window; overflow is dropped and "
     "counted."},
    {"mqtt.max_inflight_window", K_U32, G(max_inflight_window), "1024", 1, 65535, NULL,
     "Unacknowledged QoS 1/2 messages ward sends a subscriber at once (3.1.1 clients; v5 "
     "clients get at most their Receive Maximum). Large enough that a consumer with a 10 ms "
     "round trip is not held below 100k msg/s; each message in flight costs about 100 bytes "
     "(the message itself is shared)."},
    {"mqtt.receive_maximum", K_U32, G(receive_maximum), "1024", 1, 65535, NULL,
     "Unacknowledged QoS 1/2 messages a publisher may send ward at once (ward's Receive "
     "Maximum in CONNACK; more QoS 2 ones are refused with 0x93)."},
    {"mqtt.overload", K_ENUM, G(overload), "backpressure", 0, 0, "backpressure drop reject",
     "When a receiver cannot take a message now (QoS 1/2 queue full, or output over "
     "max_output_bytes): backpressure makes the producers that feed it wait (nothing "
     "acknowledged is dropped; one slow consumer slows its producers until "
     "slow_consumer_timeout); drop drops it for that receiver; reject drops it and tells v5 "
     "publishers 0x97. Drops are counted per reason under $SYS. A listener may override."},
    {"mqtt.max_output_bytes", K_SIZE, G(max_output_bytes), "1MB", 1024, 4294967295.0, NULL,
     "Output queued per connection before it counts as full (one message always fits an empty "
     "queue, however large). A listener may override."},
    {"mqtt.slow_consumer_timeout", K_MS, G(slow_consumer_timeout_ms), "30s", 0, U32MAX, NULL,
     "A connection whose output stays full this long is closed as a slow consumer (logged, "
     "counted), which also lets the producers it held go; 0: never. A listener may override."},
    {"mqtt.retry_interval", K_MS, G(retry_interval_ms), "10s", 0, U32MAX, NULL,
     "Accepted for NanoMQ compatibility; MQTT 5 forbids timed resends, ward resends on "
     "reconnect."},
    {"mqtt.keepalive_multiplier", K_DOUBLE, G(keepalive_multiplier), "1.5", 1.0, 10.0, NULL,
     "A client silent for keep alive x this is disconnected (the specification says 1.5)."},
    {"mqtt.property_size", K_U32, G(property_size), "32", 1, 65535, NULL,
     "Accepted for NanoMQ compatibility (ward bounds properties by max_packet_size)."},
    {"mqtt.max_topic_levels", K_U32, G(max_topic_levels), "128", 1, 65535, NULL,
     "Most levels a topic name or filter may have."},
    {"mqtt.max_keepalive", K_U32, G(max_keepalive), "65535", 1, 65535, NULL,
     "Highest keep alive granted; MQTT 5 clients asking for more get Server Keep Alive."},
    {"mqtt.topic_alias_max", K_U32, G(topic_alias_max), "10", 0, 65535, NULL,
     "Topic aliases a client may use towards the broker (MQTT 5)."},
    {"mqtt.max_topic_alias", K_U32, G(topic_alias_max), NULL, 0, 65535, NULL,
     "NanoMQ's name for topic_alias_max (its default nanomq.conf sets it)."},
    {"mqtt.max_qos", K_U32, G(max_qos), "2", 0, 2, NULL, "Highest QoS granted."},
    {"mqtt.retain_available", K_BOOL, G(retain_available), "true", 0, 0, NULL,
     "Whether retained messages are supported."},
    {"mqtt.max_connections", K_U32, G(max_connections), "100000", 1, U32MAX, NULL,
     "Most simultaneous connections across all listeners (and no more than the file-descriptor "
     "limit allows); more are closed at once, counted and logged."},
    {"mqtt.max_filters_per_subscribe", K_U32, G(max_filters_per_subscribe), "1000", 1, 65535, NULL,
     "Most topic filters one SUBSCRIBE may carry; the rest are refused (0x97 / 0x80) unread."},
    {"mqtt.max_subscriptions", K_U32, G(max_subscriptions), "10000", 1, U32MAX, NULL,
     "Most subscriptions one session may hold; more are refused (0x97 / 0x80)."},
    {"mqtt.max_session_expiry", K_SECONDS, G(max_session_expiry), "1d", 0, U32MAX, NULL,
     "Longest a session outlives its connection (v5 clients asking more are told this value in "
     "CONNACK; 3.1.1 persistent sessions get it); 0: no maximum."},
    {"mqtt.max_sessions", K_U32, G(max_sessions), "200000", 1, U32MAX, NULL,
     "Most sessions, connected or not; a CONNECT that would make another is refused "
     "(0x97 / 0x03)."},
    {"mqtt.packet_timeout", K_MS, G(packet_timeout_ms), "60s", 1000, U32MAX, NULL,
     "A packet whose first byte arrived must be complete within this, whatever the keep "
     "alive; a connection that trickles one is closed."},
    {"mqtt.sys_interval", K_SECONDS, G(sys_interval_s), "10s", 0, 86400, NULL,
     "How often $SYS topics are published (0 disables)."},
    {"mqtt.max_retained_messages", K_U32, G(max_retained_messages), "100000", 0, U32MAX, NULL,
     "Most retained messages kept (0: unlimited); a retained message for a new topic beyond it "
     "is delivered but not kept, and counted. $SYS topics are not counted."},
    {"mqtt.max_retained_bytes", K_SIZE, G(max_retained_bytes), "256MB", 0, U32MAX, NULL,
     "Most bytes (topic, payload and properties) of retained messages kept (0: unlimited); as "
     "max_retained_messages beyond it."},
    {"mqtt.queue_full_policy", K_ENUM, G(queue_full_policy), "drop_newest", 0, 0,
     "drop_newest drop_oldest",
     "When an offline session's queue (max_mqueue_len) is full and a 3.1.1 client publishes "
     "to it: drop_newest drops the new message for that session, drop_oldest drops its oldest "
     "queued one to make room. Counted under $SYS. With persistence on, a v5 publisher is told "
     "0x97 instead and nothing is dropped. The one place an acknowledged message can be lost "
     "(docs/security.md)."},
    {"persistence.mode", K_ENUM, G(persistence_mode), "process", 0, 0, "process fsync off",
     "With a directory (persistence.dir or ward serve --data): process commits before every "
     "acknowledgement (survives kill -9); fsync also syncs to disk first (survives power "
     "loss); off keeps everything in memory. Without a directory persistence is off."},
    {"persistence.dir", K_STRING, G(persistence_dir), NULL, 0, 0, NULL,
     "Directory of the store (ward.db, SQLite; docs/persistence.md). --data DIR overrides it."},
    {"persistence.max_size", K_SIZE, G(persistence_max_size), "1GB", 1048576, 4294967295.0, NULL,
     "Largest store (database and WAL); past it new QoS 1/2 publishes are refused (v5: 0x97; "
     "3.1.1: the connection is closed) and counted."},
    {"persistence.on_damage", K_ENUM, G(persistence_on_damage), "move_aside", 0, 0,
     "move_aside refuse",
     "A damaged store file: move_aside renames it (ward.db.damaged-TIME) and starts afresh, "
     "refuse stops ward from starting. Either way one log line names the file."},
    {"sqlite.enable", K_BOOL, G(sqlite_enable), "false", 0, 0, NULL,
     "NanoMQ's switch for its SQLite message cache: true with mounted_file_path turns "
     "persistence on in that directory (when persistence.dir is not set)."},
    {"sqlite.mounted_file_path", K_STRING, G(sqlite_path), NULL, 0, 0, NULL,
     "NanoMQ's directory for its SQLite file: persistence.dir when sqlite.enable is true."},
    {"system.memory_limit", K_SIZE, G(memory_limit), "0", 0, 4294967295.0, NULL,
     "Resident memory past which new publishes are refused (v5: 0x97; 3.1.1 QoS 1/2 "
     "publishers are disconnected; QoS 0 dropped; counted), taken again below 90% of it. "
     "0: three quarters of the machine's memory, at most 4GB (the largest value this key "
     "holds)."},
    {"system.workers", K_U32, G(workers), "0", 0, 256, NULL,
     "Worker threads, each with its own event loop (0: one per CPU)."},
    {"system.num_taskq_thread", K_U32, G(workers), NULL, 0, 256, NULL,
     "NanoMQ's name for system.workers."},
    {"system.shutdown_timeout", K_MS, G(shutdown_timeout_ms), "5s", 0, 600000, NULL,
     "On SIGTERM or SIGINT ward stops accepting, tells clients it is going away (v5: "
     "DISCONNECT 0x8B; NATS: lame duck INFO), then waits at most this long for their "
     "connections to close, the bridges to deliver their backlog upstream and the store to "
     "commit before it exits 0."},
    {"system.user", K_STRING, G(user), NULL, 0, 0, NULL,
     "Started as root, ward opens its listeners, checks that this user can read every "
     "configured key, certificate, CA, CRL, password, ACL and API key file and write the data "
     "directory (refusing to start otherwise), then runs as this user. ward serve --user "
     "overrides it. Unset: ward keeps the user it was started as (a warning if root). ward "
     "check fails if the user (or system.group) does not exist."},
    {"system.group", K_STRING, G(group), NULL, 0, 0, NULL,
     "The group with system.user (default: that user's primary group); the user's "
     "supplementary groups are kept."},
    {"log.level", K_ENUM, G(log_level), "notice", 0, 0, "error warn notice info debug",
     "Least severe level logged."},
    {"log.to", K_LIST, G(log_to), "console", 0, 0, NULL,
     "Where lines go: console (standard error), file, syslog, or a list of them "
     "(docs/logging.md)."},
    {"log.dir", K_STRING, G(log_dir), NULL, 0, 0, NULL,
     "Directory of log.file when that is relative; unset: the working directory."},
    {"log.file", K_STRING, G(log_file), "ward.log", 0, 0, NULL,
     "The file sink's file, opened (and created) at start, before privileges are dropped."},
    {"log.rotation.size", K_SIZE, G(log_rotation_size), "10MB", 0, 4294967295.0, NULL,
     "The file is rotated (ward.log -> ward.log.1 ...) before a line would take it past "
     "this size; 0: never (leave it to logrotate and SIGUSR1)."},
    {"log.rotation.count", K_U32, G(log_rotation_count), "5", 1, 1000, NULL,
     "Rotated files kept (ward.log.1 is the newest); the oldest is deleted."},
    {"log.format", K_ENUM, G(log_format), "text", 0, 0, "text json",
     "Lines on the console and in the file: text (time level message) or json (one object "
     "per line: time, level, msg) for log shippers. Syslog always gets the text."},
    {"log.syslog_facility", K_ENUM, G(log_syslog_facility), "daemon", 0, 0,
     "user daemon local0 local1 local2 local3 local4 local5 local6 local7",
     "Syslog facility of ward's messages."},
    {"log.syslog_socket", K_STRING, G(log_syslog_socket), "/dev/log", 0, 0, NULL,
     "The unix datagram socket syslog messages (RFC 3164) are sent to; journald and "
     "rsyslog listen on /dev/log."},
    {"log.queue_size", K_SIZE, G(log_queue_size), "1MB", 16384, 1073741824.0, NULL,
     "Bytes of log lines waiting for the logger thread; when it is full (a stalled pipe or "
     "disk) lines are dropped and counted (ward_log_dropped_lines_total), never waited for."},
    {"log.flush_timeout", K_MS, G(log_flush_timeout_ms), "2s", 0, 60000, NULL,
     "At exit, the longest wait for queued lines to be written."},
    {"http.enable", K_BOOL, G(http.enable), "true", 0, 0, NULL,
     "The admin HTTP server (docs/http-api.md) runs when http.bind (or NanoMQ's "
     "http_server.port) is set, unless this is false."},
    {"http.bind", K_STRING, G(http.bind), NULL, 0, 0, NULL,
     "HOST:PORT of the admin HTTP server (health, metrics, API, status page); unset: off. "
     "Keep it on loopback unless it uses HTTPS and keys."},
    {"http.max_connections", K_U32, G(http.max_connections), "64", 1, 100000, NULL,
     "Most admin connections at once; more are closed at once and counted."},
    {"http.max_head", K_SIZE, G(http.max_head), "8KB", 256, 65536, NULL,
     "Largest request line and headers (431 beyond it)."},
    {"http.max_headers", K_U32, G(http.max_headers), "32", 1, 64, NULL,
     "Most header fields in one request (431 beyond it)."},
    {"http.max_body", K_SIZE, G(http.max_body), "1MB", 0, 67108864.0, NULL,
     "Largest request body (POST /api/v4/mqtt/publish; 413 beyond it)."},
    {"http.max_output", K_SIZE, G(http.max_output), "4MB", 65536, 1073741824.0, NULL,
     "Answer bytes queued per connection: pipelined requests wait past half of it, a client "
     "that reads nothing for idle_timeout is closed."},
    {"http.idle_timeout", K_MS, G(http.idle_timeout_ms), "30s", 100, 3600000, NULL,
     "A keep-alive connection with no request under way is closed after this."},
    {"http.request_timeout", K_MS, G(http.request_timeout_ms), "10s", 100, 600000, NULL,
     "A request (and a new connection's first one) must be complete within this: 408 and "
     "close otherwise (slow headers)."},
    {"http.open_metrics", K_BOOL, G(http.open_metrics), "false", 0, 0, NULL,
     "Serve /metrics and /api/v4/prometheus without a key (a Prometheus on loopback)."},
    {"http.open_health", K_BOOL, G(http.open_health), "true", 0, 0, NULL,
     "Serve /healthz and /readyz without a key (they tell only alive and ready)."},
    {"http.admin_ou", K_STRING, G(http.admin_ou), NULL, 0, 0, NULL,
     "HTTPS with client certificates: a verified certificate with this OU has the admin "
     "scope."},
    {"http.read_ou", K_STRING, G(http.read_ou), NULL, 0, 0, NULL, "The same for the read scope."},
    {"http.keyfile", K_STRING, G(http.keyfile), NULL, 0, 0, NULL,
     "HTTPS: the server's private key (with certfile, the admin server speaks HTTPS only)."},
    {"http.certfile", K_STRING, G(http.certfile), NULL, 0, 0, NULL,
     "HTTPS: the server's certificate (chain after it)."},
    {"http.cacertfile", K_STRING, G(http.cacertfile), NULL, 0, 0, NULL,
     "HTTPS: CAs trusted for client certificates."},
    {"http.capath", K_STRING, G(http.capath), NULL, 0, 0, NULL, "HTTPS: a directory of CAs."},
    {"http.key_password", K_STRING, G(http.key_password), NULL, 0, 0, NULL,
     "HTTPS: the key's password."},
    {"http.crlfile", K_STRING, G(http.crlfile), NULL, 0, 0, NULL,
     "HTTPS: revoked client certificates."},
    {"http.verify_peer", K_BOOL, G(http.verify_peer), "false", 0, 0, NULL,
     "HTTPS: ask for a client certificate (as listeners.ssl)."},
    {"http.fail_if_no_peer_cert", K_BOOL, G(http.fail_if_no_peer_cert), "false", 0, 0, NULL,
     "HTTPS: with verify_peer, refuse clients without one (mutual TLS)."},
    {"http.tls_version", K_ENUM, G(http.tls_version), "1.2", 0, 0, "1.2 1.3",
     "HTTPS: the minimum TLS version."},
    {"http.ciphers", K_STRING, G(http.ciphers), NULL, 0, 0, NULL, "HTTPS: TLS 1.2 ciphers."},
    {"http.ciphersuites", K_STRING, G(http.ciphersuites), NULL, 0, 0, NULL,
     "HTTPS: TLS 1.3 suites."},
    {"http_server.port", K_U32, G(http.nanomq_port), NULL, 0, 65535, NULL,
     "NanoMQ's admin port: the admin server on ip_addr:port when http.bind is not set "
     "(0: unset)."},
    {"http_server.ip_addr", K_STRING, G(http.nanomq_ip_addr), NULL, 0, 0, NULL,
     "NanoMQ's admin address; unlike NanoMQ ward defaults to 127.0.0.1."},
    {"http_server.limit_conn", K_U32, G(http.nanomq_limit_conn), NULL, 0, 100000, NULL,
     "NanoMQ's name for http.max_connections (when that is not set)."},
    {"http_server.max_body", K_SIZE, G(http.nanomq_max_body), NULL, 0, 67108864.0, NULL,
     "NanoMQ's name for http.max_body (when that is not set)."},
    {"http_server.username", K_STRING, G(http.nanomq_username), NULL, 0, 0, NULL,
     "NanoMQ's HTTP Basic user: with password, an admin-scope credential (NanoMQ's default "
     "password 'public' is refused: ward has no default password)."},
    {"http_server.password", K_STRING, G(http.nanomq_password), NULL, 0, 0, NULL,
     "NanoMQ's HTTP Basic password (see username); API keys (http.api_keys) are better: "
     "they are stored hashed."},
    {"http_server.auth_type", K_ENUM, G(http.nanomq_auth_type), NULL, 0, 0, "basic jwt",
     "NanoMQ's choice of basic or jwt; ward takes Basic and Bearer keys, jwt is reported "
     "and ignored."},
    {"auth.allow_anonymous", K_BOOL, G(allow_anonymous), "true", 0, 0, NULL,
     "Whether clients without credentials may connect (a listener can override)."},
    {"auth.no_match", K_ENUM, G(no_match), "allow", 0, 0, "allow deny",
     "What happens when no ACL rule matches."},
    {"auth.deny_action", K_ENUM, G(deny_action), "ignore", 0, 0, "ignore disconnect",
     "What happens to a client whose publish or subscribe is denied."},
    {"auth.hash_threads", K_U32, G(hash_threads), "2", 1, 64, NULL,
     "Threads that check passwords (PBKDF2, slow on purpose), so the I/O workers never do; "
     "more than the CPUs gains nothing. Changing it needs a restart."},
    {"auth.max_pending", K_U32, G(max_pending), "64", 1, 100000, NULL,
     "Password checks waiting or running at once; a CONNECT beyond it is refused at once "
     "(0x9F / 0x03), counted and logged. At ~60 ms a check, 64 with 2 threads is a wait "
     "of at most about 2 s."},
};

static const struct key_spec listener_keys[] = {
    {"enable", K_BOOL, L(enable), "true", 0, 0, NULL, "Whether this listener runs."},
    {"bind", K_STRING, L(bind), NULL, 0, 0, NULL, "HOST:PORT to listen on (required)."},
    {"max_connections", K_U32, L(max_connections), "0", 0, U32MAX, NULL,
     "Most connections on this listener (0: only the global limit); more are closed at once, "
     "counted and logged."},
    {"allow_anonymous", K_TRISTATE, L(allow_anonymous), NULL, 0, 0, NULL,
     "Overrides auth.allow_anonymous for this listener."},
    {"require_password", K_BOOL, L(require_password), "false", 0, 0, NULL,
     "With client certificates: a user name and password are needed as well."},
    {"overload", K_ENUM, L(overload), NULL, 0, 0, "backpressure drop reject",
     "Overrides mqtt.overload for the receivers on this listener."},
    {"max_output_bytes", K_SIZE, L(max_output_bytes), NULL, 0, 4294967295.0, NULL,
     "Overrides mqtt.max_output_bytes on this listener (0: no override)."},
    {"slow_consumer_timeout", K_MS, L(slow_consumer_timeout_ms), NULL, 0, U32MAX, NULL,
     "Overrides mqtt.slow_consumer_timeout on this listener (0: no override)."},
    {"clientid_must_match", K_ENUM, L(clientid_must_match), "none", 0, 0, "none username cert_cn",
     "The client id a client must use: any, its verified user name, or its verified "
     "certificate's CN (others are refused: 0x85 / 0x02)."},
    {"keyfile", K_STRING, L(keyfile), NULL, 0, 0, NULL, "Server private key (PEM/PKCS#8)."},
    {"certfile", K_STRING, L(certfile), NULL, 0, 0, NULL, "Server certificate chain (PEM)."},
    {"cacertfile", K_STRING, L(cacertfile), NULL, 0, 0, NULL,
     "CA bundle that client certificates must chain to."},
    {"capath", K_STRING, L(capath), NULL, 0, 0, NULL, "Directory of hashed CA certificates."},
    {"key_password", K_STRING, L(key_password), NULL, 0, 0, NULL,
     "Password of an encrypted keyfile."},
    {"crlfile", K_STRING, L(crlfile), NULL, 0, 0, NULL,
     "Certificate revocation list(s), checked for the whole chain."},
    {"verify_peer", K_BOOL, L(verify_peer), "false", 0, 0, NULL,
     "Ask clients for a certificate and verify any that is presented."},
    {"fail_if_no_peer_cert", K_BOOL, L(fail_if_no_peer_cert), "false", 0, 0, NULL,
     "With verify_peer: refuse clients without a certificate (mutual TLS)."},
    {"tls_version", K_ENUM, L(tls_version), "1.2", 0, 0, "1.2 1.3", "Lowest TLS version accepted."},
    {"ciphers", K_STRING, L(ciphers), NULL, 0, 0, NULL, "TLS 1.2 cipher list (OpenSSL syntax)."},
    {"ciphersuites", K_STRING, L(ciphersuites), NULL, 0, 0, NULL, "TLS 1.3 cipher suites."},
    {"tls_groups", K_STRING, L(tls_groups), NULL, 0, 0, NULL,
     "Key exchange groups, e.g. \"X25519:P-256\" (OpenSSL's default when unset)."},
    {"verify_depth", K_U32, L(verify_depth), "10", 0, 100, NULL,
     "Most intermediate CA certificates between a client certificate and a trusted root."},
    {"peer_cert_as_username", K_ENUM, L(peer_cert_as_username), "none", 0, 0,
     "none cn dn san_dns san_email san_uri", "Take the username from the client certificate."},
    {"peer_cert_as_clientid", K_ENUM, L(peer_cert_as_clientid), "none", 0, 0,
     "none cn dn san_dns san_email san_uri", "Take the client id from the client certificate."},
    {"handshake_timeout", K_MS, L(handshake_timeout_ms), "10s", 100, 600000, NULL,
     "A TLS handshake (on ws and wss listeners: and the HTTP upgrade) not finished by then, "
     "counted from accept or, after a wait for a slot, from the slot, is dropped."},
    {"expiry_warn_days", K_U32, L(expiry_warn_days), "30", 0, 3650, NULL,
     "Warn when a certificate in use expires within this many days."},
    {"crl_strict", K_BOOL, L(crl_strict), "false", 0, 0, NULL,
     "Refuse every client certificate while the CRL is past its next update."},
    {"max_handshakes", K_U32, L(max_handshakes), "1000", 1, 1000000, NULL,
     "TLS handshakes in progress at once; more wait in the handshake queue, and while they do "
     "each source address gets a fair share of the slots."},
    {"handshake_queue", K_U32, L(handshake_queue), "0", 0, 1000000, NULL,
     "TLS connections that may wait for a handshake slot (0: 16 times max_handshakes; a waiting "
     "connection holds its socket, no TLS state); when full, a newcomer takes the place of the "
     "source with the most waiting, or is refused."},
    {"handshake_queue_timeout", K_MS, L(handshake_queue_timeout_ms), "60s", 100, 3600000, NULL,
     "How long a TLS connection may wait for a handshake slot; its handshake_timeout starts when "
     "it gets one. A reconnect storm of more clients than max_handshakes waits, none refused."},
    {"heap_trim_after", K_U32, L(heap_trim_after), "256", 0, 4294967294.0, NULL,
     "Once no TLS handshake is running and this many have ended since the last time (at most "
     "once a second), the memory they freed is given back to the kernel (malloc_trim): a "
     "reconnect storm does not leave its peak resident. 0: never."},
    {"handshake_idle_timeout", K_MS, L(handshake_idle_timeout_ms), "0", 0, 600000, NULL,
     "A TLS connection that has sent nothing yet is dropped after this (0: a quarter of "
     "handshake_timeout)."},
    {"proxy_protocol", K_BOOL, L(proxy_protocol), "false", 0, 0, NULL,
     "Read a PROXY protocol header (v1 or v2) from trusted_proxies: its client address is used "
     "in logs, limits and handshake fairness. A header from anyone else is refused."},
    {"trusted_proxies", K_LIST, L(trusted_proxies), NULL, 0, 0, NULL,
     "Addresses or CIDR ranges (a word or a list) of the proxies that send a PROXY header; "
     "required with proxy_protocol."},
};

static const struct key_spec sni_keys[] = {
    {"host", K_STRING, S(host), NULL, 0, 0, NULL,
     "Server name (SNI) this certificate answers, e.g. \"mqtt.example.com\" or \"*.example.com\"."},
    {"certfile", K_STRING, S(certfile), NULL, 0, 0, NULL, "Its certificate chain (PEM)."},
    {"keyfile", K_STRING, S(keyfile), NULL, 0, 0, NULL, "Its private key."},
};

static const struct key_spec bridge_keys[] = {
    {"enable", K_BOOL, B(enable), "true", 0, 0, NULL, "Whether this bridge runs."},
    {"server", K_STRING, B(server), NULL, 0, 0, NULL,
     "mqtt-tcp://HOST:PORT, tls+mqtt-tcp://HOST:PORT or mqtts://HOST:PORT (required)."},
    {"proto_ver", K_U32, B(proto_ver), "4", 4, 5, NULL, "MQTT version: 4 (3.1.1) or 5."},
    {"clientid", K_STRING, B(clientid), NULL, 0, 0, NULL, "Client id used upstream."},
    {"keepalive", K_SECONDS, B(keepalive_s), "60s", 0, 65535, NULL, "Keep alive upstream."},
    {"clean_start", K_BOOL, B(clean_start), "false", 0, 0, NULL, "Clean start upstream."},
    {"username", K_STRING, B(username), NULL, 0, 0, NULL, "Username upstream."},
    {"password", K_STRING, B(password), NULL, 0, 0, NULL, "Password upstream."},
    {"backoff_max", K_MS, B(backoff_max_ms), "60s", 100, 3600000, NULL,
     "Longest wait between reconnection attempts."},
    {"max_send_queue_len", K_U32, B(max_send_queue_len), "1024", 1, U32MAX, NULL,
     "QoS 1/2 messages held for the upstream while the link is down."},
    {"max_inflight", K_U32, B(max_inflight), "32", 1, 65535, NULL,
     "QoS 1/2 messages sent upstream and not yet acknowledged (ward)."},
    {"try_private", K_BOOL, B(try_private), "true", 0, 0, NULL,
     "MQTT 3.1.1: say \"bridge\" in CONNECT (level 0x84) so the upstream does not send our "
     "messages back; retried without it if refused (ward, as Mosquitto)."},
    {"connect_timeout", K_MS, B(connect_timeout_ms), "10s", 100, 600000, NULL,
     "Connecting, the TLS handshake and CONNACK must finish within this (ward)."},
    {"ssl.enable", K_BOOL, B(ssl.enable), "false", 0, 0, NULL,
     "Use TLS (implied by a tls+ or mqtts:// server)."},
    {"ssl.keyfile", K_STRING, B(ssl.keyfile), NULL, 0, 0, NULL, "Client private key."},
    {"ssl.certfile", K_STRING, B(ssl.certfile), NULL, 0, 0, NULL, "Client certificate."},
    {"ssl.cacertfile", K_STRING, B(ssl.cacertfile), NULL, 0, 0, NULL,
     "CA the upstream's certificate must chain to."},
    {"ssl.key_password", K_STRING, B(ssl.key_password), NULL, 0, 0, NULL,
     "Password of an encrypted keyfile."},
    {"ssl.verify", K_BOOL, B(ssl.verify), "true", 0, 0, NULL,
     "Verify the upstream's host name against its certificate."},
    {"ssl.server_name", K_STRING, B(ssl.server_name), NULL, 0, 0, NULL,
     "SNI and verification name (default: the server's host)."},
    {"ssl.alpn", K_STRING, B(ssl.alpn), NULL, 0, 0, NULL, "ALPN protocol to offer."},
    {"ssl.tls_version", K_ENUM, B(ssl.tls_version), "1.2", 0, 0, "1.2 1.3", "Lowest TLS version."},
    {"ssl.ciphers", K_STRING, B(ssl.ciphers), NULL, 0, 0, NULL, "TLS 1.2 cipher list."},
};

static const struct key_spec topic_keys[] = {
    {"remote_topic", K_STRING, T(remote_topic), NULL, 0, 0, NULL, "Topic on the upstream."},
    {"local_topic", K_STRING, T(local_topic), NULL, 0, 0, NULL, "Topic here."},
    {"qos", K_U32, T(qos), "1", 0, 2, NULL, "QoS used."},
    {"retain", K_TRISTATE, T(retain), NULL, 0, 0, NULL, "Force RETAIN (unset: as published)."},
    {"prefix", K_STRING, T(prefix), NULL, 0, 0, NULL, "Prepended to the topic."},
    {"suffix", K_STRING, T(suffix), NULL, 0, 0, NULL, "Appended to the topic."},
    {"retain_as_published", K_BOOL, T(retain_as_published), "false", 0, 0, NULL,
     "MQTT 5 subscription option."},
    {"retain_handling", K_U32, T(retain_handling), "0", 0, 2, NULL, "MQTT 5 subscription option."},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* NanoMQ blocks ward reads but does not act on yet: a file that has them
 * still loads (with a warning) so NanoMQ users' files work unchanged. */
static const char *const nanomq_ignored[] = {"http_server.jwt",
                                             "webhook",
                                             "rules",
                                             "exchange",
                                             "sqlite.disk_cache_size",
                                             "sqlite.flush_mem_threshold",
                                             "sqlite.resend_interval",
                                             "preset",
                                             "plugin",
                                             "vsomeip_gateway",
                                             "zmq_gateway",
                                             "dds_gateway",
                                             "parquet",
                                             "bridges.aws",
                                             "bridges.zmq",
                                             "system.daemon",
                                             "system.max_taskq_thread",
                                             "system.parallel",
                                             "auth.cache",
                                             "auth.http_auth",
                                             "mqtt.max_awaiting_rel",
                                             "mqtt.await_rel_timeout"};

struct loader {
    struct cfg_errors *errs;
    const char *file; /* top-level file, for values with no origin */
};

static void add_error(struct loader *ld, const struct hocon_value *at, const char *key,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void add_error(struct loader *ld, const struct hocon_value *at, const char *key,
                      const char *fmt, ...)
{
    char msg[768], cause[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cause, sizeof(cause), fmt, ap);
    va_end(ap);
    snprintf(msg, sizeof(msg), "%s:%u: %s: %s", at ? at->file : ld->file, at ? at->line : 0, key,
             cause);
    size_t cap = ld->errs->count; /* errors grow one at a time */
    if (!ward_ok(VEC_RESERVE_EXACT(ld->errs->msgs, cap, ld->errs->count + 1)))
        return;
    ld->errs->msgs[ld->errs->count] = strdup(msg);
    if (ld->errs->msgs[ld->errs->count])
        ld->errs->count++;
}

/* see config.h */
int config_parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *suffix;
        uint64_t mult;
    } units[] = {{"", 1},         {"B", 1},         {"KB", 1024},       {"K", 1024},
                 {"MB", 1 << 20}, {"M", 1 << 20},   {"GB", 1ull << 30}, {"G", 1ull << 30},
                 {"KiB", 1024},   {"MiB", 1 << 20}, {"GiB", 1ull << 30}};
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    for (size_t i = 0; i < N(units); i++)
        if (strcasecmp(end, units[i].suffix) == 0) {
            if (v > UINT64_MAX / units[i].mult)
                return -1;
            *out = v * units[i].mult;
            return 0;
        }
    return -1;
}

/* see config.h */
int config_parse_duration_ms(const char *s, uint64_t *out)
{
    static const struct {
        const char *suffix;
        uint64_t mult;
    } units[] = {{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    for (size_t i = 0; i < N(units); i++)
        if (strcmp(end, units[i].suffix) == 0) {
            if (v > UINT64_MAX / units[i].mult)
                return -1;
            *out = v * units[i].mult;
            return 0;
        }
    return -1;
}

static bool in_choices(const char *choices, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        size_t w = strcspn(p, " ");
        if (w == n && strncmp(p, v, n) == 0)
            return true;
        p += w;
        while (*p == ' ')
            p++;
    }
    return false;
}

/* Text of a scalar value as written (numbers and booleans keep their text). */
static const char *scalar_text(const struct hocon_value *v)
{
    if (v->type == HOCON_STRING || v->type == HOCON_NUMBER || v->type == HOCON_BOOL)
        return v->str;
    return NULL;
}

static int to_number(const struct key_spec *ks, const char *text, double *out)
{
    uint64_t u;
    char *end;
    switch (ks->kind) {
    case K_U32:
        errno = 0;
        if (!text || !*text || *text == '-')
            return -1;
        u = strtoull(text, &end, 10);
        if (errno || *end)
            return -1;
        *out = (double)u;
        return 0;
    case K_SIZE:
        if (config_parse_size(text, &u) < 0)
            return -1;
        *out = (double)u;
        return 0;
    case K_MS:
    case K_SECONDS:
        if (config_parse_duration_ms(text, &u) < 0)
            return -1;
        *out = ks->kind == K_MS ? (double)u : ceil((double)u / 1000.0);
        return 0;
    case K_DOUBLE:
        errno = 0;
        *out = text ? strtod(text, &end) : 0;
        return (!text || errno || *end || end == text) ? -1 : 0;
    default:
        return -1;
    }
}

static const char *kind_hint(enum kind k)
{
    switch (k) {
    case K_BOOL:
    case K_TRISTATE:
        return "true or false";
    case K_U32:
        return "a whole number";
    case K_SIZE:
        return "a size such as 1024, 256KB or 1MB";
    case K_MS:
    case K_SECONDS:
        return "a duration such as 500ms, 10s, 2m or 1h";
    case K_DOUBLE:
        return "a number";
    case K_STRING:
        return "a string";
    case K_LIST:
        return "a word or a list of words";
    case K_ENUM:
        return "one of the listed words";
    default:
        return "a value";
    }
}

/* An array of words stored joined with commas ("file,console"). */
static int store_list(struct loader *ld, const struct hocon_value *v, const char *fullkey,
                      char **field)
{
    size_t len = 1;
    for (size_t i = 0; i < v->count; i++) {
        if (!scalar_text(v->items[i])) {
            add_error(ld, v->items[i], fullkey, "expected a list of words");
            return -1;
        }
        len += strlen(v->items[i]->str) + 1;
    }
    char *joined = calloc(1, len);
    if (!joined)
        return -1;
    for (size_t i = 0; i < v->count; i++) {
        if (i)
            strcat(joined, ",");
        strcat(joined, v->items[i]->str);
    }
    free(*field);
    *field = joined;
    return 0;
}

/* Stores one value (or the default when v is NULL) at base + ks->off. */
static int store(struct loader *ld, const struct key_spec *ks, const struct hocon_value *v,
                 const char *fullkey, void *base)
{
    char *field = (char *)base + ks->off;
    const char *text = v ? scalar_text(v) : ks->def;
    if (ks->kind == K_LIST && v && v->type == HOCON_ARRAY)
        return store_list(ld, v, fullkey, (char **)field);
    if (ks->kind == K_TRISTATE) {
        *(int *)field = !v ? -1 : (v->type == HOCON_BOOL ? v->b : -2);
        if (*(int *)field == -2)
            goto bad;
        return 0;
    }
    if (!text)
        return v ? (add_error(ld, v, fullkey, "expected %s, found %s", kind_hint(ks->kind),
                              hocon_type_name(v->type)),
                    -1)
                 : 0;
    switch (ks->kind) {
    case K_BOOL:
        if (v && v->type != HOCON_BOOL)
            goto bad;
        *(bool *)field = v ? v->b : strcmp(text, "true") == 0;
        return 0;
    case K_STRING:
    case K_LIST:
    case K_ENUM:
        if (ks->kind == K_ENUM && !in_choices(ks->choices, text)) {
            add_error(ld, v, fullkey, "'%s' is not one of: %s", text, ks->choices);
            return -1;
        }
        free(*(char **)field);
        *(char **)field = strdup(text);
        return 0;
    default: {
        double d;
        if (to_number(ks, text, &d) < 0)
            goto bad;
        if (d < ks->min || d > ks->max) {
            add_error(ld, v, fullkey, "%s is out of range (%.10g to %.10g)", text, ks->min,
                      ks->max);
            return -1;
        }
        if (ks->kind == K_DOUBLE)
            *(double *)field = d;
        else
            *(uint32_t *)field = (uint32_t)d;
        return 0;
    }
    }
bad:
    add_error(ld, v, fullkey, "expected %s, found '%s'", kind_hint(ks->kind),
              v && v->str ? v->str : hocon_type_name(v ? v->type : HOCON_NULL));
    return -1;
}

static void apply_table(struct loader *ld, const struct key_spec *tab, size_t n,
                        const struct hocon_value *obj, const char *prefix, void *base)
{
    char full[1280]; /* prefix (at most 1199 bytes) and key */
    for (size_t i = 0; i < n; i++) {
        const struct hocon_value *v = obj ? hocon_path(obj, tab[i].key) : NULL;
        /* Aliases (def NULL) only store when present, so they never reset
         * the canonical key's default. */
        if (!v && !tab[i].def && i > 0 && tab[i].off == tab[i - 1].off)
            continue;
        snprintf(full, sizeof(full), "%s%s", prefix, tab[i].key);
        store(ld, &tab[i], v, full, base);
    }
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return 99;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cur = row[j];
            size_t sub = prev + (a[i - 1] != b[j - 1]);
            size_t del = row[j] + 1, ins = row[j - 1] + 1;
            row[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
            prev = cur;
        }
    }
    return row[lb];
}

static bool table_has(const struct key_spec *tab, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(tab[i].key, key) == 0)
            return true;
    return false;
}

/* Whether key is a block (a prefix of some key in the table). */
static bool table_has_block(const struct key_spec *tab, size_t n, const char *key)
{
    size_t k = strlen(key);
    for (size_t i = 0; i < n; i++)
        if (strncmp(tab[i].key, key, k) == 0 && tab[i].key[k] == '.')
            return true;
    return false;
}

static void unknown_key(struct loader *ld, const struct hocon_value *v, const char *prefix,
                        const char *rel, const struct key_spec *tab, size_t n)
{
    const char *best = NULL;
    size_t bestd = 4;
    for (size_t i = 0; i < n; i++) {
        size_t d = edit_distance(rel, tab[i].key);
        if (d < bestd) {
            bestd = d;
            best = tab[i].key;
        }
    }
    char full[1280]; /* prefix (at most 1199 bytes) and key */
    snprintf(full, sizeof(full), "%s%s", prefix, rel);
    if (best)
        add_error(ld, v, full, "unknown key (did you mean '%s%s'?)", prefix, best);
    else
        add_error(ld, v, full, "unknown key");
}

/* NanoMQ bridge keys ward accepts but does not act on. */
static const char *const nanomq_bridge_ignored[] = {"max_parallel_processes",
                                                    "max_recv_queue_len",
                                                    "resend_interval",
                                                    "resend_wait",
                                                    "cancel_timeout",
                                                    "retry_qos_0",
                                                    "transparent",
                                                    "will",
                                                    "conn_properties",
                                                    "sub_properties",
                                                    "hybrid_bridging",
                                                    "hybrid_servers",
                                                    "quic_keepalive",
                                                    "quic_idle_timeout",
                                                    "quic_discon_timeout",
                                                    "quic_handshake_timeout",
                                                    "quic_send_idle_timeout",
                                                    "quic_initial_rtt_ms",
                                                    "quic_max_ack_delay_ms",
                                                    "quic_qos_priority",
                                                    "quic_0rtt",
                                                    "quic_multi_stream"};

static bool ignored_bridge(const char *prefix, const char *rel)
{
    if (strncmp(prefix, "bridges.mqtt.", 13) != 0)
        return false;
    for (size_t i = 0; i < N(nanomq_bridge_ignored); i++)
        if (strcmp(rel, nanomq_bridge_ignored[i]) == 0)
            return true;
    return false;
}

static bool ignored_nanomq(const char *rel)
{
    for (size_t i = 0; i < N(nanomq_ignored); i++)
        if (strcmp(rel, nanomq_ignored[i]) == 0)
            return true;
    return false;
}

/* Reports members of obj (recursively) that the table does not know.
 * `skip` names blocks handled elsewhere (listeners, bridges...). */
static void check_unknown(struct loader *ld, const struct hocon_value *obj, const char *prefix,
                          const char *rel, const struct key_spec *tab, size_t n,
                          const char *const *skip, size_t nskip)
{
    char path[512];
    for (size_t i = 0; i < obj->count; i++) {
        const struct hocon_member *m = &obj->members[i];
        snprintf(path, sizeof(path), "%s%s%s", rel, *rel ? "." : "", m->key);
        bool skipped = false;
        for (size_t s = 0; s < nskip; s++)
            skipped |= strcmp(path, skip[s]) == 0;
        if (skipped || table_has(tab, n, path))
            continue;
        if (ignored_nanomq(path) || ignored_bridge(prefix, path)) {
            fprintf(stderr, "%s:%u: %s%s: NanoMQ setting not used by ward; ignored\n", m->val->file,
                    m->val->line, prefix, path);
            continue;
        }
        if (m->val->type == HOCON_OBJECT && table_has_block(tab, n, path))
            check_unknown(ld, m->val, prefix, path, tab, n, skip, nskip);
        else
            unknown_key(ld, m->val, prefix, path, tab, n);
    }
}

static void *grow_array(void *arr, size_t count, size_t size)
{
    size_t cap = count; /* listeners, bridges ...: grown one at a time */
    if (!ward_ok(vec_reserve_exact(&arr, &cap, count + 1, size)))
        return NULL; /* the caller still owns arr */
    memset((char *)arr + count * size, 0, size);
    return arr;
}

/* The first entry of a comma-separated list of addresses and CIDR ranges
 * ("10.0.0.0/8,::1") that is not one, or NULL. */
static const char *bad_cidr(const char *list)
{
    for (const char *p = list; *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ',')) {
        char host[64];
        size_t n = strcspn(p, ","), h = strcspn(p, "/,");
        unsigned char addr[16];
        if (h == 0 || h >= sizeof(host))
            return p;
        memcpy(host, p, h);
        host[h] = '\0';
        bool v6 = strchr(host, ':') != NULL;
        if (inet_pton(v6 ? AF_INET6 : AF_INET, host, addr) != 1)
            return p;
        if (h == n)
            continue;
        char *end;
        unsigned long bits = strtoul(p + h + 1, &end, 10);
        if (end == p + h + 1 || end != p + n || p[h + 1] < '0' || p[h + 1] > '9' ||
            bits > (v6 ? 128u : 32u))
            return p;
    }
    return NULL;
}

/* An array of objects read through a key table into *out (elements of
 * `size` bytes); `required` names keys each element must have. */
static void load_objects(struct loader *ld, const struct hocon_value *arr, const char *prefix,
                         const struct key_spec *keys, size_t nkeys, void **out, size_t *nout,
                         size_t size, const char *const *required, size_t nrequired)
{
    char pfx[512];
    if (arr->type != HOCON_ARRAY) {
        add_error(ld, arr, prefix, "expected an array of objects");
        return;
    }
    for (size_t i = 0; i < arr->count; i++) {
        const struct hocon_value *item = arr->items[i];
        int w = snprintf(pfx, sizeof(pfx), "%s[%zu].", prefix, i);
        if (w < 0 || (size_t)w >= sizeof(pfx)) {
            add_error(ld, item, prefix, "the key path is too long");
            return;
        }
        if (item->type != HOCON_OBJECT) {
            add_error(ld, item, prefix, "element %zu is not an object", i);
            continue;
        }
        char *n = grow_array(*out, *nout, size);
        if (!n)
            return;
        *out = n;
        void *elem = n + (*nout)++ * size;
        apply_table(ld, keys, nkeys, item, pfx, elem);
        check_unknown(ld, item, pfx, "", keys, nkeys, NULL, 0);
        for (size_t r = 0; r < nrequired; r++)
            if (!hocon_get(item, required[r]))
                add_error(ld, item, pfx, "%s is required", required[r]);
    }
}

static void load_topics(struct loader *ld, const struct hocon_value *arr, const char *prefix,
                        struct cfg_bridge_topic **out, size_t *nout)
{
    static const char *const required[] = {"remote_topic"};
    load_objects(ld, arr, prefix, topic_keys, N(topic_keys), (void **)out, nout, sizeof(**out),
                 required, N(required));
}

static void load_bridges(struct loader *ld, const struct hocon_value *mqtt, struct ward_config *cfg)
{
    static const char *const skip[] = {"forwards", "subscription"};
    char prefix[512];
    for (size_t i = 0; i < mqtt->count; i++) {
        const struct hocon_member *m = &mqtt->members[i];
        snprintf(prefix, sizeof(prefix), "bridges.mqtt.%s.", m->key);
        if (m->val->type != HOCON_OBJECT) {
            add_error(ld, m->val, prefix, "expected a bridge block { server = ... }");
            continue;
        }
        struct cfg_bridge *n = grow_array(cfg->bridges, cfg->nbridges, sizeof(*n));
        if (!n)
            return;
        cfg->bridges = n;
        struct cfg_bridge *b = &n[cfg->nbridges++];
        b->name = strdup(m->key);
        apply_table(ld, bridge_keys, N(bridge_keys), m->val, prefix, b);
        check_unknown(ld, m->val, prefix, "", bridge_keys, N(bridge_keys), skip, N(skip));
        const struct hocon_value *f = hocon_get(m->val, "forwards");
        const struct hocon_value *s = hocon_get(m->val, "subscription");
        char tp[600];
        snprintf(tp, sizeof(tp), "%sforwards", prefix);
        if (f)
            load_topics(ld, f, tp, &b->forwards, &b->nforwards);
        snprintf(tp, sizeof(tp), "%ssubscription", prefix);
        if (s)
            load_topics(ld, s, tp, &b->subscriptions, &b->nsubscriptions);
        if (!b->server)
            add_error(ld, m->val, prefix, "server is required");
    }
}

/* ---- NATS listeners: listeners.nats[.NAME] { ... } ----
 *
 * nats-server's option names, so a Mir nats-server.conf fragment moves over:
 * limits at the top, authorization { user password token timeout users },
 * tls { cert_file key_file ca_file verify verify_and_map timeout min_version
 * cipher_suites curve_preferences handshake_first }. ward's own TLS keys of
 * listeners.ssl (crlfile, crl_strict, sni ...) are taken inside tls { } with
 * the same meaning, defaults and ranges: they are read through
 * listener_keys itself (nats_ssl_keys names which). */

/* How to make a bcrypt hash, for the message that refuses a plaintext one. */
#define NATS_BCRYPT_HOWTO "`ward passwd --bcrypt`"

static void print_table(FILE *out, const struct key_spec *tab, size_t n, const void *base,
                        const char *ind);
static void print_value(FILE *out, const struct key_spec *ks, const void *base, const char *ind);
static void reference_table(FILE *out, const char *title, const char *prefix,
                            const struct key_spec *tab, size_t n);
static void free_strings(const struct key_spec *tab, size_t n, void *base);

#define NATS_MAX_PAYLOAD_MAX 67108864.0 /* 64MB, nats-server's own ceiling */

/* ---- WebSocket listeners (ws, wss, nats_ws) ---- */

/* Keys of ws and wss blocks beyond listener_keys (and of nats_ws blocks). */
static const struct key_spec ws_keys[] = {
    {"max_frame_size", K_SIZE, L(ws_max_frame_size), "0", 0, 4294967295.0, NULL,
     "Largest WebSocket message payload, its fragments together; more is refused with close "
     "1009 (0: mqtt.max_packet_size and a few bytes, or a NATS listener's max_payload plus "
     "max_control_line)."},
    {"max_header_size", K_SIZE, L(ws_max_header_size), "8KB", 1024, 1048576, NULL,
     "Largest HTTP upgrade request head (request line and headers); more is refused with 431. "
     "The whole upgrade must be done within handshake_timeout of accept."},
    {"allowed_origins", K_LIST, L(ws_allowed_origins), NULL, 0, 0, NULL,
     "Browser Origins allowed to connect (\"https://app.example.com\", a word or a list); others "
     "are refused with 403. Unset: any. Clients that send no Origin (not browsers) are let in."},
    {"same_origin", K_BOOL, L(ws_same_origin), "false", 0, 0, NULL,
     "A browser's Origin must be the host it sent the request to (its Host header); else 403."},
};
#define WS_KEY_NAMES                                                                               \
    {                                                                                              \
        "max_frame_size", "max_header_size", "allowed_origins", "same_origin"                      \
    }

/* nats-server's websocket { } names, beyond ws_keys and the NATS ones. */
static const struct key_spec nats_ws_keys[] = {
    {"host", K_STRING, L(ws_host), NULL, 0, 0, NULL,
     "nats-server's host: with port, instead of bind (default 0.0.0.0)."},
    {"port", K_U32, L(ws_port), "0", 0, 65535, NULL,
     "nats-server's port: with host, instead of bind."},
    {"no_tls", K_BOOL, L(ws_no_tls), "false", 0, 0, NULL,
     "Plain ws:// (nats-server requires it or a tls { } block; ward takes plain by default)."},
    {"compression", K_BOOL, L(ws_compression), "false", 0, 0, NULL,
     "Accepted for nats-server's files; permessage-deflate is not negotiated, so clients send "
     "uncompressed frames."},
    {"handshake_timeout", K_MS, L(handshake_timeout_ms), NULL, 0, 600000, NULL,
     "The TLS handshake and the HTTP upgrade must be done by then, from accept (default 10s)."},
};
#define NATS_WS_KEY_NAMES                                                                          \
    {                                                                                              \
        "host", "port", "no_tls", "compression", "handshake_timeout"                               \
    }

static const struct key_spec nats_keys[] = {
    {"bind", K_STRING, L(bind), NULL, 0, 0, NULL, "HOST:PORT to listen on (required)."},
    {"listen", K_STRING, L(bind), NULL, 0, 0, NULL, "nats-server's name for bind."},
    {"enable", K_BOOL, L(enable), "true", 0, 0, NULL, "Whether this listener runs."},
    {"max_connections", K_U32, L(max_connections), "0", 0, U32MAX, NULL,
     "Most connections on this listener (0: only mqtt.max_connections)."},
    {"allow_anonymous", K_TRISTATE, L(allow_anonymous), NULL, 0, 0, NULL,
     "Overrides auth.allow_anonymous for this listener."},
    {"max_payload", K_SIZE, L(nats_max_payload), "1MB", 1, NATS_MAX_PAYLOAD_MAX, NULL,
     "Largest message payload a client may publish (announced in INFO); at most 64MB."},
    {"max_control_line", K_SIZE, L(nats_max_control_line), "4KB", 256, 1048576, NULL,
     "Longest protocol line (PUB, SUB, CONNECT ...) without its payload."},
    {"ping_interval", K_MS, L(nats_ping_interval_ms), "2m", 1000, U32MAX, NULL,
     "How often the server PINGs a client (a bare number is seconds)."},
    {"ping_max", K_U32, L(nats_ping_max), "2", 1, 1000, NULL,
     "Unanswered PINGs before the connection is closed as stale."},
    {"max_subscriptions", K_U32, L(nats_max_subscriptions), "0", 0, U32MAX, NULL,
     "Most subscriptions per connection (0: mqtt.max_subscriptions)."},
    {"auth_timeout", K_MS, L(nats_auth_timeout_ms), NULL, 0, 600000, NULL,
     "CONNECT must arrive within this (unset or 0: 2s, 5s with TLS; a bare number is "
     "seconds)."},
    {"authorization.timeout", K_MS, L(nats_auth_timeout_ms), NULL, 0, 600000, NULL,
     "nats-server's name for auth_timeout."},
    {"no_auth_user", K_STRING, L(nats_no_auth_user), NULL, 0, 0, NULL,
     "A user of authorization.users whose rights clients without credentials get."},
    {"max_output_bytes", K_SIZE, L(max_output_bytes), NULL, 0, 4294967295.0, NULL,
     "Overrides mqtt.max_output_bytes on this listener (0: no override)."},
    {"max_pending", K_SIZE, L(max_output_bytes), NULL, 0, 4294967295.0, NULL,
     "nats-server's name for max_output_bytes."},
    {"slow_consumer_timeout", K_MS, L(slow_consumer_timeout_ms), NULL, 0, U32MAX, NULL,
     "Overrides mqtt.slow_consumer_timeout on this listener (0: no override)."},
    {"write_deadline", K_MS, L(slow_consumer_timeout_ms), NULL, 0, U32MAX, NULL,
     "nats-server's name for slow_consumer_timeout: a client whose output stays full this long "
     "is closed as a slow consumer."},
    {"overload", K_ENUM, L(overload), NULL, 0, 0, "backpressure drop reject",
     "Overrides mqtt.overload for the receivers on this listener."},
    {"proxy_protocol", K_BOOL, L(proxy_protocol), "false", 0, 0, NULL,
     "Read a PROXY protocol header from trusted_proxies (as listeners.tcp)."},
    {"trusted_proxies", K_LIST, L(trusted_proxies), NULL, 0, 0, NULL,
     "Addresses or CIDR ranges of the proxies that send a PROXY header."},
    {"authorization.user", K_STRING, L(nats_user), NULL, 0, 0, NULL,
     "A single user (with authorization.password; not with users)."},
    {"authorization.password", K_STRING, L(nats_password), NULL, 0, 0, NULL,
     "Its password: a bcrypt hash ($2a$...), plaintext is refused."},
    {"authorization.token", K_STRING, L(nats_token), NULL, 0, 0, NULL,
     "A token clients send as auth_token (plaintext or a bcrypt hash; not with users)."},
    {"tls.cert_file", K_STRING, L(certfile), NULL, 0, 0, NULL,
     "Server certificate chain (PEM): with key_file, makes this a TLS listener."},
    {"tls.key_file", K_STRING, L(keyfile), NULL, 0, 0, NULL, "Server private key."},
    {"tls.ca_file", K_STRING, L(cacertfile), NULL, 0, 0, NULL,
     "CA bundle that client certificates must chain to."},
    {"tls.verify", K_BOOL, L(verify_peer), "false", 0, 0, NULL,
     "Require and verify client certificates (mutual TLS)."},
    {"tls.verify_and_map", K_BOOL, L(nats_verify_and_map), "false", 0, 0, NULL,
     "As verify, and a name from the certificate (email, DNS name, DN) must be a listed user, "
     "whose permissions then apply."},
    {"tls.timeout", K_MS, L(handshake_timeout_ms), "10s", 100, 600000, NULL,
     "A TLS handshake not finished by then is dropped (a bare number is seconds)."},
    {"tls.min_version", K_ENUM, L(tls_version), "1.2", 0, 0, "1.2 1.3",
     "Lowest TLS version accepted."},
    {"tls.cipher_suites", K_LIST, L(nats_cipher_suites), NULL, 0, 0, NULL,
     "Allowed cipher suites by their IANA names (TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "
     "TLS_AES_128_GCM_SHA256 ...)."},
    {"tls.curve_preferences", K_LIST, L(tls_groups), NULL, 0, 0, NULL,
     "Key exchange groups: CurveP256, CurveP384, CurveP521, X25519 (or OpenSSL's names)."},
    {"tls.handshake_first", K_BOOL, L(nats_handshake_first), "false", 0, 0, NULL,
     "TLS before the INFO line (nats.js handshakeFirst); clients must ask for it."},
};

/* listeners.ssl keys also taken inside a NATS listener's tls { } block, and
 * the NATS blocks loaded by hand (skipped by the unknown-key check). */
static const char *const nats_skip[] = {
    "tls.crlfile",
    "tls.crl_strict",
    "tls.expiry_warn_days",
    "tls.max_handshakes",
    "tls.handshake_queue",
    "tls.handshake_queue_timeout",
    "tls.handshake_idle_timeout",
    "tls.capath",
    "tls.key_password",
    "tls.verify_depth",
    "tls.peer_cert_as_username",
    "tls.peer_cert_as_clientid",
    "tls.sni",
    "authorization.users",
};
#define NATS_SSL_KEYS 11 /* the first entries of nats_skip: listener_keys by name */

#define NU(f) offsetof(struct cfg_nats_user, f)
static const struct key_spec nats_user_keys[] = {
    {"user", K_STRING, NU(user), NULL, 0, 0, NULL,
     "User name (or, under tls.verify_and_map, a "
     "name from the client certificate)."},
    {"password", K_STRING, NU(password), NULL, 0, 0, NULL,
     "bcrypt hash of the password ($2a$...); plaintext is refused."},
    {"nkey", K_STRING, NU(nkey), NULL, 0, 0, NULL,
     "An NKey user public key (U...) instead of user and password."},
};

/* The shape of a bcrypt hash: "$2a$" (or $2b$, $2y$), two cost digits, "$",
 * then 53 characters of bcrypt's base64. The auth layer checks it again. */
static bool is_bcrypt(const char *s)
{
    static const char b64[] = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    bool prefix =
        strncmp(s, "$2a$", 4) == 0 || strncmp(s, "$2b$", 4) == 0 || strncmp(s, "$2y$", 4) == 0;
    return prefix && strlen(s) == 60 && s[4] >= '0' && s[4] <= '3' && s[5] >= '0' && s[5] <= '9' &&
           s[6] == '$' && strspn(s + 7, b64) == 53;
}

static void nats_plaintext(struct loader *ld, const struct hocon_value *at, const char *key)
{
    add_error(ld, at, key,
              "a plaintext password: only bcrypt hashes ($2a$...) are accepted here, as "
              "nats-server hashes them; make one with " NATS_BCRYPT_HOWTO);
}

/* An NKey user public key: 'U' and 55 more characters of base32. */
static bool nkey_shape(const char *s)
{
    if (s[0] != 'U' || strlen(s) != 56)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= '2' && *p <= '7')))
            return false;
    return true;
}

/* A string or an array of strings into a new array. Subjects with
 * whitespace other than one space (a subscribe entry's queue group) or
 * empty ones are refused. */
static void nats_subjects(struct loader *ld, const struct hocon_value *v, const char *key,
                          char ***out, size_t *n)
{
    const struct hocon_value *one[1] = {v};
    const struct hocon_value *const *items = v->type == HOCON_ARRAY ? (void *)v->items : one;
    size_t count = v->type == HOCON_ARRAY ? v->count : 1;
    char **arr = calloc(count ? count : 1, sizeof(*arr));
    if (!arr)
        return;
    *out = arr;
    for (size_t i = 0; i < count; i++) {
        const char *s = items[i]->type == HOCON_STRING ? items[i]->str : NULL;
        if (!s || !*s || strpbrk(s, "\t\r\n") || s[0] == ' ' || s[strlen(s) - 1] == ' ') {
            add_error(ld, items[i], key, "expected a subject (or a list of them)");
            continue;
        }
        if ((arr[*n] = strdup(s)))
            (*n)++;
    }
}

/* publish / subscribe: a subject, a list, or { allow = ..., deny = ... }. */
static void nats_direction(struct loader *ld, const struct hocon_value *v, const char *key,
                           char ***allow, size_t *nallow, char ***deny, size_t *ndeny)
{
    char k[1200];
    if (v->type != HOCON_OBJECT) {
        nats_subjects(ld, v, key, allow, nallow);
        return;
    }
    for (size_t i = 0; i < v->count; i++) {
        const struct hocon_member *m = &v->members[i];
        snprintf(k, sizeof(k), "%s.%s", key, m->key);
        if (strcmp(m->key, "allow") == 0)
            nats_subjects(ld, m->val, k, allow, nallow);
        else if (strcmp(m->key, "deny") == 0)
            nats_subjects(ld, m->val, k, deny, ndeny);
        else
            add_error(ld, m->val, k, "unknown key (allow or deny)");
    }
}

/* allow_responses = true | { max = N, expires = "1m" }. */
static void nats_responses(struct loader *ld, const struct hocon_value *v, const char *key,
                           struct cfg_nats_perms *p)
{
    static const struct key_spec keys[] = {
        {"max", K_U32, offsetof(struct cfg_nats_perms, responses_max), "1", 1, 1000000, NULL, ""},
        {"expires", K_MS, offsetof(struct cfg_nats_perms, responses_expires_ms), "0", 0, U32MAX,
         NULL, ""},
    };
    char pfx[1200];
    if (v->type == HOCON_BOOL) {
        p->allow_responses = v->b;
        return;
    }
    if (v->type != HOCON_OBJECT) {
        add_error(ld, v, key, "expected true, false or { max = N, expires = DURATION }");
        return;
    }
    p->allow_responses = true;
    snprintf(pfx, sizeof(pfx), "%s.", key);
    apply_table(ld, keys, N(keys), v, pfx, p);
    check_unknown(ld, v, pfx, "", keys, N(keys), NULL, 0);
}

static void nats_perms(struct loader *ld, const struct hocon_value *v, const char *key,
                       struct cfg_nats_perms *p)
{
    char k[1000];
    if (v->type != HOCON_OBJECT) {
        add_error(ld, v, key, "expected { publish ..., subscribe ..., allow_responses ... }");
        return;
    }
    for (size_t i = 0; i < v->count; i++) {
        const struct hocon_member *m = &v->members[i];
        snprintf(k, sizeof(k), "%s.%s", key, m->key);
        if (strcmp(m->key, "publish") == 0 || strcmp(m->key, "pub") == 0)
            nats_direction(ld, m->val, k, &p->pub_allow, &p->npub_allow, &p->pub_deny,
                           &p->npub_deny);
        else if (strcmp(m->key, "subscribe") == 0 || strcmp(m->key, "sub") == 0)
            nats_direction(ld, m->val, k, &p->sub_allow, &p->nsub_allow, &p->sub_deny,
                           &p->nsub_deny);
        else if (strcmp(m->key, "allow_responses") == 0)
            nats_responses(ld, m->val, k, p);
        else
            add_error(ld, m->val, k, "unknown key (publish, subscribe or allow_responses)");
    }
}

/* One user entry: its keys, its permissions, and nats-server's rules. */
static void nats_user(struct loader *ld, const struct hocon_value *item, const char *key,
                      struct cfg_listener *l, size_t i)
{
    static const char *const skip[] = {"permissions"};
    struct cfg_nats_user *u = &l->nats_users[i];
    char pfx[800];
    snprintf(pfx, sizeof(pfx), "%s.", key);
    apply_table(ld, nats_user_keys, N(nats_user_keys), item, pfx, u);
    check_unknown(ld, item, pfx, "", nats_user_keys, N(nats_user_keys), skip, N(skip));
    const struct hocon_value *perms = hocon_get(item, "permissions");
    if (perms) {
        snprintf(pfx, sizeof(pfx), "%s.permissions", key);
        u->has_perms = true;
        nats_perms(ld, perms, pfx, &u->perms);
    }
    if (!u->user == !u->nkey)
        add_error(ld, item, key, "needs either user or nkey");
    else if (u->nkey && u->password)
        add_error(ld, item, key, "an nkey user has no password");
    else if (u->nkey && !nkey_shape(u->nkey))
        add_error(ld, item, key, "nkey: not an NKey user public key (U and 55 base32 characters)");
    else if (u->password && !is_bcrypt(u->password))
        nats_plaintext(ld, hocon_get(item, "password"), key);
    else if (u->user && !u->password && !l->nats_verify_and_map &&
             !(l->nats_no_auth_user && strcmp(l->nats_no_auth_user, u->user) == 0))
        add_error(ld, item, key,
                  "user '%s' has no password (only tls.verify_and_map users and the "
                  "no_auth_user may go without)",
                  u->user);
    for (size_t j = 0; j < i; j++)
        if (u->user && l->nats_users[j].user && strcmp(u->user, l->nats_users[j].user) == 0)
            add_error(ld, item, key, "user '%s' is listed twice", u->user);
}

static void nats_users(struct loader *ld, const struct hocon_value *arr, const char *prefix,
                       struct cfg_listener *l)
{
    char pfx[600], key[700];
    snprintf(pfx, sizeof(pfx), "%sauthorization.users", prefix);
    if (arr->type != HOCON_ARRAY) {
        add_error(ld, arr, pfx, "expected a list of users [ {user: ..., password: ...} ]");
        return;
    }
    for (size_t i = 0; i < arr->count; i++) {
        snprintf(key, sizeof(key), "%s[%zu]", pfx, i);
        if (arr->items[i]->type != HOCON_OBJECT) {
            add_error(ld, arr->items[i], key, "expected {user: ..., password: ...}");
            continue;
        }
        struct cfg_nats_user *n = grow_array(l->nats_users, l->nats_nusers, sizeof(*n));
        if (!n)
            return;
        l->nats_users = n;
        nats_user(ld, arr->items[i], key, l, l->nats_nusers++);
    }
}

/* "HOST:PORT", "[v6]:PORT" or ":PORT", with a port from 0 to 65535. */
static bool bind_ok(const char *b)
{
    const char *colon = strrchr(b, ':');
    if (!colon || !colon[1] || strlen(colon + 1) > 5 ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1))
        return false;
    if (atoi(colon + 1) > 65535)
        return false;
    if (b[0] == '[')
        return colon > b + 1 && colon[-1] == ']';
    return !memchr(b, ':', (size_t)(colon - b)) && !strpbrk(b, " \t/");
}

/* curve_preferences in nats-server's names to OpenSSL's groups list. */
static void nats_curves(struct loader *ld, const struct hocon_value *at, const char *prefix,
                        struct cfg_listener *l)
{
    static const struct {
        const char *nats, *openssl;
    } names[] = {{"CurveP256", "P-256"}, {"CurveP384", "P-384"}, {"CurveP521", "P-521"},
                 {"X25519", "X25519"},   {"P-256", "P-256"},     {"P-384", "P-384"},
                 {"P-521", "P-521"},     {"X448", "X448"}};
    char out[256] = "", key[600];
    snprintf(key, sizeof(key), "%stls.curve_preferences", prefix);
    for (const char *p = l->tls_groups; p && *p;) {
        size_t n = strcspn(p, ","), k = 0;
        while (k < N(names) && (strlen(names[k].nats) != n || strncmp(p, names[k].nats, n)))
            k++;
        if (k == N(names)) {
            add_error(ld, at, key, "'%.*s' is not one of CurveP256 CurveP384 CurveP521 X25519",
                      (int)n, p);
            return;
        }
        size_t len = strlen(out);
        snprintf(out + len, sizeof(out) - len, "%s%s", len ? ":" : "", names[k].openssl);
        p += n + (p[n] == ',');
    }
    if (l->tls_groups) {
        free(l->tls_groups);
        l->tls_groups = strdup(out);
    }
}

/* Rules between keys, as nats-server checks them, and what makes the
 * listener a TLS one. */
static void nats_rules(struct loader *ld, const struct hocon_value *obj, const char *prefix,
                       struct cfg_listener *l)
{
    const struct hocon_value *authz = hocon_get(obj, "authorization");
    char key[600];
    snprintf(key, sizeof(key), "%sbind", prefix);
    if (!l->bind)
        add_error(ld, obj, key, "required (HOST:PORT)");
    else if (!bind_ok(l->bind))
        add_error(ld, hocon_get(obj, "bind"), key, "'%s' is not HOST:PORT (a port from 0 to 65535)",
                  l->bind);
    bool tls = l->certfile || l->keyfile || l->cacertfile;
    if (tls && (!l->certfile || !l->keyfile))
        add_error(ld, obj, prefix, "tls needs cert_file and key_file");
    if ((l->verify_peer || l->nats_verify_and_map) && !l->cacertfile && !l->capath)
        add_error(ld, obj, prefix, "tls.verify and tls.verify_and_map need tls.ca_file");
    if (!tls && l->nats_handshake_first)
        add_error(ld, obj, prefix, "tls.handshake_first needs a TLS listener (tls.cert_file)");
    /* nats-server's verify and verify_and_map both require a certificate. */
    l->verify_peer = l->fail_if_no_peer_cert = l->verify_peer || l->nats_verify_and_map;
    if (l->nats_user && !l->nats_password && !l->nats_verify_and_map)
        add_error(ld, authz, prefix, "authorization.user needs authorization.password");
    if (l->nats_password && !is_bcrypt(l->nats_password))
        nats_plaintext(ld, hocon_path(obj, "authorization.password"), prefix);
    if (l->nats_nusers && (l->nats_user || l->nats_token))
        add_error(ld, authz, prefix,
                  "authorization: users cannot be combined with user/password or token");
    if (l->nats_user && l->nats_token)
        add_error(ld, authz, prefix, "authorization: user/password and token are exclusive");
    bool found = !l->nats_no_auth_user;
    for (size_t i = 0; i < l->nats_nusers && !found; i++)
        found = l->nats_users[i].user && strcmp(l->nats_users[i].user, l->nats_no_auth_user) == 0;
    if (!found)
        add_error(ld, hocon_get(obj, "no_auth_user"), prefix,
                  "no_auth_user: '%s' is not in authorization.users", l->nats_no_auth_user);
    if (l->proxy_protocol && !l->trusted_proxies)
        add_error(ld, obj, prefix, "proxy_protocol needs trusted_proxies (the proxies' addresses)");
    const char *bad = l->trusted_proxies ? bad_cidr(l->trusted_proxies) : NULL;
    if (bad)
        add_error(ld, obj, prefix, "trusted_proxies: '%.*s' is not an address or CIDR range",
                  (int)strcspn(bad, ","), bad);
}

static const struct key_spec *listener_key(const char *name)
{
    for (size_t i = 0; i < N(listener_keys); i++)
        if (strcmp(listener_keys[i].key, name) == 0)
            return &listener_keys[i];
    return NULL;
}

static void load_nats_listener(struct loader *ld, const struct hocon_value *obj, const char *prefix,
                               struct cfg_listener *l)
{
    char full[600];
    /* Every listener field gets its listeners.ssl default first. */
    apply_table(ld, listener_keys, N(listener_keys), NULL, prefix, l);
    apply_table(ld, nats_keys, N(nats_keys), obj, prefix, l);
    if (l->kind == CFG_LISTENER_NATS_WS) {
        static const char *const ws_names[] = WS_KEY_NAMES, *const nws_names[] = NATS_WS_KEY_NAMES;
        const char *skip[N(nats_skip) + N(ws_names) + N(nws_names)];
        size_t ns = 0;
        for (size_t i = 0; i < N(nats_skip); i++)
            skip[ns++] = nats_skip[i];
        for (size_t i = 0; i < N(ws_names); i++)
            skip[ns++] = ws_names[i];
        for (size_t i = 0; i < N(nws_names); i++)
            skip[ns++] = nws_names[i];
        apply_table(ld, ws_keys, N(ws_keys), obj, prefix, l);
        apply_table(ld, nats_ws_keys, N(nats_ws_keys), obj, prefix, l);
        check_unknown(ld, obj, prefix, "", nats_keys, N(nats_keys), skip, ns);
        /* nats-server's host and port stand for bind. */
        if (!l->bind && l->ws_port &&
            asprintf(&l->bind, "%s:%u", l->ws_host ? l->ws_host : "0.0.0.0", l->ws_port) < 0)
            l->bind = NULL;
    } else {
        check_unknown(ld, obj, prefix, "", nats_keys, N(nats_keys), nats_skip, N(nats_skip));
    }
    const struct hocon_value *tls = hocon_get(obj, "tls");
    for (size_t i = 0; tls && tls->type == HOCON_OBJECT && i < NATS_SSL_KEYS; i++) {
        const struct key_spec *ks = listener_key(nats_skip[i] + 4);
        const struct hocon_value *v = hocon_get(tls, nats_skip[i] + 4);
        snprintf(full, sizeof(full), "%s%s", prefix, nats_skip[i]);
        if (ks && v)
            store(ld, ks, v, full, l);
    }
    static const char *const required[] = {"host", "certfile", "keyfile"};
    const struct hocon_value *sni = tls ? hocon_get(tls, "sni") : NULL;
    snprintf(full, sizeof(full), "%stls.sni", prefix);
    if (sni)
        load_objects(ld, sni, full, sni_keys, N(sni_keys), (void **)&l->sni, &l->nsni,
                     sizeof(*l->sni), required, N(required));
    const struct hocon_value *users = hocon_path(obj, "authorization.users");
    if (users)
        nats_users(ld, users, prefix, l);
    nats_curves(ld, tls ? hocon_get(tls, "curve_preferences") : obj, prefix, l);
    nats_rules(ld, obj, prefix, l);
}

static void free_nats_perms(struct cfg_nats_perms *p)
{
    char **lists[] = {p->pub_allow, p->pub_deny, p->sub_allow, p->sub_deny};
    size_t counts[] = {p->npub_allow, p->npub_deny, p->nsub_allow, p->nsub_deny};
    for (size_t i = 0; i < 4; i++) {
        for (size_t j = 0; j < counts[i]; j++)
            free(lists[i][j]);
        free(lists[i]);
    }
}

static void free_nats(struct cfg_listener *l)
{
    free_strings(nats_keys, N(nats_keys), l);
    free_strings(ws_keys, N(ws_keys), l);
    free_strings(nats_ws_keys, N(nats_ws_keys), l);
    for (size_t i = 0; i < l->nats_nusers; i++) {
        free_strings(nats_user_keys, N(nats_user_keys), &l->nats_users[i]);
        free_nats_perms(&l->nats_users[i].perms);
    }
    free(l->nats_users);
    l->nats_users = NULL;
    l->nats_nusers = 0;
}

static void print_subjects(FILE *out, const char *name, char *const *s, size_t n)
{
    if (!n)
        return;
    fprintf(out, "%s = [", name);
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%s\"%s\"", i ? ", " : "", s[i]);
    fprintf(out, "] ");
}

/* A NATS listener as HOCON; secrets show as "******" (whether one is set
 * stays visible). */
static void print_nats(FILE *out, const struct cfg_listener *l)
{
    static char mask[] = "******";
    struct cfg_listener shown = *l;
    shown.nats_password = l->nats_password ? mask : NULL;
    shown.nats_token = l->nats_token ? mask : NULL;
    shown.key_password = l->key_password ? mask : NULL;
    print_table(out, nats_keys, N(nats_keys), &shown, "  ");
    if (l->kind == CFG_LISTENER_NATS_WS) {
        print_table(out, ws_keys, N(ws_keys), &shown, "  ");
        print_table(out, nats_ws_keys, N(nats_ws_keys), &shown, "  ");
    }
    if (l->certfile) {
        fprintf(out, "  tls {\n");
        for (size_t i = 0; i < NATS_SSL_KEYS; i++)
            print_value(out, listener_key(nats_skip[i] + 4), &shown, "    ");
        for (size_t j = 0; j < l->nsni; j++) {
            fprintf(out, "%s", j ? "" : "    sni = [\n");
            fprintf(out, "      {\n");
            print_table(out, sni_keys, N(sni_keys), &l->sni[j], "        ");
            fprintf(out, "      }\n%s", j + 1 < l->nsni ? "" : "    ]\n");
        }
        fprintf(out, "  }\n");
    }
    if (l->nats_nusers)
        fprintf(out, "  authorization.users = [\n");
    for (size_t i = 0; i < l->nats_nusers; i++) {
        const struct cfg_nats_user *u = &l->nats_users[i];
        const struct cfg_nats_perms *p = &u->perms;
        fprintf(out, "    { %s = \"%s\"%s", u->nkey ? "nkey" : "user", u->nkey ? u->nkey : u->user,
                u->password ? ", password = \"******\"" : "");
        if (u->has_perms) {
            fprintf(out, ", permissions { publish { ");
            print_subjects(out, "allow", p->pub_allow, p->npub_allow);
            print_subjects(out, "deny", p->pub_deny, p->npub_deny);
            fprintf(out, "}, subscribe { ");
            print_subjects(out, "allow", p->sub_allow, p->nsub_allow);
            print_subjects(out, "deny", p->sub_deny, p->nsub_deny);
            fprintf(out, "}");
            if (p->allow_responses)
                fprintf(out, ", allow_responses { max = %u, expires = %ums }",
                        p->responses_max ? p->responses_max : 1, p->responses_expires_ms);
            fprintf(out, " }");
        }
        fprintf(out, " }\n");
    }
    if (l->nats_nusers)
        fprintf(out, "  ]\n");
}

static void reference_nats(FILE *out)
{
    reference_table(out, "NATS listeners: `listeners.nats[.NAME] { ... }`", "", nats_keys,
                    N(nats_keys));
    fprintf(out, "\nnats-server's syntax is taken as it is (`key: value`, `users = [ {user: a, "
                 "password: \"$2a$...\"} ]`, `include \"FILE\"`). Inside `tls { }` a NATS "
                 "listener also takes these keys of `listeners.ssl`, with the same meaning and "
                 "defaults: ");
    for (size_t i = 0; i < NATS_SSL_KEYS; i++)
        fprintf(out, "%s`%s`", i ? ", " : "", nats_skip[i] + 4);
    fprintf(out, ", and `sni = [{...}]`. `verify` and `verify_and_map` both require a client "
                 "certificate.\n");
    reference_table(out, "NATS users: `authorization { users = [{...}] }`", "", nats_user_keys,
                    N(nats_user_keys));
    fprintf(out,
            "\nEach user may have `permissions { publish = SUBJECTS | { allow = SUBJECTS, deny "
            "= SUBJECTS }, subscribe = (the same; an entry \"SUBJECT QUEUE\" concerns that queue "
            "group), allow_responses = true | { max = N, expires = DURATION } }` (SUBJECTS: a "
            "subject or a list; `pub` and `sub` are accepted as short names). Plaintext "
            "passwords are refused: make a bcrypt hash with " NATS_BCRYPT_HOWTO ".\n");
    reference_table(out, "NATS over WebSocket: `listeners.nats_ws[.NAME] { ... }`", "",
                    nats_ws_keys, N(nats_ws_keys));
    fprintf(out, "\nA `listeners.nats_ws` block takes every key of `listeners.nats` (its `tls { }` "
                 "block makes it wss://, unless `no_tls = true`) and those of WebSocket "
                 "listeners above, with nats-server's `websocket { }` names. Any request path is "
                 "served; no subprotocol is negotiated.\n");
}
/* ---- end of NATS listeners ---- */

static const struct {
    const char *name;
    enum cfg_listener_kind kind;
} listener_kinds[] = {{"tcp", CFG_LISTENER_TCP},   {"ssl", CFG_LISTENER_SSL},
                      {"ws", CFG_LISTENER_WS},     {"wss", CFG_LISTENER_WSS},
                      {"nats", CFG_LISTENER_NATS}, {"nats_ws", CFG_LISTENER_NATS_WS}};

static void load_listener(struct loader *ld, const struct hocon_value *obj, const char *name,
                          enum cfg_listener_kind kind, const char *prefix, struct ward_config *cfg)
{
    struct cfg_listener *n = grow_array(cfg->listeners, cfg->nlisteners, sizeof(*n));
    if (!n)
        return;
    cfg->listeners = n;
    struct cfg_listener *l = &n[cfg->nlisteners++];
    l->name = strdup(name);
    l->kind = kind;
    if (kind == CFG_LISTENER_NATS || kind == CFG_LISTENER_NATS_WS) {
        load_nats_listener(ld, obj, prefix, l);
        return;
    }
    static const char *const skip[] = {"sni", "max_frame_size", "max_header_size",
                                       "allowed_origins", "same_origin"};
    static const char *const required[] = {"host", "certfile", "keyfile"};
    bool ws = kind == CFG_LISTENER_WS || kind == CFG_LISTENER_WSS;
    apply_table(ld, listener_keys, N(listener_keys), obj, prefix, l);
    apply_table(ld, ws_keys, N(ws_keys), ws ? obj : NULL, prefix, l);
    check_unknown(ld, obj, prefix, "", listener_keys, N(listener_keys), skip, ws ? N(skip) : 1);
    const struct hocon_value *sni = hocon_get(obj, "sni");
    if (sni) {
        char sp[600];
        snprintf(sp, sizeof(sp), "%ssni", prefix);
        load_objects(ld, sni, sp, sni_keys, N(sni_keys), (void **)&l->sni, &l->nsni,
                     sizeof(*l->sni), required, N(required));
    }
    if (!l->bind)
        add_error(ld, obj, prefix, "bind is required (HOST:PORT)");
    bool tls = kind == CFG_LISTENER_SSL || kind == CFG_LISTENER_WSS;
    if (tls && l->enable && (!l->certfile || !l->keyfile))
        add_error(ld, obj, prefix, "a TLS listener needs certfile and keyfile");
    if (l->fail_if_no_peer_cert && !l->verify_peer)
        add_error(ld, obj, prefix, "fail_if_no_peer_cert needs verify_peer = true");
    if (l->verify_peer && !l->cacertfile && !l->capath)
        add_error(ld, obj, prefix, "verify_peer needs cacertfile or capath");
    if (l->proxy_protocol && !l->trusted_proxies)
        add_error(ld, obj, prefix, "proxy_protocol needs trusted_proxies (the proxies' addresses)");
    const char *bad = l->trusted_proxies ? bad_cidr(l->trusted_proxies) : NULL;
    if (bad)
        add_error(ld, obj, prefix, "trusted_proxies: '%.*s' is not an address or CIDR range",
                  (int)strcspn(bad, ","), bad);
}

/* listeners.KIND { bind ... } is one listener; listeners.KIND.NAME { ... }
 * (objects whose members are blocks) are named ones. */
static void load_listeners(struct loader *ld, const struct hocon_value *ls, struct ward_config *cfg)
{
    char prefix[512];
    for (size_t i = 0; i < ls->count; i++) {
        const struct hocon_member *m = &ls->members[i];
        size_t k = 0;
        while (k < N(listener_kinds) && strcmp(m->key, listener_kinds[k].name) != 0)
            k++;
        if (k == N(listener_kinds)) {
            add_error(ld, m->val, "listeners",
                      "unknown listener type '%s' (tcp, ssl, ws, wss, nats, nats_ws)", m->key);
            continue;
        }
        if (m->val->type != HOCON_OBJECT) {
            add_error(ld, m->val, m->key, "expected a listener block");
            continue;
        }
        bool named = m->val->count > 0;
        for (size_t j = 0; j < m->val->count; j++)
            named &= m->val->members[j].val->type == HOCON_OBJECT;
        if (!named) {
            snprintf(prefix, sizeof(prefix), "listeners.%s.", m->key);
            load_listener(ld, m->val, "default", listener_kinds[k].kind, prefix, cfg);
            continue;
        }
        for (size_t j = 0; j < m->val->count; j++) {
            const struct hocon_member *nm = &m->val->members[j];
            snprintf(prefix, sizeof(prefix), "listeners.%s.%s.", m->key, nm->key);
            load_listener(ld, nm->val, nm->key, listener_kinds[k].kind, prefix, cfg);
        }
    }
}

/* auth.password and auth.acl are `{include "FILE"}` in NanoMQ's format; ward
 * keeps the included file's name for the auth layer to read itself. */
static void load_include_ref(struct loader *ld, const struct hocon_value *auth, const char *key,
                             char **out)
{
    const struct hocon_value *v = hocon_get(auth, key);
    if (!v)
        return;
    if (v->type == HOCON_STRING) {
        *out = strdup(v->str);
        return;
    }
    if (v->type == HOCON_OBJECT && v->count > 0 && v->members[0].val->file) {
        *out = strdup(v->members[0].val->file);
        return;
    }
    add_error(ld, v, key, "expected {include \"FILE\"} or a file name");
}

/* http { }: what would stop the admin server from starting. */
static void check_http(struct loader *ld, const struct hocon_value *root, struct cfg_http *h)
{
    const struct hocon_value *at = hocon_get(root, "http");
    if (!at)
        at = hocon_get(root, "http_server");
    if (!at)
        return;
    if (h->bind && !bind_ok(h->bind))
        add_error(ld, hocon_path(root, "http.bind"), "http.bind", "'%s' is not HOST:PORT", h->bind);
    if ((h->certfile != NULL) != (h->keyfile != NULL))
        add_error(ld, at, "http", "HTTPS needs both certfile and keyfile");
    if (h->fail_if_no_peer_cert && !h->verify_peer)
        add_error(ld, at, "http", "fail_if_no_peer_cert needs verify_peer = true");
    if (h->verify_peer && !h->cacertfile && !h->capath)
        add_error(ld, at, "http", "verify_peer needs cacertfile (or capath)");
    if ((h->verify_peer || h->admin_ou || h->read_ou) && !h->certfile)
        add_error(ld, at, "http",
                  "client certificates (verify_peer, admin_ou, read_ou) need "
                  "HTTPS: certfile and keyfile");
}

/* log { }: the sink names (a misspelt one would silently log nowhere). */
static void check_log(struct loader *ld, const struct hocon_value *root, struct ward_config *cfg)
{
    unsigned to;
    const char *bad = NULL;
    if (cfg->log_to && log_sinks_parse(cfg->log_to, &to, &bad) < 0)
        add_error(ld, hocon_path(root, "log.to"), "log.to",
                  "unknown sink '%.*s' (console, file or syslog)", (int)strcspn(bad, ", "), bad);
    if (cfg->log_file && !*cfg->log_file)
        add_error(ld, hocon_path(root, "log.file"), "log.file", "empty file name");
}

static int load_root(struct loader *ld, const struct hocon_value *root, struct ward_config *cfg)
{
    static const char *const skip[] = {"listeners", "bridges", "auth.password", "auth.acl",
                                       "http.api_keys"};
    memset(cfg, 0, sizeof(*cfg));
    apply_table(ld, global_keys, N(global_keys), root, "", cfg);
    check_unknown(ld, root, "", "", global_keys, N(global_keys), skip, N(skip));
    const struct hocon_value *ls = hocon_get(root, "listeners");
    if (ls && ls->type == HOCON_OBJECT)
        load_listeners(ld, ls, cfg);
    const struct hocon_value *br = hocon_path(root, "bridges.mqtt");
    if (br && br->type == HOCON_OBJECT)
        load_bridges(ld, br, cfg);
    const struct hocon_value *auth = hocon_get(root, "auth");
    if (auth) {
        load_include_ref(ld, auth, "password", &cfg->password_file);
        load_include_ref(ld, auth, "acl", &cfg->acl_file);
    }
    const struct hocon_value *http = hocon_get(root, "http");
    if (http && http->type == HOCON_OBJECT)
        load_include_ref(ld, http, "api_keys", &cfg->http.api_keys_file);
    check_http(ld, root, &cfg->http);
    check_log(ld, root, cfg);
    return ld->errs->count ? -1 : 0;
}

/* Orders "file:line: ..." messages by file, then line. */
static int by_position(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    const char *cx = strchr(x, ':'), *cy = strchr(y, ':');
    size_t fx = cx ? (size_t)(cx - x) : strlen(x), fy = cy ? (size_t)(cy - y) : strlen(y);
    int c = strncmp(x, y, fx < fy ? fx : fy);
    if (c != 0 || fx != fy)
        return c != 0 ? c : (fx < fy ? -1 : 1);
    long lx = cx ? strtol(cx + 1, NULL, 10) : 0, ly = cy ? strtol(cy + 1, NULL, 10) : 0;
    return (lx > ly) - (lx < ly);
}

static int load_doc(struct hocon_doc *doc, const char *name, struct ward_config *cfg,
                    struct cfg_errors *errs)
{
    struct loader ld = {.errs = errs, .file = name};
    int r = load_root(&ld, doc->root, cfg);
    hocon_doc_free(doc);
    if (errs->count > 1)
        qsort(errs->msgs, errs->count, sizeof(*errs->msgs), by_position);
    if (r < 0)
        config_free(cfg);
    return r;
}

static int parse_failed(const char *err, struct ward_config *cfg, struct cfg_errors *errs)
{
    memset(cfg, 0, sizeof(*cfg));
    errs->msgs = malloc(sizeof(char *));
    if (errs->msgs && (errs->msgs[0] = strdup(err)))
        errs->count = 1;
    return -1;
}

/* see config.h */
int config_load(const char *path, struct ward_config *cfg, struct cfg_errors *errs)
{
    struct hocon_doc doc;
    char err[512];
    memset(errs, 0, sizeof(*errs));
    if (hocon_parse_file(path, &doc, err, sizeof(err)) < 0)
        return parse_failed(err, cfg, errs);
    return load_doc(&doc, path, cfg, errs);
}

/* see config.h */
int config_load_string(const char *name, const char *text, struct ward_config *cfg,
                       struct cfg_errors *errs)
{
    struct hocon_doc doc;
    char err[512];
    memset(errs, 0, sizeof(*errs));
    if (hocon_parse_string(name, text, strlen(text), &doc, err, sizeof(err)) < 0)
        return parse_failed(err, cfg, errs);
    return load_doc(&doc, name, cfg, errs);
}

/* see config.h */
int config_defaults(struct ward_config *cfg)
{
    struct cfg_errors errs;
    int r = config_load_string("(defaults)", "", cfg, &errs);
    cfg_errors_free(&errs);
    return r;
}

static void free_strings(const struct key_spec *tab, size_t n, void *base)
{
    for (size_t i = 0; i < n; i++) {
        if (tab[i].kind != K_STRING && tab[i].kind != K_ENUM && tab[i].kind != K_LIST)
            continue;
        char **f = (char **)((char *)base + tab[i].off);
        free(*f);
        *f = NULL;
    }
}

/* see config.h */
void config_free(struct ward_config *cfg)
{
    free_strings(global_keys, N(global_keys), cfg);
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        free(cfg->listeners[i].name);
        free_strings(listener_keys, N(listener_keys), &cfg->listeners[i]);
        free_nats(&cfg->listeners[i]);
        for (size_t j = 0; j < cfg->listeners[i].nsni; j++)
            free_strings(sni_keys, N(sni_keys), &cfg->listeners[i].sni[j]);
        free(cfg->listeners[i].sni);
    }
    for (size_t i = 0; i < cfg->nbridges; i++) {
        struct cfg_bridge *b = &cfg->bridges[i];
        free(b->name);
        free_strings(bridge_keys, N(bridge_keys), b);
        for (size_t j = 0; j < b->nforwards; j++)
            free_strings(topic_keys, N(topic_keys), &b->forwards[j]);
        for (size_t j = 0; j < b->nsubscriptions; j++)
            free_strings(topic_keys, N(topic_keys), &b->subscriptions[j]);
        free(b->forwards);
        free(b->subscriptions);
    }
    free(cfg->listeners);
    free(cfg->bridges);
    free(cfg->password_file);
    free(cfg->acl_file);
    free(cfg->http.api_keys_file);
    memset(cfg, 0, sizeof(*cfg));
}

/* see config.h */
void cfg_errors_free(struct cfg_errors *errs)
{
    for (size_t i = 0; i < errs->count; i++)
        free(errs->msgs[i]);
    free(errs->msgs);
    memset(errs, 0, sizeof(*errs));
}

static void print_value(FILE *out, const struct key_spec *ks, const void *base, const char *ind)
{
    const char *field = (const char *)base + ks->off;
    /* Inside its block: "rotation.size" for log.rotation.size. */
    const char *name = strchr(ks->key, '.') ? strchr(ks->key, '.') + 1 : ks->key;
    switch (ks->kind) {
    case K_BOOL:
        fprintf(out, "%s%s = %s\n", ind, name, *(const bool *)field ? "true" : "false");
        return;
    case K_TRISTATE:
        if (*(const int *)field >= 0)
            fprintf(out, "%s%s = %s\n", ind, name, *(const int *)field ? "true" : "false");
        return;
    case K_STRING:
    case K_LIST:
    case K_ENUM:
        if (*(char *const *)field)
            fprintf(out, "%s%s = \"%s\"\n", ind, name, *(char *const *)field);
        return;
    case K_DOUBLE:
        fprintf(out, "%s%s = %g\n", ind, name, *(const double *)field);
        return;
    case K_MS:
        fprintf(out, "%s%s = %ums\n", ind, name, *(const uint32_t *)field);
        return;
    case K_SECONDS:
        fprintf(out, "%s%s = %us\n", ind, name, *(const uint32_t *)field);
        return;
    default:
        fprintf(out, "%s%s = %u\n", ind, name, *(const uint32_t *)field);
        return;
    }
}

/* Prints a table's keys grouped by their first path segment. */
static void print_table(FILE *out, const struct key_spec *tab, size_t n, const void *base,
                        const char *ind)
{
    const char *open = NULL;
    size_t openlen = 0;
    char inner[32];
    snprintf(inner, sizeof(inner), "%s  ", ind);
    for (size_t i = 0; i < n; i++) {
        if (!tab[i].def && i > 0 && tab[i].off == tab[i - 1].off)
            continue; /* alias */
        const char *dot = strchr(tab[i].key, '.');
        size_t glen = dot ? (size_t)(dot - tab[i].key) : 0;
        if (open && (glen != openlen || strncmp(open, tab[i].key, glen) != 0)) {
            fprintf(out, "%s}\n", ind);
            open = NULL;
        }
        if (dot && !open) {
            fprintf(out, "%s%.*s {\n", ind, (int)glen, tab[i].key);
            open = tab[i].key;
            openlen = glen;
        }
        print_value(out, &tab[i], base, dot ? inner : ind);
    }
    if (open)
        fprintf(out, "%s}\n", ind);
}

static const char *kind_label(const struct cfg_listener *l)
{
    for (size_t k = 0; k < N(listener_kinds); k++)
        if (listener_kinds[k].kind == l->kind)
            return listener_kinds[k].name;
    return "tcp";
}

static void print_topics(FILE *out, const char *name, const struct cfg_bridge_topic *t, size_t n)
{
    if (n == 0)
        return;
    fprintf(out, "  %s = [\n", name);
    for (size_t j = 0; j < n; j++) {
        fprintf(out, "    {\n");
        print_table(out, topic_keys, N(topic_keys), &t[j], "      ");
        fprintf(out, "    }\n");
    }
    fprintf(out, "  ]\n");
}

/* see config.h */
void config_print(const struct ward_config *cfg, FILE *out)
{
    print_table(out, global_keys, N(global_keys), cfg, "");
    if (cfg->password_file)
        fprintf(out, "auth.password = {include \"%s\"}\n", cfg->password_file);
    if (cfg->acl_file)
        fprintf(out, "auth.acl = {include \"%s\"}\n", cfg->acl_file);
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const struct cfg_listener *l = &cfg->listeners[i];
        fprintf(out, "listeners.%s.%s {\n", kind_label(l), l->name);
        if (l->kind == CFG_LISTENER_NATS || l->kind == CFG_LISTENER_NATS_WS) {
            print_nats(out, l);
            fprintf(out, "}\n");
            continue;
        }
        print_table(out, listener_keys, N(listener_keys), l, "  ");
        if (l->kind == CFG_LISTENER_WS || l->kind == CFG_LISTENER_WSS)
            print_table(out, ws_keys, N(ws_keys), l, "  ");
        if (l->nsni)
            fprintf(out, "  sni = [\n");
        for (size_t j = 0; j < l->nsni; j++) {
            fprintf(out, "    {\n");
            print_table(out, sni_keys, N(sni_keys), &l->sni[j], "      ");
            fprintf(out, "    }\n");
        }
        if (l->nsni)
            fprintf(out, "  ]\n");
        fprintf(out, "}\n");
    }
    for (size_t i = 0; i < cfg->nbridges; i++) {
        const struct cfg_bridge *b = &cfg->bridges[i];
        fprintf(out, "bridges.mqtt.%s {\n", b->name);
        print_table(out, bridge_keys, N(bridge_keys), b, "  ");
        print_topics(out, "forwards", b->forwards, b->nforwards);
        print_topics(out, "subscription", b->subscriptions, b->nsubscriptions);
        fprintf(out, "}\n");
    }
}

static const char *type_doc(const struct key_spec *ks)
{
    static char buf[128];
    if (ks->kind == K_ENUM) {
        snprintf(buf, sizeof(buf), "one of: %s", ks->choices);
        return buf;
    }
    return kind_hint(ks->kind);
}

static void reference_table(FILE *out, const char *title, const char *prefix,
                            const struct key_spec *tab, size_t n)
{
    fprintf(out, "\n## %s\n\n| key | type | default | meaning |\n|---|---|---|---|\n", title);
    for (size_t i = 0; i < n; i++)
        fprintf(out, "| `%s%s` | %s | %s | %s |\n", prefix, tab[i].key, type_doc(&tab[i]),
                tab[i].def ? tab[i].def : "(unset)", tab[i].doc);
}

/* see config.h */
void config_print_reference(FILE *out)
{
    fprintf(out, "# Configuration reference\n\n"
                 "Generated by `ward check --print-reference` from the schema in "
                 "`src/config/schema.c`; a test keeps this file in step with the code.\n\n"
                 "The syntax is the HOCON subset NanoMQ uses. Blocks NanoMQ has keep NanoMQ's "
                 "key names, so NanoMQ files load unchanged; NanoMQ settings ward does not act "
                 "on are reported and ignored. Command-line flags override the file.\n");
    reference_table(out, "Global keys", "", global_keys, N(global_keys));
    fprintf(out, "\n`auth.password = {include \"FILE\"}` names the password file written by "
                 "`ward passwd` (a NanoMQ password file, with plaintext passwords, is refused "
                 "at start: `ward passwd -c FILE` hashes them in place); `auth.acl = {include "
                 "\"FILE\"}` names the ACL rules file.\n");
    fprintf(out, "\n`http.api_keys = {include \"FILE\"}` (or `http.api_keys = \"FILE\"`) names "
                 "the API key file written by `ward apikey add`; it is read again on SIGHUP.\n");
    reference_table(out, "Listeners: `listeners.tcp|ssl|ws|wss[.NAME] { ... }`", "", listener_keys,
                    N(listener_keys));
    reference_table(out, "TLS listener certificates by server name: `sni = [{...}]`", "", sni_keys,
                    N(sni_keys));
    reference_table(out, "WebSocket listeners: `listeners.ws|wss|nats_ws[.NAME] { ... }` also take",
                    "", ws_keys, N(ws_keys));
    fprintf(out, "\nA WebSocket listener's `bind` may end in the path it serves, as NanoMQ writes "
                 "it: `bind = \"0.0.0.0:8083/mqtt\"` (default `/mqtt`; NATS: any path). `wss` "
                 "takes every TLS key of `ssl`. With `trusted_proxies`, a proxy's "
                 "`X-Forwarded-For` names the client. See docs/websocket.md.\n");
    reference_nats(out);
    reference_table(out, "Bridges: `bridges.mqtt.NAME { ... }`", "", bridge_keys, N(bridge_keys));
    reference_table(out, "Bridge topics: `forwards = [{...}]`, `subscription = [{...}]`", "",
                    topic_keys, N(topic_keys));
}

/* The ward.conf(5) man page is made from the Markdown reference above, so
 * whatever that prints (every table and note, including ones added later)
 * reaches the page too. Only what config_print_reference() writes needs
 * handling: "# " and "## " headings, tables of key | type | default |
 * meaning, paragraphs, and `code`. */

/* Roff text: `code` in bold, a backslash as \e, and \& before a '.' or '\''
 * that would start the line (roff would take the line as a request). */
static void man_inline(FILE *out, const char *s, size_t len)
{
    bool code = false;
    for (size_t i = 0; i < len; i++) {
        if (i == 0 && (s[i] == '.' || s[i] == '\''))
            fputs("\\&", out);
        if (s[i] == '`')
            fputs((code = !code) ? "\\fB" : "\\fR", out);
        else if (s[i] == '\\')
            fputs("\\e", out);
        else
            fputc(s[i], out);
    }
    if (code)
        fputs("\\fR", out);
}

/* "| `key` | type | default | meaning |" -> .TP, "key (type; default: D)",
 * meaning. Cells are split at " | ": the schema's texts hold no " | ". */
static void man_key_row(FILE *out, const char *line, size_t len)
{
    const char *cell[4], *end = line + len;
    size_t clen[4], n = 0;
    const char *p = line + 2; /* after "| " */
    while (n < 4 && p < end) {
        const char *bar = memmem(p, (size_t)(end - p), " |", 2);
        if (!bar)
            bar = end;
        cell[n] = p;
        clen[n++] = (size_t)(bar - p);
        p = bar + 3; /* past " | " */
    }
    if (n < 4) { /* not a key row: keep its text */
        fputs(".PP\n", out);
        man_inline(out, line, len);
        fputs("\n", out);
        return;
    }
    fputs(".TP\n", out);
    man_inline(out, cell[0], clen[0]);
    fputs(" (", out);
    man_inline(out, cell[1], clen[1]);
    fputs("; default: ", out);
    man_inline(out, cell[2], clen[2]);
    fputs(")\n", out);
    man_inline(out, cell[3], clen[3]);
    fputs("\n", out);
}

/* see config.h */
void config_reference_man(const char *md, FILE *out)
{
    fprintf(out,
            ".TH WARD.CONF 5 \"\" \"ward %s\" \"ward manual\"\n"
            ".\\\" Generated by `ward check --print-reference --man`; do not edit.\n"
            ".SH NAME\nward.conf \\- configuration file of the ward broker\n"
            ".SH SYNOPSIS\n.I /etc/ward/ward.conf\n.br\n.B ward serve \\-c\n"
            ".I FILE\n.br\n.B ward check \\-c\n.I FILE\n.SH DESCRIPTION\n",
            WARD_VERSION);
    bool keys = false;
    while (*md) {
        const char *nl = strchr(md, '\n');
        size_t len = nl ? (size_t)(nl - md) : strlen(md);
        if (len == 0 || strncmp(md, "# ", 2) == 0 || strncmp(md, "| key |", 7) == 0 ||
            strncmp(md, "|---", 4) == 0 || strncmp(md, "Generated by `", 14) == 0) {
            /* the title is .TH's, table heads are implied by .TP, and the
             * note on how docs/configuration.md is made concerns that file */
        } else if (strncmp(md, "## ", 3) == 0) {
            fputs(keys ? ".SS\n" : ".SH KEYS\n.SS\n", out);
            keys = true;
            man_inline(out, md + 3, len - 3);
            fputs("\n", out);
        } else if (strncmp(md, "| ", 2) == 0) {
            man_key_row(out, md, len);
        } else {
            fputs(".PP\n", out);
            man_inline(out, md, len);
            fputs("\n", out);
        }
        md += len + (nl != NULL);
    }
    fputs(".SH FILES\n.TP\n.I /etc/ward/ward.conf\nthe packaged service's configuration; "
          "\\fBsystemctl reload ward\\fR checks it (\\fBward check \\-c\\fR) and then sends "
          "SIGHUP\n.SH SEE ALSO\n\\fBward\\fR(1)\n",
          out);
}

/* see config.h */
int config_print_reference_man(FILE *out)
{
    char *md = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&md, &len);
    if (!f)
        return -1;
    config_print_reference(f);
    if (fclose(f) != 0) {
        free(md);
        return -1;
    }
    config_reference_man(md, out);
    free(md);
    return 0;
}
