"""procs.converse: a child asked and answered over its pipes."""

from __future__ import annotations

import os

import pytest

from gitops_mail.errors import CommandError
from gitops_mail.host import procs


def test_a_conversation_in_turns():
    with procs.converse(["cat"]) as (ask, answers):
        for word in (b"one\n", b"two\n"):
            ask.write(word)
            ask.flush()
            assert answers.readline() == word


def test_a_child_past_its_timeout_is_ended_and_reads_see_the_end():
    with procs.converse(["sleep", "600"], timeout=0.2) as (_, answers):
        assert answers.read() == b""


def test_a_child_that_ended_early_reads_as_the_end():
    with procs.converse(["true"]) as (ask, answers):
        assert answers.readline() == b""
        with pytest.raises(BrokenPipeError):
            ask.write(b"x\n" * 100_000)
            ask.flush()


def test_a_missing_program():
    with pytest.raises(CommandError) as caught, procs.converse(["/nonexistent/program"]):
        pass
    assert caught.value.hint == "is /nonexistent/program installed?"


def test_a_child_runs_as_the_identity_it_is_given(pusher):
    who = procs.Identity(pusher.uid, pusher.gid)

    ran = procs.run(["sh", "-c", "id -u; id -g; id -G"], as_user=who)
    assert ran.text.split() == [str(pusher.uid), str(pusher.gid), str(pusher.gid)]
    with procs.converse(["id", "-u"], as_user=who) as (_, answers):
        assert answers.read().strip() == str(pusher.uid).encode()
    with procs.spawn(["id", "-u"], as_user=who) as child:
        assert child.stdout is not None
        assert child.stdout.read().strip() == str(pusher.uid).encode()


def test_running_as_oneself_changes_nothing():
    me = procs.Identity(os.geteuid(), os.getegid())
    assert procs.run(["id", "-u"], as_user=me).text.strip() == str(os.geteuid())
