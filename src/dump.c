/* The task dump's view of one scheduler: each task's state, wait, spawn site and backtrace,
 * as text or JSON (weft_dump), read from the records without changing them; the same code
 * runs in signal handlers (dump_signal.c), so it formats through struct sigbuf only. How the
 * "N ms without yielding" figure stays free per switch: docs/internals.md, "The dump". */
#include "config.h"
#include "dump_impl.h"

#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

const char *const weft_dump_state_names[ST_COUNT] = {
    "running", "runnable", "io-wait", "sleeping", "chan-wait", "lock-wait", "join-wait",
    "offload-wait", "cond-wait", "wg-wait", "sem-wait", "gen-wait", "proc-wait", "signal-wait", "done",
    "waiting",
};

int weft_dump_shown(const struct dumpctx *d, const struct weft_task *t)
{
    return t->state != TS_FREE && (!(t->flags & TF_SYSTEM) || (d->flags & WEFT_DUMP_SYSTEM));
}

static const char *dir_name(int events)
{
    return events == WEFT_READ ? "read" : events == WEFT_WRITE ? "write" :
           events == (WEFT_READ | WEFT_WRITE) ? "read+write" : "poll";
}

static uint64_t join_target(const struct weft_task *t)
{
    const struct weft_task *j = t->wait_obj;
    return j ? j->id : 0;
}

int weft_dump_frames(struct dumpctx *d, const struct weft_task *t, uintptr_t *pcs, int *exact0)
{
    uintptr_t lo, hi, pc, sp, fp;
    *exact0 = 0;
    if (t) {
        lo = (uintptr_t)stack_lo(&t->stack);
        hi = lo + t->stack.size;
    } else {
        lo = d->thr_lo;
        hi = d->thr_hi;
    }
    if (t == d->run_task && (t || !d->s->cur)) {
        if (!d->run_known)
            return 0;
        *exact0 = d->signo != 0 && d->run_pc != 0;
        pc = d->run_pc;
        sp = d->run_sp;
        fp = d->run_fp;
    } else {
        if (!ctx_saved_regs(t ? &t->ctx : &d->s->main, &pc, &sp, &fp))
            return 0;
    }
    if (!hi)    /* bounds unknown: the pc alone is safe to show */
        return pc ? (pcs[0] = pc, 1) : 0;
    if (*exact0) {
        struct bt_sym y;
        uintptr_t ret = 0;
        if (weft_bt_symbol(&d->cache, pc, 0, &y) && y.func)
            ret = weft_bt_entry_return(pc, pc - y.off, sp, lo, hi);
        if (ret) {
            pcs[0] = pc;
            pcs[1] = ret;
            return 2 + weft_bt_walk(0, sp, fp, lo, hi, pcs + 2, BT_MAX - 2);
        }
    }
    return weft_bt_walk(pc, sp, fp, lo, hi, pcs, BT_MAX);
}

void weft_dump_put_sym_text(struct dumpctx *d, uintptr_t pc, int is_ret)
{
    struct bt_sym y;
    struct sigbuf *b = d->b;
    weft_bt_symbol(&d->cache, pc, is_ret, &y);
    put(b, y.func ? y.func : "?");
    if (y.func && y.off) {
        put(b, "+");
        put_x(b, y.off);
    }
    put(b, " (");
    put(b, y.module);
    put(b, "+");
    put_x(b, y.module_off);
    put(b, ")");
}

static void put_sym_json(struct dumpctx *d, uintptr_t pc, int is_ret)
{
    struct bt_sym y;
    struct sigbuf *b = d->b;
    weft_bt_symbol(&d->cache, pc, is_ret, &y);
    put(b, "{\"pc\":");
    put_jx(b, pc);
    put(b, ",\"func\":");
    if (y.func)
        put_js(b, y.func);
    else
        put(b, "null");
    put(b, ",\"off\":");
    put_u(b, y.off);
    put(b, ",\"module\":");
    put_js(b, y.module);
    put(b, ",\"module_off\":");
    put_jx(b, y.module_off);
    put(b, ",\"ret\":");
    put(b, is_ret ? "true" : "false");
    put(b, "}");
}

void weft_dump_put_frames(struct dumpctx *d, const struct weft_task *t)
{
    uintptr_t pcs[BT_MAX];
    int exact0 = 0;
    int n = (d->flags & WEFT_DUMP_NO_BACKTRACE) ? 0 : weft_dump_frames(d, t, pcs, &exact0);
    weft_dump_put_pcs(d, pcs, n, exact0);
}

