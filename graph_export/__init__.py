"""Book-neighbour graph: all-pairs top-k Beam job, GEXF/JSON writers, ego graphs."""
import pipeline_common  # noqa: F401  (selects legacy Keras before TensorFlow loads)
