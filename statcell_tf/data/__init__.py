"""Data: readers per format, synthetic cells, preprocessing, grouped splits and tf.data pipelines."""
