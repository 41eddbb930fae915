"""The general answer engine on documents of any kind: PDF pages, FAQs, headings, code."""

from __future__ import annotations

from indexing.text import STOP_WORDS, words
from llama_rag.protocol import Hit
from qa import extractive
from qa.passages import answerable, is_code, is_example, is_term, units

PDF_PAGE = (
    "Valgrind Frequently Asked Questions\n"
    "4.2. The stack traces given by Memcheck (or another tool) aren't helpful. How can I\n"
    "improve them?\n"
    "If they're not long enough, use --num-callers to make them longer.\n"
    "If they're not detailed enough, make sure you are compiling with -g to add debug infor-\n"
    "mation. And don't strip symbol tables.\n"
    "4\n")
FAQ = ("Configuration\n\nHow do I configure a different editor?\n\nIf you haven't specified an "
       "editor specifically for Git, it will by default use the editor you've configured "
       "using the VISUAL or EDITOR environment variables.\n\nIf you want to configure an "
       "editor specifically for Git, you can either set the core.editor configuration value "
       "or the GIT_EDITOR environment variable.")


def hit(n: int, text: str, source: str = "doc.pdf") -> Hit:
    return Hit(rank=n, score=0.5, source=source, title="t", text=text, chunk_id=f"c{n}",
               heading=[], start=0, end=len(text))


class WordEmbedder:
    """Similarity = share of the question's words a text holds (deterministic, no model)."""

    def similarity(self, sentences, documents):
        q = set(words(sentences[0])) - STOP_WORDS
        return [[len(q & set(words(d))) / len(q) for d in documents]]


def test_wrapped_prose_is_not_code_but_a_shell_snippet_is():
    assert not is_code(PDF_PAGE)
    assert is_code("$ git rm --cached AFile.txt\n$ git commit -m 'Remove files'\n$ git checkout .")
    assert is_code(">>> import zipfile\n>>> zipfile.is_zipfile('a.zip')\nTrue")
    assert is_code("```\nexport VISUAL=nano\n```")  # fenced: literal by its markup
    assert not is_code("export VISUAL=nano")


def test_a_pdf_page_is_read_as_sentences_with_hyphens_mended_and_questions_as_prompts():
    found = units(1, PDF_PAGE)
    texts = [u.text for u in found if answerable(u)]
    assert "If they're not long enough, use --num-callers to make them longer." in texts
    assert any("debug information." in t for t in texts)  # "infor-\nmation" mended
    prompts = [u.text for u in found if u.prompt]
    assert any(t.endswith("How can I improve them?") for t in prompts)
    assert any("aren't helpful" in t for t in prompts)  # the restatement before the question


def test_a_pdf_whose_text_answers_is_never_refused():
    quote = extractive.best_passage("How can I improve the stack traces Memcheck gives?",
                                    [hit(1, PDF_PAGE)], WordEmbedder())
    assert quote is not None and "--num-callers" in quote.text


def test_the_faq_question_is_never_the_answer_the_text_under_it_is():
    quote = extractive.best_passage("How do I configure a different editor?",
                                    [hit(1, FAQ, "gitfaq.html")], WordEmbedder())
    assert quote is not None and "?" not in quote.text
    assert quote.text.startswith("If you")
    elsewhere = hit(1, "A different editor can be used for each file type.", "x.html")
    under = extractive.best_passage("How do I configure a different editor?",
                                    [elsewhere, hit(2, FAQ, "gitfaq.html")], WordEmbedder())
    assert under.n == 2  # the text under a matching question beats a look-alike elsewhere


def test_a_title_that_restates_the_question_lends_its_likeness_to_the_text_under_it():
    text = ("My text files are detected as binary on Windows\n\nGit works best when "
            "you store text files as UTF-8. Many programs on Windows support UTF-8.\n\n"
            "Some editors add a byte order mark.")
    quote = extractive.best_passage("Why are my text files detected as binary on Windows?",
                                    [hit(1, text, "faq.html")], WordEmbedder())
    assert quote.text.startswith("Git works best when you store text files as UTF-8.")


