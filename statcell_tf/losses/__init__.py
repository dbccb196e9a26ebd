"""Pure loss functions, one module per family of terms, each tested against hand values.

- `statcell_tf.losses.elbo`: Gaussian KL, reparameterisation, reconstruction error, β-ELBO.
- further modules per model (vector quantisation, adversarial, feature matching).
"""
