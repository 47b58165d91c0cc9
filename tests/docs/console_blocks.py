"""Run the ``console`` blocks of a Markdown document and check their shown output.

A block fenced as ```` ```console ```` holds commands, each on a line starting with
``$ `` (a trailing ``\\`` continues it on the next line), followed by the output the
document shows for it. The shown output may be abridged: its lines must appear in the
real output in the same order, and ``...`` inside a line matches any text (run ids,
timings). The commands run in one bash process, in order, so variables and background
jobs (`` &``) carry over; the jobs are stopped when the document ends. Every command must exit 0, so a document that shows a failure writes it
the way a shell user would, e.g. ``mlestar run ... || echo "exit code $?"``.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

FENCE = re.compile(r"^```console\s*$(.*?)^```\s*$", re.S | re.M)


@dataclass
class Command:
    """One ``$`` line of a console block and the output the document shows for it."""

    text: str
    expected: list[str] = field(default_factory=list)


def parse(markdown: str) -> list[Command]:
    """Every command of every console block, in document order."""
    commands: list[Command] = []
    for block in FENCE.findall(markdown):
        continuing = False
        for line in block.splitlines():
            if continuing:
                commands[-1].text += "\n" + line
            elif line.startswith("$ "):
                commands.append(Command(line[2:]))
            elif line.strip() and commands:
                commands[-1].expected.append(line.rstrip())
            continuing = line.endswith("\\") and bool(commands)
    return commands


def _pattern(shown: str) -> re.Pattern[str]:
    parts = (re.escape(part) for part in shown.split("..."))
    return re.compile(".*".join(parts) + r"\s*$")


def missing_lines(expected: list[str], actual: str) -> list[str]:
    """The shown lines not found, in order, in ``actual`` (empty when the output matches)."""
    lines = actual.splitlines()
    position = 0
    for index, shown in enumerate(expected):
        pattern = _pattern(shown)
        while position < len(lines) and not pattern.match(lines[position]):
            position += 1
        if position == len(lines):
            return expected[index:]
        position += 1
    return []


class Session:
    """One bash process, fed the commands one after another as a user's terminal would be.

    Variables, ``cd`` and background jobs carry over from one command to the next.
    Output is stdout and stderr together; a background job should send its own
    output to a file, or it lands in whichever command runs next.
    """

    def __init__(self, cwd: Path, env: dict[str, str], timeout: float = 900.0) -> None:
        self.timeout = timeout
        self._shell = subprocess.Popen(["bash", "--noprofile", "--norc"], cwd=cwd, env=env, text=True,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._shell.stdout is not None
        for line in self._shell.stdout:
            self._lines.put(line)
        self._lines.put(_CLOSED)

    def run(self, command: Command) -> str:
        """Output of ``command``; raises AssertionError on a non-zero exit or a timeout."""
        assert self._shell.stdin is not None
        self._shell.stdin.write(f"{command.text}\n__rc=$?; echo; echo {_END}$__rc\n")
        self._shell.stdin.flush()
        output: list[str] = []
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"$ {command.text}\nstill running after {self.timeout:.0f} s:\n"
                                     + "".join(output)) from None
            if line is _CLOSED:
                raise AssertionError(f"$ {command.text}\nthe shell exited:\n" + "".join(output))
            if line.startswith(_END):
                code = int(line[len(_END):])
                text = "".join(output)[:-1]  # the newline the echo added after the command's output
                assert code == 0, f"$ {command.text}\nexited {code}:\n{text}"
                return text
            output.append(line)

    def close(self) -> None:
        """End the shell and everything it started (its process group): SIGTERM, then SIGKILL after 10 s."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._shell.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _running_in_group(self._shell.pid) and time.monotonic() < deadline:
            time.sleep(0.05)  # waits on the group's exit, bounded; not a guess of how long it takes
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._shell.pid, signal.SIGKILL)
        self._shell.wait()


def _running_in_group(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (zombies, waiting to be reaped, do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


_END = "__console_block_exit__ "
_CLOSED = "\0closed"
