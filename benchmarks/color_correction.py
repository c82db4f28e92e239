"""Learned colour correction against the classical baseline, on real photographs.

Photos: the colour photographs scikit-image ships in its PyPI wheel
(``skimage/data``: astronaut, chelsea, the left view of stereo_motorcycle,
hubble_deep_field, immunohistochemistry, retina for training; coffee and rocket
held out), so the model never saw the scenes it is scored on.

Each test crop (full resolution, ``--test-crop`` px) is degraded at random within
the adjustments' ranges; the learned model (it sees a resized copy; the
parameters are applied at full resolution) and the classical baseline (gray-world
white balance then Pillow autocontrast) correct it. Reported: PSNR and mean
CIEDE2000 against the clean crop, and the CIEDE2000 reduction.

More training scenes with ``--photos FOLDER`` (repeatable): every colour photo
in the folder (grayscale ones skipped), shrunk to at most ``--max-side`` px
first. Two Debian packages ship real photographs: ``mate-backgrounds``
(``/usr/share/backgrounds/mate/nature``: 12 nature photos) and ``opencv-doc``
(``/usr/share/doc/opencv-doc/examples/data``: fruits, baboon, butterfly, street
and indoor scenes, among logos and charts; pass ``--photos-from opencv`` to take
only its photographs). ``--photos-from`` also takes ``scratch`` (the 51 photographs among
Scratch 1.4's stage backgrounds: streets, buildings, landscapes, sports fields, rooms; the
drawings left out) and ``plasma`` (the 9 colour photographs among
``plasma-workspace-wallpapers``), and repeats.

    pip install scikit-image   # only for the photos
    python benchmarks/color_correction.py [--backbone mobilenetv3small] [--epochs 12]
    apt-get install -y mate-backgrounds opencv-doc
    python benchmarks/color_correction.py --backbone kerastl_small --image-size 64 \\
        --photos /usr/share/backgrounds/mate/nature --photos-from opencv --train-crops 20

More held-out scenes with ``--held-out-from lomiri``: the 15 photographs (landscapes,
animals, still lifes) among ``lomiri-wallpapers-16.04`` and ``lomiri-wallpapers-20.04``
(``apt-get install -y lomiri-wallpapers-16.04 lomiri-wallpapers-20.04``), shrunk like
``--photos``, scored beside coffee and rocket. The test crops are drawn from their own
random generator, so every training setting is scored on the same crops.

Last, it prints what each adjustment costs: the CIEDE2000 left after undoing the true
parameters (what clipping destroyed: the floor of any corrector), then with one adjustment
at a time taken from the model or left uncorrected. ``--score RUN`` re-scores a trained run.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

TRAIN_PHOTOS = ("astronaut", "chelsea", "stereo_motorcycle", "hubble_deep_field",
                "immunohistochemistry", "retina")
TEST_PHOTOS = ("coffee", "rocket")
OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
OPENCV_PHOTOS = ("aero1.jpg", "aero3.jpg", "aloeL.jpg", "apple.jpg", "baboon.jpg",
                 "board.jpg", "butterfly.jpg", "chicky_512.png",
                 "ela_original.jpg", "fruits.jpg", "graf1.png", "home.jpg", "leuvenA.jpg",
                 "messi5.jpg", "orange.jpg", "rubberwhale1.png", "smarties.png",
                 "squirrel_cls.jpg", "stuff.jpg")
SCRATCH_DATA = Path("/usr/share/scratch/Media/Backgrounds")
SCRATCH_PHOTOS = tuple(
    [f"Indoors/{n}.jpg" for n in ("clothing-store", "hall", "kitchen", "the-movies-inside")]
    + [f"Nature/{n}.jpg" for n in (
        "beach-malibu", "canyon", "flower-bed", "forest", "garden-rock", "grand-canyon",
        "gravel-desert", "hill", "lake", "pathway", "tree", "water-and-rocks", "wave")]
    + [f"Outdoors/{n}.jpg" for n in (
        "all-sports-mural", "atom-playground", "bench-with-view", "berkeley-mural", "boardwalk",
        "brick-wall-and-stairs", "brick-wall1", "brick-wall2", "building-at-mit",
        "building-fireproof", "castle", "city-with-water", "city-with-water2", "driveway",
        "hallway_outdoors", "hay_field", "houses", "mansion", "mural-faro", "parking-ramp",
        "pool", "route66", "silos", "the-movies", "train-tracks1", "train-tracks2", "village",
        "wooden-house")]
    + [f"Sports/{n}.jpg" for n in (
        "baseball-field", "basketball-court1-a", "basketball-court1-b", "football-field",
        "playing-field", "tennis-backboard")])
PLASMA_DATA = Path("/usr/share/wallpapers")
PLASMA_PHOTOS = ("BytheWater", "ColorfulCups", "DarkestHour", "EveningGlow",
                 "FallenLeaf", "Kite", "OneStandsOut", "Path", "summer_1am")
LOMIRI_DATA = Path("/usr/share/backgrounds")
LOMIRI_PHOTOS = ("Bridge_by_Sander_Klootwijk.jpg", "Dragonfly_by_Bolly.jpg",
                 "Infinite-Sea_by_Aury88.jpg", "Kleiber_by_Lukas_Baubkus.jpg",
                 "Picture_0B_by_freespace.jpg", "Picture_1A_by_freespace.jpg",
                 "Wine_by_Jakkub_Mede.jpg", "aitzgorri_by_Aitzol_Berasategi.jpg",
                 "free_by_Peter_Nerlich.jpg", "friends_by_Aitzol_Berasategi.jpg",
                 "greentock_by_Peter_Nerlich.jpg", "life_by_Aitzol_Berasategi.jpg",
                 "picosdeeuropa_by_Aitzol_Berasategi.jpg",
                 "seeding_by_Clements_Engelhardt.jpg", "sunset_by_Aitzol_Berasategi.jpg")


def photo(name: str) -> np.ndarray:
    try:
        from skimage import data
    except ImportError:
        raise SystemExit("the photos come from scikit-image: pip install scikit-image") from None
    image = getattr(data, name)()
    image = image[0] if isinstance(image, tuple) else image  # stereo_motorcycle: the left view
    return np.asarray(image)[..., :3].astype(np.uint8)


def folder_photos(files: list[Path], max_side: int) -> dict[str, np.ndarray]:
    """The colour photos among ``files`` by name, shrunk to at most ``max_side`` px."""
    photos = {}
    for path in files:
        image = Image.open(path).convert("RGB")
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        pixels = np.asarray(image)
        colour = np.abs(pixels.astype(np.int16) - pixels[..., :1]).mean() > 2
        if colour and min(pixels.shape[:2]) >= 96:  # the smallest training crop
            photos[photo_name(path)] = pixels
    return photos


def photo_name(path: Path) -> str:
    """The file's stem; a KDE wallpaper's files are named by resolution, so its folder's."""
    if path.parent.parts[-2:] == ("contents", "images"):
        return path.parents[2].name
    return path.stem


