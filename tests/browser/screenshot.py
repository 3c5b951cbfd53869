"""Saves a PNG of an explorer page as headless Chromium shows it (networking off).

    .venv/bin/python -m tests.browser.screenshot EXPLORER_HTML OUT_PNG
        [--view map|ego] [--search TITLE] [--zoom Z] [--depth 2] [--hover]
        [--width 1400 --height 900]

Used for the README picture (`make screenshot`): by default the whole-map view as the
page opens. `--search` picks a book as a user would (first type-ahead hit): on the map
the camera flies to it and its neighbours; `--zoom` then sets the zoom level (0 = the
whole map). `--view ego` shows the ego graph instead; `--hover` also shows the tooltip
of a nearest book there.
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
    parser.add_argument("--view", default="map", choices=("map", "ego"))
    parser.add_argument("--search", default=None, help="type this and choose the first hit")
    parser.add_argument("--zoom", type=float, default=None, help="map zoom level after --search")
    parser.add_argument("--depth", type=int, default=2, choices=(1, 2, 3, 4))
    parser.add_argument("--hover", action="store_true", help="hover the first neighbour (ego)")
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
        fragment = f"#ego=0&depth={args.depth}" if args.view == "ego" else ""
        page.navigate("file://" + os.path.abspath(args.html) + fragment, timeout=300)
        page.wait_for("document.body.dataset.ready === '1'", timeout=300)
        if args.search:
            page.click_selector("#search")
            page.type_text(args.search)
            page.wait_for("document.querySelector('#search-results li[data-book-index]')")
            page.click_selector("#search-results li[data-book-index]")
            page.wait_for("document.body.dataset.animating !== '1'")
            if args.zoom is not None and args.view == "map":
                page.evaluate("(() => { const c = bookExplorer.camera();"
                              f" bookExplorer.setCamera(c.cx, c.cy, {args.zoom}); }})()")
        if args.hover and args.view == "ego":
            first = page.evaluate(
                "document.querySelector('#neighbours li[data-book-index]')?.dataset.bookIndex")
            if first is not None:
                x, y = page.centre_of(f'#graph .node[data-book-index="{first}"] circle')
                page.mouse_move(x, y)
        if args.view == "map":
            page.evaluate("bookExplorer.drawNow()")
        time.sleep(0.3)
        page.screenshot(args.png)
    finally:
        browser.close()
    print(os.path.abspath(args.png))


if __name__ == "__main__":
    sys.exit(main())
