"""Start-up time of the ``reserve`` command against ``python -c pass`` measured in the same run.

Makes a small ledger through the CLI itself (a temporary SQLite file: ``reserve init``, three
accounts, a few entries), then runs, in turn and ``--runs`` times each, with the same
interpreter:

- ``python -c pass``: the floor every Python command pays;
- ``reserve --help``: building the command tree and printing it (no database, no node);
- ``reserve balance``: a real command on the small ledger (open, check the revision, sum).

It prints the median wall time of each (with the fastest run and the median CPU time, user +
system, which a busy machine inflates less), its ratio to ``python -c pass``, and the goals
(``--help`` under 0.25 s, ``balance`` under 0.4 s on the project's 2-core machine):

    .venv/bin/python -m bench.cli_bench [--runs 9] [--entries 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOALS = {"reserve --help": 0.25, "reserve balance": 0.4}


def reserve_command() -> list[str]:
    """The installed ``reserve`` script next to this interpreter, else ``python -m``."""
    script = Path(sys.executable).parent / "reserve"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "ledger.cli.main"]


def run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds user + system) of one run of ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed (exit {done.returncode}): {done.stderr.decode()}")
    return elapsed, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def make_ledger(reserve: list[str], env: dict[str, str], entries: int) -> None:
    run([*reserve, "init"], env)
    for name, kind in (("bank", "custodian"), ("acme", "counterparty"), ("owner", "equity")):
        run([*reserve, "account", "add", name, "--type", kind], env)
    for i in range(entries):
        amount = 100_000 * (i + 1)
        run(
            [*reserve, "record", "--kind", "adjustment", "--memo", f"entry {i}", "--ref", f"bench-{i}",
             "--posting", f"bank={amount}sat", "--posting", f"acme=-{amount}sat"],
            env,
        )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=9, help="runs of each command (median shown)")
    ap.add_argument("--entries", type=int, default=5, help="entries in the small ledger")
    args = ap.parse_args()
    reserve = reserve_command()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("RESERVE_") and k != "PYTHONPROFILEIMPORTTIME"
        }
        env["RESERVE_DB"] = str(Path(tmp) / "reserve.db")
        env["RESERVE_SIGNING_KEY"] = str(Path(tmp) / "reserve-signing.key")
        make_ledger(reserve, env, args.entries)
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "reserve --help": [*reserve, "--help"],
            "reserve balance": [*reserve, "balance"],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        for argv in commands.values():  # warm the OS caches and .pyc files once
            run(argv, env)
        for _ in range(args.runs):  # interleaved, so a burst of load hits every command alike
            for name, argv in commands.items():
                wall, used = run(argv, env)
                times[name].append(wall)
                cpu[name].append(used)

    floor = statistics.median(times["python -c pass"])
    where = f"{' '.join(reserve)}; a SQLite ledger of {args.entries} entries"
    print(f"wall time, median of {args.runs} runs ({where})")
    for name, samples in times.items():
        median = statistics.median(samples)
        line = (
            f"  {name:<16} {median:6.3f} s  (min {min(samples):.3f}, CPU {statistics.median(cpu[name]):.3f})"
            f"  {median / floor:5.1f} x python -c pass"
        )
        goal = GOALS.get(name)
        if goal is not None:
            line += f"  goal < {goal:.2f} s: {'met' if median < goal else 'NOT met'}"
        print(line)


if __name__ == "__main__":
    main()
