# weft-gdb.py: gdb commands for weft tasks, on a live process or a core file.
#   (gdb) source /usr/local/share/weft/weft-gdb.py
#   (gdb) weft tasks          every task of the selected thread's scheduler
#   (gdb) weft bt 7           where task 7 is parked: its saved registers, then frame pointers
# It reads the registry (weft_sched_tls -> all) through the library's debug info, so libweft
# must have been built with -g. The saved-frame layouts are those of src/ctx_x86_64.S,
# src/ctx_aarch64.S and ucontext; the walk checks every frame against the task's stack.
import struct

import gdb

GUARD_SIZE = 16 * 1024          # WEFT_GUARD_SIZE in src/stack.h
STATES = {0: "runnable", 1: "running", 2: "waiting", 3: "done", 4: "free"}
WAITS = {0: "waiting", 1: "io-wait", 2: "sleeping", 3: "join-wait", 4: "chan-wait",
         5: "lock-wait", 6: "offload-wait"}


def enum_value(name, default):
    try:
        return int(gdb.parse_and_eval(name))
    except gdb.error:
        return default


def scheduler():
    try:
        s = gdb.parse_and_eval("weft_sched_tls")
    except gdb.error as e:
        raise gdb.GdbError("weft: cannot read weft_sched_tls (%s); is libweft loaded, with "
                           "debug info?" % e)
    if int(s) == 0:
        raise gdb.GdbError("weft: no scheduler on this thread; select the thread that runs "
                           "weft_run (`info threads`, `thread N`)")
    return s.dereference()


def field_offset(typ, name):
    for f in typ.fields():
        if f.name == name:
            return f.bitpos // 8
    raise gdb.GdbError("weft: struct %s has no field %s" % (typ.name, name))


def tasks(s):
    ttype = gdb.lookup_type("struct weft_task")
    off = field_offset(ttype, "all")
    head = int(s["all"].address)
    node = s["all"]["next"]
    limit = int(s["ntasks"]) + 64
    charp = gdb.lookup_type("char").pointer()
    while int(node) != head and limit > 0:
        limit -= 1
        yield (node.cast(charp) - off).cast(ttype.pointer()).dereference()
        node = node["next"]


def state_of(t):
    st = int(t["state"])
    if st == enum_value("TS_WAITING", 2):
        return WAITS.get(int(t["wait_kind"]), "waiting")
    return STATES.get(st, "?")


def wait_of(t):
    kind = int(t["wait_kind"])
    if int(t["state"]) != enum_value("TS_WAITING", 2):
        return ""
    if kind == enum_value("WAIT_IO", 1):
        ev = int(t["wait_events"])
        d = {1: "read", 2: "write", 3: "read+write"}.get(ev, "poll")
        return "%s fd %d" % (d, int(t["wait_fd"]))
    if kind == enum_value("WAIT_JOIN", 3) and int(t["wait_obj"]):
        j = t["wait_obj"].cast(gdb.lookup_type("struct weft_task").pointer()).dereference()
        return "task %d" % int(j["id"])
    if int(t["wait_obj"]):
        return "0x%x" % int(t["wait_obj"])
    return ""


def read_words(addr, n):
    mem = gdb.selected_inferior().read_memory(addr, 8 * n)
    return struct.unpack("<%dQ" % n, bytes(mem))


def arch():
    try:
        return gdb.selected_frame().architecture().name()
    except gdb.error:
        return "i386:x86-64"


def saved_regs(ctx):
    """(pc, sp, fp) a parked context saved."""
    names = [f.name for f in ctx.type.strip_typedefs().fields()]
    a = arch()
    if "uc" in names:
        mc = ctx["uc"]["uc_mcontext"]
        if "aarch64" in a:
            return int(mc["pc"]), int(mc["sp"]), int(mc["regs"][29])
        g = mc["gregs"]
        return int(g[16]) & (2**64 - 1), int(g[15]) & (2**64 - 1), int(g[10]) & (2**64 - 1)
    sp = int(ctx["sp"])
    if "aarch64" in a:
        w = read_words(sp, 12)
        return w[11], sp + 176, w[10]
    w = read_words(sp, 8)
    return w[7], sp + 64, w[6]


def code_mask():
    """The address bits of a saved return address. On aarch64, code built with
    -mbranch-protection=pac-ret or standard signs it, and on a CPU with pointer authentication
    the signature sits in the high bits: gdb knows the mask when the target reports it;
    otherwise keep the 48 bits of a user address."""
    if "aarch64" not in arch():
        return 2**64 - 1
    try:
        return ~int(gdb.parse_and_eval("$pauth_cmask")) & (2**64 - 1)
    except (gdb.error, ValueError, TypeError):
        return (1 << 48) - 1