def largest_image(folder: Path) -> Path:
    return max(folder.iterdir(), key=lambda path: path.stat().st_size)


# --photos-from NAME: (Debian package, where it puts its files, the photographs among them)
PHOTO_SETS = {
    "opencv": ("opencv-doc", OPENCV_DATA,
               lambda: [OPENCV_DATA / name for name in OPENCV_PHOTOS]),
    "scratch": ("scratch", SCRATCH_DATA,
                lambda: [SCRATCH_DATA / name for name in SCRATCH_PHOTOS]),
    "plasma": ("plasma-workspace-wallpapers", PLASMA_DATA,
               lambda: [largest_image(PLASMA_DATA / name / "contents" / "images")
                        for name in PLASMA_PHOTOS]),
}


def extra_photos(args) -> dict[str, np.ndarray]:
    files = [p for folder in args.photos or [] for p in sorted(Path(folder).iterdir())
             if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    for name in args.photos_from or []:
        package, data, photos = PHOTO_SETS[name]
        if not data.exists():
            raise SystemExit(f"--photos-from {name}: apt-get install -y {package}")
        files += photos()
    return folder_photos(files, args.max_side)


def held_out_photos(args) -> dict[str, np.ndarray]:
    """Scenes the model never trains on: coffee and rocket, and lomiri's if asked."""
    photos = {name: photo(name) for name in TEST_PHOTOS}
    if args.held_out_from == "lomiri":
        if not LOMIRI_DATA.joinpath(LOMIRI_PHOTOS[0]).exists():
            raise SystemExit("--held-out-from lomiri: apt-get install -y "
                             "lomiri-wallpapers-16.04 lomiri-wallpapers-20.04")
        photos |= folder_photos([LOMIRI_DATA / name for name in LOMIRI_PHOTOS], args.max_side)
    return photos


def random_crops(image: np.ndarray, count: int, low: int, high: int,
                 rng: np.random.Generator) -> list[np.ndarray]:
    crops = []
    for _ in range(count):
        side = int(rng.integers(low, min(high, *image.shape[:2]) + 1))
        y = int(rng.integers(0, image.shape[0] - side + 1))
        x = int(rng.integers(0, image.shape[1] - side + 1))
        crops.append(image[y:y + side, x:x + side])
    return crops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="mobilenetv3small")
    parser.add_argument("--weights", default="none")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--train-crops", type=int, default=60, help="per training photo")
    parser.add_argument("--test-crops", type=int, default=30, help="per test photo")
    parser.add_argument("--test-crop", type=int, default=256)
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--frozen-epochs", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--finetune-lr", type=float,
                        help="learning rate once the backbone is unfrozen (default: --lr)")
    parser.add_argument("--image-loss-weight", type=float, default=1.0,
                        help="weight of the corrected image's Lab L1 against the parameters'")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", help="keep the run here (default: a temporary folder)")
    parser.add_argument("--photos", action="append", help="a folder of more training photos")
    parser.add_argument("--photos-from", action="append", choices=sorted(PHOTO_SETS),
                        help="a Debian package's photographs as more training photos "
                             "(repeatable)")
    parser.add_argument("--held-out-from", choices=["lomiri"],
                        help="lomiri-wallpapers' 15 photographs as more held-out scenes")
    parser.add_argument("--max-side", type=int, default=640,
                        help="shrink --photos to at most this many px first")
    parser.add_argument("--score", metavar="RUN",
                        help="score this trained run's model instead of training one")
    args = parser.parse_args()

    from kerastl.edit.color_apply import load_color_model
    from kerastl.edit.color_eval import evaluate_color
    from kerastl.report import save_image_grid

    started = time.time()
    with tempfile.TemporaryDirectory() as scratch:
        if args.score:
            model, run_dir = load_color_model(args.score), Path(args.score)
            trained = f"model of {args.score}"
        else:
            model, run_dir, trained = train_on_photos(args, Path(scratch))
        held_out = held_out_photos(args)
        test_rng = np.random.default_rng(args.seed + 1)
        test = [crop for image in held_out.values()
                for crop in random_crops(image, args.test_crops, args.test_crop,
                                         args.test_crop, test_rng)]
        report = evaluate_color(model, test, seed=args.seed + 100)
        grid = run_dir / "plots" / "test_photos.png"
        save_image_grid(report.grid_rows(6), grid, cell=160, titles=report.grid_titles)

    summary = report.summary
    print(f"\n{len(test)} held-out crops ({args.test_crop} px) of {len(held_out)} scenes "
          f"({', '.join(held_out)}); "
          f"{trained}; {time.time() - started:.0f} s on {platform.machine()} "
          f"({os.cpu_count()} cores)")
    print(f"{'version':10} {'PSNR dB':>8} {'CIEDE2000':>10} {'reduction':>10}")
    for version in ("degraded", "baseline", "corrected"):
        row = summary[version]
        reduction = row.get("ciede2000_reduction")
        print(f"{version:10} {row['psnr']:8.2f} {row['ciede2000']:10.2f} "
              f"{'' if reduction is None else f'{reduction:10.1%}'}")
    ratio = summary["baseline"]["ciede2000"] / summary["corrected"]["ciede2000"]
    kept = args.runs or args.score
    print(f"baseline / learned CIEDE2000: {ratio:.2f}x; grid: {grid if kept else '(temp)'}")
    print_parameter_diagnostics(report)


