"""The reader's learning curve measured on SQuAD v1.1 dev: checkpoints → evidence@1, EM, F1.

    python -m eval.reader_curve eval/cache/reader/curve-*.pt --sample 500
    python -m eval.reader_curve --depths 1,2,3,4,6,8 --sample 1000    # the shipped model, by sentences read

Each checkpoint that ``python -m eval.train_reader`` saved (copies of ``checkpoint.pt`` taken
during the run) is exported to int8 ONNX the way the shipped file is, and answers a seeded sample
of SQuAD dev questions through the real engine (closed corpus, the shipped linear ranking and
reader calibration's depth and prior weight), before abstention. Measuring only: nothing here
is chosen by these figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.reader_curve", description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", nargs="*", type=Path, help="training checkpoints (default: the shipped model)")
    ap.add_argument("--depths", default=None, help="comma-separated sentences read (default: the calibration's)")
    ap.add_argument("--sample", type=int, default=500)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--layers", type=int, default=6)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from eval.metrics import exact_match, f1_score, sentence_matches
    from eval.squad import BUNDLED_SQUAD, gold_items, load_squad, sample
    from eval.train_reader import export, make_model
    from index.encoder import DEFAULT_ENCODER
    from qa.engine import Engine
    from qa.reader import NeuralReader as OnnxReader
    from qa.reading import NeuralReader

    index_dir = Path(__file__).resolve().parent / "cache" / "squad" / f"all-{DEFAULT_ENCODER}" / "index"
    if not index_dir.exists():
        print(f"no SQuAD dev index at {index_dir} — run: qa eval --squad", file=sys.stderr)
        return 1
    engine = Engine.open(index_dir, reader="linear")
    items = sample(gold_items(load_squad(BUNDLED_SQUAD)), args.sample, args.seed)
    from qa.analyze import analyze
    from qa.reader import MODEL_FILE

    depths = [int(d) for d in args.depths.split(",")] if args.depths else [None]
    # every question's candidates once; each model reads them
    gathered = []
    for it in items:
        q = analyze(it.question)
        qv = engine.question_vectors(it.question)
        gathered.append((it, q, engine.answerer.gather(q, qv)))

    def measure(path: Path, tag: dict) -> None:
        reader = NeuralReader(engine.answerer, OnnxReader(path))
        most = max(d or reader.depth for d in depths)
        read = [reader.read_candidates(q, cand, depth=most) for _, q, cand in gathered]
        for d in depths:
            ev, em, f1 = [], [], []
            for (it, _, _), rc in zip(gathered, read, strict=True):
                dec = reader.decide(rc, depth=d or reader.depth)
                sid = dec.ranked[0][0]
                text = engine.index.sent_text[sid]
                pred = text[dec.span.start : dec.span.end] if dec.span else text
                ev.append(any(sentence_matches(text, g) for g in it.evidence))
                em.append(exact_match(pred, it.answers))
                f1.append(f1_score(pred, it.answers))
            row = {**tag, "depth": d or reader.depth, "questions": len(items), "evidence_at_1": sum(ev) / len(ev),
                   "em": sum(em) / len(em), "f1": sum(f1) / len(f1)}  # fmt: skip
            print(json.dumps(row), flush=True)

    if not args.checkpoints:
        measure(MODEL_FILE, {"model": MODEL_FILE.name})
    for ck in args.checkpoints:
        saved = torch.load(ck, map_location="cpu", weights_only=False)
        model = make_model(args.layers)
        model.load_state_dict(saved["model"])
        with tempfile.TemporaryDirectory() as tmp:
            path = export(model, Path(tmp), Path(tmp))
            measure(path, {"checkpoint": ck.name, "examples": saved["state"]["examples"],
                           "minutes": round(saved["state"]["train_seconds"] / 60, 1)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
