"""The house's arrows point one way: building blocks never import tasks, no two packages
import each other, and reading a model back or exporting it never imports a trainer."""

from __future__ import annotations

import ast
from pathlib import Path

import kerastl

ROOT = Path(kerastl.__file__).parent
TASKS = ("kerastl.transfer", "kerastl.gan", "kerastl.vae", "kerastl.edit", "kerastl.export",
         "kerastl.inference", "kerastl.quickstart")
BUILDING_BLOCKS = ("kerastl.data", "kerastl.metrics", "kerastl.serving", "kerastl.runs",
                   "kerastl.task",
                   "kerastl.blocks", "kerastl.latents", "kerastl._lazy",
                   "kerastl.errors", "kerastl.settings", "kerastl.colorspace",
                   "kerastl.backbones", "kerastl.layers", "kerastl.report",
                   "kerastl.distribute", "kerastl.engine", "kerastl.compute")
TRAINERS = ("kerastl.transfer.finetune", "kerastl.gan.train", "kerastl.edit.color_train",
            "kerastl.vae.train")


def _modules() -> dict[str, Path]:
    modules = {}
    for path in ROOT.rglob("*.py"):
        name = ".".join(("kerastl", *path.relative_to(ROOT).with_suffix("").parts))
        modules[name.removesuffix(".__init__")] = path
    return modules


MODULES = _modules()


def _imports(name: str) -> set[str]:
    """Every kerastl module ``name`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kerastl"):
            candidates = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        else:
            continue
        found.update(c for c in candidates if c in MODULES and c != name)
    return found


GRAPH = {name: _imports(name) for name in MODULES}


def _package(name: str) -> str:
    return ".".join(name.split(".")[:2])


def _reachable(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in GRAPH[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def test_no_two_packages_import_each_other():
    edges = {(_package(a), _package(b)) for a, targets in GRAPH.items() for b in targets
             if _package(a) != _package(b)}
    assert sorted((a, b) for a, b in edges if (b, a) in edges) == []


def test_building_blocks_never_import_a_task():
    wrong = [(a, b) for a in MODULES if a.startswith(BUILDING_BLOCKS)
             for b in GRAPH[a] if b.startswith(TASKS)]
    assert wrong == []


def test_reading_a_model_back_or_exporting_it_imports_no_trainer():
    for start in ("kerastl.serving", "kerastl.inference", "kerastl.export",
                  "kerastl.export.exporter"):
        assert not _reachable(start) & set(TRAINERS), start


def test_the_private_keras_and_litert_apis_kerastl_uses_still_behave():
    """kerastl calls a few private APIs; a Keras or LiteRT upgrade that changes them must fail
    here, loudly, not silently in training (each line names where kerastl uses it)."""
    import keras
    import numpy as np

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="a"),
                              keras.layers.BatchNormalization(name="bn")])
    # distribute.synchronize_batchnorm and export.tflite walk nested layers this way
    flattened = [layer.name for layer in model._flatten_layers(include_self=False)]
    assert flattened[-2:] == ["a", "bn"] and "sequential" not in flattened
    # transfer.rates.GroupedAdam finds a variable's slot this way
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    assert [optimizer._get_variable_index(v) for v in model.trainable_variables] == [0, 1, 2, 3]
    # loop.OwnLoop builds metrics, losses and optimizer before tracing this way (under a
    # strategy, where it is called)
    import tensorflow as tf

    with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        model.compile("adam", "mse")
    assert model._distribute_strategy is not None
    model._maybe_symbolic_build(data_batch=(np.zeros((2, 4), np.float32),
                                            np.zeros((2, 3), np.float32)))
    assert model.optimizer.built


def test_the_private_litert_api_kerastl_uses_still_behaves(tmp_path):
    """serving.TFLiteRunner counts XNNPACK partitions with ``_get_ops_details``."""
    import keras
    import numpy as np

    from kerastl.export.tflite import convert
    from kerastl.serving import TFLiteRunner

    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3),
                              keras.layers.GlobalAveragePooling2D()])
    (tmp_path / "m.tflite").write_bytes(convert(model, "none"))
    runner = TFLiteRunner(str(tmp_path / "m.tflite"))
    runner(np.zeros((1, 8, 8, 3), np.float32))
    details = runner.interpreter._get_ops_details()
    assert details and all("op_name" in op for op in details)
    assert runner.delegate_partitions >= 1
