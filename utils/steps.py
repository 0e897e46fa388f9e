"""What every model family's training step is built from: one optimizer update on a loss,
weights frozen for a phase, gradients averaged across data-parallel processes, the two
adversarial losses, and one optimizer per phase (as the reference reproduction has)."""
import contextlib
import typing

import numpy as np
import paddle
import paddle.distributed as dist
import paddle.nn.functional as F


@contextlib.contextmanager
def frozen(*layers):
    """No gradients for the layers' weights inside the block (gradients still flow through)."""
    params = [p for layer in layers for p in layer.parameters()]
    for p in params:
        p.stop_gradient = True
    try:
        yield
    finally:
        for p in params:
            p.stop_gradient = False


def no_sync(*layers):
    """One process: the gradients are already those of the whole mini-batch."""


def average_gradients(*layers):
    """Data parallel: every process holds the gradient of its shard's mean loss; with equal
    shards their average is the gradient of the whole mini-batch's mean loss."""
    world = dist.get_world_size()
    with paddle.no_grad():  # in-place edits of gradients are refused while recording
        for layer in layers:
            for p in layer.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad.scale_(1.0 / world)


class PhaseOptimizer(typing.NamedTuple):
    """The optimizer of one phase and the network it updates."""
    optimizer: paddle.optimizer.Optimizer
    layer: paddle.nn.Layer


def update(loss, opts, names, sync=no_sync):
    """One gradient step on ``loss`` by the optimizers ``names`` of ``opts`` ({name:
    PhaseOptimizer}); returns the loss."""
    loss.backward()
    sync(*(opts[name].layer for name in names))
    for name in names:
        opts[name].optimizer.step()
    for name in names:
        opts[name].optimizer.clear_grad(set_to_zero=False)
    return loss


def discriminator_loss(d_logits):
    """D's loss on the logits of [prior samples; codes] (equal halves): the reference's mean
    BCE on prior samples (target 1) + mean BCE on codes (target 0), which with equal halves is
    twice the mean over the concatenation."""
    n = d_logits.shape[0] // 2
    targets = paddle.concat([paddle.ones([n, 1]), paddle.zeros([n, 1])])
    return 2.0 * F.binary_cross_entropy_with_logits(d_logits, targets)


def generator_loss(d_logits):
    """The encoder's loss as a generator: D should call its codes prior samples (target 1)."""
    return F.binary_cross_entropy_with_logits(d_logits, paddle.ones_like(d_logits))


def aae_optimizer_plan(cfg):
    """{optimizer: (network it updates, learning rate, momentum)} of the three phases: the
    reference's four Adams, the encoder with one for reconstruction and one for the
    generator phase of the regularization (``encoder_adversarial``)."""
    return {"encoder": ("encoder", cfg.gen_lr, cfg.gen_momentum),
            "decoder": ("decoder", cfg.gen_lr, cfg.gen_momentum),
            "discriminator": ("discriminator", cfg.reg_lr, cfg.reg_momentum),
            "encoder_adversarial": ("encoder", cfg.reg_lr, cfg.reg_momentum)}


def make_optimizers(cfg, nets, plan):
    """One optimizer per phase: ``plan`` is {optimizer name: (network, learning rate,
    momentum)}; returns {name: PhaseOptimizer}. The encoder has one optimizer per phase it
    takes part in, each with its own state (the reference's four Adams). Adam by default; SGD
    with momentum with --optimizer momentum."""
    opts = {}
    for name, (net_name, lr, momentum) in plan.items():
        layer = nets[net_name]
        if cfg.optimizer == "momentum":  # set_learning_rates applies each epoch's schedule
            optimizer = paddle.optimizer.Momentum(learning_rate=lr, momentum=momentum,
                                                  parameters=layer.parameters())
        else:
            optimizer = paddle.optimizer.Adam(learning_rate=lr, parameters=layer.parameters())
        opts[name] = PhaseOptimizer(optimizer, layer)
    return opts


def set_learning_rates(cfg, opts, plan, epoch):
    """Each phase's rate in ``epoch``: its rate of ``plan`` times ``cfg.lr_factor(epoch)``
    (--lr_decay_epochs with momentum SGD; constant with Adam, as the reference)."""
    for name, (_, lr, _) in plan.items():
        opts[name].optimizer.set_lr(lr * cfg.lr_factor(epoch))


def one_hot(labels, n_units):
    """[n, n_units] float32 one-hot rows of integer labels in [0, n_units)."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if labels.size and (labels.min() < 0 or labels.max() >= n_units):
        raise ValueError(f"labels must be in [0, {n_units}) for {n_units} label units, got "
                         f"[{labels.min()}, {labels.max()}]")
    return paddle.to_tensor(np.eye(n_units, dtype=np.float32)[labels])
