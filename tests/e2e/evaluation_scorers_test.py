"""data_tools/evaluation scorers end to end on tiny random weights (no downloads): latents -> tiny random VAE ->
uint8 images -> each registered scorer, checked against its formula computed directly on the same weights:
PickScore = logit_scale.exp() * cos, CLIP score = 100 * max(cos, 0), aesthetic = head(normalised CLIP image
embedding) with the head loaded from .pth and .safetensors, HPSv2 = cos of open_clip features; plus the HPSv2
resize/pad transform, weight resolution errors and the ImageReward refusal."""
import os
import pathlib
import shutil
import sys
import tempfile
import unittest

import numpy as np
import torch

SRC = pathlib.Path(os.environ.get("DUALIGN_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(SRC / "data_tools"))
from evaluation import clip_models, decode, open_clip_models, scorers  # noqa: E402

PROMPTS = ["a cat", "a dog", "a red car", "blue sky", "a tree", "a house"]  # short: no truncation anywhere
MEAN = torch.tensor(clip_models.CLIP_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(clip_models.CLIP_STD).view(1, 3, 1, 1)


def temp_dir(test):
    d = tempfile.mkdtemp(prefix="evaluation-scorers-test-")
    test.addCleanup(shutil.rmtree, d, ignore_errors=True)
    return d


def normalised_pixels(images):
    """uint8 [B, 32, 32, 3] -> CLIP input; 32 px is the tiny models' size, so no resize or crop applies."""
    x = images.permute(0, 3, 1, 2).float() / 255.0
    return (x - MEAN) / STD


def hf_embeddings(clip, processor, images, prompts):
    """Image and text embeddings straight from the CLIPModel (no scorer code)."""
    with torch.no_grad():
        image = clip_models.features(clip.get_image_features(pixel_values=normalised_pixels(images)))
        tokens = processor.tokenizer(prompts, padding=True, return_tensors="pt")
        text = clip_models.features(clip.get_text_features(**tokens))
    return image, text


class Scorers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(1)
        cls.latents = np.random.default_rng(0).standard_normal((6, 4, 16, 16)).astype(np.float32)
        cls.vae = decode.tiny_random_vae(0)
        cls.images = decode.decode(cls.vae, cls.latents, "cpu")
        cls.scorers = scorers.build_scorers(["pickscore", "clip", "aesthetic", "hpsv2"], "cpu", tiny_random_seed=0)

    def test_decode_divides_by_the_scaling_factor_and_quantises(self):
        self.assertEqual(tuple(self.images.shape), (6, 32, 32, 3))
        self.assertEqual(self.images.dtype, torch.uint8)
        with torch.no_grad():
            x = self.vae.decode(torch.from_numpy(self.latents) / self.vae.config.scaling_factor).sample
        expected = ((x.clamp(-1, 1) + 1) * 127.5).round().permute(0, 2, 3, 1)
        self.assertEqual(float((self.images.float() - expected).abs().max()), 0.0)
        self.assertGreater(float(self.images.float().std()), 5.0)  # not a constant image

    def test_pickscore_is_logit_scale_times_cosine(self):
        s = self.scorers["pickscore"]
        got = s.score(self.images, PROMPTS)
        image, text = hf_embeddings(s.clip, s.processor, self.images, PROMPTS)
        expected = s.clip.logit_scale.detach().exp() * torch.nn.functional.cosine_similarity(image, text)
        self.assertEqual(got.dtype, torch.float64)
        self.assertLessEqual(float((got - expected.double()).abs().max()), 1e-5)
        self.assertGreater(float(got.std()), 1e-3)  # differs across samples

    def test_clip_score_is_100_times_clamped_cosine(self):
        s = self.scorers["clip"]
        got = s.score(self.images, PROMPTS)
        image, text = hf_embeddings(s.clip, s.processor, self.images, PROMPTS)
        cos = torch.nn.functional.cosine_similarity(image, text).double()
        self.assertTrue(bool((cos > 0).any()) and bool((cos < 0).any()), cos)  # both branches of the clamp
        self.assertLessEqual(float((got - 100 * cos.clamp(min=0)).abs().max()), 1e-4)

    def test_aesthetic_is_the_head_on_the_normalised_image_embedding(self):
        s = self.scorers["aesthetic"]
        image, _ = hf_embeddings(s.clip, s.processor, self.images, PROMPTS)
        self.assertIs(s.clip, self.scorers["clip"].clip)  # one CLIP ViT-L/14 for both, as with real weights
        with torch.no_grad():
            expected = s.head(image / image.norm(dim=-1, keepdim=True)).squeeze(-1)
        self.assertLessEqual(float((s.score(self.images, PROMPTS) - expected.double()).abs().max()), 1e-6)
        self.assertEqual(s.score(self.images, ["x"] * 6).tolist(), s.score(self.images, PROMPTS).tolist())

        # A head state dict with the published layout, saved as .pth and .safetensors, loads and scores.
        from safetensors.torch import save_file
        torch.manual_seed(5)
        head = scorers.AestheticHead(s.clip.config.projection_dim)
        state = head.state_dict()
        self.assertEqual(sorted(state), sorted(f"layers.{i}.{p}" for i in (0, 2, 4, 6, 7) for p in ("weight", "bias")))
        tmp = temp_dir(self)
        torch.save(state, os.path.join(tmp, "head.pth"))
        save_file(state, os.path.join(tmp, "head.safetensors"))
        emb = image / image.norm(dim=-1, keepdim=True)
        with torch.no_grad():
            expected = emb @ state["layers.0.weight"].T + state["layers.0.bias"]
            for i in (2, 4, 6, 7):  # the published head is purely linear (its ReLUs are commented out)
                expected = expected @ state[f"layers.{i}.weight"].T + state[f"layers.{i}.bias"]
        for name in ("head.pth", "head.safetensors"):
            loaded = scorers.load_aesthetic_head(os.path.join(tmp, name), s.clip.config.projection_dim)
            got = scorers.Aesthetic(s.clip, s.processor, loaded, "cpu").score(self.images, PROMPTS)
            self.assertLessEqual(float((got - expected.squeeze(-1).double()).abs().max()), 1e-5, name)

        torch.save({"layers.0.weight": torch.zeros(3, 3)}, os.path.join(tmp, "bad.pth"))
        with self.assertRaises(SystemExit) as e:
            scorers.load_aesthetic_head(os.path.join(tmp, "bad.pth"))
        self.assertIn("missing keys", str(e.exception))
        self.assertIn("layers.0.weight [3, 3] vs [1024, 768]", str(e.exception))

    def test_hpsv2_is_the_cosine_of_open_clip_features(self):
        import open_clip
        s = self.scorers["hpsv2"]
        got = s.score(self.images, PROMPTS)
        with torch.no_grad():
            image = s.model.encode_image(normalised_pixels(self.images))
            text = s.model.encode_text(open_clip.get_tokenizer("ViT-H-14")(PROMPTS))
        expected = torch.nn.functional.cosine_similarity(image, text).double()
        self.assertLessEqual(float((got - expected).abs().max()), 1e-5)
        self.assertLessEqual(float(got.abs().max()), 1.0 + 1e-6)
        self.assertNotAlmostEqual(float(got[0]), float(s.score(self.images[:1], ["a dog"])[0]), places=5)

    def test_hpsv2_transform_resizes_the_long_side_and_pads(self):
        # A constant 64 x 32 image: bicubic keeps the constant; the short side is padded with black (0) to 32.
        image = torch.full((1, 32, 64, 3), 200, dtype=torch.uint8)
        x = open_clip_models.preprocess(image, 32, "cpu")
        self.assertEqual(tuple(x.shape), (1, 3, 32, 32))
        inside = (200 / 255.0 - MEAN) / STD
        padded = (0.0 - MEAN) / STD
        torch.testing.assert_close(x[:, :, 8:24, :], inside.expand(1, 3, 16, 32), atol=1e-5, rtol=0)
        torch.testing.assert_close(x[:, :, :8, :], padded.expand(1, 3, 8, 32), atol=1e-6, rtol=0)
        torch.testing.assert_close(x[:, :, 24:, :], padded.expand(1, 3, 8, 32), atol=1e-6, rtol=0)

    def test_imagereward_refuses_with_the_reason(self):
        for kwargs in ({"tiny_random_seed": 0}, {"weights_dir": "/nonexistent"}):
            with self.assertRaises(SystemExit) as e:
                scorers.build_scorers(["imagereward"], "cpu", **kwargs)
            self.assertIn("timm==0.6.13", str(e.exception))
            self.assertIn("apply_chunking_to_forward", str(e.exception))

    def test_weight_resolution(self):
        tmp = temp_dir(self)
        with self.assertRaises(SystemExit) as e:
            scorers.build_scorers(["hpsv2"], "cpu", weights_dir=tmp)
        self.assertIn(os.path.join(tmp, "HPS_v2_compressed.pt"), str(e.exception))
        self.assertIn("--weight hpsv2.model=PATH", str(e.exception))
        with self.assertRaises(SystemExit) as e:
            scorers.build_scorers(["nope"], "cpu", tiny_random_seed=0)
        self.assertIn("unknown scorer", str(e.exception))
        os.makedirs(os.path.join(tmp, "PickScore_v1"))
        paths = scorers.resolve_weights(scorers.PickScore, tmp, {})
        self.assertEqual(paths["processor"], paths["model"])  # no CLIP-H processor dir: the model's own
        overrides = scorers.parse_overrides(["pickscore.processor=" + tmp, "aesthetic.head=/x/h.pth"])
        self.assertEqual(overrides, {("pickscore", "processor"): tmp, ("aesthetic", "head"): "/x/h.pth"})
        self.assertEqual(scorers.resolve_weights(scorers.PickScore, tmp, overrides)["processor"], tmp)
        with self.assertRaises(SystemExit):
            scorers.parse_overrides(["pickscore.head=/x"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
