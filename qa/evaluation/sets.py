"""`llama-rag eval make-set`: QA items with reference answers, derived from Sphinx HTML.

Documentation carries its own answers: every API entry is a ``<dt id="NAME">`` whose
``<dd>`` opens with a sentence saying what NAME does, and a section heading is often
followed by a paragraph that says what it is. No human and no judge model is needed.
Items are split by page (a seeded hash of the page's path), so a page used for any
tuning (train) never appears in the test split. Off-topic questions, which the
corpus cannot answer, are added with empty ``sources`` and no reference.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable, Iterator, Literal

from pydantic import BaseModel

from llama_rag.errors import InvalidInputError
from indexing.text import content_words, first_sentence

Split = Literal["train", "test", "all"]

_KINDS = {  # Sphinx ``dl class="py KIND"`` -> question template
    "function": "What does {name}() do?",
    "method": "What does {name}() do?",
    "classmethod": "What does {name}() do?",
    "staticmethod": "What does {name}() do?",
    "class": "What is the {name} class?",
    "exception": "When is {name} raised?",
    "attribute": "What is {name}?",
    "data": "What is {name}?",
}
_SKIP_START = ("deprecated", "changed in version", "new in version", "see ", "note:",
               "availability", "alias")
_GENERIC_HEADINGS = {"examples", "example", "notes", "footnotes", "introduction", "overview",
                     "functions", "classes", "constants", "exceptions", "contents", "see also",
                     "usage", "api", "reference", "module contents", "methods", "attributes"}
_NUMBERED = re.compile(r"^[\d.]+\s+")
_NOT_A_NOUN = {"how", "what", "where", "when", "why", "which", "using", "writing", "installing",
               "creating", "building", "changes", "new", "porting", "other", "more", "some"}

OFF_TOPIC = (
    "What is the capital of Australia?", "How long should I boil an egg for a soft yolk?",
    "Who won the football World Cup in 1998?", "What is the tallest mountain in Africa?",
    "How do I change a flat tyre on a bicycle?", "What year did the Berlin Wall fall?",
    "How many moons does Jupiter have?", "What is a good recipe for banana bread?",
    "Who painted the Mona Lisa?", "How do I get red wine out of a carpet?",
    "What is the population of Brazil?", "Which planet is closest to the Sun?",
    "How do I train a puppy to sit?", "What causes the northern lights?",
    "Who wrote Pride and Prejudice?", "What is the best time of year to visit Japan?",
    "How do I repot an orchid?", "What is the boiling point of water on Mount Everest?",
    "Who was the first person to walk on the Moon?", "How many players are on a rugby team?",
    "What is the speed of sound in air?", "How do I knit a scarf?",
    "Which ocean is the deepest?", "What is the currency of Switzerland?",
    "How do I make sourdough starter?", "When did the Roman Empire fall?",
    "What does a cardiologist treat?", "How do I prune a rose bush?",
    "What is the longest river in Europe?", "Who composed the Four Seasons?",
)


class EvalItem(BaseModel):
    """One question of a QA set; ``sources`` empty and ``reference`` None: off-topic;
    ``turns``: the user's earlier questions when this one is a follow-up."""

    question: str
    reference: str | None = None
    sources: list[str] = []
    kind: str = "api"
    anchor: str | None = None
    turns: list[str] = []
    key_facts: list[str] = []


FOLLOW_UPS = ("And what does {name}() do?", "What about {name}()?", "And {name}()?")


def follow_ups(items: list[EvalItem], rng: random.Random, n: int) -> list[EvalItem]:
    """Two-turn conversations: a question about one API entry, then a follow-up about a
    sibling (same class or module) by its bare name, which alone names no page."""
    by_owner: dict[str, list[EvalItem]] = defaultdict(list)
    for item in items:
        if item.kind in ("api:function", "api:method") and item.anchor and "." in item.anchor:
            by_owner[item.anchor.rsplit(".", 1)[0]].append(item)
    owners = sorted(o for o, group in by_owner.items() if len(group) >= 2)
    rng.shuffle(owners)
    out = []
    for owner in owners[:n]:
        first, second = rng.sample(by_owner[owner], 2)
        template = FOLLOW_UPS[len(out) % len(FOLLOW_UPS)]
        out.append(second.model_copy(update={
            "question": template.format(name=second.anchor.rsplit(".", 1)[1]),
            "turns": [first.question], "kind": "follow-up"}))
    return out


