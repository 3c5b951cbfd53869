"""The two-tower retrieval model: a user tower, a hybrid book tower, a TFRS retrieval task.

A retrieval model has to find a user's next books among the whole catalogue, so it
scores a user and a book by the dot product of two independently computed vectors:
all book vectors can then be computed once and searched (brute force, or any
nearest-neighbour index). The book ("candidate") tower mixes collaborative and
content signals: a per-book id embedding learns from co-reading, while the title's
words, the authors and the genre let rarely read books borrow from similar ones.
Both towers end in L2 normalisation, so scores are cosines and the exported book
vectors can be compared directly.
"""
import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

# Logit of a masked accidental hit, as low as tfrs.tasks.Retrieval pushes it (float32 min / 100),
# so that exp() is exactly 0 and no inf - inf appears.
_MASKED_LOGIT = float(np.finfo(np.float32).min) / 100.0


def _pooled(embedding, ids):
    """Mean of the embeddings of the non-zero ids in each row ([B, L] -> [B, D]; 0 if none).

    The table rows are read once per distinct id (ResourceGather), then one fused
    sparse_segment_mean pools them: no [B, L, D] tensor is built forward or backward,
    and the table's gradient is IndexedSlices over the distinct ids read, so the
    optimizer moves only those rows. The table itself is never read whole: a table that
    the optimizer updates row-wise (model/lazy_adam.py) is copied by every whole read,
    which cost 10 ms a step for the 50k-book history table at 100M ratings.
    """
    present = tf.where(tf.not_equal(ids, 0))
    distinct, position = tf.unique(tf.gather_nd(ids, present))
    rows = tf.gather(embedding.embeddings, distinct)
    return tf.sparse.segment_mean(rows, position, present[:, 0], num_segments=tf.shape(ids)[0])


def _built(embedding):
    """The layer with its table created (_pooled reads the table without calling the layer)."""
    embedding.build(None)
    return embedding


def _dense_stack(hidden_layers, output_dim, name):
    layers = [tf.keras.layers.Dense(units, activation="relu", name=f"{name}_hidden_{i}")
              for i, units in enumerate(hidden_layers)]
    layers.append(tf.keras.layers.Dense(output_dim, name=f"{name}_output"))
    return layers


class QueryTower(tf.keras.Model):
    """User index -> user vector, from a user id embedding and the user's reading history.

    The history (up to `history_length` training books per user, stored in the tower
    as a table) is mean-pooled through a book embedding of its own: users with few
    ratings get a useful vector from what they read, like an item-item recommender.
    During training the positive book is masked out of its user's history, so the
    model cannot learn to recommend a user's own history back. Index -1 (a user
    unknown to the vocabulary) gets an untrained row and an empty history.

    Args:
      num_users: users are indices 0..num_users-1.
      embedding_dim: width of the embeddings and of the output vector.
      history: optional int32 [num_users, H] table of book index + 1 (0 = padding).
      num_books: size of the history embedding (needed with `history`).
      hidden_layers: ReLU layer widths before the final linear projection.
      use_user_id: whether a per-user id embedding is part of the vector (it can
        memorise heavy readers; the history alone generalises better on sparse data).
      history_dropout: share of the history books hidden at random in each training
        step (a regulariser: the tower learns to predict from part of the history).
      seed: seeds the history dropout; the mask of step n depends only on (seed, n),
        so a resumed run sees the same masks as an uninterrupted one.
    """

    def __init__(self, num_users, embedding_dim, history=None, num_books=None,
                 hidden_layers=(), use_user_id=True, history_dropout=0.0, seed=0,
                 name="query_tower"):
        super().__init__(name=name)
        self.num_users = num_users
        self.output_dim = embedding_dim
        self.history_dropout = float(history_dropout)
        self.seed = int(seed)
        self.user_embedding = tf.keras.layers.Embedding(
            num_users + 1, embedding_dim, name="user_embedding") if use_user_id else None
        self.history = None
        if history is not None and history.shape[1] > 0:
            padded = np.concatenate([history, np.zeros((1, history.shape[1]), np.int32)])
            self.history = tf.Variable(padded, trainable=False, name="history_ids")
            self.history_embedding = _built(tf.keras.layers.Embedding(
                num_books + 1, embedding_dim, name="history_book_embedding"))
            # Training steps taken, checkpointed with the tower: seeds the dropout masks.
            self.dropout_step = tf.Variable(0, dtype=tf.int64, trainable=False,
                                            name="history_dropout_step")
        self.dense = _dense_stack(hidden_layers, embedding_dim, "query")

    def call(self, user_index, exclude_book=None):
        index = tf.cast(tf.reshape(user_index, [-1]), tf.int32)
        index = tf.where(index < 0, self.num_users, index)
        parts = [self.user_embedding(index)] if self.user_embedding is not None else []
        if self.history is not None:
            ids = tf.gather(self.history, index)
            if exclude_book is not None:
                target = tf.cast(tf.reshape(exclude_book, [-1, 1]), tf.int32) + 1
                ids = tf.where(tf.equal(ids, target), 0, ids)
                if self.history_dropout > 0:
                    step = self.dropout_step.assign_add(1)
                    seed = tf.stack([tf.constant(self.seed, tf.int64), step])
                    keep = tf.random.stateless_uniform(tf.shape(ids), seed) >= self.history_dropout
                    ids = tf.where(keep, ids, 0)
            parts.append(_pooled(self.history_embedding, ids))
        x = tf.concat(parts, axis=1) if len(parts) > 1 else parts[0]
        for layer in self.dense:
            x = layer(x)
        return tf.math.l2_normalize(x, axis=1)


