"""Every long step of a run reports progress ``(label, done, total)`` and ends at ``done == total``."""

from __future__ import annotations


def test_each_long_step_reports_progress_to_the_end(finished_run_progress: list[tuple[str, int, int]]) -> None:
    calls = finished_run_progress  # the shared tiny run (tests/conftest.py), as it ran
    last = {label: (done, total) for label, done, total in calls}
    expected = {"situation analysis: load, checks, probe, plots": (4, 4), "throughput probe": (1, 1),
                "training epochs": (2, 2), "evaluation: test pass, latency and throughput, plots": (3, 3),
                "refinement trials": (2, 2), "before/after retraining": (3, 3),
                "deployment: export and parity, benchmark, test pass, bundle": (4, 4)}
    for label, end in expected.items():
        assert last.get(label) == end, (label, [c for c in calls if c[0] == label])
    assert last["ablations"][0] == last["ablations"][1] >= 1
    assert last["deployment benchmark"][0] == last["deployment benchmark"][1] >= 1  # one per exported model
    test_pass = [c for c in calls if c[0] == "evaluation: test pass (images, every TTA view)"]
    assert test_pass[0][1:] == (0, test_pass[-1][2]) and test_pass[-1][1] == test_pass[-1][2] > 0  # image by image
    for label in last:  # every bar starts where it should and never runs backwards
        dones = [done for name, done, _ in calls if name == label]
        assert dones == sorted(dones), (label, dones)


def test_the_evaluation_pass_reports_after_each_batch() -> None:
    """``evaluate_logits`` calls ``on_batch`` with each batch's rows: 3 batches of 16 and one of 2 for 50 rows."""
    import torch

    from mlestar.training.loop import evaluate_logits

    rows: list[int] = []
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5))
    logits = evaluate_logits(model, torch.zeros(50, 3, 4, 4), batch_size=16, on_batch=rows.append)
    assert logits.shape == (50, 5) and rows == [16, 16, 16, 2]
