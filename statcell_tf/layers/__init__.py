"""Reusable Keras layers, one public class per module.

- `vector_quantizer.VectorQuantizer`: VQ-VAE codebook with split quantisation (cytoself).
- `mbconv.MBConvBlock`: EfficientNet mobile inverted bottleneck with squeeze-excitation.
- `efficientnet_encoder.EfficientNetEncoder`: stem + MBConv stages + 1×1 head (cytoself encoders).
- `resnet_decoder.ResNetDecoder`: residual stacks with bilinear upsampling (cytoself decoders).

Import from the modules (``from statcell_tf.layers.vector_quantizer import VectorQuantizer``);
this package does not import them eagerly, so other layer modules stay independent.
"""
