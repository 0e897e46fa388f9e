"""Milliseconds per training step and seconds per epoch of every preset, on this machine.

    python benchmarks/bench_presets.py                          # all presets -> results/bench_presets.json
    python benchmarks/bench_presets.py --presets semi_100 cluster_16 --steps 10 --repeats 3
    python benchmarks/bench_presets.py --markdown               # also print the table

Each preset is timed by benchmarks/bench_train.py in a process of its own (so one preset's
allocations and threads do not slow the next), with the threads utils/cpu_env.py sets (all
usable cores unless OMP_NUM_THREADS says otherwise). Seconds per epoch are the step's median
times the batches of that preset's epoch, counted from its own training images (the
semi-supervised and clustering epochs run over all 59,000 images, the classifier baselines'
as many labelled mini-batches, ``--N_train`` where a preset sets it), so data_maker.py must
have written the split first. Run it on an idle machine:
a second busy process on 2 cores makes every figure slower.
"""
import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from utils.errors import UserError  # noqa: E402

OUT = os.path.join(ROOT, "results", "bench_presets.json")


def batches_per_epoch(settings, data_dir):
    """The batches of one epoch of a preset as train.py runs it: the training images its family
    keeps (all 59,000, ``N_train`` of them, or the labelled-prior families' subset) over its
    batch size. The family is built on the real split with tiny layers, only to count them."""
    import config  # imported here: --help and argument errors stay free of Paddle
    import families
    from data_maker import load_split
    cfg = config.Config(**settings).validate()
    family = families.get(cfg.labels)
    data = load_split(data_dir, n_train=cfg.N_train, parts=family.data_parts)
    model = family(config.Config(**{**settings, "N": 8}).validate(), data)
    return math.ceil(len(model.x_train) / cfg.batch_size), cfg


def time_preset(name, steps, repeats):
    """bench_train.py's JSON for ``--preset name`` (run in its own process)."""
    command = [sys.executable, os.path.join(ROOT, "benchmarks", "bench_train.py"),
               "--preset", name, "--steps", str(steps), "--repeats", str(repeats)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise UserError(f"timing preset {name} failed: {tail}")
    return json.loads(done.stdout)


def markdown(rows):
    lines = ["| preset | family | ms/step | s/epoch (batches) | roofline fraction |",
             "| --- | --- | --- | --- | --- |"]
    for r in rows:
        fraction = "" if r["roofline_fraction"] is None else f"{r['roofline_fraction']:.2f}"
        lines.append(f"| `{r['preset']}` | {r['labels']} | {r['ms_per_step']:.0f} | "
                     f"{r['epoch_seconds']:.0f} ({r['batches_per_epoch']}) | {fraction} |")
    return "\n".join(lines)


def main(argv=None):
    import presets
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", metavar="NAME", default=list(presets.PRESETS),
                        help="presets to time (default: all, in presets.py's order)")
    parser.add_argument("--steps", type=int, default=20, help="steps per repeat")
    parser.add_argument("--repeats", type=int, default=3, help="repeats; the median is kept")
    parser.add_argument("--data_dir", default="data",
                        help="folder of data_maker.py's split (to count each epoch's batches)")
    parser.add_argument("--out", default=OUT, help="where the JSON goes")
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    args = parser.parse_args(argv)
    unknown = [p for p in args.presets if p not in presets.PRESETS]
    if unknown:
        parser.error(f"--presets: unknown {', '.join(unknown)}; python train.py --help lists "
                     "the presets")
    if args.steps < 1 or args.repeats < 1:
        parser.error("--steps and --repeats must be >= 1")

    from utils.files import atomic_write
    rows, started = [], time.time()
    for i, name in enumerate(args.presets, 1):
        batches, cfg = batches_per_epoch(presets.PRESETS[name][1], args.data_dir)
        timed = time_preset(name, args.steps, args.repeats)
        rows.append({"preset": name, "labels": cfg.labels, "N": cfg.N,
                     "batch_size": cfg.batch_size, "ms_per_step": timed["ms_per_step"],
                     "ms_per_step_repeats": timed["ms_per_step_repeats"],
                     "batches_per_epoch": batches,
                     "epoch_seconds": round(timed["ms_per_step"] / 1000 * batches, 1),
                     "roofline_fraction": timed.get("roofline_fraction")})
        print(f"[{i}/{len(args.presets)}] {name}: {timed['ms_per_step']:.1f} ms/step, "
              f"{rows[-1]['epoch_seconds']:.0f} s/epoch ({time.time() - started:.0f} s so far)",
              file=sys.stderr, flush=True)
    result = {"rows": rows, "steps": args.steps, "repeats": args.repeats,
              "threads": timed["threads"], "paddle": timed["paddle"],
              "python": platform.python_version(), "cpu": cpu_name()}
    atomic_write(args.out, lambda f: f.write(json.dumps(result, indent=1).encode() + b"\n"))
    print(f"wrote {args.out}", file=sys.stderr)
    if args.markdown:
        print(markdown(rows))
    return result


def cpu_name():
    """The processor's model name (Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    from utils.errors import run_cli
    run_cli(main)
