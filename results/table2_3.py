"""Tables 2-3 as one machine-readable file, results/table2_3.json, built from committed
classify.json files only (no figure is typed in here: each is read from the file that the
run's classify.py wrote). The README's Table 2-3 rows are tested against it
(tests/test_table2_3.py).

Each row lists the seeds of one preset, each seed's classify.json, and their mean and sample
standard deviation; its baseline (the classifier alone for Table 2, k-means on the pixels for
Table 3, both by the same rule as the row); and the shipped checkpoint that row names, if any,
with the error its own classify.json gives (tests/test_shipped_model.py re-computes it).
``cpu_hours``: the seed's epoch seconds (its loss.csv) times its threads (its train.log), the
runs sharing the machine with others, so an upper bound of what one would take alone.

    python results/table2_3.py            # rewrites results/table2_3.json and the figures

It also draws docs/figures/table2_3_{row}_seeds.png: each seed's validation error per epoch
(its loss.csv beside its classify.json), with the paper's test error as a dashed line.
"""
import csv
import json
import os
import re
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from utils.files import atomic_write  # noqa: E402

OUT = os.path.join(ROOT, "results", "table2_3.json")

# row -> paper figure (Tables 2-3), baseline (name, its result file), the classify.json of each
# seed, and (shipped checkpoint, its classify.json, what it is) or None
ROWS = {
    "semi_100": (1.90, ("classifier_100 (input noise 0.3)",
                        "results/denoising/classifier_100_input_noise0.3/classify.json"),
                 ["results/denoising/semi_100_input_noise0.3/classify.json",
                  "results/denoising/semi_100_input_noise0.3/seed1/classify.json"],
                 ("model/semi_100_model99.npz",
                  "results/denoising/semi_100_input_noise0.3/classify.json", "seed 0")),
    "semi_1000": (1.60, ("classifier_1000 (input noise 0.3)",
                         "results/denoising/classifier_1000_input_noise0.3/classify.json"),
                  ["results/semi_1000_input_noise0.3/classify.json",
                   "results/semi_1000_input_noise0.3/seed1/classify.json"],
                  ("model/semi_1000_model99.npz", "results/semi_1000/classify.json",
                   "the preset before its input noise (--input_noise 0), seed 0")),
    "semi_all": (0.85, ("classifier_all (input noise 0.3)",
                        "results/denoising/classifier_all_input_noise0.3/classify.json"),
                 ["results/denoising/semi_all_input_noise0.3/classify.json"], None),
    "cluster_16": (9.55, ("k-means, K = 16", "results/baselines/kmeans_16.json"),
                   ["results/denoising/cluster_16_input_dropout0.2/classify.json",
                    "results/denoising/cluster_16_input_dropout0.2/seed1/classify.json",
                    "results/denoising/cluster_16_input_dropout0.2/seed2/classify.json"],
                   ("model/cluster_16_model99.npz",
                    "results/denoising/cluster_16_input_dropout0.2/classify.json", "seed 0")),
    "cluster_30": (4.10, ("k-means, K = 30", "results/baselines/kmeans_30.json"),
                   ["results/denoising/cluster_30_input_dropout0.2/classify.json",
                    "results/denoising/cluster_30_input_dropout0.2/seed1/classify.json"],
                   ("model/cluster_30_model99.npz",
                    "results/denoising/cluster_30_input_dropout0.2/classify.json", "seed 0")),
}


def read(path):
    with open(os.path.join(ROOT, path)) as f:
        return json.load(f)


def pct(error):
    return round(100.0 * error, 2)


def cpu_hours(classify_json):
    """Hours of training of the run beside ``classify_json``: the sum of its loss.csv's
    per-epoch seconds times the threads its train.log records (None without both files)."""
    folder = os.path.join(ROOT, os.path.dirname(classify_json))
    try:
        with open(os.path.join(folder, "loss.csv")) as f:
            rows = list(csv.DictReader(f))
        with open(os.path.join(folder, "train.log")) as f:
            threads = set(re.findall(r"'OMP_NUM_THREADS': '(\d+)'", f.read()))
    except OSError:
        return None
    if len(threads) != 1:  # unknown, or changed between resumptions
        return None
    return round(sum(float(r["seconds"]) for r in rows) * int(threads.pop()) / 3600.0, 2)


def build_row(name, paper, baseline, seed_files, shipped):
    seeds, errors = [], []
    for path in seed_files:
        result = read(path)
        cfg = result["train_config"]
        if cfg["preset"] != name:
            raise SystemExit(f"{path} is a run of --preset {cfg['preset']}, not {name}")
        seeds.append({"seed": cfg["seed"], "test_error_pct": pct(result["test_error"]),
                      "epochs": result["trained_epochs"], "classify_json": path,
                      "cpu_hours": cpu_hours(path)})
        errors.append(100.0 * result["test_error"])
    if len({s["seed"] for s in seeds}) != len(seeds):
        raise SystemExit(f"{name}: a seed is listed twice")
    errors = np.array(errors)
    row = {"row": name, "paper_pct": paper,
           "rule": read(seed_files[0]).get("labelling_rule", "argmax q(y|x) against the label"),
           "baseline": {"name": baseline[0], "test_error_pct": pct(read(baseline[1])["test_error"]),
                        "result_json": baseline[1]},
           "seeds": seeds, "n_seeds": len(seeds),
           "mean_pct": round(float(errors.mean()), 2),
           "sd_pct": round(float(errors.std(ddof=1)), 2) if len(seeds) > 1 else None,
           "shipped_checkpoint": None, "shipped_test_error_pct": None}
    if shipped:
        row["shipped_checkpoint"], row["shipped_classify_json"] = shipped[0], shipped[1]
        row["shipped_test_error_pct"] = pct(read(shipped[1])["test_error"])
        row["shipped_is"] = shipped[2]
    return row


def draw_seeds(row):
    """The row's seeds' validation curves -> docs/figures/table2_3_<row>_seeds.png."""
    from utils.plots import plot_error_curves
    files = [os.path.join(ROOT, os.path.dirname(s["classify_json"]), "loss.csv")
             for s in row["seeds"]]
    labels = [f"{row['row']}, seed {s['seed']} (test error {s['test_error_pct']:.2f}%)"
              for s in row["seeds"]]
    out = os.path.join(ROOT, "docs", "figures", f"table2_3_{row['row']}_seeds.png")
    plot_error_curves(files, labels, out, paper_error=row["paper_pct"] / 100.0)
    return out


def main():
    rows = [build_row(name, *spec) for name, spec in ROWS.items()]
    text = json.dumps({"rows": rows}, indent=2) + "\n"
    atomic_write(OUT, lambda f: f.write(text.encode("utf-8")))
    for row in rows:
        draw_seeds(row)
    for row in rows:
        sd = f" ± {row['sd_pct']:.2f}" if row["sd_pct"] is not None else ""
        print(f"{row['row']}: {row['mean_pct']:.2f}%{sd} over {row['n_seeds']} seed(s); "
              f"{row['baseline']['name']} {row['baseline']['test_error_pct']:.2f}%; "
              f"paper {row['paper_pct']:.2f}%")


if __name__ == "__main__":
    main()
