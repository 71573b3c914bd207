"""Scale benchmark: citeqa's index and question path at 1,000,000 passages.

    python -m eval.bench.scale                     # 1,000,000 passages (first run builds and caches them)
    python -m eval.bench.scale --smoke             # 20,000 passages from a smaller pool: the CI run
    python -m eval.bench.scale --passages 200000 --questions 500
    python -m eval.bench.scale --build-only --shards 2   # the same collection as 2 shards (for eval.cluster --scale)

How the collection is made (plainly, because encoding a million real texts at ~300 texts/s on
these two cores would take about an hour):

- the pool: every sentence of the bundled SQuAD v1.1 dev paragraphs and of the demo corpus, cut by
  our own splitter (~10,400 distinct real sentences), each encoded once with the real encoder and
  annotated once with the real spaCy pipeline (both cached under ``eval/cache/scale/``);
- token vectors (what the answer step aligns question words with): made like the sentence
  vectors, once per pool sentence with the real encoder (``encode_tokens``, then the index's own
  ``quantize(project(...))``; cached next to the pool vectors). A collection sentence's token rows
  are its pool sentence's rows, copied into the generation's ``tokens.npy`` in chunks;
- documents: ``SENTENCES_PER_DOC`` pool sentences drawn at random (seeded), joined by a space;
  passages are cut from them by the index's own windowing (``make_passages``), documents are added
  until the collection holds exactly ``--passages`` passages;
- vectors: a sentence's vector is its real vector; **a passage's vector is the normalised mean of
  its sentences' vectors** (not an encoding of the passage text: that is the shortcut). Recall is
  measured against exact search over these same vectors, so the shortcut does not flatter it;
- BM25 terms of a sentence are its real terms; a passage's are its sentences' terms in order
  (exactly what analyzing the joined text gives: no term spans the joining space);
- everything is written as a real index generation (SQLite records, arrays, FAISS, BM25, token
  vectors) through the same writer ``qa index`` uses, and asked through the real ``Engine``;
- ``--shards N`` (with ``--build-only``) writes the same documents as a sharded index, laid out as
  ``qa index --shards N`` lays one out: each document in the shard ``shard_of(doc_id, N)`` gives,
  each shard written by the same ``write_index``, then ``globalize`` gives every shard the whole
  collection's BM25 statistics. ``python -m eval.cluster --scale`` serves it on Ray.

Questions are real SQuAD dev questions, encoded by the real encoder. Figures are printed next to
the plain baseline at the same size (sentence-transformers encode + exact FAISS flat search + top
sentence), measured in the same run.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from eval.metrics import percentile
from eval.process import resident_mb

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "eval" / "cache" / "scale"
SENTENCES_PER_DOC = 20
NEIGHBOURHOOD = 100
SEED = 7
CHUNK = 65_536


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- the pool of real sentences -----------------------------------------------------------------


def pool_sentences(articles: int | None = None) -> list[str]:
    """Every distinct sentence of the SQuAD dev paragraphs (the first ``articles`` articles, or
    all) and of the demo corpus, in a fixed order."""
    from eval.squad import BUNDLED_SQUAD, load_squad
    from index.documents import load_folder
    from index.split import split_sentences

    texts = [p.context for a in load_squad(BUNDLED_SQUAD)[:articles] for p in a.paragraphs]
    docs, _ = load_folder(ROOT / "corpus")
    texts += [d.text for d in docs]
    seen: dict[str, None] = {}
    for t in texts:
        for s in split_sentences(t):
            seen.setdefault(t[s.start : s.end], None)
    return list(seen)


class Pool:
    """The real sentences with their vectors, terms, mentions and token estimates (cached)."""

    def __init__(self, encoder_name: str, cache: Path = CACHE, articles: int | None = None) -> None:
        from index.annotate import ANNOTATOR_VERSION, annotate
        from index.encoder import load_encoder
        from index.split import approx_tokens
        from index.terms import TERMS_VERSION, content_terms
        from index.tokens import PROJECTION_VERSION, pack, project, quantize

        self.texts = pool_sentences(articles)
        key = hashlib.sha1("\n".join(self.texts).encode()).hexdigest()[:12]
        cache.mkdir(parents=True, exist_ok=True)
        vec_path = cache / f"pool-{key}-{encoder_name}.npy"
        tok_path = cache / f"pool-{key}-{encoder_name}-tokens-{PROJECTION_VERSION}.npz"
        ann_path = cache / f"pool-{key}-{ANNOTATOR_VERSION}.json"
        if vec_path.exists() and tok_path.exists():
            self.vecs = np.load(vec_path)
        else:
            # One pass yields both the sentence vectors and the token vectors, as `qa index` does.
            log(f"encoding the pool: {len(self.texts)} real sentences with {encoder_name}, with token vectors "
                f"(once; cached in {cache})")
            t = time.perf_counter()
            pooled, toks, _ = load_encoder(encoder_name).encode_tokens(self.texts, progress=True)
            self.encode_rate = len(self.texts) / (time.perf_counter() - t)
            if vec_path.exists():
                self.vecs = np.load(vec_path)  # vectors cached by an earlier run stay what was measured
            else:
                self.vecs = pooled
                np.save(vec_path, self.vecs)
            tokens, starts = pack([quantize(project(x)) for x in toks])
            del pooled, toks
            np.savez(tok_path, tokens=tokens, starts=starts)
        with np.load(tok_path) as z:
            # int8 [pool tokens, TOKEN_DIM]; pool sentence i owns rows tok_starts[i]:tok_starts[i + 1]
            self.tok_rows, self.tok_starts = z["tokens"], z["starts"]
        if len(self.tok_starts) != len(self.texts) + 1:
            raise ValueError(f"{tok_path} does not match the pool: delete it to re-encode")
        if ann_path.exists():
            cached = json.loads(ann_path.read_text())
        else:
            log(f"annotating the pool: {len(self.texts)} sentences with spaCy (once; cached)")
            cached = [{"m": [[m.start, m.end, m.label, m.value] for m in a.mentions]} for a in annotate(self.texts)]
            ann_path.write_text(json.dumps(cached))
        self.mentions: list[list[tuple[int, int, str, str | None]]] = [[tuple(m) for m in a["m"]] for a in cached]
        self.terms = [content_terms(t) for t in self.texts]
        self.terms_version = TERMS_VERSION
        self.tokens = np.array([approx_tokens(t) for t in self.texts], dtype=np.int64)
        self.lengths = np.array([len(t) for t in self.texts], dtype=np.int64)


# --- the synthetic collection -------------------------------------------------------------------


def make_collection(pool: Pool, n_passages: int, seed: int = SEED) -> list[tuple[np.ndarray, list[tuple[int, int]]]]:
    """Documents as (pool ids of their sentences, passage windows), exactly ``n_passages`` windows.

    A document draws its sentences from a neighbourhood of ``NEIGHBOURHOOD`` consecutive pool
    sentences (the pool is in SQuAD's article order), so it stays on one topic as real documents
    do; uniformly random sentences would make every passage vector a blur near the global mean.
    """
    from index.split import passage_windows

    rng = np.random.default_rng(seed)
    p = len(pool.texts)
    hood = min(NEIGHBOURHOOD, p)
    tokens = pool.tokens
    docs: list[tuple[np.ndarray, list[tuple[int, int]]]] = []
    total = 0
    while total < n_passages:
        start = int(rng.integers(0, p - hood + 1))
        ids = start + rng.choice(hood, size=min(SENTENCES_PER_DOC, hood), replace=False)
        wins = passage_windows(tokens[ids].tolist())
        need = n_passages - total
        if len(wins) > need:  # the last document: just enough sentences for the count to be exact
            for m in range(1, len(ids) + 1):
                w = passage_windows(tokens[ids[:m]].tolist())
                if len(w) >= need:
                    ids, wins = ids[:m], w
                    break
        docs.append((ids, wins))
        total += len(wins)
    return docs


def write_index(pool: Pool, docs, index_dir: Path, encoder_name: str, ords: list[int] | None = None) -> dict[str, float]:
    """Write the collection as a real index generation; returns the time of each part (s).

    ``ords``: each document's number in the whole collection (its id is ``synthetic/ORD.txt``),
    when ``docs`` are one shard's part of it; by default 0, 1, 2, …"""
    from index.annotate import ANNOTATOR_VERSION
    from index.bm25 import Bm25Index, TermIds
    from index.documents import LOADER_VERSION
    from index.split import SPLITTER_VERSION
    from index.store import GenerationWriter, IndexSettings, new_generation_dir, publish_generation
    from index.terms import content_terms
    from index.tokens import PROJECTION_VERSION, TOKEN_DIM

    times: dict[str, float] = {}
    dim = pool.vecs.shape[1]
    n_s = sum(len(ids) for ids, _ in docs)
    n_p = sum(len(w) for _, w in docs)
    gen = new_generation_dir(index_dir)
    w = GenerationWriter(gen, IndexSettings(encoder_name, dim, SPLITTER_VERSION, ANNOTATOR_VERSION, pool.terms_version,
                                            loader=LOADER_VERSION))

    t = time.perf_counter()
    sent_pool = np.empty(n_s, dtype=np.int64)  # pool id of each sentence row
    title_pool = np.array([int(ids[0]) for ids, _ in docs], dtype=np.int64)  # each title is the first sentence
    pass_bounds = np.empty((n_p, 2), dtype=np.int64)  # first, last sentence row of each passage
    sid = pid = 0
    texts, lengths = pool.texts, pool.lengths
    for ord_, (number, (ids, wins)) in enumerate(zip(range(len(docs)) if ords is None else ords, docs, strict=True)):
        doc_id = f"synthetic/{number:06d}.txt"  # a shard's documents keep their collection-wide ids
        starts = np.concatenate([[0], np.cumsum(lengths[ids] + 1)[:-1]])
        ends = starts + lengths[ids]
        text = " ".join(texts[i] for i in ids.tolist())
        w.add_document(ord_, doc_id, texts[ids[0]], text, f"synthetic-{number}", None)
        owner = [0] * len(ids)
        for j, (first, last) in reversed(list(enumerate(wins))):
            for k in range(first, last + 1):
                owner[k] = j
        st, en = starts.tolist(), ends.tolist()
        w.add_sentences((sid + k, doc_id, k, st[k], en[k], pid + owner[k], None) for k in range(len(ids)))
        w.add_passages((pid + j, doc_id, sid + a, sid + b, st[a], en[b]) for j, (a, b) in enumerate(wins))
        w.add_mentions((sid + k, s, e, lab, val) for k, p in enumerate(ids.tolist()) for s, e, lab, val in pool.mentions[p])
        sent_pool[sid : sid + len(ids)] = ids
        pass_bounds[pid : pid + len(wins)] = [(sid + a, sid + b) for a, b in wins]
        sid += len(ids)
        pid += len(wins)
    times["records (SQLite + arrays)"] = time.perf_counter() - t

    t = time.perf_counter()
    table = TermIds()
    pool_ids = [table.ids(ts) for ts in pool.terms]
    pool_len = np.array([len(x) for x in pool_ids], dtype=np.int64)
    pool_ptr = np.concatenate([[0], np.cumsum(pool_len)])
    pool_flat = np.concatenate(pool_ids)
    s_ids = np.concatenate([pool_flat[pool_ptr[i] : pool_ptr[i + 1]] for i in sent_pool.tolist()])
    w.save_terms("sentences", Bm25Index.from_arrays(table.terms, s_ids, pool_len[sent_pool]))
    # Titles are each document's first sentence; mentions' terms come from the pool's mentions.
    w.save_terms("titles", Bm25Index.from_arrays(
        table.terms, np.concatenate([pool_flat[pool_ptr[i] : pool_ptr[i + 1]] for i in title_pool]), pool_len[title_pool]))
    m_ids = [[table.ids(content_terms(pool.texts[p][a:b])) for a, b, *_ in pool.mentions[p]] for p in range(len(pool.texts))]
    m_len = [np.array([len(x) for x in ms], dtype=np.int64) for ms in m_ids]
    m_flat = [np.concatenate(ms) if ms else np.zeros(0, np.int32) for ms in m_ids]
    sel = sent_pool.tolist()
    w.save_terms("mentions", Bm25Index.from_arrays(
        table.terms, np.concatenate([m_flat[p] for p in sel]), np.concatenate([m_len[p] for p in sel])))
    del m_ids, m_len, m_flat
    s_ptr = np.concatenate([[0], np.cumsum(pool_len[sent_pool])])
    p_ids = np.concatenate([s_ids[s_ptr[a] : s_ptr[b + 1]] for a, b in pass_bounds.tolist()])
    del s_ids
    w.save_terms("passages", Bm25Index.from_arrays(table.terms, p_ids, s_ptr[pass_bounds[:, 1] + 1] - s_ptr[pass_bounds[:, 0]]))
    del p_ids
    times["BM25 postings"] = time.perf_counter() - t

    # Vectors are written straight into the generation's memory-mapped .npy files.
    sv = np.lib.format.open_memmap(gen / "sentences.npy", mode="w+", dtype=np.float32, shape=(n_s, dim))
    for a in range(0, n_s, CHUNK):
        sv[a : a + CHUNK] = pool.vecs[sent_pool[a : a + CHUNK]]
    pv = np.lib.format.open_memmap(gen / "passages.npy", mode="w+", dtype=np.float32, shape=(n_p, dim))
    for a in range(0, n_p, CHUNK):
        first, last = pass_bounds[a : a + CHUNK, 0], pass_bounds[a : a + CHUNK, 1]
        # passage vector = normalised mean of its sentences' vectors (the documented shortcut)
        m = np.zeros((len(first), dim), dtype=np.float32)
        for o in range(int((last - first).max()) + 1):
            rows = first + o
            inside = rows <= last
            m[inside] += sv[rows[inside]]
        pv[a : a + CHUNK] = m / np.linalg.norm(m, axis=1, keepdims=True)
    sv.flush()
    pv.flush()

    # Token vectors: each sentence's rows are its pool sentence's rows, gathered chunk by chunk into
    # the memory-mapped tokens.npy (about 8 GB at 1M passages: never held in memory whole).
    t = time.perf_counter()
    pool_tok_len = np.diff(pool.tok_starts)
    tok_starts = np.zeros(n_s + 1, dtype=np.int64)
    np.cumsum(pool_tok_len[sent_pool], out=tok_starts[1:])
    tv = np.lib.format.open_memmap(gen / "tokens.npy", mode="w+", dtype=np.int8, shape=(int(tok_starts[-1]), TOKEN_DIM))
    for a in range(0, n_s, CHUNK):
        ids = sent_pool[a : a + CHUNK]
        lens = pool_tok_len[ids]
        lo, hi = int(tok_starts[a]), int(tok_starts[min(a + CHUNK, n_s)])
        # row r of this chunk's output comes from pool row (pool start of its sentence) + (r - its output start)
        shift = np.repeat(pool.tok_starts[ids] - (tok_starts[a : a + len(ids)] - lo), lens)
        tv[lo:hi] = pool.tok_rows[np.arange(hi - lo, dtype=np.int64) + shift]
    tv.flush()
    w.save_tokens(tv, tok_starts)  # tokens.npy is already written in place; this adds token_starts.npy
    w.set_meta("tokens", PROJECTION_VERSION)
    del tv
    times["token vectors (gathered from the pool)"] = time.perf_counter() - t

    for name, mm in (("passages", pv), ("sentences", sv)):
        t = time.perf_counter()
        kind = w.save_vectors(name, mm)
        times[f"vector index, {name} ({kind})"] = time.perf_counter() - t
    del sv, pv
    t = time.perf_counter()
    w.set_meta("documents", str(len(docs)))
    w.close()
    publish_generation(index_dir, gen)
    times["commit (fsync, publish)"] = time.perf_counter() - t
    return times


# --- measuring ----------------------------------------------------------------------------------


def squad_questions(n: int, seed: int) -> list[str]:
    from eval.squad import BUNDLED_SQUAD, load_squad

    qs = [q.question for a in load_squad(BUNDLED_SQUAD) for p in a.paragraphs for q in p.questions]
    rng = np.random.default_rng(seed)
    return [qs[i] for i in rng.choice(len(qs), min(n, len(qs)), replace=False)]


def mem_available_mb() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1e3
    return float("inf")


def disk_sizes(gen: Path) -> dict[str, int]:
    groups: dict[str, int] = {}
    for p in gen.iterdir():
        name = p.name
        key = ("vector index (.faiss)" if name.endswith(".faiss") else
               "vectors (.npy)" if name in ("sentences.npy", "passages.npy") else
               "token vectors (int8 .npy)" if name in ("tokens.npy", "token_starts.npy") else
               "BM25 terms" if ".terms." in name else
               "records (SQLite)" if name.endswith(".sqlite") else "record arrays")
        groups[key] = groups.get(key, 0) + p.stat().st_size
    return groups


def timed(fn, items) -> tuple[list[float], list]:
    times, out = [], []
    for x in items:
        t = time.perf_counter()
        out.append(fn(x))
        times.append(time.perf_counter() - t)
    return times, out


def _opens(index_dir: Path) -> bool:
    """Whether this citeqa can read the cached index (a cache left by older code is rebuilt)."""
    from index.loaded import LoadedIndex
    from index.store import UnusableIndexError

    try:
        LoadedIndex.open(index_dir).token_store()  # everything the engine reads, token vectors included
    except UnusableIndexError:
        return False
    return True


def collection_dir(passages: int, seed: int, cache: Path, encoder_name: str, pool_articles: int | None,
                   shards: int = 1) -> Path:
    tag = "" if pool_articles is None else f"-a{pool_articles}"
    return cache / f"n{passages}-{encoder_name}-s{seed}{tag}{'' if shards == 1 else f'-shards{shards}'}"


def cached_index(pool: Pool, passages: int, seed: int, cache: Path, encoder_name: str, pool_articles: int | None,
                 *, shards: int = 1, rebuild: bool = False) -> tuple[Path, dict]:
    """The collection's index (built now, or the cached one); with ``shards`` > 1 the same
    collection as a sharded index, laid out as ``qa index --shards N`` lays it out: each document
    in shard ``shard_of(doc_id, N)`` (index/shards.py), every shard written by ``write_index``
    (the same writer), then the whole collection's BM25 statistics given to every shard
    (``globalize``, as ``qa index --shards`` does)."""
    import shutil

    from index.shards import globalize, shard_count, shard_dir, shard_of, write_layout
    from index.store import FORMAT_VERSION, current_generation

    base = collection_dir(passages, seed, cache, encoder_name, pool_articles, shards)
    index_dir = base / "index"
    marker = base / "collection.json"
    want = {"passages": passages, "seed": seed, "pool": len(pool.texts), "format": FORMAT_VERSION,
            "sentences_per_doc": SENTENCES_PER_DOC, "neighbourhood": NEIGHBOURHOOD}
    if shards > 1:
        want["shards"] = shards
    info = json.loads(marker.read_text()) if marker.exists() else {}
    if shards == 1:
        ready = current_generation(index_dir) is not None and _opens(index_dir)
    else:
        ready = shard_count(index_dir) == shards and all(
            current_generation(shard_dir(index_dir, i)) is not None and _opens(shard_dir(index_dir, i))
            for i in range(shards))
    if not rebuild and ready and info.get("collection") == want:
        return index_dir, {**info, "built_fresh": False}
    shutil.rmtree(index_dir, ignore_errors=True)
    log(f"building the {passages:,}-passage index{f' as {shards} shards' if shards > 1 else ''} in {index_dir} "
        "(cached for later runs)")
    t = time.perf_counter()
    docs = make_collection(pool, passages, seed)
    t_docs = time.perf_counter() - t
    if shards == 1:
        build = {"documents drawn": t_docs, **write_index(pool, docs, index_dir, encoder_name)}
    else:
        write_layout(index_dir, shards)
        build = {"documents drawn": t_docs}
        for i in range(shards):
            ords = [o for o in range(len(docs)) if shard_of(f"synthetic/{o:06d}.txt", shards) == i]
            log(f"shard {i + 1} of {shards}: {len(ords):,} documents")
            part = write_index(pool, [docs[o] for o in ords], shard_dir(index_dir, i), encoder_name, ords)
            for k, v in part.items():
                build[k] = build.get(k, 0.0) + v
        t = time.perf_counter()
        globalize(index_dir, log)
        build["collection statistics (globalize)"] = time.perf_counter() - t
    info = {"collection": want, "build": build, "documents": len(docs),
            "built": time.strftime("%Y-%m-%d %H:%M:%S"), "built_fresh": True}
    marker.write_text(json.dumps(info, indent=1))
    return index_dir, info


def run(args: argparse.Namespace) -> dict:
    import faiss

    from index.encoder import DEFAULT_ENCODER
    from index.store import current_generation
    from qa.analyze import analyze
    from qa.engine import Engine

    load0 = os.getloadavg()[0]
    encoder_name = args.encoder or DEFAULT_ENCODER
    pool = Pool(encoder_name, args.cache, args.pool_articles)
    index_dir, info = cached_index(pool, args.passages, args.seed, args.cache, encoder_name, args.pool_articles,
                                   rebuild=args.rebuild)
    gen = current_generation(index_dir)
    assert gen is not None
    disk = disk_sizes(gen)

    from index.encoder import load_encoder
    from index.loaded import LoadedIndex

    rss0 = resident_mb()
    t = time.perf_counter()
    idx = LoadedIndex.open(index_dir)
    load_s = time.perf_counter() - t
    rss_index = resident_mb()
    encoder = load_encoder(idx.encoder_name)
    rss_encoder = resident_mb()
    t2 = time.perf_counter()
    engine = Engine(idx, encoder)  # the retriever and the answer step over the loaded index
    answer_init_s = time.perf_counter() - t2
    open_s = time.perf_counter() - t
    rss_open = resident_mb()
    n_p, n_s = idx.n_passages(), idx.n_sentences()
    pass_kind, sent_kind = idx.passage_vectors.describe(), idx.sentence_vectors.describe()
    log(f"opened: {len(idx.docs):,} documents, {n_s:,} sentences, {n_p:,} passages in {open_s:.1f} s")

    questions = squad_questions(args.questions, args.seed)
    qv = engine.encoder.encode(questions)
    search_t, got = timed(lambda q, search=idx.passage_vectors.search: search(q[None], 10)[1][0], qv)

    bm_terms = [list(analyze(q).terms) for q in questions]
    bm25_t, _ = timed(lambda ts, top=idx.passage_bm25.top: top(ts, 30), bm_terms)

    e2e_qs = questions[: args.e2e]
    for q in e2e_qs[:3]:
        engine.ask(q)  # warm-up: first touches of the mapped files
    e2e_t, answers = timed(engine.ask, e2e_qs)
    broken = sum(1 for a in answers for c in a.citations
                 if idx.docs[c.doc_id].text[c.start : c.end] != c.sentence)
    rss_after = resident_mb()

    # Exact search over the same passage vectors: the ground truth, and the baseline's flat search.
    t = time.perf_counter()
    flat = faiss.IndexFlatIP(qv.shape[1])
    for a in range(0, n_p, CHUNK):
        flat.add(np.ascontiguousarray(idx.passage_vectors.vectors(slice(a, a + CHUNK))))
    flat_build = time.perf_counter() - t
    _, exact = flat.search(qv, 10)
    recall = float(np.mean([len(set(g.tolist()) & set(e.tolist())) / 10 for g, e in zip(got, exact, strict=True)]))
    flat_t, _ = timed(lambda q: flat.search(q[None], 10), qv[: args.baseline])
    flat_bytes = flat.ntotal * flat.d * 4
    flat.reset()  # frees its memory before the baseline builds its own

    # The plain script end to end: sentence-transformers encode, FAISS flat over every sentence, top sentence.
    ours_mem = sum(p.stat().st_size for p in gen.iterdir() if p.name.endswith(".faiss")) + \
        idx.passage_bm25.memory_bytes() + idx.sentence_bm25.memory_bytes()
    n_docs = len(idx.docs)
    # Our engine goes before the baseline loads its own copy of everything (the machine is shared).
    del engine, idx, encoder, answers
    gc.collect()
    base_e2e: list[float] = []
    base_note = ""
    need_mb = n_s * qv.shape[1] * 4 / 1e6
    if mem_available_mb() > need_mb + 2000:
        from eval.bench.plain import PlainSearch

        plain = PlainSearch(index_dir)
        for q in questions[:2]:
            plain.ask(q)
        base_e2e, _ = timed(plain.ask, questions[: args.baseline])
        plain.flat.reset()
        del plain
    else:
        base_note = f"skipped: a flat index over {n_s:,} sentences needs {need_mb:,.0f} MB, too much of what is free now"

    return {
        "passages": n_p, "sentences": n_s, "documents": n_docs, "info": info, "disk": disk,
        "pass_index": pass_kind, "sent_index": sent_kind,
        "open_s": open_s, "load_s": load_s, "answer_init_s": answer_init_s,
        "rss_index_mb": rss_index - rss0, "rss_encoder_mb": rss_encoder - rss_index,
        "rss_answer_mb": rss_open - rss_encoder,
        "rss_open_mb": rss_open - rss0, "rss_after_mb": rss_after - rss0,
        "ours_index_mem_mb": ours_mem / 1e6, "flat_mem_mb": flat_bytes / 1e6, "flat_build_s": flat_build,
        "search_ms": [x * 1e3 for x in search_t], "flat_ms": [x * 1e3 for x in flat_t], "recall": recall,
        "bm25_ms": [x * 1e3 for x in bm25_t], "e2e_ms": [x * 1e3 for x in e2e_t], "base_e2e_ms": [x * 1e3 for x in base_e2e],
        "base_note": base_note, "broken_citations": broken, "questions": len(questions), "load": (load0, os.getloadavg()[0]),
    }


def render(r: dict) -> str:
    def ms(xs: list[float], p: float) -> str:
        return f"{(statistics.median(xs) if p == 50 else percentile(xs, p)):.2f} ms" if xs else "—"

    def ratio(a: list[float], b: list[float], p: float = 50) -> str:
        if not a or not b:
            return "—"
        fa = statistics.median(a) if p == 50 else percentile(a, p)
        fb = statistics.median(b) if p == 50 else percentile(b, p)
        return f"{fa / fb:.3f}×"

    build = r["info"].get("build", {})
    build_total = sum(build.values())
    disk_total = sum(r["disk"].values())
    rows = [
        ("index build (records, BM25, vector indexes), s", f"{build_total:.0f} s", f"{r['flat_build_s']:.1f} s",
         f"{build_total / r['flat_build_s']:.0f}×" if r["flat_build_s"] else "—"),
        ("index on disk", f"{disk_total / 1e9:.2f} GB", f"{r['flat_mem_mb'] / 1e3:.2f} GB", f"{disk_total / 1e6 / r['flat_mem_mb']:.1f}×"),
        ("vector + BM25 index in memory", f"{r['ours_index_mem_mb']:.0f} MB", f"{r['flat_mem_mb']:.0f} MB",
         f"{r['ours_index_mem_mb'] / r['flat_mem_mb']:.2f}×"),
        ("process memory after open / after questions", f"{r['rss_open_mb']:.0f} / {r['rss_after_mb']:.0f} MB", "", ""),
        ("passage search p50", ms(r["search_ms"], 50), ms(r["flat_ms"], 50), ratio(r["search_ms"], r["flat_ms"])),
        ("passage search p99", ms(r["search_ms"], 99), ms(r["flat_ms"], 99), ratio(r["search_ms"], r["flat_ms"], 99)),
        ("recall@10 vs exact search", f"{r['recall']:.3f}", "1.000", f"{r['recall']:.3f}×"),
        ("BM25 query p50 (top 30)", ms(r["bm25_ms"], 50), "—", ""),
        ("end-to-end question p50", ms(r["e2e_ms"], 50), ms(r["base_e2e_ms"], 50), ratio(r["e2e_ms"], r["base_e2e_ms"])),
        ("end-to-end question p99", ms(r["e2e_ms"], 99), ms(r["base_e2e_ms"], 99), ratio(r["e2e_ms"], r["base_e2e_ms"], 99)),
    ]
    out = [
        f"citeqa scale benchmark — {r['passages']:,} passages, {r['sentences']:,} sentences, {r['documents']:,} documents "
        f"({os.cpu_count()} cores, load average {r['load'][0]:.1f} → {r['load'][1]:.1f}: shared machine)",
        f"vector indexes: passages {r['pass_index']}; sentences {r['sent_index']}; "
        f"index {'built in this run' if r['info'].get('built_fresh') else 'from the cache (build figures from ' + r['info'].get('built', '?') + ')'}",
        f"{r['questions']} SQuAD questions for search and BM25; {len(r['e2e_ms'])} end to end; "
        f"{len(r['flat_ms'])} for the baseline's flat search and end to end",
        "",
        f"| {'figure':46} | {'citeqa':>18} | {'plain ST + flat':>16} | {'ratio':>8} |",
        f"|{'-' * 48}|{'-' * 20}:|{'-' * 17}:|{'-' * 9}:|",
    ]
    out += [f"| {a:46} | {b:>18} | {c:>16} | {d:>8} |" for a, b, c, d in rows]
    out.append("")
    out.append("build, by part: " + "; ".join(f"{k} {v:.1f} s" for k, v in build.items()))
    out.append("on disk, by part: " + "; ".join(f"{k} {v / 1e6:.0f} MB" for k, v in r["disk"].items()))
    out.append(f"engine open {r['open_s']:.1f} s: index {r['load_s']:.1f} s ({r['rss_index_mb']:.0f} MB), encoder "
               f"({r['rss_encoder_mb']:.0f} MB), retriever and answer step {r['answer_init_s']:.1f} s ({r['rss_answer_mb']:.0f} MB)")
    if r["base_note"]:
        out.append(f"plain end to end: {r['base_note']}")
    if r["broken_citations"]:
        out.append(f"ERROR: {r['broken_citations']} citations whose sentence is not text[start:end]")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.bench.scale", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--passages", type=int, default=None, help="collection size (default 1,000,000; --smoke 20,000)")
    ap.add_argument("--questions", type=int, default=None, help="questions for search and BM25 (default 1000)")
    ap.add_argument("--e2e", type=int, default=None, help="questions asked end to end (default 200)")
    ap.add_argument("--baseline", type=int, default=None, help="questions for the plain baseline (default 30)")
    ap.add_argument("--encoder", default=None, help="encoder of the pool vectors (default: the index default)")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--cache", type=Path, default=CACHE, help=f"where the pool and indexes are kept (default {CACHE})")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the collection's index even if cached")
    ap.add_argument("--json", type=Path, default=None, help="also write every figure to this JSON file")
    ap.add_argument("--pool-articles", type=int, default=None,
                    help="SQuAD articles whose sentences make the pool (default: all 48; --smoke: 4)")
    ap.add_argument("--smoke", action="store_true",
                    help="a quick run (CI): 20,000 passages from a pool of 4 articles, 100 questions")
    ap.add_argument("--shards", type=int, default=1,
                    help="with --build-only: write the collection as this many shards (as `qa index --shards N`)")
    ap.add_argument("--build-only", action="store_true",
                    help="only build (or find cached) the collection's index; print its folder and build figures as JSON")
    args = ap.parse_args(argv)
    s = args.smoke
    args.passages = args.passages or (20_000 if s else 1_000_000)
    args.questions = args.questions or (100 if s else 1000)
    args.e2e = args.e2e or (30 if s else 200)
    args.baseline = args.baseline or (10 if s else 30)
    if s and args.pool_articles is None:
        args.pool_articles = 4
    if args.passages < 1 or args.questions < 1 or args.e2e < 1 or args.baseline < 1:
        print("python -m eval.bench.scale: --passages, --questions, --e2e and --baseline must be at least 1", file=sys.stderr)
        return 2
    if args.build_only:
        from index.encoder import DEFAULT_ENCODER
        from index.shards import MAX_SHARDS

        if not 1 <= args.shards <= MAX_SHARDS:
            print(f"python -m eval.bench.scale: --shards must be from 1 to {MAX_SHARDS}", file=sys.stderr)
            return 2
        encoder_name = args.encoder or DEFAULT_ENCODER
        pool = Pool(encoder_name, args.cache, args.pool_articles)
        index_dir, info = cached_index(pool, args.passages, args.seed, args.cache, encoder_name, args.pool_articles,
                                       shards=args.shards, rebuild=args.rebuild)
        print(json.dumps({"index": str(index_dir), **info}))
        return 0
    if args.shards != 1:
        print("python -m eval.bench.scale: --shards is for --build-only (the benchmark asks one index)", file=sys.stderr)
        return 2
    r = run(args)
    r["date"] = time.strftime("%Y-%m-%d %H:%M")
    print(render(r))
    # The last run of each size is kept for eval/bench/speed.py's table.
    for path in filter(None, (args.cache / f"last-{args.passages}.json", args.json)):
        path.write_text(json.dumps(r, indent=1, default=str))
    return 1 if r["broken_citations"] else 0


if __name__ == "__main__":
    sys.exit(main())
