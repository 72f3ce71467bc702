#!/usr/bin/env python3
"""Pick-a-Pic parquet -> dualign HDF5 shards: VAE posteriors and one CLIP text embedding per unique caption.

Input rows: caption, jpg_0, jpg_1 (JPEG/PNG bytes), label_0 (1 = image 0 preferred, 0 = image 1, 0.5 = tie).
Ties are dropped (as the official Diffusion-DPO script does; --keep-ties keeps them with preference 0.5), and
undecodable images drop their pair. Output in OUT (src/data/README.md has the layout):
  pickapic-<file>-<row>.h5   preference_pairs: winner/loser = VAE posterior mean x scaling_factor [N, 4, R/8, R/8]
                             float16, *_logvar, *_flip (posterior of the flipped image), prompt_embedding [P, L, D]
                             + prompt_index [N], empty_prompt_embedding, prompt, preference, score_w/score_l
  heldout/                   the same for captions in the held-out split (--heldout-fraction)
  labelled/, heldout/labelled/   labelled_samples for KTO (--labelled)
  .units/<unit>.json         one marker per finished work unit (a rerun skips it)

Work is split into units of --shard-size parquet rows; --shard-index/--shard-count pick this task's units (a Slurm
array: defaults from SLURM_ARRAY_TASK_ID/COUNT) and --workers processes convert them. Unit names come from the
input file and row, so any split of the work writes the same files.

Models: --pretrained PATH takes a Stable Diffusion directory in diffusers layout (vae/, text_encoder/, tokenizer/);
--tiny-random builds tiny random models from configs (no downloads; for tests only: the embeddings are meaningless).
An SDXL directory (text_encoder_2/, tokenizer_2/; or --tiny-shape sdxl-tiny) writes SDXL shards: prompt_embedding
holds both encoders' penultimate hidden states concatenated [P, 77, 2048], prompt_pooled [P, 1280] the second
encoder's pooled projection (empty_prompt_pooled the empty prompt's), and time_ids_w / time_ids_l [N, 6] each
image's (original height, width, crop top, left, R, R); use --resolution 1024.

  python data_tools/pickapic_to_h5.py --parquet pickapic_v2/train-*.parquet --out data/pickapic \\
      --pretrained /models/sd15 --workers 4 --heldout-fraction 0.01
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pickapic.convert import convert, parse_args  # noqa: E402


def main(argv=None):
    return convert(parse_args(argv, __doc__))


if __name__ == "__main__":
    main()
