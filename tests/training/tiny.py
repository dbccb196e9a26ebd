"""A tiny autoencoder + classifier used to test the runtime (not a paper model).

Also the multi-worker test's worker: ``python tiny.py OUT_DIR [EPOCHS --resume]`` trains a
few steps under MultiWorkerMirroredStrategy (cluster from TF_CONFIG) and saves the final
weights (``weights_<index>.npz``, or ``weights_<index>_resumed.npz`` when resuming).
"""

import sys

import numpy as np

from statcell_tf.backend import keras, tf
from statcell_tf.training.model import TrainableModel


@keras.saving.register_keras_serializable(package="statcell_tf_tests")
class TinyModel(TrainableModel):
    def __init__(self, num_classes=3, filters=4, batch_norm=False, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.filters = filters
        self.batch_norm = batch_norm
        self.encoder = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")
        self.norm = keras.layers.BatchNormalization() if batch_norm else None
        self.decoder = keras.layers.Conv2DTranspose(1, 3, strides=2, padding="same")
        self.dropout = keras.layers.Dropout(0.2, seed=1)
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.head = keras.layers.Dense(num_classes)

    def call(self, image, training=False):
        z = self.encoder(image)
        if self.norm is not None:
            z = self.norm(z, training=training)
        return self.decoder(z), self.head(self.dropout(self.pool(z), training=training))

    def compute_losses(self, batch, training=False):
        recon, logits = self(batch["image"], training=training)
        mse = keras.ops.mean(keras.ops.square(recon - batch["image"]))
        ce = keras.ops.mean(
            keras.losses.sparse_categorical_crossentropy(batch["label"], logits, from_logits=True)
        )
        return {"loss": mse + ce, "reconstruction": mse, "classification": ce}

    def export_endpoints(self):
        spec = [tf.TensorSpec([None, 8, 8, 1], tf.float32)]
        return {"reconstruct": (lambda x: self(x)[0], spec), "classify": (lambda x: self(x)[1], spec)}

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "filters": self.filters,
                "batch_norm": self.batch_norm}


def tiny_data(n=64, seed=0):
    """Images whose mean brightness encodes one of 3 classes."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n).astype("int32")
    images = (rng.random((n, 8, 8, 1)) * 0.2 + labels[:, None, None, None] * 0.4).astype("float32")
    return images, labels


def tiny_dataset(n=64, batch_size=16, seed=0, repeat=False, shuffle=False):
    images, labels = tiny_data(n, seed)
    ds = tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})
    if shuffle:  # a new order per iterator (epoch), like the real pipelines
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=True)
    if repeat:
        ds = ds.repeat()
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def _worker(out_dir, epochs=2, resume=False):
    from statcell_tf.errors import UserError
    from statcell_tf.training import runtime, trainer

    strategy = runtime.select_strategy("multi-worker")  # first: configures the collectives
    runtime.set_seed(0)
    index = runtime.json.loads(runtime.os.environ["TF_CONFIG"])["task"]["index"]
    with strategy.scope():
        # Batch norm: its moving statistics (updated per worker) must end identical too.
        model = TinyModel(learning_rate=1e-2, batch_norm=True)
        model(tiny_data(2)[0])
    if not resume:
        np.savez(f"{out_dir}_initial_{index}.npz", *[v.numpy() for v in model.weights])
    settings = trainer.TrainSettings(epochs=epochs, steps_per_epoch=3, monitor="loss", verbose=0)
    # Each worker reads different images: identical final weights prove the all-reduce.
    dataset = tiny_dataset(seed=index, repeat=True)
    try:
        trainer.fit(model, dataset, None, out_dir, settings, strategy=strategy, resume=resume)
    except UserError as error:
        print(f"error: {error}", flush=True)
        sys.exit(2)
    name = f"weights_{index}_resumed" if resume else f"weights_{index}"
    np.savez(f"{out_dir}/{name}.npz", *[v.numpy() for v in model.weights])
    print(f"worker {index} done", flush=True)


if __name__ == "__main__":
    _worker(sys.argv[1], *([int(sys.argv[2]), True] if "--resume" in sys.argv else []))