def page_split(page: str, seed: int, test_fraction: float = 0.5) -> Literal["train", "test"]:
    """A page's split, stable for a seed: every item of a page lands in the same one."""
    digest = hashlib.sha256(f"{seed}:{page}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_fraction else "train"


def _text(el) -> str:
    return " ".join(el.text_content().replace("\u00b6", "").split())


def _answer(paragraph_el) -> str | None:
    """The first sentence of ``<p>``, if it reads as an answer."""
    if paragraph_el is None:
        return None
    sentence = first_sentence(_text(paragraph_el))
    if len(sentence.split()) < 5 or sentence.lower().startswith(_SKIP_START):
        return None
    return sentence


def _first_p(el):
    for child in el:
        if child.tag == "p":
            return child
        if child.tag not in ("span", "a", "div", "h1", "h2", "h3", "h4", "h5", "h6"):
            return None
    return None


def page_items(html: bytes, page: str) -> Iterator[EvalItem]:
    """The API-entry and heading items of one Sphinx page."""
    from lxml import etree, html as lhtml

    try:
        root = lhtml.document_fromstring(html.decode("utf-8", "replace"))
    except (etree.ParserError, ValueError):
        return
    for dl in root.iter("dl"):
        classes = (dl.get("class") or "").split()
        if len(classes) != 2 or classes[0] != "py" or classes[1] not in _KINDS:
            continue
        dt = next((c for c in dl if c.tag == "dt" and c.get("id")), None)
        dd = next((c for c in dl if c.tag == "dd"), None)
        reference = _answer(_first_p(dd)) if dd is not None else None
        if dt is None or not reference:
            continue
        name = dt.get("id")
        shown = dt.find(".//span[@class='sig-name descname']")
        if shown is None or not name.endswith(_text(shown)):  # Sphinx drops "__" from ids
            continue
        yield EvalItem(question=_KINDS[classes[1]].format(name=name), reference=reference,
                       sources=[page], kind=f"api:{classes[1]}", anchor=name)
    for section in root.iter("section"):
        heading = next((c for c in section if c.tag in ("h1", "h2", "h3")), None)
        if heading is None:
            continue
        title = _NUMBERED.sub("", _text(heading))
        reference = _answer(_first_p(section))
        if (not reference or not reference.endswith(".") or title.lower() in _GENERIC_HEADINGS
                or not 1 < len(title.split()) < 7 or any(c in title for c in ":?()\u2014")
                or title.split()[0].lower() in _NOT_A_NOUN
                or not content_words(title) & content_words(reference)):
            continue
        yield EvalItem(question=f"What is {title}?", reference=reference, sources=[page],
                       kind="heading", anchor=section.get("id"))


def make_set(docs: Path, n: int | None, seed: int, split: Split, unanswerable: int,
             per_page: int = 3, test_fraction: float = 0.5, followups: int = 0
             ) -> list[EvalItem]:
    """Up to ``n`` items from the pages of ``split`` (at most ``per_page`` a page, so one
    long page does not dominate), ``followups`` two-turn conversations, then
    ``unanswerable`` off-topic questions."""
    if not docs.is_dir():
        raise InvalidInputError(f"--from {docs}: not a folder of HTML documentation",
                                param="from")
    pages = sorted(p for p in docs.rglob("*.html") if not p.name.startswith("_"))
    by_page: dict[str, list[EvalItem]] = defaultdict(list)
    for path in pages:
        page = path.relative_to(docs).as_posix()
        if split != "all" and page_split(page, seed, test_fraction) != split:
            continue
        add_unique(by_page[page], page_items(path.read_bytes(), page))
    if not by_page:
        raise InvalidInputError(f"--from {docs}: no Sphinx API entries or headings with an "
                                f"answer paragraph found in the {split} split", param="from")
    rng = random.Random(seed)

    def pick(items: list[EvalItem]) -> list[EvalItem]:
        api = [i for i in items if i.kind != "heading"]
        headings = [i for i in items if i.kind == "heading"]
        picked = rng.sample(api, min(per_page, len(api)))
        if headings and len(picked) < per_page:  # a page's API first, at most one heading
            picked.append(rng.choice(headings))
        return picked

    chosen = sample_pages(by_page, rng, pick, n)
    if followups:
        chosen += follow_ups([i for page in sorted(by_page) for i in by_page[page]], rng,
                             followups)
    return chosen + off_topic_items(rng, unanswerable)


def add_unique(bucket: list[EvalItem], items: Iterable[EvalItem]) -> None:
    """Append the items whose question ``bucket`` does not hold yet."""
    seen = {i.question for i in bucket}
    for item in items:
        if item.question not in seen:
            seen.add(item.question)
            bucket.append(item)


def sample_pages(by_page: dict[str, list[EvalItem]], rng: random.Random,
                 pick: Callable[[list[EvalItem]], list[EvalItem]], n: int | None
                 ) -> list[EvalItem]:
    """Each page's ``pick`` (pages in sorted order, so a seed gives the same set),
    shuffled, then the first ``n``."""
    chosen = [item for page in sorted(by_page) for item in pick(by_page[page])]
    rng.shuffle(chosen)
    return chosen[:n] if n is not None else chosen


def off_topic_items(rng: random.Random, count: int) -> list[EvalItem]:
    """``count`` of the off-topic questions no corpus answers, in a seeded order."""
    off = list(OFF_TOPIC)
    rng.shuffle(off)
    return [EvalItem(question=q, kind="off-topic") for q in off[:count]]
