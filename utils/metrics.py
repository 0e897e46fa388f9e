"""Classification measures of the semi-supervised, clustering and dimensionality-reduction
AAEs (paper §5-7): the networks' outputs on a set of images, and the errors computed from
them (pure numpy). Used by classify.py and by train.py's per-epoch validation error."""
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


def clustering_error(train_probs, train_labels, test_probs, test_labels):
    """The test error when each test image takes the label of its most probable cluster,
    clusters labelled by ``cluster_labels`` (paper §6, Table 3)."""
    labels_of_cluster = cluster_labels(train_probs, train_labels)
    predicted = labels_of_cluster[np.asarray(test_probs).argmax(axis=1)]
    return float(np.mean(predicted != np.asarray(test_labels).reshape(-1)))


def nearest_head_error(representations, heads, head_labels, labels):
    """The test error when each representation r [n, d] takes the label (``head_labels`` [K])
    of its nearest cluster head (rows of ``heads`` [K, d]): the dimensionality-reduction AAE
    read as a nearest-centre classifier (paper §7)."""
    r, heads = np.asarray(representations, np.float64), np.asarray(heads, np.float64)
    distance = ((r[:, None, :] - heads[None, :, :]) ** 2).sum(axis=-1)  # [n, K]
    predicted = np.asarray(head_labels)[distance.argmin(axis=1)]
    return float(np.mean(predicted != np.asarray(labels).reshape(-1)))


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