def walk(pc, sp, fp, lo, hi, limit=64):
    pcs = [pc]
    floor = max(sp, lo)
    mask = code_mask()
    while len(pcs) < limit and floor <= fp <= hi - 16 and fp % 8 == 0:
        try:
            nfp, ret = read_words(fp, 2)
        except gdb.MemoryError:
            break
        ret &= mask
        if ret < 4096:
            break
        pcs.append(ret)
        floor = fp + 16
        fp = nfp
    return pcs


def describe(pc, is_ret):
    look = pc - 1 if is_ret else pc
    func = None
    try:
        block = gdb.block_for_pc(look)
        while block is not None and block.function is None:
            block = block.superblock
        if block is not None:
            func = block.function.print_name
    except RuntimeError:
        pass
    if func is None:
        info = gdb.execute("info symbol 0x%x" % look, to_string=True).strip()
        func = info.split(" in section")[0] if not info.startswith("No symbol") else "??"
        func = func.replace(" + ", "+")
    sal = gdb.find_pc_line(look)
    where = ""
    if sal.symtab is not None:
        where = " at %s:%d" % (sal.symtab.filename, sal.line)
    return "0x%016x in %s%s" % (pc, func, where)


class WeftPrefix(gdb.Command):
    """weft: inspect weft tasks. Subcommands: weft tasks, weft bt ID."""

    def __init__(self):
        super().__init__("weft", gdb.COMMAND_DATA, gdb.COMPLETE_NONE, True)


class WeftTasks(gdb.Command):
    """List the tasks of the selected thread's weft scheduler (id, state, wait, name, spawn site)."""

    def __init__(self):
        super().__init__("weft tasks", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        s = scheduler()
        cur = int(s["cur"])
        rows = []
        for t in tasks(s):
            if int(t["state"]) == enum_value("TS_FREE", 4):
                continue
            flags = int(t["flags"])
            name = t["name"].string(length=32).split("\0")[0]
            f = t["file"].string() if int(t["file"]) else "?"
            rows.append("%5d %-13s %-16s %-22s %s:%d%s%s" % (
                int(t["id"]), state_of(t), '"%s"' % name, wait_of(t), f, int(t["line"]),
                " (current)" if int(t.address) == cur else "",
                " (system)" if flags & 4 else ""))
        gdb.write("%d tasks, %d switches; main context %s\n" % (
            len(rows), int(s["switches"]), "parked" if cur else "running"))
        gdb.write("%5s %-13s %-16s %-22s %s\n" % ("id", "state", "name", "waits on", "spawned at"))
        for r in rows:
            gdb.write(r + "\n")


class WeftBt(gdb.Command):
    """Backtrace of a parked weft task: weft bt ID (ID 0: the main context)."""

    def __init__(self):
        super().__init__("weft bt", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        try:
            want = int(gdb.parse_and_eval(arg)) if arg.strip() else None
        except gdb.error:
            raise gdb.GdbError("usage: weft bt ID")
        if want is None:
            raise gdb.GdbError("usage: weft bt ID")
        s = scheduler()
        cur = int(s["cur"])
        if want == 0:
            if not cur:
                gdb.write("the main context is running: use `bt`\n")
                return
            pc, sp, fp = saved_regs(s["main"])
            self.show(walk(pc, sp, fp, sp, sp + (8 << 20)))
            return
        for t in tasks(s):
            if int(t["id"]) != want or int(t["state"]) == enum_value("TS_FREE", 4):
                continue
            if int(t.address) == cur:
                gdb.write("task %d is running on this thread: use `bt`\n" % want)
                return
            if int(t["state"]) == enum_value("TS_DONE", 3):
                gdb.write("task %d has ended (not joined): no stack\n" % want)
                return
            if int(t["switches"]) == 0:
                gdb.write("task %d has not started; entry %s\n" % (want, describe(int(t["fn"]), False)))
                return
            lo = int(t["stack"]["map"]) + GUARD_SIZE
            hi = lo + int(t["stack"]["size"])
            pc, sp, fp = saved_regs(t["ctx"])
            if pc < 4096:
                raise gdb.GdbError(
                    "weft: task %d's saved frame reads as zeros: its stack is not in this core "
                    "(gdb's gcore drops stacks guarded with MADV_GUARD_INSTALL; take cores "
                    "with WEFT_GUARD=mprotect, or let the kernel write them)" % want)
            self.show(walk(pc, sp, fp, lo, hi))
            return
        raise gdb.GdbError("weft: no task %d" % want)

    @staticmethod
    def show(pcs):
        for i, pc in enumerate(pcs):
            gdb.write("#%-3d %s\n" % (i, describe(pc, True)))


WeftPrefix()
WeftTasks()
WeftBt()
