"""The experiments of the paper as presets: ``python train.py --preset NAME`` (also
eval.py, classify.py and plot.py, which then load that run's checkpoint). A preset is a set of
overrides of config.Config's defaults; options given on the command line win. Why each value
was chosen, and the screens behind the choices, are in docs/ (linked beside each group)."""


def _run_dirs(name):
    """Each preset writes to its own runs/<name>/ folders, so experiments do not overwrite
    one another (the defaults keep model/, images/ and logs/)."""
    return {"model_dir": f"runs/{name}/model", "images_dir": f"runs/{name}/images",
            "logs_dir": f"runs/{name}/logs"}


# The 2-d and supervised experiments (paper §2.3, §4) keep the likelihood model's layers,
# dropout and rates, which the paper does not give for them, and the paper's deterministic
# encoder z = mu (the reference's eps of std 5 would swamp a 2-d prior).
_PAPER_ENCODER = {"encoder": "deterministic"}
_CODE_2D = {"latent_dim": 2, **_PAPER_ENCODER}
# With labels in the regularization, regularization at 1e-3 (screened: docs/code_space.md).
_LABELS_2D = {**_CODE_2D, "labels": "regularization", "reg_lr": 1e-3}
# The supervised AAE: N(0, 1) style, a discriminator that also sees the label (not in the
# paper) and regularization at 5e-4 (screened: docs/code_space.md, Figures 6-7).
_SUPERVISED = {"labels": "supervised", "std": 1.0, "reg_lr": 5e-4, "label_critic": True}


def _epochs(n):
    """A preset's training length, and the epoch eval.py and plot.py then load by default."""
    return {"n_epochs": n, "load_epoch": n - 1}


# The code-space experiments (Figures 2-7): 20 epochs, a budget (the paper states none).
_FIGURE_EPOCHS = _epochs(20)

# The categorical AAE (paper §5-6, Figure 8): deterministic style z, 10-d with a N(0, 1)
# prior (chosen: on the scale of the softmax y it is decoded with); the likelihood model's
# layers, dropout and Adam; a 100-epoch budget (docs/categorical.md#settings-and-how-they-differ-from-the-paper).
_CATEGORICAL = {"latent_dim": 10, "std": 1.0, **_PAPER_ENCODER}
_BUDGET_EPOCHS = _epochs(100)
# SGD with momentum as public implementations read the paper's appendix: reconstruction 0.01
# (momentum 0.9), regularizations 0.1 (0.1), classification 0.1 (0.9), / 10 at epochs 50, 1000.
_PAPER_SGD = {"optimizer": "momentum", "gen_lr": 0.01, "reg_lr": 0.1, "class_lr": 0.1,
              "gen_momentum": 0.9, "reg_momentum": 0.1, "class_momentum": 0.9,
              "lr_decay_epochs": "50,1000", "N": 1000, **_epochs(2000)}
# Clustering: N(0, 0.3^2) noise on what the discriminators see (as musyoku's code; without it
# q(y|x) collapses onto one category, results/screens/README.md).
_CLUSTERING = {"labels": "clustering", "disc_noise": 0.3}
# Masking noise on the clustering encoder's input, the target clean (the paper's clustering
# appendix as a public implementation reads it; results/screens/README.md#input-dropout-on-cluster_16).
_CLUSTER_INPUT = {"input_dropout": 0.2}
# Gaussian noise on the semi-supervised encoder's input, the target clean
# (results/screens/README.md#input-noise).
_SEMI_INPUT = {"input_noise": 0.3}
# The paper's recipe for Tables 2-3 (docs/categorical.md#the-papers-recipe; each difference in
# docs/deviations.md): no dropout, the per-image reconstruction cost SGD's rates are set for,
# and reconstruction at 0.001 because 0.01 diverged on that cost with Paddle's initialisation.
_PAPER_RECIPE = {**_PAPER_SGD, "dropout": 0.0, "recon_reduction": "image_sum", "gen_lr": 0.001}
_SEMI_PAPER = {**_CATEGORICAL, **_PAPER_RECIPE, "labels": "semi_supervised",
               "input_noise": 0.3, **_epochs(5000)}
