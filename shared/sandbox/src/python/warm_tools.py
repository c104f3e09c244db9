"""prci's warm tool process: imports pkgcore and pkgcheck once, then runs each requested tool in a forked child, so a job pays Python's start-up (about 0.26 s of imports) once per tree instead of once per run.

It runs inside the same sandbox a single tool run gets (bubblewrap: namespaces, the run's view of the
filesystem, scrubbed environment, limits; shared/sandbox/src/warm.rs starts it, as `python3 -c`). It serves
one job's tree: after each run it kills every other process of its PID namespace, so nothing a run
started outlives it, and it makes itself non-dumpable, so no run can ptrace it to change later runs. Protocol, one JSON object per line:

- on fd 0 the requests: {"tool": "pkgcheck" | "pmaint" | "python", "args": [...], "stdin": path | null,
  "stdout": path, "stderr": path, "cwd": path, "env": {name: value}, "read_only": [path, ...],
  "keep_writable": [path, ...]}. For "python", args[0] is a script.
- on fd 1 the answers: first {"ready": true} (once pkgcore is imported; pkgcheck follows while no
  request waits), then per request {"code": N} or {"signal": N}, with "clean": false when something the
  run left could not be killed (prci then kills the whole sandbox).

The child gets the request's files as its fds 0, 1 and 2, its environment and working directory, and
runs the tool's own entry point as the console script would. The server does nothing else: a crash,
a hang or a kill of a child is that child's; prci kills the whole sandbox on a timeout.

One server serves every run of one side of one job (its regen, the update of pkgcheck's kept caches,
its scans), so its sandbox binds writable every directory one of them writes. A run that may not
write some of them (a scan: the md5-cache; a regen or a scan: the kept pkgcheck cache) names them in
"read_only": its child first enters a user and mount namespace of its own, remounts each of them
read-only there (directories inside them it may write all the same, "keep_writable", such as a
targeted regen's md5-cache categories, are bind-mounted onto themselves first and stay writable) and
drops every capability, so neither it nor anything it starts can write them or undo that. A child
that cannot do so runs nothing (exit 125, its reason on stderr).
"""

import ctypes
import json
import os
import sys


def load_core():
    """What a regen needs (pkgcore): imported before the server says it is ready."""
    import pkgcore.config  # noqa: F401
    import pkgcore.ebuild.atom  # noqa: F401
    import pkgcore.ebuild.repository  # noqa: F401
    import pkgcore.operations.regen  # noqa: F401
    import pkgcore.restrictions.packages  # noqa: F401
    import pkgcore.scripts  # noqa: F401


def load_rest():
    """What a scan needs (pkgcheck, every check): imported while no request is waiting. pmaint's own
    script module is left to its runs, so no run sees another tool's state."""
    import pkgcheck.objects  # noqa: F401  (registers every check and keyword)
    import pkgcheck.scripts  # noqa: F401
    import pkgcheck.scripts.pkgcheck_scan  # noqa: F401


def entry(tool):
    if tool == "pkgcheck":
        from pkgcheck.scripts import main

        return main
    if tool == "pmaint":
        from pkgcore.scripts import main

        return main
    raise ValueError(f"unknown tool {tool!r}")


CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND = 32, 4096
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
# statvfs's f_flag bits and the mount flags a remount must keep (a mount inherited from a more privileged
# namespace keeps its nosuid, nodev, noexec and atime flags locked).
KEPT_FLAGS = (
    (os.ST_NOSUID, MS_NOSUID),
    (os.ST_NODEV, MS_NODEV),
    (os.ST_NOEXEC, MS_NOEXEC),
    (os.ST_NOATIME, MS_NOATIME),
    (os.ST_NODIRATIME, MS_NODIRATIME),
    (os.ST_RELATIME, MS_RELATIME),
)


# How a child that could not get its view says so (exit 125): prci then runs that tool in a sandbox of its own.
NO_VIEW = "prci-warm: no view of its own:"


