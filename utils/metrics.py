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


# ---- the model's q(y|x) ---------------------------------------------------------------
def class_probabilities(encoder, x):
    """q(y|x) [n, K] of images x [n, pixels] (a numpy array or a Paddle tensor; eval mode,
    no gradients)."""
    encoder.eval()
    out = []
    with paddle.no_grad():
        for start in range(0, len(x), BATCH):
            batch = x[start:start + BATCH]
            logits = encoder.logits(batch if isinstance(batch, paddle.Tensor)
                                    else paddle.to_tensor(batch))
            out.append(F.softmax(logits, axis=1).numpy())
    return np.concatenate(out)


def representations(encoder, decoder, x):
    """r = q(y|x) W + z [n, d] of images x [n, pixels]: the dimensionality-reduction AAE's
    low-dimensional map (paper §7; the decoder holds the cluster heads W)."""
    encoder.eval()
    out = []
    with paddle.no_grad():
        for start in range(0, len(x), BATCH):
            y_probs, z = encoder(paddle.to_tensor(x[start:start + BATCH]))
            out.append(decoder.representation(z, y_probs).numpy())
    return np.concatenate(out)
