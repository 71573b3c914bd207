"""The API's request and response schemas: what ``/openapi.json`` publishes and the routes enforce.

``AnswerOut`` is the answer contract (``qa.types.Answer``, described in the README's "The answer
contract") plus ``view``, how to show it (``qa.view.AnswerView``); ``POST /api/ask`` returns
through it, so the schema it publishes is the one it keeps.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from index.documents import MAX_FILE_BYTES, SUPPORTED_SUFFIXES
from qa.engine import MAX_K, MAX_QUESTION_CHARS
from qa.filters import DATE_PATTERN, FOLDER_PATTERN, MAX_FILTER_DOC_IDS, MAX_FOLDER_CHARS, DocFilter, FilterError
from qa.followup import MAX_PREVIOUS_CHARS, Previous

# Limits of the turn before a follow-up. The question is one the API took; the answer phrase may
# be a whole sentence (when no shorter phrase answers), so it gets more room. Longer is refused (422).
MAX_PREVIOUS_DOC_ID_CHARS = 1000
MAX_PREVIOUS_ANSWER_CHARS = 2000


class PreviousTurn(BaseModel):
    """The turn before a follow-up ("and who led Azerbaijan's side?", "when was that?")."""

    model_config = ConfigDict(strict=True)

    question: str = Field(min_length=1, max_length=MAX_PREVIOUS_CHARS, description="the question asked just before")
    doc_id: str | None = Field(None, max_length=MAX_PREVIOUS_DOC_ID_CHARS,
                               description="the document its answer cited first (an unknown id is ignored)")
    answer: str | None = Field(None, max_length=MAX_PREVIOUS_ANSWER_CHARS,
                               description="its answer phrase, which the follow-up will not give again")

    def to_previous(self) -> Previous:
        return Previous(self.question, self.doc_id, self.answer)


class FilterIn(BaseModel):
    """The documents a question may be answered from (``qa.filters.DocFilter``); every part narrows it."""

    model_config = ConfigDict(strict=True, extra="forbid",
                              json_schema_extra={"examples": [{"folder": "news", "date_from": "2023-06-01"}]})

    doc_ids: list[Annotated[str, Field(min_length=1, max_length=MAX_PREVIOUS_DOC_ID_CHARS)]] | None = Field(
        None, min_length=1, max_length=MAX_FILTER_DOC_IDS,
        description="only these documents (ids as GET /api/documents lists them)")
    folder: str | None = Field(None, max_length=MAX_FOLDER_CHARS, json_schema_extra={"pattern": FOLDER_PATTERN},
                               description="only documents under this folder of the corpus (\"news/2023\")")
    date_from: str | None = Field(None, json_schema_extra={"pattern": DATE_PATTERN},
                                  description="only documents dated on or after this day, YYYY-MM-DD; a document "
                                  "without a date never matches a date bound")
    date_to: str | None = Field(None, json_schema_extra={"pattern": DATE_PATTERN},
                                description="only documents dated on or before this day, YYYY-MM-DD")

    @model_validator(mode="after")
    def _applies(self) -> FilterIn:
        self.to_filter()  # the one rule (qa.filters): a malformed part is a 422 naming it
        return self

    def to_filter(self) -> DocFilter | None:
        try:
            return DocFilter.make(self.doc_ids, self.folder, self.date_from, self.date_to)
        except FilterError as e:
            raise ValueError(str(e)) from None


QUESTION_PATTERN = r"[^\s\x1c-\x1f]"


class AskRequest(BaseModel):
    """A question; ``k`` is the number of citations to return."""

    model_config = ConfigDict(
        strict=True,
        json_schema_extra={"examples": [
            {"question": "when were direct AZAL flights announced", "k": 5},
            {"question": "who welcomed that?", "previous": {"question": "when were direct AZAL flights announced",
                                                            "doc_id": "003_fdf2c5db0e68fe77.txt",
                                                            "answer": "November 9, 2023"}},
        ]},
    )

    # The pattern states "not blank" in the schema: a character that is neither whitespace nor one
    # of the separators \x1c-\x1f, which Python's str.strip() also removes.
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, pattern=QUESTION_PATTERN,
                          description="the question, in plain words")
    # Not strict: JSON Schema counts 5.0 as an integer. Strings and booleans are still refused.
    k: int = Field(5, ge=1, le=MAX_K, strict=False, description=f"number of citations, 1 to {MAX_K}")
    id: str | None = Field(None, max_length=200, description="echoed back in the answer")
    previous: PreviousTurn | None = Field(
        None, description="the turn before, when this question follows up on it; the answer then carries "
        "`resolved_question`, how the follow-up was read")
    filter: FilterIn | None = Field(
        None, description="ask within some documents: citations come only from the documents it matches; when it "
        "matches none, the answer abstains and `answer_note` says so")

    @field_validator("k", mode="before")
    @classmethod
    def _k_is_a_number(cls, v: Any) -> Any:
        if isinstance(v, bool | str):
            raise ValueError("Input should be a valid integer")
        return v


class CitationOut(BaseModel):
    """``qa.types.Citation``."""

    model_config = ConfigDict(extra="forbid")

    doc_id: str
    title: str
    sentence: str = Field(description="document.text[start:end]")
    start: int
    end: int
    score: float
    answer_start: int | None = Field(None, description="start of the answer phrase inside `sentence`")
    answer_end: int | None = None
    date: str | None = Field(None, description="the document's ISO date, when its text states one")
    passage_id: int | None = Field(None, description="the passage of the index the sentence was found in")
    page: int | None = Field(None, description="1-based page of the sentence, for documents with pages (PDF)")


class AnswerPart(BaseModel):
    """``qa.types.AnswerPart``."""

    model_config = ConfigDict(extra="forbid")

    text: str
    citation: int = Field(description="index into `citations` of the sentence that holds this part")
    answer_start: int = Field(description="start of this part inside that citation's `sentence`")
    answer_end: int


class AnswerView(BaseModel):
    """``qa.view.AnswerView``: how to show the answer, the same for the chat page, its JavaScript and the CLI."""

    model_config = ConfigDict(extra="forbid")

    level: Literal["high", "medium", "low"] = Field(description="the confidence cue")
    phrase: str | None = Field(description="the answer as shown (both parts of a two-part answer); null when abstaining")
    marks: list[list[tuple[int, int]]] = Field(
        description="per citation, the [start, end] spans of its `sentence` to highlight (sorted, not overlapping)")
    within: str | None = Field(None, description="the active filter in a few words, when the question had one")


class AnswerOut(BaseModel):
    """The answer contract of the README (the same object as `qa ask --json`), plus ``view``.

    The fields are in the order ``qa.types.Answer.to_dict`` writes them; the optional ones are
    present only when the answer has them (the route leaves unset fields out).
    """

    model_config = ConfigDict(extra="forbid")

    id: str | None
    question: str
    answer: str | None = Field(description="a quote from the top citation (or its document's date); null when abstaining")
    abstained: bool
    confidence: float
    citations: list[CitationOut] = Field(description="best first; the nearest passages even when abstaining")
    answer_source: Literal["sentence", "document_date"] | None = Field(None, description='"sentence" or "document_date"')
    answer_doc_id: str | None = Field(None, description="the document the answer phrase is quoted from")
    answer_doc_start: int | None = Field(None, description="offsets of the answer phrase in that document's text")
    answer_doc_end: int | None = None
    expected_type: str | None = Field(None, description="the kind of answer the question asks for (person, date, …)")
    resolved_question: str | None = Field(None, description="how a follow-up was read, with the turn before")
    reader: str | None = Field(None, description="the reader that chose the answer (neural or linear)")
    support: float | None = None
    answer_note: str | None = Field(None, description="a note on where the answer comes from (the document's date), or on why it abstained")
    answers: list[AnswerPart] | None = Field(
        None, description="both parts of an answer to a question asking for two things (\"who led each side\"); "
        "`answer` is the first")
    latency_ms: float | None = Field(None, description="time the engine took")
    filter: dict[str, Any] | None = Field(None, description="the filter the question was asked within, as applied")
    generation: str | None = Field(None, description="the index generation that answered (send it back with feedback)")
    view: AnswerView


class SentenceRef(BaseModel):
    """A sentence by its document offsets (a citation's ``doc_id``, ``start``, ``end``)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    doc_id: str = Field(min_length=1, max_length=MAX_PREVIOUS_DOC_ID_CHARS)
    start: int = Field(ge=0, le=2**31)
    end: int = Field(ge=1, le=2**31)


class CitationSeen(BaseModel):
    """A citation of the answer judged (the other fields of a citation may come along; they are not kept)."""

    model_config = ConfigDict(extra="ignore")

    doc_id: str = Field(max_length=MAX_PREVIOUS_DOC_ID_CHARS)
    start: int
    end: int
    sentence: str = Field(max_length=20_000)


class AnswerSeen(BaseModel):
    """The answer judged, as POST /api/ask returned it (other fields are accepted and not kept)."""

    model_config = ConfigDict(extra="ignore")

    answer: str | None = Field(None, max_length=MAX_PREVIOUS_ANSWER_CHARS)
    abstained: bool
    confidence: float | None = None
    citations: list[CitationSeen] = Field(default_factory=list, max_length=MAX_K)
    generation: str | None = Field(None, max_length=100, description="the index generation it was given on")


class FeedbackIn(BaseModel):
    """A verdict on an answer: right, or wrong with the sentence that does answer (or none)."""

    model_config = ConfigDict(strict=True, json_schema_extra={"examples": [
        {"question": "when were direct AZAL flights announced", "verdict": "wrong",
         "correct": {"doc_id": "003_fdf2c5db0e68fe77.txt", "start": 556, "end": 768}},
        {"question": "Who won the 2022 FIFA World Cup?", "verdict": "wrong", "correct": None},
    ]})

    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, pattern=QUESTION_PATTERN)
    verdict: Literal["right", "wrong"]
    correct: SentenceRef | None = Field(
        None, description='for "wrong": the sentence that answers (a cited one, or one of the document view); '
        "null: the documents do not answer the question")
    answer: AnswerSeen | None = Field(None, description="the answer judged, as POST /api/ask returned it")