def test_a_passage_is_one_to_three_sentences_and_brings_the_code_it_introduces():
    text = ("Use a credential helper. It stores the token for you. It is secure. It is easy. "
            "Really.\n\nTo read it from a variable, run the following:\n\n"
            "$ git config credential.helper '!f() { echo password=$GIT_TOKEN; };f'")
    short = extractive.best_passage("Which credential helper stores the token?",
                                    [hit(1, text, "faq.html")], WordEmbedder())
    assert short.text.count(".") in (2, 3) and len(short.text.split()) <= 60
    code = extractive.best_passage("How do I read it from a variable?",
                                   [hit(1, text, "faq.html")], WordEmbedder())
    assert code.text.endswith("run the following:") and code.code.startswith("$ git config")
    rendered = extractive.render(code)
    assert rendered.startswith("To read it from a variable, run the following [1]:\n\n$ git")
    tag = "Apply a tag to the release:\n\n```\ngit tag -s v1.0 master\n```"  # an HTML <pre>
    fenced = extractive.best_passage("How do I tag the release?", [hit(1, tag, "wf.html")],
                                     WordEmbedder())
    assert fenced.text == "Apply a tag to the release:" and "git tag -s v1.0" in fenced.code
    captioned = tag.replace("\n\n```", "\n\nRecipe: Release tagging\n\n```")
    fenced = extractive.best_passage("How do I tag the release?", [hit(1, captioned, "wf.html")],
                                     WordEmbedder())
    assert "git tag -s v1.0" in fenced.code  # past the listing's caption
    marked = extractive.Quote(3, "See How to use bzip2 [2] for more [4, 5]. Use sys.argv[0].")
    assert extractive.render(marked) == "See How to use bzip2 for more. Use sys.argv[0] [3]."


def test_a_how_question_gets_the_example_right_after_its_answer():
    text = ("Searching files by age\n\n"
            "Search for files in your home directory which have been modified in the last "
            "twenty-four hours.\n\n    $ find $HOME -mtime 0\n\n"
            "Files modified a day ago are not listed.")
    how = extractive.best_passage("How do I find files modified in the last day?",
                                  [hit(1, text, "find.txt")], WordEmbedder())
    assert how.text.startswith("Search for files") and how.code.strip() == "$ find $HOME -mtime 0"
    what = extractive.best_passage("Which files were modified in the last day?",
                                   [hit(1, text, "find.txt")], WordEmbedder())
    assert what.code is None
    nxt = text.replace("    $ find $HOME -mtime 0", "    -newer FILE\n        File was modified more "
                       "recently than FILE.")
    entry = extractive.best_passage("How do I find files modified in the last day?",
                                    [hit(1, nxt, "find.txt")], WordEmbedder())
    assert entry.code is None  # the next option's entry, not an example
    assert not is_example("SYNOPSIS") and not is_example("===== FIXED BUGS =====")
    assert is_example("VACUUM FULL;") and is_example("$ git stash")
    assert extractive.asks_how("What's the fastest way to load a big CSV file?")
    assert not extractive.asks_how("How many clients can connect at once?")


MAN_PAGE = (
    "Operation mode\n"
    "       The options listed in the table below tell GNU tar what operation it is\n"
    "       to perform.  Exactly one of them must be given.  Meaning of non-op\u2010\n"
    "       tional arguments depends on the operation mode requested.\n"
    "\n"
    "       -t, --list\n"
    "              List the contents of an archive.  Arguments are optional.  When\n"
    "              given, they specify the names of the members to list.\n")


def test_a_man_page_is_prose_under_titles_though_every_line_is_indented():
    found = units(1, MAN_PAGE)
    assert not any(u.code for u in found)
    assert [u.text for u in found if u.prompt] == ["Operation mode", "-t, --list"]
    assert any("non-optional arguments" in u.text for u in found)  # "non-op\u2010\n tional" mended
    quote = extractive.best_passage("How do I list the contents of a tar archive?",
                                    [hit(1, MAN_PAGE, "tar.txt")], WordEmbedder())
    assert quote is not None and quote.text.startswith("List the contents of an archive.")
    assert extractive.render(quote).startswith("-t, --list: List the contents of an archive.")


def test_terms_of_definition_lists_are_told_from_headings_and_questions():
    # a grammar's brackets are not words: PostgreSQL's "ADD [ COLUMN ] [ IF NOT EXISTS ]"
    for term in ("-t, --list", "core.editor", "GIT_EDITOR", "--state-branch <branch>",
                 "ADD [ COLUMN ] [ IF NOT EXISTS ]"):
        assert is_term(term), term
    for prompt in ("Operation mode", "2.3 Memory leak detection", "How do I list files?",
                   "Configuration"):
        assert not is_term(prompt), prompt


COREUTILS_OPTIONS = (
    "       -i, --interactive\n"
    "              prompt before overwrite (overrides a previous -n option)\n"
    "\n"
    "       -n, --no-clobber\n"
    "              do not overwrite an existing file (overrides a previous -i option)\n")