def restrict(read_only, keep_writable=()):
    """Enter a user and mount namespace of this process's own, remount `read_only` (bind mounts of this
    sandbox) read-only in it, except the directories `keep_writable` inside them, and drop every
    capability: what this process starts cannot write them, mount or unmount anything. Raises OSError
    when any step fails."""
    libc = ctypes.CDLL(None, use_errno=True)

    def check(result, what):
        if result != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"{what}: {os.strerror(e)}")

    uid, gid = os.getuid(), os.getgid()
    # /proc/self/{uid,gid}_map are writable only by a dumpable process; the server's children are not.
    check(libc.prctl(4, 1, 0, 0, 0), "prctl(PR_SET_DUMPABLE, 1)")
    check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)
    for path in keep_writable:
        check(libc.mount(path.encode(), path.encode(), None, ctypes.c_ulong(MS_BIND), None), f"bind {path}")
    for path in read_only:
        kept = os.statvfs(path).f_flag
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for st, ms in KEPT_FLAGS:
            if kept & st:
                flags |= ms
        check(libc.mount(None, path.encode(), None, ctypes.c_ulong(flags), None), f"remount {path} read-only")

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    none = (Data * 2)()
    check(libc.capset(ctypes.byref(Header(0x20080522, 0)), none), "capset")
    check(libc.prctl(4, 0, 0, 0, 0), "prctl(PR_SET_DUMPABLE, 0)")


def child(req, protocol_fds):
    """Become the requested tool run; never returns."""
    code = 1
    try:
        for fd in protocol_fds:
            os.close(fd)
        if req.get("read_only"):
            try:
                restrict(req["read_only"], req.get("keep_writable") or ())
            except BaseException as e:
                os.write(2, f"{NO_VIEW} {req['read_only']}: {e}\n".encode())
                os._exit(125)
        stdin = os.open(req.get("stdin") or os.devnull, os.O_RDONLY)
        stdout = os.open(req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        stderr = os.open(req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
            os.dup2(fd, target)
            os.close(fd)
        sys.stdin = open(0, "r", closefd=False)
        sys.stdout = open(1, "w", closefd=False)
        sys.stderr = open(2, "w", closefd=False)
        os.environ.update(req.get("env") or {})
        os.chdir(req["cwd"])
        import tempfile

        tempfile.tempdir = None
        # snakeoil caches the first "<project> <version>" it computes, process-wide.
        import snakeoil.version

        snakeoil.version._ver = None
        tool, args = req["tool"], list(req["args"])
        try:
            if tool == "python":
                import runpy

                sys.argv = args
                runpy.run_path(args[0], run_name="__main__")
                code = 0
            else:
                sys.argv = [tool] + args
                result = entry(tool)()
                code = result if isinstance(result, int) else 0
        except SystemExit as e:
            if e.code is None:
                code = 0
            elif isinstance(e.code, int):
                code = e.code
            else:
                sys.stderr.write(f"{e.code}\n")
                code = 1
    except BaseException:  # the tool's own traceback, as the console script would print it
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            pass
        os._exit(code & 0xFF)


class Requests:
    """Request lines read straight from a file descriptor (no buffer a child could inherit)."""

    def __init__(self, fd):
        self.fd = fd
        self.pending = b""

    def waiting(self):
        """Whether a request (or the end of input) is there to read now."""
        import select

        return b"\n" in self.pending or bool(select.select([self.fd], [], [], 0)[0])

    def next(self):
        while b"\n" not in self.pending:
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return None
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return line


def sweep():
    """Kill every process of this PID namespace but its init (pid 1, bubblewrap's) and this server; True once none is left."""
    import signal
    import time

    me = os.getpid()
    for _ in range(200):
        others = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, me)]
        if not others:
            return True
        for pid in others:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.005)
    return False


def not_dumpable():
    """PR_SET_DUMPABLE 0: processes of the same uid (the runs, ebuild code) cannot ptrace this server."""
    ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)


def main():
    not_dumpable()
    requests = os.dup(0)
    answers = os.dup(1)
    # The server itself reads and writes nothing else: its own 0 and 1 point nowhere.
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    # Started as `python3 -I -c`: the working directory (the side's scratch, which runs write) is not on sys.path;
    # make sure of it (an import before this line would already have been too late, hence `-I`).
    if sys.path and sys.path[0] in ("", "."):
        del sys.path[0]
    load_core()
    out = os.fdopen(answers, "w")
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    reader = Requests(requests)
    rest_loaded = False
    while True:
        if not rest_loaded and not reader.waiting():
            load_rest()
            rest_loaded = True
        line = reader.next()
        if line is None:
            return
        if not line.strip():
            continue
        req = json.loads(line)
        pid = os.fork()
        if pid == 0:
            child(req, (requests, answers, devnull))
        _, status = os.waitpid(pid, 0)
        if os.WIFEXITED(status):
            answer = {"code": os.WEXITSTATUS(status)}
        else:
            answer = {"signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0}
        answer["clean"] = sweep()
        out.write(json.dumps(answer) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
