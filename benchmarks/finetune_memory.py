"""Peak memory of finetuning ResNet50 at 224 px on 10,000 JPEGs: kerastl against plain Keras.

Both run in a child process whose resident set (the process and its children, from
/proc) is sampled every 0.2 s:

  kerastl   ``kerastl.finetune(DIR, backbone="resnet50", weights="none", image_size=224,
            batch_size=32)``, as ``kerastl finetune`` runs it (from scratch, so everything
            trains from the first step; XLA on, kerastl's default for ResNet50)
  keras     ``image_dataset_from_directory`` (224 px, batch 32) into
            ``keras.applications.ResNet50(weights=None)``, ``fit`` with Adam

Each child is stopped ``--train-seconds`` after its training loop starts (one epoch of
10,000 images at 224 px takes hours on a CPU); the report gives the peak before training
(data loading), the peak overall, the seconds each phase took and the training steps
finished inside the window (from the progress bar). The JPEGs are made once
in ``--data`` (smooth random shapes, 10 classes, ``--source-size`` px).

    python benchmarks/finetune_memory.py [--data /tmp/jpegs10k] [--count 10000]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

KERASTL_SCRIPT = """
import logging, sys, kerastl
logging.basicConfig(level=logging.INFO)
kerastl.finetune(sys.argv[1], backbone="resnet50", weights="none", image_size=224,
                 batch_size=32, runs_dir=sys.argv[2], name="memory", verbose=1)
"""
KERAS_SCRIPT = """
import sys, keras
data = keras.utils.image_dataset_from_directory(sys.argv[1], image_size=(224, 224),
                                                batch_size=32, label_mode="int")
model = keras.applications.ResNet50(weights=None, classes=10, input_shape=(224, 224, 3))
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
print("TRAINING", flush=True)
model.fit(data.map(lambda x, y: (keras.applications.resnet50.preprocess_input(x), y)),
          epochs=1, verbose=1)
"""


def make_jpegs(root: Path, count: int, size: int, classes: int = 10) -> None:
    import numpy as np
    from PIL import Image, ImageDraw

    if root.exists() and sum(1 for _ in root.rglob("*.jpg")) >= count:
        return
    rng = np.random.default_rng(0)
    for i in range(count):
        label = i % classes
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 255, 3)
        image = Image.new("RGB", (size, size), tuple(int(c) for c in base))
        draw = ImageDraw.Draw(image)
        for _ in range(4):
            x0, y0 = rng.integers(0, size // 2, 2)
            width, height = rng.integers(size // 8, size // 2, 2)
            x1, y1 = x0 + width, y0 + height
            colour = tuple(int(c) for c in rng.integers(0, 255, 3))
            (draw.ellipse if label % 2 else draw.rectangle)([x0, y0, x1, y1], fill=colour)
        image.save(folder / f"img_{i:05d}.jpg", quality=90)
    print(f"made {count} JPEGs in {root}", flush=True)


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and its descendants."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            with open(f"/proc/{current}/task/{current}/children") as children:
                stack.extend(int(c) for c in children.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def measure(command: list[str], marker: str, train_seconds: float) -> dict:
    """Run ``command``; peak RSS before the line containing ``marker`` and overall."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    state = {"training_at": None, "lines": [], "steps": 0}

    def read_output():
        for line in process.stdout:
            state["lines"].append(line.rstrip())
            if marker in line and state["training_at"] is None:
                state["training_at"] = time.perf_counter()
            step = re.search(r"\b(\d+)/\d+\b", line)  # the progress bar: one line a step
            if step and state["training_at"] is not None:
                state["steps"] = max(state["steps"], int(step.group(1)))

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    peak_loading = peak = 0
    while process.poll() is None:
        rss = tree_rss(process.pid)
        peak = max(peak, rss)
        if state["training_at"] is None:
            peak_loading = max(peak_loading, rss)
        elif time.perf_counter() - state["training_at"] > train_seconds:
            process.kill()
            break
        time.sleep(0.2)
    process.wait()
    reader.join(timeout=5)
    if state["training_at"] is None:
        raise SystemExit("training never started:\n" + "\n".join(state["lines"][-30:]))
    return {"loading_s": state["training_at"] - started, "peak_loading": peak_loading,
            "peak": peak, "trained_s": time.perf_counter() - state["training_at"],
            "steps": state["steps"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/tmp/jpegs10k")
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--source-size", type=int, default=320)
    parser.add_argument("--train-seconds", type=float, default=300)
    args = parser.parse_args()
    data = Path(args.data)
    make_jpegs(data, args.count, args.source_size)
    with tempfile.TemporaryDirectory() as runs:
        kerastl = measure([sys.executable, "-c", KERASTL_SCRIPT, str(data), runs],
                          "phase scratch", args.train_seconds)
        keras = measure([sys.executable, "-c", KERAS_SCRIPT, str(data)], "TRAINING",
                        args.train_seconds)
    gib = 2**30
    print(f"\n{platform.node()}, {os.cpu_count()} cores; {args.count} JPEGs of "
          f"{args.source_size} px, ResNet50 at 224 px from scratch, batch 32\n")
    print("| run | loading s | peak RSS loading | peak RSS overall | training s watched | "
          "steps done |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, result in (("kerastl", kerastl), ("plain Keras", keras)):
        print(f"| {name} | {result['loading_s']:.0f} | {result['peak_loading'] / gib:.2f} GiB "
              f"| {result['peak'] / gib:.2f} GiB | {result['trained_s']:.0f} | "
              f"{result['steps']} |")
    print(f"\nkerastl / Keras peak: {kerastl['peak'] / keras['peak']:.2f}x")


if __name__ == "__main__":
    main()