class CandidateTower(tf.keras.Model):
    """Book index -> book vector from the id embedding, title words, authors and genre.

    The per-book content ids (from `model.data.content_features`) are stored in the
    tower as non-trainable tables, so the tower needs only a book index as input and
    the exported SavedModel can embed any catalogue book on its own.

    Args:
      num_books: catalogue size; book indices are 0..num_books-1.
      content: dict with int32 arrays `title` [num_books, T], `authors`
        [num_books, A], `genre` [num_books] and their vocabulary `sizes`.
      embedding_dim: width of every embedding and of the output vector.
      hidden_layers: widths of ReLU layers applied to the concatenated features
        before the final linear projection; more capacity, slower steps.
    """

    def __init__(self, num_books, content, embedding_dim, hidden_layers=(),
                 name="candidate_tower"):
        super().__init__(name=name)
        sizes = content["sizes"]
        self.title_ids = tf.Variable(content["title"], trainable=False, name="title_ids")
        self.author_ids = tf.Variable(content["authors"], trainable=False, name="author_ids")
        self.genre_ids = tf.Variable(content["genre"], trainable=False, name="genre_ids")
        self.book_embedding = tf.keras.layers.Embedding(num_books, embedding_dim,
                                                        name="book_embedding")
        self.title_embedding = _built(tf.keras.layers.Embedding(
            sizes["title"], embedding_dim, name="title_word_embedding"))
        self.author_embedding = _built(tf.keras.layers.Embedding(
            sizes["authors"], embedding_dim, name="author_embedding"))
        self.genre_embedding = tf.keras.layers.Embedding(sizes["genre"], embedding_dim,
                                                         name="genre_embedding")
        self.dense = _dense_stack(hidden_layers, embedding_dim, "candidate")

    def call(self, book_index):
        index = tf.cast(tf.reshape(book_index, [-1]), tf.int32)
        title = _pooled(self.title_embedding, tf.gather(self.title_ids, index))
        authors = _pooled(self.author_embedding, tf.gather(self.author_ids, index))
        genre_ids = tf.gather(self.genre_ids, index)
        genre = self.genre_embedding(genre_ids) * tf.cast(genre_ids > 0, tf.float32)[:, None]
        x = tf.concat([self.book_embedding(index), title, authors, genre], axis=1)
        for layer in self.dense:
            x = layer(x)
        return tf.math.l2_normalize(x, axis=1)


