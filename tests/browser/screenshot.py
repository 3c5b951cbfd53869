"""Saves a PNG of an explorer page as headless Chromium shows it (networking off).

    .venv/bin/python -m tests.browser.screenshot EXPLORER_HTML OUT_PNG
        [--search TITLE] [--depth 2] [--hover] [--width 1400 --height 900]

Used for the README picture: `--search` picks the centre book as a user would
(first type-ahead hit), `--hover` also shows the tooltip of a nearest book.
"""
import argparse
import os
import sys
import time

from tests.browser import cdp


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html")
    parser.add_argument("png")
    parser.add_argument("--search", default=None, help="type this and choose the first hit")
    parser.add_argument("--depth", type=int, default=2, choices=(1, 2, 3, 4))
    parser.add_argument("--hover", action="store_true", help="hover the first neighbour")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args(argv)
    if not os.path.isfile(args.html):
        parser.error(f"{args.html} not found")
    binary = cdp.find_browser()
    if binary is None:
        parser.error("no Chromium found: run .ci/install_browser.sh")
    browser = cdp.Browser(binary, width=args.width, height=args.height)
    try:
        page = browser.new_page()
        page.navigate("file://" + os.path.abspath(args.html))
        page.wait_for("document.body.dataset.ready === '1'")
        page.evaluate("(() => { const d = document.getElementById('depth');"
                      f" d.value = {args.depth}; d.dispatchEvent(new Event('input')); }})()")
        if args.search:
            page.click_selector("#search")
            page.type_text(args.search)
            page.wait_for("document.querySelector('#search-results li[data-book-index]')")
            page.click_selector("#search-results li[data-book-index]")
            page.wait_for("document.body.dataset.animating !== '1'")
        if args.hover:
            first = page.evaluate(
                "document.querySelector('#neighbours li[data-book-index]')?.dataset.bookIndex")
            if first is not None:
                x, y = page.centre_of(f'#graph .node[data-book-index="{first}"] circle')
                page.mouse_move(x, y)
                time.sleep(0.2)
        page.screenshot(args.png)
    finally:
        browser.close()
    print(os.path.abspath(args.png))


if __name__ == "__main__":
    sys.exit(main())
