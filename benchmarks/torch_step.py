"""A plain PyTorch eager AAE step, for comparison with ours (benchmarks/bench_train.py).

Written the way the step is usually written (and as the reference reproduction writes it in
Paddle): nn.Dropout, sigmoid outputs with log losses, two separate discriminator passes,
gradients computed for everything and cleared after each phase, four Adams. Same sizes as the
paper config. Prints JSON with ms_per_step (median of repeats).

    python benchmarks/torch_step.py --steps 30 --repeats 5
"""
import argparse
import json
import os
import statistics
import time


def build(in_dim=784, hidden=1200, latent=8, p=0.2):
    import torch.nn as nn

    def stack(a, out, last=None):
        layers = [nn.Linear(a, hidden), nn.Dropout(p), nn.ReLU(),
                  nn.Linear(hidden, hidden), nn.Dropout(p), nn.ReLU()]
        if out is not None:
            layers.append(nn.Linear(hidden, out))
        if last is not None:
            layers.append(last)
        return nn.Sequential(*layers)

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = stack(in_dim, None)
            self.mu, self.logvar = nn.Linear(hidden, latent), nn.Linear(hidden, latent)

        def forward(self, x):
            import torch
            h = self.model(x)
            mu = self.mu(h)
            return mu + torch.exp(self.logvar(h) / 2) * torch.randn_like(mu) * 5.0

    return Encoder(), stack(latent, in_dim, nn.Sigmoid()), stack(latent, 1, nn.Sigmoid())


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    import torch
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())))
    torch.manual_seed(0)
    enc, dec, disc = build()
    opt_dec = torch.optim.Adam(dec.parameters(), lr=2e-4)
    opt_enc = torch.optim.Adam(enc.parameters(), lr=2e-4)
    opt_gen = torch.optim.Adam(enc.parameters(), lr=1e-4)
    opt_disc = torch.optim.Adam(disc.parameters(), lr=1e-4)
    opts = [opt_dec, opt_enc, opt_gen, opt_disc]
    x = (torch.rand(100, 784) > 0.8).float()
    tiny = 1e-15

    def zero():
        for o in opts:
            o.zero_grad()

    def step():
        enc.train(), dec.train(), disc.train()
        recon = torch.nn.functional.binary_cross_entropy(dec(enc(x)) + tiny, x + tiny)
        recon.backward()
        opt_dec.step(), opt_enc.step()
        zero()
        enc.eval()
        z_real = torch.randn(100, 8) * 5.0
        z_fake = enc(x).detach()
        d_loss = -torch.mean(torch.log(disc(z_real) + tiny) + torch.log(1 - disc(z_fake) + tiny))
        d_loss.backward()
        opt_disc.step()
        zero()
        enc.train()
        g_loss = -torch.mean(torch.log(disc(enc(x)) + tiny))
        g_loss.backward()
        opt_gen.step()
        zero()

    for _ in range(10):
        step()
    per_step = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        for _ in range(args.steps):
            step()
        per_step.append((time.perf_counter() - t) / args.steps)
    return {"ms_per_step": round(1000 * statistics.median(per_step), 2),
            "ms_per_step_repeats": [round(1000 * s, 2) for s in per_step],
            "torch": torch.__version__, "threads": torch.get_num_threads()}


if __name__ == "__main__":
    print(json.dumps(main()))
