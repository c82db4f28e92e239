"""Editing models built by transfer: learned colour adjustment and style transfer."""

from kerastl._lazy import lazy_getattr

#: Imported on first use: ``kerastl.edit.color_ops`` and friends stay cheap to import.
_LAZY = {
    "train_color": "kerastl.edit.color_train", "ColorConfig": "kerastl.edit.color_config",
    "ColorResult": "kerastl.edit.color_train", "resume_color": "kerastl.edit.color_train",
    "correct_files": "kerastl.edit.color_apply",
    "load_color_model": "kerastl.edit.color_apply", "style_transfer": "kerastl.edit.style",
    "stylize": "kerastl.edit.style", "StyleSettings": "kerastl.edit.style",
}
__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)
