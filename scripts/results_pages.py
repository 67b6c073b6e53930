"""Rewrites the tables of the result pages (docs/results/*.md) from the kept run records.

A page marks each generated table:

    <!-- begin: table NAME -->
    ...whatever the summarising script prints for NAME...
    <!-- end -->

and everything between the markers is replaced by what TABLES[NAME] prints from the records
in docs/. Nothing else on a page is touched, so prose around a table is written by hand and
every number inside one comes from a record.

    python3 scripts/results_pages.py           # rewrite the pages
    python3 scripts/results_pages.py --check   # exit 1, naming each stale table, if a page
                                               # differs from what the records give
"""
import glob
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import summarize  # noqa: E402
import summarize_book  # noqa: E402
import summarize_ch6  # noqa: E402
import summarize_modern  # noqa: E402
import summarize_speedrun  # noqa: E402


def docs(*parts):
    return os.path.join(ROOT, "docs", *parts)


TABLES = {
    "ch1_ch3": lambda: summarize.table(docs("book", "ch1_ch3"), ["1", "2", "3"]),
    "book_figures": lambda: summarize_book.figures(docs("book")),
    "more_data": lambda: summarize_book.more_data(docs("book")),
    "hessian": lambda: summarize_book.hessian(docs("book")),
    "hessian_free": lambda: summarize_book.hessian_free(docs("book")),
    "ch3_exercises": lambda: summarize_book.exercises(docs("book", "ch3_exercises")),
    "ch6": lambda: summarize_ch6.table(docs("ch6")),
    "relu_gap": lambda: summarize_ch6.study(docs("ch6")),
    "modern_throughput": lambda: summarize_modern.throughput(docs("modern", "throughput.json")),
    "modern_throughput_zen4": lambda: summarize_modern.throughput(docs("modern", "throughput_zen4.json")),
    "modern_throughput_bf16": lambda: summarize_modern.throughput(docs("modern", "throughput_bf16.json")),
    "modern_throughput_zen4_tilings": lambda: summarize_modern.throughput(docs("modern", "throughput_zen4_tilings.json")),
    "modern_throughput_bf16_tilings": lambda: summarize_modern.throughput(docs("modern", "throughput_bf16_tilings.json")),
    "speedrun": lambda: summarize_speedrun.table(docs("speedrun")),
    "speedrun_frontier": lambda: summarize_speedrun.frontier(docs("speedrun")),
}
for _name, *_ in summarize_modern.TABLES:
    TABLES[f"modern_{_name}"] = lambda n=_name: summarize_modern.table(n, docs("modern"))

BLOCK = re.compile(r"(<!-- begin: table ([\w-]+) -->\n)(.*?)(<!-- end -->)", re.S)


def render(text, page):
    """TEXT with every marked table regenerated; raises on a table name nobody generates."""

    def one(m):
        name = m.group(2)
        if name not in TABLES:
            raise SystemExit(f"{page}: no table named {name!r} (known: {', '.join(sorted(TABLES))})")
        lines = TABLES[name]()
        if not lines:
            raise SystemExit(f"{page}: table {name!r} has no records behind it")
        return m.group(1) + "\n".join(lines) + "\n" + m.group(4)

    return BLOCK.sub(one, text)


def main():
    check = "--check" in sys.argv[1:]
    stale, used = [], set()
    pages = sorted(glob.glob(docs("results", "*.md")))
    if not pages:
        raise SystemExit("no pages in docs/results")
    for page in pages:
        rel = os.path.relpath(page, ROOT)
        text = open(page, encoding="utf-8").read()
        used.update(m.group(2) for m in BLOCK.finditer(text))
        new = render(text, rel)
        if new == text:
            continue
        if check:
            old = {m.group(2): m.group(3) for m in BLOCK.finditer(text)}
            for m in BLOCK.finditer(new):
                if old.get(m.group(2)) != m.group(3):
                    stale.append(f"{rel}: table {m.group(2)}")
        else:
            with open(page, "w", encoding="utf-8") as f:
                f.write(new)
            print(f"rewrote {rel}")
    if check:
        if stale:
            print("result pages out of date with the records (run python3 scripts/results_pages.py):", file=sys.stderr)
            print("\n".join(stale), file=sys.stderr)
            sys.exit(1)
        print(f"{len(pages)} result pages, {len(used)} tables: all match the records")


if __name__ == "__main__":
    main()
