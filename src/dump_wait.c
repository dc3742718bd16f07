/* The dump's words for what a task waits on: its state (ST_*) from the scheduler's wait
 * kind, and what the parking layer says of a wait of its kinds (struct wait_info), in text
 * and JSON. Reads only, as all the dump does: it runs in signal handlers too. */
#include "config.h"
#include "dump_impl.h"

/* What the parking layer says about a wait of its kinds (see struct wait_info). */
struct wait_info weft_dump_wait_info(const struct weft_task *t)
{
    struct wait_info w = { NULL, NULL, 0, -1 };
    if (t->wait_info)
        t->wait_info(t, &w);
    return w;
}

/* Text: " [op] name-or-address[, held by task N][, N waiting]". */
void weft_dump_put_wait_info(struct sigbuf *b, const struct weft_task *t)
{
    struct wait_info w = weft_dump_wait_info(t);
    if (w.op) {
        put(b, " ");
        put(b, w.op);
    }
    put(b, " ");
    if (w.name) {
        put(b, "\"");
        put(b, w.name);
        put(b, "\"");
    } else {
        put_x(b, (uintptr_t)t->wait_obj);
    }
    if (w.holder) {
        put(b, " held by task ");
        put_u(b, w.holder);
    }
    if (w.waiting > 1) {
        put(b, ", ");
        put_i(b, w.waiting);
        put(b, " waiting");
    }
}

void weft_dump_put_wait_info_json(struct sigbuf *b, const struct weft_task *t)
{
    struct wait_info w = weft_dump_wait_info(t);
    put(b, ",\"obj\":");
    put_jx(b, (uintptr_t)t->wait_obj);
    put(b, ",\"op\":");
    if (w.op)
        put_js(b, w.op);
    else
        put(b, "null");
    put(b, ",\"name\":");
    if (w.name)
        put_js(b, w.name);
    else
        put(b, "null");
    put(b, ",\"holder\":");
    put_u(b, w.holder);
    put(b, ",\"waiting\":");
    put_i(b, w.waiting);
}

int weft_dump_task_state(const struct weft_task *t)
{
    switch (t->state) {
    case TS_RUNNING: return ST_RUNNING;
    case TS_RUNNABLE: return ST_RUNNABLE;
    case TS_DONE: return ST_DONE;
    case TS_WAITING:
        switch (t->wait_kind) {
        case WAIT_IO: return ST_IO;
        case WAIT_SLEEP: return ST_SLEEP;
        case WAIT_JOIN: return ST_JOIN;
        case WAIT_CHAN: return ST_CHAN;
        case WAIT_LOCK: return ST_LOCK;
        case WAIT_OFFLOAD: return ST_OFFLOAD;
        case WAIT_COND: return ST_COND;
        case WAIT_WG: return ST_WG;
        case WAIT_SEM: return ST_SEM;
        case WAIT_GEN: return ST_GEN;
        case WAIT_PROC: return ST_PROC;
        case WAIT_SIGNAL: return ST_SIGNAL;
        case WAIT_XCHAN: return ST_CHAN;
        default: return ST_OTHER;
        }
    default: return ST_OTHER;
    }
}