def test_a_description_without_a_final_stop_answers_under_its_term():
    """GNU coreutils' man pages describe options in lowercase without a final stop: under
    a term that is the definition, not a fragment; elsewhere such a line opens nothing."""
    found = units(1, COREUTILS_OPTIONS)
    opens = [u.text for u in found if answerable(u)]
    assert opens == ["prompt before overwrite (overrides a previous -n option)",
                     "do not overwrite an existing file (overrides a previous -i option)"]
    assert not any(answerable(u) for u in units(1, "Intro\n\ndo not overwrite an existing file"))
    quote = extractive.best_passage("How do I keep cp from overwriting an existing file?",
                                    [hit(1, COREUTILS_OPTIONS, "cp.txt")], WordEmbedder())
    assert extractive.render(quote) == (
        "-n, --no-clobber: do not overwrite an existing file (overrides a previous -i option) [1]")


def test_a_term_sharing_its_line_with_its_description_is_told_apart():
    """A man page's short options set the term and its description in two columns on
    one line ("-t     sort by time"): the description answers, under its term. A
    justified line's double spaces are not columns."""
    text = ("       -t     sort by time, newest first; see --time\n\n"
            "       -a     Select all processes except both session leaders (see getsid(2))\n"
            "              and processes not associated with a terminal.\n\n"
            "       If  CONTROL  is  not given,  the  value  is  taken  from  the  VER-\n"
            "       SION_CONTROL  environment  variable.\n")
    found = units(1, text)
    assert [(u.text, u.prompt) for u in found if u.prompt or u.defines] == [
        ("-t", True), ("sort by time, newest first; see --time", False), ("-a", True),
        ("Select all processes except both session leaders (see getsid(2)) and processes "
         "not associated with a terminal.", False)]
    assert found[-1].text.startswith("If CONTROL is not given, the value") and answerable(found[-1])
    quote = extractive.best_passage("How do I sort the listing by time?",
                                    [hit(1, text, "ls.txt")], WordEmbedder())
    assert extractive.render(quote) == "-t: sort by time, newest first; see --time [1]"


def test_a_sentence_with_a_parenthesis_after_its_first_word_is_no_signature():
    """bzip2's manual: "Keep (don't delete) input files ..." under "-k --keep" is the
    option's description, not an API call's signature line."""
    text = "-k --keep\n\nKeep (don’t delete) input files during compression.\n\n-s --small\n\nUse less memory."
    assert [u.text for u in units(1, text) if answerable(u)] == [
        "Keep (don’t delete) input files during compression."]
    assert [u.text for u in units(1, "ZipFile.read(name, pwd=None)\n\nReturn the bytes.")
            if answerable(u)] == []  # "Return the bytes." has 3 words; the signature is skipped
    assert len(units(1, "ZipFile.read(name, pwd=None)\n\nReturn the bytes.")) == 1


def test_a_numbered_faq_entry_is_the_question_and_a_broken_paragraph_is_mended():
    """A PDF FAQ numbers its entries ("4.1. My program uses ..."), and its text layer may
    break the entry mid-sentence into two paragraphs: the entry is a prompt, whole, and
    the text under it answers. A numbered section title keeps its own rules."""
    text = ("4.1. My program uses the C++ STL and string classes. Valgrind reports 'still "
            "reachable' memory leaks involving\n\nthese classes at the exit of the program, "
            "but there should be none.\n\nFirst of all: relax, it's probably not a bug, but "
            "a feature. Many implementations of the C++ standard libraries use their own "
            "memory pool allocators.")
    found = units(1, text)
    assert [u.text for u in found if u.prompt] == [
        "4.1. My program uses the C++ STL and string classes.",
        "Valgrind reports 'still reachable' memory leaks involving these classes at the exit "
        "of the program, but there should be none."]
    assert [u.text for u in found if answerable(u)][0] == (
        "First of all: relax, it's probably not a bug, but a feature.")
    title = units(1, "18.3. Starting the Database Server\n\nBefore anyone can access the "
                     "database, you must start the database server.")
    # a title's likeness already reaches the text under it through the hit's heading; as a
    # prompt too it cost two questions each on the PDF and PostgreSQL dev sets
    assert [u.text for u in title if u.prompt] == []


