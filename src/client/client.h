/* A small, blocking MQTT client (3.1.1 and 5.0) over a transport: what
 * `ward pub`, `ward sub` and the tests use, and the base the bridge's
 * upstream link grows from.
 *
 * Calls block up to a timeout. Messages that arrive while the client waits
 * for an acknowledgement are kept, in order, for client_next(). QoS 1 and 2
 * messages received are acknowledged as the specification says (QoS 2: the
 * message is handed out once, at PUBLISH, and its id remembered until
 * PUBREL). Keep alive pings are sent while waiting. */
#ifndef WARD_CLIENT_CLIENT_H
#define WARD_CLIENT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqtt/mqtt.h"

struct client;
struct tls_client;

struct client_config {
    const char *host;
    uint16_t port;
    uint8_t version;       /* MQTT_V311 or MQTT_V5 */
    const char *client_id; /* "" lets the server assign one (v5) */
    const char *username;  /* NULL: none */
    const char *password;  /* NULL: none */
    uint16_t keepalive;    /* seconds */
    bool clean_start;
    bool has_session_expiry;
    uint32_t session_expiry;
    struct mqtt_bin connect_user_props; /* wire form (mqtt_props.user_raw) */
    const char *will_topic;             /* NULL: no will */
    const uint8_t *will_payload;
    size_t will_len;
    uint8_t will_qos;
    bool will_retain;
    int timeout_ms;         /* connect and each acknowledgement */
    struct tls_client *tls; /* NULL: plain TCP */
    bool debug;             /* log packets to stderr */
};

/* The outcome of client_connect. */
struct client_result {
    int status; /* 0 connected; -1 transport/protocol failure; else CONNACK code */
    bool session_present;
    char assigned_id[128];
    char error[256];
};

/* A message received; views stay valid until the next client call. */
struct client_message {
    struct mqtt_str topic;
    struct mqtt_bin payload;
    uint8_t qos;
    bool retain;
    bool dup;
    struct mqtt_props props;
};

struct client *client_connect(const struct client_config *cfg, struct client_result *res);

/* Publishes and, for QoS 1/2, waits for the PUBACK / PUBREC-PUBREL-PUBCOMP
 * flow. Returns 0 with *reason the broker's reason code (v5; 0 for 3.1.1),
 * or -1 (timeout, connection lost: client_error says which). props may be
 * NULL. */
int client_publish(struct client *c, const char *topic, const void *payload, size_t len,
                   uint8_t qos, bool retain, const struct mqtt_props *props, uint8_t *reason);
/* Subscribes to n filters with one options byte (QoS and v5 flags) and an
 * optional subscription identifier (0: none). codes receives one SUBACK
 * code per filter. Returns 0 or -1. */
int client_subscribe(struct client *c, const char *const *filters, size_t n, uint8_t options,
                     uint32_t sub_id, uint8_t *codes);
/* Waits up to timeout_ms (-1: forever) for a message. Returns 1 with *m
 * filled, 0 on timeout, -1 if the connection ended (client_error: why; a v5
 * server DISCONNECT is reported with its reason). */
int client_next(struct client *c, struct client_message *m, int timeout_ms);
/* Sends DISCONNECT with a v5 reason (0 normal, 0x04 with will) and closes. */
void client_disconnect(struct client *c, uint8_t reason);
void client_free(struct client *c);
const char *client_error(const struct client *c);

#endif
