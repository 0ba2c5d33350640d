"""runners.progress and the long steps that use it: a bar with the time left on a terminal; in a log, one line per
finished step and no carriage returns; nothing with quiet."""

from __future__ import annotations

import io
import re

from runners.progress import Progress, clock

# tqdm's bar ends in "[elapsed<remaining, rate]": the remaining time is what a person waiting wants.
TIME_LEFT = re.compile(r"\[\d\d:\d\d<\d\d:\d\d")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_a_bar_shows_elapsed_and_time_left_and_lines_go_above_it():
    out = Terminal()
    with Progress("export", total=4, unit="variant", stream=out) as progress:
        for i in range(4):
            progress.update(1, status=f"variant {i}")
            progress.finished(f"exported {i}")
    text = out.getvalue()
    assert "\r" in text and TIME_LEFT.search(text), text
    assert "4/4" in text and "exported 3" in text


def test_in_a_log_only_finished_steps_print_one_line_each_with_time_left():
    out = io.StringIO()
    with Progress("rounds", total=3, unit="round", stream=out) as progress:
        for i in range(3):
            progress.update(1)
            progress.finished(f"round {i} done")
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert [line.split(" [")[0] for line in lines] == ["round 0 done", "round 1 done", "round 2 done"]
    assert "elapsed, about" in lines[0] and "left" in lines[0]   # 1 of 3 done: an estimate
    assert "left" not in lines[-1]                               # all done: nothing left to estimate


def test_quiet_prints_nothing_and_lines_can_go_to_a_callback():
    out = io.StringIO()
    with Progress("x", total=2, quiet=True, stream=out) as progress:
        progress.update(2)
        progress.finished("done")
    assert out.getvalue() == ""
    got = []
    with Progress("x", total=2, lines=got.append, stream=Terminal()) as progress:
        progress.update(1)
        progress.finished("half", timing=False)
    assert got == ["half"] and progress.bar is None


def test_clock():
    assert clock(75) == "01:15" and clock(3723) == "1:02:03" and clock(-1) == "00:00"


def test_training_into_a_log_prints_a_line_per_epoch_without_carriage_returns(tiny_task, capsys):
    from harness.training import TrainConfig, train

    from conftest import make_ffn

    train(make_ffn(), tiny_task.train_x, tiny_task.train_y, TrainConfig(epochs=2, batch_size=64), seed=0,
          label="toy ffn")
    err = capsys.readouterr().err
    assert "\r" not in err
    epochs = [re.fullmatch(r"  toy ffn: epoch (\d)/2 loss \d\.\d{4} \[\d\d:\d\d elapsed.*\]", line)
              for line in err.splitlines()]
    assert all(epochs) and [m.group(1) for m in epochs] == ["1", "2"], err
    train(make_ffn(), tiny_task.train_x, tiny_task.train_y, TrainConfig(epochs=1), seed=0, quiet=True)
    assert capsys.readouterr().err == ""


def test_pruning_rounds_into_a_log_print_a_line_per_round(tmp_path, train_settings, prune_settings, tiny_task,
                                                          capsys):
    from harness.experiments.repeated import repeated_pruning

    repeated_pruning(tmp_path, train_settings, prune_settings, 2, tiny_task)
    err = capsys.readouterr().err
    assert "\r" not in err
    rounds = [line for line in err.splitlines() if line.startswith("  repeated l1 it")]
    assert [r.split(":")[0].strip() for r in rounds] == ["repeated l1 it0", "repeated l1 it1", "repeated l1 it2"]
    assert "elapsed" in rounds[-1]
    repeated_pruning(tmp_path, train_settings, prune_settings, 2, tiny_task)   # finished rounds: nothing to say
    assert capsys.readouterr().err == ""