def test_the_term_an_answer_names_leaves_out_the_section_heading_above_it():
    """A chunk cut from further down its section gets its heading back above it
    (extractive._headed): the answer names the option, not "Download Options -c ..."."""
    text = ("       -c, --continue\n"
            "              Continue getting a partially-downloaded file.\n")
    found = Hit(rank=1, score=0.5, source="wget.txt", title="wget", text=text, chunk_id="c1",
                heading=["Download Options"], start=0, end=len(text))
    quote = extractive.best_passage("How do I continue a partially-downloaded file?",
                                    [found], WordEmbedder())
    assert extractive.render(quote) == (
        "-c, --continue: Continue getting a partially-downloaded file [1].")


def test_an_indented_code_block_stays_code_and_a_wrapped_first_line_is_no_title():
    assert is_code("    x = 1\n    y = x + 2\n    print(y)")
    prose = ("For example, the c option requires creating the archive, the v option\n"
             "       requests the verbose operation, and the f option takes an argument.")
    assert not any(u.prompt for u in units(1, prose))


def test_the_passage_that_spells_the_questions_literal_wins_over_a_look_alike():
    rows = ["Example: 1999-Jan-08; Description: January 8 in any mode.",
            "Example: 08-Jan-99; Description: January 8, except error in YMD mode."]

    class LookAlike:  # the embedder finds the first row a little closer
        def similarity(self, sentences, documents):
            return [[0.50 if "1999-Jan-08" in d else 0.46 for d in documents]]

    quote = extractive.best_passage("What does 08-Jan-99 mean as a date?",
                                    [hit(1, rows[0]), hit(2, rows[1])], LookAlike())
    assert quote.n == 2 and "except error in YMD mode" in quote.text
    assert extractive.literals("Is 32 the limit for --max-depth, or core.depth?") == [
        "32", "--max-depth", "core.depth"]
    assert not extractive.spells("Identifiers are 32-bit quantities.", "32")
    assert extractive.literals("How do I make the file smaller after deleting rows?") == []


def test_a_passage_further_down_an_options_description_still_names_the_option():
    page = ("       -c, --continue\n"
            "              Continue getting a partially-downloaded file.  This is useful\n"
            "              when a download was cut off by the network.\n\n"
            "              If you use it on a file the server cannot resume, Wget restarts\n"
            "              the download from scratch.\n")
    quote = extractive.best_passage("What if the server cannot resume a cut download?",
                                    [hit(1, page, "wget.txt")], WordEmbedder())
    assert quote is not None and "If you use it on a file" in quote.text
    assert not quote.text.startswith("Continue getting")  # below the option's first sentence
    assert extractive.render(quote).startswith("-c, --continue: ")


def test_a_page_footer_or_a_usage_synopsis_is_never_the_answer():
    page = ("SYNOPSIS\n       cp [OPTION]... [-T] SOURCE DEST\n\n"
            "DESCRIPTION\n       Copy SOURCE to DEST, or multiple SOURCE(s) to DIRECTORY.\n\n"
            "GNU coreutils 9.1 September 2022 CP(1)\n")
    openings = [u.text for u in units(1, page) if answerable(u)]
    assert openings == ["Copy SOURCE to DEST, or multiple SOURCE(s) to DIRECTORY."]
    assert answerable(units(1, "Example: 08-Jan-99; Description: January 8, except error in YMD "
                               "mode.")[0])  # a table's row stays


def test_a_short_passage_reads_on_into_the_next_paragraph_of_its_hit():
    faq = ("Can I keep my local edits to a tracked file out of commits?\n\n"
           "Not with a setting.\n\n"
           "Copy the file to a template, ignore the real file and generate it from the "
           "template in your build instead.\n\n"
           "$ cp config.tmpl config")
    quote = extractive.best_passage("Can I keep local edits of a tracked file out of commits?",
                                    [hit(1, faq, "faq.html")], WordEmbedder())
    assert quote.text.startswith("Not with a setting.") and "template" in quote.text


BLAME = ("git-blame(1) Manual Page\n\nNAME\n\ngit-blame - Show what revision and author last "
         "modified each line of a file\n\nSYNOPSIS\n\ngit blame [-c] [-b] [-l] <file>\n\n"
         "DESCRIPTION\n\nAnnotates each line in the given file with information from the "
         "revision which last modified the line.")


def test_a_name_line_answers_a_question_that_does_not_name_it():
    """A NAME line (man pages, AsciiDoc, DocBook refentries) says what the command is
    for; it answers "how do I ..." by naming the command, but not a question that
    already names it."""
    [name] = [u for u in units(1, BLAME) if u.name]
    assert answerable(name) and name.text.startswith("git-blame - Show")
    quote = extractive.best_passage("Which command shows what revision last modified each "
                                    "line?", [hit(1, BLAME)], WordEmbedder())
    assert quote is not None and quote.text.startswith("git-blame - ")
    asked = extractive.best_passage("What does git blame show for each line?",
                                    [hit(1, BLAME)], WordEmbedder())
    assert asked is not None and asked.text.startswith("Annotates each line")
    for prose_line in ("Tips - read the whole section first", "tar - see below. It is long."):
        assert not any(u.name for u in units(1, prose_line + "\n\nMore."))


