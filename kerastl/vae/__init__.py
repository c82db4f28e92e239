"""Generation, second model: a variational autoencoder (a subclassed ``keras.Model``) trained
on kerastl's engine, its evaluation (negative ELBO, IWAE, PSNR, FID/KID) and editing through
its latent space."""

from kerastl._lazy import lazy_getattr

#: Imported on first use: ``kerastl.vae.config`` stays free of TensorFlow (the CLI reads it).
_LAZY = {
    "VAE": "kerastl.vae.model", "KLWarmup": "kerastl.vae.model",
    "build_encoder": "kerastl.vae.model", "build_decoder": "kerastl.vae.model",
    "VaeConfig": "kerastl.vae.config", "VaeResult": "kerastl.vae.train",
    "train_vae": "kerastl.vae.train", "finetune_vae": "kerastl.vae.train",
    "resume_vae": "kerastl.vae.train", "load_vae": "kerastl.vae.model",
    "evaluate_vae": "kerastl.vae.evaluate", "elbo_report": "kerastl.vae.evaluate",
    "reconstruct": "kerastl.vae.latent", "interpolate": "kerastl.vae.latent",
    "edit": "kerastl.vae.latent", "sample": "kerastl.vae.latent",
}
__all__ = sorted(_LAZY)
__getattr__ = lazy_getattr(__name__, _LAZY)