class FeedbackOut(BaseModel):
    id: str
    verdict: Literal["right", "wrong"]
    generation: str = Field(description="the index generation the answer was given on")
    message: str


class DocumentSummary(BaseModel):
    doc_id: str
    title: str
    date: str | None
    sentences: int
    chars: int


class DocumentOut(DocumentSummary):
    text: str
    content_hash: str
    format: str = Field(description="text, html, pdf or docx")
    date_start: int | None = Field(description="offsets of the document's date in `text`")
    date_end: int | None
    sentence_offsets: list[tuple[int, int]] = Field(description="[start, end] of every sentence in `text`")
    furniture: list[tuple[int, int]] = Field(
        description="[start, end] of each block of page furniture in `text` (menus, headline lists, running "
        "heads): shown, never answerable")
    page_starts: list[int] = Field(description="offset in `text` where each page starts (PDF); empty otherwise")


class ChangeOut(BaseModel):
    """What an upload or a deletion did; the next request already sees it."""

    doc_id: str
    action: Literal["added", "replaced", "unchanged", "deleted"] = Field(
        description="an upload whose name is already indexed replaces that document (`replaced`); the same "
        "bytes again change nothing (`unchanged`)")
    message: str = Field(description="one line for a person")
    title: str | None = Field(description="the document's title (null after a deletion)")
    date: str | None
    sentences: int = Field(description="answerable sentences of the document (0 after a deletion)")
    documents: int = Field(description="documents in the index now")
    seconds: float = Field(description="time taken to apply the change")