void weft_dump_put_pcs(struct dumpctx *d, const uintptr_t *pcs, int n, int exact0)
{
    struct sigbuf *b = d->b;
    if (d->json) {
        put(b, "\"frames\":[");
        for (int i = 0; i < n; i++) {
            if (i)
                put(b, ",");
            put_sym_json(d, pcs[i], !(i == 0 && exact0));
        }
        put(b, "]");
        return;
    }
    for (int i = 0; i < n; i++) {
        put(b, "    #");
        put_u(b, (uint64_t)i);
        put(b, i < 10 ? "  " : " ");
        put_x(b, pcs[i]);
        put(b, " ");
        weft_dump_put_sym_text(d, pcs[i], !(i == 0 && exact0));
        put(b, "\n");
    }
}

static int64_t since(const struct dumpctx *d, int64_t t)
{
    return t < 0 ? -1 : d->now - t < 0 ? 0 : d->now - t;
}

static void put_task_text(struct dumpctx *d, const struct weft_task *t, int st)
{
    struct sigbuf *b = d->b;
    put(b, "task ");
    put_u(b, t->id);
    put(b, " \"");
    put(b, t->name);
    put(b, "\" [");
    put(b, weft_dump_state_names[st]);
    int64_t waited = since(d, t->last_run);
    switch (st) {
    case ST_IO:
        put(b, " ");
        put(b, dir_name(t->wait_events));
        put(b, " fd ");
        put_i(b, t->wait_fd);
        if (t->nextra) {
            put(b, " (+");
            put_i(b, t->nextra);
            put(b, " queues)");
        }
        break;
    case ST_JOIN:
        put(b, " task ");
        put_u(b, join_target(t));
        break;
    case ST_OFFLOAD: {          /* " op fn": wait_obj is the function the pool runs */
        struct wait_info w = weft_dump_wait_info(t);
        put(b, w.op ? " " : "");
        put(b, w.op ? w.op : "");
        put(b, " ");
        weft_dump_put_sym_text(d, (uintptr_t)t->wait_obj, 0);
        break;
    }
    default:
        if (t->wait_info || t->wait_obj)
            weft_dump_put_wait_info(b, t);
        break;
    }
    if (st == ST_RUNNING) {
        put(b, ", ");
        put_i(b, waited);
        put(b, " ms without yielding");
    } else if (t->state == TS_WAITING && waited >= 0) {
        put(b, ", ");
        put_i(b, waited);
        put(b, " ms");
    }
    if (t->state == TS_WAITING && t->wait_deadline >= 0) {
        put(b, st == ST_SLEEP ? ", wakes in " : ", deadline in ");
        put_i(b, t->wait_deadline - d->now);
        put(b, " ms");
    }
    if (t->flags & TF_CANCELLED)
        put(b, ", cancelled");
    put(b, "]:\n");

    put(b, "    spawned at ");
    put(b, t->file ? t->file : "?");
    put(b, ":");
    put_i(b, t->line);
    put(b, " by ");
    if (t->parent) {
        put(b, "task ");
        put_u(b, t->parent);
    } else {
        put(b, "main");
    }
    put(b, ", ");
    put_i(b, since(d, t->created));
    put(b, " ms ago; entry ");
    weft_dump_put_sym_text(d, (uintptr_t)t->fn, 0);
    put(b, "\n    ");
    put_u(b, t->switches);
    put(b, " switches, ");
    if (t->last_run < 0) {
        put(b, "never ran");
    } else {
        put(b, "last ran ");
        put_i(b, waited);
        put(b, " ms ago");
    }
    if (t->flags & TF_DETACHED)
        put(b, ", detached");
    if (t->flags & TF_SYSTEM)
        put(b, ", system");
    put(b, (t->flags & TF_DAEMON) ? ", daemon" : "");
    put(b, "\n    stack ");
    put_u(b, t->stack.size);
    put(b, " bytes");
    if (t->state != TS_DONE) {
        put(b, ", ");
        put_u(b, weft_stack_resident(&t->stack));
        put(b, " resident (high-water)");
    }
    put(b, "\n");
    if (st != ST_DONE && t->switches == 0)
        put(b, "    (not started)\n");
    else if (st != ST_DONE)
        weft_dump_put_frames(d, t);
    put(b, "\n");
}

