"""Evaluation protocol for text-to-image samples: VAE decoding, reward scorers, paired win rates with bootstrap
confidence intervals, prompt-set readers and a Markdown/JSON/PNG report. The CLI is data_tools/evaluate_samples.py.

  samples.py   read `dualign sample` HDF5 files (latents, prompts, seeds, image indices)
  pairing.py   match base and tuned samples on (prompt, image_index)
  decode.py    SD VAE decoding (pretrained or tiny random), batched
  clip_models.py, open_clip_models.py   model loading and tiny random configs
  scorers.py   the scorer registry: pickscore, clip, aesthetic, hpsv2, imagereward
  winrate.py   paired win rates and mean differences with prompt-clustered bootstrap CIs
  prompts.py   Pick-a-Pic parquet, PartiPrompts TSV, HPSv2 benchmark JSON, plain text
  grids.py     base-vs-tuned image grids
  report.py    report.md + report.json
"""
