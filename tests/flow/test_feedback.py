"""Comments stay within the note rate limit without ever making a thread wait (finding 8):
"queued" comments give way, outcomes are scheduled and posted later, merge requests in turn."""

from __future__ import annotations

import threading

from merge_assist.rules.feedback import Feedback, NoteRateLimiter
from tests.flow.test_lane_driver import FakeGitLab
from tests.helpers import wait_for


class RecordingGitLab(FakeGitLab):
    """Records which merge request each note went to."""

    def __init__(self) -> None:
        super().__init__()
        self.posted_on: list[tuple[int, int]] = []

    def post_note(self, project_id, iid, body):  # type: ignore[no-untyped-def]
        self.posted_on.append((project_id, iid))
        return super().post_note(project_id, iid, body)


def test_queued_comments_are_dropped_under_load_and_outcomes_scheduled_not_waited_for() -> None:
    gitlab = FakeGitLab()
    feedback = Feedback(gitlab, NoteRateLimiter(per_minute=3, window_seconds=0.5), retry_seconds=0.05)
    for position in range(2, 8):
        feedback.queued(1, position, position, 10, "main")
    assert len(gitlab.notes) == 3
    feedback.merged(1, 9, "a" * 40, "main")
    feedback.failed(1, 10, "pipeline 4 failed")
    # Both calls returned with the window still full: the notes were scheduled, nobody waited.
    assert len(gitlab.notes) == 3 and feedback.outbox.pending() == 2
    wait_for(lambda: len(gitlab.notes) == 5, timeout=5, message="the scheduled notes")
    assert "Merged into `main`" in gitlab.notes[3] and "pipeline 4 failed" in gitlab.notes[4]


def test_the_head_of_the_lane_gets_no_queued_comment() -> None:
    gitlab = FakeGitLab()
    Feedback(gitlab).queued(1, 5, 1, 1, "main")
    assert gitlab.notes == []


def test_a_full_window_never_blocks_a_worker_thread() -> None:
    """Hundreds of refusals at the limit (anyone who comments can cause them) return at once."""
    gitlab = FakeGitLab()
    feedback = Feedback(gitlab, NoteRateLimiter(per_minute=1, window_seconds=60), retry_seconds=60)
    done = threading.Event()

    def refuse_many() -> None:
        for n in range(300):
            feedback.comment(1, 1 + n % 3, f"refused {n}")
        done.set()

    threading.Thread(target=refuse_many, daemon=True).start()
    # With a 60 s window, any wait for a slot would keep the thread busy far past this.
    assert done.wait(10)
    assert len(gitlab.notes) == 1
    assert feedback.outbox.pending() == 3 * 5  # each merge request keeps at most five back
    feedback.outbox.stop()


def test_one_noisy_merge_request_does_not_starve_the_others() -> None:
    gitlab = RecordingGitLab()
    limiter = NoteRateLimiter(per_minute=1, window_seconds=60)
    feedback = Feedback(gitlab, limiter, retry_seconds=60)
    for n in range(10):
        feedback.comment(1, 7, f"noisy {n}")
    feedback.comment(1, 8, "quiet")
    feedback.comment(2, 9, "other project")
    assert gitlab.posted_on == [(1, 7)]
    limiter._limits[""] = 100  # the window reopens
    limiter._per_scope = 100
    feedback.outbox.drain()
    # One note per merge request per turn: the quiet ones come before the noisy one's backlog,
    # of which only five notes were kept.
    assert gitlab.posted_on == [(1, 7), (1, 7), (1, 8), (2, 9), (1, 7), (1, 7), (1, 7), (1, 7)]
    assert gitlab.notes[:3] == ["noisy 0", "noisy 1", "quiet"]
    feedback.outbox.stop()


def test_one_project_cannot_use_the_whole_shared_budget() -> None:
    limiter = NoteRateLimiter(per_minute=5, window_seconds=60, per_scope=2)
    assert [limiter.try_acquire("project:1") for _ in range(3)] == [True, True, False]
    assert [limiter.try_acquire("project:2") for _ in range(3)] == [True, True, False]
    assert limiter.try_acquire("project:3") is True
    assert limiter.try_acquire("project:4") is False  # the shared window (5) is full
