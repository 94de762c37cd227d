"""``python -m pdeforge`` under torchrun, with two test instruments (started by tests/test_ddp.py).

* Every rank ``r`` records, through a Python audit hook, each attempt to
  write in, create, rename or delete anything under ``PDEFORGE_AUDIT_RUN``
  into ``PDEFORGE_AUDIT_LOG.rank<r>`` (the file exists, empty, when nothing
  was attempted): rank 0's log shows that the hook sees the run's writes.
* With ``PDEFORGE_STOP_AFTER=k``, rank 0 is killed (SIGKILL, as a crash or
  an out-of-memory kill would) right after writing the checkpoint of epoch ``k``.
"""

import os
import runpy
import signal
import sys


def main() -> None:
    """Install the audit (and the crash), then run ``pdeforge`` with this script's arguments."""
    rank = int(os.environ["RANK"])
    run_dir = os.path.realpath(os.environ["PDEFORGE_AUDIT_RUN"])
    log = open(f"{os.environ['PDEFORGE_AUDIT_LOG']}.rank{rank}", "w")  # noqa: SIM115 (open for the process's life)

    writing_events = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "shutil.rmtree", "os.truncate", "os.symlink"}

    def inside(path) -> bool:
        try:
            return os.path.realpath(os.fsdecode(path)).startswith(run_dir)
        except (TypeError, ValueError):
            return False

    def audit(event: str, args: tuple) -> None:
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            mode = args[1] if len(args) > 1 and isinstance(args[1], str) else "r"
            flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
            writes = any(c in mode for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            if writes and inside(args[0]):
                log.write(f"{event} {args[0]} {mode}\n")
                log.flush()
        elif event in writing_events and args and any(inside(a) for a in args[:2] if isinstance(a, (str, os.PathLike))):
            log.write(f"{event} {args[:2]}\n")
            log.flush()

    sys.addaudithook(audit)

    stop = os.environ.get("PDEFORGE_STOP_AFTER")
    if stop and rank == 0:
        from pdeforge.training import _run

        real_save = _run.save_checkpoint

        def save_then_crash(directory, *, epoch, **kwargs):
            real_save(directory, epoch=epoch, **kwargs)
            if epoch == int(stop):
                os.kill(os.getpid(), signal.SIGKILL)

        _run.save_checkpoint = save_then_crash

    sys.argv = ["pdeforge", *sys.argv[1:]]
    runpy.run_module("pdeforge", run_name="__main__")


if __name__ == "__main__":  # imported by pytest's doctest collection: do nothing then
    main()
