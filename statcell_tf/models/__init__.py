"""One module per paper model; every model subclasses `statcell_tf.training.model.TrainableModel`."""
