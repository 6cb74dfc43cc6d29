/* A client connection's output: packets encoded into net's output queue,
 * refusals and closes (see conn.h). */
#include "broker/conn.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/internal.h"
#include "core/log.h"
#include "core/vec.h"

/* see conn.h */
bool client_send(struct client *c, const struct mqtt_packet *p)
{
    struct broker *b = c->b;
    if (c->closing && p->type != MQTT_DISCONNECT && p->type != MQTT_CONNACK)
        return false;
    size_t n = mqtt_encoded_size(&c->codec, p);
    if (n == 0)
        return false;
    if (!ward_ok(VEC_RESERVE_EXACT(b->scratch, b->scratch_cap, n)))
        return false;
    if (mqtt_encode(&c->codec, p, b->scratch, n) != n)
        return false;
    /* A PUBLISH meets the output bound (the caller keeps or drops it); the
     * protocol's own replies may pass it, and only a client that reads
     * nothing at all loses its connection over them. */
    if (p->type == MQTT_PUBLISH ? net_conn_send(c->nc, b->scratch, n) < 0
                                : net_conn_send_control(c->nc, b->scratch, n) < 0) {
        if (p->type != MQTT_PUBLISH && !c->closing) {
            log_notice("%s: output far over its bound (slow consumer); disconnecting",
                       CLIENT_NAME(c));
            client_close(c, "output limit");
        }
        return false;
    }
    b->st.bytes_out += n;
    c->bytes_out += n;
    return true;
}

/* see conn.h */
void client_kick(struct client *c, uint8_t rc, const char *why)
{
    if (c->closing)
        return;
    log_notice("%s: %s (%s); closing", CLIENT_NAME(c), why, mqtt_rc_name(rc));
    /* MQTT 5 4.13: a DISCONNECT with the reason, once CONNACK has gone. */
    if (c->connected && c->codec.version == MQTT_V5) {
        struct mqtt_packet p = {.type = MQTT_DISCONNECT};
        p.u.disconnect.reason = rc;
        client_send(c, &p);
    }
    client_close(c, why);
}

/* see conn.h */
/* see conn.h */
void client_label(struct client *c, const char *fmt, ...)
{
    char buf[CLIENT_LABEL_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    char *label = strdup(buf);
    if (!label)
        return;
    free(c->label);
    c->label = label;
}

/* see conn.h */
void client_label_drop(struct client *c)
{
    free(c->label);
    c->label = NULL;
}

/* see conn.h */
void client_label_keep(struct client *c)
{
    if (c->label || !c->s)
        return;
    char buf[CLIENT_LABEL_MAX];
    /* Out of memory, the connection's later lines name it by its peer
     * alone (client_name's last resort). */
    c->label = strdup(client_name(c, buf));
}

/* see conn.h */
const char *client_name(const struct client *c, char *buf)
{
    if (c->label)
        return c->label;
    /* The text client_label stored before the CONNECT was accepted. */
    if (c->s)
        snprintf(buf, CLIENT_LABEL_MAX, "client '%s' (%s)", c->s->id, net_conn_peer(c->nc));
    else
        snprintf(buf, CLIENT_LABEL_MAX, "client from %s", net_conn_peer(c->nc));
    return buf;
}

/* see conn.h */
struct client_extra *client_extra(struct client *c)
{
    if (!c->x)
        c->x = calloc(1, sizeof(*c->x));
    return c->x;
}

/* see conn.h */
bool client_set_owner(struct client *c, const char *owner)
{
    char *copy = NULL;
    if (owner && owner[0] && !(copy = strdup(owner)))
        return false;
    free(c->owner);
    c->owner = copy;
    return true;
}

void client_close(struct client *c, const char *why)
{
    c->closing = true;
    net_conn_close(c->nc, why);
}
