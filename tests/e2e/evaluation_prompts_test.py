"""data_tools/evaluation/prompts.py readers on small files in each standard layout (Pick-a-Pic parquet, PartiPrompts
TSV, HPSv2 benchmark JSON, plain text, prompts HDF5), and encode_prompts.py taking a PartiPrompts TSV (category
dataset, --limit) with the tiny random text encoder."""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import unittest

SRC = pathlib.Path(os.environ.get("DUALIGN_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(SRC / "data_tools"))
from evaluation.prompts import detect_kind, read_prompts  # noqa: E402

PARTI = ('Prompt\tCategory\tChallenge\tNote\n'
         'bond\tAbstract\tBasic\tBiology-inspired concepts with multiple meanings\n'
         'A robot painted as graffiti on a brick wall. The words "Fly an airplane" are written on the wall.\t'
         'Outdoor Scenes\tComplex\t\n'
         'a portrait of a statue, flying over the city of Mars. \tWorld Knowledge\tComplex\t\n')


class Readers(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="evaluation-prompts-test-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def path(self, name, text=None):
        p = os.path.join(self.tmp, name)
        if text is not None:
            with open(p, "w", encoding="utf-8") as f:
                f.write(text)
        return p

    def test_pickapic_parquet_keeps_unique_captions_in_first_seen_order(self):
        import pyarrow as pa
        import pyarrow.parquet as pq
        captions = ["a cat", "a dog", "a cat", "", "a red bicycle", "a dog", None, "a cat"]
        table = pa.table({"caption": captions, "jpg_0": [b"\x00"] * 8, "label_0": [1.0] * 8})
        path = self.path("test_unique-00000.parquet")
        pq.write_table(table, path, row_group_size=3)  # several row groups: streamed reading
        s = read_prompts(path)
        self.assertEqual((s.kind, s.prompts, s.categories), ("pickapic", ["a cat", "a dog", "a red bicycle"], None))
        pq.write_table(pa.table({"text": ["x"]}), self.path("bad.parquet"))
        with self.assertRaises(SystemExit) as e:
            read_prompts(self.path("bad.parquet"))
        self.assertIn("no `caption` column", str(e.exception))

    def test_partiprompts_tsv_with_categories_and_literal_quotes(self):
        s = read_prompts(self.path("PartiPrompts.tsv", PARTI))
        self.assertEqual(s.kind, "parti")
        self.assertEqual(s.prompts, ["bond", 'A robot painted as graffiti on a brick wall. The words "Fly an airplane" '
                                     'are written on the wall.', "a portrait of a statue, flying over the city of Mars."])
        self.assertEqual(s.categories, ["Abstract", "Outdoor Scenes", "World Knowledge"])
        s = read_prompts(self.path("no_category.tsv", "Prompt\na b\nc d\n"))
        self.assertEqual((s.prompts, s.categories), (["a b", "c d"], None))
        with self.assertRaises(SystemExit) as e:
            read_prompts(self.path("wrong.tsv", "caption\nx\n"))
        self.assertIn("`Prompt` column", str(e.exception))

    def test_hpsv2_benchmark_json_list_dict_and_directory(self):
        bench = os.path.join(self.tmp, "benchmark")
        os.makedirs(bench)
        for style, prompts in (("anime", ["a1", "a2"]), ("photo", ["p1"])):
            with open(os.path.join(bench, f"{style}.json"), "w") as f:
                json.dump(prompts, f)
        s = read_prompts(os.path.join(bench, "photo.json"))
        self.assertEqual((s.kind, s.prompts, s.categories), ("hpsv2", ["p1"], ["photo"]))
        s = read_prompts(bench)
        self.assertEqual((s.prompts, s.categories), (["a1", "a2", "p1"], ["anime", "anime", "photo"]))
        s = read_prompts(self.path("all.json", json.dumps({"paintings": ["x"], "concept-art": ["y", "z"]})))
        self.assertEqual((s.prompts, s.categories), (["x", "y", "z"], ["paintings", "concept-art", "concept-art"]))
        with self.assertRaises(SystemExit) as e:
            read_prompts(self.path("bad.json", json.dumps({"photo": [1, 2]})))
        self.assertIn("HPSv2 benchmark JSON", str(e.exception))

    def test_text_h5_and_detection(self):
        import h5py
        s = read_prompts(self.path("p.txt", "a cat\n\n# comment\n  a dog  \n"))
        self.assertEqual((s.kind, s.prompts), ("text", ["a cat", "a dog"]))
        self.assertEqual(read_prompts(self.path("p.tsv", "a\nb\n"), kind="text").prompts, ["a", "b"])
        with h5py.File(self.path("p.h5"), "w") as f:
            f.create_dataset("prompt", data=["x", "y"], dtype=h5py.string_dtype())
            f.create_dataset("category", data=["c1", "c2"], dtype=h5py.string_dtype())
        s = read_prompts(self.path("p.h5"))
        self.assertEqual((s.kind, s.prompts, s.categories), ("h5", ["x", "y"], ["c1", "c2"]))
        self.assertEqual([detect_kind(n) for n in ("a.parquet", "a.TSV", "a.json", "a.h5", "a.txt", self.tmp)],
                         ["pickapic", "parti", "hpsv2", "h5", "text", "hpsv2"])
        with self.assertRaises(SystemExit) as e:
            read_prompts(self.path("empty.txt", "# nothing\n"))
        self.assertIn("holds no prompts", str(e.exception))
        with self.assertRaises(SystemExit):
            read_prompts(self.path("p.txt"), kind="csv")

    def test_encode_prompts_reads_partiprompts(self):
        import h5py
        import numpy as np
        out = self.path("prompts.h5")
        p = subprocess.run([sys.executable, str(SRC / "data_tools" / "encode_prompts.py"), "--prompts",
                            self.path("PartiPrompts.tsv", PARTI), "--out", out, "--tiny-random", "--limit", "2",
                            "--threads", "1"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        with h5py.File(out, "r") as f:
            prompts = [x.decode() for x in f["prompt"][:]]
            categories = [x.decode() for x in f["category"][:]]
            emb = f["text_embedding"][:]
            self.assertEqual(f.attrs["prompt_set"], "parti")
        self.assertEqual(prompts[0], "bond")
        self.assertTrue(prompts[1].startswith('A robot painted as graffiti'))
        self.assertEqual(categories, ["Abstract", "Outdoor Scenes"])
        self.assertEqual(emb.shape[0], 2)
        self.assertTrue(np.all(np.isfinite(emb)))
        self.assertFalse(np.allclose(emb[0], emb[1]))


if __name__ == "__main__":
    unittest.main(verbosity=2)
