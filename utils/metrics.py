"""Classification measures of the semi-supervised, clustering and dimensionality-reduction
AAEs (paper §5-7) and of the supervised AAE's decodes (§4): the networks' outputs on a set of
images, and the measures computed from them (pure numpy). Used by classify.py, plot.py and
train.py's per-epoch validation error."""
import numpy as np
import paddle
import paddle.nn.functional as F

BATCH = 1000  # images per forward pass


# ---- metrics: pure numpy --------------------------------------------------------------
def classification_error(probs, labels):
    """The fraction of rows whose most probable class (argmax of probs [n, K]) is not the
    label [n]."""
    probs, labels = np.asarray(probs), np.asarray(labels).reshape(-1)
    if len(probs) != len(labels) or len(labels) == 0:
        raise ValueError(f"need as many (> 0) rows of probabilities as labels, got "
                         f"{len(probs)} and {len(labels)}")
    return float(np.mean(probs.argmax(axis=1) != labels))


def cluster_labels(train_probs, train_labels):
    """[K] the label of each cluster k: that of the training image with the highest
    q(y=k|x) (paper §6)."""
    train_probs = np.asarray(train_probs)
    return np.asarray(train_labels).reshape(-1)[train_probs.argmax(axis=0)]


def majority_cluster_labels(train_probs, train_labels):
    """[K] the most common label among the training images whose most probable cluster is k
    (ties: the smaller label; -1 for a cluster no training image falls in). Not the paper's
    rule: a diagnostic of how well the clusters separate the digits, whatever their labelling."""
    train_probs = np.asarray(train_probs)
    assigned = train_probs.argmax(axis=1)
    train_labels = np.asarray(train_labels).reshape(-1)
    result = np.full(train_probs.shape[1], -1, dtype=np.int64)
    for k in np.unique(assigned):
        result[k] = np.bincount(train_labels[assigned == k]).argmax()
    return result


def labelled_clusters_error(labels_of_cluster, test_probs, test_labels):
    """The test error when each test image takes the label (``labels_of_cluster`` [K]) of its
    most probable cluster."""
    predicted = np.asarray(labels_of_cluster)[np.asarray(test_probs).argmax(axis=1)]
    return float(np.mean(predicted != np.asarray(test_labels).reshape(-1)))


def clustering_error(train_probs, train_labels, test_probs, test_labels):
    """The test error when each test image takes the label of its most probable cluster,
    clusters labelled by ``cluster_labels`` (paper §6, Table 3)."""
    return labelled_clusters_error(cluster_labels(train_probs, train_labels), test_probs,
                                   test_labels)


def nearest_head_error(representations, heads, head_labels, labels):
    """The test error when each representation r [n, d] takes the label (``head_labels`` [K])
    of its nearest cluster head (rows of ``heads`` [K, d]): the dimensionality-reduction AAE
    read as a nearest-centre classifier (paper §7)."""
    r, heads = np.asarray(representations, np.float64), np.asarray(heads, np.float64)
    distance = ((r[:, None, :] - heads[None, :, :]) ** 2).sum(axis=-1)  # [n, K]
    predicted = np.asarray(head_labels)[distance.argmin(axis=1)]
    return float(np.mean(predicted != np.asarray(labels).reshape(-1)))


def class_centroids(x, labels, n_classes):
    """[n_classes, pixels] the mean image of each class: a nearest-centroid classifier
    (about 82 % right on MNIST), the fixed reader of the supervised AAE's decodes."""
    x, labels = np.asarray(x), np.asarray(labels).reshape(-1)
    missing = sorted(set(range(n_classes)) - set(labels.tolist()))
    if missing:
        raise ValueError(f"no image of class(es) {missing} to average")
    # summed in float64 class by class: no float64 copy of the whole training set
    return np.stack([x[labels == k].mean(axis=0, dtype=np.float64) for k in range(n_classes)])


def nearest_centroid(centroids, x):
    """[n] the index of the centroid nearest (Euclidean) to each row of x [n, pixels]."""
    x, centroids = np.asarray(x, np.float64), np.asarray(centroids, np.float64)
    # |x - c|^2 = |x|^2 - 2 x.c + |c|^2; |x|^2 is the same for every c of a row
    return ((centroids ** 2).sum(axis=1)[None, :] - 2 * x @ centroids.T).argmin(axis=1)


def style_spread(decodes, x, labels):
    """How much the supervised AAE's style code changes its images: decodes [S, K, pixels]
    (S style codes, each decoded with every class k), the mean over classes of the pixel
    variance across styles, divided by the same for real images x of each class. Near 0:
    the style code is ignored (every style the same image); near 1: as varied as real digits."""
    decodes, x = np.asarray(decodes, np.float64), np.asarray(x, np.float64)
    labels = np.asarray(labels).reshape(-1)
    made = decodes.var(axis=0).mean(axis=1)  # [K]
    real = np.array([x[labels == k].var(axis=0).mean() for k in range(decodes.shape[1])])
    return float(np.mean(made / real))


# ---- the networks' outputs, in batches ----------------------------------------------
def forward_in_batches(fn, x, batch=BATCH):
    """``fn`` (Paddle tensor -> Paddle tensor) over images x [n, pixels] (a numpy array or a
    Paddle tensor), ``batch`` rows at a time without gradients; the results concatenated as
    numpy. The caller puts its networks in eval mode."""
    out = []
    with paddle.no_grad():
        for start in range(0, len(x), batch):
            rows = x[start:start + batch]
            out.append(fn(rows if isinstance(rows, paddle.Tensor)
                          else paddle.to_tensor(rows)).numpy())
    return np.concatenate(out)


def class_probabilities(encoder, x):
    """q(y|x) [n, K] of images x [n, pixels] (a numpy array or a Paddle tensor; eval mode,
    no gradients)."""
    encoder.eval()
    return forward_in_batches(lambda rows: F.softmax(encoder.logits(rows), axis=1), x)


def representations(encoder, decoder, x):
    """r = q(y|x) W + z [n, d] of images x [n, pixels]: the dimensionality-reduction AAE's
    low-dimensional map (paper §7; the decoder holds the cluster heads W)."""
    encoder.eval()

    def represent(rows):
        y_probs, z = encoder(rows)
        return decoder.representation(z, y_probs)
    return forward_in_batches(represent, x)
