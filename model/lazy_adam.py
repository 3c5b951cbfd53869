"""Adam that updates only the embedding rows a batch touched (the "lazy" Adam of recommenders).

Keras's Adam turns a sparse (IndexedSlices) gradient into dense work: every step
decays the moments of every row of every embedding table and moves every row.
With 50k books the book, history and content tables hold ~13M weights, and those
dense passes cost more than the rest of a training step. Here a sparse gradient
updates the moments and weights of its rows only (rows not in the batch keep
their moments and do not move); dense gradients get the usual Adam update.
Row-wise TensorFlow kernels cost ~100-250 ns a row here, so each step touches the
rows as few times as it can: summing repeated rows is skipped when they are already
distinct (as model.towers._pooled's gradients are), and the weights are moved by a
gather and a scatter_update, faster on CPU than one scatter_sub.
"""
import tensorflow as tf


class LazyAdam(tf.keras.optimizers.Adam):
    """tf.keras Adam with row-wise (lazy) updates for sparse gradients."""

    def _deduplicate_sparse_grad(self, grads):
        """Sums the slices of repeated rows, only where a gradient has repeated rows."""
        return [self._distinct_rows(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]

    @staticmethod
    def _distinct_rows(gradient):
        distinct, position = tf.unique(gradient.indices)   # distinct rows keep their order
        values = tf.cond(
            tf.equal(tf.size(distinct), tf.size(gradient.indices)),
            lambda: gradient.values,
            lambda: tf.math.unsorted_segment_sum(gradient.values, position, tf.size(distinct)))
        return tf.IndexedSlices(values, distinct, gradient.dense_shape)

    def update_step(self, gradient, variable):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        alpha = (tf.cast(self.learning_rate, dtype) * tf.sqrt(1 - tf.pow(beta_2, step))
                 / (1 - tf.pow(beta_1, step)))
        key = self._var_key(variable)
        m = self._momentums[self._index_dict[key]]
        v = self._velocities[self._index_dict[key]]
        # apply_gradients has already summed the slices of a row that appears several
        # times in the batch (_deduplicate_sparse_grad): the rows are distinct.
        rows, values = gradient.indices, gradient.values
        m_rows = tf.gather(m, rows) * beta_1 + values * (1 - beta_1)
        v_rows = tf.gather(v, rows) * beta_2 + tf.square(values) * (1 - beta_2)
        m.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.scatter_update(tf.IndexedSlices(v_rows, rows))
        move = alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon)
        variable.scatter_update(tf.IndexedSlices(tf.gather(variable, rows) - move, rows))
