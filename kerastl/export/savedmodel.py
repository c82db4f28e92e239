"""SavedModels for TF Serving: encoded image bytes in, probabilities and labels out.

Signatures:
  ``serving_default``  images: tf.string [N] (JPEG, PNG, GIF, BMP) -> probabilities [N, C],
                       classes [N, k] (top-k indices), labels [N, k] (class names)
  ``predict_pixels``   pixels: float32 [N, H, W, 3] in 0-255 -> the same outputs

Decoding happens in the graph: 3 channels, first frame, a pixel cap read from the
file header before decoding, and an antialiased bilinear resize (Pillow's resize
in ``kerastl predict`` is antialiased too; the two differ by rounding only).
The SavedModel loads in a process that imports only TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

from kerastl._tf import tensorflow
from kerastl.data.images import MAX_PIXELS
from kerastl.transfer.model import primary_output

SERVING_INPUT = "images"
PIXELS_INPUT = "pixels"


def encoded_pixel_count(data):
    """Width x height from a JPEG, PNG, GIF or BMP header, without decoding (0 if unknown)."""
    tf = tensorflow()

    def from_raw(offset, dtype, little_endian):
        size = tf.io.decode_raw(tf.strings.substr(data, offset, 8 if dtype == tf.int32 else 4),
                                dtype, little_endian=little_endian)
        size = tf.abs(tf.cast(size, tf.int64))
        return size[0] * size[1]

    def jpeg():
        shape = tf.image.extract_jpeg_shape(data, output_type=tf.int32)
        return tf.cast(shape[0], tf.int64) * tf.cast(shape[1], tf.int64)

    head = tf.strings.substr(data, 0, 4)
    return tf.case([
        (tf.io.is_jpeg(data), jpeg),
        (tf.equal(head, b"\x89PNG"), lambda: from_raw(16, tf.int32, False)),
        (tf.equal(tf.strings.substr(head, 0, 3), b"GIF"), lambda: from_raw(6, tf.uint16, True)),
        (tf.equal(tf.strings.substr(head, 0, 2), b"BM"), lambda: from_raw(18, tf.int32, True)),
    ], default=lambda: tf.constant(0, tf.int64), exclusive=True)


def decode_image(data, max_pixels: int = MAX_PIXELS):
    """One encoded image -> uint8 (H, W, 3), refusing images over ``max_pixels`` unread."""
    tf = tensorflow()
    check = tf.debugging.assert_less_equal(
        encoded_pixel_count(data), tf.constant(max_pixels, tf.int64),
        message=f"image has more than {max_pixels} pixels")
    with tf.control_dependencies([check]):
        image = tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)
    image.set_shape([None, None, 3])
    return image


def decode_and_resize(data, size: tuple[int, int], max_pixels: int = MAX_PIXELS):
    """One encoded image -> float32 (size, 3) in 0-255 (antialiased bilinear, as Pillow)."""
    tf = tensorflow()
    return tf.image.resize(decode_image(data, max_pixels), size, method="bilinear",
                           antialias=True)


def build_archive(model, class_names: list[str], top_k: int = 5, max_pixels: int = MAX_PIXELS):
    """A ``keras.export.ExportArchive`` with both signatures over ``model``."""
    tf = tensorflow()
    import keras

    height, width = (int(d) for d in model.input_shape[1:3])
    k = min(top_k, len(class_names))
    names = list(class_names)

    def outputs(pixels):
        probabilities = primary_output(model(pixels, training=False))
        top = tf.math.top_k(probabilities, k=k)
        return {"probabilities": probabilities, "classes": top.indices,
                "labels": tf.gather(tf.constant(names), top.indices)}

    def serve_images(images):
        pixels = tf.map_fn(lambda data: decode_and_resize(data, (height, width), max_pixels),
                           images, fn_output_signature=tf.TensorSpec((height, width, 3),
                                                                     tf.float32))
        return outputs(pixels)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve_images,
                         input_signature=[tf.TensorSpec([None], tf.string, name=SERVING_INPUT)])
    archive.add_endpoint("predict_pixels", outputs, input_signature=[
        tf.TensorSpec([None, height, width, 3], tf.float32, name=PIXELS_INPUT)])
    return archive


def write_savedmodel(model, class_names: list[str], folder: Path, model_name: str,
                     warmup_image: bytes) -> None:
    """Write the SavedModel, its labels and a TF Serving warm-up request into ``folder``."""
    build_archive(model, class_names).write_out(str(folder), verbose=False)
    (folder / "assets.extra").mkdir(exist_ok=True)
    write_warmup(folder / "assets.extra" / "tf_serving_warmup_requests", model_name,
                 warmup_image)


def write_warmup(path: Path, model_name: str, encoded_image: bytes) -> None:
    """One ``PredictionLog`` with a real image, which TF Serving replays at load."""
    tf = tensorflow()
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = "serving_default"
    request.inputs[SERVING_INPUT].CopyFrom(tf.make_tensor_proto([encoded_image], dtype=tf.string))
    log = prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request))
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(log.SerializeToString())