def test_a_heading_in_the_chunk_is_never_a_name_line():
    """Sphinx's page title "zipfile — Work with ZIP archives" is the hit's heading."""
    text = "zipfile \u2014 Work with ZIP archives\n\nThe ZIP file format is a common archive."
    assert any(u.name for u in units(1, text))
    assert not any(u.name for u in units(1, text, ["zipfile \u2014 Work with ZIP archives"]))


def test_names_it_matches_whole_names_only():
    assert extractive.names_it("How do I sort the ls listing?", "ls - list directory contents")
    assert not extractive.names_it("Which tools list files?", "ls - list directory contents")
    assert extractive.names_it("Should I use git fetch or git pull?", "git-pull - Fetch from x")
    assert not extractive.names_it("Who changed each line?", "git-blame(1) - Show what")


def _page(n: int, text: str, source: str, title: str) -> Hit:
    return Hit(rank=n, score=0.5, source=source, title=title, text=text, chunk_id=f"c{n}",
               heading=[], start=0, end=len(text))


def test_release_notes_answer_only_what_the_reference_pages_do_not_or_questions_of_change():
    """Release notes name each feature in the question's words ("The new
    contextlib.suppress context manager ..."): a how-to is answered from the reference
    page among the hits; a question about versions or changes may still get them."""
    notes = _page(1, "The new contextlib.suppress context manager suppresses exceptions "
                     "from a single statement.", "whatsnew/3.4.html", "What\u2019s New In Python 3.4")
    reference = _page(2, "Return a context manager that ignores the specified exceptions "
                         "when they occur in the body of a with statement.",
                      "library/contextlib.html", "contextlib \u2014 Utilities")
    how = "How do I ignore exceptions with the contextlib.suppress context manager?"
    assert extractive.best_passage(how, [notes, reference], WordEmbedder()).n == 2
    assert extractive.best_passage(how, [notes], WordEmbedder()).n == 1  # nothing else answers
    when = "Since which version is there a contextlib.suppress context manager?"
    assert extractive.best_passage(when, [notes, reference], WordEmbedder()).n == 1
    for title, source in [("x", "docs/NEWS"), ("CHANGELOG", "CHANGELOG.md"),
                          ("E.1. Release 15.5", "release-15-5.html"), ("x", "RelNotes/2.40.txt")]:
        assert extractive.is_changelog(_page(1, "x", source, title)), (title, source)
    for title, source in [("History and License", "license.html"),
                          ("Changes to the syntax", "a.html"), ("git-log(1)", "git-log.html")]:
        assert not extractive.is_changelog(_page(1, "x", source, title)), (title, source)


def test_a_question_that_names_a_page_prefers_that_pages_passage():
    """"Can grep ignore case?" with less's option as like the question as grep's: grep's
    page is the one asked about. A family's name ("git" beside "git-rebase") names none."""
    from indexing.text import family_names, names, title_name

    titles = ("grep", "git-rebase(1) Manual Page", "zipfile — Work with ZIP archives",
              "pg_dump", "CREATE TABLE", "Submitting Patches")
    assert [title_name(t) for t in titles] == ["grep", "git-rebase", "zipfile", "pg_dump",
                                               None, None]
    assert family_names(["git", "git-rebase", "os", "os.path", "grep"]) == {"git", "os"}
    assert names("How do I use git rebase -i?", "git-rebase") and names("Can grep do it?", "grep")
    assert not names("Does egrep do it?", "grep") and not names("os.pathsep", "os.path")

    text = "-i, --ignore-case: Ignore case distinctions in patterns."
    less, grep = hit(1, text, "less.txt"), hit(2, text, "grep.txt")
    less.title, grep.title = "less", "grep"
    quote = extractive.best_passage("Can grep ignore case?", [less, grep], WordEmbedder())
    assert quote is not None and quote.n == 2
    assert extractive.named_hits("How does git rebase work?",
                                 [grep.model_copy(update={"title": "git(1) Manual Page"}),
                                  less.model_copy(update={"title": "git-rebase(1) Manual Page"})]
                                 ) == {2}