class SkippedFile(BaseModel):
    path: str
    reason: str


class WatchOut(BaseModel):
    """The watched folder: its last sync and the files it could not index."""

    folder: str
    settle_seconds: float
    last_sync: str | None = Field(description="when the folder was last read into the index (UTC, ISO 8601)")
    last_change: str | None = Field(description="when a sync last changed the index")
    last_result: str | None = Field(description="what the last sync did, in one line")
    syncs: int
    skipped: list[SkippedFile] = Field(description="files of the folder the last sync could not index, with the reason")
    error: str | None = Field(description="why the last attempt failed (the index is unchanged), or null")


class Health(BaseModel):
    status: str = Field(description='"ok", or "no_index" (the page says how to build one)')
    index_loaded: bool
    index_dir: str
    documents: int
    sentences: int
    model: str | None
    generation: str | None = Field(None, description="the index generation being served (changes with every update)")
    detail: str | None = None
    watch: WatchOut | None = Field(None, description="the watched folder (qa serve --watch), when there is one")


class ErrorOut(BaseModel):
    detail: str = Field(description="one line saying what was wrong")


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "malformed request (bad JSON, invalid document id)"},
    415: {"model": ErrorOut, "description": "the body is not sent as application/json"},
    422: {"model": ErrorOut, "description": "the request does not fit the schema (the reason is one line)"},
    503: {"model": ErrorOut, "description": "no index loaded yet; the reason says how to build one"},
}
UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "no file, or a file name that cannot be a document id"},
    403: {"model": ErrorOut, "description": "a request from another web site (cross-site uploads are refused)"},
    413: {"model": ErrorOut, "description": f"the file is larger than {MAX_FILE_BYTES // 2**20} MB"},
    415: {"model": ErrorOut, "description": f"not a supported file type ({', '.join(SUPPORTED_SUFFIXES)})"},
    422: {"model": ErrorOut, "description": "the file cannot be indexed (empty, binary, a scanned PDF, …): the reason"},
    503: {"model": ErrorOut, "description": "no index loaded, or another change is being applied (see Retry-After)"},
}
DELETE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: ERRORS[400],
    403: UPLOAD_ERRORS[403],
    404: {"model": ErrorOut, "description": "no such document"},
    409: {"model": ErrorOut, "description": "the last document of the index cannot be deleted"},
    503: UPLOAD_ERRORS[503],
}
UPLOAD_FIELD = (f"the document ({', '.join(SUPPORTED_SUFFIXES)}; up to {MAX_FILE_BYTES // 2**20} MB); "
                "its file name becomes the doc_id")
