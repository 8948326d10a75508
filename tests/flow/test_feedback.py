"""Comments stay within the note rate limit: "queued" comments give way, outcomes wait for a slot."""

from merge_assist.rules.feedback import Feedback, NoteRateLimiter
from tests.flow.test_lane_driver import FakeGitLab


def test_queued_comments_are_dropped_under_load_but_outcomes_are_posted():
    gitlab = FakeGitLab()
    feedback = Feedback(gitlab, NoteRateLimiter(per_minute=3, window_seconds=0.5))
    for position in range(2, 8):
        feedback.queued(1, position, position, 10, "main")
    assert len(gitlab.notes) == 3
    feedback.merged(1, 9, "a" * 40, "main")
    feedback.failed(1, 10, "pipeline 4 failed")
    assert len(gitlab.notes) == 5
    assert "Merged into `main`" in gitlab.notes[3] and "pipeline 4 failed" in gitlab.notes[4]


def test_the_head_of_the_lane_gets_no_queued_comment():
    gitlab = FakeGitLab()
    Feedback(gitlab).queued(1, 5, 1, 1, "main")
    assert gitlab.notes == []
