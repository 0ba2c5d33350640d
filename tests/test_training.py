"""harness.training: callbacks observe training at fixed points and, when they only observe, change nothing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from harness.training import TrainCallback, TrainConfig, train

from conftest import make_ffn

CFG = TrainConfig(epochs=2, batch_size=64, lr=0.01)


class Recorder(TrainCallback):
    """Records every call, and what the model looked like at each backward, without changing anything."""

    def __init__(self):
        self.calls = []
        self.grad_norms = []
        self.weights_at_backward = []

    def after_backward(self, model, step, loss):
        self.calls.append(("backward", step, float(loss)))
        self.grad_norms.append(float(model.out.weight.grad.norm()))
        self.weights_at_backward.append(model.out.weight.detach().clone())

    def end_of_epoch(self, model, epoch, steps):
        self.calls.append(("epoch", epoch, steps))

    def end_of_training(self, model, steps):
        self.calls.append(("end", steps, model.training))


def trained_state(tiny_task, **kwargs) -> dict[str, torch.Tensor]:
    model = make_ffn()
    train(model, tiny_task.train_x, tiny_task.train_y, CFG, seed=3, quiet=True, **kwargs)
    return model.state_dict()


def test_observing_callbacks_leave_the_trained_weights_bit_identical(tiny_task):
    plain = trained_state(tiny_task)
    seen = []
    observed = trained_state(tiny_task, callbacks=[Recorder(), lambda model, step, loss: seen.append(step)],
                             loss_fn=F.cross_entropy)
    assert list(observed) == list(plain)
    for key in plain:
        assert torch.equal(observed[key], plain[key]), key
    assert seen == list(range(2 * 512 // 64)), "a plain function is called after every backward"


def test_callbacks_are_called_after_backward_before_the_step_and_at_each_epoch_end(tiny_task):
    recorder = Recorder()
    model = make_ffn()
    initial = model.out.weight.detach().clone()
    info = train(model, tiny_task.train_x, tiny_task.train_y, CFG, seed=3, quiet=True, callbacks=[recorder])
    per_epoch = 512 // 64
    backward = [c for c in recorder.calls if c[0] == "backward"]
    assert [c[1] for c in backward] == list(range(2 * per_epoch))
    assert recorder.calls[per_epoch] == ("epoch", 0, per_epoch)
    assert recorder.calls[-2:] == [("epoch", 1, 2 * per_epoch), ("end", 2 * per_epoch, False)]
    assert info["steps"] == 2 * per_epoch
    assert all(n > 0 for n in recorder.grad_norms), "gradients are in .grad when the callback runs"
    assert torch.equal(recorder.weights_at_backward[0], initial), "the optimizer has not stepped yet at step 0"
    assert not torch.equal(recorder.weights_at_backward[1], initial)
    assert all(l > 0 for _, _, l in backward)


def test_a_cosine_schedule_decays_the_learning_rate_to_zero_over_the_run(tiny_task):
    import harness.training as training

    seen = []
    original = training.SCHEDULES["cosine"]

    def recording(optimizer, steps):
        scheduler = original(optimizer, steps)
        step = scheduler.step

        def step_and_record():
            step()
            seen.append(optimizer.param_groups[0]["lr"])
        scheduler.step = step_and_record
        return scheduler

    training.SCHEDULES["cosine"] = recording
    try:
        train(make_ffn(), tiny_task.train_x, tiny_task.train_y, TrainConfig(epochs=2, batch_size=64, lr=0.01,
                                                                             schedule="cosine"), seed=3, quiet=True)
    finally:
        training.SCHEDULES["cosine"] = original
    assert len(seen) == 2 * 512 // 64
    assert seen[0] < 0.01 and seen[-1] == 0.0 and all(a >= b for a, b in zip(seen, seen[1:]))
    assert seen[len(seen) // 2 - 1] == pytest.approx(0.005, rel=1e-6)       # half-way: half the learning rate


def test_the_constant_schedule_trains_exactly_as_before_schedules_existed(tiny_task):
    assert TrainConfig().schedule == "constant"
    plain = trained_state(tiny_task)
    model = make_ffn()
    train(model, tiny_task.train_x, tiny_task.train_y, TrainConfig(epochs=2, batch_size=64, lr=0.01,
                                                                   schedule="constant"), seed=3, quiet=True)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in plain.items())
    cosine = make_ffn()
    train(cosine, tiny_task.train_x, tiny_task.train_y, TrainConfig(epochs=2, batch_size=64, lr=0.01,
                                                                    schedule="cosine"), seed=3, quiet=True)
    assert not torch.equal(cosine.out.weight, model.out.weight)
