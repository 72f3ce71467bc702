"""Pick-a-Pic converter on a generated parquet with tiny random VAE/CLIP models: ties dropped, winner/loser
order follows label_0, latents equal the VAE encoding of the right image, shards pass `dualign data validate`."""
import os
import sys

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image

from e2e_util import BIN, SRC, run, temp_dir

sys.path.insert(0, str(SRC / "data_tools"))
import pickapic_to_h5 as conv  # noqa: E402


def jpeg(seed, size=(40, 36)):
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8))
    buf = conv.io.BytesIO()
    img.save(buf, format="JPEG")
    return buf.getvalue()


def main():
    tmp = str(temp_dir("pickapic-test-"))
    labels = [1.0, 0.0, 0.5, 1.0, 0.0, 0.5, 1.0, 1.0, 0.0, 0.0, 1.0]
    rows = {"caption": [f"a photo of thing {i}" for i in range(len(labels))],
            "jpg_0": [jpeg(2 * i) for i in range(len(labels))],
            "jpg_1": [jpeg(2 * i + 1) for i in range(len(labels))],
            "label_0": labels}
    rows["jpg_1"][7] = b"not an image"  # a broken image drops its pair
    parquet = os.path.join(tmp, "train-0000.parquet")
    pq.write_table(pa.table(rows), parquet)

    out = os.path.join(tmp, "h5")
    paths, stats = conv.convert(conv.argparse.Namespace(
        parquet=[parquet], out=out, pretrained=None, tiny_random=True, resolution=32, shard_size=4, batch_size=3,
        max_rows=0, device="cpu", threads=1, seed=0))
    expected = [i for i, l in enumerate(labels) if l != 0.5 and i != 7]
    assert stats == {"rows": 11, "ties": 2, "bad_images": 1, "pairs": len(expected)}, stats
    assert len(paths) == 2, paths  # 8 pairs, 4 per shard

    vae, text_encoder, tokenizer, _ = conv.tiny_random_models(seed=0)
    prompts, winners, losers, emb = [], [], [], []
    for p in paths:
        with h5py.File(p, "r") as f:
            assert f.attrs["format"] == "preference_pairs" and f.attrs["version"] == 1
            prompts += [s.decode() if isinstance(s, bytes) else s for s in f["prompt"][:]]
            winners.append(f["winner"][:]); losers.append(f["loser"][:]); emb.append(f["text_embedding"][:])
    winners, losers, emb = np.concatenate(winners), np.concatenate(losers), np.concatenate(emb)
    assert prompts == [rows["caption"][i] for i in expected], prompts
    assert winners.shape == (len(expected), 4, 16, 16) and emb.shape == (len(expected), 16, 32), (winners.shape, emb.shape)
    for k, i in enumerate(expected):
        a = conv.load_image(rows["jpg_0"][i], 32)
        b = conv.load_image(rows["jpg_1"][i], 32)
        w, l = (a, b) if labels[i] == 1.0 else (b, a)
        lat = conv.encode_images(vae, [w, l], "cpu")
        np.testing.assert_allclose(winners[k], lat[0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(losers[k], lat[1], rtol=1e-4, atol=1e-5)
    ref = conv.encode_prompts(text_encoder, tokenizer, [prompts[0]], "cpu")[0]
    np.testing.assert_allclose(emb[0], ref, rtol=1e-4, atol=1e-5)
    assert not np.allclose(emb[0], emb[1])

    if os.environ.get("DUALIGN_BIN"):  # the converter alone needs no build; validate the shards when there is one
        for p in paths:
            r = run([BIN, "data", "validate", p, "--format", "preference_pairs"])
            print(r.stdout)
            assert "OK" in r.stdout, r.stdout + r.stderr
    print("pickapic converter OK:", stats)


if __name__ == "__main__":
    main()
