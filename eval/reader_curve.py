"""The reader's learning curve measured on SQuAD v1.1 dev: checkpoints → evidence@1, EM, F1.

    python -m eval.reader_curve eval/cache/reader/curve-*.pt --sample 500

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
    ap.add_argument("checkpoints", nargs="+", type=Path)
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
    rows = []
    for ck in args.checkpoints:
        saved = torch.load(ck, map_location="cpu", weights_only=False)
        model = make_model(args.layers)
        model.load_state_dict(saved["model"])
        with tempfile.TemporaryDirectory() as tmp:
            path = export(model, Path(tmp), Path(tmp))
            reader = NeuralReader(engine.answerer, OnnxReader(path))
            ev, em, f1 = [], [], []
            from qa.analyze import analyze

            for it in items:
                q = analyze(it.question)
                qv = engine.question_vectors(it.question)
                d = reader.read(q, qv, engine.answerer.gather(q, qv))
                sid = d.ranked[0][0]
                text = engine.index.sent_text[sid]
                pred = text[d.span.start : d.span.end] if d.span else text
                ev.append(any(sentence_matches(text, g) for g in it.evidence))
                em.append(exact_match(pred, it.answers))
                f1.append(f1_score(pred, it.answers))
        row = {"checkpoint": ck.name, "examples": saved["state"]["examples"],
               "minutes": round(saved["state"]["train_seconds"] / 60, 1), "questions": len(items),
               "evidence_at_1": sum(ev) / len(ev), "em": sum(em) / len(em), "f1": sum(f1) / len(f1)}  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
