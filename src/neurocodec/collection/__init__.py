"""Compressing collections of images, on this machine or on a Ray cluster.

``encode_dir(src, dst)`` compresses every image of a folder (or of a list file) into one
``.ncdc`` file per image under ``dst``, or with ``latents=True`` into sharded latent
arrays for compressed-domain learning (:class:`LatentShards` reads them);
``decode_dir(src, dst)`` is the reverse. Both keep ``dst/manifest.jsonl`` (one record
per file: path, bytes, bpp, PSNR, model, status...), skip what an earlier run finished,
and record per-file failures instead of stopping.

Engines: ``"local"`` (a process pool; the default, needs nothing more) and ``"ray"``
(``pip install 'neurocodec[ray]'``; Ray is imported only when that engine runs).
The ``neurocodec encode-dir`` / ``decode-dir`` commands call these functions; see
docs/scale-out.md.
"""

from .api import Summary, decode_dir, encode_dir
from .engines import ENGINES, EngineUnavailableError
from .latents import LatentShards
from .manifest import MANIFEST_NAME, CollectionError, read_manifest

__all__ = ["ENGINES", "MANIFEST_NAME", "CollectionError", "EngineUnavailableError", "LatentShards", "Summary",
           "decode_dir", "encode_dir", "read_manifest"]