static void put_task_json(struct dumpctx *d, const struct weft_task *t, int st)
{
    static const char *const guards[] = { "?", "madvise", "mprotect", "canary" };
    static const char *const kinds[] = { "none", "io", "sleep", "join", "chan", "lock", "offload",
                                         "cond", "wg", "sem", "gen", "user", "proc",
                                         "signal" };
    struct sigbuf *b = d->b;
    int64_t waited = since(d, t->last_run);
    put(b, "{\"id\":");
    put_u(b, t->id);
    put(b, ",\"name\":");
    put_js(b, t->name);
    put(b, ",\"state\":");
    put_js(b, weft_dump_state_names[st]);
    put(b, ",\"system\":");
    put(b, (t->flags & TF_SYSTEM) ? "true" : "false");
    put(b, ",\"detached\":");
    put(b, (t->flags & TF_DETACHED) ? "true" : "false");
    put(b, (t->flags & TF_DAEMON) ? ",\"daemon\":true" : ",\"daemon\":false");
    put(b, ",\"cancelled\":");
    put(b, (t->flags & TF_CANCELLED) ? "true" : "false");
    put(b, ",\"wait\":");
    if (t->state != TS_WAITING) {
        put(b, "null");
    } else {
        put(b, "{\"kind\":");
        put_js(b, t->wait_kind < sizeof kinds / sizeof kinds[0] ? kinds[t->wait_kind] : "?");
        if (st == ST_IO) {
            put(b, ",\"fd\":");
            put_i(b, t->wait_fd);
            put(b, ",\"dir\":");
            put_js(b, dir_name(t->wait_events));
            put(b, ",\"extra_queues\":");
            put_i(b, t->nextra);
        } else if (st == ST_JOIN) {
            put(b, ",\"task\":");
            put_u(b, join_target(t));
        } else if (t->wait_info || t->wait_obj) {
            weft_dump_put_wait_info_json(b, t);
            if (st == ST_OFFLOAD) {
                put(b, ",\"fn\":");
                put_sym_json(d, (uintptr_t)t->wait_obj, 0);
            }
        }
        put(b, ",\"deadline_ms\":");
        if (t->wait_deadline >= 0)
            put_i(b, t->wait_deadline);
        else
            put(b, "null");
        put(b, ",\"left_ms\":");
        if (t->wait_deadline >= 0)
            put_i(b, t->wait_deadline - d->now);
        else
            put(b, "null");
        put(b, "}");
    }
    put(b, ",\"waiting_ms\":");
    if (t->state == TS_WAITING && waited >= 0)
        put_i(b, waited);
    else
        put(b, "null");
    put(b, ",\"running_ms\":");
    if (st == ST_RUNNING && waited >= 0)
        put_i(b, waited);
    else
        put(b, "null");
    put(b, ",\"spawn\":{\"file\":");
    put_js(b, t->file ? t->file : "?");
    put(b, ",\"line\":");
    put_i(b, t->line);
    put(b, "},\"parent\":");
    put_u(b, t->parent);
    put(b, ",\"entry\":");
    put_sym_json(d, (uintptr_t)t->fn, 0);
    put(b, ",\"created_ms\":");
    put_i(b, t->created);
    put(b, ",\"age_ms\":");
    put_i(b, since(d, t->created));
    put(b, ",\"switches\":");
    put_u(b, t->switches);
    put(b, ",\"last_run_ms\":");
    if (t->last_run >= 0)
        put_i(b, t->last_run);
    else
        put(b, "null");
    put(b, ",\"since_run_ms\":");
    if (waited >= 0)
        put_i(b, waited);
    else
        put(b, "null");
    put(b, ",\"stack\":{\"size\":");
    put_u(b, t->stack.size);
    put(b, ",\"resident\":");
    if (t->state != TS_DONE)
        put_u(b, weft_stack_resident(&t->stack));
    else
        put(b, "null");
    put(b, ",\"guard\":");
    put_js(b, guards[t->stack.guard & 3]);
    put(b, "},\"started\":");
    put(b, t->switches ? "true" : "false");
    put(b, ",");
    if (st != ST_DONE && t->switches)
        weft_dump_put_frames(d, t);
    else
        put(b, "\"frames\":[]");
    put(b, "}");
}

