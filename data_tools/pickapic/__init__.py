"""Pick-a-Pic parquet -> dualign HDF5 shards at scale (data_tools/pickapic_to_h5.py is the command).

  models.py   the VAE, CLIP text encoder and tokenizer (a Stable Diffusion directory, or tiny random ones for tests)
  encode.py   images -> VAE posteriors (mean, log-variance; also of the flipped image), captions -> embeddings
  units.py    the input split into work units (row ranges of the parquet files), ties, the held-out split
  shards.py   one unit's pairs (and labelled samples) -> HDF5 files, written atomically
  convert.py  units -> files with worker processes and Slurm-array sharding; a rerun skips finished units
"""