def train_on_photos(args, scratch: Path):
    """Cut random crops of every training photo into a folder and train on it."""
    from kerastl.edit.color_train import train_color

    folder = scratch / "crops"
    folder.mkdir()
    rng = np.random.default_rng(args.seed)
    training = {name: photo(name) for name in TRAIN_PHOTOS} | extra_photos(args)
    for name, image in training.items():
        for i, crop in enumerate(random_crops(image, args.train_crops, 96, 384, rng)):
            Image.fromarray(crop).save(folder / f"{name}_{i:03d}.png")
    result = train_color(str(folder), backbone=args.backbone, weights=args.weights,
                         image_size=args.image_size, copies=args.copies,
                         frozen_epochs=args.frozen_epochs, finetune_epochs=args.epochs,
                         lr=args.lr, finetune_lr=args.finetune_lr or args.lr,
                         image_loss_weight=args.image_loss_weight, seed=args.seed,
                         runs_dir=args.runs or str(scratch / "runs"),
                         name=f"color-{args.backbone}-{args.seed}", overwrite=True, verbose=2)
    trained = (f"model {args.backbone} weights={args.weights} at {args.image_size} px, "
               f"{len(training)} training photos, {len(training) * args.train_crops} training "
               f"crops, {args.epochs} epochs (trained in {result.metrics['train_seconds']:.0f} s)")
    return result.model, result.run_dir, trained


def print_parameter_diagnostics(report) -> None:
    """Which adjustments the model gets wrong, and what a perfect one would score.

    Undoing the true parameters leaves only what clipping destroyed (the floor of any
    corrector); swapping in the model's answer for one adjustment at a time, or leaving that
    one uncorrected, shows what each adjustment costs.
    """
    before = report.summary["degraded"]["ciede2000"]
    floor = report.ciede2000_with(report.applied)
    print(f"\ntrue parameters undone (clipping floor): CIEDE2000 {floor:.2f}, "
          f"{1 - floor / before:.1%} reduction")
    print(f"{'adjustment':12} {'corr':>6} {'true, this one the model':>25} "
          f"{'true, this one left':>20}")
    for index, (name, corr) in enumerate(report.parameter_correlation().items()):
        from_model, left = report.applied.copy(), report.applied.copy()
        from_model[:, index], left[:, index] = report.found[:, index], 0.0
        print(f"{name:12} {corr:6.2f} {report.ciede2000_with(from_model):25.2f} "
              f"{report.ciede2000_with(left):20.2f}")


if __name__ == "__main__":
    main()
