"""One module per paper model; every model subclasses `statcell_tf.models.base.TrainableModel`."""
