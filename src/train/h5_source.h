// Micro-batches from a dualign HDF5 dataset (src/data/README.md) through the sharded, prefetching Loader.
// The file's `format` attribute decides what a Batch holds, through the slots of the format table
// (data/formats.h): e.g. preference_pairs give x = winner, x_l = loser, score_w / score_l when present, and
// cond = class_id (data.condition = class) or text_embedding (data.condition = text).
// `data.group: class` also hands the labels to the method as Batch::group (e.g. mixture composition over the
// classes of an unconditional model).
// The Stable Diffusion recipe's data path (data/latent_augment.h), each off by default: `data.sample_posterior`
// draws z = mean + std · ε from the stored VAE posterior, `data.flip_probability` takes the flipped image's
// posterior at that rate (winner and loser independently, as the official script flips each image), and
// `data.proportion_empty_prompts` replaces a row's text condition by the stored empty-prompt embedding.
// Global micro-batch k = step · grad_accum + micro is the Loader's k-th global batch, so the order (and a resume
// from any step) is the same for every number of ranks.
#pragma once
#include <memory>

#include "train/data_source.h"

namespace dualign::train {

std::unique_ptr<DataSource> make_h5_source(const config::Section& data, const ShardSpec& shard);

}  // namespace dualign::train
