"""Each paper's SavedModel used the way other TensorFlow tools use one, in a process where
statcell_tf cannot be imported: under `keras.layers.TFSMLayer` in a new Keras model (frozen
under a new head, and fine-tuned), through a ``serving_default`` signature that TF Serving's
REST row format accepts, and converted to TFLite (each encoder endpoint), with no warning about
unsaved custom gradients at load."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.training import tiny_papers

from statcell_tf.training.export import export_saved_model  # noqa: E402

OUTSIDE = r'''
import json, sys
import numpy as np
sys.modules["statcell_tf"] = None  # importing it would fail: the SavedModel must stand alone
import tensorflow as tf
import keras

path = sys.argv[1]
report = {}
loaded = tf.saved_model.load(path)
serving = loaded.signatures["serving_default"]
inputs = serving.structured_input_signature[1]  # name -> TensorSpec
outputs = serving.structured_outputs            # name -> TensorSpec
report["serving_inputs"] = {k: [s.shape.as_list(), s.dtype.name] for k, s in inputs.items()}
report["serving_outputs"] = sorted(outputs)
rng = np.random.default_rng(0)
batch = {k: rng.random([3] + s.shape.as_list()[1:]).astype(s.dtype.as_numpy_dtype) for k, s in inputs.items()}

# TF Serving REST, row format: {"instances": [...]}, one instance per batch row (a bare value when
# the signature has one input, else an object keyed by input name) -> {"predictions": [...]}.
names = list(inputs)
instances = [batch[names[0]][i].tolist() if len(names) == 1 else {k: batch[k][i].tolist() for k in names}
             for i in range(3)]
request = json.loads(json.dumps({"instances": instances}))["instances"]
columns = {k: np.asarray([r if len(names) == 1 else r[k] for r in request], inputs[k].dtype.as_numpy_dtype)
           for k in names}
result = {k: v.numpy() for k, v in serving(**{k: tf.constant(v) for k, v in columns.items()}).items()}
report["rows_batched"] = all(v.shape[0] == 3 for v in result.values())
single = len(result) == 1
predictions = [next(iter(result.values()))[i].tolist() if single else {k: v[i].tolist() for k, v in result.items()}
               for i in range(3)]
report["response_rows"] = len(json.loads(json.dumps({"predictions": predictions}))["predictions"])
direct = getattr(loaded, sys.argv[2])(*[tf.constant(batch[k]) for k in names])
direct = direct if isinstance(direct, dict) else {sys.argv[2]: direct}
report["serving_matches_endpoint"] = float(max(np.abs(result[k] - direct[k].numpy()).max() for k in result))

# TFSMLayer under a new head: frozen, then fine-tuned.
(name, spec), = inputs.items()
x = rng.random([8] + spec.shape.as_list()[1:]).astype("float32")
y = np.arange(8) % 3
for trainable in (False, True):
    layer = keras.layers.TFSMLayer(path, call_endpoint="serving_default", trainable=trainable)
    image = keras.Input(spec.shape[1:])
    features = layer(image)[sorted(outputs)[0]]
    model = keras.Model(image, keras.layers.Dense(3)(keras.layers.Flatten()(features)))
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    # Keras 3.15: built inside `fit`, the optimizer names its slots after TFSMLayer's variables,
    # whose names keep TensorFlow's ":0" (not a valid scope name in a graph); build it eagerly.
    model.optimizer.build(model.trainable_variables)
    before = [w.numpy().copy() for w in layer.weights]
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0).history
    changed = sum(not np.array_equal(b, w.numpy()) for b, w in zip(before, layer.weights))
    report["finetuned" if trainable else "frozen"] = {
        "losses": history["loss"], "encoder_weights": len(layer.weights),
        "encoder_weights_changed": changed, "head_trainable": len(model.trainable_weights) - len(layer.trainable_weights),
    }

# TFLite: every encoder endpoint, run by the TFLite interpreter, against the SavedModel.
report["tflite"] = {}
for endpoint in ["serving_default"] + sys.argv[3:]:
    converter = tf.lite.TFLiteConverter.from_saved_model(path, signature_keys=[endpoint])
    try:
        flatbuffer, select = converter.convert(), False
    except Exception:  # ops TFLite lacks (e.g. float64): TensorFlow kernels through the Flex delegate
        converter = tf.lite.TFLiteConverter.from_saved_model(path, signature_keys=[endpoint])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
        flatbuffer, select = converter.convert(), True
    report["tflite"][endpoint] = {"bytes": len(flatbuffer), "select_tf_ops": select}
    if select:  # the pip package's interpreter has no Flex delegate: converted, not run here
        continue
    interpreter = tf.lite.Interpreter(model_content=flatbuffer)
    runner = interpreter.get_signature_runner(endpoint)
    signature = loaded.signatures[endpoint]
    feeds = {k: rng.random([2] + s.shape.as_list()[1:]).astype(s.dtype.as_numpy_dtype)
             for k, s in signature.structured_input_signature[1].items()}
    lite = runner(**feeds)  # the runner resizes the inputs to the batch
    full = signature(**{k: tf.constant(v) for k, v in feeds.items()})
    report["tflite"][endpoint]["max_abs_diff"] = float(max(np.abs(lite[k] - full[k].numpy()).max() for k in full))
print("REPORT " + json.dumps(report))
'''

# paper -> (builder options, the endpoints that encode images, whether TFLite's own ops suffice:
# Integrated Cell's input normalisation computes in float64, which TFLite has no kernels for; it
# converts with TensorFlow ops (Flex), which the pip package's interpreter cannot run)
ENCODERS = {
    "cytoself": ({}, ["embed_global", "embed_local"], True),
    "statcell": ({"role": "reference"}, ["encode"], True),
    "integrated_cell": ({}, ["encode"], False),
    "vaeplus": ({}, ["encode"], True),
}


@pytest.mark.slow
@pytest.mark.parametrize("paper", sorted(ENCODERS))
def test_saved_model_trains_serves_and_converts_outside(paper, tmp_path):
    options, encoders, builtins_only = ENCODERS[paper]
    model, batch = tiny_papers.build(paper, **options)
    model.prepare(batch)
    path = export_saved_model(model, tmp_path / "saved_model")
    first = next(iter(model.export_endpoints()))
    env = {"TF_CPP_MIN_LOG_LEVEL": "0", "CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", OUTSIDE, str(path), first, *encoders], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "unsaved custom gradients" not in done.stderr
    report = json.loads(done.stdout.split("REPORT ", 1)[1])

    # serving_default: named inputs and outputs, batched rows in and out, the first endpoint's values.
    assert all(shape[0] is None for shape, _ in report["serving_inputs"].values())
    assert report["rows_batched"] and report["response_rows"] == 3
    assert report["serving_matches_endpoint"] < 1e-5
    # Frozen: only the head trains; fine-tuned: the encoder's weights train too.
    frozen, tuned = report["frozen"], report["finetuned"]
    assert np.isfinite(frozen["losses"] + tuned["losses"]).all()
    assert frozen["encoder_weights_changed"] == 0 and frozen["head_trainable"] == 2
    assert tuned["encoder_weights_changed"] > 0
    # TFLite: every encoder endpoint converts and agrees with the SavedModel.
    assert set(report["tflite"]) == {"serving_default", *encoders}
    for endpoint, result in report["tflite"].items():
        assert result["select_tf_ops"] == (not builtins_only), (endpoint, result)
        if builtins_only:  # run by the TFLite interpreter
            assert result["max_abs_diff"] < 1e-4, (endpoint, result)
