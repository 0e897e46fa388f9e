"""Copy the paper-recipe runs' logs here and draw their validation curves beside the presets'.

    python results/paper_recipe/collect.py             # runs/semi_{100,1000}_paper/seed{0,1}/logs -> here
    python results/paper_recipe/collect.py --classify  # also each run's best.npz -> RUN/best/classify.json

Each run's train.log, loss.csv and train_config.json are copied (a run still training gives
its epochs so far; a run not on this machine keeps the copy made before), and one figure per
screen is redrawn in docs/figures/: the paper's recipe and the Adam preset it is screened
against, two seeds each, with the paper's test error as a dashed line. With ``--classify``,
classify.py measures each run's ``best.npz`` (the epoch of lowest validation error so far,
chosen without the test set) into ``RUN/best/``.
"""
import argparse
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
from utils.plots import plot_error_curves  # noqa: E402

HERE = os.path.join(ROOT, "results", "paper_recipe")
# screen -> (the paper's test error, the preset's loss.csv of seeds 0 and 1)
SCREENS = {
    "semi_100": (0.019, ["results/denoising/semi_100_input_noise0.3/loss.csv",
                         "results/denoising/semi_100_input_noise0.3/seed1/loss.csv"]),
    "semi_1000": (0.016, ["results/semi_1000_input_noise0.3/loss.csv",
                          "results/semi_1000_input_noise0.3/seed1/loss.csv"]),
}
SEEDS = (0, 1)


def copy_logs(run):
    """runs/<run>/logs -> results/paper_recipe/<run>; the copy's loss.csv (None if neither)."""
    source = os.path.join(ROOT, "runs", run, "logs")
    target = os.path.join(HERE, run)
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
        for name in ("train.log", "loss.csv", "train_config.json"):
            if os.path.exists(os.path.join(source, name)):
                shutil.copy2(os.path.join(source, name), os.path.join(target, name))
    else:
        print(f"runs/{run}/logs: not here, the copy made before is kept")
    loss = os.path.join(target, "loss.csv")
    return loss if os.path.isfile(loss) else None


def classify_best(run):
    """classify.py on runs/<run>/model/best.npz -> results/paper_recipe/<run>/best/."""
    best = os.path.join(ROOT, "runs", run, "model", "best.npz")
    if not os.path.isfile(best):
        print(f"runs/{run}/model/best.npz: not here, not measured")
        return
    subprocess.run([sys.executable, os.path.join(ROOT, "classify.py"), "--checkpoint", best,
                    "--logs_dir", os.path.join(HERE, run, "best")], check=True, cwd=ROOT)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--classify", action="store_true",
                        help="also measure each run's best.npz with classify.py")
    measure = parser.parse_args(argv).classify
    for screen, (paper_error, preset_files) in SCREENS.items():
        files, labels = [], []
        for seed in SEEDS:
            loss = copy_logs(f"{screen}_paper/seed{seed}")
            if measure:
                classify_best(f"{screen}_paper/seed{seed}")
            if loss:
                files.append(loss)
                labels.append(f"{screen}_paper, seed {seed}")
        if not files:
            continue
        for seed, path in zip(SEEDS, preset_files):
            files.append(os.path.join(ROOT, path))
            labels.append(f"{screen} (Adam), seed {seed}")
        out = os.path.join(ROOT, "docs", "figures", f"{screen}_paper_valid_error.png")
        plot_error_curves(files, labels, out, paper_error=paper_error)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
