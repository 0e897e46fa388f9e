"""Run by tests/test_data_parallel.py under paddle.distributed.launch: a few training steps on
shards of one fixed mini-batch, gradients averaged across processes; rank 0 saves the weights."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import utils.cpu_env  # noqa: E402,F401

import numpy as np  # noqa: E402
import paddle  # noqa: E402

from test_data_parallel import STEPS, fixed_batch, small_model, table1_step  # noqa: E402
from utils.run import init_data_parallel  # noqa: E402
from utils.steps import average_gradients  # noqa: E402


def main(out_path):
    rank, world = init_data_parallel()
    nets, opts = small_model()
    x_full, z_full = fixed_batch()
    shard = len(x_full) // world
    rows = slice(rank * shard, (rank + 1) * shard)
    x = paddle.to_tensor(x_full[rows])
    for _ in range(STEPS):
        table1_step(x, paddle.to_tensor(z_full[rows]), nets, opts, average_gradients)
    if rank == 0:
        np.savez(out_path, **{f"{name}/{k}": v.numpy() for name, net in nets.items()
                              for k, v in net.state_dict().items()})


if __name__ == "__main__":
    main(sys.argv[1])
