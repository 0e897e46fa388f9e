"""Copy the paper-recipe runs' logs here and draw their validation curves beside the presets'.

    python results/paper_recipe/collect.py     # runs/semi_100_paper/seed{0,1}/logs -> here

Each run's train.log, loss.csv and train_config.json are copied (a run still training gives
its epochs so far), and docs/figures/semi_100_paper_valid_error.png is redrawn: the paper's
recipe and the semi_100 preset (Adam, results/denoising/), two seeds each, and the paper's
test error as a dashed line.
"""
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
from utils.plots import plot_error_curves  # noqa: E402

HERE = os.path.join(ROOT, "results", "paper_recipe")
RUNS = {"semi_100_paper/seed0": "runs/semi_100_paper/seed0/logs",
        "semi_100_paper/seed1": "runs/semi_100_paper/seed1/logs"}
PRESET = {"semi_100 (Adam), seed 0": "results/denoising/semi_100_input_noise0.3/loss.csv",
          "semi_100 (Adam), seed 1": "results/denoising/semi_100_input_noise0.3/seed1/loss.csv"}


def main():
    files, labels = [], []
    for name, logs in RUNS.items():
        source = os.path.join(ROOT, logs)
        if not os.path.isdir(source):
            print(f"{logs}: not here, skipped")
            continue
        target = os.path.join(HERE, name)
        os.makedirs(target, exist_ok=True)
        for f in ("train.log", "loss.csv", "train_config.json"):
            if os.path.exists(os.path.join(source, f)):
                shutil.copy2(os.path.join(source, f), os.path.join(target, f))
        files.append(os.path.join(target, "loss.csv"))
        labels.append(name.replace("/", ", "))
    for label, path in PRESET.items():
        files.append(os.path.join(ROOT, path))
        labels.append(label)
    out = os.path.join(ROOT, "docs", "figures", "semi_100_paper_valid_error.png")
    plot_error_curves(files, labels, out, paper_error=0.019)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
