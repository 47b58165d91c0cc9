"""The tutorial's checker: what it parses from Markdown and when it says output matches."""

from pathlib import Path

import pytest

from tests.docs.console_blocks import Command, Session, missing_lines, parse

DOC = '''Intro text.

```console
$ echo one \\
  two
one two
$ printf 'a\\nrun 2026-12-02-abc\\nz\\n'
run ...
z
```

```yaml
not: run
```

```console
$ sleep 30 &
```
'''


def test_parse_reads_commands_continuations_and_shown_output() -> None:
    commands = parse(DOC)
    assert [c.text for c in commands] == ["echo one \\\n  two", "printf 'a\\nrun 2026-12-02-abc\\nz\\n'", "sleep 30 &"]
    assert commands[1].expected == ["run ...", "z"]


@pytest.mark.parametrize(("shown", "missing"), [
    (["run ...", "z"], []),
    (["a", "z"], []),
    (["z", "a"], ["a"]),  # order matters
    (["run 2026-12-03..."], ["run 2026-12-03..."]),
    (["b"], ["b"]),
])
def test_missing_lines_matches_in_order_with_ellipsis(shown: list[str], missing: list[str]) -> None:
    assert missing_lines(shown, "a\nrun 2026-12-02-abc\nz\n") == missing


def test_session_keeps_state_fails_on_nonzero_exit_and_stops_background_jobs(tmp_path: Path) -> None:
    session = Session(tmp_path, {"PATH": "/usr/bin:/bin"})
    try:
        assert session.run(Command("X=hi; echo $X > f && cat f")) == "hi\n"
        assert session.run(Command("echo $X; echo oops >&2")) == "hi\noops\n"
        with pytest.raises(AssertionError, match="exited 3"):
            session.run(Command("(exit 3)"))
        session.run(Command("sleep 60 > /dev/null 2>&1 & echo $! > job.pid"))
        job = int((tmp_path / "job.pid").read_text())
    finally:
        session.close()
    stat = Path(f"/proc/{job}/stat")
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"  # gone, or a zombie