void weft_dump_sched(struct dumpctx *d)
{
    struct sigbuf *b = d->b;
    struct list *it;
    struct weft_task *t;
    size_t guard;
    uint64_t counts[ST_COUNT] = { 0 };
    uint64_t total = 0;
    const struct weft_task *holder = NULL;
    if (d->flags & WEFT_DUMP_FOLDED) {
        weft_dump_put_folded(d);
        return;
    }
    if (d->s) {
        for_each_task(d, t, it, guard) {
            if (!weft_dump_shown(d, t))
                continue;
            int st = weft_dump_task_state(t);
            counts[st]++;
            total++;
            if (st == ST_RUNNING)
                holder = t;
        }
    }
    uint64_t switches = d->s ? d->s->switches : 0;
    pid_t pid = getpid(), tid = (pid_t)syscall(SYS_gettid);

    if (d->json) {
        put(b, "{\"weft_dump\":1,\"pid\":");
        put_i(b, pid);
        put(b, ",\"tid\":");
        put_i(b, tid);
        put(b, ",\"signal\":");
        put_i(b, d->signo);
        put(b, ",\"now_ms\":");
        put_i(b, d->now);
        put(b, ",\"switches\":");
        put_u(b, switches);
        put(b, ",\"ntasks\":");
        put_u(b, total);
        put(b, ",\"counts\":{");
        for (int i = 0; i < ST_COUNT; i++) {
            if (i)
                put(b, ",");
            put_js(b, weft_dump_state_names[i]);
            put(b, ":");
            put_u(b, counts[i]);
        }
        put(b, "},\"cycles\":[");
        weft_dump_put_cycles(d);
        put(b, (d->flags & WEFT_DUMP_GROUP) ? "],\"groups\":[" : "],\"tasks\":[");
        int first = 1;
        if (d->flags & WEFT_DUMP_GROUP)
            weft_dump_put_groups(d);
        else if (d->s) {
            for_each_task(d, t, it, guard) {
                if (!weft_dump_shown(d, t))
                    continue;
                if (!first)
                    put(b, ",\n");
                first = 0;
                put_task_json(d, t, weft_dump_task_state(t));
            }
        }
        put(b, "],\n\"main\":{\"state\":");
        put_js(b, !d->s ? "none" : d->s->cur ? "parked" : "running");
        put(b, ",");
        if (d->s && (d->s->cur || d->run_task == NULL))
            weft_dump_put_frames(d, NULL);
        else
            put(b, "\"frames\":[]");
        put(b, d->json_open ? "}" : "}}\n");
        return;
    }

    put(b, "weft dump: pid ");
    put_i(b, pid);
    put(b, ", thread ");
    put_i(b, tid);
    if (d->signo) {
        put(b, ", signal ");
        put_i(b, d->signo);
    }
    put(b, ": ");
    put_u(b, total);
    put(b, total == 1 ? " task" : " tasks");
    const char *sep = ": ";
    for (int i = 0; i < ST_COUNT; i++) {
        if (!counts[i])
            continue;
        put(b, sep);
        put_u(b, counts[i]);
        put(b, " ");
        put(b, weft_dump_state_names[i]);
        sep = ", ";
    }
    put(b, "; ");
    put_u(b, switches);
    put(b, " switches\n");
    if (holder && d->signo) {
        put(b, "task ");
        put_u(b, holder->id);
        put(b, " \"");
        put(b, holder->name);
        put(b, "\" holds the thread: running ");
        put_i(b, since(d, holder->last_run));
        put(b, " ms without yielding\n");
    }
    weft_dump_put_cycles(d);
    put(b, "\n");
    if (d->s) {
        if (d->flags & WEFT_DUMP_GROUP)
            weft_dump_put_groups(d);
        else for_each_task(d, t, it, guard) {
            if (weft_dump_shown(d, t))
                put_task_text(d, t, weft_dump_task_state(t));
        }
        put(b, "main context [");
        put(b, d->s->cur ? "parked" : "running");
        put(b, "]:\n");
        weft_dump_put_frames(d, NULL);
        put(b, "\n");
    }
    put(b, "end of weft dump\n");
}

__attribute__((noinline))
int weft_dump(int fd, int flags)
{
    if (!weft_dump_flags_ok(flags)) {
        errno = EINVAL;
        return -1;
    }
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    weft_dump_init();
    struct sigbuf b;
    b.len = 0;
    b.fd = fd;
    b.err = 0;
    struct dumpctx d;
    weft_dump_ctx_init(&d, &b, flags);
    /* The running code is our caller: start at this frame, whose record holds the return
     * address into it. */
    uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
    d.run_known = 1;
    d.run_pc = 0;
    d.run_sp = fp;
    d.run_fp = fp;
    d.json_open = (flags & (WEFT_DUMP_JSON | WEFT_DUMP_ALL_THREADS)) ==
                  (WEFT_DUMP_JSON | WEFT_DUMP_ALL_THREADS);
    weft_dump_sched(&d);
    weft_sigbuf_flush(&b);
    weft_bt_cache_fini(&d.cache);
    if (b.err) {
        errno = b.err;
        return -1;
    }
    if (flags & WEFT_DUMP_ALL_THREADS)
        return weft_dump_other_threads(fd, flags);
    return 0;
}

