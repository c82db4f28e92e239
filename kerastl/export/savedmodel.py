"""SavedModels for TF Serving: encoded image bytes in, probabilities and labels out.

Signatures:
  ``serving_default``  images: tf.string [N] (JPEG, PNG, GIF, BMP) -> probabilities [N, C],
                       classes [N, k] (top-k indices), labels [N, k] (class names)
  ``predict_pixels``   pixels: float32 [N, H, W, 3] in 0-255 -> the same outputs

Decoding happens in the graph, the way training and ``kerastl predict`` decode with Pillow
(:mod:`kerastl.data.images`): 3 channels, first frame, a JPEG's EXIF orientation applied
(a phone photo is not served rotated), a PNG's transparency composited on white, a pixel cap
read from the file header before decoding, and an antialiased bilinear resize (the two paths
differ by rounding only). The SavedModel loads in a process that imports only TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

from kerastl._tf import tensorflow
from kerastl.data.images import MAX_PIXELS
from kerastl.serving import primary_output

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
        image = tf.case([
            (tf.equal(tf.strings.substr(data, 0, 4), b"\x89PNG"),
             lambda: _on_white(tf.io.decode_png(data, channels=4))),
            # Pillow's IDCT (ISLOW): the same pixels as training, not the fast default's
            (tf.io.is_jpeg(data), lambda: exif_transpose(
                tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE"),
                exif_orientation(data))),
        ], default=lambda: tf.io.decode_image(data, channels=3, expand_animations=False,
                                              dtype=tf.uint8), exclusive=True)
    image.set_shape([None, None, 3])
    return image


def _on_white(rgba):
    """RGBA -> RGB composited on white, as Pillow's ``paste`` with the alpha mask does."""
    tf = tensorflow()
    alpha = tf.cast(rgba[..., 3:], tf.float32) / 255.0
    rgb = tf.cast(rgba[..., :3], tf.float32) * alpha + 255.0 * (1.0 - alpha)
    return tf.cast(tf.round(rgb), tf.uint8)


#: EXIF orientation tag (0x0112, type SHORT, count 1) as an IFD entry begins, by byte order.
_ORIENTATION_ENTRY = {"big": (0x01, 0x12, 0, 3, 0, 0, 0, 1, 0),
                      "little": (0x12, 0x01, 3, 0, 1, 0, 0, 0)}


def exif_orientation(data):
    """The EXIF orientation (1-8) in a JPEG's first 64 KiB (where its APP1 segment lives), or 1.

    Looks for the orientation entry of an IFD in either byte order rather than walking the
    TIFF structure: the 8-9 byte pattern does not occur by chance in those bytes."""
    tf = tensorflow()
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(data, 0, 65536), tf.uint8), tf.int32)
    windows = tf.maximum(tf.shape(raw)[0] - 10, 0)

    def byte(offset):
        return raw[offset:offset + windows]

    found = []
    for order, value_at in (("big", 9), ("little", 8)):
        pattern = _ORIENTATION_ENTRY[order]
        match = tf.reduce_all(tf.stack([tf.equal(byte(i), b) for i, b in enumerate(pattern)]),
                              axis=0)
        value = byte(value_at)
        found.append(tf.boolean_mask(value, match & (value >= 1) & (value <= 8)))
    candidates = tf.concat(found, axis=0)
    return tf.cond(tf.size(candidates) > 0, lambda: candidates[0], lambda: tf.constant(1))


def exif_transpose(image, orientation):
    """Apply an EXIF orientation as Pillow's ``ImageOps.exif_transpose`` does."""
    tf = tensorflow()

    def transpose(x):
        return tf.transpose(x, [1, 0, 2])

    return tf.switch_case(orientation - 1, [
        lambda: image,                                        # 1: as stored
        lambda: tf.image.flip_left_right(image),              # 2
        lambda: tf.image.rot90(image, 2),                     # 3
        lambda: tf.image.flip_up_down(image),                 # 4
        lambda: transpose(image),                             # 5: transpose
        lambda: tf.image.rot90(image, 3),                     # 6: 90 degrees clockwise
        lambda: tf.image.rot90(transpose(image), 2),          # 7: transverse
        lambda: tf.image.rot90(image, 1),                     # 8: 90 degrees anticlockwise
    ])


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