def in_batch_softmax_loss(query, candidate, book_index, log_probability, temperature):
    """Summed softmax cross-entropy of each row's own book against all books of the batch.

    The loss of tfrs.tasks.Retrieval(temperature, remove_accidental_hits=True) with
    candidate_sampling_probability: logits query . candidate / temperature - log q(book),
    labels on the diagonal, and an accidental hit (row j's book is also row i's book,
    j != i) masked out. `_softmax_cross_entropy` computes it with its own gradient.
    """
    rows = tf.range(tf.shape(book_index)[0])
    accidental = tf.logical_and(tf.equal(book_index[:, None], book_index[None, :]),
                                tf.not_equal(rows[:, None], rows[None, :]))
    return _softmax_cross_entropy(query / temperature, candidate,
                                  tf.gather(log_probability, book_index), accidental)


@tf.custom_gradient
def _softmax_cross_entropy(query, candidate, correction, masked):
    """sum_i logsumexp_j(s_ij) - s_ii, s = query candidateᵀ - correction, masked s_ij very negative.

    Written out with its gradient, (softmax(s) - I) times the other tower, because the
    automatic one takes several more passes over the [B, B] logits, and because the
    candidate gradient is fastest as (queryᵀ G)ᵀ: TensorFlow's CPU matmul of a transposed
    [B, B] matrix (Gᵀ query) takes 1.6x as long. Together 10% of a training step.
    """
    scores = tf.matmul(query, candidate, transpose_b=True) - correction[None, :]
    scores = tf.where(masked, tf.constant(_MASKED_LOGIT, tf.float32), scores)
    top = tf.reduce_max(scores, axis=1)
    exp = tf.exp(scores - top[:, None])   # a masked logit's exp is exactly 0
    total = tf.reduce_sum(exp, axis=1)
    loss = tf.reduce_sum(tf.math.log(total) + top - tf.linalg.diag_part(scores))

    def gradient(upstream):
        softmax = exp * (upstream / total)[:, None]
        logits = tf.linalg.set_diag(softmax, tf.linalg.diag_part(softmax) - upstream)
        return (tf.matmul(logits, candidate),
                tf.transpose(tf.matmul(query, logits, transpose_a=True)), None, None)
    return loss, gradient


class TwoTowerModel(tfrs.Model):
    """Retrieval: in-batch softmax over books, corrected for sampling popularity.

    Each training batch uses the other books of the batch as negatives. Popular
    books appear as negatives more often than a uniform sample would have them, so
    their logits are corrected by log(sampling probability) (the logQ correction),
    and a book that is also the positive of another row is not used as a negative
    for it (accidental hits). Ranking metrics over the whole catalogue are computed
    by model.evaluate on the eval users, outside the training loop.

    Args:
      query_tower, candidate_tower: the two towers (normalised outputs).
      book_probability: [num_books] share of training interactions per book.
      temperature: softmax temperature on cosine scores; lower is sharper.
    """

    def __init__(self, query_tower, candidate_tower, book_probability, temperature=0.1):
        super().__init__()
        self.query_tower = query_tower
        self.candidate_tower = candidate_tower
        probability = np.clip(np.asarray(book_probability, np.float32), 1e-6, 1.0)
        self.log_probability = tf.constant(np.log(probability))
        self.temperature = float(temperature)

    def compute_loss(self, features, training=False):
        query = self.query_tower(features["user_index"],
                                 exclude_book=features["book_index"] if training else None)
        candidate = self.candidate_tower(features["book_index"])
        book_index = tf.reshape(tf.cast(features["book_index"], tf.int32), [-1])
        return in_batch_softmax_loss(query, candidate, book_index, self.log_probability,
                                     self.temperature)

    def book_embeddings(self, batch_size=8192, start=0, stop=None):
        """Yields (first book index, [n, dim] float32 array) for the whole catalogue."""
        num_books = int(self.candidate_tower.title_ids.shape[0])
        stop = num_books if stop is None else stop
        for first in range(start, stop, batch_size):
            index = tf.range(first, min(first + batch_size, stop), dtype=tf.int64)
            yield first, self.candidate_tower(index).numpy()