_CLUSTER_PAPER = {**_CATEGORICAL, **_CLUSTERING,
                  **{k: v for k, v in _PAPER_RECIPE.items() if k != "class_lr"},  # no labels
                  "N": 3000, "latent_dim": 5,
                  "encoder_batchnorm": True, "input_dropout": 0.2, "lr_decay_epochs": "50",
                  **_epochs(1500)}
# The dimensionality-reduction AAE (paper §7, Figure 10): a 2-d style and learned cluster
# heads, decoding r = y W + z.
_DIMRED = {**_CATEGORICAL, "latent_dim": 2, "cluster_heads": True}
# n_labeled of semi_all: more than any training split holds, so every image keeps its label.
ALL_LABELS = 10**9


# name -> (one-line description, overrides of the defaults). ``--preset NAME`` applies them;
# options given on the command line win.
PRESETS = {
    "likelihood": ("paper §3 / Table 1: the MNIST likelihood model, 8-d Gaussian prior "
                   "(= the defaults)", {}),
    # The reference reproduction's comparison (its README; reported without logs): its model
    # without dropout, and the network of eriklindernoren/PyTorch-GAN's aae.py; and the
    # paper's own deterministic encoder. Each the Table 1 model otherwise.
    "likelihood_no_dropout": ("Table 1 model without its dropout layers (the reference's "
                              "comparison)", {"dropout": 0.0,
                                              **_run_dirs("likelihood_no_dropout")}),
    "likelihood_pytorch_gan": ("Table 1 training with the network of PyTorch-GAN's aae.py: "
                               "512 units, LeakyReLU, batch norm, no dropout, eps ~ N(0, 1) "
                               "(the reference's comparison)",
                               {"architecture": "pytorch_gan", "N": 512, "dropout": 0.0,
                                "eps_std": 1.0, **_run_dirs("likelihood_pytorch_gan")}),
    "likelihood_deterministic": ("Table 1 model with the paper's deterministic encoder z = mu",
                                 {**_PAPER_ENCODER, **_run_dirs("likelihood_deterministic")}),
    "gaussian_2d": ("Figure 2a/2e: 2-d code, 2-d Gaussian prior, no labels",
                    {**_CODE_2D, **_FIGURE_EPOCHS, **_run_dirs("gaussian_2d")}),
    "gmm_2d": ("Figure 2b: 2-d code, mixture of 10 2-d Gaussians, no labels",
               {**_CODE_2D, "prior": "gmm", **_FIGURE_EPOCHS, **_run_dirs("gmm_2d")}),
    "gmm_labels": ("Figures 3 and 4a/b: mixture of 10 2-d Gaussians, the discriminator also sees "
                   "the labels of 10k digits (40k unlabelled)",
                   {**_LABELS_2D, "prior": "gmm", **_FIGURE_EPOCHS,
                    **_run_dirs("gmm_labels")}),
    "swiss_roll_labels": ("Figures 3 and 4c/d: 2-d swiss roll in 10 sections, the "
                          "discriminator also sees the labels of 10k digits (40k unlabelled)",
                          {**_LABELS_2D, "prior": "swiss_roll", **_FIGURE_EPOCHS,
                           **_run_dirs("swiss_roll_labels")}),
    "supervised_15d": ("Figures 6 and 7 (MNIST): the decoder gets the one-hot label, the code a "
                       "15-d Gaussian style",
                       {"latent_dim": 15, **_PAPER_ENCODER, **_SUPERVISED,
                        **_FIGURE_EPOCHS, **_run_dirs("supervised_15d")}),
    "supervised_2d": ("Figures 6 and 7 with a 2-d style code, to look at the style space",
                      {**_CODE_2D, **_SUPERVISED, **_FIGURE_EPOCHS,
                       **_run_dirs("supervised_2d")}),
    "semi_100": ("Figure 8 / Table 2: semi-supervised AAE, categorical y + Gaussian style z, "
                 "100 labels (10 per digit)",
                 {**_CATEGORICAL, "labels": "semi_supervised", "n_labeled": 100, **_SEMI_INPUT,
                  **_BUDGET_EPOCHS, **_run_dirs("semi_100")}),
    "semi_1000": ("Figure 8 / Table 2: semi-supervised AAE with 1000 labels (100 per digit)",
                  {**_CATEGORICAL, "labels": "semi_supervised", "n_labeled": 1000,
                   **_SEMI_INPUT, **_BUDGET_EPOCHS, **_run_dirs("semi_1000")}),
    "semi_all": ("Figure 8 / Table 2: semi-supervised AAE with every training label",
                 {**_CATEGORICAL, "labels": "semi_supervised", "n_labeled": ALL_LABELS,
                  **_SEMI_INPUT, **_BUDGET_EPOCHS, **_run_dirs("semi_all")}),
    "cluster_16": ("Table 3: unsupervised clustering AAE, 16 categories, no labels",
                   {**_CATEGORICAL, **_CLUSTERING, **_CLUSTER_INPUT, "n_categories": 16,
                    **_BUDGET_EPOCHS, **_run_dirs("cluster_16")}),
    "cluster_30": ("Table 3: unsupervised clustering AAE, 30 categories, no labels",
                   {**_CATEGORICAL, **_CLUSTERING, **_CLUSTER_INPUT, "n_categories": 30,
                    **_BUDGET_EPOCHS, **_run_dirs("cluster_30")}),
    # Table 2's baseline: the semi-supervised presets' encoder, optimizer, dropout, labelled
    # sets and epochs, trained by the classification phase alone (no reconstruction and no
    # adversarial part): what the AAE adds over plain supervised training on its labels.
    **{f"classifier_{name}": (f"Table 2 baseline: semi_{name}'s encoder trained on {text} "
                              "by the classification phase alone",
                              {**_CATEGORICAL, "labels": "classifier", "n_labeled": n,
                               **_SEMI_INPUT, **_BUDGET_EPOCHS, **_run_dirs(f"classifier_{name}")})
       for name, n, text in (("100", 100, "its 100 labels"), ("1000", 1000, "its 1000 labels"),
                             ("all", ALL_LABELS, "every training label"))},
    "semi_1000_sgd": ("Table 2 with the paper's optimizer: semi_1000 with SGD + momentum, "
                      "rates / 10 at epochs 50 and 1000, 1000-unit layers, 2000 epochs",
                      {**_CATEGORICAL, "labels": "semi_supervised", "n_labeled": 1000,
                       **_PAPER_SGD, **_run_dirs("semi_1000_sgd")}),
    **{f"semi_{name}_paper": (f"Table 2 by the paper's recipe, {text}: SGD + momentum on the "
                              "per-image cost, 1000-unit layers without dropout, input noise "
                              "0.3, rates / 10 at epochs 50 and 1000, 5000 epochs",
                              {**_SEMI_PAPER, "n_labeled": n, **_run_dirs(f"semi_{name}_paper")})
       for name, n, text in (("100", 100, "100 labels"), ("1000", 1000, "1000 labels"),
                             ("all", ALL_LABELS, "every label"))},
    **{f"cluster_{k}_paper": (f"Table 3 by the paper's recipe, {k} clusters: 3000-unit layers, "
                              "batch norm in the encoder, 5-d style, input dropout 0.2, SGD + "
                              "momentum, rates / 10 at epoch 50, 1500 epochs",
                              {**_CLUSTER_PAPER, "n_categories": k,
                               **_run_dirs(f"cluster_{k}_paper")})
       for k in (16, 30)},
    "dimred_1000": ("Figure 11: 2-d dimensionality reduction, 10 cluster heads plus a 2-d "
                    "style, 1000 labels",
                    {**_DIMRED, "labels": "semi_supervised", "n_labeled": 1000,
                     **_BUDGET_EPOCHS, **_run_dirs("dimred_1000")}),
    "dimred_unsupervised": ("Figure 11: 2-d dimensionality reduction without labels, 20 "
                            "cluster heads",
                            {**_DIMRED, **_CLUSTERING, "n_categories": 20,
                             **_BUDGET_EPOCHS, **_run_dirs("dimred_unsupervised")}),
}
